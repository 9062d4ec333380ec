//! The page itself: a model of everything it shows, prepared beforehand (pictures written, plots
//! drawn), and its HTML from maud templates, which escape every interpolated value. Rendering reads
//! and writes no file.

use maud::{html, Markup, PreEscaped, DOCTYPE};

/// A term and its value in one of the identity cards.
pub struct Row {
    pub term: String,
    pub value: String,
    pub mono: bool,
}

/// A column of the metrics table.
pub struct Column {
    pub name: &'static str,
    pub title: Option<&'static str>,
    /// Lower is better (false-positive rates).
    pub lower_is_better: bool,
}

/// A row of the metrics table: a score's measured values, or published figures.
pub struct MetricsRow {
    pub name: String,
    /// `#rrggbb` of the score.
    pub colour: Option<String>,
    /// Fractions; `None` where the row has no such value.
    pub values: Vec<Option<f64>>,
    /// Quoted figures, not measured here: never marked best.
    pub published: bool,
}

pub struct MetricsTable {
    pub columns: Vec<Column>,
    pub rows: Vec<MetricsRow>,
}

impl MetricsTable {
    /// Per column, the best measured value (`None` when no measured row has a number).
    pub fn best(&self) -> Vec<Option<f64>> {
        (0..self.columns.len())
            .map(|c| {
                let values = self
                    .rows
                    .iter()
                    .filter(|r| !r.published)
                    .filter_map(|r| r.values.get(c).copied().flatten())
                    .filter(|v| !v.is_nan());
                if self.columns[c].lower_is_better {
                    values.min_by(f64::total_cmp)
                } else {
                    values.max_by(f64::total_cmp)
                }
            })
            .collect()
    }
}

/// A picture of the gallery.
pub struct Figure {
    /// Relative to the page.
    pub src: String,
    pub caption: String,
    pub alt: String,
    /// `#rrggbb` of the score the picture belongs to, for its caption's swatch.
    pub colour: Option<String>,
}

/// One frame of a gallery list.
pub struct GalleryRow {
    pub caption: String,
    /// Empty: the pictures could not be made (`missing` says why).
    pub figures: Vec<Figure>,
    pub missing: Option<String>,
}

pub struct GalleryList {
    pub title: String,
    pub rows: Vec<GalleryRow>,
}

/// The gallery of one score, or of all scores side by side.
pub struct GallerySection {
    pub title: String,
    pub colour: Option<String>,
    pub note: String,
    /// Show the JET colour bar after the note.
    pub colour_bar: bool,
    pub lists: Vec<GalleryList>,
}

/// A cell of the frame table.
pub struct Cell {
    pub text: String,
    /// Sort key (`data-v`): a number, or empty to sort last; `None`: the text.
    pub sort: Option<String>,
    /// Links shown instead of the text: (label, href).
    pub links: Vec<(String, String)>,
    pub stem: bool,
}

pub struct FrameTable {
    pub title: String,
    pub note: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// Everything the page shows.
pub struct Page {
    pub title: String,
    pub subtitle: String,
    pub identity: Vec<Row>,
    pub evaluation: Vec<Row>,
    pub table: MetricsTable,
    pub table_note: String,
    /// Each score's own page: (score, href, colour).
    pub score_pages: Vec<(String, String, String)>,
    /// Inline `<svg>` elements from the chart engine.
    pub plots: Vec<String>,
    pub plots_note: String,
    /// Label and overlay colour keys: (text, `#rrggbb`).
    pub label_keys: Vec<(String, String)>,
    pub overlay_keys: Vec<(String, String)>,
    pub gallery: Vec<GallerySection>,
    pub frames: FrameTable,
    /// Files beside the page: (label, href).
    pub files: Vec<(String, String)>,
    pub version: String,
}

/// A percentage for a table cell, `–` for NaN or no value.
pub fn cell_pct(x: Option<f64>) -> String {
    match x {
        Some(x) if !x.is_nan() => format!("{:.2}", 100.0 * x),
        _ => "–".into(),
    }
}

fn swatch(colour: &str) -> Markup {
    html! { i.sw style={ "background:" (colour) } {} }
}

/// The metrics table: one row per score, the best value of each column marked, published rows last.
pub fn metrics_table(t: &MetricsTable) -> Markup {
    let best = t.best();
    let measured = t.rows.iter().filter(|r| !r.published).count();
    html! {
        table.metrics {
            thead { tr {
                th { "score" }
                @for c in &t.columns { th title=[c.title] { (c.name) } }
            } }
            tbody {
                @for r in &t.rows {
                    tr class=[r.published.then_some("ref")] {
                        th scope="row" {
                            @if let Some(c) = &r.colour { (swatch(c)) }
                            (r.name)
                        }
                        @for (i, v) in r.values.iter().enumerate() {
                            @let is_best = !r.published && measured > 1
                                && v.is_some_and(|v| Some(v) == best[i]);
                            td class=[is_best.then_some("best")] title=[is_best.then_some("best of this column")] {
                                (cell_pct(*v))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A page holding only the metrics table, styled as the report (the README's picture of it).
pub fn metrics_page(t: &MetricsTable) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "metrics" }
                style { (PreEscaped(CSS)) "main{max-width:1000px;padding:12px}" }
            }
            body { main { (metrics_table(t)) } }
        }
    }
    .into_string()
}

fn dl(rows: &[Row]) -> Markup {
    html! {
        dl { @for r in rows {
            dt { (r.term) }
            dd class=[r.mono.then_some("mono")] { (r.value) }
        } }
    }
}

fn gallery(sections: &[GallerySection]) -> Markup {
    html! {
        @for s in sections {
            h3 {
                @if let Some(c) = &s.colour { (swatch(c)) }
                (s.title)
            }
            p.note {
                (s.note)
                @if s.colour_bar { " " span.bar {} }
            }
            @for l in &s.lists {
                h4 { (l.title) }
                @if l.rows.is_empty() { p.note { "No frame qualifies." } }
                @for r in &l.rows {
                    div.frame-row {
                        p.cap { (r.caption) }
                        @if let Some(why) = &r.missing { p.note { (why) } }
                        @if !r.figures.is_empty() {
                            div class=(if r.figures.len() > 4 { "strip many" } else { "strip" }) {
                                @for f in &r.figures {
                                    figure {
                                        img src=(f.src) alt=(f.alt);
                                        figcaption {
                                            @if let Some(c) = &f.colour { (swatch(c)) }
                                            (f.caption)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn frame_table(t: &FrameTable) -> Markup {
    html! {
        h3 { (t.title) " " span.note { (t.note) } }
        div.scroll {
            table.frames {
                thead { tr { @for (i, c) in t.columns.iter().enumerate() { th class=[(i == 1).then_some("stem")] { (c) } } } }
                tbody {
                    @for r in &t.rows {
                        tr { @for c in r {
                            @if c.stem {
                                td.stem title=(c.text) { (c.text) }
                            } @else if !c.links.is_empty() {
                                td { @for (i, (label, href)) in c.links.iter().enumerate() {
                                    @if i > 0 { " · " }
                                    a href=(href) { (label) }
                                } }
                            } @else {
                                td data-v=[c.sort.as_deref()] { (c.text) }
                            }
                        } }
                    }
                }
            }
        }
    }
}

/// The whole page.
pub fn render(p: &Page) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (p.title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header { div."in" {
                    h1 { "maskomaly evaluation" }
                    span.sub { (p.subtitle) }
                    nav {
                        a href="#metrics" { "metrics" }
                        a href="#curves" { "curves" }
                        a href="#gallery" { "gallery" }
                        a href="#frames" { "frames" }
                    }
                } }
                main {
                    h2 id="run" { "Run" }
                    div.idgrid {
                        div.card { (dl(&p.identity)) }
                        div.card { (dl(&p.evaluation)) }
                    }
                    h2 id="metrics" { "Metrics" }
                    (metrics_table(&p.table))
                    p.note { (p.table_note) }
                    @if !p.score_pages.is_empty() {
                        p.pages {
                            "Each score's own page: "
                            @for (i, (name, href, colour)) in p.score_pages.iter().enumerate() {
                                @if i > 0 { " · " }
                                (swatch(colour))
                                a href=(href) { (name) }
                            }
                        }
                    }
                    h2 id="curves" { "Curves" }
                    div.plots { @for svg in &p.plots { div.card { (PreEscaped(svg)) } } }
                    p.note { (p.plots_note) }
                    h2 id="gallery" { "Gallery" }
                    div.keys {
                        span { "label:" }
                        @for (text, c) in &p.label_keys { span { (swatch(c)) (text) } }
                        span.gap { "overlay:" }
                        @for (text, c) in &p.overlay_keys { span { (swatch(c)) (text) } }
                    }
                    (gallery(&p.gallery))
                    h2 id="frames" { "Frames" }
                    (frame_table(&p.frames))
                    footer {
                        "Written by maskomaly " (p.version) " · beside this page: "
                        @for (i, (label, href)) in p.files.iter().enumerate() {
                            @if i > 0 { ", " }
                            a href=(href) { (label) }
                        }
                    }
                }
                script { (PreEscaped(SORT_JS)) }
            }
        }
    }
    .into_string()
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
table.metrics td.best{font-weight:700;color:#065f46;background:#ecfdf5}
tr.ref th,tr.ref td{color:var(--muted);font-style:italic;font-weight:400;white-space:normal}
.note{color:var(--muted);font-size:12.5px;margin:6px 0 0}
.pages{margin:10px 0 0}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
.plots .card{padding:6px}
svg{width:100%;height:auto;display:block}
.frame-row{margin:0 0 14px}
.frame-row .cap{margin:0 0 6px;font-weight:600}
.strip{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:8px}
.strip.many{grid-template-columns:repeat(auto-fit,minmax(136px,1fr));gap:6px}
figure{margin:0;background:#fff;border:1px solid var(--line);border-radius:6px;padding:4px}
figure img{width:100%;height:auto;max-height:240px;object-fit:contain;display:block;border-radius:3px}
figcaption{font-size:12px;color:var(--muted);padding:3px 2px 0}
.keys{display:flex;flex-wrap:wrap;gap:14px;font-size:12.5px;color:var(--muted);margin:4px 0 10px}
.keys .gap{margin-left:12px}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;vertical-align:-1px;margin-right:4px;border:1px solid #cbd5e1}
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(names: &[&str]) -> MetricsTable {
        MetricsTable {
            columns: vec![
                Column {
                    name: "AP",
                    title: None,
                    lower_is_better: false,
                },
                Column {
                    name: "FPR95",
                    title: Some("false-positive rate <at> TPR 95%"),
                    lower_is_better: true,
                },
            ],
            rows: names
                .iter()
                .enumerate()
                .map(|(i, n)| MetricsRow {
                    name: n.to_string(),
                    colour: Some("#d62728".into()),
                    values: vec![Some(0.1 * (i + 1) as f64), Some(0.1 * (i + 1) as f64)],
                    published: false,
                })
                .collect(),
        }
    }

    #[test]
    fn text_is_escaped_and_the_best_of_each_column_marked() {
        let t = table(&["a<b>&\"c'", "rba"]);
        let h = metrics_table(&t).into_string();
        assert!(h.contains("a&lt;b&gt;&amp;&quot;c'"), "{h}");
        assert!(!h.contains("<b>"), "{h}");
        assert!(h.contains("&lt;at&gt;"), "attribute escaped: {h}");
        // AP: the higher (rba, 20.00) is best; FPR95: the lower (10.00).
        assert!(
            h.contains(r#"<td class="best" title="best of this column">20.00</td>"#),
            "{h}"
        );
        assert!(
            h.contains(r#"<td class="best" title="best of this column">10.00</td>"#),
            "{h}"
        );
        assert_eq!(h.matches("class=\"best\"").count(), 2);
        // One score: nothing to compare, nothing marked.
        assert!(!metrics_table(&table(&["maskomaly"]))
            .into_string()
            .contains("best"));
    }

    #[test]
    fn published_rows_are_never_best() {
        let mut t = table(&["maskomaly", "rba"]);
        t.rows.push(MetricsRow {
            name: "published".into(),
            colour: None,
            values: vec![Some(0.99), Some(0.0)],
            published: true,
        });
        assert_eq!(t.best(), [Some(0.2), Some(0.1)]);
        let h = metrics_table(&t).into_string();
        assert!(h.contains("<tr class=\"ref\">"), "{h}");
    }
}
