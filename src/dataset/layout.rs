//! Helpers shared by the benchmark layouts: sorted directory listings and name-based pairing.

use super::{is_image_path, DatasetError, Item, LabelSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Regular files directly inside `dir`, sorted byte-wise by name; hidden entries skipped.
pub(crate) fn files_in(kind: &'static str, dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    entries_in(kind, dir, false)
}

/// Sub-directories directly inside `dir`, sorted byte-wise by name; hidden entries skipped.
pub(crate) fn dirs_in(kind: &'static str, dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    entries_in(kind, dir, true)
}

fn entries_in(kind: &'static str, dir: &Path, dirs: bool) -> Result<Vec<PathBuf>, DatasetError> {
    if !dir.is_dir() {
        return Err(DatasetError::Layout {
            kind,
            message: format!("expected folder {} is missing", dir.display()),
        });
    }
    let walk_err = |source| DatasetError::Walk {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(walk_err)? {
        let entry = entry.map_err(walk_err)?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        if (dirs && path.is_dir()) || (!dirs && path.is_file()) {
            out.push(path);
        }
    }
    out.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    Ok(out)
}

/// Image files directly inside `dir`.
pub(crate) fn images_in(kind: &'static str, dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    Ok(files_in(kind, dir)?
        .into_iter()
        .filter(|p| is_image_path(p))
        .collect())
}

/// File name without its last extension, as a string (non-UTF-8 names are kept lossily; they only
/// serve as pairing keys and output stems).
pub(crate) fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `name` without `suffix`, or `None` when it does not end with it.
pub(crate) fn strip<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    name.strip_suffix(suffix)
}

/// Every byte value not in `keep`: the benchmark maps all values other than "usual" and "anomaly"
/// to ignore.
pub(crate) fn complement(keep: &[u8]) -> Vec<u8> {
    (0..=255u8).filter(|v| !keep.contains(v)).collect()
}

/// Pairs images and labels by key. Every label must belong to an image; every image must have a
/// label unless `labels_optional` (then it gets none). Errors list up to five offending files.
pub(crate) fn pair(
    kind: &'static str,
    images: Vec<(String, PathBuf)>,
    labels: Vec<(String, PathBuf)>,
    labels_optional: bool,
) -> Result<Vec<(String, PathBuf, Option<PathBuf>)>, DatasetError> {
    let mut by_key: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (k, p) in labels {
        if let Some(prev) = by_key.insert(k.clone(), p.clone()) {
            return Err(DatasetError::Layout {
                kind,
                message: format!(
                    "labels {} and {} both belong to image `{k}`",
                    prev.display(),
                    p.display()
                ),
            });
        }
    }
    let mut out = Vec::with_capacity(images.len());
    let mut missing = Vec::new();
    for (k, img) in images {
        let label = by_key.remove(&k);
        if label.is_none() && !labels_optional {
            missing.push(img.display().to_string());
        }
        out.push((k, img, label));
    }
    if !missing.is_empty() {
        return Err(DatasetError::Layout {
            kind,
            message: format!(
                "{} image(s) have no label: {}",
                missing.len(),
                listing(&missing)
            ),
        });
    }
    if !by_key.is_empty() {
        let extra: Vec<String> = by_key.values().map(|p| p.display().to_string()).collect();
        return Err(DatasetError::Layout {
            kind,
            message: format!(
                "{} label(s) have no image: {}",
                extra.len(),
                listing(&extra)
            ),
        });
    }
    Ok(out)
}

fn listing(names: &[String]) -> String {
    let mut s = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        s.push_str(&format!(", … ({} more)", names.len() - 5));
    }
    s
}

/// Builds items from pairs, with one label convention for the whole layout.
pub(crate) fn items(
    pairs: Vec<(String, PathBuf, Option<PathBuf>)>,
    stem_of: impl Fn(&str, &Path) -> PathBuf,
    channel: usize,
    anomaly: &[u8],
    ignore: &[u8],
) -> Vec<Item> {
    pairs
        .into_iter()
        .map(|(key, image, label)| Item {
            stem: stem_of(&key, &image),
            label: label.map(|path| LabelSpec {
                path,
                channel,
                anomaly: anomaly.to_vec(),
                ignore: ignore.to_vec(),
            }),
            image,
        })
        .collect()
}

/// `root/sub` when it exists, else `root`: accepts both the dataset folder and its parent.
pub(crate) fn descend(root: &Path, sub: &str, marker: &str) -> PathBuf {
    if !root.join(marker).exists() && root.join(sub).join(marker).exists() {
        root.join(sub)
    } else {
        root.to_path_buf()
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Writes small synthetic copies of the dataset folder structures.
    use std::path::Path;

    /// A `w`×`h` RGB image of one colour (PNG/JPEG/WebP by extension).
    pub fn image(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
            .save(path)
            .unwrap();
    }

    /// A grey label image whose pixel (x, y) is `f(x, y)`.
    pub fn grey(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y)]))
            .save(path)
            .unwrap();
    }

    /// A colour label image whose pixel (x, y) is `f(x, y)`.
    pub fn colour(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
            .save(path)
            .unwrap();
    }
}
