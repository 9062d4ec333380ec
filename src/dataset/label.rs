//! Decoding a label image into per-pixel anomaly and ignore flags.

use super::LabelSpec;
use std::path::PathBuf;

/// One frame's ground truth, row-major, `1` = set.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub width: usize,
    pub height: usize,
    pub anomaly: Vec<u8>,
    pub ignore: Vec<u8>,
}

impl Label {
    pub fn anomaly_pixels(&self) -> u64 {
        self.anomaly.iter().map(|&v| v as u64).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("cannot read label {path}: {message}")]
    Decode { path: PathBuf, message: String },
    #[error("label {path} has no channel {channel}")]
    Channel { path: PathBuf, channel: usize },
}

/// Reads the label image and maps the chosen channel through the spec's value sets. Images are
/// decoded to 8-bit RGB first (grey repeats its channel, palette images are expanded), which is what
/// the reference's `cv2.imread` does before it picks a channel.
pub fn read_label(spec: &LabelSpec) -> Result<Label, LabelError> {
    if spec.channel > 2 {
        return Err(LabelError::Channel {
            path: spec.path.clone(),
            channel: spec.channel,
        });
    }
    let img = image::open(&spec.path)
        .map_err(|e| LabelError::Decode {
            path: spec.path.clone(),
            message: e.to_string(),
        })?
        .into_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    // One table lookup per pixel: 1 = anomaly, 2 = ignore.
    let mut lut = [0u8; 256];
    for &v in &spec.ignore {
        lut[v as usize] = 2;
    }
    for &v in &spec.anomaly {
        lut[v as usize] = 1;
    }
    let mut anomaly = Vec::with_capacity(w * h);
    let mut ignore = Vec::with_capacity(w * h);
    for px in img.pixels() {
        let c = lut[px.0[spec.channel] as usize];
        anomaly.push((c == 1) as u8);
        ignore.push((c == 2) as u8);
    }
    Ok(Label {
        width: w,
        height: h,
        anomaly,
        ignore,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::layout::testutil;

    #[test]
    fn maps_values_of_the_chosen_channel() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l.png");
        testutil::colour(&p, 3, 1, |x, _| {
            [[255, 255, 255], [255, 102, 0], [0, 0, 0]][x as usize]
        });
        let spec = LabelSpec {
            path: p,
            channel: 1,
            anomaly: vec![102],
            ignore: vec![0],
        };
        let l = read_label(&spec).unwrap();
        assert_eq!((l.width, l.height), (3, 1));
        assert_eq!(l.anomaly, [0, 1, 0]);
        assert_eq!(l.ignore, [0, 0, 1]);
    }

    #[test]
    fn unreadable_label_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("broken.png");
        std::fs::write(&p, b"not a png").unwrap();
        let err = read_label(&LabelSpec {
            path: p,
            channel: 0,
            anomaly: vec![1],
            ignore: vec![],
        })
        .unwrap_err();
        assert!(err.to_string().contains("broken.png"), "{err}");
    }
}
