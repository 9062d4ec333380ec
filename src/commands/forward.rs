//! `maskomaly forward`: one image through preprocessing and the network, raw outputs to a
//! safetensors file, for debugging and for parity checks against other implementations. The job
//! and its checkpoint are read, overridden, downloaded and verified as `run` does.

use super::{job_with, load_model, Overrides};
use crate::device::resolve_device;
use crate::diagnostic::{ExitCode, Failure};
use crate::job::Job;
use crate::model::check_outputs;
use crate::preprocess::{decode_file_limited, prepare};
use crate::run_error::RunError;
use std::path::Path;

pub fn forward(
    job: Option<&Path>,
    overrides: &Overrides,
    image: &Path,
    out: &Path,
) -> Result<ExitCode, Failure> {
    let job = job_with(job, overrides)?;
    forward_to_file(&job, image, out)?;
    println!("{}", out.display());
    Ok(ExitCode::Ok)
}

/// Writes `pixel_values` [1,3,Hp,Wp], `pred_logits` [Q,K+1] and `pred_masks` [Q,Hp/4,Wp/4] of
/// `image` to `out`.
pub fn forward_to_file(job: &Job, image: &Path, out: &Path) -> Result<(), RunError> {
    let device = resolve_device(job.runtime.device)?;
    let bytes = std::fs::read(image).map_err(|source| RunError::Read {
        path: image.to_path_buf(),
        source,
    })?;
    let prepared = decode_file_limited(image, &bytes, job.runtime.max_pixels)
        .and_then(|img| prepare(&img, &job.preprocess))
        .map_err(|source| RunError::Image {
            path: image.to_path_buf(),
            source,
        })?;
    let m = load_model(job, device)?;
    let _guard = tch::no_grad_guard();
    let x = prepared.tensor.unsqueeze(0).to_device(device);
    let raw = m.forward(&x)?;
    check_outputs(&raw, 1)?;
    let cpu = tch::Device::Cpu;
    let tensors = [
        ("pixel_values", x.to_device(cpu)),
        ("pred_logits", raw.pred_logits.get(0).to_device(cpu)),
        ("pred_masks", raw.pred_masks.get(0).to_device(cpu)),
    ];
    crate::output::write_atomic(out, |tmp| {
        tch::Tensor::write_safetensors(&tensors, tmp)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
    .map_err(|e| RunError::Write {
        path: out.to_path_buf(),
        source: e.into(),
    })
}
