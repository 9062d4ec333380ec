//! The report's plots as inline SVG: PR and ROC curves of every score, and each score's
//! distribution over anomaly and inlier pixels (log scale).

use super::{esc, ScoreInput};
use crate::eval::metrics::Histogram;
use crate::eval::report::pct;
use std::fmt::Write as _;

/// Points per plotted curve.
const CURVE_POINTS: usize = 600;
/// Bars of the score distribution.
const DIST_BINS: usize = 40;
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];
const ANOMALY_COLOR: &str = "#f59e0b";
const INLIER_COLOR: &str = "#3b82f6";

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
pub(super) fn tick(v: f64) -> String {
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
pub(super) fn score_range(pooled: &Histogram) -> (f32, f32) {
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

/// Points of a line, in data units.
type Curve = Vec<(f64, f64)>;

/// Share of anomaly and of inlier pixels in each of [`DIST_BINS`] equal bins over the score range.
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

/// The "Curves" section: PR, ROC, and one distribution per score.
pub(super) fn curves_section(scores: &[ScoreInput]) -> String {
    let mut h = String::new();
    h += "<h2 id=\"curves\">Curves</h2><div class=\"plots\">";
    let color = |i: usize| PALETTE[i % PALETTE.len()].to_string();
    let (mut pr, mut roc) = (Vec::new(), Vec::new());
    for (i, s) in scores.iter().enumerate() {
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
    for s in scores {
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
    h
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::eval::metrics::Bin;

    /// A histogram from (score, anomaly pixels, inlier pixels) bins.
    pub(in crate::eval::html) fn hist(bins: &[(f32, u64, u64)]) -> Histogram {
        Histogram::from_bins(
            bins.iter()
                .map(|&(score, pos, neg)| Bin { score, pos, neg })
                .collect(),
        )
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
}
