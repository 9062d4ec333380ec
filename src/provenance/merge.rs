//! `maskomaly merge OUTPUT`: combines the per-shard manifests of an array job
//! (`OUTPUT/manifests/shard-KKKKK-of-NNNNN.json`) into one `OUTPUT/manifest.json`, and says what is
//! not there yet.
//!
//! What is checked:
//! * every shard `0..N` has a manifest, all name the same `N`, and each says `complete`;
//! * the shards ran with the same settings ([`Manifest::differing_settings`]);
//! * every item was produced (`written` or `skipped`) by exactly one shard. The expected items are
//!   the input listing split with [`shard::select`] when the job's input root is readable
//!   (so an item a killed task never reached is named, with its shard); otherwise the union of the
//!   items the shards recorded.
//!
//! The merged manifest has the single-run schema with `shard: null`, items sorted by input path,
//! recomputed counts, and a `merged_from` list naming each shard manifest and its run.
//!
//! Memory stays bounded at any number of items: the shards' records are read one manifest after
//! another into an external sort by input path ([`Sorter`]), then walked once beside the expected
//! inputs, the merged manifest written as they go. Only the input listing is held.

use super::manifest::{ItemRecord, Manifest, ManifestError, RunStatus};
use super::shard::{self, Shard, ShardSource};
use super::stream::{self, ManifestReader, ManifestWriter, Sorter};
use crate::dataset;
use crate::diagnostic::{Diagnose, ExitCode};
use crate::output::pathtext;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A merge that cannot produce a manifest at all.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no shard manifests in {0}")]
    NoManifests(PathBuf),
    #[error("cannot list {path}")]
    List {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Lock(#[from] crate::output::lock::LockError),
    #[error("shard manifests for different shard counts ({counts}) in {dir}")]
    MixedCounts { dir: PathBuf, counts: String },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot sort the shards' records in {dir}")]
    Sort {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Diagnose for MergeError {
    fn exit_code(&self) -> ExitCode {
        match self {
            MergeError::NoManifests(_) => ExitCode::NoInput,
            MergeError::MixedCounts { .. } => ExitCode::Data,
            MergeError::Manifest(e) => e.exit_code(),
            MergeError::List { .. } | MergeError::Write { .. } | MergeError::Sort { .. } => {
                ExitCode::Io
            }
            MergeError::Lock(e) => e.exit_code(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            MergeError::NoManifests(_) => Some(
                "array tasks write manifests/shard-KKKKK-of-NNNNN.json under the output root"
                    .into(),
            ),
            MergeError::MixedCounts { .. } => Some(
                "remove the manifests of the earlier array, or merge into a fresh output root"
                    .into(),
            ),
            MergeError::Lock(crate::output::lock::LockError::Busy { .. }) => Some(
                "array tasks are still writing here; merge after the array ends \
                 (sbatch --dependency=afterany:JOBID)"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// An item no shard produced.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingItem {
    /// Input path relative to the input root, as the manifest writes it.
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

/// One shard run named in the merged manifest.
#[derive(Debug, Serialize)]
struct MergedFrom {
    manifest: String,
    shard: ShardRef,
    run_id: String,
    status: RunStatus,
    started: String,
    finished: Option<String>,
    command_line: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ShardRef {
    index: usize,
    count: usize,
}

/// The shard manifests found, by shard index, with their file.
type Shards = BTreeMap<usize, (PathBuf, ManifestReader)>;

/// Merges the shard manifests under `output` (listing `input`, default the recorded root, for the
/// expected items); writes `manifest.json` and its RO-Crate.
/// `command_line` is recorded in the merged manifest.
pub fn merge(
    output: &Path,
    input: Option<&Path>,
    command_line: &[String],
) -> Result<MergeReport, MergeError> {
    // No task of the array may still be writing, nor a whole run over the same folder.
    let _lock = if output.is_dir() {
        crate::output::lock::lock_output(output, None)?
    } else {
        Vec::new()
    };
    let (count, found) = read_shards(&output.join(crate::output::MANIFESTS_DIR))?;
    let mut report = MergeReport {
        count,
        found: found.keys().copied().collect(),
        missing_shards: (0..count).filter(|k| !found.contains_key(k)).collect(),
        ..Default::default()
    };
    check_shards(&found, count, &mut report);

    let first = found
        .values()
        .next()
        .expect("at least one manifest")
        .1
        .header();
    // Expected items: the input listing split as the runner splits it, when the root is readable.
    let listed = expected_items(first, input, count);
    report.listed_inputs = listed.is_some();
    let sort_err = |source| MergeError::Sort {
        dir: output.to_path_buf(),
        source,
    };
    stream::remove_stale_spills(output, SPILL_TAG);
    let (recorded, per_shard) = sort_records(&found, output).map_err(sort_err)?;

    let path = shard::manifest_path(output, None);
    let write_err = |source| MergeError::Write {
        path: path.clone(),
        source,
    };
    let header = merged_header(first, &found, command_line);
    let merged_from = serde_json::to_value(merged_from(&found, count, output))
        .map_err(|e| write_err(e.into()))?;
    let mut w = ManifestWriter::create(&path, &header, &[("merged_from", merged_from)])
        .map_err(write_err)?;
    let mut walk = Walk {
        found: &found,
        report: &mut report,
        out: &mut w,
        total: 0,
    };
    match listed {
        Some(mut expected) => {
            expected.sort_by(|a, b| stream::path_cmp(&a.0, &b.0));
            walk.total = expected.len();
            walk.listed(expected.into_iter(), recorded)
        }
        None => walk.recorded_only(recorded),
    }
    .map_err(|e| match e {
        WalkError::Read(source) => sort_err(source),
        WalkError::Write(source) => write_err(source),
    })?;
    let total = walk.total;
    if !report.listed_inputs {
        report_cut_off_shards(&found, &per_shard, &mut report);
    }
    report.total = total;
    report.written = w.tally().written + w.tally().skipped;
    let clean = report.missing_shards.is_empty()
        && report.unfinished.is_empty()
        && report.conflicts.is_empty();
    w.set_status(if clean {
        RunStatus::Complete
    } else {
        RunStatus::Failed
    });
    w.commit(total, None).map_err(write_err)?;
    match ManifestReader::open(&path) {
        Ok(r) => {
            if let Err(e) = super::rocrate::write_from(output, &r) {
                log::warn!("{e}");
            }
        }
        Err(e) => log::warn!("{e}"),
    }
    report.manifest = path;
    Ok(report)
}

/// Names the spill folder of a merge's sort.
const SPILL_TAG: &str = "merge";

/// A shard's record, tagged with the shard.
type Tagged = (usize, ItemRecord);

fn by_input_then_shard(a: &Tagged, b: &Tagged) -> std::cmp::Ordering {
    stream::path_cmp(&a.1.input, &b.1.input).then(a.0.cmp(&b.0))
}

/// Every shard's records, sorted by input path (then shard), read one manifest after another;
/// and how many records each shard holds.
fn sort_records(
    found: &Shards,
    dir: &Path,
) -> std::io::Result<(stream::Stream<'static, Tagged>, BTreeMap<usize, usize>)> {
    let mut sorter = Sorter::new(dir, SPILL_TAG, by_input_then_shard);
    let mut per_shard = BTreeMap::new();
    for (k, (_, r)) in found {
        let mut n = 0usize;
        for it in r.items().map_err(std::io::Error::other)? {
            sorter.push((*k, it.map_err(std::io::Error::other)?))?;
            n += 1;
        }
        per_shard.insert(*k, n);
    }
    Ok((sorter.finish()?, per_shard))
}

enum WalkError {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// The walk over the sorted records (grouped by input) beside the expected inputs.
struct Walk<'a> {
    found: &'a Shards,
    report: &'a mut MergeReport,
    out: &'a mut ManifestWriter,
    total: usize,
}

/// The records of one input, in shard order.
type Group = (PathBuf, Vec<Tagged>);

/// Groups a sorted stream of tagged records by input.
fn groups(
    records: stream::Stream<'static, Tagged>,
) -> impl Iterator<Item = std::io::Result<Group>> {
    let mut records = records.peekable();
    std::iter::from_fn(move || {
        let first = match records.next()? {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        let input = first.1.input.clone();
        let mut group = vec![first];
        while let Some(Ok(next)) = records.peek() {
            if next.1.input != input {
                break;
            }
            group.push(records.next().and_then(Result::ok).expect("peeked"));
        }
        if let Some(Err(_)) = records.peek() {
            if let Some(Err(e)) = records.next() {
                return Some(Err(e));
            }
        }
        Some(Ok((input, group)))
    })
}

impl Walk<'_> {
    /// Expected inputs (sorted by path) against the recorded ones.
    fn listed(
        &mut self,
        expected: impl Iterator<Item = (PathBuf, Option<usize>)>,
        recorded: stream::Stream<'static, Tagged>,
    ) -> Result<(), WalkError> {
        let mut groups = groups(recorded).peekable();
        let mut next_group = |before: Option<&Path>| -> Result<Option<Group>, WalkError> {
            match groups.peek() {
                None => Ok(None),
                Some(Err(_)) => match groups.next() {
                    Some(Err(e)) => Err(WalkError::Read(e)),
                    _ => unreachable!("peeked an error"),
                },
                Some(Ok((input, _))) => {
                    let take = before
                        .is_none_or(|b| stream::path_cmp(input, b) != std::cmp::Ordering::Greater);
                    Ok(if take {
                        groups.next().and_then(Result::ok)
                    } else {
                        None
                    })
                }
            }
        };
        for (input, want) in expected {
            let mut mine = Vec::new();
            while let Some((other, recs)) = next_group(Some(&input))? {
                if other == input {
                    mine = recs;
                    break;
                }
                self.unlisted(&other);
            }
            self.item(&input, want, &mine)?;
        }
        while let Some((other, _)) = next_group(None)? {
            self.unlisted(&other);
        }
        Ok(())
    }

    /// Without a listing, the recorded inputs are the expected ones.
    fn recorded_only(
        &mut self,
        recorded: stream::Stream<'static, Tagged>,
    ) -> Result<(), WalkError> {
        for g in groups(recorded) {
            let (input, recs) = g.map_err(WalkError::Read)?;
            self.total += 1;
            self.item(&input, None, &recs)?;
        }
        Ok(())
    }

    fn unlisted(&mut self, input: &Path) {
        self.report.conflicts.push(format!(
            "{} is recorded by a shard but is not in the input listing",
            text(input)
        ));
    }

    /// One expected input and the shards' records of it: the merged record (if any) is written;
    /// what is missing or in conflict goes to the report.
    fn item(
        &mut self,
        input: &Path,
        want_shard: Option<usize>,
        recs: &[Tagged],
    ) -> Result<(), WalkError> {
        let report = &mut *self.report;
        if let Some(want) = want_shard {
            if let Some((k, _)) = recs.iter().find(|(k, _)| *k != want) {
                report.conflicts.push(format!(
                    "{} was processed by shard {k} but belongs to shard {want} (did the input listing change?)",
                    text(input)
                ));
            }
        }
        let producers: Vec<&Tagged> = recs.iter().filter(|(_, it)| it.status.produced()).collect();
        if producers
            .iter()
            .any(|(_, it)| it.outputs != producers[0].1.outputs)
        {
            let ks: Vec<String> = producers.iter().map(|(k, _)| k.to_string()).collect();
            report.conflicts.push(format!(
                "{} was produced with different outputs by shards {}",
                text(input),
                ks.join(", ")
            ));
        }
        let missing = |shard, why| MissingItem {
            input: text(input),
            shard,
            why,
        };
        let merged = match (producers.first(), recs.first()) {
            (Some((_, it)), _) => Some(it),
            (None, Some((k, it))) => {
                let why = match &it.error {
                    Some(e) => format!("{}: {e}", it.status.as_str()),
                    None => it.status.as_str().to_string(),
                };
                report.missing_items.push(missing(Some(*k), why));
                Some(it)
            }
            (None, None) => {
                let why = match want_shard {
                    Some(k) if !self.found.contains_key(&k) => "its shard wrote no manifest",
                    _ => "not reached",
                };
                report
                    .missing_items
                    .push(missing(want_shard, why.to_string()));
                None
            }
        };
        if let Some(it) = merged {
            self.out.push(it).map_err(WalkError::Write)?;
        }
        Ok(())
    }
}

/// Reads every shard manifest in `dir`; all must name one shard count.
fn read_shards(dir: &Path) -> Result<(usize, Shards), MergeError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MergeError::NoManifests(dir.to_path_buf()))
        }
        Err(source) => {
            return Err(MergeError::List {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut found = Shards::new();
    let mut counts = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(|source| MergeError::List {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name();
        let Some((k, n)) = name.to_str().and_then(shard::parse_manifest_name) else {
            continue;
        };
        let path = entry.path();
        let m = ManifestReader::open(&path)?;
        counts.insert(n);
        found.insert(k, (path, m));
    }
    match counts.len() {
        0 => Err(MergeError::NoManifests(dir.to_path_buf())),
        1 => Ok((counts.into_iter().next().expect("one count"), found)),
        _ => Err(MergeError::MixedCounts {
            dir: dir.to_path_buf(),
            counts: counts
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Status, recorded shard and settings of every shard against the first.
fn check_shards(found: &Shards, count: usize, report: &mut MergeReport) {
    let (first_k, (_, first)) = found.iter().next().expect("at least one manifest");
    let first = first.header();
    for (k, (_, m)) in found {
        let m = m.header();
        if m.status != RunStatus::Complete {
            report.unfinished.push((*k, m.status.as_str().to_string()));
        }
        if m.shard.map(|s| (s.index, s.count)) != Some((*k, count)) {
            report.conflicts.push(format!(
                "the manifest of shard {k}/{count} records shard {}",
                m.shard.map_or("none".to_string(), |s| s.to_string())
            ));
        }
        for setting in m.differing_settings(first) {
            report.conflicts.push(format!(
                "shard {k} ran with a different {setting} than shard {first_k}"
            ));
        }
    }
}

/// An input path as the manifest writes it.
fn text(p: &Path) -> String {
    pathtext::encode(p).0
}

/// A shard that recorded fewer items than it counted was cut off before listing them all; only
/// visible this way when the input root cannot be listed.
fn report_cut_off_shards(
    found: &Shards,
    per_shard: &BTreeMap<usize, usize>,
    report: &mut MergeReport,
) {
    for (k, (_, m)) in found {
        let (total, n) = (m.header().counts.total, per_shard[k]);
        if total > n {
            report.missing_items.push(MissingItem {
                input: format!("({} unnamed items)", total - n),
                shard: Some(*k),
                why: format!("shard recorded {n} of its {total} items"),
            });
        }
    }
}

/// The merged manifest's header: the first shard's settings and the shards' time span. Its
/// counts and status are settled when its items have been written.
fn merged_header(first: &Manifest, found: &Shards, command_line: &[String]) -> Manifest {
    let shards = || found.values().map(|(_, m)| m.header());
    let run_ids: Vec<&str> = shards().map(|m| m.run_id.as_str()).collect();
    Manifest {
        run_id: merged_run_id(&run_ids),
        command_line: command_line.to_vec(),
        shard: None,
        started: shards()
            .map(|m| m.started.clone())
            .min()
            .unwrap_or_default(),
        finished: shards().filter_map(|m| m.finished.clone()).max(),
        status: RunStatus::Running,
        counts: Default::default(),
        items: vec![],
        ..first.clone()
    }
}

/// One entry per shard manifest: its file (relative to the output root) and its run.
fn merged_from(found: &Shards, count: usize, output: &Path) -> Vec<MergedFrom> {
    found
        .iter()
        .map(|(k, (path, m))| (k, path, m.header()))
        .map(|(k, path, m)| MergedFrom {
            manifest: path
                .strip_prefix(output)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned(),
            shard: ShardRef { index: *k, count },
            run_id: m.run_id.clone(),
            status: m.status,
            started: m.started.clone(),
            finished: m.finished.clone(),
            command_line: m.command_line.clone(),
        })
        .collect()
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
    format!("merged-{}", crate::output::digest::hex(&d[..8]))
}

/// The input listing split into `count` shards: `(input relative path, shard)` in listing order, or
/// `None` when the job cannot be read back or its input root cannot be listed.
fn expected_items(
    manifest: &Manifest,
    input: Option<&Path>,
    count: usize,
) -> Option<Vec<(PathBuf, Option<usize>)>> {
    let mut job = manifest.job().ok()?;
    if let Some(root) = input {
        job.dataset.root = root.to_path_buf();
    }
    // The listing the array's tasks made: without their output folder.
    let exclude = super::outputs::exclude(Some(&job.output.root));
    let list = match dataset::list_excluding(&job.dataset, &exclude) {
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
            out.push((rel.to_path_buf(), Some(index)));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::manifest::{Counts, OutputFile, Timings};
    use serde_json::{json, Value};

    fn item(input: &str, status: &str, hash: &str) -> ItemRecord {
        let stem = input.rsplit_once('.').unwrap().0;
        let failed = status == "failed";
        ItemRecord {
            input: input.into(),
            input_sha256: Some("i".into()),
            input_size: None,
            input_mtime_ns: None,
            stem: stem.into(),
            status: serde_json::from_value(json!(status)).unwrap(),
            error: failed.then(|| "decode error".into()),
            outputs: if failed {
                vec![]
            } else {
                vec![OutputFile {
                    path: format!("{stem}.png").into(),
                    sha256: hash.into(),
                }]
            },
            nan_values: 0,
            timings_ms: Timings::default(),
        }
    }

    /// Shard `k` of `n` over the input `root`, on the provenance tests' header.
    fn shard_manifest(
        root: &Path,
        k: usize,
        n: usize,
        status: &str,
        items: Vec<ItemRecord>,
    ) -> Manifest {
        let mut job = crate::job::Job::default();
        job.dataset.root = root.to_path_buf();
        Manifest {
            run_id: format!("run{k}"),
            command_line: vec!["maskomaly".into(), "run".into()],
            shard: Some(Shard {
                index: k,
                count: n,
                source: ShardSource::Slurm,
            }),
            started: format!("2026-01-01T00:0{k}:00Z"),
            finished: Some(format!("2026-01-01T00:1{k}:00Z")),
            status: serde_json::from_value(json!(status)).unwrap(),
            counts: Counts {
                total: items.len(),
                written: items.len(),
                ..Default::default()
            },
            items,
            ..crate::provenance::manifest::tests::header(&job)
        }
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

    fn put(f: &Fixture, k: usize, n: usize, m: &Manifest) {
        let s = Shard {
            index: k,
            count: n,
            source: ShardSource::Slurm,
        };
        m.write(&shard::manifest_path(f.output.path(), Some(&s)))
            .unwrap();
    }

    fn run(f: &Fixture) -> (MergeReport, Value) {
        let r = merge(f.output.path(), None, &["maskomaly".into(), "merge".into()]).unwrap();
        let path = f.output.path().join("manifest.json");
        // The typed reader reads the merged manifest too.
        Manifest::read(&path).unwrap();
        let m = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
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
        assert!(f
            .output
            .path()
            .join(super::super::rocrate::FILE_NAME)
            .is_file());
        // Keys sorted, a final newline: the merged manifest's form.
        let text = std::fs::read_to_string(f.output.path().join("manifest.json")).unwrap();
        let at = |k: &str| text.find(&format!("\n  \"{k}\": ")).unwrap();
        assert!(at("checkpoint") < at("command_line") && at("command_line") < at("counts"));
        assert!(at("job") < at("merged_from") && at("merged_from") < at("model"));
        assert!(text.ends_with("}\n"));
        // Merging again gives the same manifest (the id is derived from the shard runs).
        let (_, again) = run(&f);
        assert_eq!(m, again);
    }

    #[test]
    fn a_merge_waits_for_the_array_to_end() {
        let f = fixture();
        let root = f.input.path();
        let m = shard_manifest(root, 0, 1, "complete", vec![item("a.png", "written", "1")]);
        put(&f, 0, 1, &m);
        let running = crate::output::lock::lock_output(f.output.path(), Some((0, 1))).unwrap();
        let e = merge(f.output.path(), None, &[]).unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::TempFail, "{e}");
        assert!(e.hint().unwrap().contains("afterany"), "{e}");
        assert!(!f.output.path().join("manifest.json").exists());
        drop(running);
        merge(f.output.path(), None, &[]).unwrap();
        let lock = f.output.path().join(crate::output::lock::LOCK_FILE);
        assert!(!lock.exists(), "the merge leaves no lock file");
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
        other_job.checkpoint.sha256 = "different".into();
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
        m0.counts.total = 2;
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
    fn a_thousand_shards_merge_sorted_by_input() {
        let f = fixture();
        let gone = f.input.path().join("nowhere");
        // 20,000 records: more than one sorted run, so the sort spills and merges.
        let (n, per) = (1000, 20);
        assert!(n * per > crate::provenance::stream::SORT_CHUNK);
        for k in 0..n {
            let items = (0..per)
                .map(|i| {
                    let j = k * per + i;
                    item(&format!("f{:03}/{j:05}.png", j % 997), "written", "h")
                })
                .collect();
            put(&f, k, n, &shard_manifest(&gone, k, n, "complete", items));
        }
        let r = merge(f.output.path(), None, &[]).unwrap();
        assert!(r.is_clean(), "{}", r.render());
        assert_eq!((r.total, r.written, r.found.len()), (n * per, n * per, n));
        let m = ManifestReader::open(&f.output.path().join("manifest.json")).unwrap();
        assert_eq!(m.header().status, RunStatus::Complete);
        assert_eq!(m.header().counts.written, n * per);
        let mut last: Option<PathBuf> = None;
        let mut count = 0;
        for it in m.items().unwrap() {
            let it = it.unwrap();
            if let Some(l) = &last {
                assert!(
                    stream::path_cmp(l, &it.input) == std::cmp::Ordering::Less,
                    "{} after {}",
                    it.input.display(),
                    l.display()
                );
            }
            last = Some(it.input);
            count += 1;
        }
        assert_eq!(count, n * per);
        let left: Vec<String> = std::fs::read_dir(f.output.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') && n != ".maskomaly.lock")
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    #[test]
    fn nothing_to_merge_and_mixed_counts_are_errors() {
        let f = fixture();
        assert_eq!(
            merge(f.output.path(), None, &[]).unwrap_err().exit_code(),
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
        let e = merge(f.output.path(), None, &[]).unwrap_err();
        assert!(matches!(e, MergeError::MixedCounts { .. }), "{e}");
    }
}
