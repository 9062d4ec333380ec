//! Inference stage: one thread owns the model. Items of equal padded size are batched up to
//! `runtime.batch_size`; outputs are split back per item.

use super::decode::ms;
use super::message::{Decoded, Failure, Inferred, ToInfer, ToScore};
use super::{RunError, Shared};
use crate::model::{check_outputs, sync, Backend, ModelError};
use crossbeam_channel::{Receiver, Sender};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

pub fn run(
    shared: &Shared,
    model: &dyn Backend,
    device: Device,
    rx: Receiver<ToInfer>,
    tx: Sender<ToScore>,
) {
    let _guard = tch::no_grad_guard();
    let batch_size = shared.job.runtime.batch_size;
    // The normalisation table on the device, for items that arrive as 8-bit pixels.
    let mut lut: Option<Tensor> = None;
    let mut pending: Option<Decoded> = None;
    loop {
        let first = match pending.take() {
            Some(d) => d,
            None => match rx.recv() {
                Ok(Ok(d)) => {
                    shared.sample_queue(1, rx.len());
                    d
                }
                Ok(Err(f)) => {
                    if tx.send(Err(f)).is_err() {
                        return;
                    }
                    continue;
                }
                Err(_) => return,
            },
        };
        let mut batch = vec![first];
        while batch.len() < batch_size {
            match rx.try_recv() {
                Ok(Ok(d)) if d.prepared.padded == batch[0].prepared.padded => batch.push(d),
                Ok(Ok(d)) => {
                    pending = Some(d);
                    break;
                }
                Ok(Err(f)) => {
                    if tx.send(Err(f)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let pixels = batch[0].prepared.tensor.kind() == Kind::Uint8;
        let lut = pixels.then(|| {
            lut.get_or_insert_with(|| {
                crate::preprocess::device::lut(&shared.job.preprocess, device)
            })
            .shallow_clone()
        });
        let input = Input {
            lut: lut.as_ref(),
            preprocess: &shared.job.preprocess,
        };
        match infer_batch(model, device, batch, input) {
            Ok(outs) => {
                for o in outs {
                    if tx.send(Ok(o)).is_err() {
                        return;
                    }
                }
            }
            Err((e, items)) => {
                // A device fault (out of memory, a CUDA error) ends the run: later batches would
                // meet it too. Its exit code says whether a retry can help.
                let fatal = matches!(e, ModelError::Contract(_)) || e.fault().is_some();
                if fatal {
                    shared.fail(RunError::Model(e));
                    return;
                }
                for d in items {
                    let f = Failure {
                        idx: d.idx,
                        item: d.item,
                        input_id: Some(d.input_id),
                        error: e.to_string(),
                        timings: d.timings,
                    };
                    if tx.send(Err(Box::new(f))).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// How a batch becomes the network's input: normalised on the host already, or 8-bit pixels to
/// normalise on the device with `lut`.
struct Input<'a> {
    lut: Option<&'a Tensor>,
    preprocess: &'a crate::job::Preprocess,
}

impl Input<'_> {
    /// `[B, 3, Hp, Wp]` float32 on `device`.
    fn batch(&self, batch: &[Decoded], device: Device) -> Tensor {
        let one = |d: &Decoded| match self.lut {
            Some(lut) => crate::preprocess::device::normalise(
                &d.prepared.tensor,
                lut,
                self.preprocess,
                d.prepared.padded,
            ),
            None => d.prepared.tensor.to_device(device),
        };
        if let [d] = batch {
            // A batch of one needs no stacking copy.
            return one(d).unsqueeze(0);
        }
        let items: Vec<Tensor> = batch.iter().map(one).collect();
        Tensor::stack(&items, 0)
    }
}

fn infer_batch(
    model: &dyn Backend,
    device: Device,
    batch: Vec<Decoded>,
    input: Input,
) -> Result<Vec<Inferred>, (ModelError, Vec<Decoded>)> {
    let t0 = Instant::now();
    let n_items = batch.len() as i64;
    // A panic inside libtorch (an infallible tch call) fails this batch's items, not the run.
    let timed = super::guard_item(|| {
        let x = input.batch(&batch, device); // [B, 3, Hp, Wp]
        sync(device);
        let upload = if device == Device::Cpu { 0.0 } else { ms(t0) };
        let t1 = Instant::now();
        let out = model.forward(&x)?;
        check_outputs(&out, n_items)?;
        sync(device);
        Ok((out, upload, ms(t1)))
    })
    .unwrap_or_else(|panic| Err(ModelError::Forward(panic)));
    let (out, upload, forward) = match timed {
        Ok(o) => o,
        Err(e) => return Err((e, batch)),
    };
    let n = batch.len() as f64;
    let per_item = forward / n;
    Ok(batch
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let mut timings = d.timings;
            timings.upload = upload / n;
            timings.infer = per_item;
            Inferred {
                idx: d.idx,
                item: d.item,
                image: d.image,
                padded: d.prepared.padded,
                resized: d.prepared.resized,
                pred_logits: out.pred_logits.get(i as i64),
                pred_masks: out.pred_masks.get(i as i64),
                input_id: d.input_id,
                timings,
            }
        })
        .collect())
}
