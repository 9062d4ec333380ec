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
