//! Adds an rpath to libtorch so binaries and tests run with nothing exported, and records the
//! libtorch version and git commit for the run manifest.
use std::path::Path;

#[path = "build/git.rs"]
mod git;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let dir = Path::new(&dir);
        println!(
            "cargo:rustc-link-arg=-Wl,-rpath,{}",
            dir.join("lib").display()
        );
        if let Some(v) = libtorch_version(dir) {
            println!("cargo:rustc-env=MASKOMALY_LIBTORCH_VERSION={v}");
        }
    }
    git_commit();
}

/// The version of the libtorch at `dir`: its `build-version` file (written by the release archives
/// and scripts/setup.sh), else the `__version__` of a Python wheel's `version.py`. Unknown otherwise:
/// the manifest then says so rather than guess.
fn libtorch_version(dir: &Path) -> Option<String> {
    let build_version = dir.join("build-version");
    let version_py = dir.join("version.py");
    // Only files that exist: cargo reruns a script on every build while a watched path is missing.
    for f in [&build_version, &version_py]
        .into_iter()
        .filter(|f| f.exists())
    {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    if let Ok(v) = std::fs::read_to_string(&build_version) {
        return Some(v.trim().to_string()).filter(|v| !v.is_empty());
    }
    let text = std::fs::read_to_string(&version_py).ok()?;
    text.lines().find_map(|l| {
        let v = l.strip_prefix("__version__ = ")?.trim();
        Some(v.trim_matches(|c| c == '\'' || c == '"').to_string()).filter(|v| !v.is_empty())
    })
}

/// Records the commit the binary is built from (`-dirty` when tracked files differ from it), or
/// `MASKOMALY_GIT_COMMIT` when the build has no repository (a container build). The script reruns
/// when HEAD, the branch's ref or `packed-refs` change (a new commit, a checkout) and when the
/// compiled sources change (which may make the tree dirty or clean).
fn git_commit() {
    println!("cargo:rerun-if-env-changed=MASKOMALY_GIT_COMMIT");
    for p in ["src", "build", "build.rs", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={p}");
    }
    let commit = match std::env::var("MASKOMALY_GIT_COMMIT") {
        Ok(c) if !c.is_empty() => Some(c),
        _ => git::read(Path::new(".")).map(|state| {
            for p in &state.watch {
                println!("cargo:rerun-if-changed={}", p.display());
            }
            state.describe()
        }),
    };
    if let Some(c) = commit {
        println!("cargo:rustc-env=MASKOMALY_GIT_COMMIT={c}");
    }
}
