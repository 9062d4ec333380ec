//! Helpers shared by the integration tests that drive the `maskomaly` binary.
#![allow(dead_code)]

#[path = "../../src/parity.rs"]
pub mod parity;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// `maskomaly ARGS` as a command: info logging, and none of the batch-system variables that would
/// make a run one shard of an array.
pub fn command<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    let mut c = Command::new(bin());
    c.args(args).env("RUST_LOG", "maskomaly=info");
    for var in [
        "SLURM_ARRAY_TASK_ID",
        "JOB_COMPLETION_INDEX",
        "AWS_BATCH_JOB_ARRAY_INDEX",
        "MASKOMALY_SHARDS",
    ] {
        c.env_remove(var);
    }
    c
}

/// What `maskomaly ARGS` ([`command`]) printed and returned.
pub fn cli(args: &[&str]) -> Output {
    command(args).output().expect("binary runs")
}

/// `maskomaly run --job JOB EXTRA` as a command ([`command`]).
pub fn run_cmd(job: impl AsRef<Path>, extra: &[&str]) -> Command {
    let mut c = command(["run", "--job"]);
    c.arg(job.as_ref()).args(extra);
    c
}

/// What `maskomaly run --job JOB EXTRA` printed and returned.
pub fn run_job(job: impl AsRef<Path>, extra: &[&str]) -> Output {
    run_cmd(job, extra).output().expect("binary runs")
}

/// What `maskomaly run --input INPUT --output OUTPUT --checkpoint MODEL --device cpu EXTRA` (no job
/// file) printed and returned.
pub fn run_on(input: &Path, output: &Path, model: &Path, extra: &[&str]) -> Output {
    let mut c = command(["run", "--input"]);
    c.arg(input)
        .arg("--output")
        .arg(output)
        .arg("--checkpoint")
        .arg(model)
        .args(["--device", "cpu"])
        .args(extra);
    c.output().expect("binary runs")
}

/// What `maskomaly verify OUT` printed and returned.
pub fn verify(out: &Path) -> Output {
    let mut c = command(["verify"]);
    c.arg(out).output().expect("binary runs")
}

/// What `maskomaly merge OUT` printed and returned.
pub fn merge(out: &Path) -> Output {
    let mut c = command(["merge"]);
    c.arg(out).output().expect("binary runs")
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

/// Sends `sig` to a child process (not yet waited for).
pub fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: kill(2) takes any pid and signal number; the pid is our own child's, which is not
    // reaped before the caller waits for it, so it names no other process.
    let r = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(
        r,
        0,
        "kill({}, {sig}): {}",
        child.id(),
        std::io::Error::last_os_error()
    );
}

/// The items of a run's output folder that are finished (written or skipped), by input, and the
/// run's total: the records of the manifest at `manifest` and of its journal (a line per item this
/// run finished), each item once.
pub fn finished_items(manifest: &Path) -> (usize, usize) {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let m: serde_json::Value = serde_json::from_str(&read(manifest)).unwrap_or_default();
    let total = m["counts"]["total"].as_u64().unwrap_or(0) as usize;
    let journal = read(&PathBuf::from(format!("{}.journal", manifest.display())));
    let mut done = std::collections::BTreeSet::new();
    let from_journal = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    for r in m["items"]
        .as_array()
        .into_iter()
        .flatten()
        .cloned()
        .chain(from_journal)
    {
        if r["status"] == "written" || r["status"] == "skipped" {
            done.insert(r["input"].to_string());
        }
    }
    (done.len(), total)
}

/// Stops (SIGSTOP) a `maskomaly run` into a fresh output folder, whose manifest is at `manifest`,
/// once it is mid-run: it has finished at least one item (the journal gets a line per finished
/// item) and, checked while it is stopped, has not exited and has not finished every item. So a
/// signal sent next lands mid-run however fast the machine. Returns the finished items. Fails the
/// test if the run ends first or finishes nothing within two minutes.
pub fn stop_mid_run(child: &mut std::process::Child, manifest: &Path) -> usize {
    let t = std::time::Instant::now();
    while finished_items(manifest).0 == 0 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it finished an item");
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(120),
            "the run finished no item in two minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    signal(child, libc::SIGSTOP);
    if let Some(status) = child.try_wait().unwrap() {
        panic!("the run ended ({status}) before it could be stopped mid-run");
    }
    let (done, total) = finished_items(manifest);
    assert!(
        done >= 1 && done < total,
        "stopped after the run had finished: {done} of {total} items done"
    );
    done
}

/// Sends `sig` to a `maskomaly run` into a fresh output folder while it is mid-run
/// ([`stop_mid_run`]), then lets it go on (SIGCONT) to handle the signal. Returns the items it had
/// finished when it was stopped.
pub fn signal_mid_run(child: &mut std::process::Child, manifest: &Path, sig: i32) -> usize {
    let done = stop_mid_run(child, manifest);
    signal(child, sig);
    signal(child, libc::SIGCONT);
    done
}

/// Whether the test function `path` names exists: `a::b::tests::f` in `src/a/b/tests.rs`,
/// `src/a/b.rs` or `src/a/b/mod.rs` (a trailing name prefix like `parity` matches `parity_*`), and
/// `runner::f` in `tests/runner.rs`. None when `path` names no test file at all.
pub fn test_exists(path: &str) -> Option<bool> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let parts: Vec<&str> = path.split("::").collect();
    let (name, module) = parts.split_last()?;
    let has =
        |f: PathBuf| std::fs::read_to_string(f).is_ok_and(|t| t.contains(&format!("fn {name}")));
    if let [file] = module {
        let f = root.join("tests").join(format!("{file}.rs"));
        return f.is_file().then(|| has(f));
    }
    if !module.contains(&"tests") {
        return None;
    }
    let dir = module
        .iter()
        .filter(|m| **m != "tests")
        .fold(root.join("src"), |d, m| d.join(m));
    Some(
        [
            dir.join("tests.rs"),
            dir.with_extension("rs"),
            dir.join("mod.rs"),
        ]
        .into_iter()
        .any(has),
    )
}
