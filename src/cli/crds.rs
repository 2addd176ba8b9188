//! `crds`: the CustomResourceDefinitions, generated from the Rust types, as YAML on standard
//! output or as one file per CRD.

use std::path::PathBuf;

use super::Error;
use crate::api;

/// The arguments of `crds`.
#[derive(clap::Args)]
pub struct CrdsArgs {
    /// Write one file per CRD into this folder instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
}

/// Prints the CRDs, or writes them into `--output-dir`.
pub fn execute(args: &CrdsArgs) -> Result<u8, Error> {
    for crd in api::crds() {
        let yaml = api::crd_yaml(&crd).map_err(Error::Crd)?;
        match &args.output_dir {
            Some(dir) => {
                let path = dir.join(api::crd_file_name(&crd));
                std::fs::write(&path, yaml).map_err(|source| Error::Write { path, source })?;
            }
            None => print!("{yaml}"),
        }
    }
    Ok(0)
}
