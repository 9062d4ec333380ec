//! The evaluation's one chart engine: the same drawing code makes the PNG plots (bitmap backend)
//! and the report's inline SVG (SVG backend), and every score has one fixed colour in both.
//!
//! Text is measured and, in PNGs, drawn with the embedded DejaVu Sans ([`register_font`]); in SVG it
//! stays text (`<text>` elements), so the page can be searched and read by assistive technology.

use crate::eval::metrics::Histogram;
use crate::job::ScoreKind;
use plotters::coord::Shift;
use plotters::prelude::*;

/// The colour of a score, the same on every plot, picture and page; names that are not scores
/// get slate grey.
pub fn score_colour(name: &str) -> RGBColor {
    match ScoreKind::from_name(name) {
        Some(ScoreKind::Maskomaly) => RGBColor(214, 39, 40),
        Some(ScoreKind::Rba) => RGBColor(31, 119, 180),
        Some(ScoreKind::Eam) => RGBColor(44, 160, 44),
        Some(ScoreKind::Energy) => RGBColor(255, 127, 14),
        Some(ScoreKind::Msp) => RGBColor(148, 103, 189),
        Some(ScoreKind::Entropy) => RGBColor(140, 86, 75),
        None => RGBColor(100, 116, 139),
    }
}

/// Anomaly pixels in the score distributions.
pub const ANOMALY: RGBColor = RGBColor(245, 158, 11);
/// Inlier pixels in the score distributions.
pub const INLIER: RGBColor = RGBColor(59, 130, 246);
const AXIS: RGBColor = RGBColor(100, 116, 139);
const GRID: RGBColor = RGBColor(226, 232, 240);

/// `#rrggbb`, as CSS and SVG write it.
pub fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// Registers the embedded DejaVu Sans as plotters' `sans-serif`, once: plots need no system font.
pub fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(
            "sans-serif",
            plotters::style::FontStyle::Normal,
            dejavu::sans::regular(),
        )
        .is_err()
        {
            log::warn!("embedded font rejected; plot text will be missing");
        }
    });
}

/// One line of a chart.
pub struct Line<'a> {
    pub colour: RGBColor,
    pub legend: String,
    pub points: &'a [(f64, f64)],
    /// Filled down to the bottom of the chart (distributions).
    pub fill: bool,
}

/// A chart: lines over a rectangle of data units, with a legend.
pub struct Chart<'a> {
    pub title: &'a str,
    /// (x, y) axis descriptions.
    pub axes: (&'a str, &'a str),
    pub x: (f64, f64),
    pub y: (f64, f64),
    pub lines: Vec<Line<'a>>,
    /// A grey chance line from (0, 0) to (1, 1) (ROC).
    pub diagonal: bool,
    /// Legend in the lower right (curves) or the upper middle (distributions).
    pub legend_low: bool,
    /// The y values are `log10` of the shown values (labels read `10^y`).
    pub log_y: bool,
}

/// Short tick text: up to 3 significant decimals, no trailing zeros.
pub fn tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn log_tick(e: f64) -> String {
    match e.round() as i32 {
        _ if (e - e.round()).abs() > 1e-9 => format!("1e{e:.1}"),
        0 => "1".into(),
        -1 => "0.1".into(),
        -2 => "0.01".into(),
        e => format!("1e{e}"),
    }
}

impl<'a> Chart<'a> {
    /// A PR or ROC chart over [0, 1] × [0, 1.02].
    pub fn curves(title: &'a str, axes: (&'a str, &'a str), lines: Vec<Line<'a>>) -> Chart<'a> {
        Chart {
            title,
            axes,
            x: (0.0, 1.0),
            y: (0.0, 1.02),
            lines,
            diagonal: false,
            legend_low: true,
            log_y: false,
        }
    }

    /// Draws the chart on any plotters backend.
    pub fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        register_font();
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let span = |(a, z): (f64, f64)| if z > a { (a, z) } else { (a, a + 1.0) };
        let (x, y) = (span(self.x), span(self.y));
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(62)
            .build_cartesian_2d(x.0..x.1, y.0..y.1)
            .map_err(e)?;
        let x_fmt = |v: &f64| tick(*v);
        let y_fmt = |v: &f64| if self.log_y { log_tick(*v) } else { tick(*v) };
        let y_labels = if self.log_y {
            ((y.1 - y.0).round() as usize + 1).max(2)
        } else {
            6
        };
        chart
            .configure_mesh()
            .x_desc(self.axes.0)
            .y_desc(self.axes.1)
            .x_labels(6)
            .y_labels(y_labels)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style(("sans-serif", 15).into_font().color(&AXIS))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .axis_style(AXIS)
            .draw()
            .map_err(e)?;
        if self.diagonal {
            chart
                .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], AXIS.mix(0.6)))
                .map_err(e)?;
        }
        for l in &self.lines {
            let c = l.colour;
            let points = l
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite());
            let drawn = if l.fill {
                chart
                    .draw_series(
                        AreaSeries::new(points, y.0, c.mix(0.28)).border_style(c.stroke_width(2)),
                    )
                    .map_err(e)?
            } else {
                chart
                    .draw_series(LineSeries::new(points, c.stroke_width(2)))
                    .map_err(e)?
            };
            drawn.label(l.legend.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
            });
        }
        if !self.lines.is_empty() {
            chart
                .configure_series_labels()
                .position(if self.legend_low {
                    SeriesLabelPosition::LowerRight
                } else {
                    SeriesLabelPosition::UpperMiddle
                })
                .label_font(("sans-serif", 15))
                .background_style(WHITE.mix(0.9))
                .border_style(AXIS)
                .draw()
                .map_err(e)?;
        }
        root.present().map_err(e)?;
        Ok(())
    }

    /// The chart as an RGB buffer of `w`×`h` pixels.
    pub fn rgb(&self, (w, h): (u32, u32)) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            self.draw(&root)?;
        }
        Ok(buf)
    }

    /// The chart as a standalone `<svg>` element of `w`×`h` user units.
    pub fn svg(&self, (w, h): (u32, u32)) -> Result<String, String> {
        let mut s = String::new();
        {
            let root = SVGBackend::with_string(&mut s, (w, h)).into_drawing_area();
            self.draw(&root)?;
        }
        Ok(s)
    }
}

/// Bars of the score distribution.
pub const DIST_BINS: usize = 40;

/// The range the heat maps and distributions span: [0, 1] when every score lies in it, else the
/// run's own range.
pub fn score_range(pooled: &Histogram) -> (f32, f32) {
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

/// The anomaly and the inlier step lines of a distribution.
pub type Steps = (Vec<(f64, f64)>, Vec<(f64, f64)>);

/// A score's distribution over anomaly and inlier pixels: the share of each class's pixels in each
/// of [`DIST_BINS`] equal bins over `range`.
#[derive(Debug, Clone, Default)]
pub struct Distribution {
    pub range: (f32, f32),
    pub anomaly: Vec<f64>,
    pub inlier: Vec<f64>,
}

impl Distribution {
    pub fn new(pooled: &Histogram, range: (f32, f32)) -> Distribution {
        let (lo, hi) = range;
        let (mut pos, mut neg) = (vec![0u64; DIST_BINS], vec![0u64; DIST_BINS]);
        let width = (hi - lo) as f64;
        for b in pooled.bins() {
            let f = ((b.score - lo) as f64 / width * DIST_BINS as f64).floor();
            let i = (f.max(0.0) as usize).min(DIST_BINS - 1);
            pos[i] += b.pos;
            neg[i] += b.neg;
        }
        let shares = |c: &[u64]| {
            let total = c.iter().sum::<u64>().max(1) as f64;
            c.iter().map(|&n| n as f64 / total).collect()
        };
        Distribution {
            range,
            anomaly: shares(&pos),
            inlier: shares(&neg),
        }
    }

    /// The two classes as step lines of `log10(share)` (floored), and that floor: a log scale, so
    /// that the few inliers with high scores (the false positives) show.
    pub fn log_steps(&self) -> (Steps, f64) {
        let smallest = self
            .anomaly
            .iter()
            .chain(&self.inlier)
            .copied()
            .filter(|&v| v > 0.0)
            .fold(1.0f64, f64::min);
        let floor = smallest.log10().floor().clamp(-7.0, -1.0);
        let (lo, hi) = (self.range.0 as f64, self.range.1 as f64);
        let n = self.anomaly.len().max(1) as f64;
        let steps = |shares: &[f64]| {
            let mut pts = Vec::with_capacity(2 * shares.len());
            for (i, &s) in shares.iter().enumerate() {
                let y = if s > 0.0 { s.log10().max(floor) } else { floor };
                pts.push((lo + (hi - lo) * i as f64 / n, y));
                pts.push((lo + (hi - lo) * (i + 1) as f64 / n, y));
            }
            pts
        };
        ((steps(&self.anomaly), steps(&self.inlier)), floor)
    }

    /// The distribution chart of score `name`; `steps` from [`Distribution::log_steps`].
    pub fn chart<'a>(&self, title: &'a str, steps: &'a Steps, floor: f64) -> Chart<'a> {
        Chart {
            title,
            axes: ("score", "share of the class's pixels (log)"),
            x: (self.range.0 as f64, self.range.1 as f64),
            y: (floor, 0.0),
            lines: vec![
                Line {
                    colour: ANOMALY,
                    legend: "anomaly".into(),
                    points: &steps.0,
                    fill: true,
                },
                Line {
                    colour: INLIER,
                    legend: "inlier".into(),
                    points: &steps.1,
                    fill: true,
                },
            ],
            diagonal: false,
            legend_low: false,
            log_y: true,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::eval::metrics::Bin;

    /// A histogram from (score, anomaly pixels, inlier pixels) bins.
    pub(crate) fn hist(bins: &[(f32, u64, u64)]) -> Histogram {
        Histogram::from_bins(
            bins.iter()
                .map(|&(score, pos, neg)| Bin { score, pos, neg })
                .collect(),
        )
    }

    #[test]
    fn distribution_shares_sum_to_one_per_class() {
        let h = hist(&[(1.0, 3, 0), (0.51, 1, 1), (0.0, 0, 6)]);
        let d = Distribution::new(&h, score_range(&h));
        let sum = |v: &[f64]| v.iter().sum::<f64>();
        assert!((sum(&d.anomaly) - 1.0).abs() < 1e-12 && (sum(&d.inlier) - 1.0).abs() < 1e-12);
        // Score 1.0 falls in the last bin, 0.0 in the first.
        assert_eq!(*d.anomaly.last().unwrap(), 0.75);
        assert!((d.inlier[0] - 6.0 / 7.0).abs() < 1e-12);
        // Scores outside [0, 1] span their own range.
        assert_eq!(
            score_range(&hist(&[(3.0, 1, 0), (-1.0, 0, 1)])),
            (-1.0, 3.0)
        );
    }

    /// The PNG and the SVG come from one drawing: the score's colour is the same in both, whatever
    /// the score's position among the lines, and its name is text in the SVG.
    #[test]
    fn png_and_svg_draw_each_score_in_its_own_colour() {
        let up = [(0.0, 0.2), (1.0, 1.0)];
        let down = [(0.0, 1.0), (1.0, 0.2)];
        for order in [["maskomaly", "rba"], ["rba", "maskomaly"]] {
            let lines = order
                .iter()
                .zip([&up[..], &down[..]])
                .map(|(name, points)| Line {
                    colour: score_colour(name),
                    legend: format!("{name} (AP 50%)"),
                    points,
                    fill: false,
                })
                .collect();
            let chart = Chart::curves("PR", ("recall", "precision"), lines);
            let buf = chart.rgb((400, 300)).unwrap();
            let has = |c: RGBColor| buf.chunks(3).filter(|p| p == &[c.0, c.1, c.2]).count();
            let svg = chart.svg((400, 300)).unwrap();
            for name in order {
                let c = score_colour(name);
                assert!(has(c) > 100, "{name} not drawn in the PNG");
                assert!(
                    svg.to_ascii_lowercase().contains(&hex(c)),
                    "{name} not drawn in its colour in the SVG"
                );
                assert!(
                    svg.contains(&format!("{name} (AP 50%)")),
                    "{name} not named"
                );
            }
            assert_eq!(has(score_colour("eam")), 0);
        }
        assert_ne!(score_colour("maskomaly"), score_colour("rba"));
    }

    #[test]
    fn plot_text_is_rendered_with_the_embedded_font() {
        let (w, h) = (400u32, 300u32);
        let chart = Chart::curves(
            "Precision-recall",
            ("recall", "precision"),
            vec![Line {
                colour: score_colour("maskomaly"),
                legend: "AP".into(),
                points: &[(0.0, 1.0), (1.0, 0.5)],
                fill: false,
            }],
        );
        let buf = chart.rgb((w, h)).unwrap();
        // The caption band (above the plot area) holds nothing but the title: it must have ink.
        let caption_ink = (0..30u32)
            .flat_map(|y| (0..w).map(move |x| (y, x)))
            .filter(|&(y, x)| buf[((y * w + x) * 3) as usize] < 128)
            .count();
        assert!(
            caption_ink > 50,
            "title not drawn ({caption_ink} dark pixels)"
        );
    }
}
