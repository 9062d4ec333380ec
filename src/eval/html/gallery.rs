//! The gallery's pictures, written before the page is built: per frame the image and its label,
//! and per score the score heat map and the thresholded overlay (PNG thumbnails in `report/`).
//! Images are decoded as the run decoded them ([`crate::eval::report::read_image`]: EXIF
//! orientation applied), so the pictures line up with the maps.

use super::page::{Figure, GalleryRow};
use crate::dataset::{self, Item, Label};
use crate::eval::chart::hex;
use crate::eval::report::{read_image, save_rgb};
use crate::eval::EvalError;
use crate::output::image::jet;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Largest thumbnail, in pixels.
const THUMB: (u32, u32) = (400, 300);

/// Label colours: inlier, anomaly, ignored.
pub const LABEL_RGB: [[u8; 3]; 3] = [[71, 85, 105], [245, 158, 11], [226, 232, 240]];
/// Overlay colours: true positive, false positive, missed anomaly.
pub const OVERLAY_RGB: [[u8; 3]; 3] = [[34, 197, 94], [239, 68, 68], [59, 130, 246]];

pub fn rgb_hex(c: [u8; 3]) -> String {
    hex(plotters::style::RGBColor(c[0], c[1], c[2]))
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

/// How one score's pictures are drawn.
pub struct ScoreView<'a> {
    pub name: &'a str,
    /// The score's prediction file for this frame.
    pub prediction: &'a Path,
    /// The range the heat map spans.
    pub range: (f32, f32),
    /// The overlay's threshold (the best-F1 rule: anomaly where `score >= t` and `score > 0`).
    pub threshold: f64,
    /// `#rrggbb` of the score.
    pub colour: String,
}

/// Writes the thumbnails of the page into `<out>/report/` and remembers what it wrote.
pub struct Thumbnails<'a> {
    out: &'a Path,
    pub written: Vec<PathBuf>,
    /// Frames whose image and label thumbnails exist already.
    shown: HashSet<usize>,
}

impl<'a> Thumbnails<'a> {
    pub fn new(out: &'a Path) -> Result<Thumbnails<'a>, EvalError> {
        let dir = out.join("report");
        std::fs::create_dir_all(&dir).map_err(|e| crate::eval::report::write_err(&dir, e))?;
        Ok(Thumbnails {
            out,
            written: Vec::new(),
            shown: HashSet::new(),
        })
    }

    fn save(&mut self, rel: &str, img: image::RgbImage, nearest: bool) -> Result<(), EvalError> {
        let path = self.out.join(rel);
        if !self.written.contains(&path) {
            save_thumb(&path, img, nearest)?;
            self.written.push(path);
        }
        Ok(())
    }

    /// The pictures of frame `index` (image, label, then each score's heat map and overlay), or
    /// why there are none: an image that cannot be read or whose size differs from the maps'.
    pub fn frame(
        &mut self,
        index: usize,
        item: &Item,
        stem: &str,
        scores: &[ScoreView],
    ) -> Result<GalleryRow, EvalError> {
        let mut row = GalleryRow {
            caption: String::new(),
            figures: Vec::new(),
            missing: None,
        };
        let img = match read_image(&item.image) {
            Ok(i) => i,
            Err(e) => {
                log::warn!("report: cannot read {}: {e}", item.image.display());
                row.missing = Some(format!("Image not shown: cannot read it ({e})."));
                return Ok(row);
            }
        };
        let spec = item.label.as_ref().expect("evaluated frames have labels");
        let label: Label = dataset::read_label(spec)?;
        let (w, h) = img.dimensions();
        if (label.width, label.height) != (w as usize, h as usize) {
            row.missing = Some(format!(
                "Image not shown: it is {w}×{h}, its label {}×{}.",
                label.width, label.height
            ));
            return Ok(row);
        }
        let mut preds = Vec::with_capacity(scores.len());
        for s in scores {
            let pred = crate::eval::predictions::read(s.prediction)?;
            if (pred.width, pred.height) != (w as usize, h as usize) {
                log::warn!(
                    "report: {} is {w}×{h}, its {} prediction {}×{}: not shown",
                    item.image.display(),
                    s.name,
                    pred.width,
                    pred.height
                );
                row.missing = Some(format!(
                    "Image not shown: it is {w}×{h}, its {} map {}×{}.",
                    s.name, pred.width, pred.height
                ));
                return Ok(row);
            }
            preds.push(pred);
        }
        let image_rel = format!("report/{index:03}_image.png");
        let label_rel = format!("report/{index:03}_label.png");
        if self.shown.insert(index) {
            let mut lab = image::RgbImage::new(w, h);
            for (i, p) in lab.pixels_mut().enumerate() {
                let k = if label.ignore[i] != 0 {
                    2
                } else {
                    label.anomaly[i] as usize
                };
                p.0 = LABEL_RGB[k];
            }
            self.save(&label_rel, lab, true)?;
            self.save(&image_rel, img.clone(), false)?;
        }
        let fig = |src: String, caption: String, colour: Option<String>| Figure {
            alt: format!("{caption} of {stem}"),
            src,
            caption,
            colour,
        };
        row.figures.push(fig(image_rel, "image".into(), None));
        row.figures.push(fig(label_rel, "label".into(), None));
        let several = scores.len() > 1;
        for (s, pred) in scores.iter().zip(&preds) {
            let (heat, over) = score_pictures(&img, &label, &pred.scores, s.range, s.threshold);
            let score_rel = format!("report/{index:03}_{}_score.png", s.name);
            let over_rel = format!("report/{index:03}_{}_overlay.png", s.name);
            self.save(&score_rel, heat, false)?;
            self.save(&over_rel, over, false)?;
            let name = |what: &str| {
                if several {
                    format!("{} {what}", s.name)
                } else {
                    what.to_string()
                }
            };
            let colour = several.then(|| s.colour.clone());
            row.figures
                .push(fig(score_rel, name("score"), colour.clone()));
            row.figures.push(fig(over_rel, name("thresholded"), colour));
        }
        Ok(row)
    }
}

/// The heat map of `scores` over `range` (JET) and the overlay at `threshold` on the dimmed image:
/// found green, false positive red, missed blue, ignored pixels left dim.
fn score_pictures(
    img: &image::RgbImage,
    label: &Label,
    scores: &[f32],
    (lo, hi): (f32, f32),
    threshold: f64,
) -> (image::RgbImage, image::RgbImage) {
    let t = threshold as f32;
    let mut heat = image::RgbImage::new(img.width(), img.height());
    let mut over = img.clone();
    for (i, (hp, op)) in heat.pixels_mut().zip(over.pixels_mut()).enumerate() {
        let s = scores[i];
        let v = if s.is_finite() {
            ((s - lo) / (hi - lo) * 255.0).clamp(0.0, 255.0) as u8
        } else {
            0
        };
        hp.0 = jet(v);
        let grey = (op.0[0] as u32 * 3 + op.0[1] as u32 * 6 + op.0[2] as u32) / 10;
        let dim = [(grey * 45 / 100) as u8; 3];
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
    (heat, over)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::LabelSpec;

    /// A rotated JPEG frame: the gallery's image thumbnail is the picture the run read (EXIF
    /// orientation applied), the size its map has, so it is shown and lines up with the map.
    #[test]
    fn gallery_pictures_use_the_runs_exif_orientation() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg");
        let d = tempfile::tempdir().unwrap();
        for (index, name) in ["exif_o3.jpg", "exif_o6.jpg"].into_iter().enumerate() {
            let path = fixtures.join(name);
            let run =
                crate::preprocess::decode_file(&path, &std::fs::read(&path).unwrap()).unwrap();
            let (w, h) = (run.width, run.height);
            let label_path = d.path().join(format!("{index}_label.png"));
            image::GrayImage::new(w as u32, h as u32)
                .save(&label_path)
                .unwrap();
            let pred_path = d.path().join(format!("{index}.npy"));
            crate::output::npy::write_f32(&pred_path, &vec![0.0; w * h], &[h, w]).unwrap();
            let item = Item {
                image: path.clone(),
                stem: PathBuf::from(name),
                label: Some(LabelSpec {
                    path: label_path.clone(),
                    channel: 0,
                    anomaly: vec![1],
                    ignore: vec![255],
                }),
            };
            let mut thumbs = Thumbnails::new(d.path()).unwrap();
            let row = thumbs
                .frame(
                    index,
                    &item,
                    name,
                    &[ScoreView {
                        name: "maskomaly",
                        prediction: &pred_path,
                        range: (0.0, 1.0),
                        threshold: 0.5,
                        colour: "#d62728".into(),
                    }],
                )
                .unwrap();
            assert!(row.missing.is_none(), "{name}: {:?}", row.missing);
            let shown = image::open(d.path().join(&row.figures[0].src))
                .unwrap()
                .into_rgb8();
            assert_eq!(shown.dimensions(), (w as u32, h as u32), "{name}");
            assert!(
                shown.into_raw() == run.data,
                "{name}: not the run's picture"
            );
        }
    }
}
