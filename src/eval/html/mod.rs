//! `report.html`: one self-contained page per evaluation, for people who look before they read.
//!
//! ```text
//! run identity (manifest.json) · metrics table (one row per score, best of each column marked,
//!   published numbers named as such) · links to each score's own page (several scores)
//! PR and ROC curves of every score, one plot each · each score's anomaly / inlier distribution
//! gallery: one score: lowest-AP frames, largest false-positive area; several: the frames where
//!   the scores disagree most, every score side by side (image | label | score | overlay)
//! per-frame table (bounded; every frame in per_frame.csv), sortable by a few lines of script
//! ```
//! Two steps: everything the page shows is prepared first (thumbnails written to `report/`, plots
//! drawn as SVG by the chart engine that also draws the PNGs, the manifest read), then
//! [`page::render`] builds the HTML from maud templates without touching a file. Nothing is
//! loaded from the network (no script, font or style), so the folder can be opened offline or
//! attached as it is. The frames the page shows are chosen while the frames stream past
//! ([`picks`]), so memory and page size do not grow with the dataset.

mod gallery;
pub mod page;
pub mod picks;
mod several;

pub use several::write_comparison_report;

use super::chart::{hex, score_colour, Chart, Distribution, Line};
use super::metrics::Histogram;
use super::report::{pct, write_atomic, write_err};
use super::{Curve, EvalError, EvalResults, FrameResult};
use crate::dataset::Item;
use gallery::{rgb_hex, ScoreView, Thumbnails, LABEL_RGB, OVERLAY_RGB};
use page::{
    cell_pct, Cell, Column, FrameTable, GalleryList, GallerySection, MetricsRow, MetricsTable,
    Page, Row,
};
use picks::Picked;
use std::path::{Path, PathBuf};

/// Thresholds `i / THRESHOLDS` of the reference's best-F1 search (`eval.py: get_best_f1`).
pub const THRESHOLDS: usize = 100;
/// Size of the page's plots, in SVG user units (scaled by the page).
const PLOT: (u32, u32) = (440, 340);

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

/// What one score contributes to the pages, computed once after its pass over the frames; its
/// size does not depend on the number of frames.
#[derive(Debug, Clone)]
pub struct ScoreData {
    pub name: String,
    /// Pooled PR (recall, precision) and ROC (fpr, tpr) curves, sampled.
    pub pr: Curve,
    pub roc: Curve,
    pub distribution: Distribution,
    /// The run's best-F1 threshold over `i / THRESHOLDS` on the pooled pixels, and that F1.
    pub threshold: f64,
    pub best_f1: f64,
    pub picks: picks::FramePicks,
}

/// Points per plotted curve.
const CURVE_POINTS: usize = 600;

impl ScoreData {
    pub fn new(name: &str, pooled: &Histogram, picks: picks::FramePicks) -> ScoreData {
        let (pr, roc) = pooled.sampled_curves(CURVE_POINTS);
        let (threshold, best_f1) = pooled.best_f1_threshold(THRESHOLDS);
        ScoreData {
            name: name.to_string(),
            pr,
            roc,
            distribution: Distribution::new(pooled, super::chart::score_range(pooled)),
            threshold,
            best_f1,
            picks,
        }
    }

    fn t_index(&self) -> usize {
        ((self.threshold * THRESHOLDS as f64).round() as usize).min(THRESHOLDS - 1)
    }

    fn colour(&self) -> String {
        hex(score_colour(&self.name))
    }

    fn view<'a>(&'a self, prediction: &'a Path) -> ScoreView<'a> {
        ScoreView {
            name: &self.name,
            prediction,
            range: self.distribution.range,
            threshold: self.threshold,
            colour: self.colour(),
        }
    }
}

/// Where the page goes and what it shows frames of.
pub struct ReportInput<'a> {
    /// The eval folder: `report.html` and `report/` go here.
    pub out: &'a Path,
    /// The predictions folder (its `manifest.json` names the run).
    pub predictions: &'a Path,
    /// The dataset's items, in frame order.
    pub items: &'a [Item],
    /// Whether `overlays/NNN_heat.png` exist to link from the frame table.
    pub overlays: bool,
}

/// One score of a comparison page.
pub struct CompareScore<'a> {
    pub results: &'a EvalResults,
    pub data: &'a ScoreData,
    /// Every frame's row, in frame order.
    pub frames: &'a [FrameResult],
    /// The score's own page, relative to the comparison page.
    pub page: Option<String>,
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
pub fn metrics_table(scores: &[(&str, &EvalResults)]) -> MetricsTable {
    let smiyc = scores.iter().any(|(_, r)| r.smiyc.is_some());
    let comps = scores.iter().any(|(_, r)| r.components.is_some());
    let col = |name, lower_is_better, title| Column {
        name,
        title,
        lower_is_better,
    };
    let mut columns = vec![
        col("AP", false, None),
        col("AUROC", false, None),
        col("FPR95", true, None),
        col(
            "FPR at TPR>90 (seed)",
            true,
            Some("the reference's FPR: first ROC point with TPR > 0.90"),
        ),
        col("AUPR (seed)", false, None),
    ];
    if smiyc {
        columns.push(col("SMIYC AP", false, None));
        columns.push(col("SMIYC FPR95", true, None));
    }
    if comps {
        columns.push(col("sIoU gt", false, None));
        columns.push(col("PPV", false, None));
        columns.push(col("mean F1", false, None));
    }
    let mut rows = Vec::new();
    for (name, r) in scores {
        let mut values = vec![
            Some(r.ap),
            Some(r.auroc),
            Some(r.fpr95),
            Some(r.fpr_at_tpr90_seed),
            Some(r.aupr_seed),
        ];
        if smiyc {
            values.push(r.smiyc.as_ref().map(|b| b.ap));
            values.push(r.smiyc.as_ref().map(|b| b.fpr95));
        }
        if comps {
            let c = r.components.as_ref();
            values.push(c.map(|c| c.siou_gt));
            values.push(c.map(|c| c.ppv));
            values.push(c.map(|c| c.mean_f1));
        }
        rows.push(MetricsRow {
            name: name.to_string(),
            colour: Some(hex(score_colour(name))),
            values,
            published: false,
        });
    }
    for p in PUBLISHED {
        if !scores
            .iter()
            .any(|(n, r)| *n == p.score && r.dataset == p.dataset)
        {
            continue;
        }
        let mut values = vec![Some(p.ap), None, Some(p.fpr95), None, None];
        values.resize(columns.len(), None);
        rows.push(MetricsRow {
            name: p.note.to_string(),
            colour: None,
            values,
            published: true,
        });
    }
    MetricsTable { columns, rows }
}

/// A page holding only the metrics table, styled as the report (the README's picture of it).
pub fn metrics_page(scores: &[(&str, &EvalResults)]) -> String {
    page::metrics_page(&metrics_table(scores))
}

/// The run's identity from `<predictions>/manifest.json`.
fn identity_rows(predictions: &Path) -> Vec<Row> {
    let row = |term: &str, value: String, mono: bool| Row {
        term: term.into(),
        value,
        mono,
    };
    let path = predictions.join("manifest.json");
    let m: serde_json::Value = match std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
    {
        Some(v) => v,
        None => {
            return vec![row(
                "run",
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
        row(
            "checkpoint",
            format!(
                "{} ({})",
                s(&m["checkpoint"]["path"]),
                s(&m["checkpoint"]["format"])
            ),
            true,
        ),
        row("SHA-256", s(&m["checkpoint"]["sha256"]), true),
        row("model", s(&m["model"]), false),
        row("program", program, false),
        row("precision", s(&m["numerics"]["precision"]), false),
        row(
            "device",
            format!("{} (libtorch {})", s(&m["device"]), s(&m["libtorch"])),
            false,
        ),
        row(
            "run",
            format!("{} ({})", s(&m["run_id"]), s(&m["status"])),
            true,
        ),
    ]
}

fn mode_name(r: &EvalResults) -> String {
    serde_json::to_value(r.mode)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn dataset_name(r: &EvalResults) -> String {
    match &r.split {
        Some(s) => format!("{} ({s})", r.dataset),
        None => r.dataset.to_string(),
    }
}

/// Numbers with thin thousands separators.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut o = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            o.push('\u{2009}');
        }
        o.push(c);
    }
    o
}

/// `data-v` for sorting: the number, or empty for NaN (sorted last).
fn sort_key(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else {
        format!("{x}")
    }
}

fn num_cell(text: String, v: f64) -> Cell {
    Cell {
        text,
        sort: Some(sort_key(v)),
        links: Vec::new(),
        stem: false,
    }
}

fn pct_cell(v: Option<f64>) -> Cell {
    let v = v.unwrap_or(f64::NAN);
    num_cell(cell_pct(Some(v)), v)
}

fn stem_cell(stem: &str) -> Cell {
    Cell {
        text: stem.to_string(),
        sort: None,
        links: Vec::new(),
        stem: true,
    }
}

/// The parts every page has: identity, metrics, curves and distributions.
fn base_page(input: &ReportInput, scores: &[(&EvalResults, &ScoreData)]) -> Result<Page, String> {
    let r0 = scores[0].0;
    let mode = mode_name(r0);
    let dataset = dataset_name(r0);
    let p = &r0.pixels;
    let evaluation = [
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
        (
            "prediction dtype",
            scores
                .iter()
                .map(|(r, _)| r.prediction_dtype.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("evaluated", crate::provenance::manifest::now_rfc3339()),
    ]
    .into_iter()
    .map(|(t, v)| Row {
        term: t.into(),
        value: v,
        mono: false,
    })
    .collect();
    let names: Vec<(&str, &EvalResults)> =
        scores.iter().map(|(r, d)| (d.name.as_str(), *r)).collect();
    let pr_lines = scores
        .iter()
        .map(|(r, d)| Line {
            colour: score_colour(&d.name),
            legend: format!("{} (AP {}%)", d.name, pct(r.ap, 1)),
            points: &d.pr,
            fill: false,
        })
        .collect();
    let roc_lines = scores
        .iter()
        .map(|(r, d)| Line {
            colour: score_colour(&d.name),
            legend: format!("{} (AUROC {}%)", d.name, pct(r.auroc, 1)),
            points: &d.roc,
            fill: false,
        })
        .collect();
    let mut roc = Chart::curves(
        "ROC",
        ("false-positive rate", "true-positive rate"),
        roc_lines,
    );
    roc.diagonal = true;
    let mut plots = vec![
        Chart::curves("Precision–recall", ("recall", "precision"), pr_lines).svg(PLOT)?,
        roc.svg(PLOT)?,
    ];
    for (_, d) in scores {
        let (steps, floor) = d.distribution.log_steps();
        let title = format!("Score distribution: {}", d.name);
        plots.push(d.distribution.chart(&title, &steps, floor).svg(PLOT)?);
    }
    Ok(Page {
        title: format!("maskomaly evaluation: {dataset}"),
        subtitle: format!("{dataset} · {} frames · {mode} mode", r0.frames),
        identity: identity_rows(input.predictions),
        evaluation,
        table: metrics_table(&names),
        table_note: format!(
            "Percent. AP: scikit-learn's average precision; FPR95: false-positive rate at the first \
             threshold with TPR ≥ 0.95; FPR at TPR>90 and AUPR: the reference's own definitions ({}). \
             Published rows are quoted, not measured here.{}",
            if mode == "image" {
                "per-frame values averaged over frames"
            } else {
                "all frames pooled, ignored pixels dropped"
            },
            if scores.len() > 1 {
                " The best value of each column is marked."
            } else {
                ""
            }
        ),
        score_pages: Vec::new(),
        plots,
        plots_note: format!(
            "Curves over all non-ignored pixels of all frames, one colour per score. Distribution \
             (log scale): the share of each class's pixels in each of {} equal score bins.",
            super::chart::DIST_BINS
        ),
        label_keys: ["inlier", "anomaly", "ignored"]
            .iter()
            .zip(LABEL_RGB)
            .map(|(t, c)| (t.to_string(), rgb_hex(c)))
            .collect(),
        overlay_keys: ["anomaly found", "false positive", "missed"]
            .iter()
            .zip(OVERLAY_RGB)
            .map(|(t, c)| (t.to_string(), rgb_hex(c)))
            .collect(),
        gallery: Vec::new(),
        frames: FrameTable {
            title: String::new(),
            note: String::new(),
            columns: Vec::new(),
            rows: Vec::new(),
        },
        files: Vec::new(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

fn write_page(out: &Path, page: &Page, written: &mut Vec<PathBuf>) -> Result<(), EvalError> {
    let path = out.join("report.html");
    write_atomic(&path, page::render(page).as_bytes())?;
    written.push(path);
    Ok(())
}

fn frame_caption(p: &Picked, t: usize) -> String {
    let f = &p.frame;
    let m = f.metrics;
    format!(
        "#{} {} · AP {}% · AUROC {}% · FPR95 {}% · false-positive area {}% · {} anomaly px of {}×{}",
        f.index,
        f.stem,
        cell_pct(p.ap()),
        cell_pct(m.map(|m| m.auroc)),
        cell_pct(m.map(|m| m.fpr95)),
        pct(p.fp_area(t), 2),
        thousands(f.positives),
        f.width,
        f.height
    )
}

/// Writes one score's `report.html` and its gallery pictures in `report/`; returns the files
/// written.
pub fn write_score_report(
    input: &ReportInput,
    results: &EvalResults,
    data: &ScoreData,
) -> Result<Vec<PathBuf>, EvalError> {
    let out = input.out;
    let page_path = out.join("report.html");
    let mut page = base_page(input, &[(results, data)]).map_err(|e| write_err(&page_path, e))?;
    let mut thumbs = Thumbnails::new(out)?;
    let t = data.t_index();

    // Gallery.
    let (lowest, most_fp) = data.picks.gallery(t);
    let mut lists = Vec::new();
    for (title, frames) in [
        ("Lowest AP", lowest),
        ("Largest false-positive area", most_fp),
    ] {
        let mut rows = Vec::new();
        for p in frames {
            let Some(item) = input.items.get(p.frame.index) else {
                continue;
            };
            let mut row = thumbs.frame(
                p.frame.index,
                item,
                &p.frame.stem,
                &[data.view(&p.frame.prediction)],
            )?;
            row.caption = frame_caption(&p, t);
            rows.push(row);
        }
        lists.push(GalleryList {
            title: title.into(),
            rows,
        });
    }
    let (lo, hi) = data.distribution.range;
    page.gallery.push(GallerySection {
        title: data.name.clone(),
        colour: Some(data.colour()),
        note: format!(
            "Overlay threshold: {:.2} (the run's best F1 over i/100, F1 {}%). Score colours from {} to {}:",
            data.threshold,
            pct(data.best_f1, 1),
            super::chart::tick(lo as f64),
            super::chart::tick(hi as f64)
        ),
        colour_bar: true,
        lists,
    });

    // Frame table.
    let (rows, all) = data.picks.table();
    let mut columns: Vec<String> = [
        "#",
        "frame",
        "size",
        "anomaly px",
        "ignored px",
        "AP",
        "AUROC",
        "FPR95",
        "best F1",
        "FP area",
    ]
    .map(String::from)
    .to_vec();
    if input.overlays {
        columns.push("overlays".into());
    }
    let mut table_rows = Vec::with_capacity(rows.len());
    for p in &rows {
        let f = &p.frame;
        let m = f.metrics.filter(|_| f.positives > 0);
        let fp = p.fp_area(t);
        let mut cells = vec![
            num_cell(f.index.to_string(), f.index as f64),
            stem_cell(&f.stem),
            num_cell(
                format!("{}×{}", f.width, f.height),
                (f.width * f.height) as f64,
            ),
            num_cell(thousands(f.positives), f.positives as f64),
            num_cell(thousands(f.ignored), f.ignored as f64),
            pct_cell(m.map(|m| m.ap)),
            pct_cell(m.map(|m| m.auroc)),
            pct_cell(m.map(|m| m.fpr95)),
            pct_cell(Some(f.best_f1)),
            num_cell(pct(fp, 2), fp),
        ];
        if input.overlays {
            let heat = format!("overlays/{:03}_heat.png", f.index);
            let mark = format!("overlays/{:03}_anomaly.png", f.index);
            if out.join(&heat).is_file() && out.join(&mark).is_file() {
                cells.push(Cell {
                    text: String::new(),
                    sort: None,
                    links: vec![("heat".into(), heat), ("best F1".into(), mark)],
                    stem: false,
                });
            } else {
                cells.push(Cell {
                    text: "–".into(),
                    sort: None,
                    links: Vec::new(),
                    stem: false,
                });
            }
        }
        table_rows.push(cells);
    }
    page.frames = FrameTable {
        title: data.name.clone(),
        note: format!(
            "(click a column to sort; false positives at threshold {:.2}; {}; every frame is in per_frame.csv)",
            data.threshold,
            if all {
                format!("all {} frames", rows.len())
            } else {
                format!(
                    "the {} frames with the lowest and the {} with the highest AP of {}",
                    picks::TABLE_ROWS,
                    picks::TABLE_ROWS,
                    data.picks.seen()
                )
            }
        ),
        columns,
        rows: table_rows,
    };
    page.files = ["results.json", "results.txt", "per_frame.csv"]
        .map(|f| (f.to_string(), f.to_string()))
        .to_vec();
    let mut written = thumbs.written;
    write_page(out, &page, &mut written)?;
    Ok(written)
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
    use super::super::chart::tests::hist;
    use super::*;

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
    fn references_are_found() {
        let page =
            "<img src=\"report/1.png\"><a href=\"#x\">x</a><div style=\"background:url('y.png')\">";
        assert_eq!(references(page), ["report/1.png", "#x", "y.png"]);
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
        let t = metrics_page(&[("maskomaly", &r)]);
        assert!(t.contains("published") && t.contains("70.90") && t.contains("11.90"));
        assert!(t.contains("<td>–</td>"), "NaN shown as a dash");
        r.dataset = "fs_static";
        assert!(!metrics_page(&[("maskomaly", &r)]).contains("published"));
    }
}
