//! The SegmentMeIfYouCan benchmark's binned pixel metrics (`PixBinaryClass`), as
//! `SegmentMeIfYouCan/road-anomaly-benchmark` computes them at commit `1c7804e`
//! (`road_anomaly_benchmark/metrics/pixel_classification.py`: `binary_confusion_matrix`,
//! `MetricPixelClassification.aggregate_dynamic_bins`; `pixel_classification_curves.py`:
//! `curves_from_cmats`), with numpy 1.23.3 as pinned by that repository.
//!
//! Per frame, on its non-void pixels with scores `s` in the stored map's dtype:
//! * `eps = max((max s − min s) · 0.01, 0.01)` (the range subtracted in the map's dtype, the rest in
//!   float64); bin edges = `unique({min s − eps, max s + eps} ∪ quantile(positive scores,
//!   linspace(0, 1, min(384, n_pos))) ∪ quantile(negative scores, linspace(0, 1, min(384, n_neg))))`;
//! * bin `k` (`e_k <= s < e_{k+1}`, the last one closed) becomes threshold `e_k` with its positive
//!   and negative counts.
//!
//! Over all frames (in dataset order): thresholds sorted descending by `np.argsort(...)[::-1]`
//! (numpy's unstable introsort, [`super::numpy_sort`]), counts accumulated in that order. The curve
//! keeps index 0, the last index of every run of equal thresholds and the last index; `(0, 0)` is
//! prepended (threshold `max + 1`) unless the first point is already there, `(P, N)` appended
//! (threshold `max − 1`) unless the last point is. Thresholds are collapsed and extended with the
//! counts, so the best-F1 and TPR95 thresholds are read from the curve's own list. Then
//! `AP = Σ diff(recall) · precision[1:]` (precision 1 where nothing is predicted),
//! `AUROC = trapz(tpr, fpr)`, `FPR95 = fpr[searchsorted(tpr, 0.95)]` (1, threshold 0 when never
//! reached), best F1 = first maximum of `2TP / (2TP + FP + FN)`.
//!
//! Which of several equal highest thresholds comes first decides the curve's first point (one
//! frame's top bin instead of all of them) and so moves AP and AUROC in the 5th digit when, say,
//! several float16 maps saturate at 1.0. That order is numpy's, computed here the same way, for the
//! frames in dataset order: the benchmark's sequential evaluation. Its parallel mode collects frames
//! in completion order, which is not reproducible.
//!
//! Where the benchmark fails, this module does not: a frame with every pixel void is skipped (the
//! benchmark raises on the empty `np.min`).

use super::metrics::{pairwise_sum_f64, Bin, Histogram};
use super::numpy_sort;
use super::predictions::PredDtype;

/// Bins per frame (`num_bins` of `PixBinaryClass`): half from positives, half from negatives.
pub const NUM_BINS: usize = 768;

/// One threshold of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    threshold: f64,
    pos: u64,
    neg: u64,
}

/// `np.linspace(0, 1, m)`.
fn linspace01(m: usize) -> Vec<f64> {
    if m == 0 {
        return Vec::new();
    }
    if m == 1 {
        return vec![0.0];
    }
    let step = 1.0 / (m - 1) as f64;
    let mut v: Vec<f64> = (0..m).map(|i| i as f64 * step + 0.0).collect();
    v[m - 1] = 1.0;
    v
}

/// `b - a` for two values of the map's dtype, computed as numpy does in that dtype (float16:
/// in float32, rounded to float16).
fn subtract_in(dtype: PredDtype, b: f64, a: f64) -> f64 {
    let d = b as f32 - a as f32;
    match dtype {
        PredDtype::Float16 => half::f16::from_f32(d).to_f64(),
        PredDtype::Float32 => d as f64,
    }
}

/// Values in ascending order with their multiplicities (one class of a frame).
struct Sorted {
    values: Vec<f32>,
    /// Cumulative count up to and including each value.
    cum: Vec<u64>,
}

impl Sorted {
    fn of(hist: &Histogram, pick: fn(&Bin) -> u64) -> Sorted {
        let (mut values, mut cum, mut c) = (Vec::new(), Vec::new(), 0);
        for b in hist.bins().iter().rev() {
            let k = pick(b);
            if k > 0 {
                c += k;
                values.push(b.score);
                cum.push(c);
            }
        }
        Sorted { values, cum }
    }

    fn len(&self) -> u64 {
        self.cum.last().copied().unwrap_or(0)
    }

    /// The `k`-th smallest value.
    fn at(&self, k: u64) -> f64 {
        self.values[self.cum.partition_point(|&c| c <= k)] as f64
    }
}

/// `np.quantile(values, qs)` (method `linear`) as numpy 1.23 evaluates it: `_lerp` subtracts the
/// neighbours in the array's dtype and interpolates in float64, from below for `gamma < 0.5` and
/// from above otherwise.
fn quantiles(s: &Sorted, qs: &[f64], dtype: PredDtype) -> Vec<f64> {
    let n = s.len();
    qs.iter()
        .map(|&q| {
            let virtual_index = (n - 1) as f64 * q;
            let (prev, next, gamma) = if virtual_index >= (n - 1) as f64 {
                // Past the last index numpy takes the last value twice (gamma is then irrelevant).
                (n - 1, n - 1, 1.0)
            } else {
                let f = virtual_index.floor();
                (f as u64, f as u64 + 1, virtual_index - f)
            };
            let (a, b) = (s.at(prev), s.at(next));
            let diff = subtract_in(dtype, b, a);
            if gamma >= 0.5 {
                b - diff * (1.0 - gamma)
            } else {
                a + diff * gamma
            }
        })
        .collect()
}

/// The thresholds and counts of one frame, highest threshold first (`bin_edges[::-1][1:]`).
/// `hist` holds the frame's non-void pixels; empty when it holds none.
fn frame_entries(hist: &Histogram, dtype: PredDtype) -> Vec<Entry> {
    let bins = hist.bins();
    let (Some(max), Some(min)) = (bins.first(), bins.last()) else {
        return Vec::new();
    };
    let (vmax, vmin) = (max.score as f64, min.score as f64);
    let eps = (subtract_in(dtype, vmax, vmin) * 1e-2).max(1e-2);
    let mut edges = vec![vmin - eps, vmax + eps];
    for s in [Sorted::of(hist, |b| b.pos), Sorted::of(hist, |b| b.neg)] {
        if s.len() > 0 {
            let m = (NUM_BINS / 2).min(s.len() as usize);
            edges.extend(quantiles(&s, &linspace01(m), dtype));
        }
    }
    edges.sort_by(f64::total_cmp);
    edges.dedup();
    // np.histogram: bin k counts e_k <= v < e_{k+1}; the last bin also takes v == e_last; values
    // outside [e_0, e_last] are not counted (none are: the edges bracket every score).
    let mut entries: Vec<Entry> = edges
        .windows(2)
        .map(|w| Entry {
            threshold: w[0],
            pos: 0,
            neg: 0,
        })
        .collect();
    let last = edges.len() - 1;
    for b in bins {
        let v = b.score as f64;
        if v < edges[0] || v > edges[last] {
            continue;
        }
        let k = if v == edges[last] {
            last - 1
        } else {
            edges.partition_point(|&e| e <= v) - 1
        };
        entries[k].pos += b.pos;
        entries[k].neg += b.neg;
    }
    entries.reverse();
    entries
}

/// Aggregates frames into the benchmark's binned curve.
#[derive(Debug, Default)]
pub struct BinnedAccumulator {
    /// Every frame's entries, frame after frame.
    entries: Vec<Entry>,
    num_pos: u64,
    num_neg: u64,
}

/// The benchmark's pixel metrics (fractions) and the thresholds read off its curve.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BinnedMetrics {
    /// `area_PRC`.
    pub ap: f64,
    /// `area_ROC`.
    pub auroc: f64,
    /// `tpr95_fpr`.
    pub fpr95: f64,
    pub tpr95_threshold: f64,
    pub best_f1: f64,
    /// Where the component metrics binarise (`score > threshold`).
    pub best_f1_threshold: f64,
    /// Points of the collapsed, extended curve (`len(curve_tpr)`).
    pub curve_points: usize,
}

/// `np.trapz(y, x)`.
fn trapz(y: &[f64], x: &[f64]) -> f64 {
    let terms: Vec<f64> = (1..x.len())
        .map(|i| (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2.0)
        .collect();
    pairwise_sum_f64(&terms)
}

impl BinnedAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a frame: `hist` of its non-void pixels, `dtype` of the stored map.
    pub fn push(&mut self, hist: &Histogram, dtype: PredDtype) {
        self.num_pos += hist.positives();
        self.num_neg += hist.negatives();
        self.entries.extend(frame_entries(hist, dtype));
    }

    /// `None` when no pixel was added.
    pub fn finish(self) -> Option<BinnedMetrics> {
        if self.entries.is_empty() {
            return None;
        }
        let (p, n) = (self.num_pos as f64, self.num_neg as f64);
        // aggregate_dynamic_bins: descending order, cumulative counts in float64.
        let unsorted: Vec<f64> = self.entries.iter().map(|e| e.threshold).collect();
        let order: Vec<usize> = numpy_sort::argsort(&unsorted).into_iter().rev().collect();
        let sorted: Vec<f64> = order.iter().map(|&i| unsorted[i]).collect();
        let (mut cum_tp, mut cum_fp) = (Vec::with_capacity(order.len()), Vec::new());
        let (mut t, mut f) = (0.0f64, 0.0f64);
        for &i in &order {
            t += self.entries[i].pos as f64;
            f += self.entries[i].neg as f64;
            cum_tp.push(t);
            cum_fp.push(f);
        }
        // curves_from_cmats: index 0, the last index of every run of equal thresholds, and the
        // last index (index 0 may be taken twice; a repeated point adds nothing to the areas and
        // comes after its twin, so no maximum or search lands on it first).
        let last = order.len() - 1;
        let keep: Vec<usize> = std::iter::once(0)
            .chain((0..last).filter(|&i| sorted[i] != sorted[i + 1]))
            .chain(std::iter::once(last))
            .collect();
        let mut tp: Vec<f64> = keep.iter().map(|&i| cum_tp[i]).collect();
        let mut fp: Vec<f64> = keep.iter().map(|&i| cum_fp[i]).collect();
        let mut fneg: Vec<f64> = tp.iter().map(|&x| p - x).collect();
        let mut tneg: Vec<f64> = fp.iter().map(|&x| n - x).collect();
        let mut thresholds: Vec<f64> = keep.iter().map(|&i| sorted[i]).collect();
        let (num_pos, num_neg) = (tp[0] + fneg[0], fp[0] + tneg[0]);
        let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if tp[0] != 0.0 || fp[0] != 0.0 {
            tp.insert(0, 0.0);
            fp.insert(0, 0.0);
            fneg.insert(0, num_pos);
            tneg.insert(0, num_neg);
            thresholds.insert(0, max(&thresholds) + 1.0);
        }
        if tp[tp.len() - 1] != num_pos || fp[fp.len() - 1] != num_neg {
            tp.push(num_pos);
            fp.push(num_neg);
            fneg.push(0.0);
            tneg.push(0.0);
            thresholds.push(max(&thresholds) - 1.0);
        }
        let k = tp.len();
        let tpr: Vec<f64> = (0..k).map(|i| tp[i] / (tp[i] + fneg[i])).collect();
        let fpr: Vec<f64> = (0..k).map(|i| fp[i] / (fp[i] + tneg[i])).collect();
        let precision: Vec<f64> = (0..k)
            .map(|i| {
                let preds = tp[i] + fp[i];
                if preds > 0.0 {
                    tp[i] / preds
                } else {
                    1.0
                }
            })
            .collect();
        let ap_terms: Vec<f64> = (1..k)
            .map(|i| (tpr[i] - tpr[i - 1]) * precision[i])
            .collect();
        // searchsorted(tpr, 0.95), side left; NaN (no positives) sorts last as in numpy.
        let i95 = tpr.partition_point(|&x| x < 0.95);
        let (fpr95, tpr95_threshold) = if i95 < k {
            (fpr[i95], thresholds[i95])
        } else {
            (1.0, 0.0)
        };
        // nanargmax: the first maximum, NaN skipped.
        let mut best: Option<(f64, usize)> = None;
        for i in 0..k {
            let f1 = (2.0 * tp[i]) / (2.0 * tp[i] + fp[i] + fneg[i]);
            if !f1.is_nan() && best.is_none_or(|(b, _)| f1 > b) {
                best = Some((f1, i));
            }
        }
        let (best_f1, best_f1_threshold) = best
            .map(|(f1, i)| (f1, thresholds[i]))
            .unwrap_or((f64::NAN, f64::NAN));
        Some(BinnedMetrics {
            ap: pairwise_sum_f64(&ap_terms),
            auroc: trapz(&tpr, &fpr),
            fpr95,
            tpr95_threshold,
            best_f1,
            best_f1_threshold,
            curve_points: k,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy() {
        assert_eq!(linspace01(1), [0.0]);
        assert_eq!(linspace01(3), [0.0, 0.5, 1.0]);
    }

    #[test]
    fn edges_bracket_the_scores_so_a_maximum_of_one_gets_its_own_bin() {
        // Positives {0.5, 1, 1}, negatives {0, 0.5}: eps = 0.01, edges {-0.01, 0, 0.5, 1, 1.01}.
        let h = Histogram::from_pixels(&[0.5, 1.0, 1.0, 0.0, 0.5], &[1, 1, 1, 0, 0], None).unwrap();
        let e = frame_entries(&h, PredDtype::Float32);
        let got: Vec<(f64, u64, u64)> = e.iter().map(|e| (e.threshold, e.pos, e.neg)).collect();
        assert_eq!(got, [(1.0, 2, 0), (0.5, 1, 1), (0.0, 0, 1), (-0.01, 0, 0)]);
    }

    #[test]
    fn eps_follows_the_score_range() {
        // Range 10 → eps 0.1.
        let h = Histogram::from_pixels(&[-2.0, 8.0], &[0, 1], None).unwrap();
        let e = frame_entries(&h, PredDtype::Float32);
        assert_eq!(e.last().unwrap().threshold, -2.0 - 0.1);
    }

    #[test]
    fn quantiles_interpolate_in_float64_from_the_nearer_side() {
        let h = Histogram::from_pixels(&[0.0, 0.25, 1.0], &[1, 1, 1], None).unwrap();
        let s = Sorted::of(&h, |b| b.pos);
        // Virtual index 2 · 0.3 = 0.6 (γ >= 0.5): b − (b − a)(1 − γ) with a = 0, b = 0.25.
        let q = quantiles(&s, &[0.3, 0.1, 1.0], PredDtype::Float32);
        assert_eq!(q[0], 0.25 - 0.25 * (1.0 - 2.0 * 0.3));
        assert_eq!(q[1], 0.0 + 0.25 * (2.0 * 0.1));
        assert_eq!(q[2], 1.0);
    }

    #[test]
    fn float16_differences_are_rounded_to_float16() {
        // 1 - 2^-24 is not a float16; numpy's half subtraction rounds it to 1.
        let tiny = half::f16::from_bits(1).to_f64();
        assert_eq!(subtract_in(PredDtype::Float16, 1.0, tiny), 1.0);
        assert_eq!(subtract_in(PredDtype::Float32, 1.0, tiny), 1.0 - tiny);
    }

    #[test]
    fn well_separated_scores_give_a_perfect_curve() {
        let scores: Vec<f32> = (0..200)
            .map(|i| {
                if i < 50 {
                    0.9 + i as f32 * 1e-3
                } else {
                    i as f32 * 1e-3
                }
            })
            .collect();
        let gt: Vec<u8> = (0..200).map(|i| (i < 50) as u8).collect();
        let h = Histogram::from_pixels(&scores, &gt, None).unwrap();
        let mut acc = BinnedAccumulator::new();
        acc.push(&h, PredDtype::Float32);
        acc.push(&h, PredDtype::Float32);
        let m = acc.finish().unwrap();
        assert!((m.ap - 1.0).abs() < 1e-12, "{m:?}");
        assert!((m.auroc - 1.0).abs() < 1e-12);
        assert_eq!(m.fpr95, 0.0);
        assert_eq!(m.best_f1, 1.0);
        // The best F1 is reached at the lowest positive score, 0.9: a threshold of the curve.
        assert_eq!(m.best_f1_threshold, 0.9f32 as f64);
    }

    #[test]
    fn void_only_frames_are_skipped() {
        let mut acc = BinnedAccumulator::new();
        acc.push(&Histogram::default(), PredDtype::Float16);
        assert!(acc.finish().is_none());
    }
}

/// Parity with the benchmark's own code on `tests/fixtures/smiyc/*.json`, written by
/// `scripts/make_smiyc_fixtures.py` (the command is in its header and in `tests/fixtures/README.md`).
#[cfg(test)]
pub(crate) mod fixture_tests {
    use super::*;
    use serde_json::Value;

    /// One frame of a SMIYC fixture.
    pub(crate) struct Frame {
        pub fid: String,
        pub width: usize,
        pub height: usize,
        pub scores: Vec<f32>,
        pub anomaly: Vec<u8>,
        pub void: Vec<u8>,
    }

    /// The dataset cases (those with frames and a pixel curve), by file name.
    pub(crate) fn cases() -> Vec<(String, Value)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smiyc");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                (p.file_stem().unwrap().to_string_lossy().into_owned(), v)
            })
            .filter(|(_, v)| v.get("frames").is_some())
            .collect()
    }

    pub(crate) fn dtype(case: &Value) -> PredDtype {
        match case["dtype"].as_str().unwrap() {
            "float16" => PredDtype::Float16,
            "float32" => PredDtype::Float32,
            other => panic!("dtype {other}"),
        }
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    pub(crate) fn frames(case: &Value) -> Vec<Frame> {
        let dtype = dtype(case);
        case["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let bytes = hex_bytes(f["score"].as_str().unwrap());
                let scores: Vec<f32> = match dtype {
                    PredDtype::Float16 => bytes
                        .chunks(2)
                        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                        .collect(),
                    PredDtype::Float32 => bytes
                        .chunks(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                };
                let label = f["label"].as_str().unwrap().as_bytes();
                let (width, height) = (
                    f["width"].as_u64().unwrap() as usize,
                    f["height"].as_u64().unwrap() as usize,
                );
                assert_eq!(
                    (scores.len(), label.len()),
                    (width * height, width * height)
                );
                Frame {
                    fid: f["fid"].as_str().unwrap().to_string(),
                    width,
                    height,
                    scores,
                    anomaly: label.iter().map(|&c| (c == b'1') as u8).collect(),
                    void: label.iter().map(|&c| (c == b'x') as u8).collect(),
                }
            })
            .collect()
    }

    /// `got` equals `want` (null = NaN) within `tol`.
    pub(crate) fn check(case: &str, key: &str, got: f64, want: &Value, tol: f64) {
        let ok = match want.as_f64() {
            Some(w) => (w - got).abs() <= tol,
            None => want.is_null() && got.is_nan(),
        };
        assert!(ok, "{case}: {key} = {got}, the benchmark says {want}");
    }

    #[test]
    fn binned_metrics_match_the_benchmark() {
        let cases = cases();
        assert!(cases.len() >= 5, "SMIYC fixtures missing");
        for (name, case) in cases {
            let Some(want) = case["expected"].get("pixel") else {
                continue;
            };
            let mut acc = BinnedAccumulator::new();
            for f in frames(&case) {
                let h = Histogram::from_pixels(&f.scores, &f.anomaly, Some(&f.void)).unwrap();
                acc.push(&h, dtype(&case));
            }
            let m = acc.finish().unwrap();
            for (k, got) in [
                ("ap", m.ap),
                ("auroc", m.auroc),
                ("fpr95", m.fpr95),
                ("tpr95_threshold", m.tpr95_threshold),
                ("best_f1", m.best_f1),
                ("best_f1_threshold", m.best_f1_threshold),
            ] {
                check(&name, k, got, &want[k], 1e-9);
            }
            assert_eq!(
                m.curve_points as u64,
                want["curve_points"].as_u64().unwrap(),
                "{name}: curve points"
            );
        }
    }
}
