//! The only types that cross stage boundaries.

use crate::dataset::Item;
use crate::output::manifest::Timings;
use crate::preprocess::{Prepared, Rgb8};
use crate::scores::ScoreKind;
use tch::Tensor;

/// An item to process, with its position in the run's sorted list.
#[derive(Debug, Clone)]
pub struct Work {
    pub idx: usize,
    pub item: Item,
}

/// A per-item failure; it travels to the writer, which records it.
#[derive(Debug)]
pub struct Failure {
    pub idx: usize,
    pub item: Item,
    pub input_sha256: Option<String>,
    pub error: String,
    pub timings: Timings,
}

/// Decoded and preprocessed.
pub struct Decoded {
    pub idx: usize,
    pub item: Item,
    pub image: Rgb8,
    pub prepared: Prepared,
    pub input_sha256: String,
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
    pub input_sha256: String,
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
    pub input_sha256: String,
    pub timings: Timings,
}

pub type ToInfer = Result<Decoded, Failure>;
pub type ToScore = Result<Inferred, Failure>;
pub type ToWrite = Result<Scored, Failure>;
