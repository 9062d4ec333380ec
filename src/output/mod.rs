//! Writers for one item's outputs and the run manifest. Every file is written to a temporary name in
//! its own folder and renamed into place, so a killed run never leaves a file a rerun would trust.

pub mod digest;
pub mod hdf5;
pub mod image;
pub mod lock;
pub mod npy;
pub mod pathtext;

use crate::job::ScoreKind;
use crate::job::{Job, Layout};
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Folder of the per-shard manifests under an output root.
pub const MANIFESTS_DIR: &str = "manifests";

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
                .join(crate::dataset::smiyc::dataset_name(job.dataset.kind))
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

/// The part of a temporary name that stands for the target's file name: the name itself when it is
/// UTF-8, else `~` and a hash of its bytes, so every temporary name is plain text (HDF5 accepts
/// only UTF-8 paths) and still tied to one target.
fn temp_key(name: &OsStr) -> OsString {
    if name.to_str().is_some() {
        return name.to_os_string();
    }
    let h = digest::sha256_hex(name.as_encoded_bytes());
    OsString::from(format!("~{}", &h[..16]))
}

/// A temporary sibling of `path`: hidden, unique to this process, and never a name a run reads:
/// `.NAME.tmp-PID` (see [`temp_key`] for NAME).
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(temp_key(path.file_name().unwrap_or_default()));
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// The target key of a name made by [`temp_path`] (`.KEY.tmp-DIGITS`), if it is one.
fn temp_target_key(name: &OsStr) -> Option<&[u8]> {
    let b = name.as_encoded_bytes().strip_prefix(b".")?;
    let at = b.windows(5).rposition(|w| w == b".tmp-")?;
    let pid = &b[at + 5..];
    (!pid.is_empty() && pid.iter().all(u8::is_ascii_digit) && at > 0).then_some(&b[..at])
}

/// True for names made by [`temp_path`].
pub fn is_temp_name(name: &OsStr) -> bool {
    temp_target_key(name).is_some()
}

/// A file being written under a temporary sibling name ([`temp_path`]): [`Staged::commit`] makes it
/// durable and moves it into place; dropped uncommitted, the temporary file is removed. The one way
/// every file of the program is written, so a killed or crashed run never leaves a half-written
/// file under a name a rerun would trust.
pub struct Staged {
    target: PathBuf,
    tmp: PathBuf,
    done: bool,
}

impl Staged {
    /// Creates the target's folder; the caller writes the file at [`Staged::path`].
    pub fn new(target: &Path) -> std::io::Result<Staged> {
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        Ok(Staged {
            target: target.to_path_buf(),
            tmp: temp_path(target),
            done: false,
        })
    }

    /// Where to write the content.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes the file to disk, renames it over the target, then flushes the folder so that the
    /// rename itself survives a power loss.
    pub fn commit(mut self) -> std::io::Result<()> {
        fs::File::open(&self.tmp)?.sync_all()?;
        fs::rename(&self.tmp, &self.target)?;
        self.done = true;
        sync_dir(self.target.parent().unwrap_or(Path::new(".")))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// fsync of a folder (its entries). File systems that cannot sync a folder say so with EINVAL;
/// there the rename is as durable as they make it.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match fs::File::open(dir)?.sync_all() {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other,
    }
}

/// Creates `path` through `write` on a temporary sibling and commits it ([`Staged`]). On any error
/// the temporary file is removed.
pub fn write_atomic<F>(path: &Path, write: F) -> std::io::Result<()>
where
    F: FnOnce(&Path) -> std::io::Result<()>,
{
    let staged = Staged::new(path)?;
    write(staged.path())?;
    staged.commit()
}

/// [`write_atomic`] for an in-memory buffer.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic(path, |tmp| {
        let mut f = fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.flush()
    })
}

/// Removes the temporary files (see [`temp_path`]) that a killed run left next to `files`, and
/// nothing else: another program's hidden files are not ours to delete, and the tasks of an array
/// share one output tree. Each folder is read once.
pub fn remove_stale_temps_of(files: impl IntoIterator<Item = PathBuf>) {
    let files: Vec<PathBuf> = files.into_iter().collect();
    remove_stale_temps_among(|| files.iter().cloned());
}

/// [`remove_stale_temps_of`] for a run's many files: `files` gives the same files each time it is
/// called (twice: for their folders, then for the temporary names found there). What is held is the
/// folders and the temporary names found, never the files, so that a million outputs cost no
/// memory; each folder is still read once.
pub fn remove_stale_temps_among<I: IntoIterator<Item = PathBuf>>(files: impl Fn() -> I) {
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    for f in files() {
        if let Some(dir) = f.parent() {
            if !dirs.contains(dir) {
                dirs.insert(dir.to_path_buf());
            }
        }
    }
    // (folder, target key) -> the temporary files for that target.
    let mut found: HashMap<(PathBuf, Vec<u8>), Vec<PathBuf>> = HashMap::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            if let Some(k) = temp_target_key(&name) {
                if entry.file_type().is_ok_and(|t| t.is_file()) {
                    found
                        .entry((dir.clone(), k.to_vec()))
                        .or_default()
                        .push(entry.path());
                }
            }
        }
    }
    if found.is_empty() {
        return;
    }
    for f in files() {
        let (Some(dir), Some(name)) = (f.parent(), f.file_name()) else {
            continue;
        };
        let key = (dir.to_path_buf(), temp_key(name).as_bytes().to_vec());
        for p in found.remove(&key).unwrap_or_default() {
            log::debug!("removing stale temporary file {}", p.display());
            let _ = fs::remove_file(p);
        }
    }
}

/// Whether a write error will hit every later write too (no space, read-only or failing file
/// system), so the run stops, rather than one item's problem (e.g. a name the file system refuses).
pub fn is_fatal_write_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::StorageFull | K::QuotaExceeded | K::ReadOnlyFilesystem | K::OutOfMemory
    ) || matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS | libc::EIO | libc::ENOMEM)
    )
}

/// Storage type of a score map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredDtype {
    Float32,
    Float16,
}

/// A score map as stored: its shape (as written, unit axes included) and values widened to f32
/// (exact for float16).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredScore {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
    pub dtype: StoredDtype,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::DatasetKind;

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
    fn only_temporary_names_of_known_targets_are_removed() {
        use std::os::unix::ffi::OsStringExt;
        let d = tempfile::tempdir().unwrap();
        let bad = OsString::from_vec(b"x\xff.png".to_vec());
        let mine = [d.path().join("a.hdf5"), d.path().join(&bad)];
        let bad_temp = temp_path(&mine[1]);
        assert!(bad_temp.to_str().is_some(), "temporary names are UTF-8");
        let names: Vec<PathBuf> = vec![
            temp_path(&mine[0]),
            bad_temp,
            d.path().join(".b.hdf5.tmp-12"), // not a target of this run
            d.path().join(".notes.tmp-1"),   // someone else's hidden file
            d.path().join(".a.hdf5.tmp-x"),  // not a temporary name
            d.path().join("a.hdf5"),
        ];
        for n in &names {
            fs::write(n, b"x").unwrap();
        }
        assert!(is_temp_name(names[0].file_name().unwrap()));
        assert!(!is_temp_name(names[4].file_name().unwrap()));
        remove_stale_temps_of(mine.iter().cloned());
        let left: Vec<bool> = names.iter().map(|n| n.exists()).collect();
        assert_eq!(left, [false, false, true, true, true, true]);
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
