//! `maskomaly verify OUTPUT`: re-checks a finished run against its `manifest.json`.
//!
//! * Every output the manifest lists is re-hashed (SHA-256): *missing* and *changed* files are
//!   reported.
//! * Every file under OUTPUT that the manifest does not list is reported as *extra*, except the
//!   run's own bookkeeping: `manifest.json`, `manifests/`, `ro-crate-metadata.json`, and temporary
//!   files (hidden names) that a killed run may leave and a rerun ignores.
//! * `--rerun` runs the same job again (the resolved job recorded in the manifest, input root as
//!   recorded or `--input`) into a temporary folder by spawning this executable, then compares the
//!   maps item by item: the HDF5 `value` datasets numerically (max |a − b| ≤ tolerance) and every
//!   other output by SHA-256 when the tolerance is 0. The default tolerance is **0 on CPU**: the
//!   CPU path is deterministic, so a rerun must be bit-identical. On CUDA it is 1e-3 (TF32 and
//!   non-deterministic kernels); pass `--tolerance` to choose.
//!
//! Exit codes: 0 clean, 1 any mismatch (or a run that is not `complete`), other codes for errors.

use crate::exit::ExitCode;
use crate::merge::{read_manifest, MergeError};
pub use crate::output::manifest::sha256_file;
use crate::output::pathtext;
use crate::shard;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// `maskomaly verify` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Output root holding `manifest.json`.
    pub output: PathBuf,
    /// Also run the job again into a temporary folder and compare the maps.
    #[arg(long)]
    pub rerun: bool,
    /// Input root (default: the root recorded in the manifest): every input is checked against
    /// its recorded size and time, else its SHA-256; `--rerun` reads it too.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Checkpoint for `--rerun` (default: the one recorded; its SHA-256 must match the record).
    #[arg(long, requires = "rerun")]
    pub checkpoint: Option<PathBuf>,
    /// Device for `--rerun` (default: cpu).
    #[arg(long, requires = "rerun", default_value = "cpu")]
    pub device: String,
    /// Largest accepted |difference| between map values (default: 0 on cpu, 1e-3 on cuda).
    #[arg(long, requires = "rerun")]
    pub tolerance: Option<f64>,
    /// Keep the rerun's folder (its path is printed).
    #[arg(long, requires = "rerun")]
    pub keep: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Manifest(#[from] MergeError),
    #[error("{path} does not exist{hint}")]
    NoManifest { path: PathBuf, hint: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot rerun: {0}")]
    Rerun(String),
}

impl VerifyError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            VerifyError::Manifest(e) => e.exit_code(),
            VerifyError::NoManifest { .. } => ExitCode::NoInput,
            VerifyError::Io { .. } => ExitCode::Io,
            VerifyError::Rerun(_) => ExitCode::Software,
        }
    }
}

/// What verify found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub checked: usize,
    pub missing: Vec<String>,
    /// (path, recorded sha256, found sha256)
    pub changed: Vec<(String, String, String)>,
    pub extra: Vec<String>,
    /// Inputs that are no longer the bytes their outputs were made from (or are gone).
    pub changed_inputs: Vec<String>,
    /// Run-level problems (status not complete, failed items).
    pub notes: Vec<String>,
    pub status_ok: bool,
    pub rerun: Option<RerunReport>,
}

/// Result of `--rerun`.
#[derive(Debug, Default)]
pub struct RerunReport {
    pub tolerance: f64,
    pub compared: usize,
    pub max_abs_diff: f64,
    /// One line per difference beyond tolerance or per output the rerun did not produce.
    pub mismatches: Vec<String>,
    pub folder: PathBuf,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.status_ok
            && self.missing.is_empty()
            && self.changed.is_empty()
            && self.extra.is_empty()
            && self.changed_inputs.is_empty()
            && self.rerun.as_ref().is_none_or(|r| r.mismatches.is_empty())
    }

    pub fn exit_code(&self) -> ExitCode {
        if self.is_clean() {
            ExitCode::Ok
        } else {
            ExitCode::SomeFailed
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        for n in &self.notes {
            s += &format!("note: {n}\n");
        }
        for p in &self.missing {
            s += &format!("missing: {p}\n");
        }
        for (p, want, got) in &self.changed {
            s += &format!("changed: {p} (sha256 {got}, manifest says {want})\n");
        }
        for p in &self.extra {
            s += &format!("extra: {p} (not in the manifest)\n");
        }
        for p in &self.changed_inputs {
            s += &format!("input changed: {p}\n");
        }
        if let Some(r) = &self.rerun {
            for m in &r.mismatches {
                s += &format!("rerun differs: {m}\n");
            }
            s += &format!(
                "rerun: {} maps compared, max |difference| {:e}, tolerance {:e} ({})\n",
                r.compared,
                r.max_abs_diff,
                r.tolerance,
                if r.tolerance == 0.0 {
                    "bit-identical required"
                } else {
                    "numeric"
                }
            );
        }
        s += &format!(
            "verify: {} outputs checked: {} missing, {} changed, {} extra; {} inputs changed -> {}\n",
            self.checked,
            self.missing.len(),
            self.changed.len(),
            self.extra.len(),
            self.changed_inputs.len(),
            if self.is_clean() { "clean" } else { "MISMATCH" }
        );
        s
    }
}

/// Files a run writes besides its outputs, and leftovers that a rerun ignores.
fn is_bookkeeping(rel: &Path) -> bool {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    if first == shard::MANIFESTS_DIR
        || rel == Path::new("manifest.json")
        || rel == Path::new("manifest.json.journal")
        || rel == Path::new(crate::rocrate::FILE_NAME)
    {
        return true;
    }
    // Hidden names cover the runner's temporary files (`.name.tmp-PID`) that a killed run leaves.
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.starts_with('.')
}

/// Whether an item's paths are written escaped ([`crate::output::pathtext`]).
fn escaped(it: &Value) -> bool {
    it.get("path_escaped")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Every listed output as (path as written in the manifest, path on disk, recorded SHA-256).
fn manifest_outputs(m: &Value) -> Vec<(String, PathBuf, String)> {
    let mut out = Vec::new();
    for it in m
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for o in it
            .get("outputs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(p) = o.get("path").and_then(Value::as_str) {
                let h = o
                    .get("sha256")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let on_disk = pathtext::decode(p, escaped(it)).unwrap_or_else(|_| PathBuf::from(p));
                out.push((p.to_string(), on_disk, h));
            }
        }
    }
    out
}

/// Checks every recorded input under `root` against its record: same size and modification time,
/// else the same SHA-256. Returns the inputs that changed or are gone.
fn changed_inputs(m: &Value, root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for it in m
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(text), Some(want)) = (
            it.get("input").and_then(Value::as_str),
            it.get("input_sha256").and_then(Value::as_str),
        ) else {
            continue;
        };
        // Failed items made no output; nothing of theirs can be stale.
        if it.get("status").and_then(Value::as_str) == Some("failed") {
            continue;
        }
        let Ok(rel) = pathtext::decode(text, escaped(it)) else {
            out.push(format!("{text} (unreadable record)"));
            continue;
        };
        let path = root.join(rel);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                out.push(format!("{text} ({e})"));
                continue;
            }
        };
        let same_stat = it.get("input_size").and_then(Value::as_u64) == Some(meta.len())
            && it.get("input_mtime_ns").and_then(Value::as_i64)
                == Some(crate::pipeline::decode::mtime_ns(&meta));
        if same_stat {
            continue;
        }
        match sha256_file(&path) {
            Ok(h) if h == want => {}
            Ok(h) => out.push(format!("{text} (sha256 {h}, manifest says {want})")),
            Err(e) => out.push(format!("{text} ({e})")),
        }
    }
    out
}

/// Checks the files under `args.output` against its manifest; with `--rerun`, also the maps.
pub fn verify(args: &VerifyArgs) -> Result<VerifyReport, VerifyError> {
    let path = shard::manifest_path(&args.output, None);
    if !path.is_file() {
        let hint = if args.output.join(shard::MANIFESTS_DIR).is_dir() {
            format!(
                "\nhint: this output holds shard manifests; run `maskomaly merge {}` first",
                args.output.display()
            )
        } else {
            String::new()
        };
        return Err(VerifyError::NoManifest { path, hint });
    }
    let m = read_manifest(&path)?;
    let mut report = VerifyReport::default();

    let status = m.get("status").and_then(Value::as_str).unwrap_or("unknown");
    report.status_ok = status == "complete";
    if !report.status_ok {
        report
            .notes
            .push(format!("the run's status is '{status}', not 'complete'"));
    }
    let failed = m
        .pointer("/counts/failed")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if failed > 0 {
        report.notes.push(format!(
            "{failed} items failed in the run (listed in the manifest with their error)"
        ));
    }

    let listed = manifest_outputs(&m);
    let mut known = BTreeSet::new();
    for (rel, on_disk, want) in &listed {
        known.insert(on_disk.clone());
        report.checked += 1;
        let p = args.output.join(on_disk);
        match sha256_file(&p) {
            Ok(got) if &got == want => {}
            Ok(got) => report.changed.push((rel.clone(), want.clone(), got)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => report.missing.push(rel.clone()),
            Err(source) => return Err(VerifyError::Io { path: p, source }),
        }
    }

    for entry in walkdir::WalkDir::new(&args.output).sort_by_file_name() {
        let entry = entry.map_err(|e| VerifyError::Io {
            path: e.path().unwrap_or(&args.output).to_path_buf(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("walk error")),
        })?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(&args.output)
            .unwrap_or(entry.path());
        if !known.contains(rel) && !is_bookkeeping(rel) {
            report.extra.push(rel.to_string_lossy().into_owned());
        }
    }

    // Inputs: only where their folder can be read (a run checked on another machine may not
    // have them; that is said, not counted as a change).
    let input_root = args.input.clone().or_else(|| {
        m.pointer("/job/dataset/root")
            .and_then(Value::as_str)
            .map(PathBuf::from)
    });
    match input_root {
        Some(root) if root.is_dir() => report.changed_inputs = changed_inputs(&m, &root),
        Some(root) => report.notes.push(format!(
            "inputs not checked: {} is not a readable folder (pass --input DIR)",
            root.display()
        )),
        None => report
            .notes
            .push("inputs not checked: the manifest records no input root".into()),
    }

    if args.rerun {
        report.rerun = Some(rerun(args, &m)?);
    }
    Ok(report)
}

/// Runs the recorded job again into a fresh folder and compares its maps with the recorded ones.
fn rerun(args: &VerifyArgs, m: &Value) -> Result<RerunReport, VerifyError> {
    let tolerance = args
        .tolerance
        .unwrap_or(if args.device == "cpu" { 0.0 } else { 1e-3 });
    let mut job = m
        .get("job")
        .cloned()
        .ok_or_else(|| VerifyError::Rerun("the manifest records no job".into()))?;
    let folder = std::env::temp_dir().join(format!(
        "maskomaly-verify-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let out = folder.join("output");
    std::fs::create_dir_all(&out).map_err(|source| VerifyError::Io {
        path: folder.clone(),
        source,
    })?;
    if let Some(root) = &args.input {
        job["dataset"]["root"] = Value::String(root.to_string_lossy().into_owned());
    }
    job["output"]["root"] = Value::String(out.to_string_lossy().into_owned());
    // JSON is YAML: the job loader reads this file like any job file.
    let job_file = folder.join("job.json");
    std::fs::write(
        &job_file,
        serde_json::to_vec_pretty(&job).expect("JSON values always serialise"),
    )
    .map_err(|source| VerifyError::Io {
        path: job_file.clone(),
        source,
    })?;

    let checkpoint = match &args.checkpoint {
        Some(c) => c.clone(),
        None => PathBuf::from(
            m.pointer("/checkpoint/path")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    VerifyError::Rerun(
                        "the manifest records no checkpoint path; pass --checkpoint".into(),
                    )
                })?,
        ),
    };
    let exe = std::env::current_exe()
        .map_err(|e| VerifyError::Rerun(format!("cannot find this executable: {e}")))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("run")
        .arg("--job")
        .arg(&job_file)
        .arg("--output")
        .arg(&out)
        .arg("--checkpoint")
        .arg(&checkpoint)
        .arg("--device")
        .arg(&args.device);
    // The rerun is one whole run, even when verify itself runs inside an array task.
    for var in [
        "SLURM_ARRAY_TASK_ID",
        "JOB_COMPLETION_INDEX",
        "AWS_BATCH_JOB_ARRAY_INDEX",
        shard::SHARDS_ENV,
    ] {
        cmd.env_remove(var);
    }
    log::info!("rerun: {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| VerifyError::Rerun(format!("cannot start the rerun: {e}")))?;

    let mut report = RerunReport {
        tolerance,
        folder: folder.clone(),
        ..Default::default()
    };
    let rerun_manifest = read_manifest(&out.join("manifest.json"));
    if !status.success() {
        report
            .mismatches
            .push(format!("the rerun exited with {status}"));
    }
    if let Ok(rm) = &rerun_manifest {
        let want = m.pointer("/checkpoint/sha256");
        if want.is_some() && rm.pointer("/checkpoint/sha256") != want {
            report
                .mismatches
                .push("the rerun used a checkpoint with a different SHA-256".into());
        }
    }

    for (rel, on_disk, want_sha) in manifest_outputs(m) {
        let a = args.output.join(&on_disk);
        let b = out.join(&on_disk);
        if !b.is_file() {
            report
                .mismatches
                .push(format!("{rel}: not produced by the rerun"));
            continue;
        }
        if rel.ends_with(".hdf5") || rel.ends_with(".h5") {
            report.compared += 1;
            match (read_value(&a), read_value(&b)) {
                (Ok((sa, va)), Ok((sb, vb))) => {
                    if sa != sb {
                        report
                            .mismatches
                            .push(format!("{rel}: shape {sa:?} vs {sb:?}"));
                        continue;
                    }
                    let d = max_abs_diff(&va, &vb);
                    report.max_abs_diff = report.max_abs_diff.max(d);
                    if d > tolerance || d.is_nan() {
                        report
                            .mismatches
                            .push(format!("{rel}: max |difference| {d:e} > {tolerance:e}"));
                    }
                }
                (Err(e), _) | (_, Err(e)) => report.mismatches.push(format!("{rel}: {e}")),
            }
        } else if tolerance == 0.0 {
            let got = sha256_file(&b).map_err(|source| VerifyError::Io {
                path: b.clone(),
                source,
            })?;
            if got != want_sha {
                report.mismatches.push(format!("{rel}: sha256 differs"));
            }
        }
    }
    if !args.keep && report.mismatches.is_empty() {
        let _ = std::fs::remove_dir_all(&folder);
    } else {
        eprintln!("verify: rerun output kept in {}", folder.display());
    }
    Ok(report)
}

/// NaN-aware: two NaNs at one pixel agree, a NaN against a number does not.
fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| match (x.is_nan(), y.is_nan()) {
            (true, true) => 0.0,
            (false, false) => (x - y).abs(),
            _ => f64::NAN,
        })
        .fold(0.0, |m, d| {
            if d.is_nan() || m.is_nan() {
                f64::NAN
            } else {
                m.max(d)
            }
        })
}

/// The `value` dataset of an anomaly-map HDF5 file, as f64 with its shape.
pub fn read_value(path: &Path) -> Result<(Vec<usize>, Vec<f64>), String> {
    let err = |e: hdf5::Error| format!("{}: {e}", path.display());
    let f = hdf5::File::open(path).map_err(err)?;
    let ds = f.dataset("value").map_err(err)?;
    let dt = ds.dtype().map_err(err)?;
    let v: Vec<f64> = if dt.is::<half::f16>() {
        ds.read_raw::<half::f16>()
            .map_err(err)?
            .into_iter()
            .map(f64::from)
            .collect()
    } else if dt.is::<f32>() {
        ds.read_raw::<f32>()
            .map_err(err)?
            .into_iter()
            .map(f64::from)
            .collect()
    } else if dt.is::<f64>() {
        ds.read_raw::<f64>().map_err(err)?
    } else {
        return Err(format!(
            "{}: `value` is not a float16/32/64 dataset",
            path.display()
        ));
    };
    Ok((ds.shape(), v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write_h5(path: &Path, values: &[f32]) {
        let f = hdf5::File::create(path).unwrap();
        f.new_dataset::<f32>()
            .shape([2, values.len() / 2])
            .create("value")
            .unwrap()
            .write_raw(values)
            .unwrap();
    }

    /// An output root with two items (an HDF5 and a PNG each) and a matching manifest.
    fn run_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sub")).unwrap();
        write_h5(&d.path().join("a.hdf5"), &[0.0, 0.25, 0.5, 1.0]);
        std::fs::write(d.path().join("a.png"), b"png-a").unwrap();
        write_h5(&d.path().join("sub/b.hdf5"), &[1.0, 0.0]);
        std::fs::write(d.path().join("sub/b.png"), b"png-b").unwrap();
        let out = |p: &str| json!({"path": p, "sha256": sha256_file(&d.path().join(p)).unwrap()});
        let m = json!({
            "format": crate::merge::MANIFEST_FORMAT, "run_id": "r", "status": "complete",
            "counts": {"total": 2, "written": 2, "failed": 0, "skipped": 0},
            "items": [
                {"input": "a.png", "stem": "a", "status": "written", "outputs": [out("a.hdf5"), out("a.png")]},
                {"input": "sub/b.png", "stem": "sub/b", "status": "written", "outputs": [out("sub/b.hdf5"), out("sub/b.png")]},
            ]
        });
        crate::merge::write_json_atomic(&d.path().join("manifest.json"), &m).unwrap();
        // Bookkeeping that is not an output.
        std::fs::create_dir_all(d.path().join("manifests")).unwrap();
        std::fs::write(d.path().join("manifests/shard-00000-of-00001.json"), b"{}").unwrap();
        std::fs::write(d.path().join("ro-crate-metadata.json"), b"{}").unwrap();
        std::fs::write(d.path().join("sub/.b.png.tmp"), b"half").unwrap();
        d
    }

    fn check(d: &Path) -> VerifyReport {
        let args = VerifyArgs {
            output: d.to_path_buf(),
            rerun: false,
            input: None,
            checkpoint: None,
            device: "cpu".into(),
            tolerance: None,
            keep: false,
        };
        verify(&args).unwrap()
    }

    #[test]
    fn untouched_output_is_clean() {
        let d = run_dir();
        let r = check(d.path());
        assert!(r.is_clean(), "{}", r.render());
        assert_eq!(r.checked, 4);
        assert_eq!(r.exit_code(), ExitCode::Ok);
    }

    #[test]
    fn flipped_byte_is_a_change() {
        let d = run_dir();
        let p = d.path().join("a.hdf5");
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&p, bytes).unwrap();
        let r = check(d.path());
        assert_eq!(r.changed.len(), 1, "{}", r.render());
        assert_eq!(r.changed[0].0, "a.hdf5");
        assert_eq!(r.exit_code(), ExitCode::SomeFailed);
        assert!(r.render().contains("changed: a.hdf5"));
    }

    #[test]
    fn deleted_output_is_missing() {
        let d = run_dir();
        std::fs::remove_file(d.path().join("sub/b.png")).unwrap();
        let r = check(d.path());
        assert_eq!(r.missing, ["sub/b.png"]);
        assert_eq!(r.exit_code(), ExitCode::SomeFailed);
    }

    #[test]
    fn extra_file_is_reported() {
        let d = run_dir();
        std::fs::write(d.path().join("sub/c.png"), b"stray").unwrap();
        let r = check(d.path());
        assert_eq!(r.extra, ["sub/c.png"]);
        assert_eq!(r.exit_code(), ExitCode::SomeFailed);
    }

    #[test]
    fn unfinished_run_is_not_clean() {
        let d = run_dir();
        let p = d.path().join("manifest.json");
        let mut m = read_manifest(&p).unwrap();
        m["status"] = json!("interrupted");
        crate::merge::write_json_atomic(&p, &m).unwrap();
        let r = check(d.path());
        assert!(!r.is_clean());
        assert!(r.render().contains("'interrupted'"));
    }

    #[test]
    fn no_manifest_hints_at_merge() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("manifests")).unwrap();
        let args = VerifyArgs {
            output: d.path().to_path_buf(),
            rerun: false,
            input: None,
            checkpoint: None,
            device: "cpu".into(),
            tolerance: None,
            keep: false,
        };
        let e = verify(&args).unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::NoInput);
        assert!(e.to_string().contains("maskomaly merge"), "{e}");
    }

    #[test]
    fn values_are_read_from_any_float_width() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h.hdf5");
        let f = hdf5::File::create(&p).unwrap();
        let vals = [half::f16::from_f32(0.5), half::f16::from_f32(0.25)];
        f.new_dataset::<half::f16>()
            .shape([1, 2])
            .create("value")
            .unwrap()
            .write_raw(&vals)
            .unwrap();
        drop(f);
        assert_eq!(read_value(&p).unwrap(), (vec![1, 2], vec![0.5, 0.25]));
    }

    #[test]
    fn differences_are_nan_aware() {
        assert_eq!(max_abs_diff(&[0.0, 1.0], &[0.0, 1.0]), 0.0);
        assert_eq!(max_abs_diff(&[0.0, 1.0], &[0.5, 1.0]), 0.5);
        assert_eq!(max_abs_diff(&[f64::NAN], &[f64::NAN]), 0.0);
        assert!(max_abs_diff(&[f64::NAN, 0.0], &[0.0, 0.0]).is_nan());
    }
}
