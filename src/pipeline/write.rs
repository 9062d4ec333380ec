//! Writer stage: one thread writes every output (temp name + rename), hashes it, and records the
//! outcome in the manifest. Each record is also appended to a journal at once, so a killed run
//! loses at most the items in flight; `manifest.json` itself is rewritten at most once a second.

use super::decode::ms;
use super::message::{Scored, ToWrite};
use super::{RunError, Shared};
use crate::output::manifest::{
    sha256_file, ItemRecord, ItemStatus, Manifest, OutputFile, RunStatus,
};
use crate::output::{hdf5, image, paths_for};
use crossbeam_channel::Receiver;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct ManifestWriter {
    pub manifest: Manifest,
    /// Records by item index; `None` until the item finishes.
    pub records: Vec<Option<ItemRecord>>,
    path: PathBuf,
    journal: Option<std::fs::File>,
    last_flush: Instant,
}

impl ManifestWriter {
    pub fn new(manifest: Manifest, records: Vec<Option<ItemRecord>>, path: PathBuf) -> Self {
        ManifestWriter {
            manifest,
            records,
            path,
            journal: None,
            last_flush: Instant::now() - Duration::from_secs(10),
        }
    }

    pub fn journal_path(path: &Path) -> PathBuf {
        let mut p = path.as_os_str().to_os_string();
        p.push(".journal");
        PathBuf::from(p)
    }

    /// Records an item's outcome: appended to the journal now, the manifest rewritten soon.
    pub fn record(&mut self, idx: usize, rec: ItemRecord) -> std::io::Result<()> {
        if self.journal.is_none() {
            self.journal = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(Self::journal_path(&self.path))?,
            );
        }
        let line = serde_json::to_string(&rec).map_err(std::io::Error::other)?;
        if let Some(j) = self.journal.as_mut() {
            writeln!(j, "{line}")?;
            j.flush()?;
        }
        self.records[idx] = Some(rec);
        if self.last_flush.elapsed() >= Duration::from_secs(1) {
            self.flush(RunStatus::Running)?;
        }
        Ok(())
    }

    /// Rewrites `manifest.json` with every finished record; a final status also ends the journal.
    pub fn flush(&mut self, status: RunStatus) -> std::io::Result<()> {
        self.manifest.items = self.records.iter().flatten().cloned().collect();
        self.manifest.status = status;
        if status != RunStatus::Running {
            self.manifest.finished = Some(crate::output::manifest::now_rfc3339());
        }
        self.manifest.recount();
        self.manifest.write(&self.path)?;
        self.last_flush = Instant::now();
        if status != RunStatus::Running {
            self.journal = None;
            match std::fs::remove_file(Self::journal_path(&self.path)) {
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
                match write_item(shared, scored) {
                    Ok(rec) => (idx, rec),
                    Err((rec, e)) => {
                        // A write error (disk full, permissions) will hit every later item too.
                        let _ = mw.record(idx, rec);
                        shared.fail(RunError::Io(e));
                        return;
                    }
                }
            }
            Err(f) => {
                log::warn!("{}: {}", f.item.image.display(), f.error);
                let rec = ItemRecord {
                    input: shared.relative_input(&f.item.image),
                    input_sha256: f.input_sha256,
                    stem: f.item.stem,
                    status: ItemStatus::Failed,
                    error: Some(f.error),
                    outputs: vec![],
                    timings_ms: f.timings,
                };
                (f.idx, rec)
            }
        };
        if let Err(e) = mw.record(idx, rec) {
            shared.fail(RunError::Io(format!(
                "cannot update the manifest {}: {e}",
                mw.path.display()
            )));
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

fn write_item(shared: &Shared, s: Scored) -> Result<ItemRecord, (ItemRecord, String)> {
    let t0 = Instant::now();
    let job = &shared.job;
    let paths = paths_for(job, &s.item.stem);
    let (h, w) = (s.image.height, s.image.width);
    let mut rec = ItemRecord {
        input: shared.relative_input(&s.item.image),
        input_sha256: Some(s.input_sha256),
        stem: s.item.stem.clone(),
        status: ItemStatus::Written,
        error: None,
        outputs: vec![],
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
            rec.status = ItemStatus::Failed;
            rec.error = Some(msg.clone());
            Err((rec, msg))
        }
    }
}
