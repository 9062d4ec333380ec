//! StreetHazards test set (`maskomaly/datasets.py`: `StreetHazards`).
//!
//! ```text
//! streethazards-test/test/images/test/<t5|t6|…>/<name>.png
//! streethazards-test/test/annotations/test/<t5|t6|…>/<name>.png
//! ```
//! `root` may be `streethazards-test`, its `test` folder or their parent. Every town folder found is
//! used (the release has `t5` and `t6`); images and annotations are paired by town and name. The
//! output stem is `<town>_<name>`, what the reference meant to write (it wrote into the dataset tree).
//!
//! Anomaly value: the raw annotations are index images whose anomaly class is 14 (the value other
//! evaluations use); the reference tested 255, which raw annotations do not contain. The default is
//! 14; `label_value` overrides it. Nothing is ignored: the reference evaluates StreetHazards per frame
//! on every pixel. The evaluation refuses a run whose labels hold no anomaly pixel at all, which is
//! what a wrong `label_value` looks like.

use super::layout::{descend, dirs_in, images_in, items, pair, stem};
use super::{DatasetError, Item};
use crate::job::DatasetSpec;
use std::path::PathBuf;

const KIND: &str = "street_hazards";
/// Default anomaly class of the raw annotations.
pub const ANOMALY_VALUE: u8 = 14;

pub fn list(spec: &DatasetSpec) -> Result<Vec<Item>, DatasetError> {
    let base = descend(
        &descend(&spec.root, "streethazards-test", "test"),
        "test",
        "images",
    );
    let img_root = base.join("images/test");
    let ann_root = base.join("annotations/test");
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for town in dirs_in(KIND, &img_root)? {
        let t = stem(&town);
        images.extend(
            images_in(KIND, &town)?
                .into_iter()
                .map(|p| (format!("{t}_{}", stem(&p)), p)),
        );
    }
    for town in dirs_in(KIND, &ann_root)? {
        let t = stem(&town);
        labels.extend(
            images_in(KIND, &town)?
                .into_iter()
                .map(|p| (format!("{t}_{}", stem(&p)), p)),
        );
    }
    let pairs = pair(KIND, images, labels, false)?;
    let anomaly = spec
        .label_value
        .clone()
        .unwrap_or_else(|| vec![ANOMALY_VALUE]);
    Ok(items(pairs, |k, _| PathBuf::from(k), 0, &anomaly, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::layout::testutil::{grey, image};
    use crate::dataset::read_label;
    use crate::job::DatasetKind;

    #[test]
    fn pairs_by_town_and_name() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path().join("streethazards-test/test");
        for (town, n) in [("t5", "300"), ("t6", "300"), ("t5", "301")] {
            image(
                &b.join(format!("images/test/{town}/{n}.png")),
                2,
                1,
                [1, 1, 1],
            );
            grey(
                &b.join(format!("annotations/test/{town}/{n}.png")),
                2,
                1,
                |x, _| [3, 14][x as usize],
            );
        }
        let mut spec = DatasetSpec {
            kind: DatasetKind::StreetHazards,
            root: d.path().into(),
            ..Default::default()
        };
        let items = crate::dataset::list(&spec).unwrap();
        let stems: Vec<_> = items
            .iter()
            .map(|i| i.stem.to_str().unwrap().to_string())
            .collect();
        assert_eq!(stems, ["t5_300", "t5_301", "t6_300"]);
        assert!(items[2]
            .label
            .as_ref()
            .unwrap()
            .path
            .ends_with("annotations/test/t6/300.png"));
        assert_eq!(
            read_label(items[0].label.as_ref().unwrap())
                .unwrap()
                .anomaly,
            [0, 1]
        );
        spec.label_value = Some(vec![255]);
        assert_eq!(
            read_label(
                crate::dataset::list(&spec).unwrap()[0]
                    .label
                    .as_ref()
                    .unwrap()
            )
            .unwrap()
            .anomaly,
            [0, 0]
        );

        std::fs::remove_file(b.join("images/test/t6/300.png")).unwrap();
        let err = crate::dataset::list(&spec).unwrap_err().to_string();
        assert!(
            err.contains("t6/300.png") && err.contains("no image"),
            "{err}"
        );
    }
}
