//! Writer stage: one thread writes every output (temp name + rename), hashes it, and records the
//! outcome: each record is appended to the manifest's journal at once, so a killed run loses at
//! most the items in flight. `manifest.json` itself is written twice: when the run starts (with the
//! earlier run's records, see [`crate::provenance::resume`]) and when it ends, from that manifest
//! and the journal, streaming. The bytes written for the manifest grow linearly with the items.

use super::decode::ms;
use super::message::{InputId, Scored, ToWrite};
use super::{RunError, Shared};
use crate::output::digest::sha256_file;
use crate::output::{hdf5, image, paths_for};
use crate::provenance::manifest::{
    journal_path, Counts, ItemRecord, ItemStatus, Manifest, OutputFile, RunStatus,
};
use crate::provenance::stream::{self, journal, ManifestReader, Sorter};
use crossbeam_channel::Receiver;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct ManifestWriter {
    header: Manifest,
    /// Items the manifest counts (this run's and carried ones).
    total: usize,
    /// Written and failed items of this run.
    this_run: Counts,
    /// Summed per-stage times of the items this run processed, in milliseconds.
    pub busy_ms: [f64; 6],
    path: PathBuf,
    journal: Option<std::io::BufWriter<std::fs::File>>,
    /// Whether the run's starting manifest was written (else there is nothing to end).
    started: bool,
}

impl ManifestWriter {
    /// The writer of a run whose starting manifest (`header` and the earlier records, `total`
    /// items of which `skipped` are this run's and complete) is at `path`; `started` is false
    /// when it could not be written.
    pub fn new(
        header: Manifest,
        path: PathBuf,
        total: usize,
        skipped: usize,
        started: bool,
    ) -> Self {
        ManifestWriter {
            header,
            total,
            this_run: Counts {
                total: 0,
                skipped,
                ..Counts::default()
            },
            busy_ms: [0.0; 6],
            path,
            journal: None,
            started,
        }
    }

    /// What this run did with its own items (the manifest may also hold carried records).
    pub fn run_counts(&self, items: usize) -> Counts {
        Counts {
            total: items,
            ..self.this_run.clone()
        }
    }

    /// Records an item's outcome: appended to the journal now, in the manifest when the run ends.
    pub fn record(&mut self, rec: ItemRecord) -> std::io::Result<()> {
        if self.journal.is_none() {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(journal_path(&self.path))?;
            self.journal = Some(std::io::BufWriter::with_capacity(1 << 14, f));
        }
        let mut line = serde_json::to_vec(&rec).map_err(std::io::Error::other)?;
        line.push(b'\n');
        if let Some(j) = self.journal.as_mut() {
            // One write per record: a kill leaves at most a torn last line, which readers skip.
            j.write_all(&line)?;
            j.flush()?;
            stream::count_written(line.len() as u64);
        }
        match rec.status {
            ItemStatus::Written => self.this_run.written += 1,
            ItemStatus::Failed => self.this_run.failed += 1,
            ItemStatus::Skipped => self.this_run.skipped += 1,
        }
        let t = &rec.timings_ms;
        for (b, v) in self
            .busy_ms
            .iter_mut()
            .zip([t.decode, t.upload, t.infer, t.score, t.download, t.write])
        {
            *b += v;
        }
        Ok(())
    }

    /// Writes the final `manifest.json` with `status`: the starting manifest's records with this
    /// run's (from the journal, sorted by stem) in place of the earlier ones, streaming; then
    /// removes the journal. A kill before the new file is in place leaves the starting manifest
    /// and the journal, which a rerun reads together.
    pub fn finish(&mut self, status: RunStatus) -> std::io::Result<()> {
        if !self.started {
            return Ok(());
        }
        self.journal = None;
        let mut header = self.header.clone();
        header.status = status;
        header.finished = Some(crate::provenance::manifest::now_rfc3339());
        let start = ManifestReader::open(&self.path).map_err(std::io::Error::other)?;
        let (dir, tag) = crate::provenance::resume::spill_place(&self.path);
        let mut sorter = Sorter::new(&dir, &tag, stream::by_stem);
        let journal = journal_path(&self.path);
        for rec in journal::records(&journal) {
            sorter.push(rec)?;
        }
        let merged = stream::merge_sorted(
            vec![stream::items_stream(&start)?, sorter.finish()?],
            stream::by_stem,
        );
        let mut w = stream::ManifestWriter::create(&self.path, &header, &[])?;
        for rec in stream::latest_per_stem(merged) {
            w.push(&rec?)?;
        }
        w.commit(self.total, None)?;
        match std::fs::remove_file(&journal) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

pub fn run(
    shared: &Shared,
    rx: Receiver<ToWrite>,
    mw: &mut ManifestWriter,
    progress: &indicatif::ProgressBar,
) {
    // Without a terminal (batch logs) progress goes to the log every 30 s instead of a bar.
    let log_progress = !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (t0, mut last_log, mut done) = (Instant::now(), Instant::now(), 0usize);
    let total = progress.length().unwrap_or(0);
    while let Ok(msg) = rx.recv() {
        shared.sample_queue(3, rx.len());
        let rec = match msg {
            Ok(scored) => {
                let (image, stem, id) = (
                    scored.item.image.clone(),
                    scored.item.stem.clone(),
                    scored.input_id.clone(),
                );
                let written =
                    super::guard_item(|| write_item(shared, scored)).unwrap_or_else(|panic| {
                        let mut rec = failed_record(shared, &image, stem, Some(id), panic.clone());
                        rec.timings_ms = Default::default();
                        Err(Box::new((rec, panic, None)))
                    });
                match written.map_err(|b| *b) {
                    Ok(rec) => rec,
                    Err((rec, _, Some(e))) => {
                        // No space, a read-only or failing file system: every later item too.
                        let _ = mw.record(rec);
                        shared.fail(RunError::io("cannot write the outputs of", &image, e));
                        return;
                    }
                    Err((rec, e, None)) => {
                        log::warn!("{e}");
                        rec
                    }
                }
            }
            Err(f) => {
                let f = *f;
                log::warn!("{}: {}", f.item.image.display(), f.error);
                let mut rec =
                    failed_record(shared, &f.item.image, f.item.stem, f.input_id, f.error);
                rec.timings_ms = f.timings;
                rec
            }
        };
        if let Err(e) = mw.record(rec) {
            shared.fail(RunError::io("cannot update the manifest", &mw.path, e));
            return;
        }
        progress.inc(1);
        done += 1;
        if log_progress && last_log.elapsed() >= Duration::from_secs(30) {
            let rate = done as f64 / t0.elapsed().as_secs_f64();
            log::info!("progress: {done}/{total} items ({rate:.2} items/s)");
            last_log = Instant::now();
        }
    }
}

/// A failed item's record, the message, and the error when it will recur for every item.
type WriteFailure = (ItemRecord, String, Option<std::io::Error>);

/// The record of an item that failed before any output was written.
fn failed_record(
    shared: &Shared,
    image: &Path,
    stem: PathBuf,
    id: Option<InputId>,
    error: String,
) -> ItemRecord {
    let id = id.unwrap_or_default();
    ItemRecord {
        input: shared.relative_input(image),
        input_sha256: (!id.sha256.is_empty()).then_some(id.sha256),
        input_size: None,
        input_mtime_ns: None,
        stem,
        status: ItemStatus::Failed,
        error: Some(error),
        outputs: vec![],
        nan_values: 0,
        timings_ms: Default::default(),
    }
}

/// Writes one item's outputs. On failure: the record, the message, and the error when it will
/// recur for every item (then the run stops).
fn write_item(shared: &Shared, s: Scored) -> Result<ItemRecord, Box<WriteFailure>> {
    let t0 = Instant::now();
    let job = &shared.job;
    let paths = paths_for(job, &s.item.stem);
    let (h, w) = (s.image.height, s.image.width);
    let mut rec = ItemRecord {
        input: shared.relative_input(&s.item.image),
        input_sha256: Some(s.input_id.sha256),
        input_size: Some(s.input_id.size),
        input_mtime_ns: Some(s.input_id.mtime_ns),
        stem: s.item.stem.clone(),
        status: ItemStatus::Written,
        error: None,
        outputs: vec![],
        nan_values: s.nan_values,
        timings_ms: s.timings,
    };
    let result = (|| -> std::io::Result<()> {
        for ((kind, values), (_, paths)) in s.scores.iter().zip(&paths.scores) {
            // HDF5 and .npy hold the score's own values; PNG and heatmap its fixed [0, 1] mapping.
            if let Some(p) = &paths.hdf5 {
                hdf5::write_score(p, values, h, w, job.output.hdf5.dtype)?;
            }
            if paths.png.is_some() || paths.heatmap.is_some() {
                let unit = crate::scores::display(*kind, s.classes, values);
                if let Some(p) = &paths.png {
                    image::write_png16(p, &unit, h, w)?;
                }
                if let Some(p) = &paths.heatmap {
                    image::write_heatmap(p, &unit, &s.image)?;
                }
            }
            if let Some(seg) = &s.segmentation {
                if let Some(p) = &paths.segmentation {
                    image::write_gray8(p, seg, h, w)?;
                }
                if let Some(p) = &paths.segmentation_npy {
                    crate::output::npy::write_u8(p, seg, &[h, w])?;
                }
            }
            if let Some(p) = &paths.anomaly_npy {
                crate::output::npy::write_f32(p, values, &[h, w])?;
            }
        }
        for p in paths.all() {
            let rel = p.strip_prefix(&job.output.root).unwrap_or(p).to_path_buf();
            rec.outputs.push(OutputFile {
                path: rel,
                sha256: sha256_file(p)?,
            });
        }
        Ok(())
    })();
    rec.timings_ms.write = ms(t0);
    match result {
        Ok(()) => Ok(rec),
        Err(e) => {
            let msg = format!("cannot write outputs of {}: {e}", s.item.image.display());
            // Outputs this item did write before the error are not described by its record.
            for p in paths.all() {
                let _ = std::fs::remove_file(p);
            }
            rec.status = ItemStatus::Failed;
            rec.error = Some(msg.clone());
            rec.outputs.clear();
            let fatal = crate::output::is_fatal_write_error(&e);
            Err(Box::new((rec, msg, fatal.then_some(e))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Job;
    use crate::provenance::manifest::tests::header;

    fn record(stem: &str) -> ItemRecord {
        ItemRecord {
            input: format!("{stem}.png").into(),
            input_sha256: Some("i".into()),
            input_size: Some(1),
            input_mtime_ns: Some(2),
            stem: stem.into(),
            status: ItemStatus::Written,
            error: None,
            outputs: vec![],
            nan_values: 0,
            timings_ms: Default::default(),
        }
    }

    #[test]
    fn a_final_write_cut_short_keeps_the_starting_manifest_and_the_journal() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("manifest.json");
        let h = header(&Job::default());
        // The starting manifest holds one earlier record; this run records two more.
        let mut w = stream::ManifestWriter::create(&path, &h, &[]).unwrap();
        w.push(&record("b")).unwrap();
        w.commit(3, None).unwrap();
        let mut mw = ManifestWriter::new(h.clone(), path.clone(), 3, 0, true);
        mw.record(record("c")).unwrap();
        mw.record(record("a")).unwrap();
        // The final manifest cannot be written (its temporary name is taken by a folder).
        let temp = crate::output::temp_path(&path);
        std::fs::create_dir(&temp).unwrap();
        assert!(mw.finish(RunStatus::Complete).is_err());
        std::fs::remove_dir(&temp).unwrap();
        let m = Manifest::read(&path).unwrap();
        assert_eq!((m.status, m.items.len()), (RunStatus::Running, 1));
        assert_eq!(journal::records(&journal_path(&path)).count(), 2);
        // The next final write has every record, in stem order, and ends the journal.
        let mut mw = ManifestWriter::new(h, path.clone(), 3, 0, true);
        mw.finish(RunStatus::Complete).unwrap();
        let m = Manifest::read(&path).unwrap();
        let stems: Vec<String> = m
            .items
            .iter()
            .map(|r| r.stem.display().to_string())
            .collect();
        assert_eq!(stems, ["a", "b", "c"]);
        assert_eq!(
            (m.status, m.counts.written, m.counts.total),
            (RunStatus::Complete, 3, 3)
        );
        assert!(!journal_path(&path).exists());
    }
}
