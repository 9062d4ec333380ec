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
//! * [`scoring`]: the Maskomaly rule; [`scores`]: every training-free score from one forward pass
//!   (Maskomaly, RbA, EAM, energy, MSP, entropy).
//! * [`output`]: HDF5, PNG, heatmap and `.npy` writers; the atomic writer; SHA-256.
//! * [`pipeline`]: the stages and their wiring.
//! * [`commands`]: one file per subcommand; the one way to override a job and find its checkpoint.
//! * [`exit`], [`error`]: exit codes, the error policy ([`exit::Diagnose`]) and the run's errors.
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
pub mod error;
pub mod eval;
pub mod exit;
pub mod job;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod preprocess;
pub mod progress;
pub mod provenance;
pub mod resize;
pub mod scores;
pub mod scoring;

/// Large per-image buffers (input tensors, mask logits) are allocated on one thread and freed on
/// another. glibc raises its mmap threshold after the first such free and then serves them from
/// per-thread heaps, which fragment and grow over a long run. A fixed 16 MiB threshold keeps those
/// buffers in their own mappings, returned to the system when freed, while the network's smaller
/// temporaries stay in the heap (a 1 MiB threshold made the Swin-L forward markedly slower).
/// Call before any other thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
    }
}
