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

/// The rule as one pass over the image on the host, for CPU runs, row by row so every mask row the
/// rule reads stays in cache: the same float32 operations in the same order as [`score`] (each
/// product, difference and blend rounded once), so the result is bit-identical, without [`score`]'s
/// full-size temporaries. `plane(q)` gives the row-major `H × W` mask of query `q`.
pub fn score_host<'a>(
    plan: &QueryPlan,
    plane: impl Fn(i64) -> &'a [f32] + Sync,
    h: usize,
    w: usize,
    method: &Method,
) -> Vec<f32> {
    use rayon::prelude::*;
    let anomaly: Vec<(&[f32], f32)> = plan.anomaly.iter().map(|&(q, c)| (plane(q), c)).collect();
    let reject: Vec<(&[f32], f32)> = plan.reject.iter().map(|&(q, c)| (plane(q), c)).collect();
    let border: Vec<&[f32]> = plan.border.iter().map(|&q| plane(q)).collect();
    let ground: Vec<(&[f32], f32)> = plan.ground.iter().map(|&(q, c)| (plane(q), c)).collect();
    for m in anomaly
        .iter()
        .map(|a| a.0)
        .chain(reject.iter().map(|r| r.0))
        .chain(border.iter().copied())
    {
        assert_eq!(m.len(), h * w, "mask plane does not match the map size");
    }
    let thr = method.border_threshold as f32;
    let use_border = border.len() >= 2;
    // Every confident or non-void query once: (mask, rejection confidence, counted at borders).
    let mut known: Vec<(&[f32], Option<f32>, bool)> = Vec::new();
    let mut ids: Vec<i64> = plan.reject.iter().map(|r| r.0).collect();
    if use_border {
        ids.extend(&plan.border);
    }
    ids.sort_unstable();
    ids.dedup();
    for q in ids {
        let conf = plan.reject.iter().find(|r| r.0 == q).map(|r| r.1);
        known.push((plane(q), conf, use_border && plan.border.contains(&q)));
    }
    let (a, b) = blend_weights(method.lambda);
    let mut out = vec![0f32; h * w];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        let r = y * w..(y + 1) * w;
        let mut soft2 = vec![0f32; w];
        for (m, c) in &anomaly {
            for (s, &p) in soft2.iter_mut().zip(&m[r.clone()]) {
                *s = s.max(p * c);
            }
        }
        // Rejection and border counting read each known-class mask row once. Reordering is exact:
        // `min` does not round, and zeroing commutes with the later mins because every term
        // 1 − p·c is ≥ 0 (p, c ∈ [0, 1]).
        let mut soft = vec![1f32; w];
        let mut count = vec![0u8; w];
        for &(m, conf, counts) in &known {
            let m = &m[r.clone()];
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
        if use_border {
            for (s, &n) in soft.iter_mut().zip(&count) {
                if n >= 2 {
                    *s = 0.0;
                }
            }
        }
        for (m, c) in &ground {
            for (s, &p) in soft.iter_mut().zip(&m[r.clone()]) {
                *s = s.min(1.0 - p * c);
            }
        }
        for ((o, &s), &s2) in row.iter_mut().zip(&soft).zip(&soft2) {
            *o = s * a + s2 * b;
        }
    });
    out
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
        let t = score(plan, masks, method)
            .to_device(tch::Device::Cpu)
            .contiguous();
        Vec::<f32>::try_from(t.flatten(0, -1)).expect("float tensor converts to Vec<f32>")
    }
}

/// The reference's semantic inference (Mask2Former `semantic_inference` + detectron2
/// `sem_seg_postprocess`): `Σ_q softmax(cls)[q, :K] · sigmoid(mask_q)` at the padded size, cropped to
/// the resized image, bilinearly resized to the input size, argmax over classes → trainIds (H × W).
/// Queries are summed in chunks so only a few full-size masks exist at once.
pub fn semantic_segmentation(
    pred_logits: &Tensor,
    pred_masks: &Tensor,
    padded: (usize, usize),
    resized: (usize, usize),
    original: (usize, usize),
) -> Vec<u8> {
    let (hp, wp) = (padded.0 as i64, padded.1 as i64);
    let q = pred_logits.size()[0];
    let k = pred_logits.size()[1] - 1;
    let cls = pred_logits.softmax(-1, Kind::Float).narrow(1, 0, k); // [Q, K]
    let mut sem = Tensor::zeros([k, hp * wp], (Kind::Float, pred_masks.device()));
    let chunk = 16;
    for start in (0..q).step_by(chunk as usize) {
        let n = chunk.min(q - start);
        let m = pred_masks
            .narrow(0, start, n)
            .unsqueeze(0)
            .upsample_bilinear2d([hp, wp], false, None, None);
        let m = m.squeeze_dim(0).sigmoid().view([n, hp * wp]); // [n, Hp·Wp]
        sem += cls.narrow(0, start, n).transpose(0, 1).matmul(&m); // [K, Hp·Wp]
    }
    let sem = sem
        .view([1, k, hp, wp])
        .narrow(2, 0, resized.0 as i64)
        .narrow(3, 0, resized.1 as i64);
    let sem = sem.upsample_bilinear2d([original.0 as i64, original.1 as i64], false, None, None);
    let ids = sem
        .squeeze_dim(0)
        .argmax(0, false)
        .to_kind(Kind::Uint8)
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
