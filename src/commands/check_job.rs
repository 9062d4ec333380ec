//! `maskomaly check-job`: validate a job file and print it with every default filled in.

use crate::diagnostic::{ExitCode, Failure};
use crate::run_error::RunError;
use std::path::Path;

pub fn check_job(path: &Path) -> Result<ExitCode, Failure> {
    let job = super::load_job(Some(path))?;
    let text = serde_saphyr::to_string(&job).map_err(|e| RunError::Serialise(e.into()))?;
    print!("{text}");
    Ok(ExitCode::Ok)
}
