//! `maskomaly verify`: re-hash every output a manifest lists.

use crate::exit::{ExitCode, Failure};

pub fn verify(args: &crate::verify::VerifyArgs) -> Result<ExitCode, Failure> {
    match crate::verify::verify(args) {
        Ok(r) => {
            eprint!("{}", r.render());
            Ok(r.exit_code())
        }
        Err(e) => Err(Failure::coded(e.exit_code(), e)),
    }
}
