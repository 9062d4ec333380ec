//! SegmentMeIfYouCan layouts (`SegmentMeIfYouCan/road-anomaly-benchmark: datasets/tracks.py`).
//!
//! ```text
//! dataset_AnomalyTrack/images/{fid}.jpg           labels_masks/{fid}_labels_semantic.png (0/1/255)
//!                                                 labels_masks/{fid}_labels_semantic_color.png
//! dataset_ObstacleTrack/images/{fid}.webp         labels_masks/{fid}_labels_semantic.png
//! ```
//! `root` may be the track folder or its parent. The output stem is the frame id. Labels are public
//! for the validation frames only, so outside `split: validation` a frame without a label gets none;
//! a label without a frame is always an error.
//!
//! Semantic labels follow the benchmark: 0 usual, 1 anomaly, every other value ignored. Colour labels
//! follow the reference evaluation (`maskomaly/datasets.py`): green channel, 102 anomaly (orange),
//! 0 ignore (black), anything else usual.

use super::layout::{complement, descend, files_in, images_in, items, pair, stem, strip};
use super::{DatasetError, Item};
use crate::job::{DatasetKind, DatasetSpec, LabelFormat};
use std::path::PathBuf;

const SEMANTIC_SUFFIX: &str = "_labels_semantic.png";
const COLOR_SUFFIX: &str = "_labels_semantic_color.png";

/// Frames the benchmark leaves out of `ObstacleTrack-validation`.
const OBSTACLE_VALIDATION_EXCLUDED: &[&str] = &[
    "validation_19",
    "validation_21",
    "validation_22",
    "validation_23",
    "validation_24",
    "validation_25",
    "validation_26",
    "validation_27",
    "validation_28",
    "validation_29",
];
/// Scenes outside `ObstacleTrack-test` (weather, night, validation).
const OBSTACLE_NOT_TEST: &[&str] = &["snowstorm1", "snowstorm2", "driveway", "validation"];

/// The dataset folder of the SMIYC submission layout (`anomaly_p/<method>/<dataset>/`):
/// `AnomalyTrack-all` and `ObstacleTrack-all` for the two tracks, the kind's own name otherwise.
pub fn dataset_name(kind: DatasetKind) -> &'static str {
    match kind {
        DatasetKind::SmiycAnomaly => "AnomalyTrack-all",
        DatasetKind::SmiycObstacle => "ObstacleTrack-all",
        other => other.as_str(),
    }
}

/// `smiyc_anomaly`; splits: `all` (default), `validation` (labels required), `test`.
pub fn list_anomaly(spec: &DatasetSpec) -> Result<Vec<Item>, DatasetError> {
    const KIND: &str = "smiyc_anomaly";
    let split = spec.split.as_deref().unwrap_or("all");
    let keep = |fid: &str| match split {
        "all" => Ok(true),
        "validation" => Ok(fid.starts_with("validation")),
        "test" => Ok(!fid.starts_with("validation")),
        other => Err(DatasetError::Layout {
            kind: KIND,
            message: format!("unknown split `{other}` (expected all, validation or test)"),
        }),
    };
    list_track(
        spec,
        KIND,
        "dataset_AnomalyTrack",
        split == "validation",
        keep,
    )
}

/// `smiyc_obstacle`; splits: `all` (default), `validation` (the benchmark's 30 frames, labels
/// required), `test` (the benchmark's 327 frames), or one scene name (`fid.split('_')[0]`).
pub fn list_obstacle(spec: &DatasetSpec) -> Result<Vec<Item>, DatasetError> {
    const KIND: &str = "smiyc_obstacle";
    if spec.labels == LabelFormat::Color {
        return Err(DatasetError::Layout {
            kind: KIND,
            message: "the obstacle track has no colour labels".into(),
        });
    }
    let split = spec.split.clone().unwrap_or_else(|| "all".into());
    let keep = |fid: &str| {
        let scene = fid.split('_').next().unwrap_or("");
        Ok(match split.as_str() {
            "all" => true,
            "validation" => {
                scene == "validation"
                    && !OBSTACLE_VALIDATION_EXCLUDED
                        .iter()
                        .any(|p| fid.starts_with(p))
            }
            "test" => !OBSTACLE_NOT_TEST.contains(&scene),
            name => scene == name,
        })
    };
    list_track(
        spec,
        KIND,
        "dataset_ObstacleTrack",
        split == "validation",
        keep,
    )
}

fn list_track(
    spec: &DatasetSpec,
    kind: &'static str,
    folder: &str,
    labels_required: bool,
    keep: impl Fn(&str) -> Result<bool, DatasetError>,
) -> Result<Vec<Item>, DatasetError> {
    let root = descend(&spec.root, folder, "images");
    let all_images: Vec<(String, PathBuf)> = images_in(kind, &root.join("images"))?
        .into_iter()
        .map(|p| (stem(&p), p))
        .collect();
    let (suffix, channel, anomaly, ignore) = match spec.labels {
        LabelFormat::Semantic => (SEMANTIC_SUFFIX, 0, vec![1u8], complement(&[0, 1])),
        LabelFormat::Color => (COLOR_SUFFIX, 1, vec![102u8], vec![0u8]),
    };
    let anomaly = spec.label_value.clone().unwrap_or(anomaly);
    let label_dir = root.join("labels_masks");
    let labels: Vec<(String, PathBuf)> = if label_dir.is_dir() {
        files_in(kind, &label_dir)?
            .into_iter()
            .filter_map(|p| {
                let name = p.file_name()?.to_string_lossy().into_owned();
                // `_labels_semantic.png` is also the tail of nothing else; colour files end differently.
                strip(&name, suffix).map(|k| (k.to_string(), p.clone()))
            })
            .collect()
    } else {
        Vec::new()
    };
    // Pair against every frame first, so a label whose frame exists but is outside the split is not
    // reported as "extra".
    let mut pairs = pair(kind, all_images, labels, true)?;
    let mut filtered = Vec::with_capacity(pairs.len());
    for p in pairs.drain(..) {
        if keep(&p.0)? {
            filtered.push(p);
        }
    }
    if labels_required {
        let missing: Vec<String> = filtered
            .iter()
            .filter(|p| p.2.is_none())
            .map(|p| p.1.display().to_string())
            .collect();
        if !missing.is_empty() {
            return Err(DatasetError::Layout {
                kind,
                message: format!(
                    "{} validation frame(s) have no label in {}: {}",
                    missing.len(),
                    label_dir.display(),
                    missing.join(", ")
                ),
            });
        }
    }
    Ok(items(
        filtered,
        |k, _| PathBuf::from(k),
        channel,
        &anomaly,
        &ignore,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::layout::testutil::{colour, grey, image};
    use crate::dataset::read_label;
    use crate::job::DatasetKind;
    use std::path::Path;

    fn spec(kind: DatasetKind, root: &Path, split: Option<&str>) -> DatasetSpec {
        DatasetSpec {
            kind,
            root: root.to_path_buf(),
            split: split.map(Into::into),
            ..Default::default()
        }
    }

    fn anomaly_track(root: &Path) {
        let t = root.join("dataset_AnomalyTrack");
        for fid in ["validation0001", "validation0000", "zebra0000"] {
            image(&t.join(format!("images/{fid}.jpg")), 4, 2, [9, 9, 9]);
        }
        for fid in ["validation0000", "validation0001"] {
            grey(
                &t.join(format!("labels_masks/{fid}_labels_semantic.png")),
                4,
                2,
                |x, _| [0, 1, 255, 7][x as usize],
            );
            colour(
                &t.join(format!("labels_masks/{fid}_labels_semantic_color.png")),
                4,
                2,
                |x, _| [[255, 255, 255], [255, 102, 0], [0, 0, 0], [255, 255, 255]][x as usize],
            );
        }
    }

    #[test]
    fn anomaly_track_pairs_by_frame_id() {
        let d = tempfile::tempdir().unwrap();
        anomaly_track(d.path());
        let items = super::super::list(&spec(
            DatasetKind::SmiycAnomaly,
            d.path(),
            Some("validation"),
        ))
        .unwrap();
        let stems: Vec<_> = items
            .iter()
            .map(|i| i.stem.to_str().unwrap().to_string())
            .collect();
        assert_eq!(stems, ["validation0000", "validation0001"]);
        let l = read_label(items[0].label.as_ref().unwrap()).unwrap();
        assert_eq!(l.anomaly, [0, 1, 0, 0, 0, 1, 0, 0]);
        // 255 and every value other than 0/1 are ignored, as the benchmark maps them.
        assert_eq!(l.ignore, [0, 0, 1, 1, 0, 0, 1, 1]);

        let all = super::super::list(&spec(DatasetKind::SmiycAnomaly, d.path(), None)).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all[2].label.is_none(), "test frames have no public label");

        let mut c = spec(
            DatasetKind::SmiycAnomaly,
            &d.path().join("dataset_AnomalyTrack"),
            Some("validation"),
        );
        c.labels = LabelFormat::Color;
        let items = super::super::list(&c).unwrap();
        let l = read_label(items[1].label.as_ref().unwrap()).unwrap();
        assert_eq!(l.anomaly, [0, 1, 0, 0, 0, 1, 0, 0]);
        assert_eq!(l.ignore, [0, 0, 1, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn missing_and_extra_labels_are_errors() {
        let d = tempfile::tempdir().unwrap();
        anomaly_track(d.path());
        let t = d.path().join("dataset_AnomalyTrack");
        std::fs::remove_file(t.join("labels_masks/validation0001_labels_semantic.png")).unwrap();
        let err = super::super::list(&spec(
            DatasetKind::SmiycAnomaly,
            d.path(),
            Some("validation"),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("validation0001.jpg"), "{err}");

        grey(
            &t.join("labels_masks/validation0001_labels_semantic.png"),
            4,
            2,
            |_, _| 0,
        );
        grey(
            &t.join("labels_masks/validation0009_labels_semantic.png"),
            4,
            2,
            |_, _| 0,
        );
        let err = super::super::list(&spec(DatasetKind::SmiycAnomaly, d.path(), None)).unwrap_err();
        assert!(
            err.to_string()
                .contains("validation0009_labels_semantic.png"),
            "{err}"
        );
    }

    #[test]
    fn obstacle_track_splits_follow_the_benchmark() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("dataset_ObstacleTrack");
        for fid in [
            "validation_1_00000",
            "validation_19_00000",
            "gravel_00001",
            "driveway_00002",
        ] {
            image(&t.join(format!("images/{fid}.png")), 2, 2, [1, 2, 3]);
            grey(
                &t.join(format!("labels_masks/{fid}_labels_semantic.png")),
                2,
                2,
                |x, _| x as u8,
            );
        }
        let stems = |split: Option<&str>| -> Vec<String> {
            super::super::list(&spec(DatasetKind::SmiycObstacle, d.path(), split))
                .unwrap()
                .iter()
                .map(|i| i.stem.to_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(stems(Some("validation")), ["validation_1_00000"]);
        assert_eq!(stems(Some("test")), ["gravel_00001"]);
        assert_eq!(stems(None).len(), 4);
    }
}
