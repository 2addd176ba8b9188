//! The `bitbucket-operator` command line.

use std::{path::PathBuf, process::ExitCode};

use bitbucket_operator::{api, cli};
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

#[derive(Subcommand)]
enum Command {
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
        Command::Crds { output_dir } => crds(output_dir),
        Command::Run { namespace, instance, max_resync_interval, log_json } => {
            cli::run::init_logging(log_json);
            runtime().and_then(|rt| {
                rt.block_on(cli::run::run(cli::run::RunSettings {
                    operator_namespace: namespace,
                    instance,
                    max_resync: max_resync_interval,
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
