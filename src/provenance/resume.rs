//! Resuming: what an earlier run in the same output folder left that this run can keep. An item is
//! kept when the earlier run had the same settings ([`Manifest::differing_settings`]), its outputs
//! are the ones this job writes and still hash as recorded, and its input is unchanged. The earlier
//! records are read as streams and merged with the listing by stem.

use super::manifest::{self, ItemRecord, ItemStatus, Manifest};
use super::stream::{self, journal, ManifestReader, ManifestWriter, Sorter, Stream};
use crate::dataset::Item;
use crate::job::Job;
use crate::output::digest::sha256_file;
use crate::output::paths_for;
use std::cmp::Ordering;
use std::path::{Path, PathBuf};

/// What a run starts from, once its starting manifest is written ([`start_manifest`]).
#[derive(Debug, Default)]
pub struct Start {
    /// Positions in the listing of the items to process, in listing order.
    pub todo: Vec<u32>,
    /// Items whose outputs are complete and unchanged from an earlier run.
    pub skipped: usize,
    /// Records of items outside this run (another `--limit`, a shard's neighbours), kept.
    pub carried: usize,
    /// Items the manifest counts: this run's and the carried ones.
    pub total: usize,
}

/// Why a pass over the earlier records stopped.
enum PlanError {
    /// The earlier manifest, journal or their sorting cannot be read: it is not trusted.
    Earlier(std::io::Error),
    /// The earlier manifest's items are not in stem order (a merged manifest): sort them first.
    Unsorted,
    /// This run's manifest cannot be written.
    Write(std::io::Error),
}

/// Marks the first out-of-order record of a manifest read as sorted.
#[derive(Debug)]
struct Unsorted;

impl std::fmt::Display for Unsorted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("records out of order")
    }
}

impl std::error::Error for Unsorted {}

/// Writes the manifest a run starts with, and returns the work. The manifest holds `header`
/// (status `running`) and, when the earlier run in this output folder had the same settings
/// ([`Manifest::differing_settings`]), every earlier record (its manifest's and its journal's,
/// the later record of an item winning): as `skipped` for items of `items` whose outputs are the
/// ones this job writes, still hash as recorded, and were made from the same input (none when
/// `reuse` is false: `--overwrite`); as they were for the other items, whose outputs stay on disk
/// until this run replaces them, and for items outside this run. Then the earlier journal, now
/// inside the manifest, is removed. Records stream through; only the listing is held.
pub fn start_manifest(
    header: &Manifest,
    job: &Job,
    manifest_path: &Path,
    items: &[Item],
    reuse: bool,
) -> std::io::Result<Start> {
    let (dir, tag) = spill_place(manifest_path);
    stream::remove_stale_spills(&dir, &tag);
    let mut earlier = open_earlier(header, manifest_path);
    // The listing by stem: the order of the records.
    let mut order: Vec<u32> = (0..items.len() as u32).collect();
    if !items
        .windows(2)
        .all(|w| stream::path_cmp(&w[0].stem, &w[1].stem) != Ordering::Greater)
    {
        order.sort_by(|&a, &b| stream::path_cmp(&items[a as usize].stem, &items[b as usize].stem));
    }
    let mut sort_manifest = false;
    let start = loop {
        let pass = Pass {
            header,
            job,
            manifest_path,
            items,
            order: &order,
            reuse,
            dir: &dir,
            tag: &tag,
        };
        match pass.run(earlier.as_ref(), sort_manifest) {
            Ok(start) => break start,
            Err(PlanError::Unsorted) if !sort_manifest => sort_manifest = true,
            Err(PlanError::Unsorted) => {
                return Err(std::io::Error::other(
                    "sorted records came back out of order",
                ))
            }
            Err(PlanError::Earlier(e)) => {
                log::warn!(
                    "{} cannot be read ({e}): every item is redone and the file is replaced",
                    manifest_path.display()
                );
                earlier = None;
            }
            Err(PlanError::Write(e)) => return Err(e),
        }
    };
    match std::fs::remove_file(manifest::journal_path(manifest_path)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    if start.skipped > 0 {
        log::info!(
            "{} of {} items are complete from an earlier run and are skipped",
            start.skipped,
            items.len()
        );
    }
    Ok(start)
}

/// Where [`Sorter`]s of the manifest at `path` spill: its folder, and its file name as the tag.
pub fn spill_place(path: &Path) -> (PathBuf, String) {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let tag = path
        .file_name()
        .map_or("manifest".into(), |n| n.to_string_lossy().into_owned());
    (dir, tag)
}

/// The earlier manifest at `path`, if there is one this run may build on.
fn open_earlier(header: &Manifest, path: &Path) -> Option<ManifestReader> {
    let old = match ManifestReader::open(path) {
        Ok(m) => m,
        // A journal without a manifest can only come from a run killed before its manifest was
        // first written; its outputs are redone.
        Err(e) if e.is_not_found() => return None,
        Err(e) => {
            let why = std::error::Error::source(&e).map_or(e.to_string(), |c| c.to_string());
            log::warn!(
                "{} cannot be read ({why}): every item is redone and the file is replaced",
                path.display()
            );
            return None;
        }
    };
    let differ = old.header().differing_settings(header);
    if !differ.is_empty() {
        log::info!(
            "earlier run in this output folder had another {}: redoing every item",
            differ.join(", ")
        );
        return None;
    }
    Some(old)
}

/// One pass over the listing and the earlier records, writing the starting manifest.
struct Pass<'a> {
    header: &'a Manifest,
    job: &'a Job,
    manifest_path: &'a Path,
    items: &'a [Item],
    order: &'a [u32],
    reuse: bool,
    dir: &'a Path,
    tag: &'a str,
}

impl Pass<'_> {
    /// The earlier records by stem, one per item (manifest, then journal: the later one wins).
    fn earlier_records(
        &self,
        old: &ManifestReader,
        sort_manifest: bool,
    ) -> std::io::Result<Stream<'static, ItemRecord>> {
        let listed = stream::items_stream(old)?;
        let listed: Stream<'static, ItemRecord> = if sort_manifest {
            let mut s = Sorter::new(self.dir, self.tag, stream::by_stem);
            for r in listed {
                s.push(r?)?;
            }
            s.finish()?
        } else {
            Box::new(in_order(listed))
        };
        let mut j = Sorter::new(self.dir, self.tag, stream::by_stem);
        for r in journal::records(&manifest::journal_path(self.manifest_path)) {
            j.push(r)?;
        }
        let merged = stream::merge_sorted(vec![listed, j.finish()?], stream::by_stem);
        Ok(Box::new(stream::latest_per_stem(merged)))
    }

    fn run(&self, old: Option<&ManifestReader>, sort_manifest: bool) -> Result<Start, PlanError> {
        let earlier_err = |e: std::io::Error| {
            if e.get_ref().is_some_and(|i| i.is::<Unsorted>()) {
                PlanError::Unsorted
            } else {
                PlanError::Earlier(e)
            }
        };
        let mut earlier: std::iter::Peekable<Stream<'static, ItemRecord>> = match old {
            Some(old) => self
                .earlier_records(old, sort_manifest)
                .map_err(earlier_err)?
                .peekable(),
            None => (Box::new(std::iter::empty()) as Stream<'static, ItemRecord>).peekable(),
        };
        let mut w = ManifestWriter::create(self.manifest_path, self.header, &[])
            .map_err(PlanError::Write)?;
        let mut start = Start::default();
        let mut changed_inputs = 0usize;
        let next_earlier = |earlier: &mut std::iter::Peekable<Stream<'static, ItemRecord>>,
                            before: Option<&Path>|
         -> Result<Option<ItemRecord>, PlanError> {
            match earlier.peek() {
                None => Ok(None),
                Some(Err(_)) => match earlier.next() {
                    Some(Err(e)) => Err(earlier_err(e)),
                    _ => unreachable!("peeked an error"),
                },
                Some(Ok(r)) => {
                    let take = before
                        .is_none_or(|stem| stream::path_cmp(&r.stem, stem) != Ordering::Greater);
                    Ok(if take {
                        earlier.next().and_then(Result::ok)
                    } else {
                        None
                    })
                }
            }
        };
        for &idx in self.order {
            let item = &self.items[idx as usize];
            let mut mine = None;
            while let Some(r) = next_earlier(&mut earlier, Some(&item.stem))? {
                if r.stem == item.stem {
                    mine = Some(r);
                    break;
                }
                w.push(&r).map_err(PlanError::Write)?;
                start.carried += 1;
            }
            let Some(mut r) = mine else {
                start.todo.push(idx);
                continue;
            };
            let check = if self.reuse {
                reusable(self.job, item, &mut r)
            } else {
                InputCheck::Unreadable
            };
            match check {
                InputCheck::Same => {
                    r.status = ItemStatus::Skipped;
                    start.skipped += 1;
                }
                InputCheck::Changed => {
                    changed_inputs += 1;
                    start.todo.push(idx);
                }
                // An earlier record stays until this run replaces it: its outputs are on disk.
                InputCheck::Unreadable => start.todo.push(idx),
            }
            w.push(&r).map_err(PlanError::Write)?;
        }
        while let Some(r) = next_earlier(&mut earlier, None)? {
            w.push(&r).map_err(PlanError::Write)?;
            start.carried += 1;
        }
        start.todo.sort_unstable();
        start.total = self.items.len() + start.carried;
        w.commit(start.total, None).map_err(PlanError::Write)?;
        if changed_inputs > 0 {
            log::info!(
                "{changed_inputs} inputs changed since their outputs were written: redoing them"
            );
        }
        Ok(start)
    }
}

/// Passes records on while they come in stem order; the first that does not ends the stream
/// with [`Unsorted`].
fn in_order(
    records: Stream<'static, ItemRecord>,
) -> impl Iterator<Item = std::io::Result<ItemRecord>> {
    let mut last: Option<PathBuf> = None;
    let mut records = records;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let r = match records.next()? {
            Ok(r) => r,
            Err(e) => {
                done = true;
                return Some(Err(e));
            }
        };
        if last
            .as_deref()
            .is_some_and(|l| stream::path_cmp(l, &r.stem) == Ordering::Greater)
        {
            done = true;
            return Some(Err(std::io::Error::other(Unsorted)));
        }
        last = Some(r.stem.clone());
        Some(Ok(r))
    })
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
