//! Model backends: anything that maps a normalised, padded batch to Mask2Former's raw outputs.
//!
//! * [`network`]: Mask2Former's modules (Swin backbone, pixel decoder with multi-scale deformable
//!   attention, transformer decoder) and their shared layers and per-shape cache.
//! * [`weights`]: reading checkpoints (the safe pickle reader, key names, inventory) and fetching them.
//! * [`backend`]: the backends (native, TorchScript).
//! * [`precision`]: `runtime.precision`, followed by the network's products and by the wrapper
//!   around every backend.
//! * [`config`]: the network's sizes, from presets or a Hugging Face `config.json`.
//!
//! The contract (same for every backend): `forward(x: [B, 3, Hp, Wp] f32)` returns
//! `pred_logits [B, Q, K+1]` (class logits, last index = void/no-object) and
//! `pred_masks [B, Q, h, w]` (mask logits at any resolution; Mask2Former gives Hp/4 × Wp/4).

pub mod backend;
pub mod config;
pub mod network;
pub mod precision;
pub mod weights;

pub use weights::checkpoint::InspectReport;
pub use weights::inventory::{inspect, inspect_with};

use crate::device::Fault;
use crate::diagnostic::{Diagnose, ExitCode};
use crate::job::{CheckpointFormat, Job};
use std::path::PathBuf;
use tch::{Device, Tensor};

/// Raw network outputs for one batch.
#[derive(Debug)]
pub struct RawOutput {
    /// [B, Q, K+1] class logits.
    pub pred_logits: Tensor,
    /// [B, Q, h, w] mask logits.
    pub pred_masks: Tensor,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("checkpoint {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot load checkpoint {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("checkpoint {path}: SHA-256 is {found}, the job expects {expected}")]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("model output does not meet the contract: {0}")]
    Contract(String),
    #[error("model forward failed: {0}")]
    Forward(String),
    #[error("checkpoint format `{0}` is not supported by this build")]
    Unsupported(String),
    /// A network failure while fetching a checkpoint: temporary, worth retrying.
    #[error("cannot download {url}: {message}")]
    Download { url: String, message: String },
    #[error("model configuration: {0}")]
    Config(String),
    /// The job's `runtime.precision` cannot run on the device (found when the model is loaded).
    #[error("runtime.precision `{precision}` does not run on {device}: {message}")]
    Precision {
        precision: crate::job::Precision,
        device: String,
        message: String,
    },
    /// The file's inventory does not match the model's; the report says how.
    #[error("checkpoint {} does not fit the model: {report}", path.display())]
    Mismatch {
        path: PathBuf,
        report: Box<InspectReport>,
    },
}

impl ModelError {
    /// The device fault this error reports, if any (see [`crate::device::fault`]).
    pub fn fault(&self) -> Option<Fault> {
        match self {
            ModelError::Forward(message) => crate::device::fault(message),
            _ => None,
        }
    }
}

impl Diagnose for ModelError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ModelError::Forward(_) => self.fault().map_or(ExitCode::Software, Fault::exit_code),
            // A path without a URL to fetch it from: nothing to retry until a person fixes it.
            ModelError::Missing { .. } => ExitCode::NoInput,
            e if e.is_temporary() => ExitCode::TempFail,
            _ => ExitCode::Config,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ModelError::Missing { .. } => Some(
                "provide the checkpoint: mount it (docker: -v DIR:/models), pass --checkpoint FILE, \
                 or set checkpoint.path in the job file; `make demo` runs with a generated tiny model"
                    .into(),
            ),
            ModelError::Download { .. } => Some(
                "fetch the file by other means and set `checkpoint.path` to it, or place it in \
                 the cache folder ($MASKOMALY_CACHE, default ~/.cache/maskomaly)"
                    .into(),
            ),
            ModelError::Checksum { .. } => Some(
                "the file is not the one the job names: fetch it again, or correct \
                 checkpoint.sha256 (a --checkpoint on the command line drops the job's checksum)"
                    .into(),
            ),
            ModelError::Forward(_) => match self.fault()? {
                Fault::OutOfMemory => Some(
                    "lower runtime.batch_size or preprocess.max_size, use runtime.precision: \
                     bf16, or a device with more free memory; the run resumes where it stopped"
                        .into(),
                ),
                Fault::CudaSetup => Some(
                    "the CUDA build does not fit this GPU or driver: use the image built for \
                     it, or --device cpu"
                        .into(),
                ),
                Fault::Cuda => None,
            },
            _ => None,
        }
    }
}

impl ModelError {
    /// Whether retrying later may succeed (a download), as opposed to a permanent failure.
    pub fn is_temporary(&self) -> bool {
        matches!(self, ModelError::Download { .. })
    }
}

/// A loaded network. Lives on the inference thread only.
pub trait Backend {
    /// Runs the network on a batch; the caller holds a `no_grad` guard.
    fn forward(&self, x: &Tensor) -> Result<RawOutput, ModelError>;
    /// One line for logs and the manifest.
    fn describe(&self) -> String;
    /// Converts the weights to `kind` (float32, bfloat16 or float16); unless [`Backend::float32_io`],
    /// the input must then have it too.
    fn set_kind(&mut self, kind: tch::Kind) -> Result<(), ModelError> {
        Err(ModelError::Unsupported(format!(
            "converting this backend to {kind:?}"
        )))
    }
    /// Whether the backend takes float32 input and returns float32 outputs whatever `set_kind`
    /// chose (mixed precision inside).
    fn float32_io(&self) -> bool {
        false
    }
}

/// Seed of `checkpoint.format: random`, so that every run builds the same weights.
pub const RANDOM_SEED: i64 = 0;

/// Loads the backend the job names onto `device`, in the job's `runtime.precision`.
pub fn load(job: &Job, device: Device) -> Result<Box<dyn Backend>, ModelError> {
    let ck = &job.checkpoint;
    let m: Box<dyn Backend> = match ck.format {
        CheckpointFormat::Torchscript => Box::new(backend::torchscript::TorchScriptModel::load(
            &ck.path, device,
        )?),
        CheckpointFormat::Detectron2 | CheckpointFormat::Hf => {
            Box::new(backend::native::NativeModel::load(job, device)?)
        }
        CheckpointFormat::Random => {
            let preset = job
                .model
                .preset
                .as_deref()
                .unwrap_or(config::DEFAULT_PRESET);
            log::warn!("random weights ({preset}, seed {RANDOM_SEED}): for benchmarks only, the scores mean nothing");
            tch::manual_seed(RANDOM_SEED);
            let mut m =
                backend::native::NativeModel::random(&config::Config::preset(preset)?, device)?;
            m.set_description(format!(
                "native mask2former ({preset}, random weights, seed {RANDOM_SEED})"
            ));
            Box::new(m)
        }
    };
    precision::wrap(m, job.runtime.precision, device)
}

/// Checks the shapes of a batch's outputs against the contract.
pub fn check_outputs(out: &RawOutput, batch: i64) -> Result<(i64, i64), ModelError> {
    let l = out.pred_logits.size();
    let m = out.pred_masks.size();
    if l.len() != 3 || l[0] != batch {
        return Err(ModelError::Contract(format!(
            "pred_logits has shape {l:?}, expected [{batch}, Q, K+1]"
        )));
    }
    if m.len() != 4 || m[0] != batch || m[1] != l[1] {
        return Err(ModelError::Contract(format!(
            "pred_masks has shape {m:?}, expected [{batch}, {}, h, w]",
            l[1]
        )));
    }
    if l[2] < 2 {
        return Err(ModelError::Contract(format!(
            "pred_logits has {} classes, expected K+1 >= 2",
            l[2]
        )));
    }
    if m[2] < 1 || m[3] < 1 {
        return Err(ModelError::Contract(format!(
            "pred_masks has an empty spatial size {m:?}"
        )));
    }
    for (name, t) in [
        ("pred_logits", &out.pred_logits),
        ("pred_masks", &out.pred_masks),
    ] {
        if t.kind() != tch::Kind::Float {
            return Err(ModelError::Contract(format!(
                "{name} has dtype {:?}, expected float32",
                t.kind()
            )));
        }
    }
    Ok((l[1], l[2]))
}

static PROFILE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns the per-stage synchronisation of [`sync`] on (`maskomaly run --profile`) or off.
pub fn set_profile(on: bool) {
    PROFILE.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn profiling() -> bool {
    PROFILE.load(std::sync::atomic::Ordering::Relaxed)
}

/// When profiling, waits for the device's queued work, so that a stage's time is its own. Off by
/// default: a whole-device wait on the inference and scoring threads would make the forward wait
/// for scoring and scoring for the next forward. Without it a GPU stage's time is the time to
/// queue its work, and the copy back to the host (which waits for it) carries the rest.
pub fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        if profiling() {
            tch::Cuda::synchronize(i as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_errors_map_to_retryable_only_when_memory_ran_out() {
        let forward = |m: &str| ModelError::Forward(m.into());
        let oom = forward("Internal torch error: CUDA out of memory. Tried to allocate 2.00 GiB");
        assert_eq!(oom.exit_code(), ExitCode::TempFail);
        assert!(oom.hint().unwrap().contains("batch_size"));
        let illegal = forward("CUDA error: an illegal memory access was encountered");
        assert_eq!(illegal.exit_code(), ExitCode::Software);
        assert_eq!(illegal.hint(), None);
        assert_eq!(
            forward("CUDA error: no kernel image is available for execution on the device")
                .exit_code(),
            ExitCode::Config
        );
        assert_eq!(forward("shape mismatch").exit_code(), ExitCode::Software);
        let missing = ModelError::Missing {
            path: "/models/x.pkl".into(),
        };
        assert_eq!(missing.exit_code(), ExitCode::NoInput);
        assert!(missing.hint().unwrap().contains("--checkpoint"));
        let download = ModelError::Download {
            url: "http://x/y.pkl".into(),
            message: "refused".into(),
        };
        assert_eq!(download.exit_code(), ExitCode::TempFail);
        let sum = ModelError::Checksum {
            path: "a".into(),
            expected: "0".into(),
            found: "1".into(),
        };
        assert_eq!(sum.exit_code(), ExitCode::Config);
    }
}
