//! The reasons of the `Ready`, `Reconciling` and `Stalled` conditions, as CamelCase constants.
//! The controller writes them and the CLI prints them; the troubleshooting guide lists each.

// Progress.
/// Work is in flight (`Reconciling=True`, `Ready=False`).
pub const PROGRESSING: &str = "Progressing";
/// Being deleted: the operator is removing what it created.
pub const DELETING: &str = "Deleting";

// Every kind.
/// The Kubernetes API server refused to store the full status as too large; only the
/// conditions are written while the full status is retried.
pub const STATUS_TOO_LARGE: &str = "StatusTooLarge";
/// The Kubernetes API server rejected the status as invalid; only the conditions are written
/// while the full status is retried.
pub const STATUS_REJECTED: &str = "StatusRejected";

// Configurations.
/// The connection check passed: the server runs, the credential works.
pub const CONNECTED: &str = "Connected";
/// A referenced Secret does not exist.
pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
/// A referenced Secret lacks the credential label.
pub const SECRET_NOT_LABELLED: &str = "SecretNotLabelled";
/// A referenced Secret lacks the key.
pub const SECRET_KEY_MISSING: &str = "SecretKeyMissing";
/// A Secret value is empty, not text, or not a CA bundle.
pub const INVALID_SECRET: &str = "InvalidSecret";
/// Bitbucket rejected the credential; no further call is made with it until the Secret changes.
pub const BAD_CREDENTIALS: &str = "BadCredentials";
/// Bitbucket locked the account behind a CAPTCHA.
pub const CAPTCHA_REQUIRED: &str = "CaptchaRequired";
/// Basic authentication is turned off on the server.
pub const BASIC_AUTH_DISABLED: &str = "BasicAuthDisabled";
/// The server cannot be reached, times out, fails or is not running; retried with backoff.
pub const UNREACHABLE: &str = "Unreachable";
/// Bitbucket answered 429; retried after its `Retry-After`.
pub const RATE_LIMITED: &str = "RateLimited";
/// The server is not a Bitbucket this operator supports, or lacks an API it needs.
pub const UNSUPPORTED_SERVER: &str = "UnsupportedServer";
/// An answer from the server was beyond the operator's bounds (one body too large; a list with
/// too many pages, items or bytes, or too slow); looked at again at the next resync.
pub const RESPONSE_TOO_LARGE: &str = "ResponseTooLarge";
/// The client settings are invalid (for example the URL).
pub const INVALID_CONFIGURATION: &str = "InvalidConfiguration";
/// The URL's host is not on the operator's allow-list of Bitbucket hosts.
pub const HOST_NOT_ALLOWED: &str = "HostNotAllowed";
/// Bindings still use the configuration, so its deletion waits for them.
pub const IN_USE: &str = "InUse";

// Bindings.
/// Every bound repository is known and has its webhooks.
pub const BOUND: &str = "Bound";
/// The referenced configuration does not exist.
pub const CONFIGURATION_NOT_FOUND: &str = "ConfigurationNotFound";
/// The referenced configuration is not Ready.
pub const CONFIGURATION_NOT_READY: &str = "ConfigurationNotReady";
/// A ClusterBitbucketConfiguration does not allow this namespace.
pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
/// The project does not exist or is invisible to the credential.
pub const PROJECT_NOT_FOUND: &str = "ProjectNotFound";
/// The repository does not exist or is invisible to the credential.
pub const REPOSITORY_NOT_FOUND: &str = "RepositoryNotFound";
/// The credential may not do what is needed.
pub const PERMISSION_DENIED: &str = "PermissionDenied";
/// Bitbucket refused a request as invalid or conflicting.
pub const REJECTED: &str = "Rejected";

// Required reports.
/// Every bound repository has the required merge check.
pub const IN_SYNC: &str = "InSync";
/// `managementPolicy: Observe` and some repository differs from the spec.
pub const DRIFTED: &str = "Drifted";
/// The referenced binding does not exist.
pub const BINDING_NOT_FOUND: &str = "BindingNotFound";
/// The referenced binding is not Ready.
pub const BINDING_NOT_READY: &str = "BindingNotReady";
/// Some repositories failed; the message and per-repository status say which and why.
pub const PARTIALLY_FAILED: &str = "PartiallyFailed";

// SonarQube.
/// The SonarQube edition allows no second Bitbucket setting (Enterprise Edition and later do).
pub const EDITION_LIMIT: &str = "EditionLimit";
/// The DevOps Platform setting key is held by another platform's setting.
pub const ALM_SETTING_KEY_TAKEN: &str = "AlmSettingKeyTaken";
/// SonarQube's own check of its Bitbucket setting failed (URL, token or permissions).
pub const VALIDATION_FAILED: &str = "ValidationFailed";
/// The SonarQubeConfiguration a Bitbucket configuration's `sonarqube` block names is missing or
/// not Ready.
pub const SONARQUBE_NOT_READY: &str = "SonarQubeNotReady";
/// Keeping the SonarQube side of a Bitbucket configuration failed; the message says how.
pub const SONARQUBE_INTEGRATION_FAILED: &str = "SonarQubeIntegrationFailed";
/// Another ProjectBinding, created first, binds a SonarQube project this one names.
pub const PROJECT_CLAIMED: &str = "ProjectClaimed";
/// A SonarQube project a binding names does not exist, and `sonarqube.createProjects` is off.
pub const SONARQUBE_PROJECT_MISSING: &str = "SonarQubeProjectMissing";
/// A RequiredReport of SonarQube's report key whose SonarQube side proves that nothing will post
/// the report (Community Build, a monorepo binding without monorepo support, or no DevOps
/// Platform setting): the check is kept, and every pull request stays blocked until the report
/// comes by other means.
pub const REPORT_NEVER_POSTED: &str = "ReportNeverPosted";
