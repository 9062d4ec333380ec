//! Manifests and journals read and written as streams of item records, so that a run, a resume,
//! `merge`, `verify` and the RO-Crate hold one record at a time instead of every record of a run.
//!
//! * [`ManifestReader`]: a manifest's header (every key but `items`), then its items one by one.
//!   Any key order and layout of valid JSON is read (the pretty-printed manifests of earlier
//!   versions included); a file that ends early or holds anything after its last brace is an error
//!   when the items are read, so a half-written manifest is never taken for a shorter one.
//! * [`ManifestWriter`]: writes a manifest under a temporary name, items pushed one at a time, one
//!   record per line after the header, then moves it into place ([`crate::output::Staged`]).
//! * [`journal`]: the records a run appends as items finish.
//! * [`Sorter`] and [`merge_sorted`] (from [`super::sort`]): external sorting and the merge of
//!   sorted streams, in bounded memory.

use super::manifest::{Counts, ItemRecord, ItemStatus, Manifest, ManifestError, FORMAT};
pub use super::sort::{
    by_stem, bytes_written, count_written, latest_per_stem, merge_sorted, path_cmp,
    remove_stale_spills, Sorter, Stream, SORT_CHUNK, SPILL_PREFIX,
};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The keys of a manifest besides `items`; a header holding all of them is complete.
const HEADER_KEYS: [&str; 15] = [
    "format",
    "run_id",
    "program",
    "command_line",
    "job",
    "libtorch",
    "device",
    "model",
    "numerics",
    "checkpoint",
    "shard",
    "started",
    "finished",
    "status",
    "counts",
];

/// A JSON reader that keeps its byte position and can capture or skip one value at a time.
struct Scanner<R> {
    r: R,
    pos: u64,
}

fn syntax(pos: u64, what: &str) -> serde_json::Error {
    <serde_json::Error as serde::de::Error>::custom(format!("{what} at byte {pos}"))
}

/// What reading a manifest stream can run into.
enum ScanError {
    Io(std::io::Error),
    Json(serde_json::Error),
}

impl From<std::io::Error> for ScanError {
    fn from(e: std::io::Error) -> Self {
        ScanError::Io(e)
    }
}

impl From<serde_json::Error> for ScanError {
    fn from(e: serde_json::Error) -> Self {
        ScanError::Json(e)
    }
}

impl ScanError {
    fn at(self, path: &Path) -> ManifestError {
        match self {
            ScanError::Io(source) => ManifestError::Read {
                path: path.to_path_buf(),
                source,
            },
            ScanError::Json(source) => ManifestError::Parse {
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

impl<R: BufRead> Scanner<R> {
    fn peek(&mut self) -> Result<Option<u8>, ScanError> {
        Ok(self.r.fill_buf()?.first().copied())
    }

    fn bump(&mut self) {
        self.r.consume(1);
        self.pos += 1;
    }

    fn next_byte(&mut self) -> Result<u8, ScanError> {
        match self.peek()? {
            Some(b) => {
                self.bump();
                Ok(b)
            }
            None => Err(syntax(self.pos, "unexpected end of file").into()),
        }
    }

    fn skip_ws(&mut self) -> Result<(), ScanError> {
        loop {
            let buf = self.r.fill_buf()?;
            let n = buf
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
                .count();
            let more = n == buf.len() && n > 0;
            self.r.consume(n);
            self.pos += n as u64;
            if !more {
                return Ok(());
            }
        }
    }

    fn expect(&mut self, want: u8) -> Result<(), ScanError> {
        self.skip_ws()?;
        let at = self.pos;
        let b = self.next_byte()?;
        if b != want {
            return Err(syntax(at, &format!("expected '{}'", want as char)).into());
        }
        Ok(())
    }

    /// Reads one JSON value's bytes into `out` (or skips them when `out` is `None`). The value's
    /// own syntax is checked by whoever parses the bytes; here only its extent is found. Works on
    /// the reader's buffer a block at a time.
    fn value(&mut self, mut out: Option<&mut Vec<u8>>) -> Result<(), ScanError> {
        self.skip_ws()?;
        let start = self.pos;
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        loop {
            let buf = self.r.fill_buf()?;
            if buf.is_empty() {
                return Err(syntax(self.pos, "unexpected end of file").into());
            }
            let (mut used, mut done) = (0usize, false);
            for &b in buf {
                let at = self.pos + used as u64;
                if !in_string
                    && depth == 0
                    && at > start
                    && matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
                {
                    done = true;
                    break;
                }
                used += 1;
                if in_string {
                    match (escaped, b) {
                        (true, _) => escaped = false,
                        (false, b'\\') => escaped = true,
                        (false, b'"') => {
                            in_string = false;
                            if depth == 0 {
                                done = true;
                                break;
                            }
                        }
                        _ => {}
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        if depth == 0 {
                            return Err(syntax(at, "unbalanced bracket").into());
                        }
                        depth -= 1;
                        if depth == 0 {
                            done = true;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(&buf[..used]);
            }
            self.r.consume(used);
            self.pos += used as u64;
            if done {
                return Ok(());
            }
        }
    }

    /// A key and its colon.
    fn key(&mut self, buf: &mut Vec<u8>) -> Result<String, ScanError> {
        buf.clear();
        self.skip_ws()?;
        if self.peek()? != Some(b'"') {
            return Err(syntax(self.pos, "expected a key").into());
        }
        self.value(Some(buf))?;
        let k: String = serde_json::from_slice(buf)?;
        self.expect(b':')?;
        Ok(k)
    }

    /// After a member: `true` when another follows (`,`), `false` at the closing `}`.
    fn more_members(&mut self) -> Result<bool, ScanError> {
        self.skip_ws()?;
        let at = self.pos;
        match self.next_byte()? {
            b',' => Ok(true),
            b'}' => Ok(false),
            _ => Err(syntax(at, "expected ',' or '}'").into()),
        }
    }

    /// Nothing but white space up to the end of the file.
    fn end(&mut self) -> Result<(), ScanError> {
        self.skip_ws()?;
        match self.peek()? {
            None => Ok(()),
            Some(_) => Err(syntax(self.pos, "trailing characters after the manifest").into()),
        }
    }
}

/// A manifest opened for streaming: its header now, its items on demand ([`ManifestReader::items`]).
pub struct ManifestReader {
    path: PathBuf,
    header: Manifest,
    /// Byte offset of the `items` array's `[`.
    items_at: u64,
}

impl ManifestReader {
    /// Reads the header of the manifest at `path` and checks its format. The items are not read
    /// (when `items` comes last, as this program writes it, they are not even scanned).
    pub fn open(path: &Path) -> Result<ManifestReader, ManifestError> {
        let file = File::open(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut s = Scanner {
            r: BufReader::with_capacity(1 << 16, file),
            pos: 0,
        };
        let (map, items_at) = read_header(&mut s).map_err(|e| e.at(path))?;
        if let Some(found) = map.get("format") {
            if *found != *FORMAT {
                return Err(ManifestError::Format {
                    path: path.to_path_buf(),
                    found: found.as_str().map_or(found.to_string(), str::to_string),
                });
            }
        }
        let Some(items_at) = items_at else {
            return Err(ManifestError::Parse {
                path: path.to_path_buf(),
                source: syntax(0, "no \"items\" list"),
            });
        };
        let mut map = map;
        map.insert("items".into(), serde_json::Value::Array(vec![]));
        let header: Manifest =
            serde_json::from_value(serde_json::Value::Object(map)).map_err(|source| {
                ManifestError::Parse {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        Ok(ManifestReader {
            path: path.to_path_buf(),
            header,
            items_at,
        })
    }

    /// The manifest without its items.
    pub fn header(&self) -> &Manifest {
        &self.header
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The items in file order, one at a time. The last one is followed by the check that the
    /// file ends as a whole manifest does; an error ends the stream.
    pub fn items(&self) -> Result<Items, ManifestError> {
        let read_err = |source| ManifestError::Read {
            path: self.path.clone(),
            source,
        };
        let mut file = File::open(&self.path).map_err(read_err)?;
        file.seek(SeekFrom::Start(self.items_at))
            .map_err(|source| ManifestError::Read {
                path: self.path.clone(),
                source,
            })?;
        let mut s = Scanner {
            r: BufReader::with_capacity(1 << 16, file),
            pos: self.items_at,
        };
        s.expect(b'[').map_err(|e| e.at(&self.path))?;
        Ok(Items {
            s,
            path: self.path.clone(),
            state: ItemsState::First,
            buf: Vec::new(),
        })
    }
}

/// Reads the top-level members up to `items` (or, when the header is not complete there, every
/// member, skipping the items). Returns the header members and the offset of the items' `[`.
fn read_header<R: BufRead>(
    s: &mut Scanner<R>,
) -> Result<(serde_json::Map<String, serde_json::Value>, Option<u64>), ScanError> {
    let mut map = serde_json::Map::new();
    let mut items_at = None;
    let mut buf = Vec::new();
    s.expect(b'{')?;
    s.skip_ws()?;
    if s.peek()? == Some(b'}') {
        s.bump();
        return Ok((map, None));
    }
    loop {
        let key = s.key(&mut buf)?;
        if key == "items" {
            s.skip_ws()?;
            items_at = Some(s.pos);
            if HEADER_KEYS.iter().all(|k| map.contains_key(*k)) {
                return Ok((map, items_at));
            }
            s.value(None)?;
        } else {
            buf.clear();
            s.value(Some(&mut buf))?;
            map.insert(key, serde_json::from_slice(&buf)?);
        }
        if !s.more_members()? {
            break;
        }
    }
    s.end()?;
    Ok((map, items_at))
}

/// The top-level members `keys` of the JSON object in the file at `path`, read as they come and
/// without reading any other member (a manifest's items are skipped, never held); stops once all
/// are found. For readers that want a few header values of a manifest of any shape.
pub fn top_level(
    path: &Path,
    keys: &[&str],
) -> Result<serde_json::Map<String, serde_json::Value>, ManifestError> {
    let file = File::open(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut s = Scanner {
        r: BufReader::with_capacity(1 << 16, file),
        pos: 0,
    };
    let scan = |s: &mut Scanner<BufReader<File>>| -> Result<_, ScanError> {
        let mut map = serde_json::Map::new();
        let mut buf = Vec::new();
        s.expect(b'{')?;
        s.skip_ws()?;
        if s.peek()? == Some(b'}') {
            return Ok(map);
        }
        loop {
            let key = s.key(&mut buf)?;
            if keys.contains(&key.as_str()) {
                buf.clear();
                s.value(Some(&mut buf))?;
                map.insert(key, serde_json::from_slice(&buf)?);
                if keys.iter().all(|k| map.contains_key(*k)) {
                    return Ok(map);
                }
            } else {
                s.value(None)?;
            }
            if !s.more_members()? {
                return Ok(map);
            }
        }
    };
    scan(&mut s).map_err(|e| e.at(path))
}

enum ItemsState {
    First,
    Rest,
    Done,
}

/// A manifest's items, read one at a time ([`ManifestReader::items`]).
pub struct Items {
    s: Scanner<BufReader<File>>,
    path: PathBuf,
    state: ItemsState,
    buf: Vec<u8>,
}

impl Items {
    fn step(&mut self) -> Result<Option<ItemRecord>, ScanError> {
        self.s.skip_ws()?;
        let at = self.s.pos;
        match self.state {
            ItemsState::Done => return Ok(None),
            ItemsState::First if self.s.peek()? == Some(b']') => {
                self.s.bump();
                return self.finish();
            }
            ItemsState::First => {}
            ItemsState::Rest => match self.s.next_byte()? {
                b',' => {}
                b']' => return self.finish(),
                _ => return Err(syntax(at, "expected ',' or ']' between items").into()),
            },
        }
        self.buf.clear();
        self.s.value(Some(&mut self.buf))?;
        let rec: ItemRecord = serde_json::from_slice(&self.buf)?;
        self.state = ItemsState::Rest;
        Ok(Some(rec))
    }

    /// After the items: the remaining members, the closing brace and nothing else.
    fn finish(&mut self) -> Result<Option<ItemRecord>, ScanError> {
        self.state = ItemsState::Done;
        let mut key = Vec::new();
        while self.s.more_members()? {
            self.s.key(&mut key)?;
            self.s.value(None)?;
        }
        self.s.end()?;
        Ok(None)
    }
}

impl Iterator for Items {
    type Item = Result<ItemRecord, ManifestError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(r) => r.map(Ok),
            Err(e) => {
                self.state = ItemsState::Done;
                Some(Err(e.at(&self.path)))
            }
        }
    }
}

/// Counts the statuses of records as they pass.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub items: usize,
    pub written: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Tally {
    pub fn add(&mut self, status: ItemStatus) {
        self.items += 1;
        match status {
            ItemStatus::Written => self.written += 1,
            ItemStatus::Failed => self.failed += 1,
            ItemStatus::Skipped => self.skipped += 1,
        }
    }

    pub fn counts(&self, total: usize) -> Counts {
        Counts {
            total,
            written: self.written,
            failed: self.failed,
            skipped: self.skipped,
        }
    }
}

/// Room left for the counts and the status, known only after the items: written over at the end
/// (white space pads the rest).
const LATE_ROOM: usize = 200;

/// Writes a manifest item by item under a temporary name; [`ManifestWriter::commit`] moves it into
/// place. Header keys in sorted order, each pretty-printed; then `counts` and `status`; then
/// `items`, one record per line. Dropped before the commit, it leaves nothing behind.
pub struct ManifestWriter {
    staged: crate::output::Staged,
    out: BufWriter<File>,
    late_at: u64,
    status: super::manifest::RunStatus,
    tally: Tally,
}

impl ManifestWriter {
    /// Starts the manifest at `path` from `header` (its `items` and `counts` are not used) and
    /// `extra` top-level members (e.g. `merged_from`).
    pub fn create(
        path: &Path,
        header: &Manifest,
        extra: &[(&str, serde_json::Value)],
    ) -> std::io::Result<ManifestWriter> {
        let staged = crate::output::Staged::new(path)?;
        let file = File::create(staged.path())?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        let value = serde_json::to_value(header).map_err(std::io::Error::other)?;
        let serde_json::Value::Object(mut map) = value else {
            return Err(std::io::Error::other("a manifest header is a JSON object"));
        };
        map.remove("items");
        map.remove("counts");
        map.remove("status");
        for (k, v) in extra {
            map.insert((*k).to_string(), v.clone());
        }
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        let mut text = String::from("{\n");
        for k in keys {
            let v = serde_json::to_string_pretty(&map[k]).map_err(std::io::Error::other)?;
            let k = serde_json::to_string(k).map_err(std::io::Error::other)?;
            text += &format!("  {k}: {},\n", v.replace('\n', "\n  "));
        }
        text += "  \"counts\": ";
        out.write_all(text.as_bytes())?;
        let late_at = text.len() as u64;
        out.write_all(&[b' '; LATE_ROOM])?;
        out.write_all(b",\n  \"items\": [")?;
        Ok(ManifestWriter {
            staged,
            out,
            late_at,
            status: header.status,
            tally: Tally::default(),
        })
    }

    /// Appends one record.
    pub fn push(&mut self, rec: &ItemRecord) -> std::io::Result<()> {
        let sep: &[u8] = if self.tally.items == 0 {
            b"\n    "
        } else {
            b",\n    "
        };
        self.out.write_all(sep)?;
        serde_json::to_writer(&mut self.out, rec).map_err(std::io::Error::other)?;
        self.tally.add(rec.status);
        Ok(())
    }

    /// Sets the status written at the commit (default: the header's).
    pub fn set_status(&mut self, status: super::manifest::RunStatus) {
        self.status = status;
    }

    /// What has been pushed so far.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Ends the file with `counts` (default: the pushed records' statuses, with `total`), makes
    /// it durable and moves it into place. Returns the counts written.
    pub fn commit(mut self, total: usize, counts: Option<Counts>) -> std::io::Result<Counts> {
        let counts = counts.unwrap_or_else(|| self.tally.counts(total));
        let tail: &[u8] = if self.tally.items == 0 {
            b"]\n}\n"
        } else {
            b"\n  ]\n}\n"
        };
        self.out.write_all(tail)?;
        let text = format!(
            "{},\n  \"status\": {}",
            serde_json::to_string(&counts).map_err(std::io::Error::other)?,
            serde_json::to_string(&self.status).map_err(std::io::Error::other)?
        );
        if text.len() > LATE_ROOM {
            return Err(std::io::Error::other("manifest counts too long"));
        }
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(self.late_at))?;
        file.write_all(text.as_bytes())?;
        file.flush()?;
        count_written(file.seek(SeekFrom::End(0))?);
        drop(file);
        self.staged.commit()?;
        Ok(counts)
    }
}

/// The journal beside a manifest: one record per line, appended as items finish.
pub mod journal {
    use super::*;

    /// The records in the journal at `path`, in the order they were appended; none when it does
    /// not exist. A line that is not a whole record (the last one of a killed run) is skipped.
    pub fn records(path: &Path) -> impl Iterator<Item = ItemRecord> {
        let mut r = File::open(path)
            .ok()
            .map(|f| BufReader::with_capacity(1 << 16, f));
        let mut line = Vec::new();
        std::iter::from_fn(move || loop {
            let reader = r.as_mut()?;
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => {
                    r = None;
                    return None;
                }
                Ok(_) => {
                    if let Ok(rec) = serde_json::from_slice::<ItemRecord>(&line) {
                        return Some(rec);
                    }
                }
            }
        })
    }
}

/// A manifest's items as an I/O stream (errors name the file).
pub fn items_stream(reader: &ManifestReader) -> std::io::Result<Stream<'static, ItemRecord>> {
    let items = reader.items().map_err(std::io::Error::other)?;
    Ok(Box::new(items.map(|r| r.map_err(std::io::Error::other))))
}

/// The [`ManifestError`] inside an I/O error made by this module, if it holds one.
pub fn manifest_error(e: &std::io::Error) -> Option<&ManifestError> {
    e.get_ref().and_then(|inner| inner.downcast_ref())
}

impl Manifest {
    /// Reads a whole manifest (a run's, a shard's or a merged one) into memory and checks its
    /// format. For small manifests; large ones are read with [`ManifestReader`].
    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
        read_all(path)
    }

    /// Writes the manifest as it is (counts included), atomically.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        write_all(path, self)
    }
}

/// Reads a whole (small) manifest into memory through the streaming reader.
pub fn read_all(path: &Path) -> Result<Manifest, ManifestError> {
    let reader = ManifestReader::open(path)?;
    let mut m = reader.header.clone();
    for it in reader.items()? {
        m.items.push(it?);
    }
    Ok(m)
}

/// Writes a whole manifest held in memory, its counts as they are.
pub fn write_all(path: &Path, m: &Manifest) -> std::io::Result<()> {
    let mut w = ManifestWriter::create(path, m, &[])?;
    for it in &m.items {
        w.push(it)?;
    }
    w.commit(m.counts.total, Some(m.counts.clone()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Job;
    use crate::provenance::manifest::{tests::header, OutputFile, RunStatus, Timings};
    use serde_json::{json, Value};

    fn record(stem: &str, status: ItemStatus) -> ItemRecord {
        ItemRecord {
            input: format!("{stem}.png").into(),
            input_sha256: Some("i".into()),
            input_size: Some(3),
            input_mtime_ns: Some(4),
            stem: stem.into(),
            status,
            error: None,
            outputs: vec![OutputFile {
                path: format!("{stem}.hdf5").into(),
                sha256: "o".into(),
            }],
            nan_values: 0,
            timings_ms: Timings::default(),
        }
    }

    fn manifest(stems: &[&str]) -> Manifest {
        let mut m = header(&Job::default());
        m.items = stems
            .iter()
            .map(|s| record(s, ItemStatus::Written))
            .collect();
        m.counts = Counts {
            total: stems.len(),
            written: stems.len(),
            ..Default::default()
        };
        m.status = RunStatus::Complete;
        m
    }

    fn read(path: &Path) -> Result<(Manifest, Vec<ItemRecord>), ManifestError> {
        let r = ManifestReader::open(path)?;
        let items = r.items()?.collect::<Result<Vec<_>, _>>()?;
        Ok((r.header().clone(), items))
    }

    #[test]
    fn old_and_new_manifests_read_alike() {
        let d = tempfile::tempdir().unwrap();
        let m = manifest(&["a", "b/c", "d"]);
        // As earlier versions wrote them: the whole document pretty-printed, a run's in field
        // order (items last) and a merged one with its keys sorted (items before `job`).
        let old_run = d.path().join("old-run.json");
        std::fs::write(&old_run, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        let mut merged = serde_json::to_value(&m).unwrap();
        merged["merged_from"] = json!([{"manifest": "manifests/shard-00000-of-00001.json"}]);
        let old_merged = d.path().join("old-merged.json");
        std::fs::write(&old_merged, serde_json::to_vec_pretty(&merged).unwrap()).unwrap();
        let text = std::fs::read_to_string(&old_merged).unwrap();
        assert!(text.find("\"items\"").unwrap() < text.find("\"job\"").unwrap());
        let new = d.path().join("new.json");
        m.write(&new).unwrap();
        for p in [&old_run, &old_merged, &new] {
            let (h, items) = read(p).unwrap();
            assert_eq!(items, m.items, "{}", p.display());
            assert_eq!(
                (h.run_id.as_str(), h.status, &h.counts),
                ("r", RunStatus::Complete, &m.counts),
                "{}",
                p.display()
            );
            assert!(h.items.is_empty());
            // Every form is one JSON document with the same members.
            let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            assert_eq!(v["items"].as_array().unwrap().len(), 3);
        }
        // The new form: one record per line after a header, `items` last.
        let text = std::fs::read_to_string(&new).unwrap();
        let items_at = text.find("\"items\": [").unwrap();
        assert_eq!(text[items_at..].lines().count(), 3 + 3, "{text}");
        assert!(text.find("\"format\"").unwrap() < items_at);
        // A header read stops at the items: a manifest whose items are garbage still opens, and
        // reading its items fails.
        let mut broken = text.clone();
        broken.replace_range(items_at + 12..items_at + 14, "@@");
        std::fs::write(&new, broken).unwrap();
        let r = ManifestReader::open(&new).unwrap();
        assert!(r.items().unwrap().any(|i| i.is_err()));
    }

    #[test]
    fn a_cut_off_manifest_is_never_read_as_a_shorter_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("manifest.json");
        manifest(&["a", "b", "c"]).write(&p).unwrap();
        let whole = std::fs::read(&p).unwrap();
        let end = whole.trim_ascii_end().len();
        for cut in 0..whole.len() {
            std::fs::write(&p, &whole[..cut]).unwrap();
            let got = read(&p);
            if cut >= end {
                assert_eq!(got.unwrap().1.len(), 3);
            } else {
                assert!(
                    got.is_err(),
                    "cut at {cut} of {} read as whole",
                    whole.len()
                );
            }
        }
        // Nor is a manifest with something after it.
        let mut more = whole.clone();
        more.extend_from_slice(b"{}");
        std::fs::write(&p, &more).unwrap();
        let e = read(&p).unwrap_err();
        assert!(matches!(e, ManifestError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("manifest.json"));
    }

    #[test]
    fn the_format_and_missing_items_are_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.json");
        let mut v = serde_json::to_value(manifest(&["a"])).unwrap();
        v["format"] = json!("maskomaly-manifest/9");
        std::fs::write(&p, v.to_string()).unwrap();
        let e = ManifestReader::open(&p).err().unwrap();
        assert!(e.to_string().contains("maskomaly-manifest/9"), "{e}");
        v["format"] = json!(FORMAT);
        v.as_object_mut().unwrap().remove("items");
        std::fs::write(&p, v.to_string()).unwrap();
        let e = ManifestReader::open(&p).err().unwrap();
        assert!(matches!(e, ManifestError::Parse { .. }), "{e}");
    }

    #[test]
    fn top_level_reads_a_few_members_of_any_object() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.json");
        std::fs::write(
            &p,
            r#"{"items": [{"x": "]}"}], "run_id": "r1", "n": -1.5e3, "checkpoint": {"sha256": "ab"}}"#,
        )
        .unwrap();
        let m = top_level(&p, &["run_id", "checkpoint", "none"]).unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"run_id": "r1", "checkpoint": {"sha256": "ab"}})
        );
    }

    #[test]
    fn the_sorter_spills_merges_and_keeps_equal_values_in_push_order() {
        let d = tempfile::tempdir().unwrap();
        let n = SORT_CHUNK * 2 + 100;
        let mut s: Sorter<(u32, u32)> = Sorter::new(d.path(), "t", |a, b| a.0.cmp(&b.0));
        for i in 0..n as u32 {
            s.push(((i * 7919) % 1000, i)).unwrap();
        }
        let spilled = || {
            std::fs::read_dir(d.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with(SPILL_PREFIX)
                })
                .count()
        };
        let out: Vec<(u32, u32)> = s.finish().unwrap().map(Result::unwrap).collect();
        assert_eq!(spilled(), 0, "the spill folder goes with the stream");
        assert_eq!(out.len(), n);
        for w in out.windows(2) {
            assert!(
                w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1),
                "{w:?}"
            );
        }
    }

    #[test]
    fn merged_streams_keep_the_latest_record_of_each_stem() {
        let a = vec![
            record("a", ItemStatus::Written),
            record("b", ItemStatus::Written),
        ];
        let b = vec![
            record("b", ItemStatus::Failed),
            record("c", ItemStatus::Failed),
        ];
        let stream =
            |v: Vec<ItemRecord>| -> Stream<'static, ItemRecord> { Box::new(v.into_iter().map(Ok)) };
        let got: Vec<(String, ItemStatus)> =
            latest_per_stem(merge_sorted(vec![stream(a), stream(b)], by_stem))
                .map(|r| {
                    let r = r.unwrap();
                    (r.stem.display().to_string(), r.status)
                })
                .collect();
        assert_eq!(
            got,
            [
                ("a".to_string(), ItemStatus::Written),
                ("b".to_string(), ItemStatus::Failed),
                ("c".to_string(), ItemStatus::Failed)
            ]
        );
    }

    #[test]
    fn a_torn_journal_line_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j");
        let line = serde_json::to_string(&record("a", ItemStatus::Written)).unwrap();
        std::fs::write(&p, format!("{line}\n{}", &line[..line.len() / 2])).unwrap();
        assert_eq!(journal::records(&p).count(), 1);
        assert_eq!(journal::records(&d.path().join("none")).count(), 0);
    }
}
