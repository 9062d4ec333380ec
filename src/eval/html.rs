//! `report.html`: one self-contained page per evaluation, for people who look before they read.
//!
//! ```text
//! run identity (manifest.json) · metrics table (one row per score, published numbers named)
//! PR and ROC curves of every score · score distribution of anomaly vs inlier pixels
//! gallery per score: lowest-AP frames, largest false-positive area (image | label | score | overlay)
//! per-frame table (sortable by a few lines of inline script; readable without it)
//! ```
//! Plots are inline SVG; the gallery's pictures are PNG files in `report/` beside the page. Nothing
//! is loaded from the network (no script, font or style), so the folder can be opened offline or
//! attached as it is.

use super::metrics::Histogram;
use super::report::{jet, pct, save_rgb, write_atomic, write_err};
use super::{EvalError, EvalResults, FrameResult};
use crate::dataset::{self, Item, Label};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Thresholds `i / THRESHOLDS` of the reference's best-F1 search (`eval.py: get_best_f1`).
pub const THRESHOLDS: usize = 100;
/// Frames per gallery list.
const GALLERY_FRAMES: usize = 3;
/// Largest thumbnail, in pixels.
const THUMB: (u32, u32) = (400, 300);
/// Points per plotted curve.
const CURVE_POINTS: usize = 600;
/// Bars of the score distribution.
const DIST_BINS: usize = 40;
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];
const ANOMALY_COLOR: &str = "#f59e0b";
const INLIER_COLOR: &str = "#3b82f6";

/// One evaluated score (several when a run wrote several).
pub struct ScoreInput<'a> {
    /// The score's name (`maskomaly`, ...).
    pub name: &'a str,
    pub results: &'a EvalResults,
    pub frames: &'a [FrameResult],
    /// Non-ignored pixels of all frames.
    pub pooled: &'a Histogram,
    /// Per frame: inlier pixels counted as anomaly at each threshold `i / THRESHOLDS`
    /// ([`inliers_above`] of the frame's non-ignored pixels).
    pub inliers_above: &'a [Vec<u64>],
}

/// What the page is made of.
pub struct ReportInput<'a> {
    /// The eval folder: `report.html` and `report/` go here.
    pub out: &'a Path,
    /// The predictions folder (its `manifest.json` names the run).
    pub predictions: &'a Path,
    /// The dataset's items, in frame order.
    pub items: &'a [Item],
    /// Whether `overlays/NNN_heat.png` exist to link from the frame table.
    pub overlays: bool,
    pub scores: Vec<ScoreInput<'a>>,
}

/// Inlier pixels with `score >= f32(i / n)` and `score > 0`, for `i < n`: the false positives at
/// every threshold of the reference's best-F1 search (same rule as `Histogram::best_f1_threshold`).
pub fn inliers_above(h: &Histogram, n: usize) -> Vec<u64> {
    let bins = h.bins();
    let mut above = vec![0u64; n];
    let (mut fp, mut j) = (0u64, 0usize);
    for i in (0..n).rev() {
        let t = (i as f64 / n as f64) as f32;
        while j < bins.len() && bins[j].score >= t && bins[j].score > 0.0 {
            fp += bins[j].neg;
            j += 1;
        }
        above[i] = fp;
    }
    above
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A percentage for a table cell, `–` for NaN.
fn cell_pct(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        pct(x, 2)
    }
}

/// `data-v` for sorting: the number, or empty for NaN (sorted last).
fn sort_key(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else {
        format!("{x}")
    }
}

/// Numbers with thin thousands separators.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut o = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            o.push('\u{2009}');
        }
        o.push(c);
    }
    o
}

/// A figure published for a score on a dataset, shown beside the run's own numbers.
struct Published {
    dataset: &'static str,
    score: &'static str,
    ap: f64,
    fpr95: f64,
    note: &'static str,
}

/// Maskomaly's published AP (AuPRC) and FPR95 (secondary source: the Objectomaly README's table;
/// the paper's own tables were not available).
const PUBLISHED: &[Published] = &[
    Published {
        dataset: "road_anomaly",
        score: "maskomaly",
        ap: 0.709,
        fpr95: 0.119,
        note: "Maskomaly, published (BMVC 2023, as tabulated by Objectomaly); the FPR definition is not stated",
    },
    Published {
        dataset: "smiyc_anomaly",
        score: "maskomaly",
        ap: 0.934,
        fpr95: 0.069,
        note: "Maskomaly, published (SMIYC Anomaly Track test split, server metrics; as tabulated by Objectomaly)",
    },
];

/// The metrics table: one row per score, then the published rows that match the dataset.
pub fn metrics_table(scores: &[(&str, &EvalResults)]) -> String {
    let smiyc = scores.iter().any(|(_, r)| r.smiyc.is_some());
    let comps = scores.iter().any(|(_, r)| r.components.is_some());
    let mut h = String::from(
        "<table class=\"metrics\"><thead><tr><th>score</th><th>AP</th><th>AUROC</th>\
         <th>FPR95</th><th title=\"the reference's FPR: first ROC point with TPR &gt; 0.90\">FPR at TPR&gt;90 (seed)</th>\
         <th>AUPR (seed)</th>",
    );
    if smiyc {
        h += "<th>SMIYC AP</th><th>SMIYC FPR95</th>";
    }
    if comps {
        h += "<th>sIoU gt</th><th>PPV</th><th>mean F1</th>";
    }
    h += "</tr></thead><tbody>";
    let opt = |x: Option<f64>| x.map(cell_pct).unwrap_or_else(|| "–".into());
    for (name, r) in scores {
        let _ = write!(
            h,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(name),
            cell_pct(r.ap),
            cell_pct(r.auroc),
            cell_pct(r.fpr95),
            cell_pct(r.fpr_at_tpr90_seed),
            cell_pct(r.aupr_seed)
        );
        if smiyc {
            let _ = write!(
                h,
                "<td>{}</td><td>{}</td>",
                opt(r.smiyc.as_ref().map(|b| b.ap)),
                opt(r.smiyc.as_ref().map(|b| b.fpr95))
            );
        }
        if comps {
            let c = r.components.as_ref();
            let _ = write!(
                h,
                "<td>{}</td><td>{}</td><td>{}</td>",
                opt(c.map(|c| c.siou_gt)),
                opt(c.map(|c| c.ppv)),
                opt(c.map(|c| c.mean_f1))
            );
        }
        h += "</tr>";
    }
    let extra = smiyc as usize * 2 + comps as usize * 3;
    for p in PUBLISHED {
        if !scores
            .iter()
            .any(|(n, r)| *n == p.score && r.dataset == p.dataset)
        {
            continue;
        }
        let _ = write!(
            h,
            "<tr class=\"ref\"><th scope=\"row\">{}</th><td>{}</td><td>–</td><td>{}</td><td>–</td><td>–</td>{}</tr>",
            esc(p.note),
            pct(p.ap, 2),
            pct(p.fpr95, 2),
            "<td>–</td>".repeat(extra)
        );
    }
    h += "</tbody></table>";
    h
}

/// A page holding only the metrics table, styled as the report (the README's picture of it).
pub fn metrics_page(scores: &[(&str, &EvalResults)]) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>metrics</title>\
         <style>{CSS} main{{max-width:980px;padding:12px}}</style></head><body><main>{}</main></body></html>\n",
        metrics_table(scores)
    )
}

/// One line of a plot.
struct Series {
    name: String,
    color: String,
    points: Vec<(f64, f64)>,
    /// Filled down to y = 0 (distributions).
    fill: bool,
}

struct Plot<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    x: (f64, f64),
    y: (f64, f64),
    series: Vec<Series>,
    /// Dashed chance line from (0, 0) to (1, 1).
    diagonal: bool,
    /// Legend in the lower right (else upper middle).
    legend_low: bool,
    /// Y tick positions and labels; empty: five even ticks.
    y_ticks: Vec<(f64, String)>,
}

/// Short tick text: up to 3 significant decimals, no trailing zeros.
fn tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// The plot as inline SVG (400 × 320 user units, scaled by CSS).
fn svg(p: &Plot) -> String {
    const W: f64 = 400.0;
    const H: f64 = 320.0;
    let (l, r, t, b) = (52.0, 14.0, 30.0, 46.0);
    let (pw, ph) = (W - l - r, H - t - b);
    let span = |(a, z): (f64, f64)| if z > a { z - a } else { 1.0 };
    let sx = |x: f64| l + (x - p.x.0) / span(p.x) * pw;
    let sy = |y: f64| t + ph - (y - p.y.0) / span(p.y) * ph;
    let mut s = format!(
        "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        esc(p.title)
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"18\" class=\"title\" text-anchor=\"middle\">{}</text>",
        l + pw / 2.0,
        esc(p.title)
    );
    let even = |(a, z): (f64, f64)| -> Vec<(f64, String)> {
        (0..=4)
            .map(|i| a + i as f64 / 4.0 * span((a, z)))
            .map(|v| (v, tick(v)))
            .collect()
    };
    let y_ticks = if p.y_ticks.is_empty() {
        even(p.y)
    } else {
        p.y_ticks.clone()
    };
    for (xv, label) in even(p.x) {
        let x = sx(xv);
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{t}\" x2=\"{x:.1}\" y2=\"{:.1}\" class=\"grid\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"tick\">{}</text>",
            t + ph,
            t + ph + 15.0,
            esc(&label)
        );
    }
    for (yv, label) in y_ticks {
        let y = sy(yv);
        let _ = write!(
            s,
            "<line x1=\"{l}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" class=\"tick\">{}</text>",
            l + pw,
            l - 6.0,
            y + 4.0,
            esc(&label)
        );
    }
    let _ = write!(
        s,
        "<rect x=\"{l}\" y=\"{t}\" width=\"{pw}\" height=\"{ph}\" class=\"frame\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"axis\">{}</text>\
         <text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\" class=\"axis\">{}</text>",
        l + pw / 2.0,
        H - 8.0,
        esc(p.x_label),
        t + ph / 2.0,
        esc(p.y_label)
    );
    if p.diagonal {
        let _ = write!(
            s,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" class=\"chance\"/>",
            sx(0.0),
            sy(0.0),
            sx(1.0),
            sy(1.0)
        );
    }
    for se in &p.series {
        let pts: Vec<String> = se
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        if se.fill {
            let first = se.points.first().map(|p| p.0).unwrap_or(p.x.0);
            let last = se.points.last().map(|p| p.0).unwrap_or(p.x.1);
            let _ = write!(
                s,
                "<polygon points=\"{:.1},{:.1} {} {:.1},{:.1}\" fill=\"{}\" fill-opacity=\"0.28\" stroke=\"none\"/>",
                sx(first),
                sy(p.y.0),
                pts.join(" "),
                sx(last),
                sy(p.y.0),
                se.color
            );
        }
        let _ = write!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" stroke-linejoin=\"round\"/>",
            pts.join(" "),
            se.color
        );
    }
    // Legend: one swatch and name per series, in a white box.
    let n = p.series.len() as f64;
    let longest = p
        .series
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0) as f64;
    let (lw, lh) = ((longest * 6.4 + 34.0).min(pw - 8.0), 16.0 * n + 8.0);
    let (lx, ly) = if p.legend_low {
        (l + pw - lw - 6.0, t + ph - lh - 6.0)
    } else {
        (l + (pw - lw) / 2.0, t + 6.0)
    };
    if !p.series.is_empty() {
        let _ = write!(
            s,
            "<rect x=\"{lx:.1}\" y=\"{ly:.1}\" width=\"{lw:.1}\" height=\"{lh:.1}\" class=\"legend\"/>"
        );
    }
    for (i, se) in p.series.iter().enumerate() {
        let y = ly + 12.0 + 16.0 * i as f64;
        let _ = write!(
            s,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"lg\">{}</text>",
            lx + 6.0,
            y - 4.0,
            lx + 22.0,
            y - 4.0,
            se.color,
            lx + 27.0,
            y,
            esc(&se.name)
        );
    }
    s += "</svg>";
    s
}

/// The range the heat map colours span: [0, 1] when every score lies in it, else the run's range.
fn score_range(pooled: &Histogram) -> (f32, f32) {
    let bins = pooled.bins();
    let (hi, lo) = match (bins.first(), bins.last()) {
        (Some(a), Some(b)) => (a.score, b.score),
        _ => (1.0, 0.0),
    };
    if lo >= 0.0 && hi <= 1.0 {
        (0.0, 1.0)
    } else if hi > lo {
        (lo, hi)
    } else {
        (lo, lo + 1.0)
    }
}

/// Share of anomaly and of inlier pixels in each of [`DIST_BINS`] equal bins over the score range.
/// Points of a line, in data units.
type Curve = Vec<(f64, f64)>;

fn distribution(pooled: &Histogram, (lo, hi): (f32, f32)) -> (Curve, Curve) {
    let (mut pos, mut neg) = (vec![0u64; DIST_BINS], vec![0u64; DIST_BINS]);
    let width = (hi - lo) as f64;
    for b in pooled.bins() {
        let f = ((b.score - lo) as f64 / width * DIST_BINS as f64).floor();
        let i = (f.max(0.0) as usize).min(DIST_BINS - 1);
        pos[i] += b.pos;
        neg[i] += b.neg;
    }
    let steps = |counts: &[u64]| {
        let total = counts.iter().sum::<u64>().max(1) as f64;
        let mut pts = Vec::with_capacity(2 * DIST_BINS);
        for (i, &c) in counts.iter().enumerate() {
            let y = c as f64 / total;
            let x0 = lo as f64 + width * i as f64 / DIST_BINS as f64;
            let x1 = lo as f64 + width * (i + 1) as f64 / DIST_BINS as f64;
            pts.push((x0, y));
            pts.push((x1, y));
        }
        pts
    };
    (steps(&pos), steps(&neg))
}

/// The gallery's pictures of one frame for one score.
struct Thumbs {
    image: String,
    label: String,
    score: String,
    overlay: String,
}

fn thumb_size(w: u32, h: u32) -> (u32, u32) {
    let s = (THUMB.0 as f64 / w as f64)
        .min(THUMB.1 as f64 / h as f64)
        .min(1.0);
    (
        ((w as f64 * s).round() as u32).max(1),
        ((h as f64 * s).round() as u32).max(1),
    )
}

fn save_thumb(path: &Path, img: image::RgbImage, nearest: bool) -> Result<(), EvalError> {
    let (w, h) = thumb_size(img.width(), img.height());
    let filter = if nearest {
        image::imageops::FilterType::Nearest
    } else {
        image::imageops::FilterType::Triangle
    };
    let small = if (w, h) == img.dimensions() {
        img
    } else {
        image::imageops::resize(&img, w, h, filter)
    };
    save_rgb(path, w, h, small.into_raw())
}

/// Label colours: inlier, anomaly, ignored.
const LABEL_RGB: [[u8; 3]; 3] = [[71, 85, 105], [245, 158, 11], [226, 232, 240]];
/// Overlay colours: true positive, false positive, missed anomaly.
const OVERLAY_RGB: [[u8; 3]; 3] = [[34, 197, 94], [239, 68, 68], [59, 130, 246]];

/// Writes the image and label thumbnails of a frame (once) and its score and overlay thumbnails
/// for one score; `None` when the image cannot be shown at the prediction's size.
#[allow(clippy::too_many_arguments)]
fn write_thumbs(
    dir: &Path,
    score_name: &str,
    index: usize,
    item: &Item,
    frame: &FrameResult,
    range: (f32, f32),
    threshold: f64,
    shown: &mut std::collections::HashSet<usize>,
) -> Result<Option<Thumbs>, EvalError> {
    let img = match image::open(&item.image) {
        Ok(i) => i.into_rgb8(),
        Err(e) => {
            log::warn!("report: cannot read {}: {e}", item.image.display());
            return Ok(None);
        }
    };
    let spec = item.label.as_ref().expect("evaluated frames have labels");
    let label: Label = dataset::read_label(spec)?;
    let pred = super::predictions::read(&frame.prediction)?;
    let (w, h) = (img.width(), img.height());
    if (w as usize, h as usize) != (pred.width, pred.height)
        || (label.width, label.height) != (pred.width, pred.height)
    {
        log::warn!(
            "report: {} is {w}×{h}, its prediction {}×{}: not shown",
            item.image.display(),
            pred.width,
            pred.height
        );
        return Ok(None);
    }
    let rel = |name: String| format!("report/{name}");
    let names = Thumbs {
        image: rel(format!("{index:03}_image.png")),
        label: rel(format!("{index:03}_label.png")),
        score: rel(format!("{index:03}_{score_name}_score.png")),
        overlay: rel(format!("{index:03}_{score_name}_overlay.png")),
    };
    let path = |r: &str| dir.join(r);
    if shown.insert(index) {
        let mut lab = image::RgbImage::new(w, h);
        for (i, p) in lab.pixels_mut().enumerate() {
            let k = if label.ignore[i] != 0 {
                2
            } else {
                label.anomaly[i] as usize
            };
            p.0 = LABEL_RGB[k];
        }
        save_thumb(&path(&names.label), lab, true)?;
        save_thumb(&path(&names.image), img.clone(), false)?;
    }
    let (lo, hi) = range;
    let t = threshold as f32;
    let mut heat = image::RgbImage::new(w, h);
    let mut over = img;
    for (i, (hp, op)) in heat.pixels_mut().zip(over.pixels_mut()).enumerate() {
        let s = pred.scores[i];
        let v = if s.is_finite() {
            ((s - lo) / (hi - lo) * 255.0).clamp(0.0, 255.0) as u8
        } else {
            0
        };
        hp.0 = jet(v);
        let grey = (op.0[0] as u32 * 3 + op.0[1] as u32 * 6 + op.0[2] as u32) / 10;
        let dim = [(grey * 45 / 100) as u8; 3];
        // The best-F1 rule: anomaly where score >= t and score > 0.
        let hit = s >= t && s > 0.0;
        let mark = match (label.ignore[i] != 0, label.anomaly[i] != 0, hit) {
            (true, _, _) => None,
            (false, true, true) => Some(OVERLAY_RGB[0]),
            (false, false, true) => Some(OVERLAY_RGB[1]),
            (false, true, false) => Some(OVERLAY_RGB[2]),
            (false, false, false) => None,
        };
        op.0 = match mark {
            Some(c) => std::array::from_fn(|k| ((dim[k] as u32 * 3 + c[k] as u32 * 7) / 10) as u8),
            None => dim,
        };
    }
    save_thumb(&path(&names.score), heat, false)?;
    save_thumb(&path(&names.overlay), over, false)?;
    Ok(Some(names))
}

/// Frames of one gallery list: the lowest AP (frames with anomaly pixels), and the largest
/// false-positive area at the run's best-F1 threshold.
fn pick_frames(s: &ScoreInput, t_index: usize) -> (Vec<usize>, Vec<usize>) {
    let mut by_ap: Vec<(f64, usize)> = s
        .frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.positives > 0)
        .filter_map(|(i, f)| f.metrics.map(|m| (m.ap, i)))
        .filter(|(ap, _)| !ap.is_nan())
        .collect();
    by_ap.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut by_fp: Vec<(f64, usize)> = (0..s.frames.len())
        .map(|i| (fp_area(s, i, t_index), i))
        .filter(|(a, _)| *a > 0.0)
        .collect();
    by_fp.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    (
        by_ap
            .into_iter()
            .take(GALLERY_FRAMES)
            .map(|x| x.1)
            .collect(),
        by_fp
            .into_iter()
            .take(GALLERY_FRAMES)
            .map(|x| x.1)
            .collect(),
    )
}

/// Share of a frame's non-ignored pixels that are inliers scored as anomaly at threshold index `t`.
fn fp_area(s: &ScoreInput, frame: usize, t: usize) -> f64 {
    let f = &s.frames[frame];
    let kept = (f.width * f.height) as u64 - f.ignored;
    let fp = s
        .inliers_above
        .get(frame)
        .and_then(|v| v.get(t))
        .copied()
        .unwrap_or(0);
    if kept == 0 {
        0.0
    } else {
        fp as f64 / kept as f64
    }
}

/// The run's identity from `<predictions>/manifest.json`, as (term, value, monospace) rows.
fn identity_rows(predictions: &Path) -> Vec<(String, String, bool)> {
    let path = predictions.join("manifest.json");
    let m: serde_json::Value = match std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
    {
        Some(v) => v,
        None => {
            return vec![(
                "run".into(),
                format!("no readable manifest.json in {}", predictions.display()),
                false,
            )]
        }
    };
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "–".into(),
        other => other.to_string(),
    };
    let program = format!(
        "{} {}{}",
        s(&m["program"]["name"]),
        s(&m["program"]["version"]),
        m["program"]["git_commit"]
            .as_str()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default()
    );
    vec![
        (
            "checkpoint".into(),
            format!(
                "{} ({})",
                s(&m["checkpoint"]["path"]),
                s(&m["checkpoint"]["format"])
            ),
            true,
        ),
        ("SHA-256".into(), s(&m["checkpoint"]["sha256"]), true),
        ("model".into(), s(&m["model"]), false),
        ("program".into(), program, false),
        ("precision".into(), s(&m["numerics"]["precision"]), false),
        (
            "device".into(),
            format!("{} (libtorch {})", s(&m["device"]), s(&m["libtorch"])),
            false,
        ),
        (
            "run".into(),
            format!("{} ({})", s(&m["run_id"]), s(&m["status"])),
            true,
        ),
    ]
}

const CSS: &str = r#"
:root{--fg:#1e293b;--muted:#64748b;--line:#e2e8f0;--bg:#f8fafc;--accent:#0f766e}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:20px 20px 40px}
header{background:#0f172a;color:#f1f5f9;padding:18px 0}
header .in{max-width:1240px;margin:0 auto;padding:0 20px;display:flex;align-items:baseline;gap:16px;flex-wrap:wrap}
header h1{margin:0;font-size:22px;font-weight:650}
header .sub{color:#94a3b8}
header nav{margin-left:auto;display:flex;gap:14px}
header nav a{color:#99f6e4;text-decoration:none}
h2{font-size:17px;margin:26px 0 10px;padding-bottom:4px;border-bottom:2px solid var(--line)}
h3{font-size:16px;margin:20px 0 6px}
h4{font-size:14px;margin:14px 0 8px;color:#334155}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.idgrid{display:grid;grid-template-columns:1fr 1fr;gap:12px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0}
dt{color:var(--muted)}
dd{margin:0;overflow-wrap:anywhere}
.mono{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
table{border-collapse:collapse;background:#fff;font-variant-numeric:tabular-nums}
table.metrics{width:100%;border:1px solid var(--line);border-radius:8px}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
thead th{background:#f1f5f9;font-weight:600;font-size:13px}
table.metrics tbody th{font-weight:600}
tr.ref th,tr.ref td{color:var(--muted);font-style:italic;font-weight:400;white-space:normal}
.note{color:var(--muted);font-size:12.5px;margin:6px 0 0}
.plots{display:flex;flex-wrap:wrap;gap:14px}
.plots .card{flex:1 1 360px;max-width:404px;padding:6px}
svg{width:100%;height:auto;display:block}
svg text{font-family:inherit;fill:#334155}
svg .title{font-size:14px;font-weight:600;fill:var(--fg)}
svg .tick{font-size:10.5px}
svg .axis{font-size:11.5px}
svg .lg{font-size:11px}
svg .grid{stroke:#eef2f7;stroke-width:1}
svg .frame{fill:none;stroke:#94a3b8;stroke-width:1}
svg .chance{stroke:#94a3b8;stroke-dasharray:4 4;stroke-width:1}
svg .legend{fill:#fff;fill-opacity:.9;stroke:#cbd5e1}
.frame-row{margin:0 0 14px}
.frame-row .cap{margin:0 0 6px}
.frame-row .cap b{font-weight:600}
.quad{display:grid;grid-template-columns:repeat(4,1fr);gap:8px}
figure{margin:0;background:#fff;border:1px solid var(--line);border-radius:6px;padding:4px}
figure img{width:100%;height:auto;max-height:240px;object-fit:contain;display:block;border-radius:3px}
figcaption{font-size:12px;color:var(--muted);padding:3px 2px 0}
.keys{display:flex;flex-wrap:wrap;gap:14px;font-size:12.5px;color:var(--muted);margin:4px 0 10px}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;vertical-align:-1px;margin-right:4px}
.bar{display:inline-block;width:120px;height:10px;vertical-align:-1px;border-radius:2px;background:linear-gradient(90deg,#000080,#0000ff,#00ffff,#ffff00,#ff0000,#800000)}
.scroll{max-height:560px;overflow:auto;border:1px solid var(--line);border-radius:8px}
table.frames{width:100%}
table.frames thead th{position:sticky;top:0;cursor:pointer;user-select:none}
table.frames thead th[data-dir=asc]::after{content:" \25B2";font-size:10px}
table.frames thead th[data-dir=desc]::after{content:" \25BC";font-size:10px}
table.frames tbody tr:nth-child(even){background:#f8fafc}
td.stem,th.stem{text-align:left;max-width:360px;overflow:hidden;text-overflow:ellipsis}
a{color:var(--accent)}
footer{color:var(--muted);font-size:12px;margin-top:30px}
"#;

/// Sorts a frame table by the clicked column (numbers by `data-v`, empty values last).
const SORT_JS: &str = r#"
document.querySelectorAll("table.frames").forEach(function (t) {
  t.querySelectorAll("thead th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var dir = th.dataset.dir === "asc" ? "desc" : "asc";
      t.querySelectorAll("thead th").forEach(function (o) { delete o.dataset.dir; });
      th.dataset.dir = dir;
      var rows = Array.prototype.slice.call(t.tBodies[0].rows);
      var key = function (r) { var c = r.cells[col]; return c.dataset.v !== undefined ? c.dataset.v : c.textContent; };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === "" || y === "") return (x === "") - (y === "");
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny;
        return dir === "asc" ? c : -c;
      });
      rows.forEach(function (r) { t.tBodies[0].appendChild(r); });
    });
  });
});
"#;

/// Writes `report.html` and the gallery pictures in `report/`; returns the files written.
pub fn write_report(input: &ReportInput) -> Result<Vec<PathBuf>, EvalError> {
    let out = input.out;
    let pic_dir = out.join("report");
    std::fs::create_dir_all(&pic_dir).map_err(|e| write_err(&pic_dir, e))?;
    let Some(first) = input.scores.first() else {
        return Ok(Vec::new());
    };
    let r0 = first.results;
    let mut written = Vec::new();

    let mode = serde_json::to_value(r0.mode)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let dataset = match &r0.split {
        Some(s) => format!("{} ({s})", r0.dataset),
        None => r0.dataset.to_string(),
    };
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>maskomaly evaluation: {}</title><style>{CSS}</style></head><body>\
         <header><div class=\"in\"><h1>maskomaly evaluation</h1><span class=\"sub\">{} · {} frames · {} mode</span>\
         <nav><a href=\"#metrics\">metrics</a><a href=\"#curves\">curves</a><a href=\"#gallery\">gallery</a><a href=\"#frames\">frames</a></nav>\
         </div></header><main>",
        esc(&dataset),
        esc(&dataset),
        r0.frames,
        esc(&mode)
    );

    // Identity.
    h += "<h2 id=\"run\">Run</h2><div class=\"idgrid\"><div class=\"card\"><dl>";
    for (k, v, mono) in identity_rows(input.predictions) {
        let _ = write!(
            h,
            "<dt>{}</dt><dd{}>{}</dd>",
            esc(&k),
            if mono { " class=\"mono\"" } else { "" },
            esc(&v)
        );
    }
    h += "</dl></div><div class=\"card\"><dl>";
    let p = &r0.pixels;
    let rows = [
        ("dataset", dataset.clone()),
        ("frames", r0.frames.to_string()),
        (
            "pixels",
            format!(
                "{} evaluated: {} anomaly, {} inlier; {} ignored",
                thousands(p.evaluated),
                thousands(p.positives),
                thousands(p.negatives),
                thousands(p.ignored)
            ),
        ),
        ("mode", mode.clone()),
        ("predictions", input.predictions.display().to_string()),
        ("prediction dtype", r0.prediction_dtype.clone()),
        ("evaluated", crate::output::manifest::now_rfc3339()),
    ];
    for (k, v) in rows {
        let _ = write!(h, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
    }
    h += "</dl></div></div>";

    // Metrics.
    h += "<h2 id=\"metrics\">Metrics</h2>";
    let rows: Vec<(&str, &EvalResults)> =
        input.scores.iter().map(|s| (s.name, s.results)).collect();
    h += &metrics_table(&rows);
    let _ = write!(
        h,
        "<p class=\"note\">Percent. AP: scikit-learn's average precision; FPR95: false-positive rate at the \
         first threshold with TPR ≥ 0.95; FPR at TPR&gt;90 and AUPR: the reference's own definitions \
         ({}). Published rows are quoted, not measured here.</p>",
        if mode == "image" {
            "per-frame values averaged over frames"
        } else {
            "all frames pooled, ignored pixels dropped"
        }
    );

    // Curves.
    h += "<h2 id=\"curves\">Curves</h2><div class=\"plots\">";
    let color = |i: usize| PALETTE[i % PALETTE.len()].to_string();
    let (mut pr, mut roc) = (Vec::new(), Vec::new());
    for (i, s) in input.scores.iter().enumerate() {
        let (p, r) = s.pooled.sampled_curves(CURVE_POINTS);
        pr.push(Series {
            name: format!("{} (AP {}%)", s.name, pct(s.results.ap, 1)),
            color: color(i),
            points: p,
            fill: false,
        });
        roc.push(Series {
            name: format!("{} (AUROC {}%)", s.name, pct(s.results.auroc, 1)),
            color: color(i),
            points: r,
            fill: false,
        });
    }
    for plot in [
        Plot {
            title: "Precision–recall",
            x_label: "recall",
            y_label: "precision",
            x: (0.0, 1.0),
            y: (0.0, 1.0),
            series: pr,
            diagonal: false,
            legend_low: true,
            y_ticks: Vec::new(),
        },
        Plot {
            title: "ROC",
            x_label: "false-positive rate",
            y_label: "true-positive rate",
            x: (0.0, 1.0),
            y: (0.0, 1.0),
            series: roc,
            diagonal: true,
            legend_low: true,
            y_ticks: Vec::new(),
        },
    ] {
        let _ = write!(h, "<div class=\"card\">{}</div>", svg(&plot));
    }
    for s in &input.scores {
        let range = score_range(s.pooled);
        let (pos, neg) = distribution(s.pooled, range);
        // Log scale, so that the few inliers with high scores (the false positives) show.
        let smallest = pos
            .iter()
            .chain(&neg)
            .map(|p| p.1)
            .filter(|&v| v > 0.0)
            .fold(1.0f64, f64::min);
        let floor = smallest.log10().floor().clamp(-7.0, -1.0);
        let log = |v: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
            v.into_iter()
                .map(|(x, y)| (x, if y > 0.0 { y.log10().max(floor) } else { floor }))
                .collect()
        };
        let (pos, neg) = (log(pos), log(neg));
        let y_ticks = (floor as i32..=0)
            .map(|e| {
                let label = match e {
                    0 => "1".to_string(),
                    -1 => "0.1".to_string(),
                    -2 => "0.01".to_string(),
                    e => format!("1e{e}"),
                };
                (e as f64, label)
            })
            .collect();
        let title = format!("Score distribution: {}", s.name);
        let plot = Plot {
            title: &title,
            x_label: "score",
            y_label: "share of the class's pixels (log)",
            x: (range.0 as f64, range.1 as f64),
            y: (floor, 0.0),
            series: vec![
                Series {
                    name: "anomaly".into(),
                    color: ANOMALY_COLOR.into(),
                    points: pos,
                    fill: true,
                },
                Series {
                    name: "inlier".into(),
                    color: INLIER_COLOR.into(),
                    points: neg,
                    fill: true,
                },
            ],
            diagonal: false,
            legend_low: false,
            y_ticks,
        };
        let _ = write!(h, "<div class=\"card\">{}</div>", svg(&plot));
    }
    h += "</div><p class=\"note\">Curves over all non-ignored pixels of all frames. Distribution (log scale): \
          the share of each class's pixels in each of 40 equal score bins.</p>";

    // Gallery.
    h += "<h2 id=\"gallery\">Gallery</h2>";
    let mut shown = std::collections::HashSet::new();
    let _ = write!(
        h,
        "<div class=\"keys\"><span>label:</span>\
         <span><i class=\"sw\" style=\"background:{}\"></i>inlier</span>\
         <span><i class=\"sw\" style=\"background:{}\"></i>anomaly</span>\
         <span><i class=\"sw\" style=\"background:{};border:1px solid #cbd5e1\"></i>ignored</span>\
         <span style=\"margin-left:12px\">overlay:</span>\
         <span><i class=\"sw\" style=\"background:{}\"></i>anomaly found</span>\
         <span><i class=\"sw\" style=\"background:{}\"></i>false positive</span>\
         <span><i class=\"sw\" style=\"background:{}\"></i>missed</span></div>",
        hex(LABEL_RGB[0]),
        hex(LABEL_RGB[1]),
        hex(LABEL_RGB[2]),
        hex(OVERLAY_RGB[0]),
        hex(OVERLAY_RGB[1]),
        hex(OVERLAY_RGB[2])
    );
    for s in &input.scores {
        let (threshold, best_f1) = s.pooled.best_f1_threshold(THRESHOLDS);
        let t_index = ((threshold * THRESHOLDS as f64).round() as usize).min(THRESHOLDS - 1);
        let range = score_range(s.pooled);
        let (worst_ap, most_fp) = pick_frames(s, t_index);
        let _ = write!(
            h,
            "<h3>{}</h3><p class=\"note\">Overlay threshold: {threshold:.2} (the run's best F1 over \
             i/100, F1 {}%). Score colours: <span class=\"bar\"></span> {} … {}</p>",
            esc(s.name),
            pct(best_f1, 1),
            tick(range.0 as f64),
            tick(range.1 as f64)
        );
        for (title, list) in [
            ("Lowest AP", &worst_ap),
            ("Largest false-positive area", &most_fp),
        ] {
            let _ = write!(h, "<h4>{title}</h4>");
            if list.is_empty() {
                h += "<p class=\"note\">No frame qualifies.</p>";
            }
            for &i in list.iter() {
                let f = &s.frames[i];
                let Some(item) = input.items.get(i) else {
                    continue;
                };
                let thumbs =
                    write_thumbs(out, s.name, f.index, item, f, range, threshold, &mut shown)?;
                let m = f.metrics;
                let _ = write!(
                    h,
                    "<div class=\"frame-row\"><p class=\"cap\"><b>#{} {}</b> · AP {}% · AUROC {}% · \
                     FPR95 {}% · false-positive area {}% · {} anomaly px of {}×{}</p>",
                    f.index,
                    esc(&f.stem),
                    cell_pct(m.map_or(f64::NAN, |m| m.ap)),
                    cell_pct(m.map_or(f64::NAN, |m| m.auroc)),
                    cell_pct(m.map_or(f64::NAN, |m| m.fpr95)),
                    pct(fp_area(s, i, t_index), 2),
                    thousands(f.positives),
                    f.width,
                    f.height
                );
                match thumbs {
                    Some(t) => {
                        h += "<div class=\"quad\">";
                        for (src, cap) in [
                            (&t.image, "image"),
                            (&t.label, "label"),
                            (&t.score, "score"),
                            (&t.overlay, "thresholded"),
                        ] {
                            let _ = write!(
                                h,
                                "<figure><img src=\"{}\" alt=\"{cap} of {}\"><figcaption>{cap}</figcaption></figure>",
                                esc(src),
                                esc(&f.stem)
                            );
                            let p = out.join(src);
                            if !written.contains(&p) {
                                written.push(p);
                            }
                        }
                        h += "</div>";
                    }
                    None => {
                        h +=
                            "<p class=\"note\">Image not shown (unreadable or of another size).</p>"
                    }
                }
                h += "</div>";
            }
        }
    }

    // Per-frame tables.
    h += "<h2 id=\"frames\">Frames</h2>";
    for s in &input.scores {
        let (threshold, _) = s.pooled.best_f1_threshold(THRESHOLDS);
        let t_index = ((threshold * THRESHOLDS as f64).round() as usize).min(THRESHOLDS - 1);
        let _ = write!(
            h,
            "<h3>{} <span class=\"note\">(click a column to sort; false positives at threshold {threshold:.2})</span></h3>\
             <div class=\"scroll\"><table class=\"frames\"><thead><tr><th>#</th><th class=\"stem\">frame</th><th>size</th>\
             <th>anomaly px</th><th>ignored px</th><th>AP</th><th>AUROC</th><th>FPR95</th>\
             <th>best F1</th><th>FP area</th>{}</tr></thead><tbody>",
            esc(s.name),
            if input.overlays { "<th>overlays</th>" } else { "" }
        );
        for (i, f) in s.frames.iter().enumerate() {
            // AP is undefined on a frame without anomaly pixels (scikit-learn gives -0.0).
            let m = f.metrics.filter(|_| f.positives > 0);
            let g = |x: fn(&super::metrics::CurveMetrics) -> f64| {
                let v = m.as_ref().map(x).unwrap_or(f64::NAN);
                format!("<td data-v=\"{}\">{}</td>", sort_key(v), cell_pct(v))
            };
            let fp = fp_area(s, i, t_index);
            let _ = write!(
                h,
                "<tr><td data-v=\"{0}\">{0}</td><td class=\"stem\" title=\"{1}\">{1}</td><td data-v=\"{2}\">{3}×{4}</td>\
                 <td data-v=\"{5}\">{6}</td><td data-v=\"{7}\">{8}</td>{9}{10}{11}\
                 <td data-v=\"{12}\">{13}</td><td data-v=\"{14}\">{15}</td>",
                f.index,
                esc(&f.stem),
                f.width * f.height,
                f.width,
                f.height,
                f.positives,
                thousands(f.positives),
                f.ignored,
                thousands(f.ignored),
                g(|m| m.ap),
                g(|m| m.auroc),
                g(|m| m.fpr95),
                sort_key(f.best_f1),
                cell_pct(f.best_f1),
                fp,
                pct(fp, 2)
            );
            if input.overlays {
                let heat = format!("overlays/{:03}_heat.png", f.index);
                let mark = format!("overlays/{:03}_anomaly.png", f.index);
                if out.join(&heat).is_file() && out.join(&mark).is_file() {
                    let _ = write!(
                        h,
                        "<td><a href=\"{}\">heat</a> · <a href=\"{}\">best F1</a></td>",
                        esc(&heat),
                        esc(&mark)
                    );
                } else {
                    h += "<td>–</td>";
                }
            }
            h += "</tr>";
        }
        h += "</tbody></table></div>";
    }
    let _ = writeln!(
        h,
        "<footer>Written by maskomaly {} · beside this page: <a href=\"results.json\">results.json</a>, \
         <a href=\"results.txt\">results.txt</a>, <a href=\"per_frame.csv\">per_frame.csv</a>{}\
         </footer></main><script>{SORT_JS}</script></body></html>",
        env!("CARGO_PKG_VERSION"),
        if input.overlays { ", overlays/" } else { "" }
    );
    let page = out.join("report.html");
    write_atomic(&page, h.as_bytes())?;
    written.push(page);
    Ok(written)
}

fn hex(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// Every `src`, `href` and CSS `url(...)` target in a page, in order.
pub fn references(html: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for attr in ["src=\"", "href=\"", "url("] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = if attr == "url(" { ')' } else { '"' };
            let Some(j) = rest.find(end) else { break };
            refs.push(rest[..j].trim_matches(['\'', '"', ' ']).to_string());
            rest = &rest[j..];
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::Bin;

    fn hist(bins: &[(f32, u64, u64)]) -> Histogram {
        Histogram::from_bins(
            bins.iter()
                .map(|&(score, pos, neg)| Bin { score, pos, neg })
                .collect(),
        )
    }

    #[test]
    fn inliers_above_counts_negatives_at_each_threshold() {
        let h = hist(&[(0.9, 5, 1), (0.55, 0, 2), (0.5, 1, 4), (0.0, 0, 7)]);
        let a = inliers_above(&h, 100);
        assert_eq!(a[0], 7, "t = 0 excludes score 0");
        assert_eq!(a[50], 7, "t = 0.5 includes 0.5");
        assert_eq!(a[51], 3);
        assert_eq!(a[56], 1);
        assert_eq!(a[90], 1);
        assert_eq!(a[91], 0);
    }

    #[test]
    fn escaping_and_references() {
        assert_eq!(esc("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
        let page =
            "<img src=\"report/1.png\"><a href=\"#x\">x</a><div style=\"background:url('y.png')\">";
        assert_eq!(references(page), ["report/1.png", "#x", "y.png"]);
    }

    #[test]
    fn distribution_shares_sum_to_one_per_class() {
        let h = hist(&[(1.0, 3, 0), (0.51, 1, 1), (0.0, 0, 6)]);
        let (pos, neg) = distribution(&h, score_range(&h));
        let sum = |v: &[(f64, f64)]| v.iter().step_by(2).map(|p| p.1).sum::<f64>();
        assert!((sum(&pos) - 1.0).abs() < 1e-12 && (sum(&neg) - 1.0).abs() < 1e-12);
        // Score 1.0 falls in the last bin, 0.0 in the first.
        assert_eq!(pos.last().unwrap().1, 0.75);
        assert!((neg[0].1 - 6.0 / 7.0).abs() < 1e-12);
        // Scores outside [0, 1] span their own range.
        assert_eq!(
            score_range(&hist(&[(3.0, 1, 0), (-1.0, 0, 1)])),
            (-1.0, 3.0)
        );
    }

    #[test]
    fn published_rows_only_for_their_dataset() {
        let mut r = EvalResults {
            dataset: "road_anomaly",
            split: None,
            mode: crate::eval::Mode::Total,
            frames: 1,
            pixels: Default::default(),
            prediction_dtype: "float32".into(),
            ap: 0.5,
            auroc: 0.9,
            fpr95: f64::NAN,
            fpr_at_tpr90_seed: 0.1,
            aupr_seed: 0.5,
            distinct_scores: 2,
            smiyc: None,
            components: None,
            run: None,
        };
        let t = metrics_table(&[("maskomaly", &r)]);
        assert!(t.contains("published") && t.contains("70.90") && t.contains("11.90"));
        assert!(t.contains("<td>–</td>"), "NaN shown as a dash");
        r.dataset = "fs_static";
        assert!(!metrics_table(&[("maskomaly", &r)]).contains("published"));
    }
}
