//! The SegmentMeIfYouCan server's component metrics (`SegEval-*`,
//! `road_anomaly_benchmark: metrics/instance_segmentation.py`).
//!
//! Per frame: prediction = `score > threshold` (the binned curve's best-F1 threshold), forced to 0
//! on ignored pixels; ground truth = anomaly pixels. Both are split into 8-connected components.
//! Predicted components smaller than `min_pred` pixels are dropped; ground-truth components smaller
//! than `min_gt` become ignored (the server loops over component 0, the background, too: a
//! background smaller than `min_gt` would be ignored as well — kept). Then, on the remaining
//! non-ignored pixels:
//!
//! * per ground-truth component `i` with touching predicted components `S`:
//!   `sIoU = |i ∩ S| / (|S| + |i| − |i ∩ S| − |S ∩ other gt components|)`;
//! * per predicted component `j` with touching ground-truth components `G`: `sIoU_pred` likewise and
//!   `PPV = |j ∩ G| / |j|`;
//! * for `t` in `linspace(0.25, 0.75, 11)`: `TP = #(sIoU ≥ t)`, `FN = #(sIoU < t)`,
//!   `FP = #(PPV < t)`, summed over frames; `F1(t) = 2TP / (2TP + FN + FP)`; mean F1 over the 11.
//!
//! Sizes: anomaly track 500 / 100 px, obstacle track and Lost and Found 50 / 10 px.

use super::predictions::PredDtype;
use std::collections::HashMap;

/// (smallest predicted component kept, smallest ground-truth component kept).
pub fn size_limits(kind: crate::job::DatasetKind) -> (u64, u64) {
    use crate::job::DatasetKind::*;
    match kind {
        SmiycObstacle | LostAndFound => (50, 10),
        _ => (500, 100),
    }
}

/// 8-connected component labels (1..=n, 0 = background) of a binary mask, and the size of each
/// (index 0 = background size).
pub fn label_components(mask: &[bool], w: usize, h: usize) -> (Vec<u32>, Vec<u64>) {
    let mut parent: Vec<u32> = Vec::new();
    fn find(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            parent[x as usize] = parent[parent[x as usize] as usize];
            x = parent[x as usize];
        }
        x
    }
    let mut lab = vec![u32::MAX; w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if !mask[i] {
                continue;
            }
            // Neighbours already visited: W, NW, N, NE.
            let mut root: Option<u32> = None;
            let mut neigh = [None; 4];
            if x > 0 {
                neigh[0] = Some(i - 1);
            }
            if y > 0 {
                neigh[2] = Some(i - w);
                if x > 0 {
                    neigh[1] = Some(i - w - 1);
                }
                if x + 1 < w {
                    neigh[3] = Some(i - w + 1);
                }
            }
            for n in neigh.into_iter().flatten() {
                if mask[n] {
                    let r = find(&mut parent, lab[n]);
                    root = Some(match root {
                        None => r,
                        Some(r0) => {
                            let (a, b) = (r0.min(r), r0.max(r));
                            parent[b as usize] = a;
                            a
                        }
                    });
                }
            }
            lab[i] = match root {
                Some(r) => r,
                None => {
                    parent.push(parent.len() as u32);
                    (parent.len() - 1) as u32
                }
            };
        }
    }
    // Number components in raster order of their first pixel, as scipy.ndimage.label does.
    let mut id = vec![0u32; parent.len()];
    let mut sizes = vec![0u64];
    let mut out = vec![0u32; w * h];
    for i in 0..w * h {
        if lab[i] == u32::MAX {
            sizes[0] += 1;
            continue;
        }
        let r = find(&mut parent, lab[i]) as usize;
        if id[r] == 0 {
            sizes.push(0);
            id[r] = (sizes.len() - 1) as u32;
        }
        out[i] = id[r];
        sizes[id[r] as usize] += 1;
    }
    (out, sizes)
}

/// Per-frame component statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameComponents {
    pub siou_gt: Vec<f64>,
    pub siou_pred: Vec<f64>,
    pub ppv: Vec<f64>,
}

/// Component statistics of one frame. `ignore` marks void pixels.
pub fn frame_components(
    scores: &[f32],
    anomaly: &[u8],
    ignore: &[u8],
    (w, h): (usize, usize),
    threshold: f64,
    dtype: PredDtype,
    (min_pred, min_gt): (u64, u64),
) -> FrameComponents {
    // numpy 1.24 compares a float16 / float32 map with a float scalar in the map's own type, so the
    // threshold is rounded to that type first.
    let above: Box<dyn Fn(f32) -> bool> = match dtype {
        PredDtype::Float16 => {
            let t = half::f16::from_f64(threshold);
            Box::new(move |s| half::f16::from_f32(s) > t)
        }
        PredDtype::Float32 => {
            let t = threshold as f32;
            Box::new(move |s| s > t)
        }
    };
    let pred_mask: Vec<bool> = (0..w * h)
        .map(|i| above(scores[i]) && ignore[i] == 0)
        .collect();
    let gt_mask: Vec<bool> = anomaly.iter().map(|&a| a != 0).collect();
    let (mut pred, pred_sizes) = label_components(&pred_mask, w, h);
    let (gt, gt_sizes) = label_components(&gt_mask, w, h);
    for p in pred.iter_mut() {
        if pred_sizes[*p as usize] < min_pred {
            *p = 0;
        }
    }
    let mut roi: Vec<bool> = ignore.iter().map(|&v| v == 0).collect();
    for (i, &g) in gt.iter().enumerate() {
        if gt_sizes[g as usize] < min_gt {
            roi[i] = false;
        }
    }
    // Pixel counts per (gt, pred) pair and per component, on the region of interest only.
    let mut pair: HashMap<(u32, u32), u64> = HashMap::new();
    let mut gsize: HashMap<u32, u64> = HashMap::new();
    let mut psize: HashMap<u32, u64> = HashMap::new();
    for i in 0..w * h {
        if roi[i] {
            *pair.entry((gt[i], pred[i])).or_default() += 1;
            *gsize.entry(gt[i]).or_default() += 1;
            *psize.entry(pred[i]).or_default() += 1;
        }
    }
    let mut gt_ids: Vec<u32> = gsize.keys().copied().filter(|&g| g != 0).collect();
    gt_ids.sort_unstable();
    let mut pred_ids: Vec<u32> = psize.keys().copied().filter(|&p| p != 0).collect();
    pred_ids.sort_unstable();
    let count = |g: u32, p: u32| pair.get(&(g, p)).copied().unwrap_or(0);

    let mut out = FrameComponents::default();
    for &g in &gt_ids {
        let touching: Vec<u32> = pred_ids
            .iter()
            .copied()
            .filter(|&p| count(g, p) > 0)
            .collect();
        let inter: u64 = touching.iter().map(|&p| count(g, p)).sum();
        let s_size: u64 = touching.iter().map(|&p| psize[&p]).sum();
        // Pixels of the touching predictions that lie on other ground-truth components.
        let adjustment: u64 = touching
            .iter()
            .map(|&p| psize[&p] - count(0, p) - count(g, p))
            .sum();
        let union = (s_size + gsize[&g]) as f64 - inter as f64 - adjustment as f64;
        out.siou_gt.push(inter as f64 / union);
    }
    for &p in &pred_ids {
        let touching: Vec<u32> = gt_ids
            .iter()
            .copied()
            .filter(|&g| count(g, p) > 0)
            .collect();
        let inter: u64 = touching.iter().map(|&g| count(g, p)).sum();
        let g_size: u64 = touching.iter().map(|&g| gsize[&g]).sum();
        let adjustment: u64 = touching
            .iter()
            .map(|&g| gsize[&g] - count(g, 0) - count(g, p))
            .sum();
        let union = (g_size + psize[&p]) as f64 - inter as f64 - adjustment as f64;
        out.siou_pred.push(inter as f64 / union);
        out.ppv.push(inter as f64 / psize[&p] as f64);
    }
    out
}

/// Aggregated component metrics.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ComponentMetrics {
    pub threshold: f64,
    pub siou_gt: f64,
    pub siou_pred: f64,
    pub ppv: f64,
    pub mean_f1: f64,
    pub gt_components: usize,
    pub pred_components: usize,
}

/// Aggregates frames the way the server does (means over all components of all frames).
pub fn aggregate(frames: &[FrameComponents], threshold: f64) -> ComponentMetrics {
    let all = |f: fn(&FrameComponents) -> &Vec<f64>| {
        frames.iter().flat_map(f).copied().collect::<Vec<f64>>()
    };
    let (g, p, v) = (all(|f| &f.siou_gt), all(|f| &f.siou_pred), all(|f| &f.ppv));
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    // np.linspace(0.25, 0.75, 11)
    let step = 0.5 / 10.0;
    let mut f1_sum = 0.0;
    for k in 0..11 {
        let t = if k == 10 {
            0.75
        } else {
            k as f64 * step + 0.25
        };
        let tp = g.iter().filter(|&&s| s >= t).count() as f64;
        let fneg = g.iter().filter(|&&s| s < t).count() as f64;
        let fp = v.iter().filter(|&&s| s < t).count() as f64;
        f1_sum += 2.0 * tp / (2.0 * tp + fneg + fp);
    }
    ComponentMetrics {
        threshold,
        siou_gt: mean(&g),
        siou_pred: mean(&p),
        ppv: mean(&v),
        mean_f1: f1_sum / 11.0,
        gt_components: g.len(),
        pred_components: p.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_connectivity_joins_diagonals_and_numbers_in_raster_order() {
        // 1 . . 1
        // . 1 . 1
        // . . . .
        // 1 1 . .
        let m: Vec<bool> = [1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0]
            .iter()
            .map(|&v| v == 1)
            .collect();
        let (lab, sizes) = label_components(&m, 4, 4);
        assert_eq!(lab, [1, 0, 0, 2, 0, 1, 0, 2, 0, 0, 0, 0, 3, 3, 0, 0]);
        assert_eq!(sizes, [10, 2, 2, 2]);
        // A U shape whose arms meet late still becomes one component.
        let u: Vec<bool> = [1, 0, 1, 1, 0, 1, 1, 1, 1]
            .iter()
            .map(|&v| v == 1)
            .collect();
        let (lab, sizes) = label_components(&u, 3, 3);
        assert!(lab.iter().all(|&l| l <= 1) && sizes == [2, 7]);
    }

    #[test]
    fn perfect_and_split_predictions() {
        // 10×4 frame, gt: columns 1..3 and 6..8 of all rows (two components of 8 px).
        let (w, h) = (10, 4);
        let gt: Vec<u8> = (0..w * h)
            .map(|i| matches!(i % w, 1 | 2 | 6 | 7) as u8)
            .collect();
        let ig = vec![0u8; w * h];
        // Prediction covers both gt components and the gap between them: one predicted component.
        let sc: Vec<f32> = (0..w * h)
            .map(|i| if (1..8).contains(&(i % w)) { 0.9 } else { 0.1 })
            .collect();
        let f = frame_components(&sc, &gt, &ig, (w, h), 0.5, PredDtype::Float32, (1, 1));
        // For gt 1: inter 8, |S| 28, adjustment 8 (pixels on gt 2) → 8 / (28 + 8 − 8 − 8) = 0.4.
        assert_eq!(f.siou_gt, [0.4, 0.4]);
        assert_eq!(f.ppv, [16.0 / 28.0]);
        let m = aggregate(&[f], 0.5);
        assert_eq!((m.gt_components, m.pred_components), (2, 1));
        // t ≤ 0.4: TP 2, FN 0, FP 0 (PPV 0.571 ≥ t) → F1 1; 0.4 < t ≤ 0.55 → TP 0, FN 2, FP 0 → 0; etc.
        assert!(m.mean_f1 > 0.0 && m.mean_f1 < 1.0);

        let exact: Vec<f32> = gt.iter().map(|&g| g as f32).collect();
        let f = frame_components(&exact, &gt, &ig, (w, h), 0.5, PredDtype::Float32, (1, 1));
        assert_eq!(
            (f.siou_gt.clone(), f.ppv.clone()),
            (vec![1.0, 1.0], vec![1.0, 1.0])
        );
        assert_eq!(aggregate(&[f], 0.5).mean_f1, 1.0);
    }

    #[test]
    fn small_components_are_dropped_or_ignored() {
        let (w, h) = (6, 1);
        let gt = [1, 0, 0, 0, 1, 1];
        let sc = [0.9f32, 0.0, 0.9, 0.0, 0.9, 0.9];
        let f = frame_components(&sc, &gt, &[0; 6], (w, h), 0.5, PredDtype::Float32, (2, 2));
        // gt component {0} is too small → ignored; prediction {0} and {2} too small → dropped.
        assert_eq!(f.siou_gt, [1.0]);
        assert_eq!(f.ppv, [1.0]);
    }
}

/// Parity with the server's procedure (scipy's labelling) on the committed fixture
/// (`tests/fixtures/metrics/components/`, written by `scripts/make_metric_fixtures.py`).
#[cfg(test)]
mod fixture_tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn component_metrics_match_scipy_procedure() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/metrics/components/components.json");
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let thr = case["threshold"].as_f64().unwrap();
        let limits = (
            case["min_pred"].as_u64().unwrap(),
            case["min_gt"].as_u64().unwrap(),
        );
        let frames: Vec<FrameComponents> = case["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let (s, g, i) = crate::eval::fixture_frame(f);
                let size = (
                    f["width"].as_u64().unwrap() as usize,
                    f["height"].as_u64().unwrap() as usize,
                );
                frame_components(&s, &g, &i, size, thr, PredDtype::Float32, limits)
            })
            .collect();
        let m = aggregate(&frames, thr);
        let want = &case["expected_components"];
        assert_eq!(
            m.gt_components as u64,
            want["gt_components"].as_u64().unwrap()
        );
        assert_eq!(
            m.pred_components as u64,
            want["pred_components"].as_u64().unwrap()
        );
        for (k, got) in [
            ("siou_gt", m.siou_gt),
            ("siou_pred", m.siou_pred),
            ("ppv", m.ppv),
            ("mean_f1", m.mean_f1),
        ] {
            let w = want[k].as_f64().unwrap();
            assert!(
                (w - got).abs() <= 1e-9,
                "{k} = {got}, scipy procedure says {w}"
            );
        }
    }
}
