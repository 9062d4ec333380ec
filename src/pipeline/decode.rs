//! Decode stage: read the file, hash it, decode, preprocess. N workers share one input channel.

use super::message::{Decoded, Failure, ToInfer, Work};
use super::Shared;
use crate::output::manifest::{sha256_hex, Timings};
use crate::preprocess::{decode_file, prepare};
use crossbeam_channel::{Receiver, Sender};
use std::time::Instant;

pub fn run(shared: &Shared, rx: Receiver<Work>, tx: Sender<ToInfer>) {
    while let Ok(work) = rx.recv() {
        shared.sample_queue(0, rx.len());
        if shared.stopping() {
            break;
        }
        let msg = decode_one(shared, work);
        if tx.send(msg).is_err() {
            break;
        }
    }
}

fn decode_one(shared: &Shared, work: Work) -> ToInfer {
    let t0 = Instant::now();
    let Work { idx, item } = work;
    let fail = |item, sha, error: String, t0: Instant| Failure {
        idx,
        item,
        input_sha256: sha,
        error,
        timings: Timings {
            decode: ms(t0),
            ..Timings::default()
        },
    };
    let bytes = match std::fs::read(&item.image) {
        Ok(b) => b,
        Err(e) => return Err(fail(item, None, format!("cannot read: {e}"), t0)),
    };
    let sha = sha256_hex(&bytes);
    let image = match decode_file(&item.image, &bytes) {
        Ok(img) => img,
        Err(e) => return Err(fail(item, Some(sha), e.to_string(), t0)),
    };
    drop(bytes);
    let prepared = prepare(&image, &shared.job.preprocess);
    Ok(Decoded {
        idx,
        item,
        image,
        prepared,
        input_sha256: sha,
        timings: Timings {
            decode: ms(t0),
            ..Timings::default()
        },
    })
}

pub fn ms(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1e3
}
