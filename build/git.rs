//! The git state a build records for the run manifest: the commit, whether tracked files differ
//! from it, and the files whose change means it must be read again. Used by `build.rs`; kept in a
//! file of its own so the tests can run it on a repository of their own.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What git says about the work tree a build compiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitState {
    /// `git rev-parse HEAD`.
    pub commit: String,
    /// Tracked files differ from the commit (staged or not); untracked files do not count.
    pub dirty: bool,
    /// Files that change when HEAD moves to another commit: HEAD itself, the branch's own ref
    /// (or, while the branch is only packed, the folder its loose ref will appear in) and
    /// `packed-refs`, where they exist.
    pub watch: Vec<PathBuf>,
}

impl GitState {
    /// The commit as the manifest records it: the hash, with `-dirty` appended (as `git describe
    /// --dirty` does) when the work tree had changes.
    pub fn describe(&self) -> String {
        if self.dirty {
            format!("{}-dirty", self.commit)
        } else {
            self.commit.clone()
        }
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The state of the repository holding `dir`; `None` when there is none (or no git).
pub fn read(dir: &Path) -> Option<GitState> {
    let commit = git(dir, &["rev-parse", "--verify", "-q", "HEAD"])?;
    // Reading must not refresh the index: that would rewrite a file a build may watch.
    let status = git(
        dir,
        &[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    )?;
    let git_path = |p: &str| {
        git(
            dir,
            &["rev-parse", "--path-format=absolute", "--git-path", p],
        )
        .map(PathBuf::from)
    };
    let mut watch = vec![git_path("HEAD")?];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        let loose = git_path(&branch)?;
        if loose.exists() {
            watch.push(loose);
        } else if let Some(parent) = loose.ancestors().skip(1).find(|p| p.is_dir()) {
            watch.push(parent.to_path_buf());
        }
    }
    let packed = git_path("packed-refs")?;
    if packed.exists() {
        watch.push(packed);
    }
    Some(GitState {
        commit,
        dirty: !status.is_empty(),
        watch,
    })
}
