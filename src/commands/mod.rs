//! The subcommands, one file each; [`dispatch`] runs the one the command line names. Every command
//! that takes a job reads it with [`load_job`] and applies its flags with [`Overrides::apply`];
//! every command that loads a checkpoint finds, downloads and verifies it with [`checkpoint`]. So
//! `run`, `forward` and `discover-queries` treat a job and its checkpoint alike.

mod check_job;
mod checkpoint;
mod demo;
mod discover_queries;
mod eval;
mod forward;
mod info;
mod merge;
mod run;
mod verify;

pub use discover_queries::discover_queries;
pub use forward::forward_to_file;
pub use run::install_signal_handlers;

use crate::cli::{Cli, Command, DeviceArg, RunArgs};
use crate::diagnostic::{ExitCode, Failure};
use crate::job::{CheckpointFormat, Job};
use crate::model::{self, Backend};
use crate::run_error::RunError;
use std::path::{Path, PathBuf};

/// Runs the command `cli` names; the exit status on success, the failure otherwise.
pub fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Run(args) => run::run(args, quiet),
        Command::Info => Ok(info::info()),
        Command::Demo { dir } => demo::demo(&dir, quiet),
        Command::TinyModel { out } => demo::tiny_model(&out),
        Command::Merge(args) => merge::merge(&args),
        Command::Verify(args) => verify::verify(&args),
        Command::CheckJob { job } => check_job::check_job(&job),
        Command::Forward {
            job,
            image,
            out,
            checkpoint,
            device,
        } => {
            let overrides = Overrides {
                checkpoint,
                device,
                ..Default::default()
            };
            forward::forward(job.as_deref(), &overrides, &image, &out)
        }
        Command::Eval(args) => eval::eval(args, quiet),
        Command::DiscoverQueries(args) => discover_queries::command(args),
        Command::Checkpoint(c) => checkpoint::checkpoint(c),
    }
}

/// Reads a job file (without one: the default job), with the discovered queries of
/// `method.anomaly_queries_file` in place of the listed ones when the job computes Maskomaly (no
/// other score reads them).
pub fn load_job(path: Option<&Path>) -> Result<Job, RunError> {
    let Some(p) = path else {
        return Ok(Job::default());
    };
    let mut job = Job::load(p)?;
    if !job
        .method
        .scores
        .contains(&crate::job::ScoreKind::Maskomaly)
    {
        return Ok(job);
    }
    crate::job::queries::resolve_anomaly_queries(&mut job, p).map_err(|source| {
        RunError::Queries {
            job: p.to_path_buf(),
            source,
        }
    })?;
    Ok(job)
}

/// The flags that override job keys; the one place they are applied.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `dataset.root`.
    pub input: Option<PathBuf>,
    /// `output.root`.
    pub output: Option<PathBuf>,
    /// `checkpoint.path`; the job's `url` and `sha256` describe another file, so both are dropped.
    pub checkpoint: Option<PathBuf>,
    /// `runtime.device`.
    pub device: Option<DeviceArg>,
}

impl Overrides {
    pub fn from_run(args: &RunArgs) -> Overrides {
        Overrides {
            input: args.input.clone(),
            output: args.output.clone(),
            checkpoint: args.checkpoint.clone(),
            device: args.device,
        }
    }

    /// Applies the flags to `job` and validates the result.
    pub fn apply(&self, job: &mut Job) -> Result<(), RunError> {
        if let Some(p) = &self.input {
            job.dataset.root = p.clone();
        }
        if let Some(p) = &self.output {
            job.output.root = p.clone();
        }
        if let Some(p) = &self.checkpoint {
            // A file given on the command line brings its own format where its name implies one.
            if let Some(f) = CheckpointFormat::guess(p) {
                job.checkpoint.format = f;
            }
            job.checkpoint.path = p.clone();
            job.checkpoint.url = None;
            job.checkpoint.sha256 = None;
        }
        if let Some(d) = self.device {
            job.runtime.device = d.into();
        }
        job.validate(None, Path::new("(command line)"))?;
        Ok(())
    }
}

/// [`load_job`] then [`Overrides::apply`].
pub fn job_with(path: Option<&Path>, overrides: &Overrides) -> Result<Job, RunError> {
    let mut job = load_job(path)?;
    overrides.apply(&mut job)?;
    Ok(job)
}

/// Finds the job's checkpoint (downloading the job's URL when the file is missing) and checks its
/// SHA-256: the job pointing at the local file, and the file's SHA-256. The run does the same
/// through the same function, inside the pipeline, after it has locked the output folder.
pub fn checkpoint(job: &Job) -> Result<(Job, String), RunError> {
    Ok(model::weights::fetch::resolve_checkpoint(job)?)
}

/// [`checkpoint`], then the model on `device`.
pub fn load_model(job: &Job, device: tch::Device) -> Result<Box<dyn Backend>, RunError> {
    let (model_job, _) = checkpoint(job)?;
    Ok(model::load(&model_job, device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query file is Maskomaly's: a job without Maskomaly neither reads nor needs it.
    #[test]
    fn the_query_file_is_read_only_for_maskomaly() {
        let d = tempfile::tempdir().unwrap();
        let job = d.path().join("job.yaml");
        let text = "method: {scores: [energy], anomaly_queries_file: absent.yaml}\n";
        std::fs::write(&job, text).unwrap();
        assert!(load_job(Some(&job)).is_ok());
        std::fs::write(&job, text.replace("[energy]", "[energy, maskomaly]")).unwrap();
        assert!(matches!(
            load_job(Some(&job)),
            Err(RunError::Queries { .. })
        ));
    }

    #[test]
    fn a_checkpoint_flag_drops_the_jobs_url_and_checksum() {
        let mut job = Job::default();
        job.checkpoint.sha256 = Some("ab".repeat(32));
        job.checkpoint.url = Some("https://example.org/a.pkl".into());
        let o = Overrides {
            checkpoint: Some("/models/b.safetensors".into()),
            device: Some(DeviceArg::Cpu),
            ..Default::default()
        };
        o.apply(&mut job).unwrap();
        assert_eq!(job.checkpoint.path, Path::new("/models/b.safetensors"));
        assert_eq!(job.checkpoint.sha256, None);
        assert_eq!(job.checkpoint.url, None);
        assert_eq!(job.runtime.device, crate::job::DeviceChoice::Cpu);
        // Without the flag the job's checkpoint stays as written.
        let mut job = Job::default();
        job.checkpoint.sha256 = Some("ab".repeat(32));
        Overrides::default().apply(&mut job).unwrap();
        assert_eq!(job.checkpoint.sha256, Some("ab".repeat(32)));
    }
}
