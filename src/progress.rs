//! The one progress-bar set-up: bars go to stderr, and are hidden under `--quiet` (set once by
//! `main` through [`set_quiet`]), when a caller turns them off, or when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Hides every bar from now on (`--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

fn shown(enabled: bool) -> bool {
    enabled && !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

fn styled(len: Option<u64>, template: &str, enabled: bool) -> ProgressBar {
    if !shown(enabled) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// A bar over `len` things called `noun` ("items", "frames"), led by `what` when not empty.
pub fn count(len: u64, what: &str, noun: &str, enabled: bool) -> ProgressBar {
    let lead = if what.is_empty() {
        String::new()
    } else {
        format!("{what} ")
    };
    styled(
        Some(len),
        &format!("{lead}{{bar:40}} {{pos}}/{{len}} {noun}  {{per_sec}}  eta {{eta}}"),
        enabled,
    )
}

/// A bar over a download of `total` bytes (unknown: no total), with `message` in front.
pub fn bytes(total: Option<u64>, message: String) -> ProgressBar {
    let bar = styled(
        total,
        "{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        true,
    );
    bar.set_message(message);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_and_disabled_bars_are_hidden() {
        assert!(count(3, "", "items", false).is_hidden());
        set_quiet(true);
        assert!(count(3, "evaluating", "frames", true).is_hidden());
        assert!(bytes(Some(10), "fetching x".into()).is_hidden());
        set_quiet(false);
    }
}
