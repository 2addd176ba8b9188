//! How the operator talks to the Kubernetes API server so that it gets over an outage on its
//! own, within seconds of the server's return: short connect timeouts, a read timeout that ends
//! requests on connections that went dead, watches that the server ends often enough for a dead
//! one to be noticed, and a watch backoff bounded to a few seconds that lists again at once when
//! the server has forgotten where the watch was.
//!
//! kube's defaults are made for other trade-offs: its watcher backs off up to 30 s plus as much
//! again of jitter, its client waits 30 s to connect and forever for an answer, and a watch on a
//! connection that died without being closed is only noticed after 295 s of silence.

use std::time::Duration;

use kube::runtime::watcher;

/// Longest wait to open a connection (and finish TLS) to the API server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a watch lasts before the server ends it and the watcher resumes (from where it was,
/// without listing). A watch whose connection died is noticed 5 s after this at the latest.
pub const WATCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest silence on a connection before the request fails. Longer than [`WATCH_TIMEOUT`], so
/// that the server always ends a quiet watch first.
pub const READ_TIMEOUT: Duration = Duration::from_secs(45);
const _: () = assert!(WATCH_TIMEOUT.as_secs() < READ_TIMEOUT.as_secs());
/// The first delay before a failed watch is tried again.
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest delay between two tries of a failed watch.
const LAST_RETRY: Duration = Duration::from_secs(5);

/// The Kubernetes client of `bitbucket-operator run`, from the kubeconfig or in-cluster
/// `config`, with the timeouts above.
pub fn client(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    // The read timeout counts from when a request is sent, not from when its pooled connection
    // went idle.
    config.reset_reader_on_write = true;
    kube::Client::try_from(config)
}

/// `config` for the operator's watches: the server ends each after [`WATCH_TIMEOUT`].
pub fn watched(config: watcher::Config) -> watcher::Config {
    config.timeout(u32::try_from(WATCH_TIMEOUT.as_secs()).unwrap_or(u32::MAX))
}

/// The backoff of a failed watch: from half a second, doubling, up to 5 s, each delay between
/// half and all of its nominal value so that the replicas of many operators do not come back in
/// step. A watch that worked again starts over.
#[derive(Debug, Default)]
pub struct WatchBackoff {
    failures: u32,
}

impl WatchBackoff {
    /// The delay before trying again after `error`. The server saying that the watch's history is
    /// gone (410, as after its restart) is an answer, not a failure: the watcher lists again at
    /// once, at the pace of the first delay.
    pub fn after(&mut self, error: &watcher::Error) -> Duration {
        if expired(error) {
            self.failures = 0;
        }
        let nominal = FIRST_RETRY.saturating_mul(1 << self.failures.min(16)).min(LAST_RETRY);
        self.failures = self.failures.saturating_add(1);
        nominal / 2 + nominal.mul_f64(fastrand::f64() / 2.0)
    }

    /// The watch delivered an event.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Whether the server forgot the resourceVersion the watch asked for.
pub(crate) fn expired(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Box<kube::core::Status> {
        Box::new(kube::core::Status { code, ..kube::core::Status::default() })
    }

    #[test]
    fn a_failed_watch_is_retried_within_seconds_however_long_it_fails() {
        let refused = watcher::Error::WatchStartFailed(kube::Error::Api(status(503)));
        let mut backoff = WatchBackoff::default();
        let delays: Vec<Duration> = (0..100).map(|_| backoff.after(&refused)).collect();
        assert!(delays[0] <= FIRST_RETRY, "{delays:?}");
        assert!(delays.iter().all(|d| *d <= LAST_RETRY), "{delays:?}");
        // It does back off: a server that stays away is not called twice a second.
        assert!(delays[10..].iter().all(|d| *d >= LAST_RETRY / 2), "{delays:?}");
        // Jittered: the replicas of many operators do not retry in step.
        let distinct: std::collections::BTreeSet<_> = delays[10..].iter().collect();
        assert!(distinct.len() > 50, "{delays:?}");
        backoff.reset();
        assert!(backoff.after(&refused) <= FIRST_RETRY, "a watch that worked again starts over");
    }

    #[test]
    fn a_forgotten_resource_version_is_listed_again_at_once() {
        let refused = watcher::Error::WatchStartFailed(kube::Error::Api(status(503)));
        let mut backoff = WatchBackoff::default();
        for _ in 0..10 {
            backoff.after(&refused);
        }
        // The server is back, and says that the watch's history is gone (it restarted).
        assert!(backoff.after(&watcher::Error::WatchError(status(410))) <= FIRST_RETRY);
    }
}
