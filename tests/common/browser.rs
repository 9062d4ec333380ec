//! Headless Chromium for the report's browser test (`tests/report_browser.rs`) and the README
//! pictures (`examples/docs_pictures.rs`), which include this file; the program itself never starts
//! a browser. Chromium is Debian's `chromium` package (`scripts/ci-deps.sh`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The first of `chromium`, `chromium-browser`, `google-chrome` on `PATH` that runs.
pub fn find_chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .map(PathBuf::from)
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// What a screenshot run logged.
pub struct Shot {
    /// Chromium's stderr with `--enable-logging=stderr`: console messages, failed loads.
    pub log: String,
}

/// Renders `page` (a local file) at `width` × `height` CSS pixels into `png`, with `extra` flags;
/// stops Chromium after `timeout`. Headless, no sandbox (tests run as root in containers), no GPU,
/// device scale 1.
pub fn screenshot(
    chromium: &Path,
    page: &Path,
    png: &Path,
    (width, height): (u32, u32),
    timeout: Duration,
    extra: &[String],
) -> Result<Shot, String> {
    let page = page
        .canonicalize()
        .map_err(|e| format!("{}: {e}", page.display()))?;
    // A fresh profile folder beside the screenshot (Chromium writes its state there), removed on
    // every way out.
    let parent = match png.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let profile = tempfile::Builder::new()
        .prefix(".chromium-profile-")
        .tempdir_in(parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    let log_path = profile.path().join("chromium.log");
    let log_file = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", chromium.display()))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("chromium did not finish within {timeout:?}"));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    drop(profile);
    if !status.success() || !png.is_file() {
        return Err(format!("chromium failed ({status}):\n{log}"));
    }
    Ok(Shot { log })
}

/// Log lines that mean a reference failed to load or a script failed.
pub fn load_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("Failed to load resource")
                || l.contains("net::ERR_")
                || l.contains("Uncaught")
                || l.contains("Not allowed to load local resource")
        })
        .collect()
}
