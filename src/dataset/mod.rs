//! Input listings: what a run processes, in a stable order.
//!
//! Every layout yields [`Item`]s: the image, its labels where the layout has them, and the relative
//! output stem (`sub/dir/stem`) under which outputs are written. `folder` walks a directory tree;
//! the benchmark layouts live in their own modules and pair every image with its label by name
//! (never by position): a missing or an extra label is an error that names the file.

use crate::diagnostic::{Diagnose, ExitCode};
use crate::job::{DatasetKind, DatasetSpec};
use std::path::{Path, PathBuf};

pub mod fishyscapes;
pub mod label;
pub(crate) mod layout;
pub mod lost_and_found;
pub mod road_anomaly;
pub mod smiyc;
pub mod street_hazards;

pub use label::{read_label, Label, LabelError};

/// Image extensions the runner decodes (lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"];

/// How a label image encodes anomaly / ignore.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSpec {
    pub path: PathBuf,
    /// Channel read from the label image (index into the decoded RGB; grey images repeat their one
    /// channel, as OpenCV's reader does).
    pub channel: usize,
    /// Label values that mean "anomaly".
    pub anomaly: Vec<u8>,
    /// Label values that mean "ignore".
    pub ignore: Vec<u8>,
}

/// One input image.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub image: PathBuf,
    /// Output stem relative to the output root, without extension (`a/b/frame01`).
    pub stem: PathBuf,
    pub label: Option<LabelSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("input folder {0} does not exist")]
    NoRoot(PathBuf),
    #[error("cannot list {path}")]
    Walk {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dataset {kind}: {message}")]
    Layout { kind: &'static str, message: String },
    /// The input folder is where maskomaly writes: its outputs would be listed as inputs.
    #[error("input folder {path} is {why}")]
    HoldsOutputs { path: PathBuf, why: &'static str },
}

/// Where an input folder can come from.
pub(crate) const NO_INPUT_HINT: &str =
    "pass --input DIR, set dataset.root in the job, or mount a folder at /input";

impl Diagnose for DatasetError {
    fn exit_code(&self) -> ExitCode {
        match self {
            DatasetError::NoRoot(_) => ExitCode::NoInput,
            DatasetError::Walk { .. } => ExitCode::Io,
            DatasetError::Layout { .. } => ExitCode::Data,
            DatasetError::HoldsOutputs { .. } => ExitCode::Config,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            DatasetError::NoRoot(_) => Some(NO_INPUT_HINT.into()),
            DatasetError::HoldsOutputs { .. } => Some(
                "choose an output folder outside the input folder (or inside it, in a subfolder \
                 of its own), and an input folder that holds no maskomaly outputs"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Says why a folder must not be listed (it holds a run's outputs), or `None`. The listing asks
/// once per folder; `crate::provenance::outputs` knows what marks an output folder.
pub type Exclude<'a> = &'a dyn Fn(&Path) -> Option<&'static str>;

/// Lists the items of a dataset in their stable order.
pub fn list(spec: &DatasetSpec) -> Result<Vec<Item>, DatasetError> {
    list_excluding(spec, &|_| None)
}

/// [`list`] without the folders `exclude` names (a `folder` dataset; the benchmark layouts read
/// fixed sub-folders). The root itself being such a folder is an error.
pub fn list_excluding(spec: &DatasetSpec, exclude: Exclude) -> Result<Vec<Item>, DatasetError> {
    // Every layout: a root that is not there is missing input, not a layout problem.
    if !spec.root.is_dir() {
        return Err(DatasetError::NoRoot(spec.root.clone()));
    }
    let items = match spec.kind {
        DatasetKind::Folder => return walk_folder_excluding(&spec.root, exclude),
        DatasetKind::SmiycAnomaly => smiyc::list_anomaly(spec)?,
        DatasetKind::SmiycObstacle => smiyc::list_obstacle(spec)?,
        DatasetKind::FsStatic => fishyscapes::list_static(spec)?,
        DatasetKind::FsLaf => fishyscapes::list_laf(spec)?,
        DatasetKind::RoadAnomaly => road_anomaly::list(spec)?,
        DatasetKind::StreetHazards => street_hazards::list(spec)?,
        DatasetKind::LostAndFound => lost_and_found::list(spec)?,
    };
    if items.is_empty() {
        return Err(DatasetError::Layout {
            kind: spec.kind.as_str(),
            message: format!("no images found under {}", spec.root.display()),
        });
    }
    check_unique_stems(&items)?;
    Ok(items)
}

/// True when the path's extension names an image format the runner decodes.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Every image file under `root`, recursively, sorted byte-wise by relative path. Hidden files and
/// folders (a leading `.`) are skipped; other files whose extension the runner does not decode are
/// skipped and counted by extension in one info line. A link that cannot be followed is an item
/// when its name is an image name (it fails when read, with the reason), a link back into its own
/// ancestors is skipped with a warning: neither stops the listing.
pub fn walk_folder(root: &Path) -> Result<Vec<Item>, DatasetError> {
    walk_folder_excluding(root, &|_| None)
}

/// [`walk_folder`] without the folders `exclude` names, with one info line listing them; `root`
/// itself being one is an error.
pub fn walk_folder_excluding(root: &Path, exclude: Exclude) -> Result<Vec<Item>, DatasetError> {
    if !root.is_dir() {
        return Err(DatasetError::NoRoot(root.to_path_buf()));
    }
    if let Some(why) = exclude(root) {
        return Err(DatasetError::HoldsOutputs {
            path: root.to_path_buf(),
            why,
        });
    }
    let mut items = Vec::new();
    let mut skipped: std::collections::BTreeMap<String, usize> = Default::default();
    let mut outputs: Vec<(PathBuf, &'static str)> = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by(|a, b| {
            a.file_name()
                .as_encoded_bytes()
                .cmp(b.file_name().as_encoded_bytes())
        })
        .into_iter()
        .filter_entry(|e| {
            if e.depth() == 0 {
                return true;
            }
            if e.file_name().as_encoded_bytes().starts_with(b".") {
                return false;
            }
            if e.file_type().is_dir() {
                if let Some(why) = exclude(e.path()) {
                    outputs.push((e.path().to_path_buf(), why));
                    return false;
                }
            }
            true
        });
    let mut push = |path: &Path| {
        let rel = path.strip_prefix(root).unwrap_or(path);
        items.push(Item {
            image: path.to_path_buf(),
            stem: rel.with_extension(""),
            label: None,
        });
    };
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e.path().unwrap_or(root).to_path_buf();
                let hidden = path
                    .file_name()
                    .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."));
                if e.loop_ancestor().is_some() {
                    log::warn!("skipping {}: {e}", path.display());
                } else if e.depth() > 0 && is_image_path(&path) && !hidden {
                    // e.g. a dangling link: the decode stage fails it with the reason.
                    push(&path);
                } else if e.depth() > 0
                    && std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink())
                {
                    log::warn!("skipping {}: {e}", path.display());
                } else {
                    return Err(DatasetError::Walk {
                        path,
                        source: e.into(),
                    });
                }
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        if !is_image_path(path) {
            log::debug!("skipping {} (not an image file name)", path.display());
            let ext = path
                .extension()
                .map(|e| format!(".{}", e.to_string_lossy().to_ascii_lowercase()))
                .unwrap_or_else(|| "(no extension)".into());
            *skipped.entry(ext).or_default() += 1;
            continue;
        }
        push(path);
    }
    if !outputs.is_empty() {
        let list: Vec<String> = outputs
            .iter()
            .map(|(p, why)| format!("{} ({why})", p.display()))
            .collect();
        log::info!(
            "not listing folders that hold maskomaly's outputs: {}",
            list.join(", ")
        );
    }
    if !skipped.is_empty() {
        let list: Vec<String> = skipped.iter().map(|(e, n)| format!("{e} ({n})")).collect();
        log::info!(
            "skipped files the runner does not decode: {}; it reads {}",
            list.join(", "),
            IMAGE_EXTENSIONS
                .iter()
                .map(|e| format!(".{e}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    // Byte-wise order of the whole relative path (walkdir sorts per directory level). Mostly
    // in order already: the sort (and its scratch buffer, half the listing) only when needed.
    let by_stem = |a: &Item, b: &Item| {
        a.stem
            .as_os_str()
            .as_encoded_bytes()
            .cmp(b.stem.as_os_str().as_encoded_bytes())
    };
    if !items.is_sorted_by(|a, b| by_stem(a, b) != std::cmp::Ordering::Greater) {
        items.sort_by(by_stem);
    }
    check_unique_stems(&items)?;
    Ok(items)
}

/// Two inputs that map to the same output stem (`a.jpg`, `a.png`) would overwrite each other.
pub fn check_unique_stems(items: &[Item]) -> Result<(), DatasetError> {
    let by_stem = |a: &Item, b: &Item| {
        a.stem
            .as_os_str()
            .as_encoded_bytes()
            .cmp(b.stem.as_os_str().as_encoded_bytes())
    };
    // A listing sorted by stem (a folder's) has its clashes side by side: no set of every stem.
    if items
        .windows(2)
        .all(|w| by_stem(&w[0], &w[1]) != std::cmp::Ordering::Greater)
    {
        return match items.windows(2).find(|w| w[0].stem == w[1].stem) {
            None => Ok(()),
            Some(w) => Err(stem_clash(&w[0].image, &w[1])),
        };
    }
    let mut seen = std::collections::HashMap::new();
    for it in items {
        if let Some(prev) = seen.insert(it.stem.clone(), &it.image) {
            return Err(stem_clash(prev, it));
        }
    }
    Ok(())
}

fn stem_clash(prev: &Path, it: &Item) -> DatasetError {
    DatasetError::Layout {
        kind: "folder",
        message: format!(
            "{} and {} would write the same outputs ({}); rename one",
            prev.display(),
            it.image.display(),
            it.stem.display()
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn walk_sorts_bytewise_recursively_and_skips_non_images() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "b.png",
            "B.jpg",
            "a/z.JPG",
            "a/c.txt",
            ".hidden.png",
            ".git/x.png",
            "a_.webp",
        ] {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let items = walk_folder(d.path()).unwrap();
        let stems: Vec<_> = items
            .iter()
            .map(|i| i.stem.to_str().unwrap().to_string())
            .collect();
        assert_eq!(stems, ["B", "a/z", "a_", "b"]);
    }

    #[test]
    fn duplicate_stems_are_an_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.png"), b"x").unwrap();
        std::fs::write(d.path().join("a.jpg"), b"x").unwrap();
        let err = walk_folder(d.path()).unwrap_err().to_string();
        assert!(err.contains("a.jpg") && err.contains("a.png"), "{err}");
    }

    #[test]
    fn missing_root_is_an_error() {
        assert!(matches!(
            walk_folder(Path::new("/nonexistent/x")),
            Err(DatasetError::NoRoot(_))
        ));
    }

    #[test]
    fn broken_links_and_loops_do_not_stop_the_listing() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.png"), b"x").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/target.png", d.path().join("dangling.png"))
            .unwrap();
        std::os::unix::fs::symlink("/nonexistent/notes", d.path().join("dangling.txt")).unwrap();
        std::os::unix::fs::symlink("..", d.path().join("sub/loop")).unwrap();
        std::fs::write(d.path().join("anim.gif"), b"GIF89a").unwrap();
        let items = walk_folder(d.path()).unwrap();
        let stems: Vec<_> = items
            .iter()
            .map(|i| i.stem.to_str().unwrap().to_string())
            .collect();
        // The dangling image link is an item (it fails when read); the loop and the rest are skipped.
        assert_eq!(stems, ["a", "dangling"]);
    }

    /// Writes a small image at each of `files` under `root`.
    pub(crate) fn touch(root: &Path, files: &[&str]) {
        for f in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
    }

    pub(crate) fn stems(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| i.stem.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn excluded_folders_are_not_listed_and_an_excluded_root_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        touch(
            d.path(),
            &["a.png", "out/a.png", "out/a_heat.png", "sub/b.png"],
        );
        let exclude = |p: &Path| (p.file_name()? == "out").then_some("the output folder");
        let items = walk_folder_excluding(d.path(), &exclude).unwrap();
        assert_eq!(stems(&items), ["a", "sub/b"]);
        let e = walk_folder_excluding(&d.path().join("out"), &exclude).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "input folder {} is the output folder",
                d.path().join("out").display()
            )
        );
        // A missing root is missing input for every layout.
        let spec = DatasetSpec {
            kind: DatasetKind::FsStatic,
            root: d.path().join("absent"),
            ..Default::default()
        };
        assert!(matches!(list(&spec), Err(DatasetError::NoRoot(_))));
    }

    #[test]
    fn names_that_are_not_utf8_are_listed_as_bytes() {
        use std::os::unix::ffi::OsStringExt;
        let d = tempfile::tempdir().unwrap();
        let name = std::ffi::OsString::from_vec(b"x\xff.png".to_vec());
        std::fs::write(d.path().join(&name), b"x").unwrap();
        let items = walk_folder(d.path()).unwrap();
        assert_eq!(items[0].stem.as_os_str().as_encoded_bytes(), b"x\xff");
    }
}
