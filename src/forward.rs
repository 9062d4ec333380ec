//! `maskomaly forward`: one image through preprocessing and the network, raw outputs to a
//! safetensors file, for debugging and for parity checks against other implementations.

use crate::job::Job;
use crate::model::{self, check_outputs};
use crate::pipeline::{resolve_device, RunError};
use crate::preprocess::{decode_file_limited, prepare};
use std::path::Path;

pub fn forward_to_file(job: &Job, image: &Path, out: &Path) -> Result<(), RunError> {
    let device = resolve_device(job.runtime.device)?;
    let bytes = std::fs::read(image)
        .map_err(|e| RunError::NoInput(format!("cannot read {}: {e}", image.display())))?;
    let prepared = decode_file_limited(image, &bytes, job.runtime.max_pixels)
        .and_then(|img| prepare(&img, &job.preprocess))
        .map_err(|e| RunError::Data(format!("{}: {e}", image.display())))?;
    if job.checkpoint.format != crate::job::CheckpointFormat::Random
        && !job.checkpoint.path.exists()
    {
        return Err(model::ModelError::Missing {
            path: job.checkpoint.path.clone(),
        }
        .into());
    }
    let m = model::load(job, device)?;
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
    .map_err(|e| RunError::Io(format!("cannot write {}: {e}", out.display())))
}
