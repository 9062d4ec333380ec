//! HDF5 score maps: one dataset named `value`, H×W at input resolution (the SMIYC format).
//! float16 is written with gzip level 9 as the benchmark does; float32 keeps every bit of the score.
//! [`read_score`] is the one reader of these files (evaluation and `verify --rerun` use it).

use super::{StoredDtype, StoredScore};
use crate::job::H5Dtype;
use std::path::Path;

/// HDF5 reports errors as text; a full disk is recognised by its message so that the run stops
/// on it as on any other write error that will recur.
fn to_io(e: hdf5::Error) -> std::io::Error {
    let text = e.to_string();
    let kind = if text.contains("No space left") || text.contains("Disk quota") {
        std::io::ErrorKind::StorageFull
    } else {
        std::io::ErrorKind::Other
    };
    std::io::Error::new(kind, text)
}

/// Creates an HDF5 file. HDF5 takes UTF-8 paths only: a folder whose name is not UTF-8 is reached
/// through a descriptor of it (`/proc/self/fd/N/NAME`; temporary names are always UTF-8). The
/// descriptor is returned and must outlive the file.
fn create(path: &Path) -> std::io::Result<(hdf5::File, Option<std::fs::File>)> {
    if path.to_str().is_some() {
        return Ok((hdf5::File::create(path).map_err(to_io)?, None));
    }
    use std::os::fd::AsRawFd;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(std::io::Error::other(format!(
            "HDF5 cannot write {}: its file name is not UTF-8",
            path.display()
        )));
    };
    let dir = std::fs::File::open(dir)?;
    let via = format!("/proc/self/fd/{}/{name}", dir.as_raw_fd());
    Ok((hdf5::File::create(&via).map_err(to_io)?, Some(dir)))
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
        let (file, _dir) = create(tmp)?;
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

/// A score map file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the `value` dataset of {path}")]
    Hdf5 {
        path: std::path::PathBuf,
        #[source]
        source: hdf5::Error,
    },
    #[error("`value` of {path} is {dtype}, not float32 or float16")]
    Dtype {
        path: std::path::PathBuf,
        dtype: String,
    },
}

/// Reads the `value` dataset of a score map file (float32 or float16).
pub fn read_score(path: &Path) -> Result<StoredScore, ReadError> {
    use hdf5::types::{FloatSize, TypeDescriptor};
    let err = |source| ReadError::Hdf5 {
        path: path.to_path_buf(),
        source,
    };
    let file = hdf5::File::open(path).map_err(err)?;
    let ds = file.dataset("value").map_err(err)?;
    let desc = ds.dtype().and_then(|t| t.to_descriptor()).map_err(err)?;
    let (values, dtype) = match desc {
        TypeDescriptor::Float(FloatSize::U4) => {
            (ds.read_raw::<f32>().map_err(err)?, StoredDtype::Float32)
        }
        TypeDescriptor::Float(FloatSize::U2) => (
            ds.read_raw::<half::f16>()
                .map_err(err)?
                .into_iter()
                .map(f32::from)
                .collect(),
            StoredDtype::Float16,
        ),
        other => {
            return Err(ReadError::Dtype {
                path: path.to_path_buf(),
                dtype: other.to_string(),
            })
        }
    };
    Ok(StoredScore {
        shape: ds.shape(),
        values,
        dtype,
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
        let back = read_score(&p).unwrap();
        assert_eq!(back.shape, [3, 4]);
        assert_eq!(back.dtype, StoredDtype::Float32);
        assert_eq!(back.values, score);
        let p16 = d.path().join("b.hdf5");
        write_score(&p16, &score, 3, 4, H5Dtype::Float16).unwrap();
        let back = read_score(&p16).unwrap();
        assert_eq!(back.dtype, StoredDtype::Float16);
        let back = back.values;
        for (a, b) in back.iter().zip(&score) {
            assert_eq!(*a, half::f16::from_f32(*b).to_f32());
        }
    }

    #[test]
    fn other_types_are_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("i.hdf5");
        let f = hdf5::File::create(&p).unwrap();
        f.new_dataset::<i32>()
            .shape([1, 2])
            .create("value")
            .unwrap()
            .write_raw(&[1, 2])
            .unwrap();
        drop(f);
        let e = read_score(&p).unwrap_err();
        assert!(matches!(e, ReadError::Dtype { .. }), "{e}");
        assert!(e.to_string().contains("i.hdf5"), "{e}");
        let missing = read_score(&d.path().join("none.hdf5")).unwrap_err();
        assert!(std::error::Error::source(&missing).is_some());
    }

    #[test]
    fn folders_and_names_that_are_not_utf8_are_written() {
        use std::os::unix::ffi::OsStringExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d
            .path()
            .join(std::ffi::OsString::from_vec(b"sub\xfe".to_vec()));
        let p = dir.join(std::ffi::OsString::from_vec(b"x\xff.hdf5".to_vec()));
        write_score(&p, &[0.25, 0.5], 1, 2, H5Dtype::Float16).unwrap();
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [p.file_name().unwrap()], "no temporary file left");
        // Read back through a UTF-8 name.
        let plain = d.path().join("copy.hdf5");
        std::fs::copy(&p, &plain).unwrap();
        assert_eq!(read_score(&plain).unwrap().values, [0.25, 0.5]);
    }
}
