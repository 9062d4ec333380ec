//! `maskomaly merge`: combine the shard manifests of an array job.

use crate::diagnostic::{ExitCode, Failure};

pub fn merge(args: &crate::cli::MergeArgs) -> Result<ExitCode, Failure> {
    match crate::provenance::merge::merge(args, &std::env::args().collect::<Vec<_>>()) {
        Ok(r) => {
            eprint!("{}", r.render());
            Ok(r.exit_code())
        }
        Err(e) => Err(e.into()),
    }
}
