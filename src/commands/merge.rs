//! `maskomaly merge`: combine the shard manifests of an array job.

use crate::diagnostic::{ExitCode, Failure};

pub fn merge(args: &crate::cli::MergeArgs) -> Result<ExitCode, Failure> {
    let command_line: Vec<String> = std::env::args().collect();
    match crate::provenance::merge::merge(&args.output, args.input.as_deref(), &command_line) {
        Ok(r) => {
            eprint!("{}", r.render());
            Ok(r.exit_code())
        }
        Err(e) => Err(e.into()),
    }
}
