//! The Maskomaly rule (`Maskomaly.get_soft_mask` in the reference, docs/method.md §4).
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
//!
//! Here: the rule's inputs (the query roles, [`plan`]) and the CPU entry point [`score_cpu`];
//! [`tensor`] holds the rule as tensor operations on the model's device, [`fused`] the one-pass form
//! for CPU runs.

mod fused;
mod tensor;
#[cfg(test)]
mod tests;

pub use fused::{score_from_logits, score_host, sigmoid_row};
pub use tensor::{needed_masks, score, score_device, to_host};

use super::ScoreError;
use crate::job::Method;
use tch::{Kind, Tensor};

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

/// The padded-size score map of one image from its CPU mask logits `[Q, h, w]`, by the fused row
/// pass of [`score_from_logits`]. Other devices use [`score_device`].
pub fn score_cpu(
    plan: &QueryPlan,
    pred_masks: &Tensor,
    padded: (usize, usize),
    method: &Method,
) -> Vec<f32> {
    let idx = Tensor::from_slice(&plan.needed());
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
}
