//! The `bitbucket-operator` command line.

use std::{path::PathBuf, process::ExitCode};

use bitbucket_operator::{
    api,
    cli::{
        self,
        check::{CheckRequest, CredentialFiles},
        manifests::{LoadOptions, load},
        plan::{Mode, Progress},
    },
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
    /// Run the connection check (server, version, identity, permission to read, capabilities) of
    /// the configurations in manifests, or of a URL and a credential. Exit code 0 when every
    /// check passes, 1 otherwise.
    Check {
        /// YAML files or folders with the configurations and their Secrets (several allowed).
        #[arg(short = 'f', long = "filename", value_name = "PATH")]
        files: Vec<PathBuf>,
        /// Only the configuration of this name.
        #[arg(long, requires = "files")]
        name: Option<String>,
        /// The namespace of resources that name none; also checks only the namespaced
        /// configurations of this namespace (default: default).
        #[arg(short = 'n', long, requires = "files")]
        namespace: Option<String>,
        /// The operator's namespace, where the Secrets of ClusterBitbucketConfigurations live
        /// (default: bitbucket-operator).
        #[arg(long, requires = "files")]
        operator_namespace: Option<String>,
        /// The Bitbucket to check: alone (with --token-file or --username and --password-file),
        /// or with -f to send every configuration there instead (for example a simulator).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// A file holding the HTTP access token (with --url).
        #[arg(long, value_name = "FILE", requires = "url", conflicts_with_all = ["files", "username"])]
        token_file: Option<PathBuf>,
        /// The user name for basic authentication (with --url and --password-file).
        #[arg(long, requires_all = ["url", "password_file"], conflicts_with = "files")]
        username: Option<String>,
        /// A file holding the password (with --url and --username).
        #[arg(long, value_name = "FILE", requires = "username")]
        password_file: Option<PathBuf>,
        /// A PEM file with the CA that signed the server's certificate.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// Do not verify the server's certificate (test instances only).
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
        /// Where to listen (port 0: any free port; the banner shows the URL).
        #[arg(long, value_name = "ADDR", default_value = cli::simulator::DEFAULT_LISTEN)]
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
    // Usage errors exit 1 like every other error: 2 means "changes pending" for plan.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
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
            let credentials = match (token_file, username, password_file) {
                (Some(file), _, _) => Some(CredentialFiles::Token(file)),
                (None, Some(username), Some(password_file)) => Some(CredentialFiles::Basic { username, password_file }),
                _ => None,
            };
            let request = CheckRequest {
                files,
                name,
                namespace,
                operator_namespace,
                url,
                credentials,
                ca_file,
                insecure_skip_verify,
            };
            return exit(runtime().and_then(|rt| rt.block_on(check(request, output))));
        }
        Command::Simulator { seed, listen, allow_remote } => {
            runtime().and_then(|rt| rt.block_on(cli::simulator::run(seed.as_deref(), listen, allow_remote)))
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

async fn check(request: CheckRequest, output: Output) -> Result<u8, String> {
    let results = cli::check::run(&request).await?;
    match output {
        Output::Text => print!("{}", cli::check::render_text(&results)),
        Output::Json => println!("{}", cli::check::render_json(&results)),
    }
    Ok(cli::check::exit_code(&results))
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
