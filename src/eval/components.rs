//! The SegmentMeIfYouCan benchmark's component metrics (`SegEval-*`), as
//! `SegmentMeIfYouCan/road-anomaly-benchmark` computes them at commit `1c7804e`
//! (`road_anomaly_benchmark/metrics/instance_segmentation.py`: `default_instancer`,
//! `segment_metrics`, `MetricSegment.aggregate`), numpy 1.23.3 and scipy.
//!
//! Per frame, with label 255 on void pixels, 1 on anomaly pixels:
//! * prediction = `score > threshold` (the binned curve's best-F1 threshold, compared in the
//!   map's dtype as numpy does with a float scalar), forced to 0 on void; ground truth = label 1.
//!   Both are split into 8-connected components (`scipy.ndimage.label`, raster numbering).
//! * Predicted components smaller than `min_pred` pixels are dropped; ground-truth components
//!   smaller than `min_gt` become void (the benchmark loops over component 0, the background, too:
//!   a background smaller than `min_gt` becomes void as well — kept).
//! * On the remaining non-void pixels, per ground-truth component `i` with touching predicted
//!   components `S`: `sIoU = |i ∩ S| / (|S| + |i| − |i ∩ S| − |S ∩ other gt components|)`; per
//!   predicted component `j` with touching ground-truth components `G`: `sIoU_pred` likewise and
//!   `PPV = |j ∩ G| / |j|`.
//! * For `t` in `linspace(0.25, 0.75, 11)`: `TP = #(sIoU ≥ t)`, `FN = #(sIoU < t)`, `FP = #(PPV < t)`,
//!   summed over frames; `F1(t) = 2TP / (2TP + FN + FP)`; mean F1, TP, FN, FP over the 11.
//! * Means of sIoU and PPV over all components of all frames (each frame's sum taken first).
//!
//! Where the benchmark divides by zero, the value is NaN (it warns for the means and raises for an
//! F1 with no component at all).
//!
//! Sizes: anomaly track 500 / 100 px, obstacle track and Lost and Found 50 / 10 px.

use super::metrics::pairwise_sum_f64;
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

/// float64 → float16 rounded once, to nearest even, as numpy casts (`half::f16::from_f64` goes
/// through float32 and can round twice).
fn f16_from_f64(x: f64) -> half::f16 {
    let y = x as f32;
    if !y.is_finite() || y as f64 == x {
        return half::f16::from_f32(y);
    }
    // Round to odd in float32 (truncate toward zero, set the last bit): float32 keeps 13 bits more
    // than float16, so the final rounding still sees which side of a float16 midpoint `x` lies on.
    let mut bits = y.to_bits();
    if (y as f64).abs() > x.abs() {
        bits -= 1;
    }
    half::f16::from_f32(f32::from_bits(bits | 1))
}

/// `map > threshold` as numpy 1.23 evaluates it for a float16 / float32 map and a float scalar:
/// in the smallest float type that holds the scalar's range (`np.min_scalar_type`: float16 inside
/// ±65000 or when not finite, float32 inside ±3.4e38), promoted with the map's type.
fn above(dtype: PredDtype, threshold: f64) -> Box<dyn Fn(f32) -> bool> {
    let t = threshold;
    let fits_f16 = (t > -65000.0 && t < 65000.0) || !t.is_finite();
    let fits_f32 = t > -3.4e38 && t < 3.4e38;
    match dtype {
        PredDtype::Float16 if fits_f16 => {
            let t = f16_from_f64(t);
            Box::new(move |s| half::f16::from_f32(s) > t)
        }
        _ if fits_f32 || !t.is_finite() => {
            let t = t as f32;
            Box::new(move |s| s > t)
        }
        _ => Box::new(move |s| s as f64 > t),
    }
}

/// Component statistics of one frame. `void` marks void pixels (label 255); a pixel both void and
/// anomalous counts as void.
pub fn frame_components(
    scores: &[f32],
    anomaly: &[u8],
    void: &[u8],
    (w, h): (usize, usize),
    threshold: f64,
    dtype: PredDtype,
    (min_pred, min_gt): (u64, u64),
) -> FrameComponents {
    let above = above(dtype, threshold);
    let pred_mask: Vec<bool> = (0..w * h)
        .map(|i| above(scores[i]) && void[i] == 0)
        .collect();
    let gt_mask: Vec<bool> = (0..w * h)
        .map(|i| anomaly[i] != 0 && void[i] == 0)
        .collect();
    let (mut pred, pred_sizes) = label_components(&pred_mask, w, h);
    let (gt, gt_sizes) = label_components(&gt_mask, w, h);
    for p in pred.iter_mut() {
        if pred_sizes[*p as usize] < min_pred {
            *p = 0;
        }
    }
    let mut roi: Vec<bool> = void.iter().map(|&v| v == 0).collect();
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

/// TP / FN / FP component counts at one sIoU threshold, over all frames.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SiouRow {
    pub siou: f64,
    pub tp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub fp: u64,
    pub f1: f64,
}

/// Aggregated component metrics (`ResultsInfo` of the benchmark, plus all 11 thresholds).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ComponentMetrics {
    /// The score threshold the maps were binarised at.
    pub threshold: f64,
    pub min_pred: u64,
    pub min_gt: u64,
    pub siou_gt: f64,
    pub siou_pred: f64,
    /// `prec_pred`.
    pub ppv: f64,
    pub mean_f1: f64,
    pub tp_mean: f64,
    pub fn_mean: f64,
    pub fp_mean: f64,
    pub gt_components: usize,
    pub pred_components: usize,
    /// One row per sIoU threshold in `linspace(0.25, 0.75, 11)`.
    pub by_siou: Vec<SiouRow>,
}

/// `np.linspace(0.25, 0.75, 11)`.
fn siou_thresholds() -> [f64; 11] {
    let step = 0.5 / 10.0;
    std::array::from_fn(|k| {
        if k == 10 {
            0.75
        } else {
            k as f64 * step + 0.25
        }
    })
}

/// Aggregates frames as `MetricSegment.aggregate` does. `limits` are recorded only.
pub fn aggregate(
    frames: &[FrameComponents],
    threshold: f64,
    (min_pred, min_gt): (u64, u64),
) -> ComponentMetrics {
    // sum(np.sum(frame) for frame in frames) / sum(len(frame) for frame in frames)
    let mean = |f: fn(&FrameComponents) -> &Vec<f64>| {
        let sum = frames
            .iter()
            .fold(0.0, |acc, fr| acc + pairwise_sum_f64(f(fr)));
        sum / frames.iter().map(|fr| f(fr).len()).sum::<usize>() as f64
    };
    let count = |f: fn(&FrameComponents) -> &Vec<f64>, pick: &dyn Fn(f64) -> bool| {
        frames
            .iter()
            .map(|fr| f(fr).iter().filter(|&&v| pick(v)).count() as u64)
            .sum::<u64>()
    };
    let by_siou: Vec<SiouRow> = siou_thresholds()
        .into_iter()
        .map(|t| {
            let tp = count(|f| &f.siou_gt, &|s| s >= t);
            let fn_ = count(|f| &f.siou_gt, &|s| s < t);
            let fp = count(|f| &f.ppv, &|s| s < t);
            let den = 2 * tp + fn_ + fp;
            let f1 = if den == 0 {
                f64::NAN
            } else {
                (2 * tp) as f64 / den as f64
            };
            SiouRow {
                siou: t,
                tp,
                fn_,
                fp,
                f1,
            }
        })
        .collect();
    let avg = |f: fn(&SiouRow) -> f64| by_siou.iter().fold(0.0, |acc, r| acc + f(r)) / 11.0;
    ComponentMetrics {
        threshold,
        min_pred,
        min_gt,
        siou_gt: mean(|f| &f.siou_gt),
        siou_pred: mean(|f| &f.siou_pred),
        ppv: mean(|f| &f.ppv),
        mean_f1: avg(|r| r.f1),
        tp_mean: avg(|r| r.tp as f64),
        fn_mean: avg(|r| r.fn_ as f64),
        fp_mean: avg(|r| r.fp as f64),
        gt_components: frames.iter().map(|f| f.siou_gt.len()).sum(),
        pred_components: frames.iter().map(|f| f.siou_pred.len()).sum(),
        by_siou,
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
        let m = aggregate(&[f], 0.5, (1, 1));
        assert_eq!((m.gt_components, m.pred_components), (2, 1));
        // t ≤ 0.4: TP 2, FN 0, FP 0 (PPV 0.571 ≥ t) → F1 1; 0.4 < t ≤ 0.55 → TP 0, FN 2, FP 0 → 0; etc.
        assert!(m.mean_f1 > 0.0 && m.mean_f1 < 1.0);

        let exact: Vec<f32> = gt.iter().map(|&g| g as f32).collect();
        let f = frame_components(&exact, &gt, &ig, (w, h), 0.5, PredDtype::Float32, (1, 1));
        assert_eq!(
            (f.siou_gt.clone(), f.ppv.clone()),
            (vec![1.0, 1.0], vec![1.0, 1.0])
        );
        assert_eq!(aggregate(&[f], 0.5, (1, 1)).mean_f1, 1.0);
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

    #[test]
    fn threshold_is_compared_in_the_maps_dtype() {
        // 0.30078 rounds to the float16 0.30078125: a float16 score of that value is not above it.
        let s = half::f16::from_f64(0.30078125).to_f32();
        assert!(!above(PredDtype::Float16, 0.30078)(s));
        assert!(above(PredDtype::Float32, 0.30078)(s));
        // Rounded straight from float64 (via float32 this would be a tie, rounded to even 1.0).
        let t = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
        assert!(!above(PredDtype::Float16, t)(1.0 + 2f32.powi(-10)));
        assert!(above(PredDtype::Float16, t)(1.0 + 2f32.powi(-9)));
        // Outside ±65000 the comparison happens in float32 (65500 would round up to 65504).
        assert!(above(PredDtype::Float16, 65500.0)(65504.0));
        assert!(!above(PredDtype::Float16, 64990.0)(64992.0));
    }

    #[test]
    fn no_component_at_all_gives_nan() {
        let m = aggregate(&[FrameComponents::default()], 0.5, (1, 1));
        assert!(m.siou_gt.is_nan() && m.ppv.is_nan() && m.mean_f1.is_nan());
        assert_eq!((m.gt_components, m.pred_components), (0, 0));
    }
}

/// Parity with the benchmark's own code (`default_instancer`, `segment_metrics`,
/// `MetricSegment.aggregate`) on `tests/fixtures/smiyc/`, written by
/// `scripts/make_smiyc_fixtures.py`: every case at the threshold it records (the pixel curve's
/// best-F1 threshold, or 0.5 for `components_fixed_threshold`).
#[cfg(test)]
pub(crate) mod fixture_tests {
    use super::*;
    use crate::eval::smiyc::fixture_tests::{cases, check, dtype, frames};
    use serde_json::Value;

    /// Every number of `expected.components` of a fixture against `m`: counts exactly, the rest
    /// within 1e-9.
    pub(crate) fn check_components(name: &str, m: &ComponentMetrics, want: &Value) {
        for (k, got) in [
            ("threshold", m.threshold),
            ("siou_gt", m.siou_gt),
            ("siou_pred", m.siou_pred),
            ("ppv", m.ppv),
            ("mean_f1", m.mean_f1),
            ("tp_mean", m.tp_mean),
            ("fn_mean", m.fn_mean),
            ("fp_mean", m.fp_mean),
        ] {
            check(name, k, got, &want[k], 1e-9);
        }
        let int = |k: &str| want[k].as_u64().unwrap();
        assert_eq!(
            (m.gt_components as u64, m.pred_components as u64),
            (int("gt_components"), int("pred_components")),
            "{name}: component counts"
        );
        assert_eq!((m.min_pred, m.min_gt), (int("min_pred"), int("min_gt")));
        let rows = want["by_siou"].as_array().unwrap();
        assert_eq!(rows.len(), m.by_siou.len());
        for (r, w) in m.by_siou.iter().zip(rows) {
            check(name, "siou", r.siou, &w["siou"], 0.0);
            let counts = (w["tp"].as_u64(), w["fn"].as_u64(), w["fp"].as_u64());
            assert_eq!(
                (Some(r.tp), Some(r.fn_), Some(r.fp)),
                counts,
                "{name}: TP / FN / FP at sIoU {}",
                r.siou
            );
        }
        for (k, t) in [("25", 0.25), ("50", 0.5), ("75", 0.75)] {
            let r = m.by_siou.iter().find(|r| r.siou == t).unwrap();
            assert_eq!(
                (r.tp, r.fn_, r.fp),
                (
                    int(&format!("tp_{k}")),
                    int(&format!("fn_{k}")),
                    int(&format!("fp_{k}"))
                ),
                "{name}: counts at {t}"
            );
            check(
                name,
                &format!("f1_{k}"),
                r.f1,
                &want[format!("f1_{k}")],
                1e-9,
            );
        }
    }

    #[test]
    fn component_metrics_match_the_benchmark() {
        let cases = cases();
        assert!(cases.len() >= 6, "SMIYC fixtures missing");
        for (name, case) in cases {
            let want = &case["expected"]["components"];
            let thr = want["threshold"].as_f64().unwrap();
            let limits = (
                want["min_pred"].as_u64().unwrap(),
                want["min_gt"].as_u64().unwrap(),
            );
            let per_frame: Vec<FrameComponents> = frames(&case)
                .iter()
                .map(|f| {
                    frame_components(
                        &f.scores,
                        &f.anomaly,
                        &f.void,
                        (f.width, f.height),
                        thr,
                        dtype(&case),
                        limits,
                    )
                })
                .collect();
            check_components(&name, &aggregate(&per_frame, thr, limits), want);
        }
    }
}
