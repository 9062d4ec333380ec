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

use super::manifest::{ItemStatus, Manifest, ManifestError, RunStatus};
use super::shard;
use super::stream::ManifestReader;
use crate::diagnostic::{Diagnose, ExitCode};
use crate::output::digest::sha256_file;
use crate::output::hdf5::read_score;
use crate::output::pathtext;
use std::path::{Path, PathBuf};

/// What `verify` checks: the outputs under `output` against its manifest, the inputs (under
/// `input`, default the recorded root), and with `rerun` the maps of a fresh run.
#[derive(Debug, Clone)]
pub struct Request {
    pub output: PathBuf,
    pub input: Option<PathBuf>,
    pub rerun: Option<Rerun>,
}

/// How `verify --rerun` runs the job again.
#[derive(Debug, Clone)]
pub struct Rerun {
    /// Default: the recorded checkpoint (its SHA-256 must match the record).
    pub checkpoint: Option<PathBuf>,
    pub device: String,
    /// Largest accepted |difference| between map values (default: 0 on cpu, 1e-3 otherwise).
    pub tolerance: Option<f64>,
    /// Keep the rerun's folder.
    pub keep: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{path} does not exist")]
    NoManifest {
        path: PathBuf,
        /// The output holds shard manifests (a merge is due).
        shards: bool,
    },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot rerun: {what}")]
    Rerun {
        what: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Diagnose for VerifyError {
    fn exit_code(&self) -> ExitCode {
        match self {
            VerifyError::Manifest(e) => e.exit_code(),
            VerifyError::NoManifest { .. } => ExitCode::NoInput,
            VerifyError::Io { .. } => ExitCode::Io,
            VerifyError::Rerun { .. } => ExitCode::Software,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            VerifyError::NoManifest { path, shards: true } => Some(format!(
                "this output holds shard manifests; run `maskomaly merge {}` first",
                path.parent().unwrap_or(Path::new(".")).display()
            )),
            _ => None,
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
    if first == crate::output::MANIFESTS_DIR
        || rel == Path::new("manifest.json")
        || rel == Path::new("manifest.json.journal")
        || rel == Path::new(super::rocrate::FILE_NAME)
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

/// One output the manifest lists.
struct Listed {
    /// As the manifest writes it (for messages).
    text: String,
    /// Relative to the output root.
    path: PathBuf,
    sha256: String,
}

/// Calls `f` with every output the manifest lists, reading its items one at a time.
fn for_each_output(
    r: &ManifestReader,
    mut f: impl FnMut(Listed) -> Result<(), VerifyError>,
) -> Result<(), VerifyError> {
    for it in r.items()? {
        for o in it?.outputs {
            f(Listed {
                text: pathtext::encode(&o.path).0,
                path: o.path,
                sha256: o.sha256,
            })?;
        }
    }
    Ok(())
}

/// A 128-bit digest of a relative path: the set of listed outputs is held as these, sorted, so
/// that it stays small at a million outputs.
fn path_key(p: &Path) -> u128 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(p.as_os_str().as_encoded_bytes());
    u128::from_le_bytes(d[..16].try_into().expect("16 bytes"))
}

/// Checks every recorded input under `root` against its record: same size and modification time,
/// else the same SHA-256. Returns the inputs that changed or are gone.
fn changed_inputs(r: &ManifestReader, root: &Path) -> Result<Vec<String>, VerifyError> {
    let mut out = Vec::new();
    for it in r.items()? {
        let it = it?;
        let Some(want) = &it.input_sha256 else {
            continue;
        };
        // Failed items made no output; nothing of theirs can be stale.
        if it.status == ItemStatus::Failed {
            continue;
        }
        let text = pathtext::encode(&it.input).0;
        let path = root.join(&it.input);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                out.push(format!("{text} ({e})"));
                continue;
            }
        };
        let same_stat = it.input_size == Some(meta.len())
            && it.input_mtime_ns == Some(super::manifest::mtime_ns(&meta));
        if same_stat {
            continue;
        }
        match sha256_file(&path) {
            Ok(h) if &h == want => {}
            Ok(h) => out.push(format!("{text} (sha256 {h}, manifest says {want})")),
            Err(e) => out.push(format!("{text} ({e})")),
        }
    }
    Ok(out)
}

/// Checks the files under `args.output` against its manifest; with `args.rerun`, also the maps.
pub fn verify(args: &Request) -> Result<VerifyReport, VerifyError> {
    let path = shard::manifest_path(&args.output, None);
    if !path.is_file() {
        let shards = args.output.join(crate::output::MANIFESTS_DIR).is_dir();
        return Err(VerifyError::NoManifest { path, shards });
    }
    let reader = ManifestReader::open(&path)?;
    let m = reader.header();
    let mut report = VerifyReport {
        status_ok: m.status == RunStatus::Complete,
        ..Default::default()
    };
    if !report.status_ok {
        report.notes.push(format!(
            "the run's status is '{}', not 'complete'",
            m.status.as_str()
        ));
    }
    if m.counts.failed > 0 {
        report.notes.push(format!(
            "{} items failed in the run (listed in the manifest with their error)",
            m.counts.failed
        ));
    }
    check_outputs(&args.output, &reader, &mut report)?;
    check_inputs(args.input.as_deref(), &reader, &mut report)?;
    if let Some(how) = &args.rerun {
        report.rerun = Some(rerun(args, how, &reader)?);
    }
    Ok(report)
}

/// Re-hashes every listed output, and lists the files that are not outputs.
fn check_outputs(
    root: &Path,
    r: &ManifestReader,
    report: &mut VerifyReport,
) -> Result<(), VerifyError> {
    let mut known = Vec::new();
    for_each_output(r, |o| {
        report.checked += 1;
        let p = root.join(&o.path);
        match sha256_file(&p) {
            Ok(got) if got == o.sha256 => {}
            Ok(got) => report.changed.push((o.text.clone(), o.sha256.clone(), got)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report.missing.push(o.text.clone())
            }
            Err(source) => return Err(VerifyError::Io { path: p, source }),
        }
        known.push(path_key(&o.path));
        Ok(())
    })?;
    known.sort_unstable();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.map_err(|e| VerifyError::Io {
            path: e.path().unwrap_or(root).to_path_buf(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("walk error")),
        })?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        if known.binary_search(&path_key(rel)).is_err() && !is_bookkeeping(rel) {
            report.extra.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// Inputs: only where their folder can be read (a run checked on another machine may not have
/// them; that is said, not counted as a change).
fn check_inputs(
    input: Option<&Path>,
    r: &ManifestReader,
    report: &mut VerifyReport,
) -> Result<(), VerifyError> {
    let root = match input {
        Some(root) => Ok(root.to_path_buf()),
        None => r.header().job().map(|j| j.dataset.root),
    };
    match root {
        Ok(root) if root.is_dir() => report.changed_inputs = changed_inputs(r, &root)?,
        Ok(root) => report.notes.push(format!(
            "inputs not checked: {} is not a readable folder (pass --input DIR)",
            root.display()
        )),
        Err(e) => report.notes.push(format!(
            "inputs not checked: the manifest's job cannot be read ({e}); pass --input DIR"
        )),
    }
    Ok(())
}

/// Runs the recorded job again into a fresh folder and compares its maps with the recorded ones.
fn rerun(args: &Request, how: &Rerun, r: &ManifestReader) -> Result<RerunReport, VerifyError> {
    let m = r.header();
    let tolerance = how
        .tolerance
        .unwrap_or(if how.device == "cpu" { 0.0 } else { 1e-3 });
    let folder = tempfile::Builder::new()
        .prefix("maskomaly-verify-")
        .tempdir()
        .map_err(|source| VerifyError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let out = folder.path().join("output");
    let job_file = write_rerun_job(args, m, folder.path(), &out)?;
    let checkpoint = how
        .checkpoint
        .clone()
        .unwrap_or_else(|| m.checkpoint.path.clone());
    let status = spawn_run(&job_file, &out, &checkpoint, &how.device)?;

    let mut report = RerunReport {
        tolerance,
        folder: folder.path().to_path_buf(),
        ..Default::default()
    };
    if !status.success() {
        report
            .mismatches
            .push(format!("the rerun exited with {status}"));
    }
    if let Ok(rm) = ManifestReader::open(&out.join("manifest.json")) {
        if rm.header().checkpoint.sha256 != m.checkpoint.sha256 {
            report
                .mismatches
                .push("the rerun used a checkpoint with a different SHA-256".into());
        }
    }
    for_each_output(r, |o| compare_output(&args.output, &out, &o, &mut report))?;
    if !how.keep && report.mismatches.is_empty() {
        drop(folder);
    } else {
        let kept = folder.keep();
        eprintln!("verify: rerun output kept in {}", kept.display());
    }
    Ok(report)
}

/// The recorded job with the rerun's input and output roots, written as `job.json` in `folder`.
fn write_rerun_job(
    args: &Request,
    m: &Manifest,
    folder: &Path,
    out: &Path,
) -> Result<PathBuf, VerifyError> {
    let mut job = m.job().map_err(|e| VerifyError::Rerun {
        what: "the manifest's job cannot be read".into(),
        source: Some(Box::new(e)),
    })?;
    if let Some(root) = &args.input {
        job.dataset.root = root.clone();
    }
    job.output.root = out.to_path_buf();
    // JSON is YAML: the job loader reads this file like any job file.
    let job_file = folder.join("job.json");
    let text = serde_json::to_vec_pretty(&job).map_err(|e| VerifyError::Rerun {
        what: "the job cannot be written".into(),
        source: Some(Box::new(e)),
    })?;
    std::fs::write(&job_file, text).map_err(|source| VerifyError::Io {
        path: job_file.clone(),
        source,
    })?;
    Ok(job_file)
}

/// `maskomaly run` of `job_file` by this executable, as one whole run.
fn spawn_run(
    job_file: &Path,
    out: &Path,
    checkpoint: &Path,
    device: &str,
) -> Result<std::process::ExitStatus, VerifyError> {
    let exe = std::env::current_exe().map_err(|e| VerifyError::Rerun {
        what: "cannot find this executable".into(),
        source: Some(Box::new(e)),
    })?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("run")
        .arg("--job")
        .arg(job_file)
        .arg("--output")
        .arg(out)
        .arg("--checkpoint")
        .arg(checkpoint)
        .arg("--device")
        .arg(device);
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
    cmd.status().map_err(|e| VerifyError::Rerun {
        what: "cannot start the rerun".into(),
        source: Some(Box::new(e)),
    })
}

/// Compares one recorded output with the rerun's: HDF5 maps numerically, other files by SHA-256
/// when the tolerance is 0.
fn compare_output(
    recorded: &Path,
    rerun: &Path,
    o: &Listed,
    report: &mut RerunReport,
) -> Result<(), VerifyError> {
    let (a, b) = (recorded.join(&o.path), rerun.join(&o.path));
    let rel = &o.text;
    if !b.is_file() {
        report
            .mismatches
            .push(format!("{rel}: not produced by the rerun"));
        return Ok(());
    }
    let tolerance = report.tolerance;
    if rel.ends_with(".hdf5") || rel.ends_with(".h5") {
        report.compared += 1;
        match (read_score(&a), read_score(&b)) {
            (Ok(sa), Ok(sb)) if sa.shape != sb.shape => report
                .mismatches
                .push(format!("{rel}: shape {:?} vs {:?}", sa.shape, sb.shape)),
            (Ok(sa), Ok(sb)) => {
                let d = max_abs_diff(&sa.values, &sb.values);
                report.max_abs_diff = report.max_abs_diff.max(d);
                if d > tolerance || d.is_nan() {
                    report
                        .mismatches
                        .push(format!("{rel}: max |difference| {d:e} > {tolerance:e}"));
                }
            }
            (Err(e), _) | (_, Err(e)) => report.mismatches.push(format!("{rel}: {}", chain(&e))),
        }
    } else if tolerance == 0.0 {
        let got = sha256_file(&b).map_err(|source| VerifyError::Io {
            path: b.clone(),
            source,
        })?;
        if got != o.sha256 {
            report.mismatches.push(format!("{rel}: sha256 differs"));
        }
    }
    Ok(())
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s += &format!(": {c}");
        cur = c.source();
    }
    s
}

/// NaN-aware: two NaNs at one pixel agree, a NaN against a number does not.
fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| match (x.is_nan(), y.is_nan()) {
            (true, true) => 0.0,
            (false, false) => (f64::from(x) - f64::from(y)).abs(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::manifest::{Counts, ItemRecord, OutputFile, Program};

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
        let out = |p: &str| OutputFile {
            path: p.into(),
            sha256: sha256_file(&d.path().join(p)).unwrap(),
        };
        let item = |input: &str, stem: &str, outputs| ItemRecord {
            input: input.into(),
            input_sha256: None,
            input_size: None,
            input_mtime_ns: None,
            stem: stem.into(),
            status: ItemStatus::Written,
            error: None,
            outputs,
            nan_values: 0,
            timings_ms: Default::default(),
        };
        let m = Manifest {
            program: Program {
                name: "maskomaly".into(),
                version: "0.1.0".into(),
                git_commit: None,
            },
            started: "2026-01-01T00:00:00Z".into(),
            status: RunStatus::Complete,
            counts: Counts {
                total: 2,
                written: 2,
                ..Default::default()
            },
            items: vec![
                item("a.png", "a", vec![out("a.hdf5"), out("a.png")]),
                item(
                    "sub/b.png",
                    "sub/b",
                    vec![out("sub/b.hdf5"), out("sub/b.png")],
                ),
            ],
            ..crate::provenance::manifest::tests::header(&crate::job::Job::default())
        };
        m.write(&d.path().join("manifest.json")).unwrap();
        // Bookkeeping that is not an output.
        std::fs::create_dir_all(d.path().join("manifests")).unwrap();
        std::fs::write(d.path().join("manifests/shard-00000-of-00001.json"), b"{}").unwrap();
        std::fs::write(d.path().join("ro-crate-metadata.json"), b"{}").unwrap();
        std::fs::write(d.path().join("sub/.b.png.tmp"), b"half").unwrap();
        d
    }

    fn check(d: &Path) -> VerifyReport {
        let args = Request {
            output: d.to_path_buf(),
            input: None,
            rerun: None,
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
        let mut m = Manifest::read(&p).unwrap();
        m.status = RunStatus::Interrupted;
        m.write(&p).unwrap();
        let r = check(d.path());
        assert!(!r.is_clean());
        assert!(r.render().contains("'interrupted'"));
    }

    #[test]
    fn no_manifest_hints_at_merge() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("manifests")).unwrap();
        let args = Request {
            output: d.path().to_path_buf(),
            input: None,
            rerun: None,
        };
        let e = verify(&args).unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::NoInput);
        assert!(e.hint().unwrap().contains("maskomaly merge"), "{e}");
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
        let s = read_score(&p).unwrap();
        assert_eq!((s.shape, s.values), (vec![1, 2], vec![0.5, 0.25]));
    }

    #[test]
    fn differences_are_nan_aware() {
        assert_eq!(max_abs_diff(&[0.0, 1.0], &[0.0, 1.0]), 0.0);
        assert_eq!(max_abs_diff(&[0.0, 1.0], &[0.5, 1.0]), 0.5);
        assert_eq!(max_abs_diff(&[f32::NAN], &[f32::NAN]), 0.0);
        assert!(max_abs_diff(&[f32::NAN, 0.0], &[0.0, 0.0]).is_nan());
    }
}
