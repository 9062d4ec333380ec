//! Maskomaly: zero-shot anomaly segmentation from Mask2Former's mask queries, as a batch runner.
//!
//! ```text
//! dataset listing ─► decode (N workers) ─► infer (model thread) ─► score ─► write (one thread)
//!                 bounded channels between every stage; per-item failures travel as data
//! ```
//!
//! * [`job`]: the job file (defaults, validation).
//! * [`dataset`]: what a run processes, in a stable order.
//! * [`preprocess`] (with its `jpeg`), [`resize`]: decoding (JPEG through libjpeg-turbo, as OpenCV does),
//!   detectron2's exact resize (Pillow bilinear), normalise, pad;
//!   OpenCV's INTER_AREA back to the input size.
//! * [`model`]: backends producing `pred_logits` / `pred_masks`.
//! * [`scores`]: every training-free score from one forward pass (Maskomaly, RbA, EAM, energy, MSP,
//!   entropy); the Maskomaly rule in [`scores::maskomaly`].
//! * [`output`]: HDF5, PNG, heatmap and `.npy` writers; the atomic writer; SHA-256.
//! * [`pipeline`]: the stages and their wiring.
//! * [`commands`]: one file per subcommand; the one way to override a job and find its checkpoint.
//! * [`diagnostic`]: the one exit-code table, the error policy ([`diagnostic::Diagnose`], each impl
//!   beside its error type) and [`diagnostic::Failure`]; [`run_error`]: the failure that ends a command.
//! * [`device`]: device resolution and naming, libtorch faults; [`cuda`]: loading CUDA support.
//! * [`progress`]: the one progress-bar set-up (hidden under `--quiet`).
//! * [`provenance`]: the typed manifest, resuming, shards, merge, verify and the RO-Crate.
//! * [`eval`]: metrics, reports and query discovery over written predictions.

pub mod cli;
pub mod commands;
pub mod cuda;
pub mod dataset;
pub mod demo;
pub mod device;
pub mod diagnostic;
pub mod eval;
pub mod job;
pub mod model;
pub mod output;
#[cfg(test)]
pub(crate) mod parity;
pub mod pipeline;
pub mod preprocess;
pub mod progress;
pub mod provenance;
pub mod resize;
pub mod run_error;
pub mod scores;

/// Sets glibc's allocator up for large tensors. By default every buffer over its mmap threshold
/// (the network's activations, the input tensors, the mask logits) is a fresh mapping that the
/// kernel zero-fills page by page on first touch and unmaps on free, so the same memory is faulted
/// in again on every operation: 15 % of a Swin-L forward on CPU went there. Here all threads share
/// one arena (a buffer freed on another thread goes back to the same heap instead of fragmenting
/// per-thread heaps), nothing is mapped on its own, and up to 128 MiB of free memory at the top of
/// the heap is kept for reuse (more made a long run's memory creep upward). Call before any other
/// thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
}
