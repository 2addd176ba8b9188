//! Whether what an object depends on can be used: a binding's configuration, a report's binding.
//! Each answer is either "use it" or an outcome that says why not and when to look again.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::{
    ConfigurationStatus, ProjectBindingStatus,
    conditions::{READY, STALLED, find},
};

use super::{reasons, status::Outcome};

/// When a dependent that cannot go on should look again (a change of what it waits for wakes it
/// sooner in every case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recheck {
    /// Only a change can help (a missing object, a namespace not allowed): rarely.
    OnChange,
    /// At the dependency's resync interval.
    Resync,
    /// Shortly: the dependency is being worked on right now.
    Soon,
    /// After a while: the dependency is working through a large round.
    Later,
}

/// Why a dependency cannot be used, and when to look again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// The conditions' outcome for the dependent.
    pub outcome: Outcome,
    /// When to look again.
    pub recheck: Recheck,
}

/// What a binding can see of its configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigurationState {
    /// The configuration's status.
    pub status: Option<ConfigurationStatus>,
    /// Its `metadata.generation`.
    pub generation: Option<i64>,
    /// Whether it is being deleted.
    pub deleting: bool,
    /// Whether it admits the binding's namespace (always, for a namespaced configuration).
    pub admits_namespace: bool,
}

/// Whether a binding in `namespace` may use the configuration `name` (as people read it, such as
/// `BitbucketConfiguration team-a/bitbucket`), which is `None` when it does not exist. A
/// configuration being deleted stays usable: its users clean up with its client.
pub fn configuration_usable(name: &str, namespace: &str, state: Option<&ConfigurationState>) -> Result<(), Blocked> {
    let Some(state) = state else {
        return Err(Blocked {
            outcome: Outcome::stalled(
                reasons::CONFIGURATION_NOT_FOUND,
                format!("{name} does not exist; create it or fix spec.configurationRef"),
            ),
            recheck: Recheck::OnChange,
        });
    };
    if !state.admits_namespace {
        return Err(Blocked {
            outcome: Outcome::stalled(
                reasons::NAMESPACE_NOT_ALLOWED,
                format!(
                    "{name} does not allow namespace {namespace}; add it to spec.allowedNamespaces of the configuration"
                ),
            ),
            recheck: Recheck::OnChange,
        });
    }
    if state.deleting {
        return Ok(());
    }
    let status = state.status.as_ref();
    let ready = status.and_then(|s| find(&s.conditions, READY));
    let current = status.and_then(|s| s.observed_generation) == state.generation;
    match ready {
        // Bitbucket is connected when only the configuration's SonarQube side is wrong.
        Some(ready)
            if current
                && (ready.status == "True" || super::sonarqube::SONARQUBE_SIDE.contains(&ready.reason.as_str())) =>
        {
            Ok(())
        }
        Some(_) if current => {
            let conditions = status.map(|s| s.conditions.as_slice()).unwrap_or_default();
            Err(Blocked {
                outcome: not_ready(reasons::CONFIGURATION_NOT_READY, name, conditions),
                recheck: Recheck::Resync,
            })
        }
        _ => Err(Blocked {
            outcome: Outcome::reconciling(
                reasons::CONFIGURATION_NOT_READY,
                format!("waiting for the connection check of {name}"),
            ),
            recheck: Recheck::Soon,
        }),
    }
}

/// The outcome for a dependent whose dependency `name` has a Ready condition that is not True:
/// its reason and message quoted, Stalled while the dependency is Stalled, else Reconciling.
fn not_ready(reason: &'static str, name: &str, conditions: &[Condition]) -> Outcome {
    let (why, text) = find(conditions, READY).map(|c| (c.reason.as_str(), c.message.as_str())).unwrap_or_default();
    let message = format!("{name} is not ready ({why}): {text}");
    if find(conditions, STALLED).is_some_and(|c| c.status == "True") {
        Outcome::stalled(reason, message)
    } else {
        Outcome::reconciling(reason, message)
    }
}

/// What a report can see of its binding.
#[derive(Clone, Debug, PartialEq)]
pub struct BindingState {
    /// The binding's status.
    pub status: Option<ProjectBindingStatus>,
    /// Its `metadata.generation`.
    pub generation: Option<i64>,
}

/// What this process's last round of a binding (at its current generation) concluded about its
/// repositories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Concluded<'a> {
    /// No round of it has concluded in this process yet.
    Nothing,
    /// The repositories were resolved.
    Resolved,
    /// They could not be, for this reason (the binding's outcome).
    Unresolved(&'a Outcome),
}

/// Whether a report can work from its binding's repositories now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindingUse {
    /// Yes: the binding resolved them in this process.
    Resolved,
    /// Not yet, and nothing new to say: the binding's status describes its current spec, and
    /// this process's own round of it has not concluded (just after a start). Nothing is
    /// written; the binding's round wakes the report.
    Pending,
    /// No: the outcome says why.
    Blocked(Blocked),
}

/// Whether a report may work from the repositories of its binding `name` (`None` when the
/// binding does not exist), from what this process's rounds of it `concluded`. Failures on
/// some repositories do not block: they are the binding's to report.
pub fn binding_use(name: &str, state: Option<&BindingState>, concluded: Concluded<'_>) -> BindingUse {
    let Some(state) = state else {
        return BindingUse::Blocked(Blocked {
            outcome: Outcome::stalled(
                reasons::BINDING_NOT_FOUND,
                format!("ProjectBinding {name} does not exist in this namespace; create it or fix spec.bindingRef"),
            ),
            recheck: Recheck::OnChange,
        });
    };
    let status = state.status.as_ref();
    let current = status.is_some_and(|s| s.observed_generation == state.generation);
    match (concluded, status.filter(|_| current)) {
        (Concluded::Resolved, _) => BindingUse::Resolved,
        (Concluded::Nothing, Some(_)) => BindingUse::Pending,
        (Concluded::Unresolved(why), _) => {
            let message = format!("ProjectBinding {name} is not ready ({}): {}", why.reason, why.message);
            // A rejected credential is the report's own problem too (every call of it would be
            // refused alike): its reason, not the binding's readiness.
            let credential = [reasons::BAD_CREDENTIALS, reasons::CAPTCHA_REQUIRED, reasons::BASIC_AUTH_DISABLED];
            let reason = if credential.contains(&why.reason) { why.reason } else { reasons::BINDING_NOT_READY };
            let outcome = if why.phase == super::status::Phase::Stalled {
                Outcome::stalled(reason, message)
            } else {
                Outcome::reconciling(reason, message)
            };
            BindingUse::Blocked(Blocked { outcome, recheck: Recheck::Later })
        }
        (Concluded::Nothing, None) => BindingUse::Blocked(Blocked {
            outcome: Outcome::reconciling(
                reasons::BINDING_NOT_READY,
                format!("waiting for ProjectBinding {name} to resolve its repositories"),
            ),
            recheck: Recheck::Later,
        }),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;
    use crate::plan::status::{Phase, conditions};

    const NAME: &str = "BitbucketConfiguration team-a/bitbucket";

    fn conditions_of(outcome: &Outcome, generation: i64) -> Vec<Condition> {
        conditions(&[], outcome, Some(generation), &Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
    }

    /// A configuration whose status says `outcome` at `observed`, while its generation is 2.
    fn configuration(outcome: Option<Outcome>, observed: i64, deleting: bool, admits: bool) -> ConfigurationState {
        ConfigurationState {
            status: outcome.map(|o| ConfigurationStatus {
                observed_generation: Some(observed),
                conditions: conditions_of(&o, observed),
                ..ConfigurationStatus::default()
            }),
            generation: Some(2),
            deleting,
            admits_namespace: admits,
        }
    }

    #[test]
    fn when_a_binding_may_use_its_configuration() {
        let connected = || Some(Outcome::ready(reasons::CONNECTED, "connected"));
        let unreachable = || Some(Outcome::reconciling(reasons::UNREACHABLE, "down"));
        let rejected = || Some(Outcome::stalled(reasons::BAD_CREDENTIALS, "rejected"));
        struct Case {
            name: &'static str,
            state: Option<ConfigurationState>,
            want: Option<(Phase, &'static str, Recheck, &'static str)>,
        }
        let cases = [
            Case {
                name: "missing",
                state: None,
                want: Some((Phase::Stalled, reasons::CONFIGURATION_NOT_FOUND, Recheck::OnChange, "does not exist")),
            },
            Case {
                name: "ready at its generation",
                state: Some(configuration(connected(), 2, false, true)),
                want: None,
            },
            Case {
                name: "namespace not allowed",
                state: Some(configuration(connected(), 2, false, false)),
                want: Some((
                    Phase::Stalled,
                    reasons::NAMESPACE_NOT_ALLOWED,
                    Recheck::OnChange,
                    "does not allow namespace team-a",
                )),
            },
            Case {
                name: "ready at an older generation",
                state: Some(configuration(connected(), 1, false, true)),
                want: Some((
                    Phase::Reconciling,
                    reasons::CONFIGURATION_NOT_READY,
                    Recheck::Soon,
                    "waiting for the connection check",
                )),
            },
            Case {
                name: "no status yet",
                state: Some(configuration(None, 0, false, true)),
                want: Some((
                    Phase::Reconciling,
                    reasons::CONFIGURATION_NOT_READY,
                    Recheck::Soon,
                    "waiting for the connection check",
                )),
            },
            Case {
                name: "retrying",
                state: Some(configuration(unreachable(), 2, false, true)),
                want: Some((
                    Phase::Reconciling,
                    reasons::CONFIGURATION_NOT_READY,
                    Recheck::Resync,
                    "is not ready (Unreachable): down",
                )),
            },
            Case {
                name: "stalled",
                state: Some(configuration(rejected(), 2, false, true)),
                want: Some((
                    Phase::Stalled,
                    reasons::CONFIGURATION_NOT_READY,
                    Recheck::Resync,
                    "is not ready (BadCredentials): rejected",
                )),
            },
            Case {
                name: "being deleted, not ready",
                state: Some(configuration(rejected(), 2, true, true)),
                want: None,
            },
            Case { name: "being deleted, never checked", state: Some(configuration(None, 0, true, true)), want: None },
        ];
        for case in cases {
            let got = configuration_usable(NAME, "team-a", case.state.as_ref());
            match (got, case.want) {
                (Ok(()), None) => {}
                (Err(blocked), Some((phase, reason, recheck, words))) => {
                    assert_eq!(
                        (blocked.outcome.phase, blocked.outcome.reason, blocked.recheck),
                        (phase, reason, recheck),
                        "{}",
                        case.name
                    );
                    assert!(blocked.outcome.message.contains(words), "{}: {}", case.name, blocked.outcome.message);
                    assert!(blocked.outcome.message.contains(NAME), "{}: names the configuration", case.name);
                }
                (got, want) => panic!("{}: got {got:?}, want {want:?}", case.name),
            }
        }
    }

    fn binding(outcome: Option<Outcome>, observed: i64) -> BindingState {
        BindingState {
            status: outcome.map(|o| ProjectBindingStatus {
                observed_generation: Some(observed),
                conditions: conditions_of(&o, observed),
                ..ProjectBindingStatus::default()
            }),
            generation: Some(2),
        }
    }

    #[test]
    fn when_a_report_may_work_from_its_bindings_repositories() {
        use Concluded::{Nothing, Resolved, Unresolved};
        let bound = || Some(Outcome::ready(reasons::BOUND, "2 repositories bound"));
        let partial = || Some(Outcome::stalled(reasons::PERMISSION_DENIED, "1 of 2 failed"));
        let missing_project = Outcome::stalled(reasons::PROJECT_NOT_FOUND, "no PAY");
        let retrying = Outcome::reconciling(reasons::UNREACHABLE, "down");
        let rejected =
            Outcome::stalled(reasons::BAD_CREDENTIALS, "Bitbucket rejected the credential; update the Secret");
        let waiting = |phase| Err((phase, reasons::BINDING_NOT_READY, Recheck::Later));
        struct Case<'a> {
            name: &'static str,
            state: Option<BindingState>,
            concluded: Concluded<'a>,
            /// Ok(true): resolved, Ok(false): pending.
            want: Result<bool, (Phase, &'static str, Recheck)>,
        }
        let cases = [
            Case {
                name: "missing",
                state: None,
                concluded: Nothing,
                want: Err((Phase::Stalled, reasons::BINDING_NOT_FOUND, Recheck::OnChange)),
            },
            Case { name: "resolved here", state: Some(binding(bound(), 2)), concluded: Resolved, want: Ok(true) },
            Case {
                name: "resolved here, failed on some",
                state: Some(binding(partial(), 2)),
                concluded: Resolved,
                want: Ok(true),
            },
            Case {
                name: "resolved here before its status is written",
                state: Some(binding(None, 0)),
                concluded: Resolved,
                want: Ok(true),
            },
            Case {
                name: "ready after a restart, not yet resolved here",
                state: Some(binding(bound(), 2)),
                concluded: Nothing,
                want: Ok(false),
            },
            Case {
                name: "stalled, nothing resolved",
                state: Some(binding(Some(missing_project.clone()), 2)),
                concluded: Unresolved(&missing_project),
                want: Err((Phase::Stalled, reasons::BINDING_NOT_READY, Recheck::Later)),
            },
            Case {
                name: "retrying, nothing resolved",
                state: Some(binding(Some(retrying.clone()), 2)),
                concluded: Unresolved(&retrying),
                want: waiting(Phase::Reconciling),
            },
            Case {
                name: "unresolved for a rejected credential: the report's problem too",
                state: Some(binding(Some(rejected.clone()), 2)),
                concluded: Unresolved(&rejected),
                want: Err((Phase::Stalled, reasons::BAD_CREDENTIALS, Recheck::Later)),
            },
            Case {
                name: "unresolved, its status not yet written",
                state: Some(binding(bound(), 1)),
                concluded: Unresolved(&missing_project),
                want: Err((Phase::Stalled, reasons::BINDING_NOT_READY, Recheck::Later)),
            },
            Case {
                name: "ready for an older spec",
                state: Some(binding(bound(), 1)),
                concluded: Nothing,
                want: waiting(Phase::Reconciling),
            },
            Case {
                name: "no status yet",
                state: Some(binding(None, 0)),
                concluded: Nothing,
                want: waiting(Phase::Reconciling),
            },
        ];
        for case in cases {
            let got = binding_use("payments", case.state.as_ref(), case.concluded);
            match (got, case.want) {
                (BindingUse::Resolved, Ok(true)) | (BindingUse::Pending, Ok(false)) => {}
                (BindingUse::Blocked(blocked), Err((phase, reason, recheck))) => {
                    assert_eq!(
                        (blocked.outcome.phase, blocked.outcome.reason, blocked.recheck),
                        (phase, reason, recheck),
                        "{}",
                        case.name
                    );
                    assert!(
                        blocked.outcome.message.contains("ProjectBinding payments"),
                        "{}: {}",
                        case.name,
                        blocked.outcome.message
                    );
                    if let Unresolved(why) = case.concluded {
                        assert!(blocked.outcome.message.contains(&why.message), "{}: says why", case.name);
                    }
                }
                (got, want) => panic!("{}: got {got:?}, want {want:?}", case.name),
            }
        }
    }
}
