//! The run: stages joined by bounded channels under one thread scope.
//!
//! ```text
//! feeder ─work─► decode ×N ─decoded─► infer (owns the model) ─raw─► score ─map─► write (manifest)
//! ```
//! Every channel holds at most `runtime.queue_depth` messages. One decoded 1024×2048 item is about
//! 24 MiB of normalised input plus 6 MiB of RGB, so the default depth of 4 bounds the input side at
//! roughly 0.25 GB per queue. A stage stops when its input closes or the stop flag is set; per-item
//! failures travel downstream as data and end up in the manifest. SIGINT/SIGTERM stop the feeder,
//! the items in flight finish, the manifest is flushed.

pub mod decode;
mod guard;
pub mod infer;
pub mod message;
pub mod score;
mod start;
mod summary;
pub mod write;

use crate::dataset::{self, Item};
use crate::device::{device_name, resolve_device};
use crate::diagnostic::ExitCode;
use crate::job::{Job, Precision};
use crate::model::weights::fetch::resolve_checkpoint;
use crate::output::paths_for;
use crate::provenance::build::{git_commit, libtorch_version};
use crate::provenance::manifest::{
    self, CheckpointInfo, Counts, Manifest, Numerics, Program, RunStatus,
};
use crate::provenance::{self, shard, shard::Shard};
use crate::run_error::RunError;
use crossbeam_channel::bounded;
use guard::OutputGuard;
use message::Work;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tch::Device;
use write::ManifestWriter;

/// Options a run takes besides the job.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Redo items whose outputs are already complete.
    pub overwrite: bool,
    /// Process only the first N items.
    pub limit: Option<usize>,
    /// Recorded in the manifest.
    pub command_line: Vec<String>,
    /// No progress bar.
    pub quiet: bool,
    /// Process only this shard of the (limited) listing; its manifest goes to `manifests/`.
    pub shard: Option<Shard>,
}

/// The timed steps of an item, in the order of `RunSummary::stage_busy_s`.
pub const STAGES: [&str; 6] = ["decode", "upload", "forward", "score", "download", "write"];
/// The channels of `RunSummary::queue_mean`.
pub const QUEUES: [&str; 4] = ["work", "decoded", "inferred", "scored"];

/// What a finished (or stopped) run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub counts: Counts,
    /// Summed per-item busy time of each stage ([`STAGES`]), in seconds.
    pub stage_busy_s: [f64; 6],
    /// Mean number of messages waiting in each channel (work, decoded, inferred, scored) when a
    /// stage took one; the capacity is `runtime.queue_depth`.
    pub queue_mean: [f64; 4],
    /// 2 (SIGINT) or 15 (SIGTERM) if a signal stopped the run.
    pub signal: Option<i32>,
    pub manifest: PathBuf,
    pub seconds: f64,
}

impl RunSummary {
    /// The summary as JSON for scripts (`maskomaly run --json`).
    pub fn to_json(&self, queue_depth: usize) -> serde_json::Value {
        let c = &self.counts;
        let done = c.written + c.failed;
        let per_item = |b: f64| {
            if c.written + c.failed == 0 {
                0.0
            } else {
                b * 1e3 / done as f64
            }
        };
        serde_json::json!({
            "written": c.written,
            "skipped": c.skipped,
            "failed": c.failed,
            "total": c.total,
            "seconds": self.seconds,
            "items_per_s": done as f64 / self.seconds.max(1e-9),
            "stage_mean_ms": STAGES.iter().zip(self.stage_busy_s)
                .map(|(s, b)| (s.to_string(), serde_json::json!(per_item(b))))
                .collect::<serde_json::Map<_, _>>(),
            "queue_mean": QUEUES.iter().zip(self.queue_mean)
                .map(|(q, m)| (q.to_string(), serde_json::json!(m)))
                .collect::<serde_json::Map<_, _>>(),
            "queue_depth": queue_depth,
            "signal": self.signal,
            "manifest": self.manifest,
            "manifest_bytes_written": crate::provenance::stream::bytes_written(),
        })
    }

    pub fn exit_code(&self) -> ExitCode {
        match self.signal {
            Some(2) => ExitCode::Interrupted,
            Some(_) => ExitCode::Terminated,
            None if self.counts.failed > 0 => ExitCode::SomeFailed,
            None => ExitCode::Ok,
        }
    }
}

/// State every stage reads.
pub struct Shared {
    pub job: Job,
    pub input_root: PathBuf,
    /// The model's device: on a GPU the decode workers stop at the 8-bit pixels (pinned) and the
    /// inference stage normalises them there.
    pub device: tch::Device,
    /// Set by SIGINT/SIGTERM (the signal number) or by a fatal error (usize::MAX).
    stop: Arc<AtomicUsize>,
    fatal: Mutex<Option<RunError>>,
    /// Per channel: (sum of observed lengths, observations).
    queue_samples: [(AtomicUsize, AtomicUsize); 4],
}

impl Shared {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) != 0
    }

    /// Records the first fatal error and stops the run.
    pub fn fail(&self, e: RunError) {
        log::error!("{e}");
        let mut f = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(e);
        }
        self.stop.store(usize::MAX, Ordering::SeqCst);
    }

    /// Records how many messages were waiting in channel `i` when a stage took one.
    pub fn sample_queue(&self, i: usize, len: usize) {
        self.queue_samples[i].0.fetch_add(len, Ordering::Relaxed);
        self.queue_samples[i].1.fetch_add(1, Ordering::Relaxed);
    }

    fn queue_means(&self) -> [f64; 4] {
        std::array::from_fn(|i| {
            let (s, n) = (&self.queue_samples[i].0, &self.queue_samples[i].1);
            s.load(Ordering::Relaxed) as f64 / n.load(Ordering::Relaxed).max(1) as f64
        })
    }

    pub fn relative_input(&self, p: &Path) -> PathBuf {
        p.strip_prefix(&self.input_root).unwrap_or(p).to_path_buf()
    }
}

/// Runs `f`, turning a panic into an error message. Panics reachable from input data are bugs to
/// fix where they arise; this is the last line of defence that keeps one item from ending a run.
pub fn guard_item<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!("internal error while processing this item (please report it): {what}")
    })
}

/// Runs a job end to end: list the work, hold the output folder, start the stages (the model
/// first), write the manifest as items finish, summarise. `stop` is the flag the signal handlers
/// set.
pub fn run(job: &Job, opts: &RunOptions, stop: Arc<AtomicUsize>) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let device = resolve_device(job.runtime.device)?;
    let items = list_work(job, opts)?;

    // The lock comes before anything slow, so a second writer is refused at once; everything
    // that can refuse the run (checkpoint, model, contract, indices) comes before any write.
    let out_root = &job.output.root;
    let mut guard = OutputGuard::acquire(out_root, opts.shard.as_ref())?;
    let (model_job, ck_sha) = resolve_checkpoint(job)?;
    let manifest_path = shard::manifest_path(out_root, opts.shard.as_ref());
    let plan = RunPlan {
        job,
        opts,
        device,
        items: &items,
        model_job: &model_job,
        ck_sha: &ck_sha,
        manifest_path: &manifest_path,
    };

    let shared = Shared {
        job: job.clone(),
        input_root: job.dataset.root.clone(),
        device,
        stop,
        fatal: Mutex::new(None),
        queue_samples: Default::default(),
    };
    let progress = crate::progress::count(0, "", "items", !opts.quiet);
    let written = std::thread::scope(|s| run_stages(s, &plan, &shared, &mut guard, &progress));
    progress.finish_and_clear();
    // An error before the first write: the guard leaves the folder as it was.
    let mw = written?;
    summarise(mw, guard, &shared, &manifest_path, started, items.len())
}

/// The items this run covers: the dataset's listing, limited, then this shard's part of it.
/// Reading the listing changes nothing.
fn list_work(job: &Job, opts: &RunOptions) -> Result<Vec<Item>, RunError> {
    let exclude = provenance::outputs::exclude(Some(&job.output.root));
    let mut items = dataset::list_excluding(&job.dataset, &exclude)?;
    if items.is_empty() {
        return Err(RunError::NoInput(format!(
            "no images found under {}",
            job.dataset.root.display()
        )));
    }
    if let Some(n) = opts.limit {
        items.truncate(n);
        items.shrink_to_fit();
    }
    // A shard may be empty (more shards than items): it still records a complete, empty manifest.
    if let Some(s) = &opts.shard {
        let range = shard::range(items.len(), s.index, s.count);
        items.truncate(range.end);
        items.drain(..range.start);
        items.shrink_to_fit();
    }
    Ok(items)
}

/// What a run decided before its stages start.
struct RunPlan<'a> {
    job: &'a Job,
    opts: &'a RunOptions,
    device: Device,
    items: &'a [Item],
    /// The job with the checkpoint path the model is loaded from.
    model_job: &'a Job,
    ck_sha: &'a str,
    manifest_path: &'a Path,
}

/// Starts the model, then (once it is ready) writes the starting manifest and runs the other stages
/// to the end. An error means nothing was written; otherwise the manifest writer comes back, its
/// journal complete, for the final manifest.
fn run_stages<'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    plan: &'scope RunPlan,
    shared: &'scope Shared,
    guard: &mut OutputGuard,
    progress: &indicatif::ProgressBar,
) -> Result<ManifestWriter, RunError> {
    let q = plan.job.runtime.queue_depth;
    let (work_tx, work_rx) = bounded::<Work>(q);
    let (dec_tx, dec_rx) = bounded::<message::ToInfer>(q);
    let (inf_tx, inf_rx) = bounded::<message::ToScore>(q);
    let (sc_tx, sc_rx) = bounded::<message::ToWrite>(q);
    let device = plan.device;
    let model_desc = start::start_model(s, shared, plan.model_job, device, (dec_rx, inf_tx))?;

    // From here on the run writes into the output folder.
    guard.committed = true;
    let (job, items) = (plan.job, plan.items);
    // The outputs are listed as they are looked for, not held.
    crate::output::remove_stale_temps_among(|| {
        items
            .iter()
            .flat_map(|i| paths_for(job, &i.stem).all().cloned().collect::<Vec<_>>())
    });
    crate::output::remove_stale_temps_of([
        plan.manifest_path.to_path_buf(),
        job.output.root.join(provenance::rocrate::FILE_NAME),
        job.output.root.join(guard::WRITE_TEST),
    ]);
    let header = manifest_header(plan, model_desc.clone());
    let manifest_path = plan.manifest_path.to_path_buf();
    let start = provenance::resume::start_manifest(
        &header,
        job,
        plan.manifest_path,
        items,
        !plan.opts.overwrite,
    );
    let (start, started) = match start {
        Ok(s) => (s, true),
        Err(e) => {
            shared.fail(RunError::io("cannot write", &manifest_path, e));
            (Default::default(), false)
        }
    };
    let todo = start.todo;
    let decode_workers = job.decode_workers(todo.len());
    progress.set_length(todo.len() as u64);
    log::info!(
        "model: {model_desc} on {}; {} items ({} to do), {decode_workers} decode workers",
        device_name(device),
        items.len(),
        todo.len()
    );

    let mut mw = ManifestWriter::new(header, manifest_path, start.total, start.skipped, started);
    let channels = ((work_tx, work_rx), dec_tx, (inf_rx, sc_tx));
    let (work, dec_tx, score) = channels;
    if let Err(e) = start::start_stages(s, shared, items, todo, decode_workers, work, dec_tx, score)
    {
        shared.fail(e);
    }
    write::run(shared, sc_rx, &mut mw, progress);
    Ok(mw)
}

/// The manifest as the run starts: what ran, on what, with which settings; no items yet.
fn manifest_header(plan: &RunPlan, model_desc: String) -> Manifest {
    let (job, opts, device) = (plan.job, plan.opts, plan.device);
    Manifest {
        format: manifest::FORMAT.into(),
        run_id: format!("{}-{}", manifest::now_rfc3339(), std::process::id()),
        program: Program {
            name: "maskomaly".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            git_commit: git_commit(),
        },
        command_line: opts.command_line.clone(),
        job: serde_json::to_value(job).unwrap_or_default(),
        libtorch: libtorch_version(),
        device: device_name(device),
        model: model_desc,
        numerics: Numerics {
            precision: job.runtime.precision.to_string(),
            // TF32 on for some products: matmuls and convolutions (tf32), convolutions (pytorch).
            tf32: matches!(job.runtime.precision, Precision::Tf32 | Precision::Pytorch)
                && device != Device::Cpu,
            deterministic: device == Device::Cpu,
        },
        checkpoint: CheckpointInfo {
            path: plan.model_job.checkpoint.path.clone(),
            format: format!("{:?}", job.checkpoint.format).to_lowercase(),
            sha256: plan.ck_sha.to_string(),
        },
        shard: opts.shard,
        started: manifest::now_rfc3339(),
        finished: None,
        status: RunStatus::Running,
        counts: Counts::default(),
        items: vec![],
    }
}

/// Ends a run whose stages have stopped: the final manifest flush with the run's status, then the
/// summary (or the fatal error that stopped it).
fn summarise(
    mut mw: ManifestWriter,
    guard: OutputGuard,
    shared: &Shared,
    manifest_path: &Path,
    started: Instant,
    items: usize,
) -> Result<RunSummary, RunError> {
    let run_counts = mw.run_counts(items);
    let fatal = shared
        .fatal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let signal = match shared.stop.load(Ordering::SeqCst) {
        0 | usize::MAX => None,
        s => Some(s as i32),
    };
    let status = match (&fatal, signal) {
        (Some(_), _) => RunStatus::Failed,
        (None, Some(_)) => RunStatus::Interrupted,
        (None, None) => RunStatus::Complete,
    };
    let flushed = mw.finish(status);
    drop(guard);
    if let Some(e) = fatal {
        return Err(e);
    }
    flushed.map_err(|e| RunError::io("cannot write", manifest_path, e))?;
    let stage_busy_s = mw.busy_ms.map(|b| b / 1e3);
    Ok(RunSummary {
        stage_busy_s,
        queue_mean: shared.queue_means(),
        counts: run_counts,
        signal,
        manifest: manifest_path.to_path_buf(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
