//! Driver for `maskomaly::eval::run_eval` until the `eval` subcommand is wired into the CLI:
//!
//!     cargo run --example eval -- --job job.yaml [--predictions DIR] [--output DIR] [--mode image] [--smiyc]
//!
//! Predictions default to the job's `output.root`, the reports to `<predictions>/eval`.

use anyhow::Context;
use clap::Parser;
use maskomaly::eval::{run_eval, EvalOptions, Mode};
use maskomaly::job::Job;
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    job: PathBuf,
    #[arg(long)]
    predictions: Option<PathBuf>,
    #[arg(long)]
    output: Option<PathBuf>,
    /// `total` or `image`; default from the dataset (image for street_hazards).
    #[arg(long, value_parser = parse_mode)]
    mode: Option<Mode>,
    /// Also compute the SegmentMeIfYouCan server's binned metrics.
    #[arg(long)]
    smiyc: bool,
    /// Skip the per-frame overlay images.
    #[arg(long)]
    no_overlays: bool,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "total" => Ok(Mode::Total),
        "image" => Ok(Mode::Image),
        other => Err(format!("unknown mode `{other}` (total or image)")),
    }
}

fn main() -> anyhow::Result<()> {
    env_logger::init();
    let args = Args::parse();
    let mut job = Job::load(&args.job)?;
    maskomaly::eval::discover::resolve_anomaly_queries(&mut job, &args.job)?;
    let predictions = args.predictions.unwrap_or_else(|| job.output.root.clone());
    let output = args.output.unwrap_or_else(|| predictions.join("eval"));
    let opts = EvalOptions {
        mode: args.mode,
        smiyc: args.smiyc,
        overlays: !args.no_overlays,
        ..Default::default()
    };
    run_eval(&job, &predictions, &output, &opts).with_context(|| {
        format!(
            "evaluating {} against {}",
            predictions.display(),
            job.dataset.root.display()
        )
    })?;
    Ok(())
}
