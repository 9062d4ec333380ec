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
    /// A bug (please report it), an error of unknown kind, or a CUDA fault other than memory.
    Software = 70,
    /// The output folder or a file in it cannot be created.
    CantCreate = 73,
    /// Reading or writing failed (e.g. disk full).
    Io = 74,
    /// Temporary failure, worth retrying (out of GPU or host memory, checkpoint download failed,
    /// the output folder in use by another run, no thread could be started).
    TempFail = 75,
    /// Configuration error: bad job file, checkpoint wrong or not loadable, a model that does not
    /// fit the job, a CUDA build without kernels for this GPU or driver.
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
    70   internal error (a bug, or a CUDA fault other than memory)
    73   cannot create the output folder or a file in it
    74   I/O error (e.g. disk full)
    75   temporary failure, retry (out of GPU or host memory, checkpoint download failed,
         output folder in use by another run)
    78   configuration error (job file, checkpoint wrong/not loadable, model does not fit,
         CUDA build without kernels for this GPU or driver)
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

/// An error on its way to `main`: the error with its causes, its exit status and its hint, taken
/// from [`Diagnose`] (or given, for error types that report their own code).
#[derive(Debug)]
pub struct Failure {
    error: Box<dyn std::error::Error + Send + Sync>,
    code: ExitCode,
    hint: Option<String>,
}

impl<E: Diagnose + Send + Sync + 'static> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: e.exit_code(),
            hint: e.hint(),
            error: Box::new(e),
        }
    }
}

impl Failure {
    /// An error with the exit status its own type reports.
    pub fn coded(code: ExitCode, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Failure {
            error: Box::new(e),
            code,
            hint: None,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        self.code
    }

    /// What `main` prints on stderr (uv style):
    ///
    /// ```text
    /// error: cannot read /in/x.png
    ///   caused by: No such file or directory (os error 2)
    /// hint: ...
    /// ```
    /// A cause whose text the line above already holds (an error that repeats its source in its own
    /// message) is not printed twice.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", self.error);
        let mut above = self.error.to_string();
        let mut cause = self.error.source();
        while let Some(c) = cause {
            let text = c.to_string();
            if !above.contains(&text) {
                out.push_str(&format!("  caused by: {text}\n"));
            }
            above = text;
            cause = c.source();
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("hint: {h}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot load job {0}")]
    struct Outer(&'static str, #[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("line 3: {source}")]
    struct Middle {
        source: std::io::Error,
    }

    impl Diagnose for Outer {
        fn hint(&self) -> Option<String> {
            Some("check the path".into())
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("plain")]
    struct Plain;

    impl Diagnose for Plain {}

    #[test]
    fn render_prints_each_cause_then_the_hint() {
        let e = Outer(
            "a.yaml",
            Middle {
                source: std::io::Error::other("disk on fire"),
            },
        );
        let f = Failure::from(e);
        assert_eq!(
            f.render(),
            "error: cannot load job a.yaml\n  caused by: line 3: disk on fire\nhint: check the path\n"
        );
        // Unknown errors are bugs, not configuration errors.
        assert_eq!(f.exit_code(), ExitCode::Software);
        assert_eq!(Failure::from(Plain).render(), "error: plain\n");
        let coded = Failure::coded(ExitCode::NoInput, std::io::Error::other("gone"));
        assert_eq!(coded.exit_code(), ExitCode::NoInput);
        assert_eq!(coded.render(), "error: gone\n");
    }
}
