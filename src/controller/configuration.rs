//! BitbucketConfiguration and ClusterBitbucketConfiguration: the connection check on create, on
//! change, on Secret rotation and every resync; status with server, identity and capabilities.
//! Deletion waits while bindings still use the configuration.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt, core::object::HasStatus, runtime::reflector::ObjectRef};

use crate::{
    api::{
        BitbucketConfiguration, BitbucketConfigurationSpec, ClusterBitbucketConfiguration, ConfigurationStatus,
        configuration::{RejectedCredential, SecretVersion, ServerInfo},
        refs::{ConfigurationKind, RETRY_CREDENTIALS_ANNOTATION},
    },
    bitbucket::ErrorClass,
    plan::{
        connection::{SecretData, client_config, referenced_secrets},
        reasons,
        status::{Outcome, Phase, reason_for},
    },
};

use super::{
    clients::ConfigurationKey,
    context::Context,
    error::Error,
    reconcile::{Cleanup, EventRule, Kind, Next, Object, Round},
    references::{resync_interval, users_of},
    status,
};

/// What the controllers need of a configuration of either kind.
pub trait ConfigurationObject: Object + HasStatus<Status = ConfigurationStatus> {
    /// The kind's name.
    const NAME: &'static str;
    /// How a binding's `configurationRef` names this kind.
    const REFERENCE: ConfigurationKind;
    /// The connection settings.
    fn connection(&self) -> &BitbucketConfigurationSpec;
    /// Where its Secrets live.
    fn secrets_namespace(&self, ctx: &Context) -> String;
    /// The namespace names it allows (a cluster configuration), if it limits them by name.
    fn allowed_names(&self) -> Option<&[String]>;
    /// The reference to the configuration a binding in `namespace` names `name`.
    fn reference(name: &str, namespace: &str) -> ObjectRef<Self>;
}

impl ConfigurationObject for BitbucketConfiguration {
    const NAME: &'static str = "BitbucketConfiguration";
    const REFERENCE: ConfigurationKind = ConfigurationKind::BitbucketConfiguration;

    fn connection(&self) -> &BitbucketConfigurationSpec {
        &self.spec
    }

    fn secrets_namespace(&self, _: &Context) -> String {
        self.namespace().unwrap_or_default()
    }

    fn allowed_names(&self) -> Option<&[String]> {
        None
    }

    fn reference(name: &str, namespace: &str) -> ObjectRef<Self> {
        ObjectRef::new(name).within(namespace)
    }
}

/// Its Secrets live in the operator's namespace.
impl ConfigurationObject for ClusterBitbucketConfiguration {
    const NAME: &'static str = "ClusterBitbucketConfiguration";
    const REFERENCE: ConfigurationKind = ConfigurationKind::ClusterBitbucketConfiguration;

    fn connection(&self) -> &BitbucketConfigurationSpec {
        &self.spec.connection
    }

    fn secrets_namespace(&self, ctx: &Context) -> String {
        ctx.options.operator_namespace.clone()
    }

    fn allowed_names(&self) -> Option<&[String]> {
        Some(&self.spec.allowed_namespaces.names)
    }

    fn reference(name: &str, _: &str) -> ObjectRef<Self> {
        ObjectRef::new(name)
    }
}

impl<K: ConfigurationObject> Kind for K {
    const KIND: &'static str = K::NAME;
    const EVENTS: EventRule =
        EventRule { action: "CheckConnection", phases: &[Phase::Ready, Phase::Reconciling, Phase::Stalled] };

    async fn round(ctx: &Context, object: &Self) -> Result<Round<ConfigurationStatus>, Error> {
        let mut round = check(ctx, object).await?;
        // A removed `sonarqube` block takes its record with it (the status is made afresh): said
        // once, whatever the round came to.
        round.notices.extend(super::integration::released_notices(object, object.status()));
        Ok(round)
    }

    async fn cleanup(ctx: &Context, object: &Self) -> Result<Cleanup<ConfigurationStatus>, Error> {
        wait_for_users(ctx, object).await
    }

    /// The rejected credential keeps the operator from trying it again.
    fn shortened(status: &ConfigurationStatus) -> Vec<ConfigurationStatus> {
        vec![ConfigurationStatus {
            rejected_credential: status.rejected_credential.clone(),
            ..ConfigurationStatus::default()
        }]
    }
}

/// The key of a configuration of either kind.
pub fn key<K: ConfigurationObject>(object: &K) -> ConfigurationKey {
    ConfigurationKey { kind: K::REFERENCE, namespace: object.meta().namespace.clone(), name: object.name_any() }
}

/// The connection check.
async fn check<K: ConfigurationObject>(ctx: &Context, object: &K) -> Result<Round<ConfigurationStatus>, Error> {
    let (spec, previous, key) = (object.connection(), object.status(), &key(object));
    let interval = resync_interval(&ctx.options, spec);
    let status = ConfigurationStatus {
        observed_generation: object.meta().generation,
        sonarqube: super::integration::carried(object, previous),
        ..Default::default()
    };
    let stalled = |outcome: Outcome| {
        ctx.clients.forget(key);
        Ok(Round::finished(status.clone(), outcome, interval))
    };
    let (config, credential) = match settings(ctx, object).await? {
        Ok(found) => found,
        Err(error) => return stalled(Outcome::stalled(error.reason(), error.to_string())),
    };
    // The host as the client will read it: the allow-list and the requests agree on it.
    let host = match crate::bitbucket::host_of(&spec.url) {
        Ok(host) => host,
        Err(error) => return stalled(Outcome::from_error(&error)),
    };
    if !crate::bitbucket::host_allowed(&host, &ctx.options.allowed_hosts) {
        return stalled(Outcome::stalled(
            reasons::HOST_NOT_ALLOWED,
            format!(
                "the operator may not send credentials to {host}: it is not among the allowed Bitbucket hosts ({}); use an allowed URL or ask the operator's administrators to allow it",
                ctx.options.allowed_hosts.join(", ")
            ),
        ));
    }
    // A credential Bitbucket rejected is not sent again, by this process or any later one,
    // until its Secret changes or the annotation asks for one more attempt: each attempt with a
    // wrong password counts towards Bitbucket's CAPTCHA lock-out.
    let retry_request = retry_request(object);
    let remembered = remembered_rejection(object, &credential);
    if let Some(rejected) = remembered {
        if rejected.retry_request == retry_request {
            ctx.clients.forget(key);
            let mut status = ConfigurationStatus { rejected_credential: Some(rejected.clone()), ..status };
            keep_server(&mut status, previous);
            let outcome = Outcome::stalled(credential_reason(&rejected.reason), rejected.message.clone());
            return Ok(Round::finished(status, outcome, interval));
        }
        tracing::info!(configuration = %key, "trying a rejected credential once more, as the annotation asks");
        ctx.clients.retry_rejected(key);
    }
    let connection = match ctx.clients.check(key, config, Duration::ZERO).await {
        Ok((connection, _)) => connection,
        Err(error) => return stalled(Outcome::stalled(reason_for(&error), error.to_string())),
    };
    let mut status = status;
    status.last_checked_time = Some(status::now());
    let (outcome, next) = match (&connection.identity, &connection.error) {
        (Some(identity), None) => {
            status.server = Some(ServerInfo {
                version: identity.version_text.clone(),
                build_number: identity.build_number.clone(),
                display_name: identity.display_name.clone(),
            });
            status.authenticated_as = identity.username.clone();
            if identity.capabilities.webhooks {
                status.capabilities.push("webhooks".into());
            }
            if identity.capabilities.code_insights {
                status.capabilities.push("codeInsights".into());
            }
            let message = format!("connected to Bitbucket {} as {}", identity.version_text, identity.shown_user());
            (Outcome::ready(reasons::CONNECTED, message), Next::Resync(interval))
        }
        (_, Some(error)) => {
            // Keep what the last good check learnt, so `kubectl get` still shows the server.
            keep_server(&mut status, previous);
            let mut outcome = Outcome::from_error(error);
            if error.class() == ErrorClass::Credentials {
                outcome.message = format!(
                    "{}; it is not sent again until the Secret {} changes, or until the annotation {RETRY_CREDENTIALS_ANNOTATION} is set to a new value (after an administrator cleared a CAPTCHA, say)",
                    outcome.message, credential.name
                );
                status.rejected_credential = Some(RejectedCredential {
                    secret: credential,
                    url: spec.url.clone(),
                    reason: outcome.reason.to_owned(),
                    message: outcome.message.clone(),
                    retry_request,
                    rejected_time: status::now(),
                });
            } else {
                // Not an answer about the credential (the server could not be reached, say):
                // a remembered rejection and an unanswered retry request stand.
                status.rejected_credential = remembered.cloned();
            }
            let next = if outcome.phase == Phase::Reconciling {
                Next::Retry(Error::Bitbucket(error.clone()))
            } else {
                Next::Resync(interval)
            };
            (outcome, next)
        }
        (None, None) => (Outcome::reconciling(reasons::PROGRESSING, "checking the connection"), Next::Resync(interval)),
    };
    let (mut outcome, mut next, mut notices) = (outcome, next, Vec::new());
    if spec.sonarqube.is_some() && outcome.phase == Phase::Ready {
        let integrated = super::integration::integrate(ctx, object, previous, interval).await?;
        status.sonarqube = integrated.status;
        notices = integrated.notices;
        if let Some((failure, error)) = integrated.failure {
            // A SonarQubeConfiguration that is not Ready yet is looked at again soon.
            let soon = interval.min(Duration::from_secs(30));
            next = match error {
                Some(error) => Next::Retry(Error::SonarQube(error)),
                None if failure.phase == Phase::Reconciling => Next::Resync(soon),
                None => Next::Resync(interval),
            };
            outcome = failure;
        }
    }
    keep_recent_check_time(&mut status, previous, &outcome, interval);
    Ok(Round { status, outcome, next, notices, corrected: 0 })
}

/// The rejection the status remembers for this version of the credential, if any.
fn remembered_rejection<'a, K: ConfigurationObject>(
    object: &'a K,
    credential: &SecretVersion,
) -> Option<&'a RejectedCredential> {
    object
        .status()
        .and_then(|s| s.rejected_credential.as_ref())
        .filter(|rejected| rejected.secret == *credential && rejected.url == object.connection().url)
}

/// The value of the retry-credentials annotation as the status records it: the value itself
/// when it is short plain text, otherwise a digest of it (the status field is bounded).
fn retry_request<K: ConfigurationObject>(object: &K) -> Option<String> {
    object.annotations().get(RETRY_CREDENTIALS_ANNOTATION).map(|value| recorded_request(value))
}

fn recorded_request(value: &str) -> String {
    let plain = value.len() <= 64 && value.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if plain {
        return value.to_owned();
    }
    // FNV-1a: stable across builds, unlike the standard hasher.
    let digest = value
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("digest:{digest:016x}")
}

/// What the last good check learnt about the server, kept through failures.
fn keep_server(status: &mut ConfigurationStatus, previous: Option<&ConfigurationStatus>) {
    if let Some(previous) = previous {
        status.server = previous.server.clone();
        status.authenticated_as = previous.authenticated_as.clone();
        status.capabilities = previous.capabilities.clone();
    }
}

/// The condition reason of a remembered rejection.
fn credential_reason(reason: &str) -> &'static str {
    match reason {
        reasons::CAPTCHA_REQUIRED => reasons::CAPTCHA_REQUIRED,
        reasons::BASIC_AUTH_DISABLED => reasons::BASIC_AUTH_DISABLED,
        _ => reasons::BAD_CREDENTIALS,
    }
}

/// `lastCheckedTime` says when the connection was last proven as the status describes it; it is
/// refreshed at most every half resync interval, so that a check that finds what the last one
/// found (a restart, a Secret touched without change) writes nothing.
fn keep_recent_check_time(
    status: &mut ConfigurationStatus,
    previous: Option<&ConfigurationStatus>,
    outcome: &Outcome,
    interval: Duration,
) {
    let Some(previous) = previous else { return };
    let Some(checked) = previous.last_checked_time.as_ref() else { return };
    let age = k8s_openapi::jiff::Timestamp::now().duration_since(checked.0);
    let recent = age.is_positive() && age.unsigned_abs() < interval / 2;
    let ready = crate::api::conditions::find(&previous.conditions, crate::api::conditions::READY);
    let same_outcome = ready.is_some_and(|c| c.reason == outcome.reason && c.message == outcome.message);
    let same = ConfigurationStatus {
        conditions: previous.conditions.clone(),
        last_checked_time: previous.last_checked_time.clone(),
        ..status.clone()
    } == *previous;
    if recent && same_outcome && same {
        status.last_checked_time = previous.last_checked_time.clone();
    }
}

/// The client settings from the spec and the Secrets it names, and which version of which
/// Secret holds the credential.
async fn settings<K: ConfigurationObject>(
    ctx: &Context,
    object: &K,
) -> Result<Result<(crate::bitbucket::ClientConfig, SecretVersion), crate::plan::connection::ConnectionError>, Error> {
    let (spec, secrets_namespace) = (object.connection(), object.secrets_namespace(ctx));
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &secrets_namespace);
    let credential_name = credential_secret(spec);
    let mut found = BTreeMap::new();
    let mut credential = SecretVersion { name: credential_name.to_owned(), ..SecretVersion::default() };
    for name in referenced_secrets(spec) {
        if let Some(secret) = secrets.get_opt(&name).await? {
            if name == credential_name {
                credential.uid.clone_from(&secret.metadata.uid);
                credential.resource_version.clone_from(&secret.metadata.resource_version);
            }
            found.insert(name, SecretData::from_secret(&secret));
        }
    }
    Ok(client_config(spec, &secrets_namespace, |name| found.get(name).cloned()).map(|config| (config, credential)))
}

/// The name of the Secret that holds the credential.
fn credential_secret(spec: &BitbucketConfigurationSpec) -> &str {
    match (&spec.auth.token, &spec.auth.basic) {
        (Some(token), _) => &token.secret_ref.name,
        (None, Some(basic)) => &basic.secret_ref.name,
        (None, None) => "",
    }
}

/// A configuration goes once no binding uses it; until then it keeps serving them a proven
/// client (after a restart, it proves one for them first).
async fn wait_for_users<K: ConfigurationObject>(
    ctx: &Context,
    object: &K,
) -> Result<Cleanup<ConfigurationStatus>, Error> {
    let key = &key(object);
    let users = users_of(&ctx.stores, key);
    if users.is_empty() {
        if let Some(waiting) = super::integration::remove_setting(ctx, object).await? {
            return Ok(waiting);
        }
        ctx.clients.remove(key);
        return Ok(Cleanup::Done(super::integration::removed_notices(object)));
    }
    let message = format!(
        "still used by ProjectBinding {}; delete those first (their webhooks and checks need this configuration to be removed)",
        users.join(", ")
    );
    if !ctx.clients.current(key).await.is_some_and(|c| c.is_ready())
        && let Ok((config, credential)) = settings(ctx, object).await?
        && remembered_rejection(object, &credential).is_none_or(|r| r.retry_request != retry_request(object))
    {
        let _ = ctx.clients.check(key, config, Duration::ZERO).await;
    }
    let status = object.status().cloned().unwrap_or_default();
    Ok(Cleanup::Waiting(status, Outcome::reconciling(reasons::IN_USE, message)))
}

#[cfg(test)]
mod tests {
    use super::recorded_request;

    #[test]
    fn a_retry_request_is_recorded_plainly_or_as_a_digest_that_tells_values_apart() {
        assert_eq!(recorded_request("2026-12-01T10:00"), "2026-12-01T10:00");
        let long = "x".repeat(10_000);
        let recorded = recorded_request(&long);
        assert!(recorded.starts_with("digest:") && recorded.len() < 64, "{recorded}");
        assert_eq!(recorded, recorded_request(&long), "the same value is the same request");
        assert_ne!(recorded, recorded_request(&"y".repeat(10_000)));
        assert!(recorded_request("a\u{202e}b").starts_with("digest:"));
    }
}
