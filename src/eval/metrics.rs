//! Exact pixel metrics over score histograms, streamed frame by frame.
//!
//! Every metric here is a function of the sorted list of *distinct* scores with, for each, the number of
//! positive and negative pixels that carry it ([`Histogram`]). A frame is turned into such a list by a
//! radix sort of its scores; frames are merged into a running histogram, so memory grows with the number
//! of distinct score values (at most 65 536 for float16 predictions), never with pixels × frames.
//!
//! The definitions reproduce scikit-learn 1.2.1 as the reference evaluation calls it
//! (`jan-ackermann/Maskomaly: maskomaly/eval.py`):
//!
//! * [`CurveMetrics::ap`]: `average_precision_score`: one operating point per distinct score (ties
//!   collapsed), `AP = -Σ diff(recall) · precision[:-1]` on the reversed curve, step-wise. With no
//!   positives recall is set to one everywhere, which gives `-0.0`.
//! * [`CurveMetrics::auroc`]: `auc(*roc_curve(drop_intermediate=True))`, the trapezoid rule; NaN when a
//!   class is missing.
//! * [`CurveMetrics::fpr95`]: standard FPR95: FPR at the first threshold (full curve, highest score
//!   first) whose TPR is `>= 0.95`.
//! * [`CurveMetrics::fpr_at_tpr90_seed`]: the reference's "FPR": the FPR of the first point of the
//!   *dropped* ROC curve whose TPR is `> 0.9` (strict), 0 when there is none (no positives).
//! * [`CurveMetrics::aupr_seed`]: trapezoid over the precision-recall curve after sorting it by recall.
//!   NOTE(upstream): the reference uses numpy's default `argsort` (introsort, not stable), so the order
//!   of points with equal recall, and with it the result, is implementation-defined once the curve has
//!   more than 16 points. Here the sort is stable, which is what numpy does for short curves; expect
//!   differences in the 4th digit on large, tie-heavy curves.
//!
//! Sums are taken with numpy's pairwise summation so results agree with the reference to the last few
//! ulps, not only to a tolerance.

use std::cmp::Ordering;

/// Input that no metric can be computed from.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricError {
    #[error("score and label have different lengths ({scores} vs {labels} pixels)")]
    LengthMismatch { scores: usize, labels: usize },
    #[error("score at pixel {index} is not finite ({value})")]
    NonFinite { index: usize, value: f32 },
    #[error("no pixels to evaluate (all pixels are ignored or the input is empty)")]
    Empty,
}

/// All pixels that carry one distinct score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bin {
    pub score: f32,
    pub pos: u64,
    pub neg: u64,
}

/// Distinct scores, strictly descending, with their positive / negative pixel counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    bins: Vec<Bin>,
}

/// Maps a float to a `u32` whose unsigned order is the float order (`-0.0` is folded onto `0.0`
/// first, because numpy treats them as one threshold).
fn sort_key(score: f32) -> u32 {
    let bits = if score == 0.0 { 0 } else { score.to_bits() };
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

fn from_sort_key(key: u32) -> f32 {
    let bits = if key & 0x8000_0000 != 0 {
        key & 0x7fff_ffff
    } else {
        !key
    };
    f32::from_bits(bits)
}

/// LSD radix sort of `(key << 1 | label)` values: 33 significant bits in three 11-bit passes.
/// About ten times faster than a comparison sort for a 2-megapixel frame.
fn radix_sort_33(data: &mut Vec<u64>) {
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    let mut tmp = vec![0u64; data.len()];
    for pass in 0..3 {
        let shift = pass * BITS;
        let mut counts = vec![0usize; BUCKETS];
        for &v in data.iter() {
            counts[((v >> shift) as usize) & (BUCKETS - 1)] += 1;
        }
        // A digit shared by every value leaves the order unchanged: skip the pass.
        if counts.contains(&data.len()) {
            continue;
        }
        let mut offset = 0;
        for c in counts.iter_mut() {
            let n = *c;
            *c = offset;
            offset += n;
        }
        for &v in data.iter() {
            let b = ((v >> shift) as usize) & (BUCKETS - 1);
            tmp[counts[b]] = v;
            counts[b] += 1;
        }
        std::mem::swap(data, &mut tmp);
    }
}

impl Histogram {
    /// Histogram of one frame. `positive[i] != 0` marks an anomaly pixel; pixels with
    /// `ignore[i] != 0` are left out when `ignore` is given.
    pub fn from_pixels(
        scores: &[f32],
        positive: &[u8],
        ignore: Option<&[u8]>,
    ) -> Result<Histogram, MetricError> {
        if scores.len() != positive.len() {
            return Err(MetricError::LengthMismatch {
                scores: scores.len(),
                labels: positive.len(),
            });
        }
        if let Some(ig) = ignore {
            if ig.len() != scores.len() {
                return Err(MetricError::LengthMismatch {
                    scores: scores.len(),
                    labels: ig.len(),
                });
            }
        }
        let mut packed = Vec::with_capacity(scores.len());
        for (i, (&s, &p)) in scores.iter().zip(positive).enumerate() {
            if ignore.is_some_and(|ig| ig[i] != 0) {
                continue;
            }
            if !s.is_finite() {
                // scikit-learn rejects NaN and infinity too ("Input contains NaN").
                return Err(MetricError::NonFinite { index: i, value: s });
            }
            packed.push(((sort_key(s) as u64) << 1) | (p != 0) as u64);
        }
        radix_sort_33(&mut packed);
        let mut bins: Vec<Bin> = Vec::new();
        for &v in packed.iter().rev() {
            let score = from_sort_key((v >> 1) as u32);
            let pos = v & 1;
            match bins.last_mut() {
                Some(b) if b.score == score => {
                    b.pos += pos;
                    b.neg += 1 - pos;
                }
                _ => bins.push(Bin {
                    score,
                    pos,
                    neg: 1 - pos,
                }),
            }
        }
        Ok(Histogram { bins })
    }

    /// Builds a histogram from bins in any order (duplicates are summed).
    pub fn from_bins(mut bins: Vec<Bin>) -> Histogram {
        bins.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut out: Vec<Bin> = Vec::with_capacity(bins.len());
        for b in bins {
            match out.last_mut() {
                Some(l) if l.score == b.score => {
                    l.pos += b.pos;
                    l.neg += b.neg;
                }
                _ => out.push(b),
            }
        }
        Histogram { bins: out }
    }

    pub fn bins(&self) -> &[Bin] {
        &self.bins
    }

    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
    }

    pub fn positives(&self) -> u64 {
        self.bins.iter().map(|b| b.pos).sum()
    }

    pub fn negatives(&self) -> u64 {
        self.bins.iter().map(|b| b.neg).sum()
    }

    /// Merges two descending histograms in one linear pass.
    pub fn merge(&self, other: &Histogram) -> Histogram {
        let (a, b) = (&self.bins, &other.bins);
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].score.partial_cmp(&b[j].score) {
                Some(Ordering::Greater) => {
                    out.push(a[i]);
                    i += 1;
                }
                Some(Ordering::Less) => {
                    out.push(b[j]);
                    j += 1;
                }
                _ => {
                    out.push(Bin {
                        score: a[i].score,
                        pos: a[i].pos + b[j].pos,
                        neg: a[i].neg + b[j].neg,
                    });
                    i += 1;
                    j += 1;
                }
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        Histogram { bins: out }
    }

    /// Cumulative (tps, fps) after each distinct threshold, highest score first: scikit-learn's
    /// `_binary_clf_curve`.
    fn cumulative(&self) -> (Vec<f64>, Vec<f64>) {
        let mut tps = Vec::with_capacity(self.bins.len());
        let mut fps = Vec::with_capacity(self.bins.len());
        let (mut t, mut f) = (0u64, 0u64);
        for b in &self.bins {
            t += b.pos;
            f += b.neg;
            tps.push(t as f64);
            fps.push(f as f64);
        }
        (tps, fps)
    }

    /// `precision_recall_curve`: (precision, recall), lowest threshold first, with the final (1, 0).
    pub fn pr_curve(&self) -> (Vec<f64>, Vec<f64>) {
        let (tps, fps) = self.cumulative();
        let total_pos = tps.last().copied().unwrap_or(0.0);
        let k = tps.len();
        let mut precision = Vec::with_capacity(k + 1);
        let mut recall = Vec::with_capacity(k + 1);
        for i in (0..k).rev() {
            let ps = tps[i] + fps[i];
            precision.push(if ps != 0.0 { tps[i] / ps } else { 0.0 });
            // NOTE(upstream): with no positives scikit-learn 1.2.1 sets recall to one everywhere.
            recall.push(if total_pos == 0.0 {
                1.0
            } else {
                tps[i] / total_pos
            });
        }
        precision.push(1.0);
        recall.push(0.0);
        (precision, recall)
    }

    /// `roc_curve`: (fpr, tpr) with the leading (0, 0); `drop_intermediate` as in scikit-learn 1.2.1
    /// (keep the first and last threshold and every one where the second difference of fps or tps is
    /// non-zero). A missing class makes that coordinate NaN.
    pub fn roc_curve(&self, drop_intermediate: bool) -> (Vec<f64>, Vec<f64>) {
        let (tps, fps) = self.cumulative();
        let k = tps.len();
        let keep: Vec<usize> = if drop_intermediate && k > 2 {
            let mut v = vec![0];
            for i in 1..k - 1 {
                let d2f = (fps[i + 1] - fps[i]) - (fps[i] - fps[i - 1]);
                let d2t = (tps[i + 1] - tps[i]) - (tps[i] - tps[i - 1]);
                if d2f != 0.0 || d2t != 0.0 {
                    v.push(i);
                }
            }
            v.push(k - 1);
            v
        } else {
            (0..k).collect()
        };
        let total_pos = tps.last().copied().unwrap_or(0.0);
        let total_neg = fps.last().copied().unwrap_or(0.0);
        let mut fpr = Vec::with_capacity(keep.len() + 1);
        let mut tpr = Vec::with_capacity(keep.len() + 1);
        for (f, t) in std::iter::once((0.0, 0.0)).chain(keep.iter().map(|&i| (fps[i], tps[i]))) {
            fpr.push(if total_neg <= 0.0 {
                f64::NAN
            } else {
                f / total_neg
            });
            tpr.push(if total_pos <= 0.0 {
                f64::NAN
            } else {
                t / total_pos
            });
        }
        (fpr, tpr)
    }

    /// The seed's AUPR (trapezoids over the PR curve sorted by recall); see [`Self::metrics`].
    fn aupr_seed(&self) -> f64 {
        let bins = &self.bins;
        let k = bins.len();
        let total_pos = self.positives();
        let p_tot = total_pos as f64;
        let recall = |tps: u64| {
            if total_pos == 0 {
                1.0
            } else {
                tps as f64 / p_tot
            }
        };
        let precision = |tps: u64, fps: u64| tps as f64 / (tps + fps) as f64;
        // The seed's AUPR: the curve (lowest threshold first, then the appended (recall 0,
        // precision 1)) stably sorted by recall. Recall is constant exactly where tps is, so the sort
        // visits the runs of equal tps from the highest threshold down and each run from its lowest
        // threshold up; the appended point closes the recall-0 run.
        let mut terms = Vec::with_capacity(k);
        {
            let mut last: Option<(f64, f64)> = None;
            let mut visit = |x: f64, y: f64| {
                if let Some((x0, y0)) = last {
                    terms.push((x - x0) * (y + y0) / 2.0);
                }
                last = Some((x, y));
            };
            // The appended point sorts first unless some thresholds also have recall 0 (then it
            // ends their run, being last on the curve).
            let appended_first = total_pos == 0 || bins[0].pos > 0;
            if appended_first {
                visit(0.0, 1.0);
            }
            let (mut tps_before, mut fps_before) = (0u64, 0u64);
            let mut start = 0;
            while start < k {
                let run_tps = tps_before + bins[start].pos;
                let mut end = start;
                let mut fps_end = fps_before + bins[start].neg;
                while end + 1 < k && bins[end + 1].pos == 0 {
                    end += 1;
                    fps_end += bins[end].neg;
                }
                let mut fps = fps_end;
                for i in (start..=end).rev() {
                    visit(recall(run_tps), precision(run_tps, fps));
                    fps -= bins[i].neg;
                }
                if start == 0 && !appended_first {
                    visit(0.0, 1.0);
                }
                tps_before = run_tps;
                fps_before = fps_end;
                start = end + 1;
            }
        }
        pairwise_sum_f64(&terms)
    }

    /// All metrics of this histogram. Errors only when it holds no pixel.
    pub fn metrics(&self) -> Result<CurveMetrics, MetricError> {
        if self.bins.is_empty() {
            return Err(MetricError::Empty);
        }
        // Every metric is computed in its own pass over the bins, with at most one array of
        // summands (8 bytes per distinct score) alive at a time: a pooled histogram of a large
        // float32 dataset can hold tens of millions of bins.
        let bins = &self.bins;
        let k = bins.len();
        let total_pos = self.positives();
        let total_neg = self.negatives();
        let (p_tot, n_tot) = (total_pos as f64, total_neg as f64);
        // NOTE(upstream): with no positives scikit-learn 1.2.1 sets recall to one everywhere.
        let recall = |tps: u64| {
            if total_pos == 0 {
                1.0
            } else {
                tps as f64 / p_tot
            }
        };
        let precision = |tps: u64, fps: u64| tps as f64 / (tps + fps) as f64;

        // AP = -Σ_j (recall[j+1] - recall[j]) · precision[j] over the reversed curve, i.e. from the
        // lowest threshold up; the point after the highest threshold is the appended recall 0.
        let ap = {
            let mut terms = Vec::with_capacity(k);
            let (mut tps, mut fps) = (total_pos, total_neg);
            for i in (0..k).rev() {
                let (prev_tps, prev_fps) = (tps - bins[i].pos, fps - bins[i].neg);
                let next_recall = if i == 0 { 0.0 } else { recall(prev_tps) };
                terms.push((next_recall - recall(tps)) * precision(tps, fps));
                (tps, fps) = (prev_tps, prev_fps);
            }
            -pairwise_sum_f64(&terms)
        };

        let aupr_seed = self.aupr_seed();

        // ROC with drop_intermediate: the second difference of fps at threshold i is
        // neg[i+1] - neg[i] (likewise for tps), so a point is kept where the counts change.
        let fpr_of = |fps: u64| {
            if total_neg == 0 {
                f64::NAN
            } else {
                fps as f64 / n_tot
            }
        };
        let tpr_of = |tps: u64| {
            if total_pos == 0 {
                f64::NAN
            } else {
                tps as f64 / p_tot
            }
        };
        let (auroc, fpr_at_tpr90_seed) = {
            let mut terms = Vec::new();
            let mut seed_fpr: Option<f64> = None;
            let (mut x0, mut y0) = (fpr_of(0), tpr_of(0));
            if y0 > 0.9 {
                seed_fpr = Some(x0);
            }
            let (mut tps, mut fps) = (0u64, 0u64);
            for i in 0..k {
                tps += bins[i].pos;
                fps += bins[i].neg;
                let keep = k <= 2
                    || i == 0
                    || i == k - 1
                    || bins[i + 1].neg != bins[i].neg
                    || bins[i + 1].pos != bins[i].pos;
                if keep {
                    let (x, y) = (fpr_of(fps), tpr_of(tps));
                    terms.push((x - x0) * (y + y0) / 2.0);
                    if seed_fpr.is_none() && y > 0.9 {
                        seed_fpr = Some(x);
                    }
                    (x0, y0) = (x, y);
                }
            }
            // FPR never decreases along the curve, so `auc` integrates forwards.
            (pairwise_sum_f64(&terms), seed_fpr.unwrap_or(0.0))
        };

        // FPR95 on the full curve: the first threshold (highest first) whose TPR reaches 0.95.
        let fpr95 = if total_pos == 0 || total_neg == 0 {
            f64::NAN
        } else {
            let (mut tps, mut fps) = (0u64, 0u64);
            let mut found = f64::NAN;
            for b in bins {
                tps += b.pos;
                fps += b.neg;
                if tpr_of(tps) >= 0.95 {
                    found = fpr_of(fps);
                    break;
                }
            }
            found
        };

        Ok(CurveMetrics {
            ap,
            auroc,
            fpr95,
            fpr_at_tpr90_seed,
            aupr_seed,
            positives: self.positives(),
            negatives: self.negatives(),
            thresholds: self.bins.len(),
        })
    }

    /// At most about `max_points` points of the PR curve (recall, precision) and of the full ROC
    /// curve (fpr, tpr), evenly spaced over the thresholds, ends included: for plots, without
    /// materialising curves of millions of points.
    pub fn sampled_curves(&self, max_points: usize) -> (super::Curve, super::Curve) {
        let k = self.bins.len();
        let (p_tot, n_tot) = (self.positives() as f64, self.negatives() as f64);
        let step = k.div_ceil(max_points.max(1)).max(1);
        let mut pr = vec![(0.0, 1.0)];
        let mut roc = vec![(0.0, 0.0)];
        let (mut tps, mut fps) = (0u64, 0u64);
        for (i, b) in self.bins.iter().enumerate() {
            tps += b.pos;
            fps += b.neg;
            if i % step == 0 || i + 1 == k {
                let (t, f) = (tps as f64, fps as f64);
                if p_tot > 0.0 {
                    pr.push((t / p_tot, t / (t + f)));
                }
                if p_tot > 0.0 && n_tot > 0.0 {
                    roc.push((f / n_tot, t / p_tot));
                }
            }
        }
        (pr, roc)
    }

    /// The reference's best-F1 threshold (`eval.py: get_best_f1`): for `t = i/n`, `i < n`, predict
    /// anomaly where `score >= f32(t)` and `score > 0`; keep the first `t` with strictly the best F1
    /// (`2TP / (2TP + FP + FN)`, 0 when undefined). Returns (threshold, F1); (0, 0) when no F1 is > 0.
    pub fn best_f1_threshold(&self, n: usize) -> (f64, f64) {
        let total_pos = self.positives();
        // Counts above each threshold, from the highest threshold down in one pass over the bins.
        let mut above = vec![(0u64, 0u64); n];
        let (mut tp, mut fp, mut j) = (0u64, 0u64, 0usize);
        for i in (0..n).rev() {
            let t = (i as f64 / n as f64) as f32;
            while j < self.bins.len() && self.bins[j].score >= t && self.bins[j].score > 0.0 {
                tp += self.bins[j].pos;
                fp += self.bins[j].neg;
                j += 1;
            }
            above[i] = (tp, fp);
        }
        let mut best = (0.0, 0.0);
        for (i, &(tp, fp)) in above.iter().enumerate() {
            let den = 2 * tp + fp + (total_pos - tp);
            let f1 = if den == 0 {
                0.0
            } else {
                (2 * tp) as f64 / den as f64
            };
            if f1 > best.1 {
                best = (i as f64 / n as f64, f1);
            }
        }
        best
    }
}

/// `sklearn.metrics.auc(x, y)` for a monotone `x`: `np.trapz(y, x)`, negated when `x` decreases.
pub fn trapezoid(y: &[f64], x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let direction = if x.windows(2).any(|w| w[1] - w[0] < 0.0) {
        -1.0
    } else {
        1.0
    };
    let terms: Vec<f64> = (1..x.len())
        .map(|i| (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2.0)
        .collect();
    direction * pairwise_sum_f64(&terms)
}

/// numpy's pairwise summation (`pairwise_sum` in `loops_utils.h`), as used by `np.add.reduce` over a
/// contiguous array: blocks of at most 128 summed with eight accumulators, halves split at a
/// multiple of eight. The reduction starts from the additive identity, which decides the sign of a
/// zero result.
macro_rules! pairwise_sum_impl {
    ($name:ident, $t:ty) => {
        pub fn $name(a: &[$t]) -> $t {
            fn rec(a: &[$t]) -> $t {
                let n = a.len();
                if n < 8 {
                    let mut res: $t = -0.0;
                    for &v in a {
                        res += v;
                    }
                    res
                } else if n <= 128 {
                    let mut r = [0.0 as $t; 8];
                    r.copy_from_slice(&a[..8]);
                    let mut i = 8;
                    while i < n - (n % 8) {
                        for j in 0..8 {
                            r[j] += a[i + j];
                        }
                        i += 8;
                    }
                    let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
                    while i < n {
                        res += a[i];
                        i += 1;
                    }
                    res
                } else {
                    let mut n2 = n / 2;
                    n2 -= n2 % 8;
                    rec(&a[..n2]) + rec(&a[n2..])
                }
            }
            (0.0 as $t) + rec(a)
        }
    };
}
pairwise_sum_impl!(pairwise_sum_f64, f64);
pairwise_sum_impl!(pairwise_sum_f32, f32);

/// `np.nanmean` of values first cast to float32, as the reference averages per-frame metrics:
/// NaNs are left out, the sum is taken in float32. NaN when every value is NaN.
pub fn nanmean_f32(values: &[f64]) -> f64 {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    let count = v.iter().filter(|x| !x.is_nan()).count();
    if count == 0 {
        return f64::NAN;
    }
    let zeroed: Vec<f32> = v
        .iter()
        .map(|&x| if x.is_nan() { 0.0 } else { x })
        .collect();
    (pairwise_sum_f32(&zeroed) / count as f32) as f64
}

/// Exact pixel metrics of one histogram (fractions, not percent).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CurveMetrics {
    pub ap: f64,
    pub auroc: f64,
    pub fpr95: f64,
    pub fpr_at_tpr90_seed: f64,
    pub aupr_seed: f64,
    pub positives: u64,
    pub negatives: u64,
    /// Number of distinct scores.
    pub thresholds: usize,
}

/// Merges per-frame histograms in a balanced way: a new run is merged with the previous one while
/// that one is not larger than twice its size, so every bin takes part in O(log frames) merges
/// instead of one merge per later frame.
#[derive(Debug, Default)]
pub struct HistogramAccumulator {
    runs: Vec<Histogram>,
}

impl HistogramAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, h: Histogram) {
        self.runs.push(h);
        while self.runs.len() >= 2 {
            let n = self.runs.len();
            if self.runs[n - 2].bins.len() > 2 * self.runs[n - 1].bins.len() {
                break;
            }
            let last = self.runs.pop().expect("two runs");
            let prev = self.runs.pop().expect("two runs");
            self.runs.push(prev.merge(&last));
        }
    }

    pub fn finish(mut self) -> Histogram {
        let mut acc = self.runs.pop().unwrap_or_default();
        while let Some(prev) = self.runs.pop() {
            acc = prev.merge(&acc);
        }
        acc
    }
}

/// The reference's "image" mode: per-frame metrics, each averaged with [`nanmean_f32`].
pub fn image_mode_mean(frames: &[CurveMetrics]) -> ImageModeMeans {
    let col = |f: fn(&CurveMetrics) -> f64| nanmean_f32(&frames.iter().map(f).collect::<Vec<_>>());
    ImageModeMeans {
        ap: col(|m| m.ap),
        auroc: col(|m| m.auroc),
        fpr95: col(|m| m.fpr95),
        fpr_at_tpr90_seed: col(|m| m.fpr_at_tpr90_seed),
        aupr_seed: col(|m| m.aupr_seed),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ImageModeMeans {
    pub ap: f64,
    pub auroc: f64,
    pub fpr95: f64,
    pub fpr_at_tpr90_seed: f64,
    pub aupr_seed: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden() -> (Vec<f32>, Vec<u8>) {
        let y = vec![0, 0, 1, 1, 0, 1, 0, 0, 1, 0];
        let s = vec![0.1f32, 0.4, 0.35, 0.8, 0.4, 0.8, 0.2, 0.05, 0.6, 0.9];
        (s, y)
    }

    fn close(a: f64, b: f64) -> bool {
        (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9
    }

    /// docs/method.md §14.4: scikit-learn 1.2.1's values (and the reference's AUPR), printed by
    /// `scripts/make_golden_values.py`.
    #[test]
    fn golden_vector_matches_sklearn_1_2_1() {
        let (s, y) = golden();
        let h = Histogram::from_pixels(&s, &y, None).unwrap();
        let m = h.metrics().unwrap();
        assert!(close(m.ap, 0.663690476190476), "{}", m.ap);
        assert!(close(m.auroc, 0.75), "{}", m.auroc);
        assert!(close(m.fpr_at_tpr90_seed, 0.5));
        assert!(close(m.aupr_seed, 0.70625), "{}", m.aupr_seed);
        let (fpr, tpr) = h.roc_curve(true);
        let want_f = [0.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 0.5, 0.5, 1.0];
        let want_t = [0.0, 0.0, 0.5, 0.75, 0.75, 1.0, 1.0];
        assert_eq!(fpr.len(), want_f.len());
        for i in 0..fpr.len() {
            assert!(
                close(fpr[i], want_f[i]) && close(tpr[i], want_t[i]),
                "point {i}"
            );
        }
        let (p, r) = h.pr_curve();
        let want_p = [0.4, 0.4444, 0.5, 0.5714, 0.5, 0.75, 0.6667, 0.0, 1.0];
        let want_r = [1.0, 1.0, 1.0, 1.0, 0.75, 0.75, 0.5, 0.0, 0.0];
        for i in 0..p.len() {
            assert!(
                (p[i] - want_p[i]).abs() < 1e-4 && close(r[i], want_r[i]),
                "pr point {i}"
            );
        }
        // FPR95 on the full curve: first TPR >= 0.95 is at (fpr 0.5, tpr 1).
        assert!(close(m.fpr95, 0.5));
    }

    #[test]
    fn all_negative_gives_negative_zero_ap_and_nan_auroc() {
        let h = Histogram::from_pixels(&[0.1, 0.5, 0.7], &[0, 0, 0], None).unwrap();
        let m = h.metrics().unwrap();
        assert_eq!(m.ap, 0.0);
        assert!(m.ap.is_sign_negative());
        assert!(m.auroc.is_nan());
        assert_eq!(m.fpr_at_tpr90_seed, 0.0);
    }

    #[test]
    fn all_positive_gives_nan_fpr() {
        let h = Histogram::from_pixels(&[0.1, 0.5], &[1, 1], None).unwrap();
        let m = h.metrics().unwrap();
        assert_eq!(m.ap, 1.0);
        assert!(m.auroc.is_nan() && m.fpr95.is_nan() && m.fpr_at_tpr90_seed.is_nan());
    }

    #[test]
    fn ignore_drops_pixels_and_merging_equals_pooling() {
        let (s, y) = golden();
        let ig = [0, 1, 0, 0, 0, 0, 1, 0, 0, 0];
        let pooled = Histogram::from_pixels(&s, &y, Some(&ig)).unwrap();
        assert_eq!(pooled.positives() + pooled.negatives(), 8);
        let mut acc = HistogramAccumulator::new();
        for chunk in [0..3, 3..4, 4..10] {
            acc.push(
                Histogram::from_pixels(&s[chunk.clone()], &y[chunk.clone()], Some(&ig[chunk]))
                    .unwrap(),
            );
        }
        assert_eq!(acc.finish(), pooled);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            Histogram::from_pixels(&[0.1, f32::NAN], &[0, 1], None),
            Err(MetricError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            Histogram::from_pixels(&[0.1], &[0, 1], None),
            Err(MetricError::LengthMismatch { .. })
        ));
        assert_eq!(
            Histogram::from_pixels(&[0.1], &[1], Some(&[1]))
                .unwrap()
                .metrics(),
            Err(MetricError::Empty)
        );
    }

    #[test]
    fn sort_key_orders_floats_and_folds_negative_zero() {
        let v = [-3.0f32, -0.5, -0.0, 0.0, 1e-30, 0.5, 7.0];
        for w in v.windows(2) {
            assert!(sort_key(w[0]) <= sort_key(w[1]));
        }
        assert_eq!(sort_key(-0.0), sort_key(0.0));
        for x in v {
            assert_eq!(from_sort_key(sort_key(x)), if x == 0.0 { 0.0 } else { x });
        }
    }

    #[test]
    fn radix_sort_sorts() {
        let mut v: Vec<u64> = (0..5000u64)
            .map(|i| (i * 2_654_435_761) % (1 << 33))
            .collect();
        let mut w = v.clone();
        radix_sort_33(&mut v);
        w.sort_unstable();
        assert_eq!(v, w);
    }

    #[test]
    fn best_f1_threshold_follows_the_reference_rule() {
        // Positives at 0.8, 0.85; negatives at 0.3, 0.9 → best is t = 0.31..0.80 region, first is 0.31.
        let h = Histogram::from_pixels(&[0.8, 0.85, 0.3, 0.9], &[1, 1, 0, 0], None).unwrap();
        let (t, f1) = h.best_f1_threshold(100);
        assert!((t - 0.31).abs() < 1e-12, "{t}");
        assert!((f1 - 0.8).abs() < 1e-12);
    }
}

/// Parity with scikit-learn on the committed fixtures (`scripts/make_metric_fixtures.py`; the command
/// is in `tests/fixtures/README.md`).
#[cfg(test)]
mod fixture_tests {
    use super::*;
    use crate::eval::fixture_frame as frame;
    use serde_json::Value;

    fn fixtures() -> Vec<Value> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        let cases: Vec<Value> = paths
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect();
        assert!(cases.len() >= 10, "fixtures missing in {}", dir.display());
        cases
    }

    #[test]
    fn metrics_match_sklearn_on_fixtures() {
        for case in fixtures() {
            let name = case["name"].as_str().unwrap();
            let frames = case["frames"].as_array().unwrap();
            let got: [f64; 5] = if case["mode"] == "total" {
                let mut acc = HistogramAccumulator::new();
                for f in frames {
                    let (s, g, i) = frame(f);
                    acc.push(Histogram::from_pixels(&s, &g, Some(&i)).unwrap());
                }
                let m = acc.finish().metrics().unwrap();
                [m.ap, m.auroc, m.fpr95, m.fpr_at_tpr90_seed, m.aupr_seed]
            } else {
                let per: Vec<CurveMetrics> = frames
                    .iter()
                    .map(|f| {
                        let (s, g, _) = frame(f);
                        Histogram::from_pixels(&s, &g, None)
                            .unwrap()
                            .metrics()
                            .unwrap()
                    })
                    .collect();
                let m = image_mode_mean(&per);
                [m.ap, m.auroc, m.fpr95, m.fpr_at_tpr90_seed, m.aupr_seed]
            };
            for (k, g) in ["ap", "auroc", "fpr95", "fpr_at_tpr90_seed", "aupr_seed"]
                .iter()
                .zip(got)
            {
                let want = case["expected"][k].as_f64().unwrap_or(f64::NAN);
                let ok = (want.is_nan() && g.is_nan()) || (want - g).abs() <= 1e-9;
                assert!(ok, "{name}: {k} = {g}, scikit-learn says {want}");
                if want == 0.0 {
                    assert_eq!(
                        want.is_sign_negative(),
                        g.is_sign_negative(),
                        "{name}: sign of zero {k}"
                    );
                }
            }
        }
    }
}
