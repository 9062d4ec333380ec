//! Writer stage: one thread writes every output (temp name + rename), hashes it, and records the
//! outcome in the manifest. Each record is also appended to a journal at once, so a killed run
//! loses at most the items in flight; `manifest.json` itself is rewritten at most once a second.

use super::decode::ms;
use super::message::{InputId, Scored, ToWrite};
use super::{RunError, Shared};
use crate::output::digest::sha256_file;
use crate::output::{hdf5, image, paths_for};
use crate::provenance::manifest::{
    Counts, ItemRecord, ItemStatus, Manifest, OutputFile, RunStatus,
};
use crossbeam_channel::Receiver;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct ManifestWriter {
    pub manifest: Manifest,
    /// Records by item index: an earlier run's until this run records the item.
    pub records: Vec<Option<ItemRecord>>,
    /// Records of items outside this run, kept as they were.
    carried: Vec<ItemRecord>,
    /// Written and failed items of this run.
    this_run: Counts,
    path: PathBuf,
    journal: Option<std::fs::File>,
    last_flush: Instant,
}

impl ManifestWriter {
    pub fn new(
        manifest: Manifest,
        records: Vec<Option<ItemRecord>>,
        carried: Vec<ItemRecord>,
        path: PathBuf,
    ) -> Self {
        let skipped = records
            .iter()
            .flatten()
            .filter(|r| r.status == ItemStatus::Skipped)
            .count();
        ManifestWriter {
            manifest,
            this_run: Counts {
                total: records.len(),
                skipped,
                ..Counts::default()
            },
            records,
            carried,
            path,
            journal: None,
            last_flush: Instant::now() - Duration::from_secs(10),
        }
    }

    /// What this run did with its own items (the manifest may also hold carried records).
    pub fn run_counts(&self) -> Counts {
        self.this_run.clone()
    }

    /// Records an item's outcome: appended to the journal now, the manifest rewritten soon.
    pub fn record(&mut self, idx: usize, rec: ItemRecord) -> std::io::Result<()> {
        if self.journal.is_none() {
            self.journal = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(crate::provenance::manifest::journal_path(&self.path))?,
            );
        }
        let line = serde_json::to_string(&rec).map_err(std::io::Error::other)?;
        if let Some(j) = self.journal.as_mut() {
            writeln!(j, "{line}")?;
            j.flush()?;
        }
        match rec.status {
            ItemStatus::Written => self.this_run.written += 1,
            ItemStatus::Failed => self.this_run.failed += 1,
            ItemStatus::Skipped => self.this_run.skipped += 1,
        }
        self.records[idx] = Some(rec);
        if self.last_flush.elapsed() >= Duration::from_secs(1) {
            self.flush(RunStatus::Running)?;
        }
        Ok(())
    }

    /// Rewrites `manifest.json` with every finished record; a final status also ends the journal.
    pub fn flush(&mut self, status: RunStatus) -> std::io::Result<()> {
        let mut items: Vec<ItemRecord> = self.records.iter().flatten().cloned().collect();
        items.extend(self.carried.iter().cloned());
        // Listing order: byte-wise by stem.
        items.sort_by(|a, b| {
            a.stem
                .as_os_str()
                .as_encoded_bytes()
                .cmp(b.stem.as_os_str().as_encoded_bytes())
        });
        self.manifest.items = items;
        self.manifest.status = status;
        if status != RunStatus::Running {
            self.manifest.finished = Some(crate::provenance::manifest::now_rfc3339());
        }
        self.manifest.counts.total = self.records.len() + self.carried.len();
        self.manifest.recount();
        self.manifest.write(&self.path)?;
        self.last_flush = Instant::now();
        if status != RunStatus::Running {
            self.journal = None;
            match std::fs::remove_file(crate::provenance::manifest::journal_path(&self.path)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
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
        let (idx, rec) = match msg {
            Ok(scored) => {
                let idx = scored.idx;
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
                    Ok(rec) => (idx, rec),
                    Err((rec, _, Some(e))) => {
                        // No space, a read-only or failing file system: every later item too.
                        let _ = mw.record(idx, rec);
                        shared.fail(RunError::io("cannot write the outputs of", &image, e));
                        return;
                    }
                    Err((rec, e, None)) => {
                        log::warn!("{e}");
                        (idx, rec)
                    }
                }
            }
            Err(f) => {
                let f = *f;
                log::warn!("{}: {}", f.item.image.display(), f.error);
                let mut rec =
                    failed_record(shared, &f.item.image, f.item.stem, f.input_id, f.error);
                rec.timings_ms = f.timings;
                (f.idx, rec)
            }
        };
        if let Err(e) = mw.record(idx, rec) {
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
