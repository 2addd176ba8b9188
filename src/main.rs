//! The `bitbucket-operator` command line.

use std::{path::PathBuf, process::ExitCode};

use bitbucket_operator::{
    api,
    bitbucket::{ClientConfig, Credentials, Secret},
    cli::{
        self,
        manifests::{LoadOptions, load},
        plan::{Mode, Progress},
    },
    plan::status::Outcome,
};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bitbucket-operator",
    version,
    about = "Manages Bitbucket Data Center integrations from Kubernetes resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Text,
    Json,
}

/// Where the manifests come from and how to read them (plan, apply, check).
#[derive(clap::Args)]
struct Files {
    /// YAML files or folders with the resources and the Secrets they name (several allowed).
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    /// The namespace of resources that name none.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// The operator's namespace, where the Secrets of ClusterBitbucketConfigurations live.
    #[arg(long, default_value = "bitbucket-operator")]
    operator_namespace: String,
    /// Send every configuration to this URL instead (for example a simulator's).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Show what would change in Bitbucket for these manifests. Exit code 0: nothing to change,
    /// 2: changes pending, 1: an error.
    Plan {
        #[command(flatten)]
        files: Files,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Make Bitbucket match these manifests once, as the operator would, and print each
    /// resource's resulting status. Exit code 0 when everything converged, 1 otherwise.
    Apply {
        #[command(flatten)]
        files: Files,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Run the connection check of the configurations in the manifests, or of a URL and token.
    Check {
        /// YAML files or folders with configurations and their Secrets.
        #[arg(short = 'f', long = "filename", value_name = "PATH", conflicts_with = "url")]
        files: Vec<PathBuf>,
        /// Only the configuration of this name.
        #[arg(long)]
        name: Option<String>,
        /// The namespace of resources that name none.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// The operator's namespace, where the Secrets of ClusterBitbucketConfigurations live.
        #[arg(long, default_value = "bitbucket-operator")]
        operator_namespace: String,
        /// Check this Bitbucket URL instead of manifests.
        #[arg(long, value_name = "URL", requires = "credential")]
        url: Option<String>,
        /// A file holding the HTTP access token (with --url).
        #[arg(long, value_name = "FILE", group = "credential")]
        token_file: Option<PathBuf>,
        /// The user name for basic authentication (with --url and --password-file).
        #[arg(long, requires = "password_file")]
        username: Option<String>,
        /// A file holding the password (with --url and --username).
        #[arg(long, value_name = "FILE", group = "credential", requires = "username")]
        password_file: Option<PathBuf>,
        /// A PEM file with the CA that signed the server's certificate (with --url).
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// Do not verify the server's certificate (with --url).
        #[arg(long)]
        insecure_skip_verify: bool,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Run the Bitbucket simulator, to try the operator and the examples without a Bitbucket.
    Simulator {
        /// The seed: users, projects, repositories (default: examples/simulator-seed.yaml).
        #[arg(long, value_name = "FILE")]
        seed: Option<PathBuf>,
        /// Where to listen.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7990")]
        listen: std::net::SocketAddr,
        /// Allow a non-loopback address (the simulator has no real security).
        #[arg(long)]
        allow_remote: bool,
    },
    /// Try the operator in one command: the simulator, the examples, plan, apply, drift, repair.
    Demo,
    /// Run the controllers against the cluster (in-cluster service account or kubeconfig).
    Run {
        /// The operator's namespace, where the Secrets of ClusterBitbucketConfigurations live.
        #[arg(long, env = "POD_NAMESPACE", default_value = "bitbucket-operator")]
        namespace: String,
        /// The instance name reported on Events.
        #[arg(long, env = "POD_NAME")]
        instance: Option<String>,
        /// Resync every configuration's dependents at least this often (such as 2m), whatever
        /// their resyncInterval says.
        #[arg(long, value_name = "DURATION", value_parser = cli::run::parse_duration)]
        max_resync_interval: Option<std::time::Duration>,
        /// Log JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
        /// Watch only these namespaces (repeat or separate with commas); all when absent.
        #[arg(long = "watch-namespace", value_name = "NS", value_delimiter = ',')]
        watch_namespaces: Vec<String>,
        /// Watch only resources with these labels (such as shard=a), so that several operators
        /// can split a large cluster.
        #[arg(long, value_name = "SELECTOR")]
        label_selector: Option<String>,
        /// Bitbucket hosts the operator may send credentials to (`host` or `*.domain`; repeat or
        /// separate with commas); any host when absent.
        #[arg(long = "allowed-host", value_name = "HOST", value_delimiter = ',')]
        allowed_hosts: Vec<String>,
        /// Where /metrics, /healthz and /readyz are served.
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
        metrics_addr: std::net::SocketAddr,
        /// Take part in leader election on a Lease (needed with more than one replica).
        #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
        leader_elect: bool,
    },
    /// Print the CustomResourceDefinitions as YAML (pipe into `kubectl apply -f -`).
    Crds {
        /// Write one file per CRD into this folder instead of printing them.
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan { files, output } => {
            return exit(runtime().and_then(|rt| rt.block_on(plan(files, output, Mode::Plan))));
        }
        Command::Apply { files, output } => {
            return exit(runtime().and_then(|rt| rt.block_on(plan(files, output, Mode::Apply))));
        }
        Command::Check {
            files,
            name,
            namespace,
            operator_namespace,
            url,
            token_file,
            username,
            password_file,
            ca_file,
            insecure_skip_verify,
            output,
        } => {
            let request = CheckRequest {
                files,
                name,
                options: LoadOptions { default_namespace: namespace, operator_namespace },
                url,
                token_file,
                username,
                password_file,
                ca_file,
                insecure_skip_verify,
            };
            return exit(runtime().and_then(|rt| rt.block_on(check(request, output))));
        }
        Command::Simulator { seed, listen, allow_remote } => {
            runtime().and_then(|rt| rt.block_on(simulator(seed, listen, allow_remote)))
        }
        Command::Demo => {
            return exit(runtime().and_then(|rt| {
                let converged = rt.block_on(cli::demo::demo(&mut std::io::stdout()))?;
                Ok(if converged { 0 } else { 1 })
            }));
        }
        Command::Crds { output_dir } => crds(output_dir),
        Command::Run {
            namespace,
            instance,
            max_resync_interval,
            log_json,
            watch_namespaces,
            label_selector,
            allowed_hosts,
            metrics_addr,
            leader_elect,
        } => {
            bitbucket_operator::telemetry::init_logging(log_json);
            runtime().and_then(|rt| {
                rt.block_on(cli::run::run(cli::run::RunSettings {
                    operator_namespace: namespace,
                    instance,
                    max_resync: max_resync_interval,
                    namespaces: watch_namespaces,
                    label_selector,
                    allowed_hosts,
                    metrics_addr,
                    leader_election: leader_elect,
                }))
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Ends with an exit code, or with 1 and the error on standard error.
fn exit(result: Result<u8, String>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn load_files(files: &Files) -> Result<cli::manifests::Manifests, String> {
    let options = LoadOptions {
        default_namespace: files.namespace.clone(),
        operator_namespace: files.operator_namespace.clone(),
    };
    let mut manifests = load(&files.files, &options).map_err(|e| format!("the manifests are not valid:\n{e}"))?;
    if manifests.is_empty() {
        return Err("the files hold no BitbucketConfiguration, ProjectBinding or RequiredReport".into());
    }
    if let Some(url) = &files.url {
        manifests.point_at(url);
    }
    Ok(manifests)
}

async fn plan(files: Files, output: Output, mode: Mode) -> Result<u8, String> {
    let manifests = load_files(&files)?;
    let targets = manifests.targets();
    let total = targets.configurations.len() + targets.bindings.len() + targets.reports.len();
    let mut progress = Progress::new(total, output == Output::Json || mode == Mode::Plan);
    let report = cli::plan::run(&targets, mode, &mut progress).await;
    match output {
        Output::Text => print!("{}", report.render_text()),
        Output::Json => println!("{}", report.render_json()),
    }
    Ok(report.exit_code())
}

struct CheckRequest {
    files: Vec<PathBuf>,
    name: Option<String>,
    options: LoadOptions,
    url: Option<String>,
    token_file: Option<PathBuf>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    insecure_skip_verify: bool,
}

fn read_secret_file(path: &std::path::Path, what: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read the {what}: {e}", path.display()))?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() || value.contains('\n') {
        return Err(format!("{}: the {what} file must hold exactly one line", path.display()));
    }
    Ok(value.to_owned())
}

async fn check(request: CheckRequest, output: Output) -> Result<u8, String> {
    let mut results = Vec::new();
    if let Some(url) = &request.url {
        let credentials = match (&request.token_file, &request.username, &request.password_file) {
            (Some(file), _, _) => Credentials::Token(Secret::new(read_secret_file(file, "token")?)),
            (None, Some(username), Some(file)) => Credentials::Basic {
                username: username.clone(),
                password: Secret::new(read_secret_file(file, "password")?),
            },
            _ => return Err("--url needs --token-file, or --username with --password-file".into()),
        };
        let mut config = ClientConfig::new(url.trim_end_matches('/'), credentials);
        config.connect_timeout = std::time::Duration::from_secs(5);
        config.insecure_skip_verify = request.insecure_skip_verify;
        if let Some(file) = &request.ca_file {
            config.ca_pem =
                Some(std::fs::read(file).map_err(|e| format!("{}: cannot read the CA: {e}", file.display()))?);
        }
        results.push(cli::check::check_named(url.clone(), url.clone(), Ok(config)).await);
    } else {
        if request.files.is_empty() {
            return Err("give manifests with -f PATH, or a server with --url and --token-file".into());
        }
        let files = Files {
            files: request.files,
            namespace: request.options.default_namespace,
            operator_namespace: request.options.operator_namespace,
            url: None,
        };
        let manifests = load_files(&files)?;
        let targets = manifests.targets();
        let chosen: Vec<_> = targets
            .configurations
            .into_iter()
            .filter(|c| request.name.as_deref().is_none_or(|name| c.id.name == name))
            .collect();
        if chosen.is_empty() {
            return Err(match request.name {
                Some(name) => format!("no configuration named {name} in the manifests"),
                None => "the manifests hold no BitbucketConfiguration or ClusterBitbucketConfiguration".into(),
            });
        }
        for target in chosen {
            let settings = target
                .settings
                .map(|mut s| {
                    s.connect_timeout = s.connect_timeout.min(std::time::Duration::from_secs(5));
                    s
                })
                .map_err(|e| Outcome::stalled(e.reason(), e.to_string()));
            results.push(cli::check::check(&target.id, settings).await);
        }
    }
    match output {
        Output::Text => print!("{}", cli::check::render_text(&results)),
        Output::Json => println!("{}", cli::check::render_json(&results)),
    }
    Ok(if results.iter().all(cli::check::CheckResult::ok) { 0 } else { 1 })
}

async fn simulator(seed: Option<PathBuf>, listen: std::net::SocketAddr, allow_remote: bool) -> Result<(), String> {
    let seed = cli::simulator::seed(seed.as_deref())?;
    let running = cli::simulator::start(seed.clone(), listen, allow_remote).await?;
    print!("{}", cli::simulator::banner(&running, &seed));
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    cli::run::termination().await;
    running.shutdown().await;
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn crds(output_dir: Option<PathBuf>) -> Result<(), String> {
    for crd in api::crds() {
        let yaml = api::crd_yaml(&crd).map_err(|e| format!("cannot render the CRD as YAML: {e}"))?;
        match &output_dir {
            Some(dir) => {
                let path = dir.join(api::crd_file_name(&crd));
                std::fs::write(&path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            None => print!("{yaml}"),
        }
    }
    Ok(())
}
