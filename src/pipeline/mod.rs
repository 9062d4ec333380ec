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
pub mod infer;
pub mod message;
pub mod score;
mod summary;
pub mod write;

use crate::dataset::{self, DatasetError};
use crate::exit::ExitCode;
use crate::job::{CheckpointFormat, DeviceChoice, Job, Precision};
use crate::model::{self, ModelError};
use crate::output::{lock, paths_for};
use crate::provenance;
use crate::provenance::manifest::{
    self, CheckpointInfo, Counts, ItemRecord, ItemStatus, Manifest, Numerics, Program, RunStatus,
};
use crate::scoring;
use crate::shard::{self, Shard};
use crossbeam_channel::bounded;
use message::Work;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tch::Device;
use write::ManifestWriter;

/// A failure that ends the whole run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    NoInput(String),
    #[error("{0}")]
    Data(String),
    #[error("cannot create output folder {path}: {message}")]
    CantCreate { path: PathBuf, message: String },
    #[error("{0}")]
    Io(String),
    #[error("temporary failure, retry later: {0}")]
    Temporary(String),
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl RunError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            RunError::Config(_) => ExitCode::Config,
            RunError::NoInput(_) => ExitCode::NoInput,
            RunError::Data(_) => ExitCode::Data,
            RunError::CantCreate { .. } => ExitCode::CantCreate,
            RunError::Io(_) => ExitCode::Io,
            RunError::Temporary(_) => ExitCode::TempFail,
            RunError::Model(e) => e.exit_code(),
        }
    }

    /// A `hint:` line for people, where one helps.
    pub fn hint(&self) -> Option<String> {
        match self {
            RunError::Model(ModelError::Missing { .. }) => Some(
                "provide the checkpoint: mount it (docker: -v DIR:/models), pass --checkpoint FILE, \
                 or set checkpoint.path in the job file; `make demo` runs with a generated tiny model"
                    .into(),
            ),
            RunError::NoInput(_) => {
                Some("pass --input DIR, set dataset.root in the job, or mount a folder at /input".into())
            }
            _ => None,
        }
    }
}

impl From<DatasetError> for RunError {
    fn from(e: DatasetError) -> Self {
        match e {
            DatasetError::NoRoot(_) => RunError::NoInput(e.to_string()),
            DatasetError::Walk { .. } => RunError::Io(e.to_string()),
            DatasetError::Layout { .. } => RunError::Data(e.to_string()),
        }
    }
}

impl ModelError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ModelError::Forward(_) => ExitCode::Software,
            // A path without a URL to fetch it from: nothing to retry until a person fixes it.
            ModelError::Missing { .. } => ExitCode::NoInput,
            e if e.is_temporary() => ExitCode::TempFail,
            _ => ExitCode::Config,
        }
    }
}

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

/// Resolves `auto` to CUDA when libtorch sees a GPU.
pub fn resolve_device(choice: DeviceChoice) -> Result<Device, RunError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err(RunError::Config(format!(
            "runtime.device is `cuda`, but {}",
            crate::cuda::unavailable_reason()
        ))),
        DeviceChoice::Auto => Ok(if tch::Cuda::is_available() {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
    }
}

pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}"),
    }
}

/// Finds the checkpoint (downloading the job's `checkpoint.url` into the cache when
/// `checkpoint.path` does not exist; never another file's URL), checks the job's SHA-256, and returns the job pointing at the local file together with the
/// file's SHA-256 for the manifest.
pub fn resolve_checkpoint(job: &Job) -> Result<(Job, String), RunError> {
    let ck = &job.checkpoint;
    if ck.format == CheckpointFormat::Random {
        return Ok((job.clone(), format!("random-seed-{}", model::RANDOM_SEED)));
    }
    let path = model::fetch::resolve(&ck.path, ck.effective_url(), None)?;
    let file = if path.is_dir() {
        path.join("model.safetensors")
    } else {
        path.clone()
    };
    let found = crate::output::digest::sha256_file(&file)
        .map_err(|e| RunError::Config(format!("cannot read checkpoint {}: {e}", file.display())))?;
    if let Some(expected) = &ck.sha256 {
        if !expected.eq_ignore_ascii_case(&found) {
            return Err(ModelError::Checksum {
                path: file,
                expected: expected.clone(),
                found,
            }
            .into());
        }
    }
    let mut resolved = job.clone();
    resolved.checkpoint.path = path;
    resolved.checkpoint.sha256 = None; // checked here once; the loader need not hash it again
    Ok((resolved, found))
}

/// The commit this binary was built from, when the build knew it.
pub fn git_commit() -> Option<String> {
    option_env!("MASKOMALY_GIT_COMMIT").map(str::to_string)
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

/// Spawns a named stage thread in `scope`; a failure (e.g. the process limit on threads) is an
/// error, not a panic.
fn spawn_stage<'scope, 'env, F>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    name: &str,
    f: F,
) -> Result<std::thread::ScopedJoinHandle<'scope, ()>, RunError>
where
    F: FnOnce() + Send + 'scope,
{
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn_scoped(s, f)
        .map_err(|e| RunError::Temporary(format!("cannot start the {name} thread: {e}")))
}

/// The target name of the start-up write test (only its temporary name is ever written).
const WRITE_TEST: &str = ".write-test";

/// The output folder held by this run: locked, and created by it if it did not exist. A run that
/// fails before it writes anything removes what it created, leaving the folder as it found it.
struct OutputGuard {
    _locks: Vec<lock::Lock>,
    /// Folders this run created (deepest first), removed again if the run writes nothing.
    created: Vec<PathBuf>,
    committed: bool,
}

impl OutputGuard {
    fn acquire(out_root: &Path, shard: Option<&Shard>) -> Result<OutputGuard, RunError> {
        let mut created = Vec::new();
        let mut p = Some(out_root);
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            created.push(d.to_path_buf());
            p = d.parent();
        }
        let cant = |e: &dyn std::fmt::Display| RunError::CantCreate {
            path: out_root.to_path_buf(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(out_root).map_err(|e| cant(&e))?;
        let mut guard = OutputGuard {
            _locks: Vec::new(),
            created,
            committed: false,
        };
        let manifests = out_root.join(shard::MANIFESTS_DIR);
        if shard.is_some() && !manifests.exists() {
            guard.created.insert(0, manifests);
        }
        guard._locks = lock::lock_output(out_root, shard.map(|s| (s.index, s.count))).map_err(
            |e| match e {
                lock::LockError::Busy { .. } => RunError::Temporary(e.to_string()),
                lock::LockError::Io { .. } => cant(&e),
            },
        )?;
        // Writable? (A temporary name of this process, removed at once.)
        let probe = crate::output::temp_path(&out_root.join(WRITE_TEST));
        std::fs::write(&probe, b"").map_err(|e| cant(&e))?;
        let _ = std::fs::remove_file(&probe);
        Ok(guard)
    }
}

impl Drop for OutputGuard {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Lock files go first (an exclusive lock removes its own); then the empty folders.
        self._locks.clear();
        for d in &self.created {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Runs the network once on a small blank input: the outputs must meet the contract and hold the
/// job's query and class indices. Found here, before anything is written, a mismatch leaves the
/// output folder (and an earlier run's manifest) untouched.
fn probe_model(model: &dyn model::Backend, job: &Job, device: Device) -> Result<(), RunError> {
    let d = job.preprocess.size_divisibility.max(1) as i64;
    let side = (64 + d - 1) / d * d;
    guard_item(|| -> Result<(), RunError> {
        let _g = tch::no_grad_guard();
        let x = tch::Tensor::f_zeros([1, 3, side, side], (tch::Kind::Float, device))
            .map_err(|e| RunError::Temporary(format!("cannot allocate the probe input: {e}")))?;
        let out = model.forward(&x)?;
        let (q, k) = model::check_outputs(&out, 1)?;
        scoring::check_indices(&job.method, q, k).map_err(|e| RunError::Config(e.to_string()))
    })
    .unwrap_or_else(|panic| Err(ModelError::Forward(panic).into()))
}

/// Runs a job end to end. `stop` is the flag the signal handlers set.
pub fn run(job: &Job, opts: &RunOptions, stop: Arc<AtomicUsize>) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let device = resolve_device(job.runtime.device)?;

    // Reading the listing changes nothing.
    let mut items = dataset::list(&job.dataset)?;
    if items.is_empty() {
        return Err(RunError::NoInput(format!(
            "no images found under {}",
            job.dataset.root.display()
        )));
    }
    if let Some(n) = opts.limit {
        items.truncate(n);
    }
    // A shard may be empty (more shards than items): it still records a complete, empty manifest.
    let items = shard::select(&items, opts.shard.as_ref());

    // The lock comes before anything slow, so a second writer is refused at once; everything
    // that can refuse the run (checkpoint, model, contract, indices) comes before any write.
    let out_root = &job.output.root;
    let mut guard = OutputGuard::acquire(out_root, opts.shard.as_ref())?;
    let (model_job, ck_sha) = resolve_checkpoint(job)?;
    let manifest_path = shard::manifest_path(out_root, opts.shard.as_ref());

    let shared = Shared {
        job: job.clone(),
        input_root: job.dataset.root.clone(),
        stop,
        fatal: Mutex::new(None),
        queue_samples: Default::default(),
    };
    let q = job.runtime.queue_depth;
    let (work_tx, work_rx) = bounded::<Work>(q);
    let (dec_tx, dec_rx) = bounded::<message::ToInfer>(q);
    let (inf_tx, inf_rx) = bounded::<message::ToScore>(q);
    let (sc_tx, sc_rx) = bounded::<message::ToWrite>(q);
    let (ready_tx, ready_rx) = bounded::<Result<String, RunError>>(1);

    let mut writer_state: Option<ManifestWriter> = None;
    let mut run_counts = Counts::default();
    let mut early_error: Option<RunError> = None;
    let progress = if opts.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let pb =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} items  {per_sec}  eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    };
    std::thread::scope(|s| {
        let shared = &shared;
        // Inference thread: loads and probes the model, reports, then serves batches.
        let model_job = &model_job;
        let spawned = spawn_stage(s, "infer", move || {
            let model = match model::load(model_job, device) {
                Ok(m) => m,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            if let Err(e) = probe_model(model.as_ref(), model_job, device) {
                let _ = ready_tx.send(Err(e));
                return;
            }
            let _ = ready_tx.send(Ok(model.describe()));
            drop(ready_tx);
            infer::run(shared, model.as_ref(), device, dec_rx, inf_tx);
        });
        if let Err(e) = spawned {
            early_error = Some(e);
            return;
        }
        let model_desc = match ready_rx.recv() {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                early_error = Some(e);
                return;
            }
            Err(_) => {
                early_error = Some(
                    ModelError::Load {
                        path: job.checkpoint.path.clone(),
                        message: "loader stopped".into(),
                    }
                    .into(),
                );
                return;
            }
        };

        // From here on the run writes into the output folder.
        guard.committed = true;
        crate::output::remove_stale_temps_of(
            items
                .iter()
                .flat_map(|i| paths_for(job, &i.stem).all().cloned().collect::<Vec<_>>())
                .chain([
                    manifest_path.clone(),
                    out_root.join(crate::rocrate::FILE_NAME),
                    out_root.join(WRITE_TEST),
                ]),
        );
        let manifest = Manifest {
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
            model: model_desc.clone(),
            numerics: Numerics {
                precision: job.runtime.precision.to_string(),
                tf32: job.runtime.precision == Precision::Tf32 && device != Device::Cpu,
                deterministic: device == Device::Cpu,
            },
            checkpoint: CheckpointInfo {
                path: model_job.checkpoint.path.clone(),
                format: format!("{:?}", job.checkpoint.format).to_lowercase(),
                sha256: ck_sha.clone(),
            },
            shard: opts.shard,
            started: manifest::now_rfc3339(),
            finished: None,
            status: RunStatus::Running,
            counts: Counts::default(),
            items: vec![],
        };
        let earlier = provenance::resume::earlier_records(
            &manifest,
            job,
            &manifest_path,
            &items,
            !opts.overwrite,
        );
        let provenance::resume::Earlier {
            records: mut previous,
            reusable,
        } = earlier;
        let mut records: Vec<Option<ItemRecord>> = vec![None; items.len()];
        let mut todo = Vec::new();
        for (idx, item) in items.iter().enumerate() {
            let prev = previous.remove(&item.stem);
            if reusable.contains(&item.stem) {
                records[idx] = prev.map(|r| ItemRecord {
                    status: ItemStatus::Skipped,
                    ..r
                });
            } else {
                // An earlier record stays until this run replaces it: its outputs are on disk.
                records[idx] = prev;
                todo.push(Work {
                    idx,
                    item: item.clone(),
                });
            }
        }
        let skipped = items.len() - todo.len();
        if skipped > 0 {
            log::info!(
                "{skipped} of {} items are complete from an earlier run and are skipped",
                items.len()
            );
        }
        // Records of items outside this run (another --limit, a shard's neighbours) are kept.
        let carried: Vec<ItemRecord> = previous.into_values().collect();
        let decode_workers = job.decode_workers(todo.len());
        progress.set_length(todo.len() as u64);
        log::info!(
            "model: {model_desc} on {}; {} items ({} to do), {decode_workers} decode workers",
            device_name(device),
            items.len(),
            todo.len()
        );

        let mut mw = ManifestWriter::new(manifest, records, carried, manifest_path.clone());
        if let Err(e) = mw.flush(RunStatus::Running) {
            shared.fail(RunError::Io(format!(
                "cannot write {}: {e}",
                manifest_path.display()
            )));
        }

        let started_stages = (|| -> Result<(), RunError> {
            spawn_stage(s, "feed", move || {
                for w in todo {
                    if shared.stopping() || work_tx.send(w).is_err() {
                        break;
                    }
                }
            })?;
            let mut decoders = 0;
            for i in 0..decode_workers {
                let (rx, tx) = (work_rx.clone(), dec_tx.clone());
                match spawn_stage(s, &format!("decode-{i}"), move || {
                    decode::run(shared, rx, tx)
                }) {
                    Ok(_) => decoders += 1,
                    // Fewer decoders still finish the run; none cannot.
                    Err(e) if decoders > 0 => {
                        log::warn!("{e}; going on with {decoders} decode workers");
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            spawn_stage(s, "score", move || score::run(shared, inf_rx, sc_tx))?;
            Ok(())
        })();
        drop((work_rx, dec_tx));
        if let Err(e) = started_stages {
            shared.fail(e);
        }
        write::run(shared, sc_rx, &mut mw, &progress);
        run_counts = mw.run_counts();
        writer_state = Some(mw);
    });
    progress.finish_and_clear();

    if let Some(e) = early_error {
        // Nothing was written: the guard leaves the folder as it was.
        drop(guard);
        return Err(e);
    }
    let fatal = shared
        .fatal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let signal = match shared.stop.load(Ordering::SeqCst) {
        0 | usize::MAX => None,
        s => Some(s as i32),
    };
    let Some(mut mw) = writer_state else {
        return Err(fatal.unwrap_or_else(|| RunError::Io("the run stopped before writing".into())));
    };
    let status = match (&fatal, signal) {
        (Some(_), _) => RunStatus::Failed,
        (None, Some(_)) => RunStatus::Interrupted,
        (None, None) => RunStatus::Complete,
    };
    let flushed = mw.flush(status);
    drop(guard);
    if let Some(e) = fatal {
        return Err(e);
    }
    flushed.map_err(|e| RunError::Io(format!("cannot write {}: {e}", manifest_path.display())))?;
    let mut stage_busy_s = [0f64; 6];
    for r in mw.records.iter().flatten() {
        if r.status != ItemStatus::Skipped {
            let t = &r.timings_ms;
            for (b, v) in stage_busy_s
                .iter_mut()
                .zip([t.decode, t.upload, t.infer, t.score, t.download, t.write])
            {
                *b += v / 1e3;
            }
        }
    }
    Ok(RunSummary {
        stage_busy_s,
        queue_mean: shared.queue_means(),
        counts: run_counts,
        signal,
        manifest: manifest_path,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The libtorch version this binary runs against.
pub fn libtorch_version() -> String {
    // torch-sys builds against the version written by scripts/setup.sh; the runtime library is the
    // one the rpath or LD_LIBRARY_PATH resolves.
    option_env!("MASKOMALY_LIBTORCH_VERSION")
        .unwrap_or("2.11.0")
        .to_string()
}
