//! Starting the stage threads: the inference thread (which loads and probes the model first), then
//! the feeder, the decode workers and the scorer.

use super::message::{ToInfer, ToScore, ToWrite, Work};
use super::{decode, guard_item, infer, score, RunError, Shared};
use crate::job::Job;
use crate::model::{self, ModelError};
use crate::scores;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::thread::{Scope, ScopedJoinHandle};
use tch::Device;

/// Spawns a named stage thread in `scope`; a failure (e.g. the process limit on threads) is an
/// error, not a panic.
pub fn spawn_stage<'scope, 'env, F>(
    s: &'scope Scope<'scope, 'env>,
    name: &str,
    f: F,
) -> Result<ScopedJoinHandle<'scope, ()>, RunError>
where
    F: FnOnce() + Send + 'scope,
{
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn_scoped(s, f)
        .map_err(|e| RunError::no_thread(name, e))
}

/// Runs the network once on a small blank input: the outputs must meet the contract and hold the
/// query and class indices of the scores the job asks for. Found here, before anything is written,
/// a mismatch leaves the output folder (and an earlier run's manifest) untouched.
fn probe_model(model: &dyn model::Backend, job: &Job, device: Device) -> Result<(), RunError> {
    let d = job.preprocess.size_divisibility.max(1) as i64;
    let side = (64 + d - 1) / d * d;
    guard_item(|| -> Result<(), RunError> {
        let _g = tch::no_grad_guard();
        let x =
            tch::Tensor::f_zeros([1, 3, side, side], (tch::Kind::Float, device)).map_err(|e| {
                RunError::Temporary {
                    what: "cannot allocate the probe input".into(),
                    source: e.into(),
                }
            })?;
        let out = model.forward(&x)?;
        let (q, k) = model::check_outputs(&out, 1)?;
        // Only the requested scores' own settings: a run without Maskomaly ignores its indices.
        scores::check(&job.method, q, k).map_err(RunError::Config)
    })
    .unwrap_or_else(|panic| Err(ModelError::Forward(panic).into()))
}

/// Starts the inference thread: it loads `job`'s model onto `device`, probes it, and then serves
/// batches from `rx` to `tx`. Returns the model's description once it is ready, or why it is not.
pub fn start_model<'scope>(
    s: &'scope Scope<'scope, '_>,
    shared: &'scope Shared,
    job: &'scope Job,
    device: Device,
    (rx, tx): (Receiver<ToInfer>, Sender<ToScore>),
) -> Result<String, RunError> {
    let (ready_tx, ready_rx) = bounded::<Result<String, RunError>>(1);
    spawn_stage(s, "infer", move || {
        let model = match model::load(job, device) {
            Ok(m) => m,
            Err(e) => {
                let _ = ready_tx.send(Err(e.into()));
                return;
            }
        };
        if let Err(e) = probe_model(model.as_ref(), job, device) {
            let _ = ready_tx.send(Err(e));
            return;
        }
        let _ = ready_tx.send(Ok(model.describe()));
        drop(ready_tx);
        infer::run(shared, model.as_ref(), device, rx, tx);
    })?;
    ready_rx.recv().unwrap_or_else(|_| {
        Err(ModelError::Load {
            path: job.checkpoint.path.clone(),
            message: "loader stopped".into(),
        }
        .into())
    })
}

/// Starts the feeder (which sends the items of `items` at the positions `todo`), `decode_workers`
/// decode workers and the scorer. Fewer decode workers than asked for still run; none is an error.
#[allow(clippy::too_many_arguments)]
pub fn start_stages<'scope>(
    s: &'scope Scope<'scope, '_>,
    shared: &'scope Shared,
    items: &'scope [crate::dataset::Item],
    todo: Vec<u32>,
    decode_workers: usize,
    (work_tx, work_rx): (Sender<Work>, Receiver<Work>),
    dec_tx: Sender<ToInfer>,
    (inf_rx, sc_tx): (Receiver<ToScore>, Sender<ToWrite>),
) -> Result<(), RunError> {
    spawn_stage(s, "feed", move || {
        for idx in todo {
            let idx = idx as usize;
            let w = Work {
                idx,
                item: items[idx].clone(),
            };
            if shared.stopping() || work_tx.send(w).is_err() {
                break;
            }
        }
    })?;
    let mut decoders = 0;
    for i in 0..decode_workers {
        let (rx, tx) = (work_rx.clone(), dec_tx.clone());
        match spawn_stage(s, &format!("decode-{i}"), move || {
            decode::run(shared, rx, tx)
        }) {
            Ok(_) => decoders += 1,
            // Fewer decoders still finish the run; none cannot.
            Err(e) if decoders > 0 => {
                log::warn!("{e}; going on with {decoders} decode workers");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    spawn_stage(s, "score", move || score::run(shared, inf_rx, sc_tx))?;
    Ok(())
}
