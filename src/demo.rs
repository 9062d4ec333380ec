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

/// A synthetic road scene: sky gradient, grey road with lane marks, and an odd-coloured object.
pub fn road_scene(width: usize, height: usize, seed: u32) -> Rgb8 {
    let mut data = Vec::with_capacity(width * height * 3);
    let horizon = height * 2 / 5;
    let (ox, oy) = (
        (width as u32 * (3 + seed % 4) / 10) as f32,
        (height as u32 * (6 + seed % 3) / 10) as f32,
    );
    let r = (width.min(height) as f32) * 0.08 * (1.0 + (seed % 3) as f32 * 0.3);
    for y in 0..height {
        for x in 0..width {
            let (xf, yf) = (x as f32, y as f32);
            let px = if ((xf - ox).powi(2) + (yf - oy).powi(2)).sqrt() < r {
                [230, 40 + (seed * 37 % 150) as u8, 200]
            } else if y < horizon {
                let t = y as f32 / horizon as f32;
                [(90.0 + 80.0 * t) as u8, (140.0 + 60.0 * t) as u8, 235]
            } else if (x as i64 - width as i64 / 2).abs() < (width / 80).max(1) as i64
                && (y / 12) % 2 == 0
            {
                [240, 240, 240]
            } else {
                let n = ((x * 13 + y * 7 + seed as usize) % 11) as u8;
                [95 + n, 95 + n, 100 + n]
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

/// Saves an RGB image by extension (`jpg`, `png`, ...).
pub fn save_rgb(img: &Rgb8, path: &Path) -> image::ImageResult<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    image::RgbImage::from_raw(img.width as u32, img.height as u32, img.data.clone())
        .expect("buffer matches size")
        .save(path)
}
