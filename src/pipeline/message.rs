//! The only types that cross stage boundaries.

use crate::dataset::Item;
use crate::preprocess::{Prepared, Rgb8};
use crate::provenance::manifest::Timings;
use crate::scores::ScoreKind;
use tch::Tensor;

/// An item to process, with its position in the run's sorted list.
#[derive(Debug, Clone)]
pub struct Work {
    pub idx: usize,
    pub item: Item,
}

/// What identifies the bytes an item was read from: recorded in the manifest, compared on resume.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputId {
    pub sha256: String,
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
}

/// A per-item failure; it travels to the writer, which records it.
#[derive(Debug)]
pub struct Failure {
    pub idx: usize,
    pub item: Item,
    pub input_id: Option<InputId>,
    pub error: String,
    pub timings: Timings,
}

/// Decoded and preprocessed.
pub struct Decoded {
    pub idx: usize,
    pub item: Item,
    pub image: Rgb8,
    pub prepared: Prepared,
    pub input_id: InputId,
    pub timings: Timings,
}

/// Raw network outputs for one item.
pub struct Inferred {
    pub idx: usize,
    pub item: Item,
    pub image: Rgb8,
    /// (Hp, Wp) the network saw.
    pub padded: (usize, usize),
    /// (h, w) of the image inside the padding.
    pub resized: (usize, usize),
    /// [Q, K+1] logits.
    pub pred_logits: Tensor,
    /// [Q, h, w] mask logits.
    pub pred_masks: Tensor,
    pub input_id: InputId,
    pub timings: Timings,
}

/// The final score map at input resolution.
pub struct Scored {
    pub idx: usize,
    pub item: Item,
    pub image: Rgb8,
    /// Each score's row-major H × W float32 map, in the order of `method.scores`.
    pub scores: Vec<(ScoreKind, Vec<f32>)>,
    /// Inlier classes of the model (the PNG mapping of some scores depends on it).
    pub classes: usize,
    /// Row-major H × W Cityscapes trainIds, when the job writes a segmentation.
    pub segmentation: Option<Vec<u8>>,
    pub input_id: InputId,
    /// NaNs in the network's outputs for this item.
    pub nan_values: u64,
    pub timings: Timings,
}

// Failures are boxed: they are rare, and the channels' messages stay small.
pub type ToInfer = Result<Decoded, Box<Failure>>;
pub type ToScore = Result<Inferred, Box<Failure>>;
pub type ToWrite = Result<Scored, Box<Failure>>;
