//! RoadAnomaly (`maskomaly/datasets.py`: `RoadAnomaly`; annotations written by LabelGrab).
//!
//! ```text
//! RoadAnomaly_jpg/frames/<name>.jpg
//! RoadAnomaly_jpg/frames/<name>.labels/labels_semantic.png        index image, 2 = anomaly
//! RoadAnomaly_jpg/frames/<name>.labels/labels_semantic_color.png  colour image, G == 69 (orangered)
//! ```
//! `root` may be `RoadAnomaly_jpg` or its `frames` folder. Each image is paired with the folder
//! `<stem>.labels` (the reference pairs by sorted position instead). No pixel is ignored. The output
//! stem is the image stem.

use super::layout::{descend, dirs_in, images_in, items, pair, stem};
use super::{DatasetError, Item};
use crate::job::{DatasetSpec, LabelFormat};
use std::path::PathBuf;

const KIND: &str = "road_anomaly";

pub fn list(spec: &DatasetSpec) -> Result<Vec<Item>, DatasetError> {
    let base = descend(&spec.root, "RoadAnomaly_jpg", "frames");
    let frames = if base.join("frames").is_dir() {
        base.join("frames")
    } else {
        base
    };
    let images = images_in(KIND, &frames)?
        .into_iter()
        .map(|p| (stem(&p), p))
        .collect();
    let (file, channel, anomaly) = match spec.labels {
        LabelFormat::Semantic => ("labels_semantic.png", 0, vec![2u8]),
        LabelFormat::Color => ("labels_semantic_color.png", 1, vec![69u8]),
    };
    let mut labels = Vec::new();
    for dir in dirs_in(KIND, &frames)? {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let key = name.strip_suffix(".labels").unwrap_or(&name).to_string();
        let path = dir.join(file);
        if !path.is_file() {
            return Err(DatasetError::Layout {
                kind: KIND,
                message: format!("label {} is missing", path.display()),
            });
        }
        labels.push((key, path));
    }
    let pairs = pair(KIND, images, labels, false)?;
    let anomaly = spec.label_value.clone().unwrap_or(anomaly);
    Ok(items(
        pairs,
        |k, _| PathBuf::from(k),
        channel,
        &anomaly,
        &[],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::layout::testutil::{colour, grey, image};
    use crate::dataset::read_label;
    use crate::job::DatasetKind;

    #[test]
    fn pairs_frames_with_their_label_folders() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("RoadAnomaly_jpg/frames");
        for n in ["animals02_cow", "animals01_deer"] {
            image(&f.join(format!("{n}.jpg")), 2, 1, [5, 5, 5]);
            grey(
                &f.join(format!("{n}.labels/labels_semantic.png")),
                2,
                1,
                |x, _| [0, 2][x as usize],
            );
            colour(
                &f.join(format!("{n}.labels/labels_semantic_color.png")),
                2,
                1,
                |x, _| [[0, 0, 0], [255, 69, 0]][x as usize],
            );
        }
        let mut spec = DatasetSpec {
            kind: DatasetKind::RoadAnomaly,
            root: d.path().into(),
            ..Default::default()
        };
        let items = crate::dataset::list(&spec).unwrap();
        assert_eq!(items[0].stem, PathBuf::from("animals01_deer"));
        assert_eq!(
            read_label(items[0].label.as_ref().unwrap())
                .unwrap()
                .anomaly,
            [0, 1]
        );
        spec.labels = LabelFormat::Color;
        spec.root = f.clone();
        let items = crate::dataset::list(&spec).unwrap();
        let l = read_label(items[1].label.as_ref().unwrap()).unwrap();
        assert_eq!((l.anomaly, l.ignore), (vec![0, 1], vec![0, 0]));

        std::fs::remove_file(f.join("animals02_cow.jpg")).unwrap();
        let err = crate::dataset::list(&spec).unwrap_err().to_string();
        assert!(err.contains("animals02_cow.labels"), "{err}");
    }
}
