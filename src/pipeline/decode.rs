//! Decode stage: read the file, hash it, check its size, decode, preprocess. N workers share one
//! input channel.

use super::message::{Decoded, Failure, InputId, ToInfer, Work};
use super::{guard_item, Shared};
use crate::output::digest::sha256_hex;
use crate::preprocess::{decode_file_limited, prepare};
use crate::provenance::manifest::{mtime_ns, Timings};
use crossbeam_channel::{Receiver, Sender};
use std::io::Read;
use std::path::Path;
use std::time::Instant;

pub fn run(shared: &Shared, rx: Receiver<Work>, tx: Sender<ToInfer>) {
    while let Ok(work) = rx.recv() {
        shared.sample_queue(0, rx.len());
        if shared.stopping() {
            break;
        }
        let t0 = Instant::now();
        let (idx, item) = (work.idx, work.item.clone());
        // Last line of defence: a panic on one input's data fails that item only.
        let msg = guard_item(|| decode_one(shared, work)).unwrap_or_else(|error| {
            Err(Box::new(Failure {
                idx,
                item,
                input_id: None,
                error,
                timings: Timings {
                    decode: ms(t0),
                    ..Timings::default()
                },
            }))
        });
        if tx.send(msg).is_err() {
            break;
        }
    }
}

/// Reads a file with the size and modification time of the bytes read (taken from the open file,
/// before reading, so a file replaced later never matches them).
pub fn read_input(path: &Path) -> std::io::Result<(Vec<u8>, u64, i64)> {
    let mut f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    let mut bytes = Vec::with_capacity(meta.len().min(1 << 30) as usize);
    f.read_to_end(&mut bytes)?;
    Ok((bytes, meta.len(), mtime_ns(&meta)))
}

fn decode_one(shared: &Shared, work: Work) -> ToInfer {
    let t0 = Instant::now();
    let Work { idx, item } = work;
    let fail = |item, id, error: String, t0: Instant| {
        Box::new(Failure {
            idx,
            item,
            input_id: id,
            error,
            timings: Timings {
                decode: ms(t0),
                ..Timings::default()
            },
        })
    };
    let (bytes, size, mtime_ns) = match read_input(&item.image) {
        Ok(b) => b,
        Err(e) => return Err(fail(item, None, format!("cannot read: {e}"), t0)),
    };
    let id = InputId {
        sha256: sha256_hex(&bytes),
        size,
        mtime_ns,
    };
    let decoded = decode_file_limited(&item.image, &bytes, shared.job.runtime.max_pixels);
    drop(bytes);
    let pre = &shared.job.preprocess;
    let prepared = decoded.and_then(|image| {
        let p = if shared.device.is_cuda() {
            // 3 bytes per pixel to upload, normalised on the device (see preprocess::device).
            let px = crate::preprocess::device::resize(&image, pre, shared.device)?;
            crate::preprocess::Prepared {
                tensor: px.data,
                original: px.original,
                resized: px.resized,
                padded: px.padded,
            }
        } else {
            prepare(&image, pre)?
        };
        Ok((p, image))
    });
    let (prepared, image) = match prepared {
        Ok(p) => p,
        Err(e) => return Err(fail(item, Some(id), e.to_string(), t0)),
    };
    Ok(Decoded {
        idx,
        item,
        image,
        prepared,
        input_id: id,
        timings: Timings {
            decode: ms(t0),
            ..Timings::default()
        },
    })
}

pub fn ms(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1e3
}
