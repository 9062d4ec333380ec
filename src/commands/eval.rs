//! `maskomaly eval`: metrics, curves and reports over written predictions; several scores are
//! each evaluated and compared.

use crate::cli::{EvalArgs, ModeArg};
use crate::diagnostic::{ExitCode, Failure};
use crate::eval::{EvalOptions, Mode};

pub fn eval(args: EvalArgs, quiet: bool) -> Result<ExitCode, Failure> {
    let job = super::load_job(Some(&args.job))?;
    let predictions = args.predictions.unwrap_or_else(|| job.output.root.clone());
    let output = args.output.unwrap_or_else(|| predictions.join("eval"));
    let opts = EvalOptions {
        mode: args.mode.map(|m| match m {
            ModeArg::Total => Mode::Total,
            ModeArg::Image => Mode::Image,
        }),
        smiyc: args.smiyc,
        overlays: !args.no_overlays,
        report: !args.no_report,
        progress: !quiet,
        ..Default::default()
    };
    // Its errors say for themselves what they are (missing input, unwritable output, bad data).
    crate::eval::compare::run_compare(&job, &predictions, &output, &opts, args.score)?;
    if args.no_report {
        log::info!("reports written to {}", output.display());
    } else {
        log::info!(
            "reports written to {}; open {}",
            output.display(),
            output.join("report.html").display()
        );
    }
    Ok(ExitCode::Ok)
}
