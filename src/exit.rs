//! Exit codes (sysexits where they apply), one table for `--help`, the README and the code.
//! Schedulers retry on 75 only; everything else is permanent until a person changes something.

/// The process exit status of a `maskomaly` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Every item written (or already complete).
    Ok = 0,
    /// The run finished but some items failed (listed in the manifest).
    SomeFailed = 1,
    /// Bad command line.
    Usage = 64,
    /// Input data is wrong (e.g. a dataset's labels do not pair with its images).
    Data = 65,
    /// No input: the input folder is missing or holds no images, or the checkpoint file is missing
    /// and the job names no URL to fetch it from.
    NoInput = 66,
    /// A bug: please report it.
    Software = 70,
    /// The output folder or a file in it cannot be created.
    CantCreate = 73,
    /// Reading or writing failed (e.g. disk full).
    Io = 74,
    /// Temporary failure, worth retrying (CUDA out of memory, checkpoint download failed, the
    /// output folder in use by another run, no thread could be started).
    TempFail = 75,
    /// Configuration error: bad job file, checkpoint wrong or not loadable, a model that does not
    /// fit the job.
    Config = 78,
    /// Stopped by SIGINT (Ctrl-C); finished items are kept.
    Interrupted = 130,
    /// Stopped by SIGTERM (preemption, `docker stop`); finished items are kept.
    Terminated = 143,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The table shown in `--help` and the README.
pub const TABLE: &str = "\
Exit codes:
    0    every item written (or already complete)
    1    the run finished, but some items failed (see manifest.json)
    64   bad command line
    65   input data error (e.g. labels that do not pair with images)
    66   no input (input folder missing or without images; checkpoint missing, no URL)
    70   internal error (a bug)
    73   cannot create the output folder or a file in it
    74   I/O error (e.g. disk full)
    75   temporary failure, retry (CUDA out of memory, checkpoint download failed,
         output folder in use by another run)
    78   configuration error (job file, checkpoint wrong/not loadable, model does not fit)
    130  interrupted by SIGINT; finished outputs are kept, a rerun resumes
    143  terminated by SIGTERM; finished outputs are kept, a rerun resumes";

/// What every error a command can return tells `main`: the exit status and, when a person can act
/// on it, a hint. `main` prints `error:`, one `caused by:` line per `source()`, then `hint:`.
pub trait Diagnose: std::error::Error {
    /// Unknown failures are bugs (70), not configuration errors.
    fn exit_code(&self) -> ExitCode {
        ExitCode::Software
    }
    fn hint(&self) -> Option<String> {
        None
    }
}
