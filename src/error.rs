//! The errors that end a command, with their exit codes and hints ([`Diagnose`]). Underlying
//! errors stay as sources, so `main` can print each cause on its own line.

use crate::dataset::DatasetError;
use crate::device::{self, DeviceError, Fault};
use crate::eval::compare::CompareError;
use crate::eval::predictions::PredictionError;
use crate::eval::EvalError;
use crate::exit::{Diagnose, ExitCode};
use crate::job::JobError;
use crate::model::ModelError;
use crate::output::lock::LockError;
use std::path::{Path, PathBuf};

/// A boxed underlying error, kept as a source.
pub type Source = Box<dyn std::error::Error + Send + Sync>;

/// A failure that ends a command (a whole run, a forward pass, an evaluation).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The job's method settings do not fit the model (found by the start-up probe).
    #[error("the job's `method` does not fit the model")]
    Config(#[source] crate::scores::ScoreError),
    /// Nothing to process, found by a check.
    #[error("{0}")]
    NoInput(String),
    /// Input data that is wrong, found by a check.
    #[error("{0}")]
    Data(String),
    #[error("cannot create output folder {path}")]
    CantCreate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing failed; `what` names the file.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Worth retrying: a thread or memory that was not there this time.
    #[error("temporary failure, retry later: {what}")]
    Temporary {
        what: String,
        #[source]
        source: Source,
    },
    /// The output folder cannot be locked (another run holds it, or the lock file cannot be made).
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// An input file that cannot be read.
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An image that cannot be decoded or prepared for the network.
    #[error("cannot use image {path}")]
    Image {
        path: PathBuf,
        #[source]
        source: crate::preprocess::DecodeError,
    },
    /// An output file that cannot be written.
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: Source,
    },
    /// The job's `method.anomaly_queries_file` cannot be used.
    #[error("job file {job}: method.anomaly_queries_file")]
    Queries {
        job: PathBuf,
        #[source]
        source: crate::eval::discover::QueriesFileError,
    },
    /// Query discovery found the data unusable.
    #[error("{what} failed")]
    Eval {
        what: &'static str,
        #[source]
        source: Source,
    },
    /// An evaluation failed.
    #[error(transparent)]
    Evaluation(#[from] EvalError),
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    #[error("cannot install the SIGINT/SIGTERM handlers")]
    Signals(#[source] std::io::Error),
    #[error("cannot print the job")]
    Serialise(#[source] Source),
}

impl RunError {
    /// A failed read or write of `path` (`what` says which, e.g. "cannot write").
    pub fn io(what: &str, path: &Path, source: std::io::Error) -> RunError {
        RunError::Io {
            what: format!("{what} {}", path.display()),
            source,
        }
    }

    /// A thread that could not be started (the process limit): worth retrying.
    pub fn no_thread(name: &str, source: impl Into<Source>) -> RunError {
        RunError::Temporary {
            what: format!("cannot start the {name} thread"),
            source: source.into(),
        }
    }
}

impl Diagnose for RunError {
    fn exit_code(&self) -> ExitCode {
        match self {
            RunError::Config(_) | RunError::Job(_) | RunError::Queries { .. } => ExitCode::Config,
            RunError::NoInput(_) | RunError::Read { .. } => ExitCode::NoInput,
            RunError::Data(_) | RunError::Image { .. } | RunError::Eval { .. } => ExitCode::Data,
            RunError::CantCreate { .. } | RunError::Demo(_) => ExitCode::CantCreate,
            RunError::Io { .. } | RunError::Write { .. } => ExitCode::Io,
            RunError::Temporary { .. } => ExitCode::TempFail,
            RunError::Lock(e) => e.exit_code(),
            RunError::Model(e) => e.exit_code(),
            RunError::Device(e) => e.exit_code(),
            RunError::Dataset(e) => e.exit_code(),
            RunError::Evaluation(e) => e.exit_code(),
            RunError::Signals(_) | RunError::Serialise(_) => ExitCode::Software,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            RunError::Model(e) => e.hint(),
            RunError::Lock(e) => e.hint(),
            RunError::Dataset(e) => e.hint(),
            RunError::Evaluation(e) => e.hint(),
            RunError::NoInput(_) => Some(NO_INPUT_HINT.into()),
            RunError::Device(e) => e.hint(),
            _ => None,
        }
    }
}

const NO_INPUT_HINT: &str =
    "pass --input DIR, set dataset.root in the job, or mount a folder at /input";

impl Diagnose for DatasetError {
    fn exit_code(&self) -> ExitCode {
        match self {
            DatasetError::NoRoot(_) => ExitCode::NoInput,
            DatasetError::Walk { .. } => ExitCode::Io,
            DatasetError::Layout { .. } => ExitCode::Data,
            DatasetError::HoldsOutputs { .. } => ExitCode::Config,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            DatasetError::NoRoot(_) => Some(NO_INPUT_HINT.into()),
            DatasetError::HoldsOutputs { .. } => Some(
                "choose an output folder outside the input folder (or inside it, in a subfolder \
                 of its own), and an input folder that holds no maskomaly outputs"
                    .into(),
            ),
            _ => None,
        }
    }
}

impl Diagnose for EvalError {
    fn exit_code(&self) -> ExitCode {
        match self {
            EvalError::Dataset(e) => e.exit_code(),
            EvalError::Prediction(PredictionError::Missing { .. }) => ExitCode::NoInput,
            EvalError::ReadImage { source, .. } if source.is::<std::io::Error>() => {
                ExitCode::NoInput
            }
            EvalError::NoLabel { .. } => ExitCode::Config,
            EvalError::CreateDir { .. } => ExitCode::CantCreate,
            EvalError::Write { .. } => ExitCode::Io,
            EvalError::Label(_)
            | EvalError::Prediction(_)
            | EvalError::ReadImage { .. }
            | EvalError::SizeMismatch { .. }
            | EvalError::Metric { .. }
            | EvalError::NoPositives { .. }
            | EvalError::NoPixels => ExitCode::Data,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            EvalError::Dataset(e) => e.hint(),
            EvalError::NoLabel { .. } => {
                Some("evaluate a split that has labels (SMIYC: dataset.split: validation)".into())
            }
            EvalError::NoPositives { .. } => Some("check `dataset.label_value`".into()),
            EvalError::Prediction(PredictionError::Missing { .. }) => Some(
                "pass --predictions with the run's output folder (default: the job's output.root)"
                    .into(),
            ),
            _ => None,
        }
    }
}

impl Diagnose for CompareError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CompareError::Eval { source, .. } | CompareError::Single(source) => source.exit_code(),
            CompareError::NoScore { .. } => ExitCode::NoInput,
            CompareError::Write { .. } => ExitCode::Io,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            CompareError::Eval { source, .. } | CompareError::Single(source) => source.hint(),
            CompareError::NoScore { .. } => Some("pass --score with one of those".into()),
            CompareError::Write { .. } => None,
        }
    }
}

impl Diagnose for JobError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Config
    }
}

impl Diagnose for crate::demo::DemoError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::CantCreate
    }
}

/// The device fault a model error reports, if any (see [`device::fault`]).
pub fn model_fault(e: &ModelError) -> Option<Fault> {
    match e {
        ModelError::Forward(message) => device::fault(message),
        _ => None,
    }
}

impl Diagnose for ModelError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ModelError::Forward(_) => {
                model_fault(self).map_or(ExitCode::Software, Fault::exit_code)
            }
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
            ModelError::Forward(_) => match model_fault(self)? {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_errors_map_to_retryable_only_when_memory_ran_out() {
        let forward = |m: &str| RunError::Model(ModelError::Forward(m.into()));
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
        let missing = RunError::Model(ModelError::Missing {
            path: "/models/x.pkl".into(),
        });
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

    /// Io, Temporary and Config keep their underlying error: `main` prints it as `caused by:`.
    #[test]
    fn run_errors_render_their_causes() {
        use crate::exit::Failure;
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let e = RunError::io("cannot write", Path::new("/out/manifest.json"), full);
        assert_eq!(e.exit_code(), ExitCode::Io);
        assert_eq!(
            Failure::from(e).render(),
            "error: cannot write /out/manifest.json\n  \
             caused by: No space left on device (os error 28)\n"
        );
        let e = RunError::no_thread("decode-0", std::io::Error::from_raw_os_error(libc::EAGAIN));
        assert_eq!(e.exit_code(), ExitCode::TempFail);
        assert_eq!(
            Failure::from(e).render(),
            "error: temporary failure, retry later: cannot start the decode-0 thread\n  \
             caused by: Resource temporarily unavailable (os error 11)\n"
        );
        let e = RunError::Config(crate::scores::ScoreError::VoidOutOfRange {
            void: 19,
            classes: 5,
        });
        assert_eq!(e.exit_code(), ExitCode::Config);
        let text = Failure::from(e).render();
        assert!(
            text.starts_with("error: the job's `method` does not fit the model\n  caused by: `method.void_class` is 19"),
            "{text}"
        );
    }

    /// Advice is a hint of its own, not part of the message.
    #[test]
    fn hints_are_not_baked_into_messages() {
        let e = RunError::Model(ModelError::Download {
            url: "http://x/y.pkl".into(),
            message: "refused".into(),
        });
        assert_eq!(e.to_string(), "cannot download http://x/y.pkl: refused");
        assert!(e.hint().unwrap().contains("checkpoint.path"));
        let busy = RunError::Lock(LockError::Busy {
            folder: "/out".into(),
            path: "/out/.maskomaly.lock".into(),
        });
        assert!(!busy.to_string().contains("wait"), "{busy}");
        assert!(busy.hint().unwrap().contains("wait for the other run"));
        assert_eq!(busy.exit_code(), ExitCode::TempFail);
        let none = EvalError::NoPositives {
            kind: "fs_static",
            values: vec![1],
        };
        assert!(!none.to_string().contains("hint"), "{none}");
        assert!(none.hint().unwrap().contains("dataset.label_value"));
    }

    /// `eval`'s errors get the run's exit codes.
    #[test]
    fn eval_errors_follow_the_run_policy() {
        let root = EvalError::Dataset(DatasetError::NoRoot("/in".into()));
        assert_eq!(root.exit_code(), ExitCode::NoInput);
        assert!(root.hint().is_some());
        let full = EvalError::Write {
            path: "/out/results.json".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC).into(),
        };
        assert_eq!(full.exit_code(), ExitCode::Io);
        let gone = EvalError::ReadImage {
            path: "/in/a.png".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound).into(),
        };
        assert_eq!(gone.exit_code(), ExitCode::NoInput);
        assert_eq!(gone.to_string(), "cannot read image /in/a.png");
        let garbage = EvalError::ReadImage {
            path: "/in/a.png".into(),
            source: "not a PNG".into(),
        };
        assert_eq!(garbage.exit_code(), ExitCode::Data);
        let scored = CompareError::Eval {
            score: crate::scores::ScoreKind::Rba,
            source: full,
        };
        assert_eq!(scored.exit_code(), ExitCode::Io);
    }

    #[test]
    fn sources_are_kept() {
        use std::error::Error;
        let e = RunError::Read {
            path: "/in/x.png".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(e.to_string(), "cannot read /in/x.png");
        assert!(e.source().is_some());
        assert_eq!(e.exit_code(), ExitCode::NoInput);
        let e = RunError::Dataset(DatasetError::NoRoot("/in".into()));
        assert_eq!(e.exit_code(), ExitCode::NoInput);
        assert!(e.hint().is_some());
    }
}
