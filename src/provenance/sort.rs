//! External sorting and the merge of sorted streams, in bounded memory: values are held a sorted
//! run at a time, spilled as JSON Lines into a hidden folder and merged back. Also the count of
//! bytes written for manifests, journals and spills, which must grow linearly with a run's items.

use super::manifest::ItemRecord;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cmp::Ordering;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Bytes this process has written to manifests, journals and sort spills (see [`bytes_written`]).
static WRITTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes this process has written to manifests, journals and their sort spills: the figure that
/// must grow linearly with the items of a run (`maskomaly run --json` reports it).
pub fn bytes_written() -> u64 {
    WRITTEN.load(std::sync::atomic::Ordering::Relaxed)
}

/// Adds `n` to [`bytes_written`].
pub fn count_written(n: u64) {
    WRITTEN.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

/// Byte-wise order of two paths (the order of listings and manifests).
pub fn path_cmp(a: &Path, b: &Path) -> Ordering {
    a.as_os_str()
        .as_encoded_bytes()
        .cmp(b.as_os_str().as_encoded_bytes())
}

/// Records held in memory per sorted run before it is spilled to disk.
pub const SORT_CHUNK: usize = 16_384;

/// External sort: values are pushed in any order and come back in `cmp` order, values that compare
/// equal in the order they were pushed. Up to [`SORT_CHUNK`] values are held at a time; sorted
/// runs are spilled as JSON Lines into a hidden folder under `dir`, removed when the stream ends.
pub struct Sorter<T> {
    dir: PathBuf,
    /// Names the spill folder: `.maskomaly-sort-TAG-XXXXXX`.
    tag: String,
    cmp: fn(&T, &T) -> Ordering,
    chunk: Vec<T>,
    spill: Option<tempfile::TempDir>,
    runs: Vec<PathBuf>,
}

/// Prefix of the folders [`Sorter`] spills into (hidden, so `verify` and listings pass them by).
pub const SPILL_PREFIX: &str = ".maskomaly-sort-";

/// A stream of values from a sorted source.
pub type Stream<'a, T> = Box<dyn Iterator<Item = std::io::Result<T>> + 'a>;

impl<T: Serialize + DeserializeOwned + 'static> Sorter<T> {
    /// Spills (if it must) into a folder under `dir` named after `tag` (see
    /// [`remove_stale_spills`]).
    pub fn new(dir: &Path, tag: &str, cmp: fn(&T, &T) -> Ordering) -> Sorter<T> {
        Sorter {
            dir: dir.to_path_buf(),
            tag: tag.to_string(),
            cmp,
            chunk: Vec::new(),
            spill: None,
            runs: Vec::new(),
        }
    }

    pub fn push(&mut self, v: T) -> std::io::Result<()> {
        self.chunk.push(v);
        if self.chunk.len() >= SORT_CHUNK {
            self.spill_chunk()?;
        }
        Ok(())
    }

    fn spill_chunk(&mut self) -> std::io::Result<()> {
        let cmp = self.cmp;
        self.chunk.sort_by(cmp);
        if self.spill.is_none() {
            std::fs::create_dir_all(&self.dir)?;
            self.spill = Some(
                tempfile::Builder::new()
                    .prefix(&format!("{SPILL_PREFIX}{}-", self.tag))
                    .tempdir_in(&self.dir)?,
            );
        }
        let dir = self.spill.as_ref().expect("created above").path();
        let path = dir.join(format!(".run-{:05}", self.runs.len()));
        let mut out = BufWriter::with_capacity(1 << 16, File::create(&path)?);
        for v in self.chunk.drain(..) {
            serde_json::to_writer(&mut out, &v).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        count_written(out.get_ref().metadata()?.len());
        self.runs.push(path);
        Ok(())
    }

    /// The values in order.
    pub fn finish(mut self) -> std::io::Result<Stream<'static, T>> {
        let cmp = self.cmp;
        if self.runs.is_empty() {
            self.chunk.sort_by(cmp);
            return Ok(Box::new(
                std::mem::take(&mut self.chunk).into_iter().map(Ok),
            ));
        }
        if !self.chunk.is_empty() {
            self.spill_chunk()?;
        }
        let mut streams: Vec<Stream<'static, T>> = Vec::new();
        for p in &self.runs {
            streams.push(Box::new(json_lines::<T>(p)?));
        }
        let merged = merge_sorted(streams, cmp);
        // The folder lives as long as the stream.
        let spill = self.spill.take();
        Ok(Box::new(merged.inspect(move |_| {
            let _ = &spill;
        })))
    }
}

/// The values of a JSON Lines file.
fn json_lines<T: DeserializeOwned>(
    path: &Path,
) -> std::io::Result<impl Iterator<Item = std::io::Result<T>>> {
    let mut r = BufReader::with_capacity(1 << 14, File::open(path)?);
    let mut line = Vec::new();
    let mut done = false;
    Ok(std::iter::from_fn(move || {
        if done {
            return None;
        }
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) => {
                done = true;
                None
            }
            Ok(_) => Some(serde_json::from_slice(&line).map_err(std::io::Error::other)),
            Err(e) => {
                done = true;
                Some(Err(e))
            }
        }
    }))
}

/// Merges streams that are each sorted by `cmp` into one sorted stream; of values that compare
/// equal, those of earlier streams come first. The first error ends the stream.
pub fn merge_sorted<'a, T: 'a>(
    mut streams: Vec<Stream<'a, T>>,
    cmp: fn(&T, &T) -> Ordering,
) -> impl Iterator<Item = std::io::Result<T>> + 'a {
    let mut heads: Vec<Option<T>> = Vec::new();
    let mut started = false;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        if !started {
            started = true;
            for s in streams.iter_mut() {
                match s.next() {
                    Some(Ok(v)) => heads.push(Some(v)),
                    Some(Err(e)) => {
                        failed = true;
                        return Some(Err(e));
                    }
                    None => heads.push(None),
                }
            }
        }
        let mut best: Option<usize> = None;
        for (i, h) in heads.iter().enumerate() {
            if let Some(v) = h {
                let better = match best {
                    None => true,
                    Some(b) => cmp(v, heads[b].as_ref().expect("a head")) == Ordering::Less,
                };
                if better {
                    best = Some(i);
                }
            }
        }
        let i = best?;
        let v = heads[i].take();
        match streams[i].next() {
            Some(Ok(n)) => heads[i] = Some(n),
            Some(Err(e)) => {
                failed = true;
                return Some(Err(e));
            }
            None => {}
        }
        v.map(Ok)
    })
}

/// The order of records in a run's manifest: byte-wise by stem.
pub fn by_stem(a: &ItemRecord, b: &ItemRecord) -> Ordering {
    path_cmp(&a.stem, &b.stem)
}

/// Of consecutive records with the same stem, keeps the last: a sorted stream of records with
/// later records for an item coming after earlier ones becomes one record per item.
pub fn latest_per_stem<'a>(
    records: impl Iterator<Item = std::io::Result<ItemRecord>> + 'a,
) -> impl Iterator<Item = std::io::Result<ItemRecord>> + 'a {
    let mut records = records.peekable();
    std::iter::from_fn(move || {
        let mut cur = match records.next()? {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        while let Some(Ok(next)) = records.peek() {
            if next.stem != cur.stem {
                break;
            }
            cur = match records.next() {
                Some(Ok(r)) => r,
                _ => unreachable!("peeked"),
            };
        }
        Some(Ok(cur))
    })
}

/// Removes the spill folders of `tag` ([`Sorter`]) that a killed process left in `dir`; those of
/// other tags (another shard's manifest) are left alone.
pub fn remove_stale_spills(dir: &Path, tag: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!("{SPILL_PREFIX}{tag}-");
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name();
        if name.as_encoded_bytes().starts_with(prefix.as_bytes())
            && e.file_type().is_ok_and(|t| t.is_dir())
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
