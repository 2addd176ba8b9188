//! The `bitbucket-operator` command line.

use std::{path::PathBuf, process::ExitCode};

use bitbucket_operator::api;
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
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
