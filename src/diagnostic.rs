//! How a failure is reported: exit codes (sysexits where they apply) from one table for `--help`, the
//! README and the code; the [`Diagnose`] policy every error type implements beside its definition;
//! [`Failure`], what `main` prints (`error:`, `caused by:`, `hint:`). Schedulers retry 75 and the
//! signal exits (130, 143); everything else is permanent until a person changes something.

/// Defines [`ExitCode`] and [`TABLE`] from one list, so the enum, `--help` and the README (checked
/// by a test) never say different things.
macro_rules! exit_codes {
    ($($variant:ident = $code:literal, retry $retry:ident, $meaning:literal;)*) => {
        /// The process exit status of a `maskomaly` command.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ExitCode {
            $(#[doc = $meaning] $variant = $code,)*
        }

        /// Every exit status: its code, whether a scheduler should retry it, and what it means.
        pub const TABLE: &[(ExitCode, Retry, &str)] = &[$((ExitCode::$variant, $retry, $meaning),)*];
    };
}

/// Whether a scheduler should run a command again after this status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Success: nothing to retry.
    Done,
    /// Permanent until a person changes something.
    No,
    /// Temporary, or stopped by a signal: a rerun resumes.
    Yes,
}

use Retry::{Done, No, Yes};

exit_codes! {
    Ok = 0, retry Done, "every item written (or already complete)";
    SomeFailed = 1, retry No, "the run finished, but some items failed (listed in `manifest.json`)";
    Usage = 64, retry No, "bad command line";
    Data = 65, retry No, "input data error (e.g. labels that do not pair with images, a prediction \
        that does not fit its label)";
    NoInput = 66, retry No, "no input (input folder or dataset root missing or without images; \
        checkpoint file missing and no URL for it)";
    Software = 70, retry No, "internal error: a bug, an error of unknown kind, or a CUDA fault other \
        than memory (illegal address, launch failure)";
    CantCreate = 73, retry No, "cannot create the output folder or a file in it";
    Io = 74, retry No, "I/O error (e.g. disk full)";
    TempFail = 75, retry Yes, "temporary failure (out of GPU or host memory, as libtorch's allocator \
        reports it; checkpoint download failed; output folder in use by another run; no thread \
        could be started)";
    Config = 78, retry No, "configuration error (job file, checkpoint wrong/not loadable, a model \
        that does not fit the job, a CUDA build without kernels for this GPU or driver)";
    Interrupted = 130, retry Yes, "interrupted by SIGINT; finished outputs are kept, a rerun resumes";
    Terminated = 143, retry Yes, "terminated by SIGTERM (preemption, `docker stop`); finished \
        outputs are kept, a rerun resumes";
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The table as `--help` shows it: one entry per code, its meaning wrapped at 100 columns.
pub fn help_table() -> String {
    const WIDTH: usize = 100;
    const INDENT: &str = "         ";
    let mut out = String::from("Exit codes:");
    for (code, _, meaning) in TABLE {
        let mut line = format!("\n    {:<5}", code.code());
        let mut len = line.len() - 1;
        for (i, word) in meaning.split(' ').enumerate() {
            if i > 0 && len + 1 + word.chars().count() > WIDTH {
                line.push('\n');
                line.push_str(INDENT);
                len = INDENT.len();
            } else if i > 0 {
                line.push(' ');
                len += 1;
            }
            line.push_str(word);
            len += word.chars().count();
        }
        out.push_str(&line);
    }
    out
}

/// The table as the README's *Exit codes* section holds it (Markdown).
pub fn markdown_table() -> String {
    let mut out = String::from("| code | meaning | retry? |\n| --- | --- | --- |\n");
    for (code, retry, meaning) in TABLE {
        let retry = match retry {
            Done => " ",
            No => " no ",
            Yes => " yes ",
        };
        out.push_str(&format!("| {} | {meaning} |{retry}|\n", code.code()));
    }
    out
}

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

    /// The README's table is this module's table, row for row.
    #[test]
    fn readme_table_is_the_table() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let section = readme
            .split_once("\n## Exit codes\n")
            .expect("README has an *Exit codes* section")
            .1;
        let table: String = section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            table,
            markdown_table(),
            "README.md's exit-code table differs; paste markdown_table()'s"
        );
    }

    #[test]
    fn help_lists_every_code_once_within_100_columns() {
        let help = help_table();
        assert!(help.lines().all(|l| l.chars().count() <= 100), "{help}");
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for (code, _, meaning) in TABLE {
            assert!(
                flat.contains(&format!(" {} {meaning}", code.code())),
                "{code:?}"
            );
        }
        assert!(flat.contains("no thread could be started"));
        assert_eq!(ExitCode::TempFail.code(), 75);
    }

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
