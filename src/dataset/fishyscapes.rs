//! Fishyscapes layouts (`maskomaly/datasets.py`: `FishyScapesStatic`, `FishyScapes`).
//!
//! ```text
//! <root>/images/<name>.<ext>     <root>/labels/<name>.png                 (fs_static, fs_laf)
//! <root>/images/<fid>_leftImg8bit.png   <root>/labels/<fid>_fishy-labels.png   (FishyLAF naming)
//! ```
//! Images and labels are paired by stem; FishyLAF's `_leftImg8bit` / `_fishy-labels` suffixes are
//! dropped before pairing. Channel 0; 1 = anomaly, 255 = ignore, anything else usual. The reference
//! tests `== 120` for Lost&Found (a pre-processed release, unconfirmed): set `label_value: [120]`
//! to reproduce it. The output stem is the pairing key.

use super::layout::{descend, images_in, items, pair, stem};
use super::{DatasetError, Item};
use crate::job::DatasetSpec;
use std::path::PathBuf;

pub fn list_static(spec: &DatasetSpec) -> Result<Vec<Item>, DatasetError> {
    list(spec, "fs_static", "fs_static")
}

pub fn list_laf(spec: &DatasetSpec) -> Result<Vec<Item>, DatasetError> {
    list(spec, "fs_laf", "fs_lost_found")
}

fn key(name: String) -> String {
    for suffix in ["_leftImg8bit", "_fishy-labels"] {
        if let Some(k) = name.strip_suffix(suffix) {
            return k.to_string();
        }
    }
    name
}

fn list(spec: &DatasetSpec, kind: &'static str, folder: &str) -> Result<Vec<Item>, DatasetError> {
    let root = descend(&spec.root, folder, "images");
    let images = images_in(kind, &root.join("images"))?
        .into_iter()
        .map(|p| (key(stem(&p)), p))
        .collect();
    let labels = images_in(kind, &root.join("labels"))?
        .into_iter()
        .map(|p| (key(stem(&p)), p))
        .collect();
    let pairs = pair(kind, images, labels, false)?;
    let anomaly = spec.label_value.clone().unwrap_or_else(|| vec![1]);
    Ok(items(pairs, |k, _| PathBuf::from(k), 0, &anomaly, &[255]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::layout::testutil::{grey, image};
    use crate::dataset::read_label;
    use crate::job::DatasetKind;

    #[test]
    fn static_pairs_identical_stems() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("fs_static");
        for n in ["1", "0", "10"] {
            image(&r.join(format!("images/{n}.jpg")), 3, 1, [0, 0, 0]);
            grey(&r.join(format!("labels/{n}.png")), 3, 1, |x, _| {
                [0, 1, 255][x as usize]
            });
        }
        let spec = DatasetSpec {
            kind: DatasetKind::FsStatic,
            root: d.path().into(),
            ..Default::default()
        };
        let items = crate::dataset::list(&spec).unwrap();
        let stems: Vec<_> = items
            .iter()
            .map(|i| i.stem.to_str().unwrap().to_string())
            .collect();
        assert_eq!(stems, ["0", "1", "10"]);
        assert!(
            items[1].image.ends_with("images/1.jpg")
                && items[1]
                    .label
                    .as_ref()
                    .unwrap()
                    .path
                    .ends_with("labels/1.png")
        );
        let l = read_label(items[0].label.as_ref().unwrap()).unwrap();
        assert_eq!((l.anomaly, l.ignore), (vec![0, 1, 0], vec![0, 0, 1]));

        std::fs::remove_file(r.join("labels/10.png")).unwrap();
        let err = crate::dataset::list(&spec).unwrap_err().to_string();
        assert!(err.contains("10.jpg") && err.contains("no label"), "{err}");
    }

    #[test]
    fn laf_accepts_fishy_label_names_and_label_value() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for fid in [
            "04_Maurener_Weg_8_000000_000030",
            "01_Hanns_Klemm_Str_45_000000_000060",
        ] {
            image(
                &r.join(format!("images/{fid}_leftImg8bit.png")),
                2,
                1,
                [0, 0, 0],
            );
            grey(
                &r.join(format!("labels/{fid}_fishy-labels.png")),
                2,
                1,
                |x, _| [120, 1][x as usize],
            );
        }
        let mut spec = DatasetSpec {
            kind: DatasetKind::FsLaf,
            root: r.into(),
            ..Default::default()
        };
        let items = crate::dataset::list(&spec).unwrap();
        assert_eq!(
            items[0].stem,
            PathBuf::from("01_Hanns_Klemm_Str_45_000000_000060")
        );
        assert_eq!(
            read_label(items[0].label.as_ref().unwrap())
                .unwrap()
                .anomaly,
            [0, 1]
        );
        spec.label_value = Some(vec![120]);
        let items = crate::dataset::list(&spec).unwrap();
        assert_eq!(
            read_label(items[0].label.as_ref().unwrap())
                .unwrap()
                .anomaly,
            [1, 0]
        );

        image(&r.join("labels/stray.png"), 2, 1, [0, 0, 0]);
        let err = crate::dataset::list(&spec).unwrap_err().to_string();
        assert!(
            err.contains("stray.png") && err.contains("no image"),
            "{err}"
        );
    }
}
