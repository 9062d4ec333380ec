//! `manifest.json`: what a run did, enough to tie every output to its input, job, checkpoint and
//! program. Written atomically when a run starts and when it ends; in between, each finished item's
//! record is appended to the journal beside it, so a killed run loses at most the items in flight.
//! Every reader (resume, merge, verify, the RO-Crate, the report) goes through the types here and
//! the streaming reader and writer beside them; [`Manifest::differing_settings`] is the one rule
//! for which settings two runs must share.

use super::shard::Shard;
use crate::diagnostic::{Diagnose, ExitCode};
use crate::job::{Job, Runtime};
use crate::output::pathtext;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "maskomaly-manifest/1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Program {
    pub name: String,
    pub version: String,
    pub git_commit: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Numerics {
    pub precision: String,
    pub tf32: bool,
    pub deterministic: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointInfo {
    pub path: PathBuf,
    pub format: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    pub total: usize,
    pub written: usize,
    pub failed: usize,
    pub skipped: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputFile {
    /// Relative to the output root.
    pub path: PathBuf,
    pub sha256: String,
}

#[derive(
    Debug,
    Clone,
    Copy,
    Serialize,
    Deserialize,
    PartialEq,
    Eq,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ItemStatus {
    Written,
    /// Outputs from an earlier run were complete and unchanged.
    Skipped,
    Failed,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Timings {
    pub decode: f64,
    /// Host-to-device copy of the network input (0 on the CPU).
    #[serde(default)]
    pub upload: f64,
    /// The forward pass, finished on the device.
    pub infer: f64,
    /// The score rule on the model's device (and INTER_AREA back on the host).
    pub score: f64,
    /// Device-to-host copy of the score map (0 on the CPU).
    #[serde(default)]
    pub download: f64,
    pub write: f64,
}

/// One item's outcome. Paths are written losslessly ([`pathtext`]): a record with a path that is not
/// valid UTF-8 writes all its paths escaped and sets `path_escaped`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "ItemRecordText", try_from = "ItemRecordText")]
pub struct ItemRecord {
    /// Relative to the dataset root.
    pub input: PathBuf,
    pub input_sha256: Option<String>,
    /// Size and modification time of the input when it was read: a rerun trusts the record while
    /// both are unchanged and re-hashes the input when either differs.
    pub input_size: Option<u64>,
    pub input_mtime_ns: Option<i64>,
    pub stem: PathBuf,
    pub status: ItemStatus,
    pub error: Option<String>,
    pub outputs: Vec<OutputFile>,
    /// Non-finite values (NaN) in the network's outputs for this item; 0 for a healthy model.
    pub nan_values: u64,
    pub timings_ms: Timings,
}

/// How an [`ItemRecord`] appears in JSON.
#[derive(Serialize, Deserialize)]
struct ItemRecordText {
    input: String,
    input_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input_mtime_ns: Option<i64>,
    stem: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    path_escaped: bool,
    status: ItemStatus,
    error: Option<String>,
    outputs: Vec<OutputFileText>,
    #[serde(default, skip_serializing_if = "is_zero")]
    nan_values: u64,
    timings_ms: Timings,
}

#[derive(Serialize, Deserialize)]
struct OutputFileText {
    path: String,
    sha256: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<ItemRecord> for ItemRecordText {
    fn from(r: ItemRecord) -> Self {
        let escaped = std::iter::once(&r.input)
            .chain([&r.stem])
            .chain(r.outputs.iter().map(|o| &o.path))
            .any(|p| pathtext::encode(p).1);
        let text = |p: &Path| {
            if escaped {
                pathtext::encode_escaped(p)
            } else {
                pathtext::encode(p).0
            }
        };
        ItemRecordText {
            input: text(&r.input),
            input_sha256: r.input_sha256,
            input_size: r.input_size,
            input_mtime_ns: r.input_mtime_ns,
            stem: text(&r.stem),
            path_escaped: escaped,
            status: r.status,
            error: r.error,
            outputs: r
                .outputs
                .iter()
                .map(|o| OutputFileText {
                    path: text(&o.path),
                    sha256: o.sha256.clone(),
                })
                .collect(),
            nan_values: r.nan_values,
            timings_ms: r.timings_ms,
        }
    }
}

impl TryFrom<ItemRecordText> for ItemRecord {
    type Error = String;
    fn try_from(t: ItemRecordText) -> Result<Self, String> {
        let e = t.path_escaped;
        Ok(ItemRecord {
            input: pathtext::decode(&t.input, e)?,
            input_sha256: t.input_sha256,
            input_size: t.input_size,
            input_mtime_ns: t.input_mtime_ns,
            stem: pathtext::decode(&t.stem, e)?,
            status: t.status,
            error: t.error,
            outputs: t
                .outputs
                .into_iter()
                .map(|o| {
                    Ok(OutputFile {
                        path: pathtext::decode(&o.path, e)?,
                        sha256: o.sha256,
                    })
                })
                .collect::<Result<_, String>>()?,
            nan_values: t.nan_values,
            timings_ms: t.timings_ms,
        })
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    Serialize,
    Deserialize,
    PartialEq,
    Eq,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunStatus {
    Running,
    Complete,
    Interrupted,
    Failed,
}

impl RunStatus {
    /// As written in the manifest.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl ItemStatus {
    /// As written in the manifest.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the item's outputs exist as recorded (`skipped`: a rerun found them finished).
    pub fn produced(self) -> bool {
        matches!(self, ItemStatus::Written | ItemStatus::Skipped)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub run_id: String,
    pub program: Program,
    pub command_line: Vec<String>,
    /// The resolved job. Kept as JSON (keys sorted) so that the file's bytes do not depend on the
    /// order of the job's fields; [`Manifest::job`] reads it.
    pub job: serde_json::Value,
    pub libtorch: String,
    pub device: String,
    pub model: String,
    pub numerics: Numerics,
    pub checkpoint: CheckpointInfo,
    pub shard: Option<Shard>,
    pub started: String,
    pub finished: Option<String>,
    pub status: RunStatus,
    pub counts: Counts,
    pub items: Vec<ItemRecord>,
}

impl Manifest {
    /// The recorded job as a [`Job`].
    pub fn job(&self) -> Result<Job, serde_json::Error> {
        serde_json::from_value(self.job.clone())
    }

    /// The settings that differ between two runs, by name (`job/method`, `checkpoint/sha256`,
    /// `device`, ...); empty when their outputs are interchangeable. The one rule for whether a
    /// rerun may keep an earlier run's outputs and whether shards form one result. Left out: the
    /// input and output roots (where the same files are mounted) and the runtime settings other
    /// than the precision (threads and queues do not change output bytes).
    pub fn differing_settings(&self, other: &Manifest) -> Vec<&'static str> {
        let mut out = match (self.job(), other.job()) {
            (Ok(a), Ok(b)) => job_differences(&a, &b),
            _ if self.job == other.job => vec![],
            _ => vec!["job"],
        };
        let (a, b) = (self, other);
        for (name, same) in [
            ("program/version", a.program.version == b.program.version),
            (
                "program/git_commit",
                a.program.git_commit == b.program.git_commit,
            ),
            (
                "checkpoint/sha256",
                a.checkpoint.sha256 == b.checkpoint.sha256,
            ),
            ("device", a.device == b.device),
            ("numerics", a.numerics == b.numerics),
            ("libtorch", a.libtorch == b.libtorch),
        ] {
            if !same {
                out.push(name);
            }
        }
        out
    }

    pub fn recount(&mut self) {
        let mut c = Counts {
            total: self.counts.total,
            ..Counts::default()
        };
        for it in &self.items {
            match it.status {
                ItemStatus::Written => c.written += 1,
                ItemStatus::Skipped => c.skipped += 1,
                ItemStatus::Failed => c.failed += 1,
            }
        }
        self.counts = c;
    }
}

/// The sections of two jobs that change output bytes and differ (see
/// [`Manifest::differing_settings`]).
fn job_differences(a: &Job, b: &Job) -> Vec<&'static str> {
    let (a, b) = (job_identity(a), job_identity(b));
    [
        ("job/name", a.name == b.name),
        ("job/dataset", a.dataset == b.dataset),
        ("job/model", a.model == b.model),
        ("job/checkpoint", a.checkpoint == b.checkpoint),
        ("job/preprocess", a.preprocess == b.preprocess),
        ("job/method", a.method == b.method),
        ("job/output", a.output == b.output),
        ("job/runtime/precision", a.runtime == b.runtime),
    ]
    .into_iter()
    .filter_map(|(name, same)| (!same).then_some(name))
    .collect()
}

/// The parts of a job that change output bytes: everything but `runtime` (except its precision)
/// and the two roots.
fn job_identity(job: &Job) -> Job {
    let mut j = job.clone();
    j.runtime = Runtime {
        precision: job.runtime.precision,
        ..Default::default()
    };
    j.output.root = PathBuf::new();
    j.dataset.root = PathBuf::new();
    j
}

/// A manifest that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a manifest")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} is a manifest of format {found:?}, not \"{FORMAT}\"")]
    Format { path: PathBuf, found: String },
}

impl ManifestError {
    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ManifestError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

impl Diagnose for ManifestError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ManifestError::Read { .. } => ExitCode::Io,
            ManifestError::Parse { .. } | ManifestError::Format { .. } => ExitCode::Data,
        }
    }
}

/// The journal beside a manifest: records appended after the manifest's last rewrite.
pub fn journal_path(manifest: &Path) -> PathBuf {
    let mut p = manifest.as_os_str().to_os_string();
    p.push(".journal");
    PathBuf::from(p)
}

/// A file's modification time in nanoseconds since the epoch, as recorded for inputs.
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec()
}

/// Current UTC time as RFC 3339, whole seconds (`2026-01-01T00:00:00Z`).
pub fn now_rfc3339() -> String {
    rfc3339(jiff::Timestamp::now())
}

fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn status_names_are_the_manifest_names() {
        let json = |v: serde_json::Value| v.as_str().unwrap().to_string();
        for &s in <RunStatus as strum::VariantArray>::VARIANTS {
            assert_eq!(s.as_str(), json(serde_json::to_value(s).unwrap()));
        }
        for &s in <ItemStatus as strum::VariantArray>::VARIANTS {
            assert_eq!(s.as_str(), json(serde_json::to_value(s).unwrap()));
        }
        assert_eq!(RunStatus::Interrupted.as_str(), "interrupted");
        assert_eq!(ItemStatus::Skipped.as_str(), "skipped");
    }

    #[test]
    fn dates() {
        let at = |s| rfc3339(jiff::Timestamp::from_second(s).unwrap());
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(1_764_072_000), "2025-11-25T12:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        // Fractions of a second are dropped, not rounded.
        let t = jiff::Timestamp::new(59, 999_999_999).unwrap();
        assert_eq!(rfc3339(t), "1970-01-01T00:00:59Z");
    }

    /// A run's header with fixed values, for tests here and in the other provenance modules.
    pub(crate) fn header(job: &Job) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            run_id: "r".into(),
            program: Program {
                name: "maskomaly".into(),
                version: "1".into(),
                git_commit: None,
            },
            command_line: vec![],
            job: serde_json::to_value(job).unwrap(),
            libtorch: "2.11.0".into(),
            device: "cpu".into(),
            model: "m".into(),
            numerics: Numerics {
                precision: "fp32".into(),
                tf32: false,
                deterministic: true,
            },
            checkpoint: CheckpointInfo {
                path: "/m.pt".into(),
                format: "torchscript".into(),
                sha256: "c".into(),
            },
            shard: None,
            started: String::new(),
            finished: None,
            status: RunStatus::Running,
            counts: Counts::default(),
            items: vec![],
        }
    }

    #[test]
    fn settings_that_change_outputs_must_match_and_no_others() {
        let job = Job::default();
        let a = header(&job);
        // Roots, threads and queues, the command line and the times do not change output bytes.
        let mut same = job.clone();
        same.dataset.root = "/elsewhere/in".into();
        same.output.root = "/elsewhere/out".into();
        same.runtime.queue_depth += 3;
        let mut b = header(&same);
        b.command_line = vec!["other".into()];
        b.started = "2030-01-01T00:00:00Z".into();
        b.checkpoint.path = "/mnt/m.pt".into();
        assert_eq!(a.differing_settings(&b), Vec::<&str>::new());

        let mut other = job.clone();
        other.preprocess.min_size += 1;
        other.runtime.precision = crate::job::Precision::Tf32;
        let mut c = header(&other);
        c.checkpoint.sha256 = "d".into();
        c.device = "cuda:0".into();
        c.program.version = "2".into();
        assert_eq!(
            c.differing_settings(&a),
            [
                "job/preprocess",
                "job/runtime/precision",
                "program/version",
                "checkpoint/sha256",
                "device"
            ]
        );
        // A job this build cannot read is compared as recorded.
        let mut d = a.clone();
        d.job = serde_json::json!({"unknown": 1});
        assert_eq!(d.differing_settings(&a), ["job"]);
        assert_eq!(d.differing_settings(&d.clone()), Vec::<&str>::new());
    }

    #[test]
    fn the_format_is_checked_and_errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("manifest.json");
        let mut m = header(&Job::default());
        m.write(&p).unwrap();
        let back = Manifest::read(&p).unwrap();
        // JSON float text need not round-trip bit for bit; the jobs do.
        assert_eq!(back.job().unwrap(), m.job().unwrap());
        assert_eq!(back.differing_settings(&m), Vec::<&str>::new());
        assert_eq!(
            (back.run_id.as_str(), back.status),
            ("r", RunStatus::Running)
        );
        m.format = "other/2".into();
        m.write(&p).unwrap();
        let e = Manifest::read(&p).unwrap_err();
        assert!(matches!(e, ManifestError::Format { .. }), "{e}");
        assert_eq!(e.exit_code(), ExitCode::Data);
        std::fs::write(&p, b"{").unwrap();
        let e = Manifest::read(&p).unwrap_err();
        assert!(e.to_string().contains("manifest.json") && std::error::Error::source(&e).is_some());
        assert!(Manifest::read(&d.path().join("none"))
            .unwrap_err()
            .is_not_found());
    }

    #[test]
    fn records_with_non_utf8_paths_round_trip() {
        use std::os::unix::ffi::OsStringExt;
        let bad = PathBuf::from(std::ffi::OsString::from_vec(b"d\\ir/x\xff".to_vec()));
        let rec = ItemRecord {
            input: bad.with_extension("png"),
            input_sha256: None,
            input_size: Some(3),
            input_mtime_ns: Some(-5),
            stem: bad.clone(),
            status: ItemStatus::Written,
            error: None,
            outputs: vec![OutputFile {
                path: bad.with_extension("hdf5"),
                sha256: "00".into(),
            }],
            nan_values: 7,
            timings_ms: Timings::default(),
        };
        let v = serde_json::to_value(&rec).unwrap();
        assert_eq!(v["path_escaped"], true);
        assert_eq!(v["stem"], "d\\\\ir/x\\xff");
        assert_eq!(serde_json::from_value::<ItemRecord>(v).unwrap(), rec);
        // A plain record keeps the earlier schema (no new keys when they are empty).
        let plain = ItemRecord {
            input: "a.png".into(),
            stem: "a".into(),
            input_size: None,
            input_mtime_ns: None,
            nan_values: 0,
            outputs: vec![OutputFile {
                path: "a.hdf5".into(),
                sha256: "00".into(),
            }],
            ..rec
        };
        let v = serde_json::to_value(&plain).unwrap();
        for k in ["path_escaped", "nan_values", "input_size"] {
            assert!(v.get(k).is_none(), "{k}");
        }
        assert_eq!(serde_json::from_value::<ItemRecord>(v).unwrap(), plain);
    }
}
