//! Files an evaluation writes: `results.json`, the reference's `results.txt`, `per_frame.csv`, PR and
//! ROC plots, per-frame overlays, and the summary table printed on stdout.

use super::chart::{score_colour, Chart, Line};
use super::metrics::Histogram;
use super::predictions::Prediction;
use super::{EvalError, EvalResults, FrameResult};
use crate::dataset::Label;
use crate::output::image::jet;
use std::path::{Path, PathBuf};

pub(crate) fn write_err(path: &Path, e: impl Into<super::Source>) -> EvalError {
    EvalError::Write {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// Writes `bytes` atomically ([`crate::output::write_bytes_atomic`]), so a killed run never leaves a
/// half-written report behind.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    crate::output::write_bytes_atomic(path, bytes).map_err(|e| write_err(path, e))
}

/// `run_id` and `checkpoint` of the run that wrote the predictions (`<predictions>/manifest.json`).
pub fn run_info(predictions: &Path) -> Option<serde_json::Value> {
    let path = predictions.join("manifest.json");
    // Two header members only: the items (one per frame) are skipped as they are read.
    let run = match crate::provenance::stream::top_level(&path, &["run_id", "checkpoint"]) {
        Ok(m) => m,
        Err(e) if e.is_not_found() => return None,
        Err(e) => {
            let why = std::error::Error::source(&e).map_or(e.to_string(), |c| c.to_string());
            log::warn!("ignoring unreadable {}: {why}", path.display());
            return None;
        }
    };
    (!run.is_empty()).then_some(serde_json::Value::Object(run))
}

/// Python's `f"{100*x:.{p}f}"`, including its `nan` spelling.
pub(crate) fn pct(x: f64, precision: usize) -> String {
    if x.is_nan() {
        "nan".into()
    } else {
        format!("{:.*}", precision, 100.0 * x)
    }
}

/// The reference's `results.txt` (`evaluate_ood.py`): AP, AUROC, its "FPR" (first ROC point with
/// TPR > 0.9) and its AUPR, first bare, then with words.
pub fn results_txt(r: &EvalResults) -> String {
    let (ap, roc, fpr, aupr) = (
        pct(r.ap, 3),
        pct(r.auroc, 2),
        pct(r.fpr_at_tpr90_seed, 2),
        pct(r.aupr_seed, 2),
    );
    format!(
        "{ap}%\n{roc}%\n{fpr}%\n{aupr}%\nThe average precision is: {ap}%\nThe auroc is: {roc}%\n\
         The fpr is: {fpr}%\nThe aupr is: {aupr}%\n"
    )
}

fn csv_num(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else {
        format!("{x}")
    }
}

/// Quotes a CSV field when it needs it (stems may hold commas).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn per_frame_csv(frames: &[FrameResult]) -> String {
    let mut s = String::from(
        "index,stem,prediction,width,height,positives,negatives,ignored,ap,auroc,fpr95,fpr_at_tpr90_seed,\
         aupr_seed,best_f1_threshold,best_f1\n",
    );
    for f in frames {
        let m = f.metrics;
        let g = |x: fn(&super::metrics::CurveMetrics) -> f64| {
            m.as_ref().map(x).map(csv_num).unwrap_or_default()
        };
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            f.index,
            csv_field(&f.stem),
            csv_field(&f.prediction.display().to_string()),
            f.width,
            f.height,
            f.positives,
            f.negatives,
            f.ignored,
            g(|m| m.ap),
            g(|m| m.auroc),
            g(|m| m.fpr95),
            g(|m| m.fpr_at_tpr90_seed),
            g(|m| m.aupr_seed),
            f.best_f1_threshold,
            f.best_f1
        ));
    }
    s
}

/// `results.json`, `results.txt`, `per_frame.csv`.
pub fn write_reports(
    out: &Path,
    r: &EvalResults,
    frames: &[FrameResult],
) -> Result<Vec<PathBuf>, EvalError> {
    let json = out.join("results.json");
    let text = serde_json::to_string_pretty(r).map_err(|e| write_err(&json, e))?;
    write_atomic(&json, format!("{text}\n").as_bytes())?;
    let txt = out.join("results.txt");
    write_atomic(&txt, results_txt(r).as_bytes())?;
    let csv = out.join("per_frame.csv");
    write_atomic(&csv, per_frame_csv(frames).as_bytes())?;
    Ok(vec![json, txt, csv])
}

/// The table printed after a run.
pub fn summary_table(r: &EvalResults) -> String {
    let row = |name: &str, v: f64| format!("  {name:<28} {:>8}\n", pct(v, 2));
    let mut s = format!(
        "{} ({} mode): {} frames, {} pixels evaluated ({} anomaly), {} predictions\n",
        r.dataset,
        serde_json::to_value(r.mode)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        r.frames,
        r.pixels.evaluated,
        r.pixels.positives,
        r.prediction_dtype
    );
    s += &row("AP", r.ap);
    s += &row("AUROC", r.auroc);
    s += &row("FPR95 (TPR >= 0.95)", r.fpr95);
    s += &row("FPR at TPR > 0.90 (seed)", r.fpr_at_tpr90_seed);
    s += &row("AUPR (seed)", r.aupr_seed);
    if let Some(b) = &r.smiyc {
        s += &row("SMIYC binned AP", b.ap);
        s += &row("SMIYC binned FPR95", b.fpr95);
    }
    if let Some(c) = &r.components {
        s += &row("SMIYC sIoU (gt)", c.siou_gt);
        s += &row("SMIYC PPV", c.ppv);
        s += &row("SMIYC mean F1", c.mean_f1);
    }
    s
}

pub(crate) fn save_rgb(path: &Path, w: u32, h: u32, buf: Vec<u8>) -> Result<(), EvalError> {
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| write_err(path, "buffer size"))?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| write_err(path, e))?;
    write_atomic(path, bytes.get_ref())
}

/// `pr_curve.png` and `roc_curve.png` of the pooled (non-ignored) pixels, in the score's colour.
pub fn write_plots(out: &Path, pooled: &Histogram, score: &str) -> Result<Vec<PathBuf>, EvalError> {
    const SIZE: (u32, u32) = (720, 540);
    let m = pooled.metrics().ok();
    let mut written = Vec::new();
    let (pr, roc) = pooled.sampled_curves(4000);
    let curves = [
        (
            "pr_curve.png",
            "Precision-recall",
            ("recall", "precision"),
            pr,
            m.map(|m| m.ap),
            "AP",
        ),
        (
            "roc_curve.png",
            "ROC",
            ("false positive rate", "true positive rate"),
            roc,
            m.map(|m| m.auroc),
            "AUROC",
        ),
    ];
    for (name, title, axes, points, value, what) in curves {
        let path = out.join(name);
        let legend = format!("{score} ({what} {}%)", pct(value.unwrap_or(f64::NAN), 2));
        let mut chart = Chart::curves(
            title,
            axes,
            vec![Line {
                colour: score_colour(score),
                legend,
                points: &points,
                fill: false,
            }],
        );
        chart.diagonal = what == "AUROC";
        let buf = chart.rgb(SIZE).map_err(|e| write_err(&path, e))?;
        save_rgb(&path, SIZE.0, SIZE.1, buf)?;
        written.push(path);
    }
    Ok(written)
}

/// Reads an image file the way the run decoded it ([`crate::preprocess::decode_file`]: EXIF
/// orientation applied, JPEGs through libjpeg-turbo with OpenCV's settings), so that pictures drawn
/// from it line up with the maps the run wrote.
/// A file that cannot be read keeps its `io::Error` (exit 66), one that cannot be decoded its
/// decoding error (65).
pub(crate) fn read_image(path: &Path) -> Result<image::RgbImage, super::Source> {
    let bytes = std::fs::read(path)?;
    let img = crate::preprocess::decode_file(path, &bytes)?;
    image::RgbImage::from_raw(img.width as u32, img.height as u32, img.data)
        .ok_or_else(|| "decoded buffer does not match its size".into())
}

/// `{i:03d}_heat.png` (JET of `uint8(score × 255)` blended 50/50 with the image, as `cv2.addWeighted`
/// rounds) and `{i:03d}_anomaly.png` (green and blue zeroed where `score > threshold` on
/// non-ignored pixels: the reference's best-F1 overlay).
pub fn write_overlays(
    dir: &Path,
    index: usize,
    image_path: &Path,
    pred: &Prediction,
    label: &Label,
    threshold: f64,
) -> Result<Vec<PathBuf>, EvalError> {
    let img = read_image(image_path).map_err(|source| EvalError::ReadImage {
        path: image_path.to_path_buf(),
        source,
    })?;
    if (img.width() as usize, img.height() as usize) != (pred.width, pred.height) {
        log::warn!(
            "{} is {}×{}, its prediction {}×{}: no overlay written",
            image_path.display(),
            img.width(),
            img.height(),
            pred.width,
            pred.height
        );
        return Ok(Vec::new());
    }
    let (w, h) = (img.width(), img.height());
    let mut heat = img.clone();
    let mut marked = img;
    let t = threshold as f32;
    for (i, (hp, mp)) in heat.pixels_mut().zip(marked.pixels_mut()).enumerate() {
        let s = pred.scores[i];
        // numpy's astype(uint8) truncates; clamp first so out-of-range scores cannot wrap.
        let j = jet((s * 255.0).clamp(0.0, 255.0) as u8);
        for (h, &jc) in hp.0.iter_mut().zip(&j) {
            *h = ((*h as f32 * 0.5 + jc as f32 * 0.5).round()).min(255.0) as u8;
        }
        if s > t && label.ignore[i] == 0 {
            mp.0[1] = 0;
            mp.0[2] = 0;
        }
    }
    let heat_path = dir.join(format!("{index:03}_heat.png"));
    let mark_path = dir.join(format!("{index:03}_anomaly.png"));
    save_rgb(&heat_path, w, h, heat.into_raw())?;
    save_rgb(&mark_path, w, h, marked.into_raw())?;
    Ok(vec![heat_path, mark_path])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JPEG with an EXIF orientation: the run wrote its map at the oriented size, so the
    /// overlay must be drawn over the oriented picture (rotated 180° keeps the size, 90° swaps it).
    #[test]
    fn overlays_use_the_runs_exif_orientation() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg");
        let out = tempfile::tempdir().unwrap();
        for (index, name) in ["exif_o3.jpg", "exif_o6.jpg"].into_iter().enumerate() {
            let path = dir.join(name);
            let run =
                crate::preprocess::decode_file(&path, &std::fs::read(&path).unwrap()).unwrap();
            let (w, h) = (run.width, run.height);
            let pred = Prediction {
                width: w,
                height: h,
                scores: vec![0.0; w * h],
                dtype: super::super::predictions::PredDtype::Float32,
            };
            let label = Label {
                width: w,
                height: h,
                anomaly: vec![0; w * h],
                ignore: vec![0; w * h],
            };
            let written = write_overlays(out.path(), index, &path, &pred, &label, 0.5).unwrap();
            assert_eq!(written.len(), 2, "{name}: no overlay written");
            // No score above the threshold: the best-F1 overlay is the image itself.
            let marked = image::open(&written[1]).unwrap().into_rgb8();
            assert_eq!(marked.dimensions(), (w as u32, h as u32), "{name}");
            assert!(
                marked.into_raw() == run.data,
                "{name}: overlay not aligned with the map"
            );
        }
    }

    #[test]
    fn results_txt_has_the_reference_layout() {
        let r = EvalResults {
            dataset: "fs_static",
            split: None,
            mode: super::super::Mode::Total,
            frames: 1,
            pixels: Default::default(),
            prediction_dtype: "float32".into(),
            ap: 0.663690476190476,
            auroc: 0.75,
            fpr95: 0.5,
            fpr_at_tpr90_seed: 0.5,
            aupr_seed: f64::NAN,
            distinct_scores: 8,
            smiyc: None,
            components: None,
            run: None,
        };
        let t = results_txt(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "66.369%");
        assert_eq!(lines[1], "75.00%");
        assert_eq!(lines[3], "nan%");
        assert_eq!(lines[4], "The average precision is: 66.369%");
        assert_eq!(lines.len(), 8);
    }
}
