//! Inference stage: one thread owns the model. Items of equal padded size are batched up to
//! `runtime.batch_size`; outputs are split back per item.

use super::decode::ms;
use super::message::{Decoded, Failure, Inferred, ToInfer, ToScore};
use super::{RunError, Shared};
use crate::error::model_fault;
use crate::model::{check_outputs, sync, Backend, ModelError};
use crossbeam_channel::{Receiver, Sender};
use std::time::Instant;
use tch::{Device, Tensor};

pub fn run(
    shared: &Shared,
    model: &dyn Backend,
    device: Device,
    rx: Receiver<ToInfer>,
    tx: Sender<ToScore>,
) {
    let _guard = tch::no_grad_guard();
    let batch_size = shared.job.runtime.batch_size;
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
        match infer_batch(model, device, batch) {
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
                let fatal = matches!(e, ModelError::Contract(_)) || model_fault(&e).is_some();
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

fn infer_batch(
    model: &dyn Backend,
    device: Device,
    batch: Vec<Decoded>,
) -> Result<Vec<Inferred>, (ModelError, Vec<Decoded>)> {
    let t0 = Instant::now();
    let inputs: Vec<&Tensor> = batch.iter().map(|d| &d.prepared.tensor).collect();
    // A panic inside libtorch (an infallible tch call) fails this batch's items, not the run.
    let timed = super::guard_item(|| {
        let x = Tensor::stack(&inputs, 0).to_device(device); // [B, 3, Hp, Wp]
        sync(device);
        let upload = if device == Device::Cpu { 0.0 } else { ms(t0) };
        let t1 = Instant::now();
        let out = model.forward(&x)?;
        check_outputs(&out, inputs.len() as i64)?;
        sync(device);
        Ok((out, upload, ms(t1)))
    })
    .unwrap_or_else(|panic| Err(ModelError::Forward(panic)));
    drop(inputs);
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
