//! Scoring stage: the Maskomaly rule on the model's device at the padded size, then the INTER_AREA
//! resize back to the input size (which squeezes the padded border in, as the reference does).

use super::decode::ms;
use super::infer::sync;
use super::message::{Inferred, Scored, ToScore, ToWrite};
use super::{RunError, Shared};
use crate::resize::opencv_area;
use crate::scoring;
use crossbeam_channel::{Receiver, Sender};
use std::time::Instant;

pub fn run(shared: &Shared, rx: Receiver<ToScore>, tx: Sender<ToWrite>) {
    let _guard = tch::no_grad_guard();
    // The stage overlaps with inference, which already uses every core; scoring one image on this
    // thread alone avoids idle worker threads spinning against the model's threads.
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(p) => p,
        Err(e) => {
            shared.fail(RunError::Io(format!(
                "cannot start the scoring thread: {e}"
            )));
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
                    if let Err(e) = scoring::check_indices(&shared.job.method, q, k) {
                        shared.fail(RunError::Config(e.to_string()));
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

/// Scores one item; the map is returned at the item's original resolution.
pub fn score_one(shared: &Shared, inf: Inferred) -> ToWrite {
    let t0 = Instant::now();
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
    let classes = inf.pred_logits.size()[1] as usize;
    let cls = scoring::class_probs(&inf.pred_logits);
    let plan = scoring::plan(&cls, classes, method);
    let (hp, wp) = inf.padded;
    let device = inf.pred_masks.device();
    let mut timings = inf.timings;
    let padded = if device == tch::Device::Cpu {
        scoring::score_image(&plan, &inf.pred_masks, (hp, wp), method)
    } else {
        let map = scoring::score_device(&plan, &inf.pred_masks, (hp, wp), method);
        sync(device);
        timings.score = ms(t0);
        let t1 = Instant::now();
        let host = scoring::to_host(&map);
        timings.download = ms(t1);
        host
    };
    let (h, w) = (inf.image.height, inf.image.width);
    let t2 = Instant::now();
    let score = opencv_area(&padded, wp, hp, w, h);
    if device == tch::Device::Cpu {
        timings.score = ms(t0);
    } else {
        timings.score += ms(t2);
    }
    let o = &shared.job.output;
    let segmentation = (o.segmentation || o.npy).then(|| {
        scoring::semantic_segmentation(
            &inf.pred_logits,
            &inf.pred_masks,
            inf.padded,
            inf.resized,
            (h, w),
        )
    });
    Ok(Scored {
        idx: inf.idx,
        item: inf.item,
        image: inf.image,
        score,
        segmentation,
        input_id: inf.input_id,
        nan_values,
        timings,
    })
}
