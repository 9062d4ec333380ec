//! Helpers shared by the integration tests that drive the `maskomaly` binary.
#![allow(dead_code)]

#[path = "../../src/parity.rs"]
pub mod parity;

use std::path::{Path, PathBuf};
use std::process::Output;

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_maskomaly"))
}

/// A file under `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The tiny TorchScript model fixture.
pub fn tiny_model() -> PathBuf {
    fixture("tiny_maskformer.pt")
}

/// A process's exit code (-1 when a signal ended it).
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A process's standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A tmpfs mounted by [`mount_tmpfs`], unmounted at drop.
pub struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Mounts a tmpfs of `size` (as `mount -o size=` takes it) at `dir`, creating the folder. Only
/// root can, so the tests that call this are `#[ignore]`d and `make test` runs them; without the
/// right the test fails here with the reason.
pub fn mount_tmpfs(dir: &Path, size: &str) -> Tmpfs {
    std::fs::create_dir_all(dir).unwrap();
    let o = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
    assert!(
        o.status.success(),
        "cannot mount a tmpfs at {} (this test needs root): {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr).trim()
    );
    Tmpfs(dir.to_path_buf())
}
