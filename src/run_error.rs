//! [`RunError`], the failure that ends a command, with its exit codes and hints ([`Diagnose`]).
//! Underlying errors stay as sources, so `main` can print each cause on its own line.

use crate::dataset::DatasetError;
use crate::device::DeviceError;
use crate::diagnostic::{Diagnose, ExitCode};
use crate::eval::EvalError;
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
        source: crate::job::queries::QueriesFileError,
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
            RunError::NoInput(_) => Some(crate::dataset::NO_INPUT_HINT.into()),
            RunError::Device(e) => e.hint(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::EvalError;
    use crate::model::ModelError;
    use crate::output::lock::LockError;

    /// Io, Temporary and Config keep their underlying error: `main` prints it as `caused by:`.
    #[test]
    fn run_errors_render_their_causes() {
        use crate::diagnostic::Failure;
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
