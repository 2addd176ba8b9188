//! The command line's work, behind the thin `main.rs`: the arguments of each command live in its
//! own file with the code that runs it; this module joins them into [`Cli`] and dispatches.

pub mod check;
pub mod crds;
pub mod demo;
mod error;
pub mod inventory;
pub mod manifests;
pub mod plan;
pub mod run;
pub mod simulator;

use clap::{Parser, Subcommand};

pub use error::Error;

/// The `bitbucket-operator` command line.
#[derive(Parser)]
#[command(
    name = "bitbucket-operator",
    version,
    about = "Manages Bitbucket Data Center integrations from Kubernetes resources"
)]
pub struct Cli {
    // No `///` here and on `Output`'s values: clap would show it in `--help`.
    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed: text for people, JSON for machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Show what would change in Bitbucket and SonarQube for these manifests. Exit code 0:
    /// nothing to change, 2: changes pending, 1: an error.
    Plan(plan::PlanArgs),
    /// Make Bitbucket and SonarQube match these manifests once, as the operator would, and print
    /// each resource's resulting status. Exit code 0 when everything converged, 1 otherwise.
    Apply(plan::PlanArgs),
    /// List, from Bitbucket, the repositories each ProjectBinding in these manifests selects now,
    /// with the state of its webhooks and required reports on each. Only reads. Exit code 0 when
    /// everything could be read, 1 otherwise.
    Inventory(inventory::InventoryArgs),
    /// Run the connection check (server, version, identity, permission to read, capabilities) of
    /// the configurations in manifests, or of a URL and a credential. Exit code 0 when every
    /// check passes, 1 otherwise.
    Check(check::CheckArgs),
    /// Run the Bitbucket simulator, to try the operator and the examples without a Bitbucket.
    Simulator(simulator::SimulatorArgs),
    /// Try the operator in one command: the simulators (Bitbucket and SonarQube), the examples,
    /// plan, apply, drift, repair.
    Demo,
    /// Run the controllers against the cluster (in-cluster service account or kubeconfig).
    Run(run::RunArgs),
    /// Print the CustomResourceDefinitions as YAML (pipe into `kubectl apply -f -`).
    Crds(crds::CrdsArgs),
}

impl Cli {
    /// Runs the command. `Ok` holds the exit code of a command that did its work (`plan`: 2 when
    /// changes are pending; `check`, `apply`, `demo`: 1 when something failed).
    pub fn execute(self) -> Result<u8, Error> {
        match self.command {
            Command::Plan(args) => block_on(plan::execute(args, plan::Mode::Plan))?,
            Command::Apply(args) => block_on(plan::execute(args, plan::Mode::Apply))?,
            Command::Inventory(args) => block_on(inventory::execute(args))?,
            Command::Check(args) => block_on(check::execute(args))?,
            Command::Simulator(args) => block_on(simulator::execute(args))?,
            Command::Demo => block_on(demo::execute())?,
            Command::Run(args) => run::execute(args),
            Command::Crds(args) => crds::execute(&args),
        }
    }
}

/// Runs a command's future to its end on a multi-threaded runtime.
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(Error::Runtime)?;
    Ok(runtime.block_on(future))
}
