//! `maskomaly demo`: synthetic scenes and a stand-in model, run and evaluated end to end; and the
//! hidden `tiny-model` command that writes the tiny test model.

use crate::cli::RunArgs;
use crate::diagnostic::{ExitCode, Failure};
use crate::run_error::RunError;
use std::path::Path;

pub fn demo(dir: &Path, quiet: bool) -> Result<ExitCode, Failure> {
    let (job, job_path) = crate::demo::prepare(dir).map_err(RunError::from)?;
    let code = super::run::run(
        RunArgs {
            job: Some(job_path.clone()),
            input: None,
            output: None,
            checkpoint: None,
            device: None,
            limit: None,
            overwrite: true,
            json: false,
            profile: false,
            shard: Default::default(),
        },
        quiet,
    )?;
    if code != ExitCode::Ok {
        return Ok(code);
    }
    let eval_dir = job.output.root.join("eval");
    let opts = crate::eval::EvalOptions {
        progress: !quiet,
        print_summary: !quiet,
        ..Default::default()
    };
    crate::eval::run_eval(&job, &job.output.root, &eval_dir, &opts).map_err(RunError::from)?;
    if !quiet {
        println!(
            "demo job: {}\nscore maps and heatmaps: {}\nopen the report: {}",
            job_path.display(),
            job.output.root.display(),
            eval_dir.join("report.html").display()
        );
    }
    Ok(code)
}

pub fn tiny_model(out: &Path) -> Result<ExitCode, Failure> {
    crate::demo::write_tiny_model(out).map_err(|e| RunError::Write {
        path: out.to_path_buf(),
        source: e.into(),
    })?;
    Ok(ExitCode::Ok)
}
