//! Resuming: what an earlier run in the same output folder left that this run can keep. An item is
//! kept when the earlier run had the same settings ([`Manifest::differing_settings`]), its outputs
//! are the ones this job writes and still hash as recorded, and its input is unchanged.

use super::manifest::{self, ItemRecord, Manifest};
use crate::dataset::Item;
use crate::job::Job;
use crate::output::digest::sha256_file;
use crate::output::paths_for;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// What an earlier run of the same settings left in this output folder.
#[derive(Default)]
pub struct Earlier {
    /// Every record (manifest and journal), by stem: a run updates only the records of the items
    /// it processes and carries the others over, so the manifest keeps describing every output.
    pub records: HashMap<PathBuf, ItemRecord>,
    /// Stems of this run's items whose outputs are complete and unchanged (hash-checked) and whose
    /// input is the one they were made from.
    pub reusable: HashSet<PathBuf>,
}

/// Reads the earlier manifest and journal at `manifest_path`, and decides which of `items` need
/// not be redone (none when `reuse` is false: `--overwrite`). `header` is this run's manifest
/// before any item, `job` its job.
pub fn earlier_records(
    header: &Manifest,
    job: &Job,
    manifest_path: &Path,
    items: &[Item],
    reuse: bool,
) -> Earlier {
    let mut out = Earlier::default();
    let old = match Manifest::read(manifest_path) {
        Ok(m) => m,
        // A journal without a manifest can only come from a run killed before its first flush;
        // its outputs are redone.
        Err(e) if e.is_not_found() => return out,
        Err(e) => {
            let why = std::error::Error::source(&e).map_or(e.to_string(), |c| c.to_string());
            log::warn!(
                "{} cannot be read ({why}): every item is redone and the file is replaced",
                manifest_path.display()
            );
            return out;
        }
    };
    let differ = old.differing_settings(header);
    if !differ.is_empty() {
        log::info!(
            "earlier run in this output folder had another {}: redoing every item",
            differ.join(", ")
        );
        return out;
    }
    let mut records = old.items;
    // Records appended after the manifest's last rewrite.
    if let Ok(text) = std::fs::read_to_string(manifest::journal_path(manifest_path)) {
        records.extend(
            text.lines()
                .filter_map(|l| serde_json::from_str::<ItemRecord>(l).ok()),
        );
    }
    for r in records {
        out.records.insert(r.stem.clone(), r);
    }
    let mut changed_inputs = 0usize;
    for item in items.iter().filter(|_| reuse) {
        let Some(r) = out.records.get_mut(&item.stem) else {
            continue;
        };
        match reusable(job, item, r) {
            InputCheck::Same => {
                out.reusable.insert(item.stem.clone());
            }
            InputCheck::Changed => changed_inputs += 1,
            InputCheck::Unreadable => {}
        }
    }
    if changed_inputs > 0 {
        log::info!(
            "{changed_inputs} inputs changed since their outputs were written: redoing them"
        );
    }
    out
}

/// Whether `item`'s earlier record `r` can stand: `Same` when it can, `Changed` when only its
/// input changed, `Unreadable` for any other reason to redo it.
fn reusable(job: &Job, item: &Item, r: &mut ItemRecord) -> InputCheck {
    if !r.status.produced() {
        return InputCheck::Unreadable;
    }
    let expected: Vec<PathBuf> = paths_for(job, &item.stem)
        .all()
        .map(|p| p.strip_prefix(&job.output.root).unwrap_or(p).to_path_buf())
        .collect();
    if !expected.iter().eq(r.outputs.iter().map(|o| &o.path)) {
        return InputCheck::Unreadable;
    }
    match input_unchanged(&item.image, r) {
        InputCheck::Same => {}
        other => return other,
    }
    let outputs_intact = r
        .outputs
        .iter()
        .all(|o| sha256_file(&job.output.root.join(&o.path)).is_ok_and(|h| h == o.sha256));
    if outputs_intact {
        InputCheck::Same
    } else {
        InputCheck::Unreadable
    }
}

#[derive(Debug, PartialEq)]
pub enum InputCheck {
    Same,
    Changed,
    Unreadable,
}

/// Whether the file at `path` is the input `rec` was made from: same size and modification time
/// (fast path), else the same SHA-256. A match through the hash refreshes the recorded size and
/// time.
pub fn input_unchanged(path: &Path, rec: &mut ItemRecord) -> InputCheck {
    let Ok(meta) = std::fs::metadata(path) else {
        return InputCheck::Unreadable;
    };
    let (size, mtime) = (meta.len(), manifest::mtime_ns(&meta));
    if rec.input_size == Some(size) && rec.input_mtime_ns == Some(mtime) {
        return InputCheck::Same;
    }
    let Some(want) = rec.input_sha256.as_deref() else {
        return InputCheck::Changed;
    };
    match sha256_file(path) {
        Ok(h) if h == want => {
            rec.input_size = Some(size);
            rec.input_mtime_ns = Some(mtime);
            InputCheck::Same
        }
        Ok(_) => InputCheck::Changed,
        Err(_) => InputCheck::Unreadable,
    }
}
