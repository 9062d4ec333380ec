//! The SegmentMeIfYouCan server's binned pixel metrics (`PixBinaryClass`,
//! `road_anomaly_benchmark: metrics/pixel_classification.py` and `pixel_classification_curves.py`).
//!
//! Per frame (non-ignored pixels): bin edges = `unique([0, 1] ∪ quantile(positive scores,
//! linspace(0, 1, min(384, n_pos))) ∪ quantile(negative scores, linspace(0, 1, min(384, n_neg))))`;
//! each bin `[e_k, e_{k+1})` (the last one closed; scores outside `[e_0, e_last]` are not counted)
//! becomes one threshold `e_k` with its positive and negative counts. Frames are aggregated by
//! sorting all thresholds descending and accumulating; repeated thresholds are collapsed;
//! `(0, 0)` is prepended and `(P, N)` appended when missing. Then:
//! `AP = Σ diff(recall) · precision[1:]`, `FPR95 = fpr[searchsorted(tpr, 0.95)]` (1 when never
//! reached), `AUROC = trapz(tpr, fpr)`, best F1 = `max 2TP / (2TP + FP + FN)`.
//!
//! Difference from the server, confined to ties: numpy's unstable `argsort` decides the order of
//! equal thresholds from different frames, which matters only for the curve's first point when the
//! highest threshold of several frames coincides; here that order is a stable ascending sort,
//! reversed.
//! NOTE(upstream): the server reads `best_f1_threshold` (and the TPR95 threshold) from the *uncollapsed*
//! threshold list with an index into the collapsed, endpoint-extended curve; that quirk is kept, since
//! the server's component metrics binarise at that value.
//!
//! The quantiles follow numpy 1.24's `linear` method, including its float16 (or float32) subtraction
//! of neighbouring values, so the bin edges match those numpy computes from the stored map.

use super::metrics::{pairwise_sum_f64, Histogram};
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

/// Values in ascending order with their multiplicities (one class of a frame).
struct Sorted {
    values: Vec<f32>,
    /// Cumulative count up to and including each value.
    cum: Vec<u64>,
}

impl Sorted {
    fn len(&self) -> u64 {
        self.cum.last().copied().unwrap_or(0)
    }

    /// The `k`-th smallest value.
    fn at(&self, k: u64) -> f32 {
        self.values[self.cum.partition_point(|&c| c <= k)]
    }
}

/// `np.quantile(values, qs)` with the default `linear` method, as numpy 1.24 evaluates it.
fn quantiles(s: &Sorted, qs: &[f64], dtype: PredDtype) -> Vec<f64> {
    let n = s.len();
    qs.iter()
        .map(|&q| {
            // numpy's `linear` method: virtual index (n - 1) * q.
            let virtual_index = (n - 1) as f64 * q;
            let prev = virtual_index.floor().clamp(0.0, (n - 1) as f64);
            let next = (prev + 1.0).clamp(0.0, (n - 1) as f64);
            let gamma = virtual_index - virtual_index.floor();
            let a = s.at(prev as u64) as f64;
            let b = s.at(next as u64) as f64;
            // `subtract(b, a)` happens in the array's own type.
            let diff = match dtype {
                PredDtype::Float16 => half::f16::from_f64(b - a).to_f64(),
                PredDtype::Float32 => (b - a) as f32 as f64,
            };
            if gamma >= 0.5 {
                b - diff * (1.0 - gamma)
            } else {
                a + diff * gamma
            }
        })
        .collect()
}

/// The thresholds and counts of one frame. `hist` holds the frame's non-ignored pixels.
fn frame_entries(hist: &Histogram, dtype: PredDtype) -> Vec<Entry> {
    let ascending = |pick: fn(&super::metrics::Bin) -> u64| {
        let mut values = Vec::new();
        let mut cum = Vec::new();
        let mut c = 0;
        for b in hist.bins().iter().rev() {
            let k = pick(b);
            if k > 0 {
                c += k;
                values.push(b.score);
                cum.push(c);
            }
        }
        Sorted { values, cum }
    };
    let pos = ascending(|b| b.pos);
    let neg = ascending(|b| b.neg);
    let mut edges = vec![0.0, 1.0];
    for s in [&pos, &neg] {
        if s.len() > 0 {
            let m = (NUM_BINS / 2).min(s.len() as usize);
            edges.extend(quantiles(s, &linspace01(m), dtype));
        }
    }
    edges.sort_by(f64::total_cmp);
    edges.dedup();
    // np.histogram: bin k counts e_k <= v < e_{k+1}; the last bin also takes v == e_last.
    let mut entries: Vec<Entry> = edges
        .windows(2)
        .map(|w| Entry {
            threshold: w[0],
            pos: 0,
            neg: 0,
        })
        .collect();
    let last = edges.len() - 1;
    for b in hist.bins() {
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
    entries
}

/// Aggregates frames into the server's binned curve.
#[derive(Debug, Default)]
pub struct BinnedAccumulator {
    entries: Vec<Entry>,
    num_pos: u64,
    num_neg: u64,
}

/// The server's pixel metrics (fractions).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BinnedMetrics {
    pub ap: f64,
    pub auroc: f64,
    pub fpr95: f64,
    pub best_f1: f64,
    pub best_f1_threshold: f64,
    pub tpr95_threshold: f64,
}

impl BinnedAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a frame: `hist` of its non-ignored pixels, `dtype` of the stored map.
    pub fn push(&mut self, hist: &Histogram, dtype: PredDtype) {
        self.num_pos += hist.positives();
        self.num_neg += hist.negatives();
        self.entries.extend(frame_entries(hist, dtype));
    }

    /// `None` when no pixel was added.
    pub fn finish(mut self) -> Option<BinnedMetrics> {
        if self.entries.is_empty() || self.num_pos + self.num_neg == 0 {
            return None;
        }
        // Descending thresholds. Equal thresholds of different frames follow a stable ascending
        // sort, reversed (numpy's `argsort(...)[::-1]` leaves their order unspecified).
        self.entries
            .sort_by(|a, b| a.threshold.total_cmp(&b.threshold));
        self.entries.reverse();
        let all_thresholds: Vec<f64> = self.entries.iter().map(|e| e.threshold).collect();
        let (p, n) = (self.num_pos as f64, self.num_neg as f64);
        let mut cum_tp = Vec::with_capacity(self.entries.len());
        let mut cum_fp = Vec::with_capacity(self.entries.len());
        let (mut t, mut f) = (0u64, 0u64);
        for e in &self.entries {
            t += e.pos;
            f += e.neg;
            cum_tp.push(t as f64);
            cum_fp.push(f as f64);
        }
        // The server keeps index 0, the last index of every run of equal thresholds, and the last
        // index, duplicates included: a duplicate adds nothing to the areas but shifts the index
        // that picks the best-F1 threshold, so it is kept.
        let last = self.entries.len() - 1;
        let keep = std::iter::once(0)
            .chain((0..last).filter(|&i| all_thresholds[i] != all_thresholds[i + 1]))
            .chain(std::iter::once(last));
        let (mut tp, mut fp): (Vec<f64>, Vec<f64>) = keep.map(|i| (cum_tp[i], cum_fp[i])).unzip();
        if tp[0] != 0.0 || fp[0] != 0.0 {
            tp.insert(0, 0.0);
            fp.insert(0, 0.0);
        }
        if *tp.last().expect("non-empty") != p || *fp.last().expect("non-empty") != n {
            tp.push(p);
            fp.push(n);
        }
        let tpr: Vec<f64> = tp.iter().map(|&x| x / p).collect();
        let fpr: Vec<f64> = fp.iter().map(|&x| x / n).collect();
        let precision: Vec<f64> = tp
            .iter()
            .zip(&fp)
            .map(|(&t, &f)| if t + f > 0.0 { t / (t + f) } else { 1.0 })
            .collect();
        let terms: Vec<f64> = (1..tpr.len())
            .map(|i| (tpr[i] - tpr[i - 1]) * precision[i])
            .collect();
        let ap = pairwise_sum_f64(&terms);
        let auroc = super::metrics::trapezoid(&tpr, &fpr);
        let i95 = tpr.partition_point(|&x| x < 0.95);
        let (fpr95, tpr95_threshold) = if i95 < tpr.len() {
            (
                fpr[i95],
                all_thresholds.get(i95).copied().unwrap_or(f64::NAN),
            )
        } else {
            (1.0, 0.0)
        };
        let mut best = (f64::NAN, 0usize);
        for i in 0..tp.len() {
            let fneg = p - tp[i];
            let f1 = 2.0 * tp[i] / (2.0 * tp[i] + fp[i] + fneg);
            if !f1.is_nan() && (best.0.is_nan() || f1 > best.0) {
                best = (f1, i);
            }
        }
        Some(BinnedMetrics {
            ap,
            auroc,
            fpr95,
            best_f1: best.0,
            best_f1_threshold: all_thresholds.get(best.1).copied().unwrap_or(f64::NAN),
            tpr95_threshold,
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
    fn quantiles_interpolate_linearly() {
        let h = Histogram::from_pixels(&[0.0, 0.5, 0.5, 1.0], &[1, 1, 1, 1], None).unwrap();
        let e = frame_entries(&h, PredDtype::Float32);
        // Positive quantiles at linspace(0, 1, 4) of [0, .5, .5, 1]: 0, 0.5, 0.5, 1 → edges {0, .5, 1}.
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].threshold, e[0].pos), (0.0, 1));
        assert_eq!((e[1].threshold, e[1].pos), (0.5, 3));
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
    }

    #[test]
    fn binned_ap_is_close_to_exact_ap() {
        let scores: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        let gt: Vec<u8> = (0..5000)
            .map(|i| (((i * 7919) % 1000) as f32 / 1000.0 + ((i % 7) as f32) * 0.1 > 0.9) as u8)
            .collect();
        let h = Histogram::from_pixels(&scores, &gt, None).unwrap();
        let mut acc = BinnedAccumulator::new();
        acc.push(&h, PredDtype::Float32);
        let binned = acc.finish().unwrap();
        let exact = h.metrics().unwrap();
        assert!(
            (binned.ap - exact.ap).abs() < 0.02,
            "{} vs {}",
            binned.ap,
            exact.ap
        );
        assert!((binned.auroc - exact.auroc).abs() < 0.01);
    }
}

/// Parity with the server's procedure on the committed fixtures (cases with `expected_smiyc`,
/// written by `scripts/make_metric_fixtures.py`).
#[cfg(test)]
mod fixture_tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn binned_metrics_match_numpy_on_fixtures() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let case: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let Some(want) = case.get("expected_smiyc") else {
                continue;
            };
            let dtype = if case["smiyc_dtype"] == "float16" {
                PredDtype::Float16
            } else {
                PredDtype::Float32
            };
            let mut acc = BinnedAccumulator::new();
            for f in case["frames"].as_array().unwrap() {
                let (s, g, i) = crate::eval::fixture_frame(f);
                acc.push(&Histogram::from_pixels(&s, &g, Some(&i)).unwrap(), dtype);
            }
            let m = acc.finish().unwrap();
            let name = case["name"].as_str().unwrap();
            for (k, got) in [
                ("ap", m.ap),
                ("auroc", m.auroc),
                ("fpr95", m.fpr95),
                ("best_f1", m.best_f1),
                ("best_f1_threshold", m.best_f1_threshold),
            ] {
                let w = want[k].as_f64().unwrap();
                assert!(
                    (w - got).abs() <= 1e-9,
                    "{name}: {k} = {got}, numpy procedure says {w}"
                );
            }
            checked += 1;
        }
        assert!(checked >= 2, "no smiyc fixtures in {}", dir.display());
    }
}
