//! Reading the runner's score maps back as predictions (through the HDF5 and `.npy` readers of
//! [`crate::output`]), and finding the file of an item in either output layout.

use crate::job::{Job, Layout};
use crate::output::{StoredDtype, StoredScore};
use std::path::{Path, PathBuf};

/// Storage type of a prediction file. Float16 quantises scores and creates ties, so the results say
/// which one they were computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PredDtype {
    Float32,
    Float16,
}

/// One score map, row-major, widened to f32 (exact for float16).
#[derive(Debug, Clone)]
pub struct Prediction {
    pub width: usize,
    pub height: usize,
    pub scores: Vec<f32>,
    pub dtype: PredDtype,
}

#[derive(Debug, thiserror::Error)]
pub enum PredictionError {
    #[error("no prediction for item `{stem}`; looked for {tried}")]
    Missing { stem: String, tried: String },
    #[error("cannot read prediction {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("prediction {path} has unsupported shape {shape:?} (expected H×W)")]
    Shape { path: PathBuf, shape: Vec<usize> },
    #[error("prediction {path} has unsupported type {dtype} (expected float32 or float16)")]
    Dtype { path: PathBuf, dtype: String },
}

/// Candidate files for an item, most specific first: the job's own layout, then the other formats
/// the runner and the Fishyscapes benchmark write.
pub fn candidates(job: &Job, root: &Path, stem: &Path) -> Vec<PathBuf> {
    let smiyc = root
        .join("anomaly_p")
        .join(&job.name)
        .join(crate::dataset::smiyc::dataset_name(job.dataset.kind))
        .join(stem.file_name().unwrap_or(stem.as_os_str()))
        .with_extension("hdf5");
    let with = |suffix: &str| {
        let mut s = root.join(stem).into_os_string();
        s.push(suffix);
        PathBuf::from(s)
    };
    let mut v = vec![with(".hdf5"), with(".npy"), with("_anomaly.npy")];
    match job.output.layout {
        Layout::Smiyc => v.insert(0, smiyc),
        Layout::Flat => v.push(smiyc),
    }
    v
}

/// Finds the prediction file of an item.
pub fn locate(job: &Job, root: &Path, stem: &Path) -> Result<PathBuf, PredictionError> {
    let c = candidates(job, root, stem);
    c.iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| PredictionError::Missing {
            stem: stem.display().to_string(),
            tried: c
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Reads a prediction by its extension (`.npy`, else HDF5).
pub fn read(path: &Path) -> Result<Prediction, PredictionError> {
    if path.extension().is_some_and(|e| e == "npy") {
        read_npy(path)
    } else {
        read_hdf5(path)
    }
}

/// Drops unit axes: the benchmark's reader squeezes, and writers sometimes add a channel axis.
fn squeeze(path: &Path, shape: &[usize]) -> Result<(usize, usize), PredictionError> {
    let dims: Vec<usize> = shape.iter().copied().filter(|&d| d != 1).collect();
    match (dims.len(), shape.len()) {
        (2, _) => Ok((dims[0], dims[1])),
        // A 1×W or H×1 map keeps its one real axis.
        (1, 2) => Ok((shape[0], shape[1])),
        _ => Err(PredictionError::Shape {
            path: path.to_path_buf(),
            shape: shape.to_vec(),
        }),
    }
}

/// Reads an HDF5 score map ([`crate::output::hdf5::read_score`]).
pub fn read_hdf5(path: &Path) -> Result<Prediction, PredictionError> {
    use crate::output::hdf5::{read_score, ReadError};
    let stored = read_score(path).map_err(|e| match e {
        ReadError::Dtype { dtype, .. } => PredictionError::Dtype {
            path: path.to_path_buf(),
            dtype,
        },
        ReadError::Hdf5 { source, .. } => PredictionError::Read {
            path: path.to_path_buf(),
            message: source.to_string(),
        },
    })?;
    prediction(path, stored)
}

/// Reads a `.npy` score map ([`crate::output::npy::read_score`]).
pub fn read_npy(path: &Path) -> Result<Prediction, PredictionError> {
    use crate::output::npy::{read_score, ReadError};
    let stored = read_score(path).map_err(|e| match e {
        ReadError::Dtype { dtype, .. } => PredictionError::Dtype {
            path: path.to_path_buf(),
            dtype,
        },
        ReadError::Format { message, .. } => PredictionError::Read {
            path: path.to_path_buf(),
            message,
        },
    })?;
    prediction(path, stored)
}

/// A stored map as a prediction: unit axes dropped, the storage type kept.
fn prediction(path: &Path, stored: StoredScore) -> Result<Prediction, PredictionError> {
    let (height, width) = squeeze(path, &stored.shape)?;
    Ok(Prediction {
        width,
        height,
        scores: stored.values,
        dtype: match stored.dtype {
            StoredDtype::Float32 => PredDtype::Float32,
            StoredDtype::Float16 => PredDtype::Float16,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::DatasetKind;

    #[test]
    fn npy_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.npy");
        crate::output::npy::write_f32(&p, &[0.0, 0.5, 1.0, 0.25, 0.75, 0.125], &[2, 3]).unwrap();
        let r = read(&p).unwrap();
        assert_eq!((r.height, r.width, r.dtype), (2, 3, PredDtype::Float32));
        assert_eq!(r.scores[4], 0.75);
    }

    #[test]
    fn hdf5_float16_and_float32_are_read() {
        let d = tempfile::tempdir().unwrap();
        let p16 = d.path().join("a.hdf5");
        let f = hdf5::File::create(&p16).unwrap();
        let v: Vec<half::f16> = [0.1f32, 0.2, 0.3, 0.4]
            .iter()
            .map(|&x| half::f16::from_f32(x))
            .collect();
        f.new_dataset::<half::f16>()
            .shape((1, 2, 2))
            .create("value")
            .unwrap()
            .write_raw(&v)
            .unwrap();
        drop(f);
        let r = read(&p16).unwrap();
        assert_eq!((r.height, r.width, r.dtype), (2, 2, PredDtype::Float16));
        assert_eq!(r.scores[1], f32::from(half::f16::from_f32(0.2)));

        let p32 = d.path().join("b.hdf5");
        let f = hdf5::File::create(&p32).unwrap();
        f.new_dataset::<f32>()
            .shape((2, 1))
            .create("value")
            .unwrap()
            .write_raw(&[0.5f32, 0.25])
            .unwrap();
        drop(f);
        let r = read(&p32).unwrap();
        assert_eq!(
            (r.height, r.width, r.dtype, r.scores.clone()),
            (2, 1, PredDtype::Float32, vec![0.5, 0.25])
        );
    }

    #[test]
    fn wrong_files_are_errors_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.npy");
        std::fs::write(&p, b"garbage").unwrap();
        assert!(read(&p).unwrap_err().to_string().contains("x.npy"));
        let h = d.path().join("y.hdf5");
        std::fs::write(&h, b"garbage").unwrap();
        assert!(read(&h).unwrap_err().to_string().contains("y.hdf5"));
    }

    #[test]
    fn smiyc_layout_path_is_found() {
        let d = tempfile::tempdir().unwrap();
        let mut job = Job {
            name: "m".into(),
            ..Default::default()
        };
        job.dataset.kind = DatasetKind::SmiycAnomaly;
        job.output.layout = Layout::Smiyc;
        let p = d
            .path()
            .join("anomaly_p/m/AnomalyTrack-all/validation0000.hdf5");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"").unwrap();
        assert_eq!(
            locate(&job, d.path(), Path::new("validation0000")).unwrap(),
            p
        );
        let err = locate(&job, d.path(), Path::new("validation0001"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("validation0001.hdf5"), "{err}");
    }
}
