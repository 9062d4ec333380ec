//! The errors that end a command, with their exit codes and hints ([`Diagnose`]). Underlying
//! errors stay as sources, so `main` can print each cause on its own line.

use crate::dataset::DatasetError;
use crate::device::{self, DeviceError, Fault};
use crate::exit::{Diagnose, ExitCode};
use crate::job::JobError;
use crate::model::ModelError;
use std::path::PathBuf;

/// A boxed underlying error, kept as a source.
pub type Source = Box<dyn std::error::Error + Send + Sync>;

/// A failure that ends a command (a whole run, a forward pass, an evaluation).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A setting that cannot work, found by a check (no underlying error).
    #[error("{0}")]
    Config(String),
    /// Nothing to process, found by a check.
    #[error("{0}")]
    NoInput(String),
    /// Input data that is wrong, found by a check.
    #[error("{0}")]
    Data(String),
    #[error("cannot create output folder {path}: {message}")]
    CantCreate { path: PathBuf, message: String },
    /// Reading or writing failed (the message names the file and the cause).
    #[error("{0}")]
    Io(String),
    #[error("temporary failure, retry later: {0}")]
    Temporary(String),
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
    /// Evaluation or query discovery found the data unusable.
    #[error("{what} failed")]
    Eval {
        what: &'static str,
        #[source]
        source: Source,
    },
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    #[error("cannot install the SIGINT/SIGTERM handlers")]
    Signals(#[source] std::io::Error),
    #[error("cannot print the job")]
    Serialise(#[source] Source),
}

impl Diagnose for RunError {
    fn exit_code(&self) -> ExitCode {
        match self {
            RunError::Config(_) | RunError::Job(_) | RunError::Queries { .. } => ExitCode::Config,
            RunError::NoInput(_) | RunError::Read { .. } => ExitCode::NoInput,
            RunError::Data(_) | RunError::Image { .. } | RunError::Eval { .. } => ExitCode::Data,
            RunError::CantCreate { .. } | RunError::Demo(_) => ExitCode::CantCreate,
            RunError::Io(_) | RunError::Write { .. } => ExitCode::Io,
            RunError::Temporary(_) => ExitCode::TempFail,
            RunError::Model(e) => e.exit_code(),
            RunError::Device(e) => e.exit_code(),
            RunError::Dataset(e) => match e {
                DatasetError::NoRoot(_) => ExitCode::NoInput,
                DatasetError::Walk { .. } => ExitCode::Io,
                DatasetError::Layout { .. } => ExitCode::Data,
            },
            RunError::Signals(_) | RunError::Serialise(_) => ExitCode::Software,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            RunError::Model(e) => e.hint(),
            RunError::NoInput(_) | RunError::Dataset(DatasetError::NoRoot(_)) => Some(
                "pass --input DIR, set dataset.root in the job, or mount a folder at /input".into(),
            ),
            RunError::Device(e) => e.hint(),
            _ => None,
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
