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

mod gallery;
mod svg;

use super::metrics::Histogram;
use super::report::{pct, write_atomic, write_err};
use super::{EvalError, EvalResults, FrameResult};
use crate::dataset::Item;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Thresholds `i / THRESHOLDS` of the reference's best-F1 search (`eval.py: get_best_f1`).
pub const THRESHOLDS: usize = 100;

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
        ("evaluated", crate::provenance::manifest::now_rfc3339()),
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
    h += &svg::curves_section(&input.scores);
    h += &gallery::gallery_section(input, &mut written)?;
    h += &frames_section(input);
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

/// The "Frames" section: one sortable table per score.
fn frames_section(input: &ReportInput) -> String {
    let mut h = String::new();
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
            let fp = gallery::fp_area(s, i, t_index);
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
                if input.out.join(&heat).is_file() && input.out.join(&mark).is_file() {
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
    h
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
    use super::svg::tests::hist;
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
    fn escaping_and_references() {
        assert_eq!(esc("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
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
        let t = metrics_table(&[("maskomaly", &r)]);
        assert!(t.contains("published") && t.contains("70.90") && t.contains("11.90"));
        assert!(t.contains("<td>–</td>"), "NaN shown as a dash");
        r.dataset = "fs_static";
        assert!(!metrics_table(&[("maskomaly", &r)]).contains("published"));
    }
}
