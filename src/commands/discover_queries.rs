//! `maskomaly discover-queries`: runs the model over a labelled dataset and ranks the mask queries
//! by their overlap with the anomaly labels (the reference's `anomaly_overlap.py`), writing a YAML
//! file a job can include through `method.anomaly_queries_file`.

use super::load_model;
use crate::cli::DiscoverArgs;
use crate::dataset::{self, label::read_label};
use crate::device::resolve_device;
use crate::diagnostic::{ExitCode, Failure};
use crate::eval::discover::{discover, DiscoverOptions};
use crate::job::queries::{ranking_text, IouVariant, Ranking};
use crate::job::Job;
use crate::preprocess::{decode_file_limited, prepare};
use crate::run_error::RunError;
use std::path::Path;

pub fn command(args: DiscoverArgs) -> Result<ExitCode, Failure> {
    let job = super::load_job(Some(&args.job))?;
    let opts = DiscoverOptions {
        iou: if args.corrected_iou {
            IouVariant::Corrected
        } else {
            IouVariant::Reference
        },
        select: args.select,
        ..Default::default()
    };
    let ranking = discover_queries(&job, &args.output, &opts, args.limit)?;
    println!(
        "selected queries: {:?} (ranking over {} frames in {})",
        ranking.selected,
        ranking.frames,
        args.output.display()
    );
    Ok(ExitCode::Ok)
}

/// Ranks the queries over the job's dataset (the first `limit` items) and writes the ranking to
/// `out`.
pub fn discover_queries(
    job: &Job,
    out: &Path,
    opts: &DiscoverOptions,
    limit: Option<usize>,
) -> Result<Ranking, RunError> {
    let device = resolve_device(job.runtime.device)?;
    let exclude = crate::provenance::outputs::exclude(None);
    let mut items = dataset::list_excluding(&job.dataset, &exclude)?;
    if let Some(n) = limit {
        items.truncate(n);
    }
    if items.is_empty() {
        return Err(RunError::NoInput(format!(
            "no images found under {}",
            job.dataset.root.display()
        )));
    }
    let m = load_model(job, device)?;
    let _guard = tch::no_grad_guard();
    let progress = crate::progress::count(items.len() as u64, "ranking queries", "frames", true);
    let frames = items.iter().map(|item| -> Result<_, String> {
        let spec = item
            .label
            .as_ref()
            .ok_or_else(|| format!("{} has no label", item.image.display()))?;
        let label = read_label(spec).map_err(|e| e.to_string())?;
        let bytes =
            std::fs::read(&item.image).map_err(|e| format!("{}: {e}", item.image.display()))?;
        let prepared = decode_file_limited(&item.image, &bytes, job.runtime.max_pixels)
            .and_then(|img| prepare(&img, &job.preprocess))
            .map_err(|e| format!("{}: {e}", item.image.display()))?;
        let out = m
            .forward(&prepared.tensor.unsqueeze(0).to_device(device))
            .map_err(|e| e.to_string())?;
        let (hp, wp) = prepared.padded;
        // Every query's sigmoid mask at the padded input size, as the reference ranks them.
        let masks = out
            .pred_masks
            .upsample_bilinear2d([hp as i64, wp as i64], false, None, None)
            .get(0)
            .sigmoid();
        progress.inc(1);
        Ok((masks.to_device(tch::Device::Cpu), label))
    });
    let ranking = discover(frames, opts).map_err(|e| RunError::Eval {
        what: "query discovery",
        source: e.into(),
    })?;
    progress.finish_and_clear();
    let text = ranking_text(&ranking).map_err(|e| RunError::Write {
        path: out.to_path_buf(),
        source: e.into(),
    })?;
    crate::output::write_bytes_atomic(out, text.as_bytes())
        .map_err(|e| RunError::io("cannot write", out, e))?;
    Ok(ranking)
}
