//! Scoring stage: every score of `method.scores` from the same network outputs on the model's
//! device (`crate::scores`), each map at the input size.

use super::message::{Failure, Inferred, Scored, ToScore, ToWrite};
use super::{RunError, Shared};
use crate::scores;
use crossbeam_channel::{Receiver, Sender};

pub fn run(shared: &Shared, rx: Receiver<ToScore>, tx: Sender<ToWrite>) {
    let _guard = tch::no_grad_guard();
    // The stage overlaps with inference, which already uses every core; scoring one image on this
    // thread alone avoids idle worker threads spinning against the model's threads.
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(p) => p,
        Err(e) => {
            shared.fail(RunError::no_thread("scoring", e));
            return;
        }
    };
    let mut checked = false;
    while let Ok(msg) = rx.recv() {
        shared.sample_queue(2, rx.len());
        let out = match msg {
            Err(f) => Err(f),
            Ok(inf) => {
                if !checked {
                    let (q, k) = (inf.pred_logits.size()[0], inf.pred_logits.size()[1]);
                    if let Err(e) = scores::check(&shared.job.method, q, k) {
                        shared.fail(RunError::Config(e));
                        return;
                    }
                    checked = true;
                }
                let (idx, item, id) = (inf.idx, inf.item.clone(), inf.input_id.clone());
                // A panic on one item's data fails that item only.
                super::guard_item(|| pool.install(|| score_one(shared, inf))).unwrap_or_else(
                    |error| {
                        Err(Box::new(super::message::Failure {
                            idx,
                            item,
                            input_id: Some(id),
                            error,
                            timings: Default::default(),
                        }))
                    },
                )
            }
        };
        if tx.send(out).is_err() {
            return;
        }
    }
}

/// Scores one item: every score of the job from the same outputs, each map at the item's original
/// resolution. A score that cannot be computed for this item fails the item.
pub fn score_one(shared: &Shared, inf: Inferred) -> ToWrite {
    let method = &shared.job.method;
    // NaNs would silently turn into a constant map; they are counted, logged and recorded.
    let nan_values = [&inf.pred_logits, &inf.pred_masks]
        .iter()
        .map(|t| t.isnan().sum(tch::Kind::Int64).int64_value(&[]) as u64)
        .sum::<u64>();
    if nan_values > 0 {
        log::warn!(
            "{}: the network's outputs hold {nan_values} NaN values; the map is not meaningful",
            inf.item.image.display()
        );
    }
    let o = &shared.job.output;
    let outputs = scores::Outputs {
        pred_logits: &inf.pred_logits,
        pred_masks: &inf.pred_masks,
        padded: inf.padded,
        resized: inf.resized,
        original: (inf.image.height, inf.image.width),
    };
    let mut timings = inf.timings;
    match scores::compute(method, &outputs, o.segmentation || o.npy) {
        Ok(s) => {
            timings.score = s.score_ms;
            timings.download = s.download_ms;
            Ok(Scored {
                idx: inf.idx,
                item: inf.item,
                image: inf.image,
                scores: s.maps,
                classes: s.classes,
                segmentation: s.segmentation,
                input_id: inf.input_id,
                nan_values,
                timings,
            })
        }
        Err(e) => Err(Box::new(Failure {
            idx: inf.idx,
            item: inf.item,
            input_id: Some(inf.input_id),
            error: e.to_string(),
            timings,
        })),
    }
}
