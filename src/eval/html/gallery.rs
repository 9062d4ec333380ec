//! The report's gallery: per score, the frames with the lowest AP and with the largest
//! false-positive area, each as image | label | score heat map | thresholded overlay (PNG
//! thumbnails in `report/`).

use super::svg::{score_range, tick};
use super::{cell_pct, esc, hex, thousands, ReportInput, ScoreInput, THRESHOLDS};
use crate::dataset::{self, Item, Label};
use crate::eval::report::{pct, save_rgb};
use crate::eval::{EvalError, FrameResult};
use crate::output::image::jet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Frames per gallery list.
const GALLERY_FRAMES: usize = 3;
/// Largest thumbnail, in pixels.
const THUMB: (u32, u32) = (400, 300);

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
pub(super) const LABEL_RGB: [[u8; 3]; 3] = [[71, 85, 105], [245, 158, 11], [226, 232, 240]];
/// Overlay colours: true positive, false positive, missed anomaly.
pub(super) const OVERLAY_RGB: [[u8; 3]; 3] = [[34, 197, 94], [239, 68, 68], [59, 130, 246]];

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
    let pred = crate::eval::predictions::read(&frame.prediction)?;
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
pub(super) fn fp_area(s: &ScoreInput, frame: usize, t: usize) -> f64 {
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

/// The "Gallery" section; the pictures it shows are added to `written`.
pub(super) fn gallery_section(
    input: &ReportInput,
    written: &mut Vec<PathBuf>,
) -> Result<String, EvalError> {
    let mut h = String::new();
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
                let thumbs = write_thumbs(
                    input.out, s.name, f.index, item, f, range, threshold, &mut shown,
                )?;
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
                            let p = input.out.join(src);
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
    Ok(h)
}
