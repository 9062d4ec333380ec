//! The rule in one pass over the image on the host, for CPU runs: row by row, so every mask row
//! the rule reads stays in cache, and (in [`score_from_logits`]) straight from the low-resolution
//! logits with the upsampling and the sigmoid fused in. Bit-identical to [`super::score`] on the
//! same masks.

use super::{blend_weights, QueryPlan};
use crate::job::Method;
use crate::resize::{bilinear_taps, hresize, Tap};

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
    /// difference and blend is rounded once in float32 in the order of [`super::score`], so the
    /// result is bit-identical to it.
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
/// rule reads stays in cache: bit-identical to [`super::score`] without its full-size temporaries.
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
/// order as `[n, h, w]`. Equal to `needed_masks` + [`super::score_map`] within float32 rounding of
/// the upsampling and the sigmoid (tested to 1e-6).
pub fn score_from_logits(
    plan: &QueryPlan,
    logits: &[f32],
    h_w: (usize, usize),
    padded: (usize, usize),
    method: &Method,
) -> Vec<f32> {
    score_with(plan, logits, h_w, padded, method, fused_band_dispatch)
}

/// [`score_from_logits`] on the baseline x86-64 instructions whatever the CPU has, as a CPU
/// without AVX2 runs it.
#[cfg(test)]
pub(super) fn score_from_logits_baseline(
    plan: &QueryPlan,
    logits: &[f32],
    h_w: (usize, usize),
    padded: (usize, usize),
    method: &Method,
) -> Vec<f32> {
    score_with(plan, logits, h_w, padded, method, fused_band)
}

/// [`score_from_logits`] with `band` computing each band of rows.
fn score_with(
    plan: &QueryPlan,
    logits: &[f32],
    (h, w): (usize, usize),
    (hp, wp): (usize, usize),
    method: &Method,
    band: fn(&Fused, usize, &mut [f32]),
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
        .for_each(|(b, chunk)| band(&ctx, b, chunk));
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
