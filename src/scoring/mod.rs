//! The Maskomaly rule (`Maskomaly.get_soft_mask` in the reference, §4 of the method spec).
//!
//! From class probabilities `cls [Q, K+1]` and mask probabilities `pred [Q, Hp, Wp]`:
//! ```text
//! soft2 = max over anomaly queries q of  pred[q] · max_c cls[q, c]            (void included)
//! soft  = min(1, min over confident non-void q of 1 − pred[q] · cls[q, m_q])   (conf > threshold)
//! soft  = 0 where ≥ 2 non-void queries have pred > border threshold              (counting form)
//! soft  = min(soft, 1 − pred[g] · cls[g, m_g]) for ground queries g            (even if void)
//! score = f32(λ) · soft + f32(1 − λ) · soft2
//! ```
//! All arithmetic is float32 as numpy does it. Only the queries the rule reads are upsampled, which
//! gives the same numbers as upsampling all of them (bilinear resizing is per channel).

use crate::job::Method;
use tch::{Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(
        "`method.{key}` names query {index}, but the model has {queries} queries (0..{queries}-1)"
    )]
    QueryOutOfRange {
        key: &'static str,
        index: i64,
        queries: i64,
    },
    #[error(
        "`method.void_class` is {void}, but the model predicts {classes} classes (0..{classes}-1)"
    )]
    VoidOutOfRange { void: i64, classes: i64 },
}

/// Which queries play which role in one image, decided from the class probabilities alone.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPlan {
    /// (query, max class probability incl. void).
    pub anomaly: Vec<(i64, f32)>,
    /// Confident non-void queries: (query, probability of its argmax class).
    pub reject: Vec<(i64, f32)>,
    /// All queries whose argmax class is not void.
    pub border: Vec<i64>,
    /// (query, probability of its argmax class).
    pub ground: Vec<(i64, f32)>,
}

impl QueryPlan {
    /// Every query whose mask the rule reads, ascending, without repeats.
    pub fn needed(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self
            .anomaly
            .iter()
            .map(|a| a.0)
            .chain(self.reject.iter().map(|r| r.0))
            .chain(self.border.iter().copied())
            .chain(self.ground.iter().map(|g| g.0))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Checks the job's query and class indices against the model's output sizes.
pub fn check_indices(method: &Method, queries: i64, classes: i64) -> Result<(), ScoreError> {
    for (key, list) in [
        ("anomaly_queries", &method.anomaly_queries),
        ("ground_queries", &method.ground_queries),
    ] {
        if let Some(&index) = list.iter().find(|&&q| q >= queries) {
            return Err(ScoreError::QueryOutOfRange {
                key,
                index,
                queries,
            });
        }
    }
    if method.void_class >= classes {
        return Err(ScoreError::VoidOutOfRange {
            void: method.void_class,
            classes,
        });
    }
    Ok(())
}

/// Argmax with the first index winning ties (numpy's rule), and the maximum.
fn argmax(row: &[f32]) -> (usize, f32) {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    (best, row[best])
}

/// Decides the query roles from class probabilities `cls` (row-major `[queries, classes]`).
pub fn plan(cls: &[f32], classes: usize, method: &Method) -> QueryPlan {
    let queries = cls.len() / classes;
    let row = |q: usize| &cls[q * classes..(q + 1) * classes];
    let void = method.void_class as usize;
    let anomaly = method
        .anomaly_queries
        .iter()
        .map(|&q| (q, argmax(row(q as usize)).1))
        .collect();
    let mut reject = Vec::new();
    let mut border = Vec::new();
    for q in 0..queries {
        let (m, conf) = argmax(row(q));
        if m != void {
            border.push(q as i64);
            // The reference compares a float32 probability with a Python float (float64).
            if conf as f64 > method.rejection_threshold {
                reject.push((q as i64, conf));
            }
        }
    }
    let ground = method
        .ground_queries
        .iter()
        .map(|&q| (q, argmax(row(q as usize)).1))
        .collect();
    QueryPlan {
        anomaly,
        reject,
        border,
        ground,
    }
}

/// Applies the rule. `masks` holds the sigmoid mask probabilities of exactly the queries in
/// `plan.needed()`, in that order, as `[n, H, W]` float32; the result is `[H, W]` float32 on the same
/// device.
pub fn score(plan: &QueryPlan, masks: &Tensor, method: &Method) -> Tensor {
    let needed = plan.needed();
    let row_of = |q: i64| {
        needed
            .binary_search(&q)
            .expect("plan.needed() covers every role") as i64
    };
    let size = masks.size();
    let (h, w) = (size[1], size[2]);
    let opts = (Kind::Float, masks.device());

    let mut soft2 = Tensor::zeros([h, w], opts);
    for &(q, conf) in &plan.anomaly {
        let t = masks.get(row_of(q)) * conf as f64;
        soft2 = soft2.maximum(&t);
    }

    // 1 − p·c, each step rounded in float32 like numpy.
    let reject = |soft: Tensor, q: i64, conf: f32| {
        soft.minimum(&((masks.get(row_of(q)) * conf as f64).neg() + 1.0))
    };
    let mut soft = Tensor::ones([h, w], opts);
    for &(q, conf) in &plan.reject {
        soft = reject(soft, q, conf);
    }
    if plan.border.len() >= 2 {
        // O(|P|) counting form of the pairwise border step: zero where two or more masks exceed the
        // threshold. The threshold is the float32 value numpy compares with, exactly representable.
        let thr = method.border_threshold as f32 as f64;
        let idx: Vec<i64> = plan.border.iter().map(|&q| row_of(q)).collect();
        let idx = Tensor::from_slice(&idx).to_device(masks.device());
        let count = masks
            .index_select(0, &idx)
            .gt(thr)
            .sum_dim_intlist(0, false, Kind::Int);
        soft = soft.masked_fill(&count.ge(2), 0.0);
    }
    for &(q, conf) in &plan.ground {
        soft = reject(soft, q, conf);
    }

    let (a, b) = blend_weights(method.lambda);
    soft * a as f64 + soft2 * b as f64
}

/// The query roles of a plan as positions in `plan.needed()`, in the order the row pass reads them.
struct Roles {
    anomaly: Vec<(usize, f32)>,
    /// Every confident or counted non-void query once: (position, rejection confidence, counted at
    /// borders).
    known: Vec<(usize, Option<f32>, bool)>,
    ground: Vec<(usize, f32)>,
    use_border: bool,
    thr: f32,
    a: f32,
    b: f32,
}

impl Roles {
    fn new(plan: &QueryPlan, method: &Method) -> Self {
        let needed = plan.needed();
        let pos = |q: i64| {
            needed
                .binary_search(&q)
                .expect("plan.needed() covers every role")
        };
        let use_border = plan.border.len() >= 2;
        let mut ids: Vec<i64> = plan.reject.iter().map(|r| r.0).collect();
        if use_border {
            ids.extend(&plan.border);
        }
        ids.sort_unstable();
        ids.dedup();
        let known = ids
            .into_iter()
            .map(|q| {
                let conf = plan.reject.iter().find(|r| r.0 == q).map(|r| r.1);
                (pos(q), conf, use_border && plan.border.contains(&q))
            })
            .collect();
        let (a, b) = blend_weights(method.lambda);
        Roles {
            anomaly: plan.anomaly.iter().map(|&(q, c)| (pos(q), c)).collect(),
            known,
            ground: plan.ground.iter().map(|&(q, c)| (pos(q), c)).collect(),
            use_border,
            thr: method.border_threshold as f32,
            a,
            b,
        }
    }

    /// Whether the rule needs the probability of the query at `position`, or only whether it
    /// exceeds the border threshold.
    fn needs_value(&self, position: usize) -> bool {
        self.anomaly.iter().any(|a| a.0 == position)
            || self.ground.iter().any(|g| g.0 == position)
            || self.known.iter().any(|k| k.0 == position && k.1.is_some())
    }

    /// Applies the rule to one row: `rows[i]` is the mask row of `plan.needed()[i]`. Each product,
    /// difference and blend is rounded once in float32 in the order of [`score`], so the result is
    /// bit-identical to it.
    #[inline(always)]
    fn row(&self, rows: &[&[f32]], out: &mut [f32]) {
        let w = out.len();
        let mut soft2 = vec![0f32; w];
        for &(i, c) in &self.anomaly {
            for (s, &p) in soft2.iter_mut().zip(rows[i]) {
                *s = s.max(p * c);
            }
        }
        // Rejection and border counting read each known-class mask row once. Reordering is exact:
        // `min` does not round, and zeroing commutes with the later mins because every term
        // 1 − p·c is ≥ 0 (p, c ∈ [0, 1]).
        let mut soft = vec![1f32; w];
        let mut count = vec![0u8; w];
        let thr = self.thr;
        for &(i, conf, counts) in &self.known {
            let m = rows[i];
            match (conf, counts) {
                (Some(c), true) => {
                    for ((s, n), &p) in soft.iter_mut().zip(count.iter_mut()).zip(m) {
                        *s = s.min(1.0 - p * c);
                        *n = n.saturating_add((p > thr) as u8);
                    }
                }
                (Some(c), false) => {
                    for (s, &p) in soft.iter_mut().zip(m) {
                        *s = s.min(1.0 - p * c);
                    }
                }
                (None, _) => {
                    for (n, &p) in count.iter_mut().zip(m) {
                        *n = n.saturating_add((p > thr) as u8);
                    }
                }
            }
        }
        if self.use_border {
            for (s, &n) in soft.iter_mut().zip(&count) {
                if n >= 2 {
                    *s = 0.0;
                }
            }
        }
        for &(i, c) in &self.ground {
            for (s, &p) in soft.iter_mut().zip(rows[i]) {
                *s = s.min(1.0 - p * c);
            }
        }
        for ((o, &s), &s2) in out.iter_mut().zip(&soft).zip(&soft2) {
            *o = s * self.a + s2 * self.b;
        }
    }
}

/// The rule as one pass over the image on the host, for CPU runs, row by row so every mask row the
/// rule reads stays in cache: bit-identical to [`score`] without its full-size temporaries.
/// `plane(q)` gives the row-major `H × W` mask of query `q`.
pub fn score_host<'a>(
    plan: &QueryPlan,
    plane: impl Fn(i64) -> &'a [f32] + Sync,
    h: usize,
    w: usize,
    method: &Method,
) -> Vec<f32> {
    use rayon::prelude::*;
    let planes: Vec<&[f32]> = plan.needed().into_iter().map(plane).collect();
    for m in &planes {
        assert_eq!(m.len(), h * w, "mask plane does not match the map size");
    }
    let roles = Roles::new(plan, method);
    let mut out = vec![0f32; h * w];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        let rows: Vec<&[f32]> = planes.iter().map(|m| &m[y * w..(y + 1) * w]).collect();
        roles.row(&rows, row);
    });
    out
}

/// Source indices and weights of libtorch's bilinear resize (align_corners = false) along one
/// axis: output `i` reads `src[i0]·l0 + src[i1]·l1`.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    l0: f32,
    l1: f32,
}

fn bilinear_taps(input: usize, output: usize) -> Vec<Tap> {
    if input == output {
        return (0..output)
            .map(|i| Tap {
                i0: i,
                i1: i,
                l0: 1.0,
                l1: 0.0,
            })
            .collect();
    }
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|i| {
            let real = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (real.floor() as usize).min(input - 1);
            let l1 = (real - i0 as f32).clamp(0.0, 1.0);
            let i1 = i0 + usize::from(i0 < input - 1);
            Tap {
                i0,
                i1,
                l0: 1.0 - l1,
                l1,
            }
        })
        .collect()
}

#[inline(always)]
fn hresize(src: &[f32], taps: &[Tap], out: &mut [f32]) {
    for (o, t) in out.iter_mut().zip(taps) {
        *o = src[t.i0] * t.l0 + src[t.i1] * t.l1;
    }
}

/// `1 / (1 + e^−x)` in float32 for a whole row, within 2 ulp of the libm form, in a loop the compiler
/// vectorises (Cody–Waite range reduction, degree-6 polynomial).
#[doc(hidden)]
#[inline(always)]
pub fn sigmoid_row(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        let t = (-v).clamp(-87.0, 88.0);
        // n = round(t / ln 2) by the 1.5·2^23 trick (its low mantissa bits then hold n as an
        // integer), and t = n·ln 2 + r with |r| ≤ ln 2 / 2. Integer and float lanes only, no casts.
        let k = t * std::f32::consts::LOG2_E + 12_582_912.0;
        let n = k - 12_582_912.0;
        let ni = k.to_bits() as i32 - 0x4B40_0000;
        let r = t - n * 0.693_359_4 + n * 2.121_944_4e-4;
        let mut p = 1.987_569_1e-4f32;
        p = p * r + 1.398_199_9e-3;
        p = p * r + 8.333_452e-3;
        p = p * r + 4.166_579_6e-2;
        p = p * r + 1.666_666_5e-1;
        p = p * r + 0.5;
        let e = p * r * r + r + 1.0;
        let e = e * f32::from_bits(((ni + 127) as u32) << 23);
        *o = 1.0 / (1.0 + e);
    }
}

/// The score map straight from the low-resolution mask logits, for CPU runs: for each output row,
/// the needed queries' rows are upsampled bilinearly (libtorch's `align_corners = false` taps,
/// horizontal pass first and cached per source row), passed through the sigmoid and through the
/// rule. No `[n, H, W]` tensor is formed. `logits` holds the queries of `plan.needed()` in that
/// order as `[n, h, w]`. Equal to `needed_masks` + [`score_map`] within float32 rounding of the
/// upsampling and the sigmoid (tested to 1e-6).
pub fn score_from_logits(
    plan: &QueryPlan,
    logits: &[f32],
    (h, w): (usize, usize),
    (hp, wp): (usize, usize),
    method: &Method,
) -> Vec<f32> {
    use rayon::prelude::*;
    let n = plan.needed().len();
    assert_eq!(logits.len(), n * h * w, "logits do not match the plan");
    let roles = Roles::new(plan, method);
    let value: Vec<bool> = (0..n).map(|i| roles.needs_value(i)).collect();
    // A border-only query needs `sigmoid(x) > thr` alone; away from the threshold's logit the
    // comparison is decided without the sigmoid, near it the sigmoid is evaluated.
    let thr = roles.thr;
    let logit_thr = (thr as f64 / (1.0 - thr as f64)).ln() as f32;
    let xt = bilinear_taps(w, wp);
    let yt = bilinear_taps(h, hp);
    let ctx = Fused {
        roles,
        value,
        logit_thr,
        xt,
        yt,
        logits,
        n,
        h,
        w,
        wp,
        band: 16,
    };
    let mut out = vec![0f32; hp * wp];
    out.par_chunks_mut(ctx.band * wp)
        .enumerate()
        .for_each(|(b, chunk)| fused_band_dispatch(&ctx, b, chunk));
    out
}

/// What every band of [`score_from_logits`] reads.
struct Fused<'a> {
    roles: Roles,
    /// Per needed query: whether the rule needs its probability, not only the threshold test.
    value: Vec<bool>,
    logit_thr: f32,
    xt: Vec<Tap>,
    yt: Vec<Tap>,
    logits: &'a [f32],
    n: usize,
    h: usize,
    w: usize,
    wp: usize,
    /// Output rows per parallel task.
    band: usize,
}

/// Runs one band with 8-wide vectors where the CPU has AVX2. Only the vector width changes, not
/// the operations or their order, so the result is the same on every CPU.
fn fused_band_dispatch(c: &Fused, b: usize, chunk: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { fused_band_avx2(c, b, chunk) };
        return;
    }
    fused_band(c, b, chunk)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fused_band_avx2(c: &Fused, b: usize, chunk: &mut [f32]) {
    fused_band(c, b, chunk)
}

#[inline(always)]
fn fused_band(c: &Fused, b: usize, chunk: &mut [f32]) {
    let (n, h, w, wp) = (c.n, c.h, c.w, c.wp);
    // Per query, the horizontally resized source rows `ty.i0` and `ty.i1` of the current
    // output row, kept while the next output rows read them again.
    let mut cache: Vec<([usize; 2], [Vec<f32>; 2])> = (0..n)
        .map(|_| ([usize::MAX; 2], [vec![0f32; wp], vec![0f32; wp]]))
        .collect();
    let mut lin = vec![0f32; wp];
    let mut probs: Vec<Vec<f32>> = vec![vec![0f32; wp]; n];
    for (r, row) in chunk.chunks_mut(wp).enumerate() {
        let ty = c.yt[b * c.band + r];
        for i in 0..n {
            let plane = &c.logits[i * h * w..(i + 1) * h * w];
            let (ids, vals) = &mut cache[i];
            if ids[0] != ty.i0 {
                if ids[1] == ty.i0 {
                    vals.swap(0, 1);
                    ids[0] = ty.i0;
                    ids[1] = usize::MAX;
                } else {
                    hresize(&plane[ty.i0 * w..(ty.i0 + 1) * w], &c.xt, &mut vals[0]);
                    ids[0] = ty.i0;
                }
            }
            if ids[1] != ty.i1 {
                hresize(&plane[ty.i1 * w..(ty.i1 + 1) * w], &c.xt, &mut vals[1]);
                ids[1] = ty.i1;
            }
            for ((o, &a), &c) in lin.iter_mut().zip(&vals[0]).zip(&vals[1]) {
                *o = a * ty.l0 + c * ty.l1;
            }
            let p = &mut probs[i];
            if c.value[i] {
                sigmoid_row(&lin, p);
            } else {
                for (o, &x) in p.iter_mut().zip(&lin) {
                    *o = if (x - c.logit_thr).abs() > 1e-3 {
                        // Any value on the right side of the threshold will do.
                        if x > c.logit_thr {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        1.0 / (1.0 + (-x).exp())
                    };
                }
            }
        }
        let rows: Vec<&[f32]> = probs.iter().map(|p| p.as_slice()).collect();
        c.roles.row(&rows, row);
    }
}

/// The score map on the host, from the masks of `plan.needed()` (`[n, H, W]`, that order): the fused
/// pass for CPU tensors, the tensor ops on other devices.
pub fn score_map(plan: &QueryPlan, masks: &Tensor, method: &Method) -> Vec<f32> {
    let size = masks.size();
    let (h, w) = (size[1] as usize, size[2] as usize);
    if masks.device() == tch::Device::Cpu {
        let m = masks.to_kind(Kind::Float).contiguous();
        let n = m.numel();
        // SAFETY: `m` is a contiguous float32 CPU tensor of `n` elements that outlives the slice.
        let data = unsafe { std::slice::from_raw_parts(m.data_ptr() as *const f32, n) };
        let needed = plan.needed();
        let plane = |q: i64| {
            let i = needed
                .binary_search(&q)
                .expect("plan.needed() covers every role");
            &data[i * h * w..(i + 1) * h * w]
        };
        score_host(plan, plane, h, w, method)
    } else {
        to_host(&score(plan, masks, method))
    }
}

/// The padded-size score map of one image from its mask logits `[Q, h, w]`: on the CPU the fused
/// row pass of [`score_from_logits`], elsewhere the tensor ops on the model's device.
pub fn score_image(
    plan: &QueryPlan,
    pred_masks: &Tensor,
    padded: (usize, usize),
    method: &Method,
) -> Vec<f32> {
    let needed = plan.needed();
    if pred_masks.device() == tch::Device::Cpu {
        let idx = Tensor::from_slice(&needed);
        let sel = pred_masks
            .index_select(0, &idx)
            .to_kind(Kind::Float)
            .contiguous();
        let size = sel.size();
        let logits =
            Vec::<f32>::try_from(sel.flatten(0, -1)).expect("float tensor converts to Vec<f32>");
        score_from_logits(
            plan,
            &logits,
            (size[1] as usize, size[2] as usize),
            padded,
            method,
        )
    } else {
        to_host(&score_device(plan, pred_masks, padded, method))
    }
}

/// The padded-size score map `[Hp, Wp]` of one image, left on the model's device.
pub fn score_device(
    plan: &QueryPlan,
    pred_masks: &Tensor,
    padded: (usize, usize),
    method: &Method,
) -> Tensor {
    let masks = needed_masks(pred_masks, &plan.needed(), padded.0 as i64, padded.1 as i64);
    score(plan, &masks, method)
}

/// A float32 map copied to the host, row-major.
pub fn to_host(t: &Tensor) -> Vec<f32> {
    let t = t.to_device(tch::Device::Cpu).contiguous();
    Vec::<f32>::try_from(t.flatten(0, -1)).expect("float tensor converts to Vec<f32>")
}

/// The reference's semantic inference (Mask2Former `semantic_inference` + detectron2
/// `sem_seg_postprocess`): `Σ_q softmax(cls)[q, :K] · sigmoid(mask_q)` at the padded size, cropped to
/// the resized image, bilinearly resized to the input size, argmax over classes → trainIds (H × W).
/// The same `S'` the scores of [`crate::scores`] read.
pub fn semantic_segmentation(
    pred_logits: &Tensor,
    pred_masks: &Tensor,
    padded: (usize, usize),
    resized: (usize, usize),
    original: (usize, usize),
) -> Vec<u8> {
    use crate::scores::{semantic, Outputs};
    let out = Outputs {
        pred_logits,
        pred_masks,
        padded,
        resized,
        original,
    };
    let s = semantic::compute(&out, true, false)
        .semantic
        .expect("asked for S'");
    let ids = semantic::argmax_classes(&s)
        .to_device(tch::Device::Cpu)
        .contiguous();
    Vec::<u8>::try_from(ids.flatten(0, -1)).expect("uint8 tensor converts to Vec<u8>")
}

/// The two float32 blend weights exactly as numpy forms them from a Python float `lambda`.
pub fn blend_weights(lambda: f64) -> (f32, f32) {
    (lambda as f32, (1.0 - lambda) as f32)
}

/// Class probabilities for one image: softmax over the last axis, float32, on the host.
pub fn class_probs(pred_logits: &Tensor) -> Vec<f32> {
    let p = pred_logits
        .softmax(-1, Kind::Float)
        .to_device(tch::Device::Cpu)
        .contiguous();
    Vec::<f32>::try_from(p.flatten(0, -1)).expect("float tensor converts to Vec<f32>")
}

/// Upsamples the needed queries' mask logits bilinearly (align_corners = false) to the padded size
/// and applies the sigmoid: `[Q, h, w]` logits → `[n, Hp, Wp]` probabilities.
pub fn needed_masks(pred_masks: &Tensor, needed: &[i64], hp: i64, wp: i64) -> Tensor {
    let idx = Tensor::from_slice(needed).to_device(pred_masks.device());
    let sel = pred_masks.index_select(0, &idx).unsqueeze(0);
    let size = pred_masks.size();
    let up = if size[1] == hp && size[2] == wp {
        sel
    } else {
        sel.upsample_bilinear2d([hp, wp], false, None, None)
    };
    up.squeeze_dim(0).sigmoid()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §14.1 golden inputs: Q = 100, 20 classes, 6×8.
    fn golden_inputs() -> (Vec<f32>, Tensor) {
        let s = [3, 19, 24, 31, 49, 70, 83];
        let mut cls = Vec::with_capacity(2000);
        for q in 0..100usize {
            let mut logits = [-4f32; 20];
            if s.contains(&q) {
                logits[q % 19] = 4.0 + (q % 3) as f32;
            } else {
                logits[19] = 4.0;
            }
            // softmax in float32, as torch/numpy on a float32 array
            let t = Tensor::from_slice(&logits).softmax(-1, Kind::Float);
            cls.extend(Vec::<f32>::try_from(t).unwrap());
        }
        let mut pred = Vec::with_capacity(100 * 48);
        for q in 0..100 {
            for y in 0..6 {
                for x in 0..8 {
                    let m = (6.0 * (0.37 * q as f64 + 0.9 * y as f64 + 1.3 * x as f64).sin() - 3.0)
                        as f32;
                    pred.push((1.0 / (1.0 + (-(m as f64)).exp())) as f32);
                }
            }
        }
        (cls, Tensor::from_slice(&pred).view([100, 6, 8]))
    }

    const GOLDEN: [[f32; 8]; 6] = [
        [
            0.000405, 0.235263, 0.379893, 0.106495, 0.032485, 0.001184, 0.317339, 0.378892,
        ],
        [
            0.054638, 0.38038, 0.294594, 0.054938, 0.000188, 0.141299, 0.379611, 0.198261,
        ],
        [
            0.364251, 0.367266, 0.18019, 0.000062, 0.020169, 0.376712, 0.341369, 0.089702,
        ],
        [
            0.38008, 0.067839, 0.032329, 0.002033, 0.339996, 0.376488, 0.317959, 0.000063,
        ],
        [
            0.255217, 0.044705, 0.000281, 0.193207, 0.37888, 0.526866, 0.033903, 0.000771,
        ],
        [
            0.129655, 0.000076, 0.035243, 0.37927, 0.319588, 0.06752, 0.00014, 0.102165,
        ],
    ];

    #[test]
    fn golden_scoring_vector() {
        let (cls, pred) = golden_inputs();
        let method = Method::default();
        let p = plan(&cls, 20, &method);
        let rejected: Vec<i64> = p.reject.iter().map(|r| r.0).collect();
        assert_eq!(rejected, vec![3, 19, 24, 31, 49, 70, 83]);
        assert!((p.reject[0].1 - 0.99367).abs() < 1e-5);
        assert!((p.reject[6].1 - 0.99914).abs() < 1e-5);
        let masks = pred.index_select(0, &Tensor::from_slice(&p.needed()));
        let out = Vec::<f32>::try_from(score(&p, &masks, &method).flatten(0, -1)).unwrap();
        let mut sum = 0f64;
        for (i, v) in out.iter().enumerate() {
            let g = GOLDEN[i / 8][i % 8];
            assert!((v - g).abs() <= 1e-6, "pixel {i}: {v} vs {g}");
            sum += *v as f64;
        }
        assert!((sum - 8.679863697019755).abs() < 1e-5, "sum {sum}");
    }

    #[test]
    fn golden_anomaly_term_row0() {
        let (cls, pred) = golden_inputs();
        let method = Method::default();
        let mut p = plan(&cls, 20, &method);
        // Only the anomaly term: λ = 0 gives soft2 directly.
        p.reject.clear();
        p.border.clear();
        p.ground.clear();
        let m = Method {
            lambda: 0.0,
            ..method
        };
        let masks = pred.index_select(0, &Tensor::from_slice(&p.needed()));
        let out = Vec::<f32>::try_from(score(&p, &masks, &m).flatten(0, -1)).unwrap();
        let want = [
            0.001014, 0.588157, 0.949732, 0.266238, 0.000362, 0.002959, 0.793346, 0.94723,
        ];
        for x in 0..8 {
            assert!(
                (out[x] - want[x]).abs() <= 1e-6,
                "x={x}: {} vs {}",
                out[x],
                want[x]
            );
        }
    }

    /// The pairwise loop exactly as the reference writes it, for comparison with the counting form.
    fn pairwise_border(pred: &[Vec<f32>], border: &[usize], thr: f32) -> Vec<bool> {
        let n = pred[0].len();
        let mut zero = vec![false; n];
        for (a, &i) in border.iter().enumerate() {
            for &j in &border[a + 1..] {
                for x in 0..n {
                    if pred[i][x] > thr && pred[j][x] > thr {
                        zero[x] = true;
                    }
                }
            }
        }
        zero
    }

    #[test]
    fn counting_form_equals_pairwise_loop() {
        let (cls, pred) = golden_inputs();
        let method = Method {
            lambda: 1.0,
            border_threshold: 0.8,
            ..Method::default()
        };
        let mut p = plan(&cls, 20, &method);
        p.reject.clear();
        p.ground.clear();
        p.border = (0..6).collect(); // overlapping masks
        let masks = pred.index_select(0, &Tensor::from_slice(&p.needed()));
        let out = Vec::<f32>::try_from(score(&p, &masks, &method).flatten(0, -1)).unwrap();
        let rows: Vec<Vec<f32>> = (0..100)
            .map(|q| Vec::<f32>::try_from(pred.get(q).flatten(0, -1)).unwrap())
            .collect();
        let zero = pairwise_border(&rows, &(0..6).collect::<Vec<_>>(), 0.8f32);
        for x in 0..48 {
            assert_eq!(out[x] == 0.0, zero[x], "pixel {x}");
        }
        assert!(zero.iter().any(|z| *z) && zero.iter().any(|z| !*z));
    }

    #[test]
    fn host_pass_is_bit_identical_to_tensor_ops() {
        let (cls, pred) = golden_inputs();
        for method in [
            Method::default(),
            Method {
                border_threshold: 0.8,
                lambda: 0.7,
                ..Method::default()
            },
        ] {
            let mut p = plan(&cls, 20, &method);
            p.border = (0..30).step_by(3).collect();
            let masks = pred.index_select(0, &Tensor::from_slice(&p.needed()));
            let a = Vec::<f32>::try_from(score(&p, &masks, &method).flatten(0, -1)).unwrap();
            let b = score_map(&p, &masks, &method);
            assert_eq!(a, b);
        }
    }

    /// Mask logits with blob structure: each query is a smooth bump plus noise, so masks overlap
    /// and cross the border threshold along curves.
    fn blob_logits(q: usize, h: usize, w: usize, seed: i64) -> Tensor {
        tch::manual_seed(seed);
        let ys = Tensor::arange(h as i64, (Kind::Float, tch::Device::Cpu)).view([1, h as i64, 1]);
        let xs = Tensor::arange(w as i64, (Kind::Float, tch::Device::Cpu)).view([1, 1, w as i64]);
        let cy = Tensor::rand([q as i64, 1, 1], (Kind::Float, tch::Device::Cpu)) * h as f64;
        let cx = Tensor::rand([q as i64, 1, 1], (Kind::Float, tch::Device::Cpu)) * w as f64;
        let r = Tensor::rand([q as i64, 1, 1], (Kind::Float, tch::Device::Cpu))
            * (h.min(w) as f64 / 2.0)
            + 1.0;
        let d = ((ys - cy).square() + (xs - cx).square()).sqrt() / r;
        (d.neg() + 1.0) * 8.0
            + Tensor::randn(
                [q as i64, h as i64, w as i64],
                (Kind::Float, tch::Device::Cpu),
            ) * 0.5
    }

    #[test]
    fn fused_pass_from_logits_matches_upsample_then_rule() {
        let classes = 20;
        for (h, w, hp, wp, seed) in [
            (16, 32, 64, 128, 1),
            (7, 13, 29, 50, 2),
            (12, 12, 12, 12, 3),
            (9, 20, 40, 37, 4),
        ] {
            let q = 100;
            let logits = blob_logits(q, h, w, seed);
            // Class probabilities: a third void, the rest split between confident and unsure.
            let mut cls = vec![0.01f32; q * classes];
            for i in 0..q {
                let c = if i % 3 == 0 {
                    classes - 1
                } else {
                    i % (classes - 1)
                };
                cls[i * classes + c] = if i % 2 == 0 { 0.9 } else { 0.6 };
            }
            for method in [
                Method::default(),
                Method {
                    border_threshold: 0.5,
                    lambda: 0.3,
                    anomaly_queries: vec![0, 5, 99],
                    ground_queries: vec![2, 3],
                    ..Method::default()
                },
            ] {
                let p = plan(&cls, classes, &method);
                assert!(p.border.len() >= 2 && !p.reject.is_empty());
                let masks = needed_masks(&logits, &p.needed(), hp as i64, wp as i64);
                let want = score_map(&p, &masks, &method);
                let got = score_image(&p, &logits, (hp, wp), &method);
                assert_eq!(got.len(), want.len());
                let max = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(max <= 1e-6, "{h}x{w} -> {hp}x{wp}: max |diff| {max}");
                let lo = want.iter().copied().fold(f32::MAX, f32::min);
                let hi = want.iter().copied().fold(f32::MIN, f32::max);
                assert!(hi - lo > 0.1, "the map should not be flat: {lo}..{hi}");
            }
        }
    }

    #[test]
    fn row_sigmoid_is_within_two_ulp() {
        let xs: Vec<f32> = (-200_000..200_000)
            .map(|i| i as f32 * 5e-4)
            .chain([-120.0, -90.0, 90.0, 120.0])
            .collect();
        let mut out = vec![0f32; xs.len()];
        sigmoid_row(&xs, &mut out);
        for (&x, &p) in xs.iter().zip(&out) {
            let want = (1.0 / (1.0 + (-(x as f64)).exp())) as f32;
            let ulp = (want.to_bits() as i64 - p.to_bits() as i64).abs();
            assert!(
                ulp <= 2 || (p - want).abs() < 1e-37,
                "x = {x}: {p} vs {want}"
            );
        }
    }

    #[test]
    fn masks_upsample_bilinear_half_pixel_then_sigmoid() {
        // Query 1 holds [[0, 1], [2, 3]]; ×2 with align_corners = false gives the half-pixel grid
        // 0, 0.25, 0.75, 1 along a row (edges clamped), then the sigmoid.
        let m = Tensor::from_slice(&[9f32, 9., 9., 9., 0., 1., 2., 3.]).view([2, 2, 2]);
        let up = needed_masks(&m, &[1], 4, 4);
        assert_eq!(up.size(), [1, 4, 4]);
        let want_logits = [
            [0.0, 0.25, 0.75, 1.0],
            [0.5, 0.75, 1.25, 1.5],
            [1.5, 1.75, 2.25, 2.5],
            [2.0, 2.25, 2.75, 3.0],
        ];
        for y in 0..4 {
            for x in 0..4 {
                let got = up.double_value(&[0, y as i64, x as i64]);
                let want = 1.0 / (1.0 + (-want_logits[y][x] as f64).exp());
                assert!((got - want).abs() < 1e-6, "({y},{x}): {got} vs {want}");
            }
        }
    }

    #[test]
    fn class_probs_are_a_softmax_over_the_last_axis() {
        let l = Tensor::from_slice(&[0f32, 0., (3f32).ln(), 0.]).view([2, 2]);
        let p = class_probs(&l);
        assert_eq!(p.len(), 4);
        assert!((p[0] - 0.5).abs() < 1e-7 && (p[2] - 0.75).abs() < 1e-7);
    }

    #[test]
    fn semantic_segmentation_matches_the_einsum_definition() {
        // 3 queries, 2 classes + void, 2×2 mask logits, padded 4×4 with the image in the top-left 4×3.
        let logits = Tensor::from_slice(&[3f32, 0., 0., 0., 3., 0., 0., 0., 5.]).view([3, 3]);
        let masks = Tensor::from_slice(&[4f32, -4., 4., -4., -4., 4., -4., 4., 0., 0., 0., 0.])
            .view([3, 2, 2]);
        let seg = semantic_segmentation(&logits, &masks, (4, 4), (4, 3), (4, 3));
        // Direct evaluation of the definition.
        let cls = logits.softmax(-1, Kind::Float).narrow(1, 0, 2);
        let up = masks
            .unsqueeze(0)
            .upsample_bilinear2d([4, 4], false, None, None)
            .squeeze_dim(0)
            .sigmoid();
        let sem = Tensor::einsum("qc,qhw->chw", &[cls, up], None::<i64>).narrow(2, 0, 3);
        let want = Vec::<i64>::try_from(sem.argmax(0, false).flatten(0, -1)).unwrap();
        assert_eq!(seg.iter().map(|&v| v as i64).collect::<Vec<_>>(), want);
        assert!(seg.contains(&0) && seg.contains(&1));
    }

    #[test]
    fn ties_pick_the_first_class() {
        assert_eq!(argmax(&[0.2, 0.4, 0.4]).0, 1);
    }

    #[test]
    fn out_of_range_indices_are_reported() {
        let m = Method::default();
        let e = check_indices(&m, 50, 20).unwrap_err().to_string();
        assert!(e.contains("anomaly_queries") && e.contains("83"), "{e}");
        let e = check_indices(&m, 100, 19).unwrap_err().to_string();
        assert!(e.contains("void_class"), "{e}");
        assert!(check_indices(&m, 100, 20).is_ok());
    }

    #[test]
    fn blend_weights_match_numpy() {
        let (a, b) = blend_weights(0.6);
        assert_eq!(a, 0.6f32);
        assert_eq!(b, 0.4f32);
    }
}
