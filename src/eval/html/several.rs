//! The page of several scores (`<eval>/report.html` of a multi-score run): every score's metrics
//! and curves, the frames where the scores disagree most with every score side by side, and a
//! per-frame table with one column per score.

use super::gallery::{ScoreView, Thumbnails};
use super::page::{cell_pct, FrameTable, GalleryList, GallerySection};
use super::picks::{self, frame_ap, Key, Smallest};
use super::{
    base_page, num_cell, pct_cell, stem_cell, thousands, write_page, CompareScore, ReportInput,
    ScoreData,
};
use crate::eval::report::write_err;
use crate::eval::{EvalError, EvalResults, FrameResult};
use std::cmp::Reverse;
use std::path::PathBuf;

/// Frames of the gallery (those where the scores disagree most).
const DISAGREE_FRAMES: usize = 4;

/// The spread of the frame's AP over the scores (best − worst), when at least two scores have one.
fn ap_spread(frames: &[&FrameResult]) -> Option<f64> {
    let aps: Vec<f64> = frames.iter().filter_map(|f| frame_ap(f)).collect();
    if aps.len() < 2 {
        return None;
    }
    let max = aps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = aps.iter().copied().fold(f64::INFINITY, f64::min);
    Some(max - min)
}

/// Writes the page of several scores (`<eval>/report.html`) and its pictures; returns the files
/// written.
pub fn write_comparison_report(
    input: &ReportInput,
    scores: &[CompareScore],
) -> Result<Vec<PathBuf>, EvalError> {
    let out = input.out;
    let page_path = out.join("report.html");
    if scores.is_empty() {
        return Ok(Vec::new());
    }
    let pairs: Vec<(&EvalResults, &ScoreData)> =
        scores.iter().map(|s| (s.results, s.data)).collect();
    let mut page = base_page(input, &pairs).map_err(|e| write_err(&page_path, e))?;
    page.score_pages = scores
        .iter()
        .filter_map(|s| {
            s.page
                .clone()
                .map(|href| (s.data.name.clone(), href, s.data.colour()))
        })
        .collect();

    // The frames where the scores disagree most, chosen with bounded heaps.
    let n = scores.iter().map(|s| s.frames.len()).min().unwrap_or(0);
    let row_of = |i: usize| -> Vec<&FrameResult> { scores.iter().map(|s| &s.frames[i]).collect() };
    let mut gallery_pick = Smallest::new(DISAGREE_FRAMES);
    let mut table_pick = Smallest::new(2 * picks::TABLE_ROWS);
    for i in 0..n {
        if let Some(spread) = ap_spread(&row_of(i)) {
            gallery_pick.push((Reverse(Key(spread)), i));
            table_pick.push((Reverse(Key(spread)), i));
        }
    }
    let all = n <= 2 * picks::TABLE_ROWS;
    let table_frames: Vec<usize> = if all {
        (0..n).collect()
    } else {
        table_pick.sorted().into_iter().map(|x| x.1).collect()
    };

    let mut thumbs = Thumbnails::new(out)?;
    let mut rows = Vec::new();
    for &(Reverse(Key(spread)), i) in gallery_pick.sorted() {
        let frames = row_of(i);
        let Some(item) = input.items.get(frames[0].index) else {
            continue;
        };
        let views: Vec<ScoreView> = scores
            .iter()
            .zip(&frames)
            .map(|(s, f)| s.data.view(&f.prediction))
            .collect();
        let mut row = thumbs.frame(frames[0].index, item, &frames[0].stem, &views)?;
        row.caption = format!(
            "#{} {} · AP spread {} points: {}",
            frames[0].index,
            frames[0].stem,
            cell_pct(Some(spread)),
            scores
                .iter()
                .zip(&frames)
                .map(|(s, f)| format!("{} {}%", s.data.name, cell_pct(frame_ap(f))))
                .collect::<Vec<_>>()
                .join(" · ")
        );
        rows.push(row);
    }
    page.gallery.push(GallerySection {
        title: "All scores side by side".into(),
        colour: None,
        note: "The frames where the scores' AP differ most (best minus worst score). Heat maps \
               over each score's own range; overlays at each score's best-F1 threshold over i/100 \
               on the pooled pixels. Score colours:"
            .into(),
        colour_bar: true,
        lists: vec![GalleryList {
            title: "Largest disagreement".into(),
            rows,
        }],
    });

    let mut columns: Vec<String> = ["#", "frame", "anomaly px"].map(String::from).to_vec();
    columns.extend(scores.iter().map(|s| format!("AP {}", s.data.name)));
    columns.push("AP spread".into());
    let mut table_rows = Vec::with_capacity(table_frames.len());
    for i in table_frames {
        let frames = row_of(i);
        let f = frames[0];
        let mut cells = vec![
            num_cell(f.index.to_string(), f.index as f64),
            stem_cell(&f.stem),
            num_cell(thousands(f.positives), f.positives as f64),
        ];
        cells.extend(frames.iter().map(|f| pct_cell(frame_ap(f))));
        cells.push(pct_cell(ap_spread(&frames)));
        table_rows.push(cells);
    }
    page.frames = FrameTable {
        title: "All scores".into(),
        note: format!(
            "(click a column to sort; {}; every frame is in per_frame.csv)",
            if all {
                format!("all {n} frames")
            } else {
                format!(
                    "the {} frames of {n} where the scores' AP differ most",
                    2 * picks::TABLE_ROWS
                )
            }
        ),
        columns,
        rows: table_rows,
    };
    page.files = [
        "results.json",
        "comparison.csv",
        "per_frame.csv",
        "pr_curves.png",
        "roc_curves.png",
    ]
    .map(|f| (f.to_string(), f.to_string()))
    .to_vec();
    let mut written = thumbs.written;
    write_page(out, &page, &mut written)?;
    Ok(written)
}
