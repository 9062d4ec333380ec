//! `maskomaly merge OUTPUT`: combines the per-shard manifests of an array job
//! (`OUTPUT/manifests/shard-KKKKK-of-NNNNN.json`) into one `OUTPUT/manifest.json`, and says what is
//! not there yet.
//!
//! What is checked:
//! * every shard `0..N` has a manifest, all name the same `N`, and each says `complete`;
//! * the shards ran the same job with the same program, checkpoint, device and numerics;
//! * every item was produced (`written` or `skipped`) by exactly one shard. The expected items are
//!   the input listing split with [`crate::shard::select`] when the job's input root is readable
//!   (so an item a killed task never reached is named, with its shard); otherwise the union of the
//!   items the shards recorded.
//!
//! The merged manifest has the single-run schema with `shard: null`, items sorted by input path,
//! recomputed counts, and a `merged_from` list naming each shard manifest and its run.

use crate::dataset;
use crate::exit::ExitCode;
use crate::job::Job;
use crate::shard::{self, Shard, ShardSource};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const MANIFEST_FORMAT: &str = "maskomaly-manifest/1";

/// `maskomaly merge` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// Output root of the array job (holds `manifests/`).
    pub output: PathBuf,
    /// Input root to list for the expected items (default: the root recorded in the manifests).
    #[arg(long)]
    pub input: Option<PathBuf>,
}

/// A merge that cannot produce a manifest at all.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(
        "no shard manifests in {0}\nhint: array tasks write manifests/shard-KKKKK-of-NNNNN.json under the output root"
    )]
    NoManifests(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a manifest: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("shard manifests for different shard counts ({counts}) in {dir}\nhint: remove the manifests of the earlier array, or merge into a fresh output root")]
    MixedCounts { dir: PathBuf, counts: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl MergeError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            MergeError::NoManifests(_) => ExitCode::NoInput,
            MergeError::Parse { .. } | MergeError::MixedCounts { .. } => ExitCode::Data,
            MergeError::Read { .. } | MergeError::Write { .. } => ExitCode::Io,
        }
    }
}

/// An item no shard produced.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingItem {
    /// Input path relative to the input root.
    pub input: String,
    /// The shard that should have produced it.
    pub shard: Option<usize>,
    /// Why: "failed: <error>", "not reached", ...
    pub why: String,
}

/// What a merge found; `manifest.json` is written either way.
#[derive(Debug, Default)]
pub struct MergeReport {
    pub count: usize,
    pub found: Vec<usize>,
    pub missing_shards: Vec<usize>,
    /// (shard, status) of shard manifests that are not `complete`.
    pub unfinished: Vec<(usize, String)>,
    pub missing_items: Vec<MissingItem>,
    pub conflicts: Vec<String>,
    /// Whether the expected items came from listing the input root (else: the shards' own lists).
    pub listed_inputs: bool,
    pub total: usize,
    pub written: usize,
    pub manifest: PathBuf,
}

impl MergeReport {
    pub fn is_clean(&self) -> bool {
        self.missing_shards.is_empty()
            && self.unfinished.is_empty()
            && self.missing_items.is_empty()
            && self.conflicts.is_empty()
    }

    /// 0: every item produced exactly once; 1: something is missing or in conflict.
    pub fn exit_code(&self) -> ExitCode {
        if self.is_clean() {
            ExitCode::Ok
        } else {
            ExitCode::SomeFailed
        }
    }

    /// Human-readable summary for stderr.
    pub fn render(&self) -> String {
        let mut s = format!(
            "merge: {} of {} shard manifests, {} of {} items produced ({}) -> {}\n",
            self.found.len(),
            self.count,
            self.written,
            self.total,
            if self.listed_inputs {
                "expected items from the input listing"
            } else {
                "input root not readable: expected items from the shard manifests"
            },
            self.manifest.display()
        );
        for k in &self.missing_shards {
            s += &format!("missing shard manifest: shard {k}/{}\n", self.count);
        }
        for (k, st) in &self.unfinished {
            s += &format!("shard {k}/{} is {st}, not complete\n", self.count);
        }
        for m in &self.missing_items {
            match m.shard {
                Some(k) => s += &format!("not produced: {} (shard {k}: {})\n", m.input, m.why),
                None => s += &format!("not produced: {} ({})\n", m.input, m.why),
            }
        }
        for c in &self.conflicts {
            s += &format!("conflict: {c}\n");
        }
        if !self.is_clean() {
            s += "hint: rerun (or requeue) the shards named above with the same --shard K/N; finished items are skipped\n";
        }
        s
    }
}

/// Reads a manifest file.
pub fn read_manifest(path: &Path) -> Result<Value, MergeError> {
    let bytes = std::fs::read(path).map_err(|source| MergeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| MergeError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    match v.get("format").and_then(Value::as_str) {
        Some(MANIFEST_FORMAT) => Ok(v),
        other => Err(MergeError::Parse {
            path: path.to_path_buf(),
            message: format!("format is {other:?}, expected \"{MANIFEST_FORMAT}\""),
        }),
    }
}

/// Writes JSON to `path` through a temporary file in the same folder, then renames it.
pub fn write_json_atomic(path: &Path, v: &Value) -> std::io::Result<()> {
    let mut text = serde_json::to_vec_pretty(v).expect("JSON values always serialise");
    text.push(b'\n');
    crate::output::write_bytes_atomic(path, &text)
}

fn item_input(it: &Value) -> Option<&str> {
    it.get("input").and_then(Value::as_str)
}

fn item_status(it: &Value) -> &str {
    it.get("status")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
}

/// Produced = its outputs exist as recorded (`skipped` means a rerun found them finished).
fn produced(it: &Value) -> bool {
    matches!(item_status(it), "written" | "skipped")
}

/// Settings that must agree across shards for their outputs to form one result.
/// `job/runtime` is left out: threads and queue depths do not change output bytes.
const SAME_ACROSS_SHARDS: &[&str] = &[
    "/job/name",
    "/job/dataset",
    "/job/model",
    "/job/checkpoint",
    "/job/preprocess",
    "/job/method",
    "/job/output",
    "/program/version",
    "/program/git_commit",
    "/checkpoint/sha256",
    "/device",
    "/numerics",
    "/libtorch",
];

/// Merges the shard manifests under `args.output`; writes `manifest.json` and its RO-Crate.
/// `command_line` is recorded in the merged manifest.
pub fn merge(args: &MergeArgs, command_line: &[String]) -> Result<MergeReport, MergeError> {
    let dir = args.output.join(shard::MANIFESTS_DIR);
    let mut found: BTreeMap<usize, (PathBuf, Value)> = BTreeMap::new();
    let mut counts = BTreeSet::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MergeError::NoManifests(dir))
        }
        Err(source) => return Err(MergeError::Read { path: dir, source }),
    };
    for entry in entries {
        let entry = entry.map_err(|source| MergeError::Read {
            path: dir.clone(),
            source,
        })?;
        let name = entry.file_name();
        let Some((k, n)) = name.to_str().and_then(shard::parse_manifest_name) else {
            continue;
        };
        let path = entry.path();
        let v = read_manifest(&path)?;
        counts.insert(n);
        found.insert(k, (path, v));
    }
    if found.is_empty() {
        return Err(MergeError::NoManifests(dir));
    }
    if counts.len() > 1 {
        let counts = counts
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(MergeError::MixedCounts { dir, counts });
    }
    let count = *counts.iter().next().expect("one count");

    let mut report = MergeReport {
        count,
        found: found.keys().copied().collect(),
        ..Default::default()
    };
    report.missing_shards = (0..count).filter(|k| !found.contains_key(k)).collect();

    let (_, first) = found.values().next().expect("at least one manifest");
    for (k, (_, m)) in &found {
        let st = m.get("status").and_then(Value::as_str).unwrap_or("unknown");
        if st != "complete" {
            report.unfinished.push((*k, st.to_string()));
        }
        let recorded = m
            .get("shard")
            .and_then(|s| serde_json::from_value::<Shard>(s.clone()).ok());
        if recorded.map(|s| (s.index, s.count)) != Some((*k, count)) {
            report.conflicts.push(format!(
                "the manifest of shard {k}/{count} records shard {:?}",
                m.get("shard")
            ));
        }
        for ptr in SAME_ACROSS_SHARDS {
            if m.pointer(ptr) != first.pointer(ptr) {
                report.conflicts.push(format!(
                    "shard {k} ran with a different {} than shard {}",
                    &ptr[1..],
                    found.keys().next().expect("one")
                ));
            }
        }
    }

    // Items recorded by the shards, by input path.
    let mut recorded: BTreeMap<String, Vec<(usize, &Value)>> = BTreeMap::new();
    for (k, (_, m)) in &found {
        for it in m
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(input) = item_input(it) {
                recorded
                    .entry(input.to_string())
                    .or_default()
                    .push((*k, it));
            }
        }
    }

    // Expected items: the input listing split as the runner splits it, when the root is readable.
    let expected = expected_items(first, args.input.as_deref(), count);
    report.listed_inputs = expected.is_some();
    let expected: Vec<(String, Option<usize>)> = match &expected {
        Some(list) => list.clone(),
        None => recorded.keys().map(|k| (k.clone(), None)).collect(),
    };
    let expected_set: BTreeSet<&str> = expected.iter().map(|(i, _)| i.as_str()).collect();

    let mut items = Vec::new();
    for (input, want_shard) in &expected {
        let recs = recorded.get(input).map(Vec::as_slice).unwrap_or(&[]);
        let stray = want_shard.and_then(|want| {
            recs.iter()
                .find(|(k, _)| *k != want)
                .map(|(k, _)| (want, *k))
        });
        if let Some((want, k)) = stray {
            report.conflicts.push(format!(
                "{input} was processed by shard {k} but belongs to shard {want} (did the input listing change?)"
            ));
        }
        let producers: Vec<&(usize, &Value)> = recs.iter().filter(|(_, it)| produced(it)).collect();
        if producers.len() > 1 {
            let hashes: BTreeSet<String> = producers
                .iter()
                .map(|(_, it)| it["outputs"].to_string())
                .collect();
            if hashes.len() > 1 {
                let ks: Vec<String> = producers.iter().map(|(k, _)| k.to_string()).collect();
                report.conflicts.push(format!(
                    "{input} was produced with different outputs by shards {}",
                    ks.join(", ")
                ));
            }
        }
        match (producers.first(), recs.first()) {
            (Some((_, it)), _) => items.push((*it).clone()),
            (None, Some((k, it))) => {
                let why = match it.get("error").and_then(Value::as_str) {
                    Some(e) => format!("{}: {e}", item_status(it)),
                    None => item_status(it).to_string(),
                };
                report.missing_items.push(MissingItem {
                    input: input.clone(),
                    shard: Some(*k),
                    why,
                });
                items.push((*it).clone());
            }
            (None, None) => {
                let why = match want_shard {
                    Some(k) if !found.contains_key(k) => "its shard wrote no manifest".to_string(),
                    _ => "not reached".to_string(),
                };
                report.missing_items.push(MissingItem {
                    input: input.clone(),
                    shard: *want_shard,
                    why,
                });
            }
        }
    }
    for input in recorded
        .keys()
        .filter(|i| !expected_set.contains(i.as_str()))
    {
        report.conflicts.push(format!(
            "{input} is recorded by a shard but is not in the input listing"
        ));
    }
    // A shard that recorded fewer items than it counted was cut off before listing them all; only
    // visible this way when the input root cannot be listed.
    if !report.listed_inputs {
        for (k, (_, m)) in &found {
            let total = m
                .pointer("/counts/total")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize;
            let n = m.get("items").and_then(Value::as_array).map_or(0, Vec::len);
            if total > n {
                report.missing_items.push(MissingItem {
                    input: format!("({} unnamed items)", total - n),
                    shard: Some(*k),
                    why: format!("shard recorded {n} of its {total} items"),
                });
            }
        }
    }

    items.sort_by(|a, b| {
        item_input(a)
            .unwrap_or("")
            .as_bytes()
            .cmp(item_input(b).unwrap_or("").as_bytes())
    });
    let count_of = |st: &str| items.iter().filter(|it| item_status(it) == st).count();
    report.total = expected.len();
    report.written = items.iter().filter(|it| produced(it)).count();
    let status = if report.missing_shards.is_empty()
        && report.unfinished.is_empty()
        && report.conflicts.is_empty()
    {
        "complete"
    } else {
        "failed"
    };

    let run_ids: Vec<&str> = found
        .values()
        .filter_map(|(_, m)| m.get("run_id").and_then(Value::as_str))
        .collect();
    let merged_from: Vec<Value> = found
        .iter()
        .map(|(k, (path, m))| {
            json!({
                "manifest": path.strip_prefix(&args.output).unwrap_or(path).to_string_lossy(),
                "shard": {"index": k, "count": count},
                "run_id": m.get("run_id"),
                "status": m.get("status"),
                "started": m.get("started"),
                "finished": m.get("finished"),
                "command_line": m.get("command_line"),
            })
        })
        .collect();
    let started = found
        .values()
        .filter_map(|(_, m)| m.get("started").and_then(Value::as_str))
        .min();
    let finished = found
        .values()
        .filter_map(|(_, m)| m.get("finished").and_then(Value::as_str))
        .max();

    let mut merged = first.clone();
    let obj = merged.as_object_mut().expect("a manifest is an object");
    obj.insert("run_id".into(), json!(merged_run_id(&run_ids)));
    obj.insert("command_line".into(), json!(command_line));
    obj.insert("shard".into(), Value::Null);
    obj.insert("started".into(), json!(started));
    obj.insert("finished".into(), json!(finished));
    obj.insert("status".into(), json!(status));
    obj.insert(
        "counts".into(),
        json!({
            "total": report.total,
            "written": count_of("written"),
            // Items never reached count in `total` only: total - written - failed - skipped.
            "failed": count_of("failed"),
            "skipped": count_of("skipped"),
        }),
    );
    obj.insert("items".into(), Value::Array(items));
    obj.insert("merged_from".into(), Value::Array(merged_from));

    let path = shard::manifest_path(&args.output, None);
    write_json_atomic(&path, &merged).map_err(|source| MergeError::Write {
        path: path.clone(),
        source,
    })?;
    if let Err(e) = crate::rocrate::write(&args.output, &merged) {
        log::warn!("{e}");
    }
    report.manifest = path;
    Ok(report)
}

/// A stable id for the merged run: the same shard runs always merge to the same id.
fn merged_run_id(run_ids: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for id in run_ids {
        h.update(id.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    format!(
        "merged-{}",
        d.iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// The input listing split into `count` shards: `(input relative path, shard)` in listing order, or
/// `None` when the job cannot be read back or its input root cannot be listed.
fn expected_items(
    manifest: &Value,
    input: Option<&Path>,
    count: usize,
) -> Option<Vec<(String, Option<usize>)>> {
    let mut job: Job = serde_json::from_value(manifest.get("job")?.clone()).ok()?;
    if let Some(root) = input {
        job.dataset.root = root.to_path_buf();
    }
    let list = match dataset::list(&job.dataset) {
        Ok(l) => l,
        Err(e) => {
            log::info!("not checking against the input listing: {e}");
            return None;
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for index in 0..count {
        let s = Shard {
            index,
            count,
            source: ShardSource::Flag,
        };
        for it in shard::select(&list, Some(&s)) {
            let rel = it
                .image
                .strip_prefix(&job.dataset.root)
                .unwrap_or(&it.image);
            // As the shard recorded it (escaped when not UTF-8).
            out.push((crate::output::pathtext::encode(rel).0, Some(index)));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_json(root: &Path) -> Value {
        let mut job = Job::default();
        job.dataset.root = root.to_path_buf();
        serde_json::to_value(job).unwrap()
    }

    fn item(input: &str, status: &str, hash: &str) -> Value {
        let stem = input.rsplit_once('.').unwrap().0;
        json!({"input": input, "input_sha256": "i", "stem": stem, "status": status,
               "error": if status == "failed" { json!("decode error") } else { Value::Null },
               "outputs": if status == "failed" { json!([]) } else { json!([{"path": format!("{stem}.png"), "sha256": hash}]) },
               "timings_ms": {}})
    }

    fn shard_manifest(root: &Path, k: usize, n: usize, status: &str, items: Vec<Value>) -> Value {
        json!({
            "format": MANIFEST_FORMAT, "run_id": format!("run{k}"),
            "program": {"name": "maskomaly", "version": "0.1.0", "git_commit": null},
            "command_line": ["maskomaly", "run"], "job": job_json(root), "libtorch": "2.11.0", "device": "cpu",
            "numerics": {"precision": "f32", "tf32": false, "deterministic": true},
            "checkpoint": {"path": "/m.pt", "format": "torchscript", "sha256": "c"},
            "shard": {"index": k, "count": n, "source": "slurm"},
            "started": format!("2026-01-01T00:0{k}:00Z"), "finished": format!("2026-01-01T00:1{k}:00Z"),
            "status": status, "counts": {"total": items.len(), "written": items.len(), "failed": 0, "skipped": 0},
            "items": items,
        })
    }

    struct Fixture {
        input: tempfile::TempDir,
        output: tempfile::TempDir,
    }

    /// Five inputs a..e; with 2 shards, shard 0 takes a, b and shard 1 takes c, d, e.
    fn fixture() -> Fixture {
        let input = tempfile::tempdir().unwrap();
        for n in ["a", "b", "c", "d", "e"] {
            std::fs::write(input.path().join(format!("{n}.png")), b"x").unwrap();
        }
        let output = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(output.path().join("manifests")).unwrap();
        Fixture { input, output }
    }

    fn put(f: &Fixture, k: usize, n: usize, m: &Value) {
        let s = Shard {
            index: k,
            count: n,
            source: ShardSource::Slurm,
        };
        write_json_atomic(&shard::manifest_path(f.output.path(), Some(&s)), m).unwrap();
    }

    fn run(f: &Fixture) -> (MergeReport, Value) {
        let args = MergeArgs {
            output: f.output.path().to_path_buf(),
            input: None,
        };
        let r = merge(&args, &["maskomaly".into(), "merge".into()]).unwrap();
        let m = read_manifest(&f.output.path().join("manifest.json")).unwrap();
        (r, m)
    }

    #[test]
    fn complete_shards_merge_cleanly() {
        let f = fixture();
        let root = f.input.path();
        put(
            &f,
            1,
            2,
            &shard_manifest(
                root,
                1,
                2,
                "complete",
                vec![
                    item("c.png", "written", "3"),
                    item("d.png", "written", "4"),
                    item("e.png", "written", "5"),
                ],
            ),
        );
        put(
            &f,
            0,
            2,
            &shard_manifest(
                root,
                0,
                2,
                "complete",
                vec![item("a.png", "written", "1"), item("b.png", "skipped", "2")],
            ),
        );
        let (r, m) = run(&f);
        assert!(r.is_clean(), "{}", r.render());
        assert!(r.listed_inputs);
        assert_eq!(r.exit_code(), ExitCode::Ok);
        assert_eq!(m["status"], "complete");
        assert_eq!(m["shard"], Value::Null);
        assert_eq!(
            m["counts"],
            json!({"total": 5, "written": 4, "failed": 0, "skipped": 1})
        );
        let inputs: Vec<&str> = m["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["input"].as_str().unwrap())
            .collect();
        assert_eq!(inputs, ["a.png", "b.png", "c.png", "d.png", "e.png"]);
        assert_eq!(m["started"], "2026-01-01T00:00:00Z");
        assert_eq!(m["finished"], "2026-01-01T00:11:00Z");
        assert_eq!(m["merged_from"].as_array().unwrap().len(), 2);
        assert_eq!(
            m["merged_from"][0]["manifest"],
            "manifests/shard-00000-of-00002.json"
        );
        assert!(f.output.path().join(crate::rocrate::FILE_NAME).is_file());
        // Merging again gives the same manifest (the id is derived from the shard runs).
        let (_, again) = run(&f);
        assert_eq!(m, again);
    }

    #[test]
    fn unreached_failed_and_missing_shards_are_reported() {
        let f = fixture();
        let root = f.input.path();
        // Shard 0 of 3 (a) failed on its item; shard 1 (b, c) was cut off after b; shard 2 is absent.
        put(
            &f,
            0,
            3,
            &shard_manifest(root, 0, 3, "complete", vec![item("a.png", "failed", "")]),
        );
        put(
            &f,
            1,
            3,
            &shard_manifest(
                root,
                1,
                3,
                "interrupted",
                vec![item("b.png", "written", "2")],
            ),
        );
        let (r, m) = run(&f);
        assert_eq!(r.exit_code(), ExitCode::SomeFailed);
        assert_eq!(r.missing_shards, [2]);
        assert_eq!(r.unfinished, [(1, "interrupted".to_string())]);
        let missing: Vec<(&str, Option<usize>)> = r
            .missing_items
            .iter()
            .map(|m| (m.input.as_str(), m.shard))
            .collect();
        assert_eq!(
            missing,
            [
                ("a.png", Some(0)),
                ("c.png", Some(1)),
                ("d.png", Some(2)),
                ("e.png", Some(2))
            ]
        );
        assert!(r.missing_items[0].why.contains("decode error"));
        assert_eq!(m["status"], "failed");
        let text = r.render();
        assert!(
            text.contains("missing shard manifest: shard 2/3") && text.contains("hint:"),
            "{text}"
        );
    }

    #[test]
    fn conflicts_are_reported() {
        let f = fixture();
        let root = f.input.path();
        let mut other_job = shard_manifest(
            root,
            1,
            2,
            "complete",
            vec![
                item("b.png", "written", "X"),
                item("c.png", "written", "3"),
                item("d.png", "written", "4"),
                item("e.png", "written", "5"),
            ],
        );
        other_job["checkpoint"]["sha256"] = json!("different");
        put(
            &f,
            0,
            2,
            &shard_manifest(
                root,
                0,
                2,
                "complete",
                vec![item("a.png", "written", "1"), item("b.png", "written", "2")],
            ),
        );
        put(&f, 1, 2, &other_job);
        let (r, _) = run(&f);
        assert_eq!(r.exit_code(), ExitCode::SomeFailed);
        let all = r.conflicts.join("\n");
        assert!(all.contains("checkpoint/sha256"), "{all}");
        assert!(
            all.contains("b.png was processed by shard 1 but belongs to shard 0"),
            "{all}"
        );
        assert!(
            all.contains("b.png was produced with different outputs"),
            "{all}"
        );
    }

    #[test]
    fn without_the_input_root_the_shard_lists_are_the_reference() {
        let f = fixture();
        let gone = f.input.path().join("nowhere");
        let mut m0 = shard_manifest(
            &gone,
            0,
            2,
            "interrupted",
            vec![item("a.png", "written", "1")],
        );
        m0["counts"]["total"] = json!(2);
        put(&f, 0, 2, &m0);
        put(
            &f,
            1,
            2,
            &shard_manifest(&gone, 1, 2, "complete", vec![item("c.png", "failed", "")]),
        );
        let (r, _) = run(&f);
        assert!(!r.listed_inputs);
        assert_eq!(r.total, 2);
        let inputs: Vec<&str> = r.missing_items.iter().map(|m| m.input.as_str()).collect();
        assert_eq!(inputs, ["c.png", "(1 unnamed items)"]);
    }

    #[test]
    fn nothing_to_merge_and_mixed_counts_are_errors() {
        let f = fixture();
        let args = MergeArgs {
            output: f.output.path().to_path_buf(),
            input: None,
        };
        assert_eq!(
            merge(&args, &[]).unwrap_err().exit_code(),
            ExitCode::NoInput
        );
        put(
            &f,
            0,
            2,
            &shard_manifest(f.input.path(), 0, 2, "complete", vec![]),
        );
        put(
            &f,
            0,
            3,
            &shard_manifest(f.input.path(), 0, 3, "complete", vec![]),
        );
        let e = merge(&args, &[]).unwrap_err();
        assert!(matches!(e, MergeError::MixedCounts { .. }), "{e}");
    }
}
