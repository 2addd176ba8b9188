//! Conditions: from the outcome of a reconcile to `Ready`, `Reconciling` and `Stalled`, keeping
//! `lastTransitionTime` unless a condition's status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::{
    api::conditions::{READY, RECONCILING, STALLED},
    bitbucket::{Error, ErrorClass, MANUAL_STEPS, MergeCheck},
};

use super::{merge_checks::describe, reasons};

/// Where a resource stands after a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Bitbucket matches the spec.
    Ready,
    /// Work is in flight or is retried after a transient failure.
    Reconciling,
    /// Cannot progress without a change (to the spec, a Secret, or Bitbucket's permissions).
    Stalled,
}

/// The outcome of a reconcile: a phase, a CamelCase reason and a message that says what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Where the resource stands.
    pub phase: Phase,
    /// CamelCase reason, one of [`reasons`].
    pub reason: &'static str,
    /// A short human message.
    pub message: String,
}

impl Outcome {
    /// Bitbucket matches the spec.
    pub fn ready(reason: &'static str, message: impl Into<String>) -> Self {
        Self { phase: Phase::Ready, reason, message: message.into() }
    }

    /// Work in flight or retried.
    pub fn reconciling(reason: &'static str, message: impl Into<String>) -> Self {
        Self { phase: Phase::Reconciling, reason, message: message.into() }
    }

    /// Needs a change to progress.
    pub fn stalled(reason: &'static str, message: impl Into<String>) -> Self {
        Self { phase: Phase::Stalled, reason, message: message.into() }
    }

    /// The verdict on a failed Bitbucket call, the same wherever it is given (conditions written
    /// by the controllers, `plan`, `apply` and `check`): transient failures are retried
    /// (`Reconciling`), everything else needs a change (`Stalled`); the reason is
    /// [`reason_for`]'s and the message is the error's text, with what to do where the text does
    /// not say it.
    pub fn from_error(error: &Error) -> Self {
        let reason = reason_for(error);
        let message = message_for(error);
        if error.is_transient() { Self::reconciling(reason, message) } else { Self::stalled(reason, message) }
    }

    /// The verdict on a required report whose server cannot keep the merge check (no
    /// required-report API, or unsupported altogether): `Stalled`, with the manual steps that
    /// give each repository the check meanwhile.
    pub fn unsupported_report(error: &Error, desired: &MergeCheck) -> Self {
        Self::stalled(
            reasons::UNSUPPORTED_SERVER,
            format!(
                "{error}; until then, on each repository: {MANUAL_STEPS} with report key {}, {}",
                desired.report_key,
                describe(desired)
            ),
        )
    }
}

/// What to do about a server this operator cannot use.
pub const USE_A_SUPPORTED_SERVER: &str = "point the URL at Bitbucket Data Center 6.6 or newer, with its context path (such as https://example.com/bitbucket)";

/// The message of a failed Bitbucket call: the error's text, which says what to do for every
/// error but an unsupported server's (its reason says what the server lacks; where it also says
/// what to do, after a `; ` as every message here does, it stands alone).
fn message_for(error: &Error) -> String {
    match error {
        Error::UnsupportedServer { reason } if !reason.contains("; ") => format!("{error}; {USE_A_SUPPORTED_SERVER}"),
        _ => error.to_string(),
    }
}

/// The condition reason for a failed Bitbucket call.
pub fn reason_for(error: &Error) -> &'static str {
    match error {
        Error::ProjectNotFound { .. } => reasons::PROJECT_NOT_FOUND,
        Error::RepositoryNotFound { .. } | Error::NotFound { .. } => reasons::REPOSITORY_NOT_FOUND,
        Error::BadCredentials { .. } => reasons::BAD_CREDENTIALS,
        Error::CaptchaRequired => reasons::CAPTCHA_REQUIRED,
        Error::BasicAuthDisabled => reasons::BASIC_AUTH_DISABLED,
        Error::PermissionDenied { .. } => reasons::PERMISSION_DENIED,
        Error::RateLimited { .. } => reasons::RATE_LIMITED,
        Error::InvalidRequest { .. } | Error::Conflict { .. } => reasons::REJECTED,
        Error::UnsupportedServer { .. } => reasons::UNSUPPORTED_SERVER,
        Error::InvalidArgument { .. } | Error::Configuration(_) => reasons::INVALID_CONFIGURATION,
        Error::ResponseTooLarge { .. } => reasons::RESPONSE_TOO_LARGE,
        Error::Server { .. }
        | Error::NotRunning { .. }
        | Error::Transport { .. }
        | Error::UnexpectedResponse { .. } => reasons::UNREACHABLE,
    }
}

/// Whether an error is about the credential (every call with it fails the same way).
pub fn is_credential_error(error: &Error) -> bool {
    error.class() == ErrorClass::Credentials
}

/// Whether an error says the repository (or its whole project) is gone, so that nothing is left
/// on it to clean up.
pub fn is_gone(error: &Error) -> bool {
    matches!(error, Error::RepositoryNotFound { .. } | Error::ProjectNotFound { .. })
}

/// The three conditions for an outcome, observed at `generation`. A condition whose status does
/// not change keeps its `lastTransitionTime`.
pub fn conditions(previous: &[Condition], outcome: &Outcome, generation: Option<i64>, now: &Time) -> Vec<Condition> {
    let (ready, reconciling, stalled) = match outcome.phase {
        Phase::Ready => (true, false, false),
        Phase::Reconciling => (false, true, false),
        Phase::Stalled => (false, false, true),
    };
    [(READY, ready), (RECONCILING, reconciling), (STALLED, stalled)]
        .into_iter()
        .map(|(type_, on)| {
            let status = if on { "True" } else { "False" };
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            // Reconciling and Stalled carry the outcome's reason only while True (kstatus reads
            // their status); Ready always explains itself.
            let (reason, message) = if type_ == READY || on {
                (outcome.reason.to_owned(), outcome.message.clone())
            } else {
                (if type_ == RECONCILING { "Idle" } else { "NotStalled" }.to_owned(), String::new())
            };
            Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason,
                message: bounded(&message),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Condition messages are capped (the API allows 32768 bytes; people read one line).
fn bounded(message: &str) -> String {
    shorten(message, 1024)
}

/// `text` cut to at most `max` bytes (at least 4), on a character boundary, ending in `...`
/// when it was cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap_or_default())
    }

    #[test]
    fn transition_times_move_only_when_a_status_changes() {
        let first = conditions(&[], &Outcome::reconciling(reasons::PROGRESSING, "working"), Some(1), &time(100));
        assert!(first.iter().all(|c| c.last_transition_time == time(100)));
        let again = conditions(&first, &Outcome::reconciling(reasons::UNREACHABLE, "down"), Some(1), &time(200));
        assert!(again.iter().all(|c| c.last_transition_time == time(100)), "{again:?}");
        assert_eq!(again[0].reason, reasons::UNREACHABLE);
        let ready = conditions(&again, &Outcome::ready(reasons::CONNECTED, "ok"), Some(2), &time(300));
        let by_type = |t: &str| ready.iter().find(|c| c.type_ == t).cloned().unwrap_or_else(|| panic!("{t}"));
        assert_eq!(by_type(READY).status, "True");
        assert_eq!(by_type(READY).last_transition_time, time(300));
        assert_eq!(by_type(RECONCILING).last_transition_time, time(300));
        assert_eq!(by_type(STALLED).last_transition_time, time(100), "Stalled stayed False");
        assert!(ready.iter().all(|c| c.observed_generation == Some(2)));
    }

    #[test]
    fn errors_map_to_phases() {
        let transient = Outcome::from_error(&Error::Server { status: 503 });
        assert_eq!((transient.phase, transient.reason), (Phase::Reconciling, reasons::UNREACHABLE));
        let denied = Outcome::from_error(&Error::PermissionDenied { action: "read PAY".into() });
        assert_eq!((denied.phase, denied.reason), (Phase::Stalled, reasons::PERMISSION_DENIED));
        let long = conditions(&[], &Outcome::stalled(reasons::REJECTED, "x".repeat(5000)), None, &time(1));
        assert!(long[0].message.len() <= 1024);
    }

    #[test]
    fn an_unsupported_server_is_told_what_to_do_once() {
        let not_bitbucket =
            Outcome::from_error(&Error::UnsupportedServer { reason: "the server has no /rest/api/1.0/users".into() });
        assert_eq!((not_bitbucket.phase, not_bitbucket.reason), (Phase::Stalled, reasons::UNSUPPORTED_SERVER));
        assert_eq!(
            not_bitbucket.message,
            format!("unsupported server: the server has no /rest/api/1.0/users; {USE_A_SUPPORTED_SERVER}")
        );
        // A reason that already says what to do is left as it is.
        let no_api = Error::UnsupportedServer { reason: format!("no required-report API; {MANUAL_STEPS}") };
        assert_eq!(Outcome::from_error(&no_api).message, no_api.to_string());
        let desired =
            MergeCheck { report_key: "com.sonarsource.sonarqube".into(), must_pass: true, min_severity: None };
        let report = Outcome::unsupported_report(&no_api, &desired);
        assert_eq!((report.phase, report.reason), (Phase::Stalled, reasons::UNSUPPORTED_SERVER));
        assert!(
            report.message.ends_with(
                "until then, on each repository: add it by hand: Repository settings > Code Insights > Add required \
                 report with report key com.sonarsource.sonarqube, must pass, annotations ignored"
            ),
            "{}",
            report.message
        );
    }

    #[test]
    fn how_each_failure_is_treated() {
        struct Case {
            name: &'static str,
            error: Error,
            want_phase: Phase,
            want_reason: &'static str,
            /// Every call with the credential would fail alike.
            want_credential: bool,
            /// Nothing is left on the repository to clean up.
            want_gone: bool,
        }
        let case = |name, error, want_phase, want_reason, want_credential, want_gone| Case {
            name,
            error,
            want_phase,
            want_reason,
            want_credential,
            want_gone,
        };
        use Phase::{Reconciling, Stalled};
        let cases = [
            case(
                "project gone",
                Error::ProjectNotFound { project: "P".into() },
                Stalled,
                reasons::PROJECT_NOT_FOUND,
                false,
                true,
            ),
            case(
                "repository gone",
                Error::RepositoryNotFound { project: "P".into(), slug: "r".into() },
                Stalled,
                reasons::REPOSITORY_NOT_FOUND,
                false,
                true,
            ),
            case(
                "webhook gone",
                Error::NotFound { what: "webhook 3".into() },
                Stalled,
                reasons::REPOSITORY_NOT_FOUND,
                false,
                false,
            ),
            case(
                "bad credential",
                Error::BadCredentials { reason: "401".into() },
                Stalled,
                reasons::BAD_CREDENTIALS,
                true,
                false,
            ),
            case("CAPTCHA", Error::CaptchaRequired, Stalled, reasons::CAPTCHA_REQUIRED, true, false),
            case("basic auth off", Error::BasicAuthDisabled, Stalled, reasons::BASIC_AUTH_DISABLED, true, false),
            case(
                "permission",
                Error::PermissionDenied { action: "x".into() },
                Stalled,
                reasons::PERMISSION_DENIED,
                false,
                false,
            ),
            case(
                "rate limited",
                Error::RateLimited { retry_after: std::time::Duration::from_secs(3) },
                Reconciling,
                reasons::RATE_LIMITED,
                false,
                false,
            ),
            case("invalid request", Error::InvalidRequest { field: None }, Stalled, reasons::REJECTED, false, false),
            case("conflict", Error::Conflict { exception: None }, Stalled, reasons::REJECTED, false, false),
            case("server error", Error::Server { status: 500 }, Reconciling, reasons::UNREACHABLE, false, false),
            case(
                "not running",
                Error::NotRunning { state: "STARTING".into() },
                Reconciling,
                reasons::UNREACHABLE,
                false,
                false,
            ),
            case(
                "timeout",
                Error::Transport { message: "timed out".into(), timeout: true },
                Reconciling,
                reasons::UNREACHABLE,
                false,
                false,
            ),
            case(
                "garbled answer",
                Error::UnexpectedResponse { status: 200, endpoint: "GET /x".into(), reason: "not JSON".into() },
                Reconciling,
                reasons::UNREACHABLE,
                false,
                false,
            ),
            case(
                "unsupported",
                Error::UnsupportedServer { reason: "7.0".into() },
                Stalled,
                reasons::UNSUPPORTED_SERVER,
                false,
                false,
            ),
            case(
                "an answer beyond the bounds",
                Error::ResponseTooLarge {
                    endpoint: "GET /rest/api/1.0/projects/{key}/repos".into(),
                    bound: "more than 4 MiB in one response".into(),
                    advice: "check the URL",
                },
                Stalled,
                reasons::RESPONSE_TOO_LARGE,
                false,
                false,
            ),
            case(
                "bad settings",
                Error::Configuration("url".into()),
                Stalled,
                reasons::INVALID_CONFIGURATION,
                false,
                false,
            ),
        ];
        for case in cases {
            let outcome = Outcome::from_error(&case.error);
            assert_eq!((outcome.phase, outcome.reason), (case.want_phase, case.want_reason), "{}", case.name);
            assert!(outcome.message.starts_with(&case.error.to_string()), "{}: {}", case.name, outcome.message);
            assert_eq!(is_credential_error(&case.error), case.want_credential, "{}", case.name);
            assert_eq!(is_gone(&case.error), case.want_gone, "{}", case.name);
        }
    }
}
