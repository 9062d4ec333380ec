//! `maskomaly checkpoint inspect`: compare a checkpoint's tensors with the model it is meant for.

use crate::cli::{CheckpointCommand, FormatArg};
use crate::diagnostic::{ExitCode, Failure};
use crate::job::CheckpointFormat;
use crate::run_error::RunError;

pub fn checkpoint(command: CheckpointCommand) -> Result<ExitCode, Failure> {
    let CheckpointCommand::Inspect { file, format } = command;
    let format = match format {
        FormatArg::Detectron2 => CheckpointFormat::Detectron2,
        FormatArg::Hf => CheckpointFormat::Hf,
    };
    let report = crate::model::inspect(&file, format).map_err(RunError::from)?;
    println!("{report}");
    // Exit 78 when the file does not load into the model, as `run` would fail on it.
    Ok(if report.is_ok() {
        ExitCode::Ok
    } else {
        ExitCode::Config
    })
}
