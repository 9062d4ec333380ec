//! `manifest.json`: what a run did, enough to tie every output to its input, job, checkpoint and
//! program. Rewritten atomically as items finish, so a killed run loses at most the items in flight.

use super::pathtext;
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

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
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

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Complete,
    Interrupted,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub run_id: String,
    pub program: Program,
    pub command_line: Vec<String>,
    pub job: serde_json::Value,
    pub libtorch: String,
    pub device: String,
    pub model: String,
    pub numerics: Numerics,
    pub checkpoint: CheckpointInfo,
    pub shard: Option<serde_json::Value>,
    pub started: String,
    pub finished: Option<String>,
    pub status: RunStatus,
    pub counts: Counts,
    pub items: Vec<ItemRecord>,
}

impl Manifest {
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        super::write_bytes_atomic(path, &json)
    }

    pub fn read(path: &Path) -> std::io::Result<Manifest> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
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

/// Hex SHA-256 of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Current UTC time as RFC 3339 (seconds).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_072_000), "2025-11-25T12:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
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

    #[test]
    fn sha() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
