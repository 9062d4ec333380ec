//! Writers for one item's outputs and the run manifest. Every file is written to a temporary name in
//! its own folder and renamed into place, so a killed run never leaves a file a rerun would trust.

pub mod hdf5;
pub mod image;
pub mod manifest;
pub mod npy;

use crate::job::{DatasetKind, Job, Layout};
use crate::scores::ScoreKind;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The files one item produces, absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputPaths {
    pub hdf5: Option<PathBuf>,
    pub png: Option<PathBuf>,
    pub heatmap: Option<PathBuf>,
    pub segmentation: Option<PathBuf>,
    pub anomaly_npy: Option<PathBuf>,
    pub segmentation_npy: Option<PathBuf>,
}

impl OutputPaths {
    pub fn all(&self) -> impl Iterator<Item = &PathBuf> {
        self.hdf5
            .iter()
            .chain(self.png.iter())
            .chain(self.heatmap.iter())
            .chain(self.segmentation.iter())
            .chain(self.anomaly_npy.iter())
            .chain(self.segmentation_npy.iter())
    }
}

/// SMIYC's dataset folder name for a layout.
pub fn smiyc_dataset_name(kind: DatasetKind) -> &'static str {
    match kind {
        DatasetKind::SmiycAnomaly => "AnomalyTrack-all",
        DatasetKind::SmiycObstacle => "ObstacleTrack-all",
        other => other.as_str(),
    }
}

/// Every file one item produces: one [`OutputPaths`] per score, in the order of `method.scores`.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemPaths {
    pub scores: Vec<(ScoreKind, OutputPaths)>,
}

impl ItemPaths {
    pub fn all(&self) -> impl Iterator<Item = &PathBuf> {
        self.scores.iter().flat_map(|(_, p)| p.all())
    }
}

/// The folder a score's outputs go to: `output.root` for a single score, `output.root/<score>`
/// for each of several.
pub fn score_root(job: &Job, kind: ScoreKind) -> PathBuf {
    if job.method.scores.len() > 1 {
        job.output.root.join(kind.as_str())
    } else {
        job.output.root.clone()
    }
}

/// Where an item with relative stem `stem` writes its outputs: per score, the single-score layout
/// under [`score_root`].
pub fn paths_for(job: &Job, stem: &Path) -> ItemPaths {
    ItemPaths {
        scores: job
            .method
            .scores
            .iter()
            .map(|&k| (k, paths_under(job, &score_root(job, k), stem)))
            .collect(),
    }
}

/// The single-score layout (flat or SMIYC) of one item under `root`.
fn paths_under(job: &Job, root: &Path, stem: &Path) -> OutputPaths {
    let o = &job.output;
    let with_suffix = |suffix: &str, ext: &str| {
        let mut name = stem.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        name.push(".");
        name.push(ext);
        root.join(stem).with_file_name(name)
    };
    let hdf5 = o.hdf5.enabled.then(|| match o.layout {
        Layout::Flat => with_suffix("", "hdf5"),
        Layout::Smiyc => {
            let base = stem.file_name().unwrap_or_default();
            root.join("anomaly_p")
                .join(&job.name)
                .join(smiyc_dataset_name(job.dataset.kind))
                .join(base)
                .with_extension("hdf5")
        }
    });
    OutputPaths {
        hdf5,
        png: o.png.then(|| with_suffix("", "png")),
        heatmap: o.heatmap.then(|| with_suffix("_heat", "png")),
        segmentation: o.segmentation.then(|| with_suffix("_segmentation", "png")),
        anomaly_npy: o.npy.then(|| with_suffix("_anomaly", "npy")),
        segmentation_npy: o.npy.then(|| with_suffix("_segmentation", "npy")),
    }
}

/// A temporary sibling of `path`: hidden, unique to this process, and never a name a run reads.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// True for names made by [`temp_path`].
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// Creates `path` through `write` on a temporary sibling, fsyncs it and renames it into place. On any
/// error the temporary file is removed.
pub fn write_atomic<F>(path: &Path, write: F) -> std::io::Result<()>
where
    F: FnOnce(&Path) -> std::io::Result<()>,
{
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = temp_path(path);
    let result = write(&tmp)
        .and_then(|()| fs::File::open(&tmp)?.sync_all())
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// [`write_atomic`] for an in-memory buffer.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic(path, |tmp| {
        let mut f = fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.flush()
    })
}

/// Removes temporary files a killed run left behind under `root`.
pub fn remove_stale_temps(root: &Path) {
    for entry in walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
    {
        if entry.file_type().is_file() && entry.file_name().to_str().is_some_and(is_temp_name) {
            log::debug!("removing stale temporary file {}", entry.path().display());
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_and_smiyc_paths() {
        let mut job = Job::default();
        job.output.root = PathBuf::from("/out");
        job.output.heatmap = true;
        let p = paths_for(&job, Path::new("a/b/frame.01"))
            .scores
            .remove(0)
            .1;
        assert_eq!(p.hdf5.unwrap(), PathBuf::from("/out/a/b/frame.01.hdf5"));
        assert_eq!(p.png.unwrap(), PathBuf::from("/out/a/b/frame.01.png"));
        assert_eq!(
            p.heatmap.unwrap(),
            PathBuf::from("/out/a/b/frame.01_heat.png")
        );
        job.output.layout = Layout::Smiyc;
        job.name = "m".into();
        job.dataset.kind = DatasetKind::SmiycAnomaly;
        let p = paths_for(&job, Path::new("validation0000"))
            .scores
            .remove(0)
            .1;
        assert_eq!(
            p.hdf5.unwrap(),
            PathBuf::from("/out/anomaly_p/m/AnomalyTrack-all/validation0000.hdf5")
        );
    }

    #[test]
    fn several_scores_each_get_the_single_layout_in_their_folder() {
        let mut job = Job::default();
        job.output.root = PathBuf::from("/out");
        job.method.scores = vec![ScoreKind::Rba, ScoreKind::Maskomaly];
        let p = paths_for(&job, Path::new("a/frame"));
        assert_eq!(p.scores.len(), 2);
        assert_eq!(p.scores[0].0, ScoreKind::Rba);
        assert_eq!(
            p.scores[0].1.hdf5.as_deref(),
            Some(Path::new("/out/rba/a/frame.hdf5"))
        );
        assert_eq!(
            p.scores[1].1.png.as_deref(),
            Some(Path::new("/out/maskomaly/a/frame.png"))
        );
        let all: Vec<&PathBuf> = p.all().collect();
        assert_eq!(
            all,
            [
                &PathBuf::from("/out/rba/a/frame.hdf5"),
                &PathBuf::from("/out/rba/a/frame.png"),
                &PathBuf::from("/out/maskomaly/a/frame.hdf5"),
                &PathBuf::from("/out/maskomaly/a/frame.png"),
            ]
        );
        job.output.layout = Layout::Smiyc;
        job.name = "m".into();
        job.dataset.kind = DatasetKind::SmiycAnomaly;
        let p = paths_for(&job, Path::new("validation0000"));
        assert_eq!(
            p.scores[1].1.hdf5.as_deref(),
            Some(Path::new(
                "/out/maskomaly/anomaly_p/m/AnomalyTrack-all/validation0000.hdf5"
            ))
        );
    }

    #[test]
    fn atomic_write_leaves_no_temp_on_error() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("x.bin");
        let err = write_atomic(&target, |tmp| {
            fs::write(tmp, b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
        write_bytes_atomic(&target, b"whole").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"whole");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
