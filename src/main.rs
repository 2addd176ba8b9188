//! The `bitbucket-operator` command line: parses the arguments and runs the command (see
//! `cli`), then turns the result into the exit code.

use std::process::ExitCode;

use bitbucket_operator::cli::Cli;
use clap::Parser;

fn main() -> ExitCode {
    // Usage errors exit 1 like every other error: 2 means "changes pending" for plan.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    match cli.execute() {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
