//! A self-contained demonstration: sample road-like images and a tiny TorchScript model that meets
//! the model contract, with no network access. Tests use the same pieces.

use crate::preprocess::Rgb8;
use std::path::Path;

/// The tiny TorchScript model (100 queries, 19 classes + void, so the default Maskomaly parameters
/// apply unchanged): mask logits are a 1×1 convolution of the 4×4-average-pooled input, class logits
/// a linear map of the image mean. Made by `scripts/make_tiny_model.py`; scripted, so any input size
/// works.
pub const TINY_MODEL: &[u8] = include_bytes!("../tests/fixtures/tiny_maskformer.pt");

/// Writes the tiny model as a TorchScript file.
pub fn write_tiny_model(path: &Path) -> std::io::Result<()> {
    crate::output::write_bytes_atomic(path, TINY_MODEL)
}

/// What a pixel of [`road_scene`] shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScenePart {
    /// The odd-coloured object (the anomaly).
    Object,
    Sky,
    LaneMark,
    Road,
}

/// The geometry of one synthetic scene.
struct Scene {
    width: usize,
    horizon: usize,
    ox: f32,
    oy: f32,
    r: f32,
}

impl Scene {
    fn new(width: usize, height: usize, seed: u32) -> Scene {
        Scene {
            width,
            horizon: height * 2 / 5,
            ox: (width as u32 * (3 + seed % 4) / 10) as f32,
            oy: (height as u32 * (6 + seed % 3) / 10) as f32,
            r: (width.min(height) as f32) * 0.08 * (1.0 + (seed % 3) as f32 * 0.3),
        }
    }

    fn part(&self, x: usize, y: usize) -> ScenePart {
        let (xf, yf) = (x as f32, y as f32);
        if ((xf - self.ox).powi(2) + (yf - self.oy).powi(2)).sqrt() < self.r {
            ScenePart::Object
        } else if y < self.horizon {
            ScenePart::Sky
        } else if (x as i64 - self.width as i64 / 2).abs() < (self.width / 80).max(1) as i64
            && (y / 12) % 2 == 0
        {
            ScenePart::LaneMark
        } else {
            ScenePart::Road
        }
    }
}

/// A synthetic road scene: sky gradient, grey road with lane marks, and an odd-coloured object.
pub fn road_scene(width: usize, height: usize, seed: u32) -> Rgb8 {
    let scene = Scene::new(width, height, seed);
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let px = match scene.part(x, y) {
                ScenePart::Object => [230, 40 + (seed * 37 % 150) as u8, 200],
                ScenePart::Sky => {
                    let t = y as f32 / scene.horizon as f32;
                    [(90.0 + 80.0 * t) as u8, (140.0 + 60.0 * t) as u8, 235]
                }
                ScenePart::LaneMark => [240, 240, 240],
                ScenePart::Road => {
                    let n = ((x * 13 + y * 7 + seed as usize) % 11) as u8;
                    [95 + n, 95 + n, 100 + n]
                }
            };
            data.extend(px);
        }
    }
    Rgb8 {
        width,
        height,
        data,
    }
}

/// Anomaly labels of [`road_scene`], row-major: 1 on the object, 0 on the road and its lane marks,
/// 255 (ignored) on the sky.
pub fn road_scene_labels(width: usize, height: usize, seed: u32) -> Vec<u8> {
    let scene = Scene::new(width, height, seed);
    let mut labels = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            labels.push(match scene.part(x, y) {
                ScenePart::Object => 1,
                ScenePart::Sky => 255,
                ScenePart::LaneMark | ScenePart::Road => 0,
            });
        }
    }
    labels
}

/// Saves an RGB image by extension (`jpg`, `png`, ...).
pub fn save_rgb(img: &Rgb8, path: &Path) -> image::ImageResult<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    image::RgbImage::from_raw(img.width as u32, img.height as u32, img.data.clone())
        .expect("buffer matches size")
        .save(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_the_scene() {
        let (w, h) = (64, 48);
        for seed in 0..4 {
            let img = road_scene(w, h, seed);
            let labels = road_scene_labels(w, h, seed);
            assert_eq!(labels.len(), w * h);
            let object = [230, 40 + (seed * 37 % 150) as u8, 200];
            for (i, &l) in labels.iter().enumerate() {
                let px = &img.data[i * 3..i * 3 + 3];
                assert_eq!(l == 1, px == object, "pixel {i}");
            }
            assert!(labels.contains(&0) && labels.contains(&1) && labels.contains(&255));
        }
    }
}
