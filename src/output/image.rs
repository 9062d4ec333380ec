//! Images people look at: the score as 16-bit greyscale PNG and the JET heatmap overlay.

use crate::preprocess::Rgb8;
use image::{codecs::png::PngEncoder, ExtendedColorType, ImageEncoder};
use std::path::Path;

/// `round(score × 65535)` as a 16-bit greyscale PNG (scores are clamped to [0, 1]).
pub fn write_png16(path: &Path, score: &[f32], h: usize, w: usize) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(score.len() * 2);
    for &v in score {
        let q = (v.clamp(0.0, 1.0) as f64 * 65535.0).round() as u16;
        bytes.extend_from_slice(&q.to_ne_bytes()); // the encoder takes native-endian samples
    }
    encode_png(path, &bytes, w, h, ExtendedColorType::L16)
}

fn encode_png(
    path: &Path,
    raw: &[u8],
    w: usize,
    h: usize,
    color: ExtendedColorType,
) -> std::io::Result<()> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(raw, w as u32, h as u32, color)
        .map_err(std::io::Error::other)?;
    super::write_bytes_atomic(path, &out)
}

/// An 8-bit greyscale PNG (segmentation trainIds).
pub fn write_gray8(path: &Path, data: &[u8], h: usize, w: usize) -> std::io::Result<()> {
    encode_png(path, data, w, h, ExtendedColorType::L8)
}

/// The JET colour map at `v` in [0, 1] as RGB.
pub fn jet(v: f32) -> [u8; 3] {
    let f = |x: f32| ((1.5 - x.abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    let t = 4.0 * v.clamp(0.0, 1.0);
    [f(t - 3.0), f(t - 2.0), f(t - 1.0)]
}

/// JET colours of `uint8(score × 255)` blended 50/50 with the image, as the reference's `_heat.png`.
pub fn heatmap(score: &[f32], img: &Rgb8) -> Vec<u8> {
    let lut: Vec<[u8; 3]> = (0..256).map(|i| jet(i as f32 / 255.0)).collect();
    let mut out = Vec::with_capacity(img.data.len());
    for (i, &s) in score.iter().enumerate() {
        // numpy's astype(uint8) truncates.
        let c = lut[(s.clamp(0.0, 1.0) * 255.0) as usize];
        for k in 0..3 {
            let v = 0.5 * c[k] as f32 + 0.5 * img.data[i * 3 + k] as f32;
            out.push(v.round() as u8);
        }
    }
    out
}

pub fn write_heatmap(path: &Path, score: &[f32], img: &Rgb8) -> std::io::Result<()> {
    encode_png(
        path,
        &heatmap(score, img),
        img.width,
        img.height,
        ExtendedColorType::Rgb8,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png16_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.png");
        write_png16(&p, &[0.0, 0.5, 1.0, 0.25], 2, 2).unwrap();
        let img = image::open(&p).unwrap().into_luma16();
        assert_eq!(img.into_raw(), vec![0, 32768, 65535, 16384]);
    }

    #[test]
    fn jet_ends_and_middle() {
        assert_eq!(jet(0.0), [0, 0, 128]);
        assert_eq!(jet(1.0), [128, 0, 0]);
        assert_eq!(jet(0.5), [128, 255, 128]);
    }
}
