//! The rule as tensor operations on the model's device (the form the reference writes it in):
//! upsample the needed queries' masks, then [`score`]. Used on GPUs and as the definition the
//! fused CPU pass ([`super::fused`]) is tested against.

use super::{blend_weights, QueryPlan};
use crate::job::Method;
use tch::{Kind, Tensor};

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
