//! Lost and Found in the Cityscapes layout (`road_anomaly_benchmark: datasets/tracks.py`,
//! `DatasetLostAndFound`).
//!
//! ```text
//! <root>/leftImg8bit/<split>/<NN_scene>/<fid>_leftImg8bit.{png,webp,jpg}
//! <root>/gtCoarse/<split>/<NN_scene>/<fid>_gtCoarse_labelIds.png
//! ```
//! Split defaults to `test`. Label ids as the benchmark maps them: 1 usual (road), 2..=200 anomaly,
//! everything else (0 and above 200) ignored. The output stem is the frame id (it names the scene).

use super::layout::{complement, dirs_in, images_in, items, pair, stem};
use super::{DatasetError, Item};
use crate::job::DatasetSpec;
use std::path::PathBuf;

const KIND: &str = "lost_and_found";

pub fn list(spec: &DatasetSpec) -> Result<Vec<Item>, DatasetError> {
    let split = spec.split.as_deref().unwrap_or("test");
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for scene in dirs_in(KIND, &spec.root.join("leftImg8bit").join(split))? {
        for p in images_in(KIND, &scene)? {
            if let Some(fid) = stem(&p).strip_suffix("_leftImg8bit") {
                images.push((fid.to_string(), p.clone()));
            }
        }
    }
    for scene in dirs_in(KIND, &spec.root.join("gtCoarse").join(split))? {
        for p in images_in(KIND, &scene)? {
            if let Some(fid) = stem(&p).strip_suffix("_gtCoarse_labelIds") {
                labels.push((fid.to_string(), p.clone()));
            }
        }
    }
    // Scenes are visited in order, but sort by frame id as the benchmark does.
    images.sort_by(|a, b| a.0.cmp(&b.0));
    let pairs = pair(KIND, images, labels, false)?;
    let anomaly = spec
        .label_value
        .clone()
        .unwrap_or_else(|| (2..=200).collect());
    let mut usual_and_anomaly = anomaly.clone();
    usual_and_anomaly.push(1);
    Ok(items(
        pairs,
        |k, _| PathBuf::from(k),
        0,
        &anomaly,
        &complement(&usual_and_anomaly),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::layout::testutil::{grey, image};
    use crate::dataset::read_label;
    use crate::job::DatasetKind;

    #[test]
    fn pairs_left_images_with_coarse_label_ids() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for (scene, fid) in [
            ("04_Maurener_Weg_8", "04_Maurener_Weg_8_000000_000030"),
            ("01_Hanns", "01_Hanns_000002_000010"),
        ] {
            image(
                &r.join(format!("leftImg8bit/test/{scene}/{fid}_leftImg8bit.png")),
                4,
                1,
                [0, 0, 0],
            );
            grey(
                &r.join(format!("gtCoarse/test/{scene}/{fid}_gtCoarse_labelIds.png")),
                4,
                1,
                |x, _| [0, 1, 2, 201][x as usize],
            );
            // Other gtCoarse files in the same folder are not labels.
            grey(
                &r.join(format!(
                    "gtCoarse/test/{scene}/{fid}_gtCoarse_instanceIds.png"
                )),
                4,
                1,
                |_, _| 0,
            );
        }
        let spec = DatasetSpec {
            kind: DatasetKind::LostAndFound,
            root: r.into(),
            ..Default::default()
        };
        let items = crate::dataset::list(&spec).unwrap();
        assert_eq!(items[0].stem, PathBuf::from("01_Hanns_000002_000010"));
        let l = read_label(items[1].label.as_ref().unwrap()).unwrap();
        assert_eq!((l.anomaly, l.ignore), (vec![0, 0, 1, 0], vec![1, 0, 0, 1]));

        std::fs::remove_file(
            r.join("gtCoarse/test/01_Hanns/01_Hanns_000002_000010_gtCoarse_labelIds.png"),
        )
        .unwrap();
        let err = crate::dataset::list(&spec).unwrap_err().to_string();
        assert!(
            err.contains("01_Hanns_000002_000010_leftImg8bit.png"),
            "{err}"
        );
    }
}
