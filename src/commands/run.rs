//! `maskomaly run`: score every input image of a job and write the maps, the manifest and the
//! RO-Crate metadata.

use super::{job_with, Overrides};
use crate::cli::RunArgs;
use crate::diagnostic::{ExitCode, Failure};
use crate::pipeline::{self, RunOptions};
use crate::run_error::RunError;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

pub fn run(args: RunArgs, quiet: bool) -> Result<ExitCode, Failure> {
    let job = job_with(args.job.as_deref(), &Overrides::from_run(&args))?;
    let shard = match crate::provenance::shard::from_env(
        args.shard.shard.as_deref(),
        args.shard.shards.as_deref(),
    ) {
        Ok(r) => {
            // Said only when sharding, so that an ordinary run starts quietly.
            if r.shard.is_some() {
                log::info!("{}", r.reason);
            } else {
                log::debug!("{}", r.reason);
            }
            r.shard
        }
        Err(e) => return Err(e.into()),
    };
    crate::model::set_profile(args.profile);
    let stop = Arc::new(AtomicUsize::new(0));
    install_signal_handlers(&stop).map_err(RunError::Signals)?;
    let opts = RunOptions {
        overwrite: args.overwrite,
        limit: args.limit,
        command_line: std::env::args().collect(),
        quiet,
        shard,
    };
    let summary = pipeline::run(&job, &opts, stop)?;
    // Shard runs get their crate from `maskomaly merge`.
    if shard.is_none() {
        let crate_written = crate::provenance::stream::ManifestReader::open(&summary.manifest)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                crate::provenance::rocrate::write_from(&job.output.root, &m)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = crate_written {
            log::warn!("no RO-Crate metadata: {e}");
        }
    }
    if !quiet {
        eprint!("{}", summary.table(&job.output.root));
    }
    if let Some(sig) = summary.signal {
        log::warn!(
            "stopped by signal {sig}; finished outputs are kept, rerun the same command to resume"
        );
    }
    if args.json {
        println!("{}", summary.to_json(job.runtime.queue_depth));
    }
    Ok(summary.exit_code())
}

/// Installs SIGINT/SIGTERM handlers that set `flag` to the signal number; a second signal of the
/// same kind ends the process at once.
pub fn install_signal_handlers(flag: &Arc<AtomicUsize>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for (sig, code) in [(SIGINT, 130), (SIGTERM, 143)] {
        let seen = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register_conditional_shutdown(sig, code, Arc::clone(&seen))?;
        signal_hook::flag::register(sig, seen)?;
        signal_hook::flag::register_usize(sig, Arc::clone(flag), sig as usize)?;
    }
    Ok(())
}
