//! Evaluation of written predictions against a dataset's labels (`maskomaly eval`).
//!
//! ```text
//! dataset::list ─► per item: label (read_label) + prediction (HDF5 / .npy)
//!     ─► frame histogram (distinct score → positive / negative counts)
//!         ├─ total mode: merged into one pooled histogram (ignore dropped) ─► metrics
//!         └─ image mode: metrics per frame (ignore kept) ─► nan-mean
//!     ─► results.json, results.txt, per_frame.csv, PR / ROC plots, overlays, report.html
//! ```
//! Only one frame is held in memory at a time; the pooled histogram grows with the number of distinct
//! score values, not with pixels; the report keeps only the frames it shows (bounded heaps).
//!
//! * [`metrics`]: exact scikit-learn-compatible metrics over histograms.
//! * [`predictions`]: reading score maps and finding an item's file.
//! * [`report`]: the files written and the summary table.
//! * [`html`]: `report.html`, the page that shows all of it; [`chart`]: the one chart engine of the
//!   PNG plots and the page's SVG, with one colour per score.
//! * [`smiyc`], [`components`]: the SegmentMeIfYouCan benchmark's binned pixel metrics and component
//!   metrics (optional; the components need a second pass at the binned best-F1 threshold);
//!   [`numpy_sort`]: numpy's argsort, whose tie order the binned curve depends on.
//! * [`discover`]: ranking of mask queries by overlap with anomaly labels (`discover-queries`).
//! * [`compare`]: every score of a multi-score run, each evaluated as above, then one comparison
//!   table and combined PR / ROC plots.

pub mod chart;
pub mod compare;
pub mod components;
pub mod discover;
pub mod html;
pub mod metrics;
pub mod numpy_sort;
pub mod predictions;
pub mod report;
pub mod smiyc;

use crate::dataset::{self, DatasetError, LabelError};
use crate::diagnostic::{Diagnose, ExitCode};
use crate::job::{DatasetKind, Job};
use metrics::{CurveMetrics, Histogram, HistogramAccumulator, MetricError};
use predictions::{PredDtype, PredictionError};
use std::path::{Path, PathBuf};

/// How pixels are pooled (the reference's `mode` argument of `get_scores`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// All frames pooled, ignored pixels dropped.
    Total,
    /// Per frame, ignore *not* applied, nan-mean over frames (the reference's StreetHazards protocol).
    Image,
}

impl Mode {
    /// The reference uses `image` for StreetHazards only.
    pub fn default_for(kind: DatasetKind) -> Mode {
        if kind == DatasetKind::StreetHazards {
            Mode::Image
        } else {
            Mode::Total
        }
    }
}

/// Options of one evaluation run.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// `None`: [`Mode::default_for`] the dataset.
    pub mode: Option<Mode>,
    /// PR and ROC curve PNGs.
    pub plots: bool,
    /// Per-frame heat-map and best-F1 overlays (`overlays/NNN_heat.png`, `NNN_anomaly.png`).
    pub overlays: bool,
    /// Progress bar on stderr (shown only when stderr is a terminal).
    pub progress: bool,
    /// Summary table on stdout.
    pub print_summary: bool,
    /// Also compute the SegmentMeIfYouCan benchmark's binned pixel metrics (`smiyc` block) and its
    /// component metrics (`components` block).
    pub smiyc: bool,
    /// `report.html` with its gallery pictures in `report/`.
    pub report: bool,
    /// Folder whose `manifest.json` describes the run (default: the predictions folder).
    pub manifest_dir: Option<PathBuf>,
    /// The score's name in the report.
    pub score_name: &'static str,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            mode: None,
            plots: true,
            overlays: true,
            progress: true,
            print_summary: true,
            smiyc: false,
            report: true,
            manifest_dir: None,
            score_name: "maskomaly",
        }
    }
}

/// A boxed underlying error, kept as a source.
pub type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Label(#[from] LabelError),
    #[error(transparent)]
    Prediction(#[from] PredictionError),
    #[error("item {image} has no label; this dataset or split cannot be evaluated")]
    NoLabel { image: PathBuf },
    #[error("prediction {prediction} is {pw}×{ph} but label {label} is {lw}×{lh}")]
    SizeMismatch {
        prediction: PathBuf,
        label: PathBuf,
        pw: usize,
        ph: usize,
        lw: usize,
        lh: usize,
    },
    #[error("prediction {path}: {source}")]
    Metric { path: PathBuf, source: MetricError },
    #[error(
        "the labels of dataset {kind} contain no anomaly pixel at all (anomaly values {values:?})"
    )]
    NoPositives { kind: &'static str, values: Vec<u8> },
    #[error("no evaluated pixel: every pixel of every frame is ignored")]
    NoPixels,
    /// An input image (for an overlay or the report) that cannot be read or decoded.
    #[error("cannot read image {path}")]
    ReadImage {
        path: PathBuf,
        #[source]
        source: Source,
    },
    #[error("cannot create folder {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: Source,
    },
}

impl Diagnose for EvalError {
    fn exit_code(&self) -> ExitCode {
        match self {
            EvalError::Dataset(e) => e.exit_code(),
            EvalError::Prediction(predictions::PredictionError::Missing { .. }) => {
                ExitCode::NoInput
            }
            EvalError::ReadImage { source, .. } if source.is::<std::io::Error>() => {
                ExitCode::NoInput
            }
            EvalError::NoLabel { .. } => ExitCode::Config,
            EvalError::CreateDir { .. } => ExitCode::CantCreate,
            EvalError::Write { .. } => ExitCode::Io,
            EvalError::Label(_)
            | EvalError::Prediction(_)
            | EvalError::ReadImage { .. }
            | EvalError::SizeMismatch { .. }
            | EvalError::Metric { .. }
            | EvalError::NoPositives { .. }
            | EvalError::NoPixels => ExitCode::Data,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            EvalError::Dataset(e) => e.hint(),
            EvalError::NoLabel { .. } => {
                Some("evaluate a split that has labels (SMIYC: dataset.split: validation)".into())
            }
            EvalError::NoPositives { .. } => Some("check `dataset.label_value`".into()),
            EvalError::Prediction(predictions::PredictionError::Missing { .. }) => Some(
                "pass --predictions with the run's output folder (default: the job's output.root)"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// One row of `per_frame.csv`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FrameResult {
    pub index: usize,
    pub stem: String,
    pub prediction: PathBuf,
    pub width: usize,
    pub height: usize,
    pub positives: u64,
    pub negatives: u64,
    pub ignored: u64,
    /// Metrics of this frame in the run's mode (total: ignore dropped; image: all pixels). `None`
    /// when every pixel of the frame is ignored.
    pub metrics: Option<CurveMetrics>,
    /// The reference's best-F1 threshold over `i/100` on non-ignored pixels, and that F1.
    pub best_f1_threshold: f64,
    pub best_f1: f64,
}

/// Pixel counts of the run.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PixelCounts {
    /// Pixels that entered the metrics (total: non-ignored; image: all).
    pub evaluated: u64,
    pub positives: u64,
    pub negatives: u64,
    pub ignored: u64,
}

/// Everything `results.json` holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalResults {
    pub dataset: &'static str,
    pub split: Option<String>,
    pub mode: Mode,
    pub frames: usize,
    pub pixels: PixelCounts,
    /// `float32`, `float16` or `mixed`.
    pub prediction_dtype: String,
    /// Exact, scikit-learn-compatible (fractions in [0, 1]; NaN is written as null).
    pub ap: f64,
    pub auroc: f64,
    pub fpr95: f64,
    pub fpr_at_tpr90_seed: f64,
    pub aupr_seed: f64,
    /// Distinct score values of the pooled histogram.
    pub distinct_scores: usize,
    /// The benchmark's binned metrics over non-ignored pixels, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smiyc: Option<smiyc::BinnedMetrics>,
    /// The benchmark's component metrics at the binned best-F1 threshold, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<components::ComponentMetrics>,
    /// `run_id` and `checkpoint` copied from the predictions' `manifest.json`, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<serde_json::Value>,
}

/// What [`run_eval`] returns.
#[derive(Debug, Clone)]
pub struct EvalSummary {
    pub results: EvalResults,
    pub per_frame: Vec<FrameResult>,
    /// Files written, in order.
    pub written: Vec<PathBuf>,
    /// The pooled PR (recall, precision) and ROC (fpr, tpr) curves, sampled for plots.
    pub curves: (Curve, Curve),
    /// What the score contributes to a report page (bounded in the number of frames).
    pub report: html::ScoreData,
}

/// Points of a curve, (x, y).
pub type Curve = Vec<(f64, f64)>;

/// Evaluates the predictions under `predictions` (the job's `output.root` when called from the CLI
/// without `--predictions`) against the job's dataset and writes the reports into `output`.
pub fn run_eval(
    job: &Job,
    predictions: &Path,
    output: &Path,
    opts: &EvalOptions,
) -> Result<EvalSummary, EvalError> {
    // The predictions and the reports are never inputs, wherever they are.
    let exclude = crate::provenance::outputs::exclude(Some(predictions));
    let items = dataset::list_excluding(&job.dataset, &exclude)?;
    // Fail before any work when a label is missing (e.g. SMIYC test frames).
    if let Some(it) = items.iter().find(|it| it.label.is_none()) {
        return Err(EvalError::NoLabel {
            image: it.image.clone(),
        });
    }
    let mode = opts
        .mode
        .unwrap_or_else(|| Mode::default_for(job.dataset.kind));
    create_dir(output)?;
    let overlay_dir = output.join("overlays");
    if opts.overlays {
        create_dir(&overlay_dir)?;
    }
    let mut pass = FramePass::new(items.len(), opts);
    let bar = progress_bar(items.len() as u64, opts.progress);
    for (index, item) in items.iter().enumerate() {
        pass.push(job, predictions, mode, opts, &overlay_dir, index, item)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    if pass.counts.positives == 0 {
        let values = items
            .first()
            .and_then(|i| i.label.as_ref())
            .map(|l| l.anomaly.clone())
            .unwrap_or_default();
        return Err(EvalError::NoPositives {
            kind: job.dataset.kind.as_str(),
            values,
        });
    }
    let pooled = std::mem::replace(&mut pass.pooled, HistogramAccumulator::new()).finish();
    let results = pass.results(job, &items, predictions, mode, opts, &pooled)?;
    let mut written = std::mem::take(&mut pass.written);
    written.extend(report::write_reports(output, &results, &pass.frames)?);
    if opts.plots {
        written.extend(report::write_plots(output, &pooled, opts.score_name)?);
    }
    let data = html::ScoreData::new(opts.score_name, &pooled, std::mem::take(&mut pass.picks));
    if opts.report {
        written.extend(html::write_score_report(
            &html::ReportInput {
                out: output,
                predictions,
                items: &items,
                overlays: opts.overlays,
            },
            &results,
            &data,
        )?);
    }
    if opts.print_summary {
        print!("{}", report::summary_table(&results));
    }
    Ok(EvalSummary {
        results,
        per_frame: pass.frames,
        written,
        curves: pooled.sampled_curves(4000),
        report: data,
    })
}

fn create_dir(path: &Path) -> Result<(), EvalError> {
    std::fs::create_dir_all(path).map_err(|source| EvalError::CreateDir {
        path: path.to_path_buf(),
        source,
    })
}

/// What the pass over the frames accumulates.
struct FramePass {
    pooled: HistogramAccumulator,
    binned: Option<smiyc::BinnedAccumulator>,
    frames: Vec<FrameResult>,
    counts: PixelCounts,
    /// (float32 seen, float16 seen).
    dtypes: (bool, bool),
    /// The frames a report shows, with their false positives at each best-F1 candidate threshold.
    picks: html::picks::FramePicks,
    /// Overlay files.
    written: Vec<PathBuf>,
}

impl FramePass {
    fn new(frames: usize, opts: &EvalOptions) -> FramePass {
        FramePass {
            pooled: HistogramAccumulator::new(),
            binned: opts.smiyc.then(smiyc::BinnedAccumulator::new),
            frames: Vec::with_capacity(frames),
            counts: PixelCounts::default(),
            dtypes: (false, false),
            picks: html::picks::FramePicks::new(),
            written: Vec::new(),
        }
    }

    /// Reads one frame's prediction and label and adds them to every accumulator.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        job: &Job,
        predictions: &Path,
        mode: Mode,
        opts: &EvalOptions,
        overlay_dir: &Path,
        index: usize,
        item: &dataset::Item,
    ) -> Result<(), EvalError> {
        let spec = item.label.as_ref().expect("checked by run_eval");
        let label = dataset::read_label(spec)?;
        let pred_path = predictions::locate(job, predictions, &item.stem)?;
        let pred = predictions::read(&pred_path)?;
        if (pred.width, pred.height) != (label.width, label.height) {
            // NOTE(upstream): the reference resizes with INTER_CUBIC here, a no-op because the runner
            // writes at input resolution; a different size means mismatched files.
            return Err(EvalError::SizeMismatch {
                prediction: pred_path,
                label: spec.path.clone(),
                pw: pred.width,
                ph: pred.height,
                lw: label.width,
                lh: label.height,
            });
        }
        match pred.dtype {
            PredDtype::Float32 => self.dtypes.0 = true,
            PredDtype::Float16 => self.dtypes.1 = true,
        }
        let metric_err = |source| EvalError::Metric {
            path: pred_path.clone(),
            source,
        };
        let kept = Histogram::from_pixels(&pred.scores, &label.anomaly, Some(&label.ignore))
            .map_err(metric_err)?;
        let ignored = label.ignore.iter().filter(|&&v| v != 0).count() as u64;
        let frame_hist = match mode {
            Mode::Total => kept.clone(),
            Mode::Image => {
                Histogram::from_pixels(&pred.scores, &label.anomaly, None).map_err(metric_err)?
            }
        };
        let metrics = match frame_hist.metrics() {
            Ok(m) => Some(m),
            Err(MetricError::Empty) => None,
            Err(e) => return Err(metric_err(e)),
        };
        let c = &mut self.counts;
        c.evaluated += frame_hist.positives() + frame_hist.negatives();
        c.positives += frame_hist.positives();
        c.negatives += frame_hist.negatives();
        c.ignored += ignored;
        let (best_f1_threshold, best_f1) = kept.best_f1_threshold(100);
        let inliers_above = opts
            .report
            .then(|| html::inliers_above(&kept, html::THRESHOLDS));
        if opts.overlays {
            self.written.extend(report::write_overlays(
                overlay_dir,
                index,
                &item.image,
                &pred,
                &label,
                best_f1_threshold,
            )?);
        }
        if let Some(b) = self.binned.as_mut() {
            b.push(&kept, pred.dtype);
        }
        self.pooled.push(kept);
        self.frames.push(FrameResult {
            index,
            stem: item.stem.display().to_string(),
            prediction: pred_path,
            width: pred.width,
            height: pred.height,
            positives: frame_hist.positives(),
            negatives: frame_hist.negatives(),
            ignored,
            metrics,
            best_f1_threshold,
            best_f1,
        });
        if let Some(above) = inliers_above {
            let frame = self.frames.last().expect("just pushed");
            self.picks.push(frame, above);
        }
        Ok(())
    }

    /// The run's metrics from the pooled histogram (total mode) or the frames' mean (image mode),
    /// plus the SMIYC blocks when asked for.
    fn results(
        &mut self,
        job: &Job,
        items: &[dataset::Item],
        predictions: &Path,
        mode: Mode,
        opts: &EvalOptions,
        pooled: &Histogram,
    ) -> Result<EvalResults, EvalError> {
        let (ap, auroc, fpr95, fpr_at_tpr90_seed, aupr_seed) = match mode {
            Mode::Total => {
                let m = pooled.metrics().map_err(|_| EvalError::NoPixels)?;
                (m.ap, m.auroc, m.fpr95, m.fpr_at_tpr90_seed, m.aupr_seed)
            }
            Mode::Image => {
                let per: Vec<CurveMetrics> = self.frames.iter().filter_map(|f| f.metrics).collect();
                let m = metrics::image_mode_mean(&per);
                (m.ap, m.auroc, m.fpr95, m.fpr_at_tpr90_seed, m.aupr_seed)
            }
        };
        let binned = self
            .binned
            .take()
            .and_then(smiyc::BinnedAccumulator::finish);
        let components = match &binned {
            Some(b) => Some(component_pass(
                job,
                items,
                predictions,
                b.best_f1_threshold,
            )?),
            None => None,
        };
        Ok(EvalResults {
            dataset: job.dataset.kind.as_str(),
            split: job.dataset.split.clone(),
            mode,
            frames: self.frames.len(),
            pixels: self.counts,
            prediction_dtype: match self.dtypes {
                (true, true) => "mixed",
                (false, true) => "float16",
                _ => "float32",
            }
            .to_string(),
            ap,
            auroc,
            fpr95,
            fpr_at_tpr90_seed,
            aupr_seed,
            distinct_scores: pooled.bins().len(),
            smiyc: binned,
            components,
            run: report::run_info(opts.manifest_dir.as_deref().unwrap_or(predictions)),
        })
    }
}

/// Second pass for the component metrics: they binarise at a threshold known only after the
/// binned curve of all frames.
fn component_pass(
    job: &Job,
    items: &[dataset::Item],
    predictions: &Path,
    threshold: f64,
) -> Result<components::ComponentMetrics, EvalError> {
    let limits = components::size_limits(job.dataset.kind);
    let mut frames = Vec::with_capacity(items.len());
    for item in items {
        let spec = item.label.as_ref().expect("checked by run_eval");
        let label = dataset::read_label(spec)?;
        let pred = predictions::read(&predictions::locate(job, predictions, &item.stem)?)?;
        frames.push(components::frame_components(
            &pred.scores,
            &label.anomaly,
            &label.ignore,
            (label.width, label.height),
            threshold,
            pred.dtype,
            limits,
        ));
    }
    Ok(components::aggregate(&frames, threshold, limits))
}

fn progress_bar(len: u64, enabled: bool) -> indicatif::ProgressBar {
    crate::progress::count(len, "evaluating", "frames", enabled)
}

#[cfg(test)]
mod tests;

/// One frame of a metric fixture (`tests/fixtures/metrics/*.json`): scores, ground truth, ignore.
#[cfg(test)]
pub(crate) fn fixture_frame(f: &serde_json::Value) -> (Vec<f32>, Vec<u8>, Vec<u8>) {
    let v = |k: &str| -> Vec<f64> {
        f[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    (
        v("score").into_iter().map(|x| x as f32).collect(),
        v("gt").into_iter().map(|x| x as u8).collect(),
        v("ignore").into_iter().map(|x| x as u8).collect(),
    )
}
