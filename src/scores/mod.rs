//! Every training-free anomaly score from one forward pass (docs/method.md §11).
//!
//! All of them read the same two network outputs, `pred_logits [Q, K+1]` and `pred_masks [Q, h, w]`:
//!
//! | name | score at each pixel of the H × W input | official source |
//! |---|---|---|
//! | `maskomaly` | the Maskomaly rule ([`maskomaly`]) at the padded size, then INTER_AREA | jan-ackermann/Maskomaly `maskomaly/model.py` |
//! | `rba` | `−Σ_k tanh(S'_k)`, optionally a 7×7 Gaussian blur (σ = 1) | NazirNayal8/RbA `evaluate_ood.py::get_RbA`, `support.py` |
//! | `energy` | `−logsumexp_k S'_k` | NazirNayal8/RbA `evaluate_ood.py::get_energy` |
//! | `eam` | `1 − Σ_q σ(post(up(m_q))) · max_k p̃_q,k` | matejgrcic/Open-set-M2F `ood_detection_evaluation.py` |
//! | `msp` | `1 − max_k S'_k` (a convention) | – |
//! | `entropy` | `−Σ_k π_k ln π_k`, `π = S' / Σ_k S'_k` (a convention) | – |
//!
//! `S' = post(Σ_q p̃_q σ(up(m_q)))` is Mask2Former's `sem_seg` ([`semantic`]), computed once per
//! item and shared by every score that reads it and by the segmentation output. Everything runs in
//! float32 on the model's device; only the Maskomaly map's final INTER_AREA runs on the host.
//! Higher is more anomalous for every score.

pub mod maskomaly;
pub mod semantic;

use crate::job::Method;
pub use crate::job::ScoreKind;
use std::borrow::Cow;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// A score map mapped to [0, 1] for PNG and heatmap outputs by [`ScoreKind::display_range`]: fixed
/// per score and model, monotone, never normalised per image. A map already in [0, 1] with the
/// range [0, 1] (every Maskomaly map) is returned as it is.
pub fn display(kind: ScoreKind, classes: usize, values: &[f32]) -> Cow<'_, [f32]> {
    let (lo, hi) = kind.display_range(classes);
    if (lo, hi) == (0.0, 1.0) && values.iter().all(|v| (0.0..=1.0).contains(v)) {
        return Cow::Borrowed(values);
    }
    let scale = 1.0 / (hi - lo);
    Cow::Owned(
        values
            .iter()
            .map(|&v| ((v as f64 - lo) * scale).clamp(0.0, 1.0) as f32)
            .collect(),
    )
}

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
    #[error(
        "the model's outputs do not fit together: pred_logits {logits:?}, pred_masks {masks:?} \
         (expected [Q, K+1] with K >= 1 and [Q, h, w])"
    )]
    Shape { logits: Vec<i64>, masks: Vec<i64> },
    #[error(
        "`method.rba.smoothing` needs an image of at least 4×4 pixels (its 7×7 blur reflects 3 \
         pixels at each border); this one is {width}×{height}"
    )]
    TooSmallToSmooth { width: usize, height: usize },
}

/// One item's network outputs and the sizes that place them.
pub struct Outputs<'a> {
    /// `[Q, K+1]` class logits (the last class is void).
    pub pred_logits: &'a Tensor,
    /// `[Q, h, w]` mask logits.
    pub pred_masks: &'a Tensor,
    /// (Hp, Wp): the padded network input.
    pub padded: (usize, usize),
    /// (h', w'): the resized image inside the padding.
    pub resized: (usize, usize),
    /// (H, W): the input image.
    pub original: (usize, usize),
}

/// One item's maps on the host at input resolution, in the order of `method.scores`.
pub struct ItemScores {
    pub maps: Vec<(ScoreKind, Vec<f32>)>,
    /// `argmax_k S'` as trainIds, when asked for.
    pub segmentation: Option<Vec<u8>>,
    /// Inlier classes K of the model.
    pub classes: usize,
    /// Milliseconds computing (synchronised on a GPU; includes the host INTER_AREA).
    pub score_ms: f64,
    /// Milliseconds copying the maps to the host (0 on the CPU).
    pub download_ms: f64,
}

/// Checks what does not change between items: the Maskomaly indices against the model's sizes.
pub fn check(method: &Method, queries: i64, classes: i64) -> Result<(), ScoreError> {
    if method.scores.contains(&ScoreKind::Maskomaly) {
        maskomaly::check_indices(method, queries, classes)?;
    }
    Ok(())
}

/// A map still on the model's device, or already on the host.
enum Pending {
    /// Maskomaly at the padded size, to be resized with INTER_AREA.
    PaddedHost(Vec<f32>),
    PaddedDevice(Tensor),
    /// `[H, W]` at input resolution.
    Device(Tensor),
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Computes every score of `method.scores` (and the segmentation if `segmentation`) for one item.
pub fn compute(
    method: &Method,
    out: &Outputs,
    segmentation: bool,
) -> Result<ItemScores, ScoreError> {
    let (ls, ms_) = (out.pred_logits.size(), out.pred_masks.size());
    if ls.len() != 2 || ms_.len() != 3 || ls[0] != ms_[0] || ls[1] < 2 {
        return Err(ScoreError::Shape {
            logits: ls,
            masks: ms_,
        });
    }
    let classes = (ls[1] - 1) as usize;
    let (h, w) = out.original;
    let smooth = method.rba.smoothing && method.scores.contains(&ScoreKind::Rba);
    if smooth && (h < 4 || w < 4) {
        return Err(ScoreError::TooSmallToSmooth {
            width: w,
            height: h,
        });
    }
    let device = out.pred_masks.device();
    let t0 = Instant::now();

    let need_s = segmentation || method.scores.iter().any(|k| k.reads_semantic());
    let need_eam = method.scores.contains(&ScoreKind::Eam);
    let shared = semantic::compute(out, need_s, need_eam);

    let mut pending = Vec::with_capacity(method.scores.len());
    for &kind in &method.scores {
        let map = match kind {
            ScoreKind::Maskomaly => maskomaly_map(method, out),
            ScoreKind::Eam => {
                Pending::Device(shared.eam.as_ref().expect("computed").shallow_clone())
            }
            k => {
                let s = shared.semantic.as_ref().expect("computed");
                let mut t = semantic::score(k, s);
                if k == ScoreKind::Rba && method.rba.smoothing {
                    t = semantic::gaussian_blur(&t);
                }
                Pending::Device(t)
            }
        };
        pending.push((kind, map));
    }
    let seg =
        segmentation.then(|| semantic::argmax_classes(shared.semantic.as_ref().expect("computed")));
    crate::model::sync(device);
    let mut score_ms = ms(t0);

    let t1 = Instant::now();
    let (hp, wp) = out.padded;
    let mut maps = Vec::with_capacity(pending.len());
    let mut padded_maps = Vec::new();
    for (i, (kind, p)) in pending.into_iter().enumerate() {
        // Padded maps are put back at their position `i` below.
        match p {
            Pending::PaddedHost(v) => padded_maps.push((i, v)),
            Pending::PaddedDevice(t) => padded_maps.push((i, maskomaly::to_host(&t))),
            Pending::Device(t) => maps.push((kind, maskomaly::to_host(&t))),
        }
    }
    let segmentation = seg.map(|t| {
        let t = t.to_device(Device::Cpu).contiguous();
        Vec::<u8>::try_from(t.flatten(0, -1)).expect("uint8 tensor converts to Vec<u8>")
    });
    let download_ms = if device == Device::Cpu { 0.0 } else { ms(t1) };
    if device == Device::Cpu {
        score_ms += ms(t1);
    }

    // INTER_AREA of the padded Maskomaly map back to the input size (which squeezes the padded
    // border in, as the reference does).
    let t2 = Instant::now();
    for (i, v) in padded_maps {
        let m = crate::resize::opencv_area(&v, wp, hp, w, h);
        maps.insert(i, (ScoreKind::Maskomaly, m));
    }
    score_ms += ms(t2);
    Ok(ItemScores {
        maps,
        segmentation,
        classes,
        score_ms,
        download_ms,
    })
}

/// The Maskomaly map at the padded size: the fused row pass on the CPU, tensor ops elsewhere.
fn maskomaly_map(method: &Method, out: &Outputs) -> Pending {
    let classes = out.pred_logits.size()[1] as usize;
    let cls = maskomaly::class_probs(out.pred_logits);
    let plan = maskomaly::plan(&cls, classes, method);
    if out.pred_masks.device() == Device::Cpu {
        Pending::PaddedHost(maskomaly::score_cpu(
            &plan,
            out.pred_masks,
            out.padded,
            method,
        ))
    } else {
        Pending::PaddedDevice(maskomaly::score_device(
            &plan,
            out.pred_masks,
            out.padded,
            method,
        ))
    }
}

/// Float32 class probabilities `[Q, K+1]` on the outputs' device.
pub(crate) fn softmax_classes(pred_logits: &Tensor) -> Tensor {
    pred_logits.softmax(-1, Kind::Float)
}

#[cfg(test)]
mod tests;
