//! Adds an rpath to libtorch so binaries and tests run with nothing exported, and records the
//! libtorch version and git commit for the run manifest.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let dir = Path::new(&dir);
        println!(
            "cargo:rustc-link-arg=-Wl,-rpath,{}",
            dir.join("lib").display()
        );
        let version_file = dir.join("build-version");
        println!("cargo:rerun-if-changed={}", version_file.display());
        if let Ok(v) = std::fs::read_to_string(&version_file) {
            println!("cargo:rustc-env=MASKOMALY_LIBTORCH_VERSION={}", v.trim());
        }
    }
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-env-changed=MASKOMALY_GIT_COMMIT");
    let commit = std::env::var("MASKOMALY_GIT_COMMIT").ok().or_else(|| {
        let out = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    if let Some(c) = commit {
        println!("cargo:rustc-env=MASKOMALY_GIT_COMMIT={c}");
    }
}
