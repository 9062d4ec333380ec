//! `maskomaly eval` over the scores of one run (`method.scores`): each score's maps are evaluated
//! exactly as a single-score run, into `<output>/<score>/`, then compared in one table (stdout,
//! `results.json`, `comparison.csv`), one per-frame table (`per_frame.csv`, one column per score),
//! on one PR plot and one ROC plot (`pr_curves.png`, `roc_curves.png`), and on one page
//! (`report.html`: every score's metrics, curves, distributions, the frames where they disagree
//! most side by side, and links to each score's own page).
//!
//! A run with several scores writes each into `<predictions>/<score>/`; a run with one score writes
//! into `<predictions>` itself, which is evaluated as before (one `results.json`, no comparison).
//! Every metric reads the stored values of each score, never a display mapping.

use super::chart::{score_colour, Chart, Line};
use super::{run_eval, Curve, EvalError, EvalOptions, EvalResults, EvalSummary, Mode};
use crate::diagnostic::{Diagnose, ExitCode};
use crate::job::Job;
use crate::scores::ScoreKind;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("score {score}")]
    Eval {
        score: ScoreKind,
        #[source]
        source: EvalError,
    },
    #[error(transparent)]
    Single(#[from] EvalError),
    #[error("no predictions of score `{score}` under {path}: it holds {found}")]
    NoScore {
        score: ScoreKind,
        path: PathBuf,
        found: String,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: super::Source,
    },
}

impl Diagnose for CompareError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CompareError::Eval { source, .. } | CompareError::Single(source) => source.exit_code(),
            CompareError::NoScore { .. } => ExitCode::NoInput,
            CompareError::Write { .. } => ExitCode::Io,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            CompareError::Eval { source, .. } | CompareError::Single(source) => source.hint(),
            CompareError::NoScore { .. } => Some("pass --score with one of those".into()),
            CompareError::Write { .. } => None,
        }
    }
}

/// The score folders under `predictions`, in the job's `method.scores` order, then the others in
/// [`ScoreKind::ALL`] order. Empty for a single-score run.
pub fn find_scores(job: &Job, predictions: &Path) -> Vec<ScoreKind> {
    let rest = ScoreKind::ALL
        .into_iter()
        .filter(|k| !job.method.scores.contains(k));
    job.method
        .scores
        .iter()
        .copied()
        .chain(rest)
        .filter(|k| predictions.join(k.as_str()).is_dir())
        .collect()
}

/// One row of the comparison.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScoreRow {
    pub score: ScoreKind,
    pub ap: f64,
    pub auroc: f64,
    pub fpr95: f64,
    pub fpr_at_tpr90_seed: f64,
    pub aupr_seed: f64,
    pub prediction_dtype: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smiyc: Option<super::smiyc::BinnedMetrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<super::components::ComponentMetrics>,
    /// This score's full results, relative to the comparison's folder.
    pub results: PathBuf,
}

/// The comparison's `results.json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    pub dataset: &'static str,
    pub split: Option<String>,
    pub mode: Mode,
    pub frames: usize,
    pub pixels: super::PixelCounts,
    /// `run_id` and `checkpoint` of the run that wrote the maps: the numbers hold for that checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<serde_json::Value>,
    pub scores: Vec<ScoreRow>,
}

/// What [`run_compare`] did.
pub enum CompareOutcome {
    /// A single-score run, evaluated as before.
    Single(Box<EvalSummary>),
    Several {
        comparison: Comparison,
        per_score: Vec<(ScoreKind, EvalSummary)>,
        written: Vec<PathBuf>,
    },
}

/// Evaluates every score found under `predictions` (or only `only`) and compares them.
pub fn run_compare(
    job: &Job,
    predictions: &Path,
    output: &Path,
    opts: &EvalOptions,
    only: Option<ScoreKind>,
) -> Result<CompareOutcome, CompareError> {
    let found = find_scores(job, predictions);
    if found.is_empty() {
        // A single-score run: its maps sit in `predictions` itself.
        if let Some(k) = only {
            if job.method.scores != [k] {
                return Err(CompareError::NoScore {
                    score: k,
                    path: predictions.to_path_buf(),
                    found: format!(
                        "the maps of one score ({})",
                        job.method
                            .scores
                            .first()
                            .copied()
                            .unwrap_or(ScoreKind::Maskomaly)
                    ),
                });
            }
        }
        let single = EvalOptions {
            score_name: job
                .method
                .scores
                .first()
                .map_or(opts.score_name, |k| k.as_str()),
            ..opts.clone()
        };
        return Ok(CompareOutcome::Single(Box::new(run_eval(
            job,
            predictions,
            output,
            &single,
        )?)));
    }
    let kinds = match only {
        Some(k) if found.contains(&k) => vec![k],
        Some(k) => {
            return Err(CompareError::NoScore {
                score: k,
                path: predictions.to_path_buf(),
                found: found
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
        None => found,
    };
    let mut per_score = Vec::with_capacity(kinds.len());
    for &kind in &kinds {
        let sub = EvalOptions {
            print_summary: false,
            // The reference's overlays assume scores in [0, 1]; the run's own heatmaps show the
            // others through their fixed display mapping.
            overlays: opts.overlays && kind.display_range(1) == (0.0, 1.0),
            manifest_dir: Some(
                opts.manifest_dir
                    .clone()
                    .unwrap_or_else(|| predictions.to_path_buf()),
            ),
            score_name: kind.as_str(),
            ..opts.clone()
        };
        log::info!("evaluating {kind}");
        let s = run_eval(
            job,
            &predictions.join(kind.as_str()),
            &output.join(kind.as_str()),
            &sub,
        )
        .map_err(|source| CompareError::Eval {
            score: kind,
            source,
        })?;
        per_score.push((kind, s));
    }
    let first = &per_score[0].1.results;
    let comparison = Comparison {
        dataset: first.dataset,
        split: first.split.clone(),
        mode: first.mode,
        frames: first.frames,
        pixels: first.pixels,
        run: first.run.clone(),
        scores: per_score.iter().map(|(k, s)| row(*k, &s.results)).collect(),
    };
    let mut written = write_comparison(output, &comparison, &per_score)?;
    if opts.report {
        let items = crate::dataset::list(&job.dataset).map_err(EvalError::from)?;
        let scores: Vec<super::html::CompareScore> = per_score
            .iter()
            .map(|(k, s)| super::html::CompareScore {
                results: &s.results,
                data: &s.report,
                frames: &s.per_frame,
                page: Some(format!("{k}/report.html")),
            })
            .collect();
        written.extend(super::html::write_comparison_report(
            &super::html::ReportInput {
                out: output,
                predictions,
                items: &items,
                overlays: false,
            },
            &scores,
        )?);
    }
    if opts.print_summary {
        print!("{}", table(&comparison));
    }
    Ok(CompareOutcome::Several {
        comparison,
        per_score,
        written,
    })
}

fn row(score: ScoreKind, r: &EvalResults) -> ScoreRow {
    ScoreRow {
        score,
        ap: r.ap,
        auroc: r.auroc,
        fpr95: r.fpr95,
        fpr_at_tpr90_seed: r.fpr_at_tpr90_seed,
        aupr_seed: r.aupr_seed,
        prediction_dtype: r.prediction_dtype.clone(),
        smiyc: r.smiyc,
        components: r.components.clone(),
        results: Path::new(score.as_str()).join("results.json"),
    }
}

/// `100·x` with two decimals, `nan` as Python spells it.
fn pct(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else {
        format!("{:.2}", 100.0 * x)
    }
}

/// The columns of the table and the CSV: (header, CSV name, value of a row).
type Column = (&'static str, &'static str, fn(&ScoreRow) -> Option<f64>);

fn columns(c: &Comparison) -> Vec<Column> {
    let mut cols: Vec<Column> = vec![
        ("AP", "ap", |r| Some(r.ap)),
        ("AUROC", "auroc", |r| Some(r.auroc)),
        ("FPR95", "fpr95", |r| Some(r.fpr95)),
        ("FPR@TPR>.9 seed", "fpr_at_tpr90_seed", |r| {
            Some(r.fpr_at_tpr90_seed)
        }),
        ("AUPR seed", "aupr_seed", |r| Some(r.aupr_seed)),
    ];
    if c.scores.iter().any(|r| r.smiyc.is_some()) {
        cols.push(("SMIYC AP", "smiyc_ap", |r| r.smiyc.as_ref().map(|b| b.ap)));
        cols.push(("SMIYC FPR95", "smiyc_fpr95", |r| {
            r.smiyc.as_ref().map(|b| b.fpr95)
        }));
    }
    if c.scores.iter().any(|r| r.components.is_some()) {
        cols.push(("sIoU gt", "siou_gt", |r| {
            r.components.as_ref().map(|m| m.siou_gt)
        }));
        cols.push(("PPV", "ppv", |r| r.components.as_ref().map(|m| m.ppv)));
        cols.push(("mean F1", "mean_f1", |r| {
            r.components.as_ref().map(|m| m.mean_f1)
        }));
    }
    cols
}

/// Where the numbers come from, for the table's header: the checkpoint file and its SHA-256.
fn checkpoint_line(c: &Comparison) -> String {
    let ck = c.run.as_ref().and_then(|r| r.get("checkpoint"));
    let path = ck
        .and_then(|c| c.get("path"))
        .and_then(|p| p.as_str())
        .unwrap_or("unknown (no manifest.json next to the predictions)");
    let sha = ck
        .and_then(|c| c.get("sha256"))
        .and_then(|s| s.as_str())
        .map(|s| format!(", sha256 {}", &s[..s.len().min(12)]))
        .unwrap_or_default();
    format!("checkpoint: {path}{sha}")
}

/// The comparison table printed on stdout: percentages, one row per score.
pub fn table(c: &Comparison) -> String {
    let cols = columns(c);
    let mut s = format!(
        "{} ({} mode): {} frames, {} pixels evaluated ({} anomaly); {}\n",
        c.dataset,
        match c.mode {
            Mode::Total => "total",
            Mode::Image => "image",
        },
        c.frames,
        c.pixels.evaluated,
        c.pixels.positives,
        checkpoint_line(c)
    );
    s += &format!("  {:<10}", "score");
    for (h, _, _) in &cols {
        s += &format!(" {h:>w$}", w = h.len().max(7));
    }
    s += "\n";
    for r in &c.scores {
        s += &format!("  {:<10}", r.score.as_str());
        for (h, _, f) in &cols {
            let v = f(r).map(pct).unwrap_or_else(|| "-".into());
            s += &format!(" {v:>w$}", w = h.len().max(7));
        }
        s += "\n";
    }
    s
}

/// `comparison.csv`: fractions in [0, 1] as in `results.json`, one row per score.
pub fn comparison_csv(c: &Comparison) -> String {
    let cols = columns(c);
    let mut s = String::from("score");
    for (_, name, _) in &cols {
        s += &format!(",{name}");
    }
    s += ",prediction_dtype\n";
    for r in &c.scores {
        s += r.score.as_str();
        for (_, _, f) in &cols {
            s += ",";
            if let Some(v) = f(r) {
                s += &if v.is_nan() {
                    "nan".to_string()
                } else {
                    format!("{v}")
                };
            }
        }
        s += &format!(",{}\n", r.prediction_dtype);
    }
    s
}

/// `per_frame.csv` of a comparison: one row per frame, each score's AP, AUROC, FPR95 and best F1
/// (fractions; empty where a frame has no value, e.g. AP without anomaly pixels).
pub fn per_frame_csv(per_score: &[(ScoreKind, EvalSummary)]) -> String {
    let mut s = String::from("index,stem,positives,ignored");
    for (k, _) in per_score {
        s += &format!(",ap_{k},auroc_{k},fpr95_{k},best_f1_{k}");
    }
    s += "\n";
    let n = per_score
        .iter()
        .map(|(_, e)| e.per_frame.len())
        .min()
        .unwrap_or(0);
    let num = |x: Option<f64>| match x {
        Some(x) if x.is_nan() => "nan".to_string(),
        Some(x) => format!("{x}"),
        None => String::new(),
    };
    for i in 0..n {
        let f0 = &per_score[0].1.per_frame[i];
        let stem = if f0.stem.contains([',', '"', '\n']) {
            format!("\"{}\"", f0.stem.replace('"', "\"\""))
        } else {
            f0.stem.clone()
        };
        s += &format!("{},{stem},{},{}", f0.index, f0.positives, f0.ignored);
        for (_, e) in per_score {
            let f = &e.per_frame[i];
            let m = f.metrics;
            s += &format!(
                ",{},{},{},{}",
                num(super::html::picks::frame_ap(f)),
                num(m.map(|m| m.auroc)),
                num(m.map(|m| m.fpr95)),
                num(Some(f.best_f1))
            );
        }
        s += "\n";
    }
    s
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CompareError> {
    crate::output::write_bytes_atomic(path, bytes).map_err(|e| CompareError::Write {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

fn write_comparison(
    out: &Path,
    c: &Comparison,
    per_score: &[(ScoreKind, EvalSummary)],
) -> Result<Vec<PathBuf>, CompareError> {
    let json = out.join("results.json");
    let text = serde_json::to_string_pretty(c).map_err(|e| CompareError::Write {
        path: json.clone(),
        source: e.into(),
    })?;
    write_file(&json, format!("{text}\n").as_bytes())?;
    let csv = out.join("comparison.csv");
    write_file(&csv, comparison_csv(c).as_bytes())?;
    let frames = out.join("per_frame.csv");
    write_file(&frames, per_frame_csv(per_score).as_bytes())?;
    let mut written = vec![json, csv, frames];
    written.extend(write_curves(out, per_score)?);
    Ok(written)
}

/// One curve of one score, with its legend.
pub type Series = (ScoreKind, String, Curve);

/// One curve per score on one chart, each score in its own colour ([`score_colour`]).
pub fn curves_chart<'a>(
    title: &'a str,
    axes: (&'a str, &'a str),
    series: &'a [Series],
) -> Chart<'a> {
    Chart::curves(
        title,
        axes,
        series
            .iter()
            .map(|(kind, legend, points)| Line {
                colour: score_colour(kind.as_str()),
                legend: legend.clone(),
                points,
                fill: false,
            })
            .collect(),
    )
}

/// `pr_curves.png` and `roc_curves.png`: every score's pooled curve on one plot each.
fn write_curves(
    out: &Path,
    per_score: &[(ScoreKind, EvalSummary)],
) -> Result<Vec<PathBuf>, CompareError> {
    const SIZE: (u32, u32) = (760, 560);
    let mut written = Vec::new();
    let plots: [(&str, &str, (&str, &str), bool); 2] = [
        (
            "pr_curves.png",
            "Precision-recall",
            ("recall", "precision"),
            true,
        ),
        (
            "roc_curves.png",
            "ROC",
            ("false positive rate", "true positive rate"),
            false,
        ),
    ];
    for (name, title, axes, pr) in plots {
        let path = out.join(name);
        let series: Vec<Series> = per_score
            .iter()
            .map(|(k, s)| {
                let (curve, legend) = if pr {
                    (&s.curves.0, format!("{k} (AP {}%)", pct(s.results.ap)))
                } else {
                    (
                        &s.curves.1,
                        format!("{k} (AUROC {}%)", pct(s.results.auroc)),
                    )
                };
                (*k, legend, curve.clone())
            })
            .collect();
        let mut chart = curves_chart(title, axes, &series);
        chart.diagonal = !pr;
        let buf = chart.rgb(SIZE).map_err(|e| CompareError::Write {
            path: path.clone(),
            source: e.into(),
        })?;
        let img = image::RgbImage::from_raw(SIZE.0, SIZE.1, buf).expect("buffer matches size");
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, image::ImageFormat::Png)
            .map_err(|e| CompareError::Write {
                path: path.clone(),
                source: e.into(),
            })?;
        write_file(&path, bytes.get_ref())?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comparison() -> Comparison {
        let r = |score, ap| ScoreRow {
            score,
            ap,
            auroc: 0.5,
            fpr95: f64::NAN,
            fpr_at_tpr90_seed: 0.25,
            aupr_seed: 0.125,
            prediction_dtype: "float32".into(),
            smiyc: None,
            components: None,
            results: PathBuf::from("x/results.json"),
        };
        Comparison {
            dataset: "road_anomaly",
            split: None,
            mode: Mode::Total,
            frames: 2,
            pixels: Default::default(),
            run: Some(serde_json::json!({
                "checkpoint": {"path": "/models/model_final_17c1ee.pkl", "sha256": "0123456789abcdef"}
            })),
            scores: vec![r(ScoreKind::Rba, 0.5), r(ScoreKind::Entropy, 0.0625)],
        }
    }

    #[test]
    fn table_and_csv_hold_one_row_per_score() {
        let c = comparison();
        let t = table(&c);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(
            lines[0].contains("model_final_17c1ee.pkl") && lines[0].contains("0123456789ab"),
            "{t}"
        );
        assert!(lines[2].trim_start().starts_with("rba") && lines[2].contains("50.00"));
        assert!(lines[3].contains("6.25") && lines[3].contains("nan"), "{t}");
        let csv = comparison_csv(&c);
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(
            rows[0],
            "score,ap,auroc,fpr95,fpr_at_tpr90_seed,aupr_seed,prediction_dtype"
        );
        assert_eq!(rows[1], "rba,0.5,0.5,nan,0.25,0.125,float32");
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn scores_are_found_by_folder_in_job_order() {
        let d = tempfile::tempdir().unwrap();
        let mut job = Job::default();
        assert!(find_scores(&job, d.path()).is_empty());
        for k in ["entropy", "rba", "maskomaly"] {
            std::fs::create_dir_all(d.path().join(k)).unwrap();
        }
        std::fs::write(d.path().join("eam"), b"a file, not a score folder").unwrap();
        job.method.scores = vec![ScoreKind::Rba, ScoreKind::Maskomaly];
        assert_eq!(
            find_scores(&job, d.path()),
            [ScoreKind::Rba, ScoreKind::Maskomaly, ScoreKind::Entropy]
        );
    }

    #[test]
    fn curves_of_every_score_share_one_plot() {
        let series = vec![
            (
                ScoreKind::Rba,
                "rba".to_string(),
                vec![(0.0, 1.0), (1.0, 0.2)],
            ),
            (
                ScoreKind::Maskomaly,
                "maskomaly".to_string(),
                vec![(0.0, 0.2), (1.0, 1.0)],
            ),
        ];
        let buf = curves_chart("PR", ("recall", "precision"), &series)
            .rgb((400, 300))
            .unwrap();
        let has =
            |c: plotters::style::RGBColor| buf.chunks(3).filter(|p| p == &[c.0, c.1, c.2]).count();
        assert!(has(score_colour("rba")) > 100);
        assert!(has(score_colour("maskomaly")) > 100);
        assert_eq!(has(score_colour("eam")), 0);
    }
}
