//! One Bitbucket client per configuration, shared by every resource that uses it, so that they
//! share its rate limit and what it learnt about the credential. A change to the spec or to a
//! Secret's value gives a new client (the fingerprint changes); a rejected credential stays
//! rejected, without requests, until then.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

use crate::{
    api::refs::ConfigurationKind,
    bitbucket::{Client, ClientConfig, Error, ServerIdentity},
    plan::connection::{credential_fingerprint, fingerprint},
};

/// Which configuration a client belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConfigurationKey {
    /// Namespaced or cluster-scoped.
    pub kind: ConfigurationKind,
    /// The namespace of a namespaced configuration.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl std::fmt::Display for ConfigurationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "BitbucketConfiguration {namespace}/{}", self.name),
            None => write!(f, "ClusterBitbucketConfiguration {}", self.name),
        }
    }
}

/// The client of a configuration and what its last check found.
#[derive(Clone, Debug)]
pub struct Connection {
    /// The shared client.
    pub client: Client,
    /// The identity proven by the last successful check.
    pub identity: Option<ServerIdentity>,
    /// The error of the last check, if it failed.
    pub error: Option<Error>,
    /// When the last check ran.
    pub checked_at: Instant,
    /// Counts the clients built for this configuration, so dependents notice a new one.
    pub epoch: u64,
    fingerprint: u64,
}

impl Connection {
    /// Whether this connection can serve dependents.
    pub fn is_ready(&self) -> bool {
        self.identity.is_some() && self.error.is_none()
    }
}

/// The clients, by configuration.
pub struct Clients {
    entries: Mutex<HashMap<ConfigurationKey, Arc<tokio::sync::Mutex<Option<Connection>>>>>,
    epochs: Mutex<HashMap<ConfigurationKey, u64>>,
    /// Credentials Bitbucket rejected, by configuration: (URL and credential fingerprint, the
    /// error). Kept apart from the clients so that no new client (after a change of rate limit
    /// or timeout, or after a Secret problem) sends a rejected credential again.
    rejected: Mutex<HashMap<ConfigurationKey, (u64, Error)>>,
    observer: Option<Arc<dyn crate::bitbucket::Observer>>,
    /// The hosts clients may be built for (empty: all); a client for any other host is refused.
    allowed_hosts: Vec<String>,
    /// Asked by every client before each request (the leader's tenure).
    gate: Option<Arc<dyn crate::bitbucket::Gate>>,
    /// Counts completed checks, so that dependents can wait for one.
    checks: tokio::sync::watch::Sender<u64>,
}

impl Default for Clients {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            epochs: Mutex::default(),
            rejected: Mutex::default(),
            observer: None,
            allowed_hosts: Vec::new(),
            gate: None,
            checks: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Clients {
    /// Clients that report their requests to `observer`.
    pub fn observed_by(observer: Arc<dyn crate::bitbucket::Observer>) -> Self {
        Self { observer: Some(observer), ..Self::default() }
    }

    /// These clients, built only for these hosts (`host` or `*.domain`; empty: all).
    pub fn allowing(self, hosts: Vec<String>) -> Self {
        Self { allowed_hosts: hosts, ..self }
    }

    /// These clients, each asking `gate` before every request.
    pub fn gated_by(self, gate: Arc<dyn crate::bitbucket::Gate>) -> Self {
        Self { gate: Some(gate), ..self }
    }

    fn slot(&self, key: &ConfigurationKey) -> Arc<tokio::sync::Mutex<Option<Connection>>> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.entry(key.clone()).or_default().clone()
    }

    /// Runs the connection check for a configuration unless one with the same settings ran less
    /// than `max_age` ago. A new fingerprint builds a new client; the same fingerprint reuses
    /// the client, so a rejected credential is not sent again. Returns the connection and
    /// whether a check ran.
    pub async fn check(
        &self,
        key: &ConfigurationKey,
        mut config: ClientConfig,
        max_age: Duration,
    ) -> Result<(Connection, bool), Error> {
        if let Some(observer) = &self.observer {
            config.observer = Some(observer.clone());
        }
        config.allowed_hosts.clone_from(&self.allowed_hosts);
        config.gate.clone_from(&self.gate);
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        let wanted = fingerprint(&config);
        let credential = credential_fingerprint(&config);
        let known_bad = self
            .rejected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .filter(|(rejected, _)| *rejected == credential)
            .map(|(_, error)| error.clone());
        let (client, epoch) = match guard.as_ref() {
            Some(current) if current.fingerprint == wanted => {
                if current.checked_at.elapsed() < max_age {
                    return Ok((current.clone(), false));
                }
                (current.client.clone(), current.epoch)
            }
            _ => (Client::new(config)?, self.epoch(key) + 1),
        };
        let result = match known_bad {
            Some(error) => Err(error),
            None => client.verify_connection().await,
        };
        {
            let mut rejected = self.rejected.lock().unwrap_or_else(PoisonError::into_inner);
            match &result {
                Err(error) if error.class() == crate::bitbucket::ErrorClass::Credentials => {
                    rejected.insert(key.clone(), (credential, error.clone()));
                }
                Ok(_) => {
                    rejected.remove(key);
                }
                Err(_) => {}
            }
        }
        let connection = Connection {
            client,
            identity: result.as_ref().ok().cloned(),
            error: result.err(),
            checked_at: Instant::now(),
            epoch,
            fingerprint: wanted,
        };
        *guard = Some(connection.clone());
        self.epochs.lock().unwrap_or_else(PoisonError::into_inner).insert(key.clone(), epoch);
        drop(guard);
        self.checks.send_modify(|n| *n = n.wrapping_add(1));
        Ok((connection, true))
    }

    /// The connection of a configuration once this process has checked it, waiting up to
    /// `patience` for a check in flight (after a restart, dependents start before their
    /// configuration's first check is done). `None` when no check finished in time.
    pub async fn checked(&self, key: &ConfigurationKey, patience: Duration) -> Option<Connection> {
        let mut checks = self.checks.subscribe();
        let deadline = Instant::now() + patience;
        loop {
            if let Some(connection) = self.current(key).await {
                return Some(connection);
            }
            match tokio::time::timeout_at(deadline, checks.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// The current connection of a configuration, if it was checked.
    pub async fn current(&self, key: &ConfigurationKey) -> Option<Connection> {
        let slot = self.slot(key);
        let guard = slot.lock().await;
        guard.clone()
    }

    /// The epoch of a configuration's client without waiting (0 when none was built yet).
    pub fn epoch(&self, key: &ConfigurationKey) -> u64 {
        self.epochs.lock().unwrap_or_else(PoisonError::into_inner).get(key).copied().unwrap_or(0)
    }

    /// Forgets a configuration's client, so dependents stop using it; what Bitbucket rejected
    /// is still remembered.
    pub fn forget(&self, key: &ConfigurationKey) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
        self.epochs.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }

    /// Lets the next check send a credential Bitbucket rejected once more, with a new client
    /// (the old one refuses every call after a rejection).
    pub fn retry_rejected(&self, key: &ConfigurationKey) {
        self.rejected.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }

    /// Forgets everything about a deleted configuration.
    pub fn remove(&self, key: &ConfigurationKey) {
        self.forget(key);
        self.rejected.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}
