//! Images people look at: the score as 16-bit greyscale PNG and the JET heatmap overlay.

use crate::preprocess::Rgb8;
use image::{codecs::png::PngEncoder, ExtendedColorType, ImageEncoder};
use std::path::Path;
use std::sync::OnceLock;

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

/// OpenCV's `COLORMAP_JET` colour of level `v` as RGB, which the reference applies for `_heat.png`
/// (dark blue → cyan → yellow → dark red). The curve is `clamp(1.5 − |4x − c|, 0, 1)` with centres
/// 3, 2, 1 for red, green and blue; OpenCV keeps its samples at `x = i/255` as float32, reads them
/// back by linear interpolation over a float32 `linspace(0, 1, 256)` (level `i` on the segment from
/// `i − 1` to `i`) and scales by 255 with round-half-to-even. The same steps here give its table
/// exactly, where rounding the curve directly differs by one level in 63 entries.
pub fn jet(v: u8) -> [u8; 3] {
    static TABLE: OnceLock<[[u8; 3]; 256]> = OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(jet_level))[v as usize]
}

fn jet_level(i: usize) -> [u8; 3] {
    let x = |k: usize| k as f32 * (1.0f32 / 255.0);
    // The curve at i/255 is (382.5 − |4i − 255c|) / 255: exact in integers, then float32.
    let y = |k: usize, c: i64| {
        ((765 - (8 * k as i64 - 510 * c).abs()).clamp(0, 510) as f64 / 510.0) as f32
    };
    let channel = |c: i64| {
        let v = if i == 0 {
            y(0, c)
        } else {
            let lo = i - 1;
            y(lo, c) + (x(i) - x(lo)) * (y(i, c) - y(lo, c)) / (x(i) - x(lo))
        };
        (v * 255.0).round_ties_even() as u8
    };
    [channel(3), channel(2), channel(1)]
}

/// JET colours of `uint8(score × 255)` blended 50/50 with the image, as the reference's `_heat.png`.
pub fn heatmap(score: &[f32], img: &Rgb8) -> Vec<u8> {
    let lut: Vec<[u8; 3]> = (0..=255).map(jet).collect();
    let mut out = Vec::with_capacity(img.data.len());
    for (i, &s) in score.iter().enumerate() {
        // numpy's astype(uint8) truncates.
        let c = lut[(s.clamp(0.0, 1.0) * 255.0) as usize];
        for (&ck, &pk) in c.iter().zip(&img.data[i * 3..i * 3 + 3]) {
            let v = 0.5 * ck as f32 + 0.5 * pk as f32;
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

    /// OpenCV's `COLORMAP_JET` (`tests/fixtures/jet/opencv_jet.rgb`, made by
    /// `scripts/make_jet_fixture.py` with opencv-python-headless 4.7.0.68).
    fn opencv_jet() -> Vec<[u8; 3]> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jet/opencv_jet.rgb");
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(bytes.len(), 256 * 3);
        bytes.chunks(3).map(|c| [c[0], c[1], c[2]]).collect()
    }

    #[test]
    fn jet_is_opencv_colormap_jet() {
        let want = opencv_jet();
        let mut differ = Vec::new();
        for v in 0..=255u8 {
            let got = jet(v);
            let w = want[v as usize];
            if got != w {
                differ.push((v, got, w));
            }
        }
        assert!(differ.is_empty(), "{differ:?}");
    }
}
