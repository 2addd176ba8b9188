//! `check`: the connection check of each configuration (server running, version, identity,
//! permission to read, capabilities), with a verdict in plain words.
//!
//! The configurations come from manifests (`check -f PATH`, credentials from the Secrets in the
//! same files) or from the command line (`check --url URL --token-file FILE`). Each is checked
//! once, with one attempt per request: a rejected credential is never sent a second time, and an
//! unreachable server fails within seconds.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Value, json};

use crate::{
    bitbucket::{Client, ClientConfig, Credentials, Error, RetryPolicy, Secret, ServerIdentity},
    plan::{
        connection::ConnectionError,
        reasons,
        status::{Outcome, USE_A_SUPPORTED_SERVER},
    },
};

use super::{
    Error as CliError, Output,
    manifests::{LoadOptions, Manifests, ResolvedConfiguration, load},
    plan::ResourceId,
};

/// The longest the CLI waits to open a connection, whatever the configuration says.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the credential of `check --url` comes from.
#[derive(Clone, Debug)]
pub enum CredentialFiles {
    /// A file holding an HTTP access token.
    Token(PathBuf),
    /// A user name and a file holding the password.
    Basic {
        /// The user name.
        username: String,
        /// The file holding the password.
        password_file: PathBuf,
    },
}

/// The arguments of `check`: what to check.
#[derive(clap::Args, Clone, Debug)]
pub struct CheckArgs {
    /// YAML files or folders with the configurations and their Secrets (several allowed).
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Only the configuration of this name.
    #[arg(long, requires = "files")]
    pub name: Option<String>,
    /// The namespace of resources that name none; also checks only the namespaced
    /// configurations of this namespace (default: default).
    #[arg(short = 'n', long, requires = "files")]
    pub namespace: Option<String>,
    /// The operator's namespace, where the Secrets of ClusterBitbucketConfigurations live
    /// (default: bitbucket-operator).
    #[arg(long, requires = "files")]
    pub operator_namespace: Option<String>,
    /// The Bitbucket to check: alone (with --token-file or --username and --password-file),
    /// or with -f to send every configuration there instead (for example a simulator).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// With -f: send every SonarQubeConfiguration to this SonarQube instead (for example the
    /// simulator's).
    #[arg(long, value_name = "URL", requires = "files")]
    pub sonarqube_url: Option<String>,
    /// A file holding the HTTP access token (with --url).
    #[arg(long, value_name = "FILE", requires = "url", conflicts_with_all = ["files", "username"])]
    pub token_file: Option<PathBuf>,
    /// The user name for basic authentication (with --url and --password-file).
    #[arg(long, requires_all = ["url", "password_file"], conflicts_with = "files")]
    pub username: Option<String>,
    /// A file holding the password (with --url and --username).
    #[arg(long, value_name = "FILE", requires = "username")]
    pub password_file: Option<PathBuf>,
    /// A PEM file with the CA that signed the server's certificate.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Do not verify the server's certificate (test instances only).
    #[arg(long)]
    pub insecure_skip_verify: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: Output,
}

impl CheckArgs {
    /// The credential of `--url` without `-f`, if one was given.
    pub fn credentials(&self) -> Option<CredentialFiles> {
        match (&self.token_file, &self.username, &self.password_file) {
            (Some(file), _, _) => Some(CredentialFiles::Token(file.clone())),
            (None, Some(username), Some(password_file)) => {
                Some(CredentialFiles::Basic { username: username.clone(), password_file: password_file.clone() })
            }
            _ => None,
        }
    }
}

/// Runs `check` as the command line asks: prints the results and returns the exit code.
pub async fn execute(args: CheckArgs) -> Result<u8, CliError> {
    let results = run(&args).await?;
    match args.output {
        Output::Text => print!("{}", render_text(&results)),
        Output::Json => println!("{}", render_json(&results)),
    }
    Ok(exit_code(&results))
}

/// The result of one check.
#[derive(Clone, Debug)]
pub struct CheckResult {
    /// Which configuration; `None` for a URL given on the command line.
    pub id: Option<ResourceId>,
    /// Where the configuration was read from.
    pub source: Option<String>,
    /// The URL checked (empty when the configuration has no usable settings).
    pub url: String,
    /// What the server said about itself and the user, when the check passed.
    pub identity: Option<ServerIdentity>,
    /// What a SonarQube server said about itself, the user and its edition, when its check
    /// passed.
    pub sonarqube: Option<crate::sonarqube::ServerInfo>,
    /// [`reasons::CONNECTED`], or why not (a [`reasons`] constant): the reason the
    /// configuration's conditions would give.
    pub reason: &'static str,
    /// What was found; or what is wrong, as the configuration's conditions would say it.
    pub message: String,
    /// What to do, where the message alone does not say it for someone running `check`.
    pub advice: Option<String>,
}

impl CheckResult {
    /// Whether the check passed.
    pub fn ok(&self) -> bool {
        self.reason == reasons::CONNECTED
    }

    /// The configuration as people read it, or the URL.
    pub fn name(&self) -> String {
        self.id.as_ref().map_or_else(|| self.url.clone(), ToString::to_string)
    }

    /// A failed check: the verdict the conditions give on `error` ([`Outcome::from_error`]),
    /// with the check's advice.
    pub fn from_error(id: Option<ResourceId>, source: Option<String>, url: String, error: &Error) -> Self {
        let verdict = Outcome::from_error(error);
        let advice = advice_for(error).map(str::to_owned);
        Self {
            id,
            source,
            url,
            identity: None,
            sonarqube: None,
            reason: verdict.reason,
            message: verdict.message,
            advice,
        }
    }
}

/// What to do about an error of the connection check, beyond what its message says. The check
/// runs once and does not retry as the operator does; and during the check, a refused request or
/// a missing endpoint means that the URL does not lead to a Bitbucket this operator can use.
pub fn advice_for(error: &Error) -> Option<&'static str> {
    Some(match error {
        Error::Transport { .. } => {
            "check the URL, the network in between (DNS, proxy, firewall) and that Bitbucket is up"
        }
        Error::Server { .. } => {
            "Bitbucket is in trouble: try again later, or ask its administrators to look at its logs"
        }
        Error::NotRunning { .. } => "wait until it is running, then check again",
        Error::RateLimited { .. } => "wait and check again, or ask an administrator to raise the user's rate limit",
        Error::UnexpectedResponse { .. } => "check that the URL points at Bitbucket and not at a proxy or login page",
        // Its message says what to do.
        Error::ResponseTooLarge { .. } => return None,
        Error::ProjectNotFound { .. }
        | Error::RepositoryNotFound { .. }
        | Error::NotFound { .. }
        | Error::InvalidRequest { .. }
        | Error::Conflict { .. } => USE_A_SUPPORTED_SERVER,
        Error::Configuration(_) => "fix the URL or the TLS settings",
        // Their messages say what to do.
        Error::InvalidArgument { .. }
        | Error::UnsupportedServer { .. }
        | Error::BadCredentials { .. }
        | Error::CaptchaRequired
        | Error::BasicAuthDisabled
        | Error::PermissionDenied { .. } => return None,
    })
}

/// Checks one set of client settings: one attempt per request, the connect timeout capped at
/// [`CONNECT_TIMEOUT`].
pub async fn check_settings(id: Option<ResourceId>, source: Option<String>, mut settings: ClientConfig) -> CheckResult {
    settings.connect_timeout = settings.connect_timeout.min(CONNECT_TIMEOUT);
    settings.retry = RetryPolicy { max_attempts: 1, ..settings.retry };
    let url = settings.base_url.clone();
    let client = match Client::new(settings) {
        Ok(client) => client,
        Err(error) => return CheckResult::from_error(id, source, url, &error),
    };
    match client.verify_connection().await {
        Ok(identity) => CheckResult {
            message: format!("connected as {} to Bitbucket {}", identity.shown_user(), identity.version_text),
            id,
            source,
            url,
            identity: Some(identity),
            sonarqube: None,
            reason: reasons::CONNECTED,
            advice: None,
        },
        Err(error) => CheckResult::from_error(id, source, url, &error),
    }
}

/// Runs the checks the arguments ask for. `Err` is bad input (a missing file, invalid
/// manifests, an unknown name), said in plain words.
pub async fn run(request: &CheckArgs) -> Result<Vec<CheckResult>, CliError> {
    let credentials = request.credentials();
    if request.files.is_empty() {
        let Some(url) = &request.url else {
            return Err(CliError::Usage(
                "give manifests with -f PATH, or a server with --url URL and --token-file FILE",
            ));
        };
        let Some(credentials) = &credentials else {
            return Err(CliError::Usage(
                "--url without -f needs --token-file FILE, or --username USER with --password-file FILE",
            ));
        };
        let config = ClientConfig::new(url.trim_end_matches('/'), read_credentials(credentials)?);
        return Ok(vec![check_settings(None, None, Tls::read(request)?.apply(config)).await]);
    }
    if credentials.is_some() {
        return Err(CliError::Usage(
            "with -f the credentials come from the Secrets in the manifests; drop --token-file and --password-file",
        ));
    }
    let defaults = LoadOptions::default();
    let options = LoadOptions {
        default_namespace: request.namespace.clone().unwrap_or(defaults.default_namespace),
        operator_namespace: request.operator_namespace.clone().unwrap_or(defaults.operator_namespace),
    };
    let mut manifests = load(&request.files, &options).map_err(CliError::Manifests)?;
    if let Some(url) = &request.url {
        manifests.point_at(url.trim_end_matches('/'));
    }
    if let Some(url) = &request.sonarqube_url {
        manifests.point_sonarqube_at(url.trim_end_matches('/'));
    }
    let chosen: Vec<ResolvedConfiguration<'_>> = manifests
        .all_configurations()
        .into_iter()
        .filter(|c| request.name.as_deref().is_none_or(|name| c.name == name))
        .filter(|c| match (&request.namespace, c.namespace) {
            (Some(wanted), Some(namespace)) => wanted == namespace,
            _ => true,
        })
        .collect();
    let sonarqube: Vec<_> = manifests
        .sonarqube_configurations
        .iter()
        .filter(|item| request.name.as_deref().is_none_or(|name| item.object.metadata.name.as_deref() == Some(name)))
        .filter(|item| {
            request.namespace.as_deref().is_none_or(|wanted| item.object.metadata.namespace.as_deref() == Some(wanted))
        })
        .collect();
    if chosen.is_empty() && sonarqube.is_empty() {
        return Err(CliError::NoConfiguration {
            name: request.name.clone(),
            namespace: request.namespace.clone(),
            skipped: manifests.skipped.clone(),
        });
    }
    let tls = Tls::read(request)?;
    let mut checks = Vec::new();
    for configuration in &chosen {
        let id = configuration.id();
        let source = Some(configuration.source.to_string());
        // Without usable settings, the verdict is the one the configuration's conditions give.
        let settings =
            manifests.client_config(configuration).map(|settings| tls.apply(settings)).map_err(|error| CheckResult {
                id: None,
                source: None,
                url: configuration.spec.url.clone(),
                identity: None,
                sonarqube: None,
                reason: error.reason(),
                message: error.to_string(),
                advice: secret_hint(&manifests, configuration, &error),
            });
        checks.push(async move {
            match settings {
                Ok(settings) => check_settings(Some(id), source, settings).await,
                Err(failed) => CheckResult { id: Some(id), source, ..failed },
            }
        });
    }
    let mut results = futures::future::join_all(checks).await;
    for item in sonarqube {
        results.push(check_sonarqube(&manifests, item).await);
    }
    Ok(results)
}

/// Proves a SonarQube configuration's login from the manifests, once, as the operator would:
/// the token from a labelled Secret in its namespace, never `api/authentication/validate`.
async fn check_sonarqube(
    manifests: &Manifests,
    item: &super::manifests::Item<crate::api::SonarQubeConfiguration>,
) -> CheckResult {
    let object = &item.object;
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let id = ResourceId {
        kind: "SonarQubeConfiguration",
        namespace: Some(namespace.clone()),
        name: object.metadata.name.clone().unwrap_or_default(),
    };
    let failed = |outcome: Outcome| CheckResult {
        id: Some(id.clone()),
        source: Some(item.source.to_string()),
        url: object.spec.url.clone(),
        identity: None,
        sonarqube: None,
        reason: outcome.reason,
        message: outcome.message,
        advice: None,
    };
    let mut config = match crate::plan::sonarqube::connection::client_config(&object.spec, &namespace, |name| {
        manifests.secret(&namespace, name)
    }) {
        Ok(config) => config,
        Err(error) => return failed(Outcome::stalled(error.reason(), error.to_string())),
    };
    config.connect_timeout = config.connect_timeout.min(CONNECT_TIMEOUT);
    config.retry = RetryPolicy { max_attempts: 1, ..config.retry };
    let result = match crate::sonarqube::Client::new(config) {
        Ok(client) => client.server_info().await,
        Err(error) => Err(error),
    };
    match result {
        Ok(info) => {
            let outcome = crate::plan::sonarqube::connection::connected(&info);
            CheckResult { sonarqube: Some(info), ..failed(outcome) }
        }
        Err(error) => failed(crate::plan::sonarqube::connection::outcome_of(&error)),
    }
}

/// Where a ClusterBitbucketConfiguration's Secret is missing from the operator's namespace but
/// the manifests hold one of that name elsewhere, says so.
fn secret_hint(
    manifests: &Manifests,
    configuration: &ResolvedConfiguration<'_>,
    error: &ConnectionError,
) -> Option<String> {
    let ConnectionError::SecretNotFound { name, .. } = error else {
        return None;
    };
    if configuration.namespace.is_some() {
        return None;
    }
    let (namespace, _) = manifests.secrets.keys().find(|(_, secret)| secret == name)?;
    Some(format!(
        "pass --operator-namespace {namespace} if that is the operator's namespace: the manifests hold a Secret \
         {name} there, and a ClusterBitbucketConfiguration reads its Secrets from the operator's namespace"
    ))
}

/// `--ca-file` and `--insecure-skip-verify`, which win over what manifests say.
struct Tls {
    ca_pem: Option<Vec<u8>>,
    insecure_skip_verify: bool,
}

impl Tls {
    fn read(request: &CheckArgs) -> Result<Self, CliError> {
        let ca_pem = match &request.ca_file {
            Some(file) => Some(std::fs::read(file).map_err(|source| CliError::Read {
                path: file.clone(),
                what: "CA file",
                source,
            })?),
            None => None,
        };
        Ok(Self { ca_pem, insecure_skip_verify: request.insecure_skip_verify })
    }

    fn apply(&self, mut config: ClientConfig) -> ClientConfig {
        if self.insecure_skip_verify {
            config.insecure_skip_verify = true;
        }
        if let Some(pem) = &self.ca_pem {
            config.ca_pem = Some(pem.clone());
        }
        config
    }
}

fn read_credentials(files: &CredentialFiles) -> Result<Credentials, CliError> {
    Ok(match files {
        CredentialFiles::Token(file) => Credentials::Token(Secret::new(read_secret_file(file, "token file")?)),
        CredentialFiles::Basic { username, password_file } => Credentials::Basic {
            username: username.clone(),
            password: Secret::new(read_secret_file(password_file, "password file")?),
        },
    })
}

/// The one line of a file holding a secret (a final newline is allowed). The value is never
/// part of an error.
fn read_secret_file(path: &Path, what: &'static str) -> Result<String, CliError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| CliError::Read { path: path.to_owned(), what, source })?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.trim().is_empty() || value.contains(['\n', '\r']) {
        return Err(CliError::SecretFile { path: path.to_owned(), what });
    }
    Ok(value.to_owned())
}

/// 0 when every check passed, 1 otherwise.
pub fn exit_code(results: &[CheckResult]) -> u8 {
    if results.iter().all(CheckResult::ok) { 0 } else { 1 }
}

/// People's text: per configuration, where it came from, the URL, the server, the user, the
/// capabilities and the verdict.
pub fn render_text(results: &[CheckResult]) -> String {
    let mut out = String::new();
    for result in results {
        out.push_str(&format!("{}\n", result.name()));
        if let Some(source) = &result.source {
            out.push_str(&format!("    from:         {source}\n"));
        }
        if !result.url.is_empty() {
            out.push_str(&format!("    url:          {}\n", result.url));
        }
        if let Some(identity) = &result.identity {
            let build = identity.build_number.as_deref().map(|b| format!(" (build {b})")).unwrap_or_default();
            out.push_str(&format!(
                "    server:       {} {}{build}\n",
                identity.display_name.as_deref().unwrap_or("Bitbucket"),
                identity.version_text
            ));
            out.push_str(&format!("    user:         {}\n", identity.shown_user()));
            let capabilities = capabilities(identity);
            let capabilities = if capabilities.is_empty() { "none announced".into() } else { capabilities.join(", ") };
            out.push_str(&format!("    capabilities: {capabilities}\n"));
        }
        if let Some(info) = &result.sonarqube {
            out.push_str(&format!(
                "    server:       SonarQube {} ({} edition)\n",
                info.version,
                info.edition.as_str()
            ));
            out.push_str(&format!("    user:         {}\n", info.user.login.as_deref().unwrap_or("(not shown)")));
            let names = crate::plan::sonarqube::connection::capability_names(info);
            out.push_str(&format!("    capabilities: {}\n", names.join(", ")));
        }
        if result.ok() {
            out.push_str(&format!("    OK: {}\n", result.message));
        } else {
            out.push_str(&format!("    FAILED ({}): {}\n", result.reason, result.message));
        }
        if let Some(advice) = &result.advice {
            out.push_str(&format!("    what to do:   {advice}\n"));
        }
    }
    out
}

fn capabilities(identity: &ServerIdentity) -> Vec<&'static str> {
    let mut list = Vec::new();
    if identity.capabilities.webhooks {
        list.push("webhooks");
    }
    if identity.capabilities.code_insights {
        list.push("codeInsights");
    }
    list
}

/// Machines' JSON: an array with one object per configuration.
pub fn render_json(results: &[CheckResult]) -> Value {
    Value::Array(
        results
            .iter()
            .map(|r| {
                json!({
                    "name": r.id.as_ref().map_or_else(|| r.url.clone(), |id| id.name.clone()),
                    "kind": r.id.as_ref().map(|id| id.kind),
                    "namespace": r.id.as_ref().and_then(|id| id.namespace.clone()),
                    "source": r.source,
                    "url": r.url,
                    "ok": r.ok(),
                    "reason": r.reason,
                    "message": r.message,
                    "advice": r.advice,
                    "server": r.identity.as_ref().map(|i| json!({
                        "version": i.version_text,
                        "buildNumber": i.build_number,
                        "displayName": i.display_name,
                    })).or_else(|| r.sonarqube.as_ref().map(|i| json!({
                        "version": i.version.to_string(),
                        "edition": i.edition.as_str(),
                        "displayName": "SonarQube",
                    }))),
                    "authenticatedAs": r.identity.as_ref().and_then(|i| i.username.clone())
                        .or_else(|| r.sonarqube.as_ref().and_then(|i| i.user.login.clone())),
                    "capabilities": r.identity.as_ref()
                        .map(|i| capabilities(i).into_iter().map(str::to_owned).collect::<Vec<_>>())
                        .or_else(|| r.sonarqube.as_ref().map(crate::plan::sonarqube::connection::capability_names))
                        .unwrap_or_default(),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of each variant of the client's error. The match has no wildcard arm, so a new
    /// variant does not compile until it is added here too.
    fn every_error() -> Vec<Error> {
        let errors = vec![
            Error::ProjectNotFound { project: "PAY".into() },
            Error::RepositoryNotFound { project: "PAY".into(), slug: "api".into() },
            Error::NotFound { what: "webhook 7".into() },
            Error::BadCredentials { reason: "wrong username or password".into() },
            Error::PermissionDenied { action: "list users".into() },
            Error::CaptchaRequired,
            Error::BasicAuthDisabled,
            Error::RateLimited { retry_after: Duration::from_secs(3) },
            Error::InvalidRequest { field: Some("url".into()) },
            Error::Conflict { exception: Some("DuplicateWebhookException".into()) },
            Error::Server { status: 503 },
            Error::NotRunning { state: "STARTING".into() },
            Error::Transport { message: "connection refused".into(), timeout: false },
            Error::UnsupportedServer { reason: "no Bitbucket answers at this URL (/status is not Bitbucket's)".into() },
            Error::UnexpectedResponse { status: 200, endpoint: "GET /status".into(), reason: "not JSON".into() },
            Error::ResponseTooLarge {
                endpoint: "GET /rest/api/1.0/projects/{key}/repos".into(),
                bound: "more than 50000 items in one list".into(),
                advice: "ask Bitbucket's administrators",
            },
            Error::Configuration("the CA bundle is not valid PEM".into()),
            Error::InvalidArgument {
                field: "buildParentKeys",
                problem: "holds 0 build keys; use between 1 and 100".into(),
            },
        ];
        let variant = |error: &Error| match error {
            Error::ProjectNotFound { .. } => 0,
            Error::RepositoryNotFound { .. } => 1,
            Error::NotFound { .. } => 2,
            Error::BadCredentials { .. } => 3,
            Error::PermissionDenied { .. } => 4,
            Error::CaptchaRequired => 5,
            Error::BasicAuthDisabled => 6,
            Error::RateLimited { .. } => 7,
            Error::InvalidRequest { .. } => 8,
            Error::Conflict { .. } => 9,
            Error::Server { .. } => 10,
            Error::NotRunning { .. } => 11,
            Error::Transport { .. } => 12,
            Error::UnsupportedServer { .. } => 13,
            Error::UnexpectedResponse { .. } => 14,
            Error::Configuration(_) => 15,
            Error::ResponseTooLarge { .. } => 16,
            Error::InvalidArgument { .. } => 17,
        };
        let mut seen: Vec<usize> = errors.iter().map(variant).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..18).collect::<Vec<_>>(), "one error of each variant");
        errors
    }

    #[test]
    fn check_gives_the_verdict_of_the_conditions_for_every_error() {
        use crate::{
            api::conditions::READY,
            plan::status::{Phase, conditions},
        };
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap_or_default(),
        );
        for error in every_error() {
            let check = CheckResult::from_error(None, None, "https://bitbucket.example.com".into(), &error);
            let outcome = Outcome::from_error(&error);
            let written = conditions(&[], &outcome, Some(1), &now);
            let ready = written.iter().find(|c| c.type_ == READY).expect("a Ready condition");
            assert_eq!(ready.status, "False", "{error:?}");
            assert_eq!((check.reason, check.message.as_str()), (ready.reason.as_str(), ready.message.as_str()));
            // The condition that is True, Reconciling or Stalled, says the same.
            let on = written.iter().find(|c| c.status == "True").expect("a True condition");
            assert_eq!((on.reason.as_str(), on.message.as_str()), (check.reason, check.message.as_str()));
            assert_eq!(on.type_, if outcome.phase == Phase::Reconciling { "Reconciling" } else { "Stalled" });
            assert!(!check.ok(), "{error:?}");
            // Every failed check says what to do, in its message or in its advice.
            let said = format!("{} {}", check.message, check.advice.as_deref().unwrap_or_default());
            assert!(
                ["check", "update", "grant", "use", "wait", "point", "fix", "try", "admin"]
                    .iter()
                    .any(|verb| said.contains(verb)),
                "{said}"
            );
        }
    }

    #[test]
    fn a_server_that_is_not_bitbucket_gets_one_verdict_and_no_second_advice() {
        let error = Error::UnsupportedServer { reason: "the server has no /rest/api/1.0/users".into() };
        let check = CheckResult::from_error(None, None, String::new(), &error);
        assert_eq!(check.reason, reasons::UNSUPPORTED_SERVER);
        assert!(check.message.ends_with(USE_A_SUPPORTED_SERVER), "{}", check.message);
        assert_eq!(check.advice, None);
        // A refused request during the check is the conditions' Rejected, and check adds the advice.
        let refused = CheckResult::from_error(None, None, String::new(), &Error::InvalidRequest { field: None });
        assert_eq!(refused.reason, reasons::REJECTED);
        assert_eq!(refused.advice.as_deref(), Some(USE_A_SUPPORTED_SERVER));
    }

    #[test]
    fn results_render_as_text_and_json() {
        let ok = CheckResult {
            id: Some(ResourceId { kind: "BitbucketConfiguration", namespace: Some("team".into()), name: "bb".into() }),
            source: Some("team.yaml (document 2)".into()),
            url: "https://bitbucket.example.com".into(),
            identity: Some(ServerIdentity {
                version: "9.4.22".parse().expect("a version"),
                version_text: "9.4.22".into(),
                build_number: Some("9004022".into()),
                display_name: Some("Bitbucket".into()),
                username: Some("svc".into()),
                capabilities: crate::bitbucket::Capabilities { webhooks: true, code_insights: true },
            }),
            sonarqube: None,
            reason: reasons::CONNECTED,
            message: "connected as svc to Bitbucket 9.4.22".into(),
            advice: None,
        };
        let failed = CheckResult::from_error(
            None,
            None,
            "http://127.0.0.1:1".into(),
            &Error::Transport { message: "connection refused".into(), timeout: false },
        );
        let results = [ok, failed];
        let text = render_text(&results);
        assert!(text.contains("BitbucketConfiguration team/bb\n    from:         team.yaml (document 2)"), "{text}");
        assert!(text.contains("server:       Bitbucket 9.4.22 (build 9004022)"), "{text}");
        assert!(text.contains("capabilities: webhooks, codeInsights"), "{text}");
        assert!(text.contains("OK: connected as svc"), "{text}");
        assert!(
            text.contains(
                "http://127.0.0.1:1\n    url:          http://127.0.0.1:1\n    FAILED (Unreachable): cannot reach \
                 Bitbucket: connection refused\n    what to do:   check the URL"
            ),
            "{text}"
        );
        let json = render_json(&results);
        assert_eq!(json[0]["name"], "bb");
        assert_eq!(json[0]["namespace"], "team");
        assert_eq!(json[0]["server"]["buildNumber"], "9004022");
        assert_eq!(json[0]["capabilities"], json!(["webhooks", "codeInsights"]));
        assert_eq!(json[1]["ok"], false);
        assert_eq!(json[1]["message"], "cannot reach Bitbucket: connection refused");
        assert!(json[1]["advice"].as_str().is_some_and(|a| a.starts_with("check the URL")), "{json}");
        assert_eq!(json[0]["advice"], Value::Null);
        assert_eq!(json[1]["server"], Value::Null);
        assert_eq!(exit_code(&results), 1);
        assert_eq!(exit_code(&results[..1]), 0);
    }
}
