//! `maskomaly verify`: re-hash every output a manifest lists.

use crate::diagnostic::{ExitCode, Failure};

pub fn verify(args: &crate::cli::VerifyArgs) -> Result<ExitCode, Failure> {
    match crate::provenance::verify::verify(&args.request()) {
        Ok(r) => {
            eprint!("{}", r.render());
            Ok(r.exit_code())
        }
        Err(e) => Err(e.into()),
    }
}
