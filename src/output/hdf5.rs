//! HDF5 score maps: one dataset named `value`, H×W at input resolution (the SMIYC format).
//! float16 is written with gzip level 9 as the benchmark does; float32 keeps every bit of the score.

use crate::job::H5Dtype;
use std::path::Path;

fn to_io(e: hdf5::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Writes `score` (row-major `h × w`) to `path` atomically.
pub fn write_score(
    path: &Path,
    score: &[f32],
    h: usize,
    w: usize,
    dtype: H5Dtype,
) -> std::io::Result<()> {
    super::write_atomic(path, |tmp| {
        let file = hdf5::File::create(tmp).map_err(to_io)?;
        match dtype {
            H5Dtype::Float32 => {
                let arr = ndarray::ArrayView2::from_shape((h, w), score)
                    .map_err(std::io::Error::other)?;
                file.new_dataset_builder()
                    .with_data(&arr)
                    .create("value")
                    .map_err(to_io)?;
            }
            H5Dtype::Float16 => {
                let half: Vec<half::f16> = score.iter().map(|&v| half::f16::from_f32(v)).collect();
                let arr =
                    ndarray::Array2::from_shape_vec((h, w), half).map_err(std::io::Error::other)?;
                file.new_dataset_builder()
                    .chunk((h.min(256), w.min(512)))
                    .deflate(9)
                    .with_data(&arr)
                    .create("value")
                    .map_err(to_io)?;
            }
        }
        file.close().map_err(to_io)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_float32_and_float16() {
        let d = tempfile::tempdir().unwrap();
        let score: Vec<f32> = (0..12).map(|i| i as f32 / 11.0).collect();
        let p = d.path().join("a.hdf5");
        write_score(&p, &score, 3, 4, H5Dtype::Float32).unwrap();
        let back = crate::eval::predictions::read(&p).unwrap();
        assert_eq!((back.height, back.width), (3, 4));
        assert_eq!(back.scores, score);
        let p16 = d.path().join("b.hdf5");
        write_score(&p16, &score, 3, 4, H5Dtype::Float16).unwrap();
        let back = crate::eval::predictions::read(&p16).unwrap().scores;
        for (a, b) in back.iter().zip(&score) {
            assert_eq!(*a, half::f16::from_f32(*b).to_f32());
        }
    }
}
