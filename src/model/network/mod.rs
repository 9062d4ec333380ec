//! Mask2Former's network, `facebookresearch/Mask2Former: mask2former/maskformer_model.py` without
//! pre- and post-processing: [`Mask2Former`] assembles the modules below.

pub mod layers;
pub mod ms_deform_attn;
pub mod pixel_decoder;
pub mod position_encoding;
pub mod shape_cache;
pub mod swin;
pub mod transformer_decoder;

use crate::model::config::Config;
use crate::model::ModelError;
use pixel_decoder::{MSDeformAttnPixelDecoder, PixelDecoderOutput};
use swin::SwinTransformer;
use tch::{nn, Kind, Tensor};
use transformer_decoder::{MultiScaleMaskedTransformerDecoder, Prediction};

/// Everything one forward pass computes (for layer-level checks).
#[derive(Debug)]
pub struct Trace {
    /// `res2..res5`.
    pub features: Vec<Tensor>,
    pub pixel: PixelDecoderOutput,
    /// Every prediction head; the last is the output.
    pub predictions: Vec<Prediction>,
}

/// `backbone` + `sem_seg_head` (`pixel_decoder`, `predictor`).
#[derive(Debug)]
pub struct Mask2Former {
    pub backbone: SwinTransformer,
    pub pixel_decoder: MSDeformAttnPixelDecoder,
    pub predictor: MultiScaleMaskedTransformerDecoder,
    in_chans: i64,
}

impl Mask2Former {
    pub fn new(p: &nn::Path, cfg: &Config) -> Self {
        let head = p / "sem_seg_head";
        Mask2Former {
            backbone: SwinTransformer::new(p / "backbone", cfg),
            pixel_decoder: MSDeformAttnPixelDecoder::new(&head / "pixel_decoder", cfg),
            predictor: MultiScaleMaskedTransformerDecoder::new(&head / "predictor", cfg),
            in_chans: cfg.swin.in_chans,
        }
    }

    /// Checks what libtorch would otherwise turn into a panic; `kind` is the weights' dtype.
    pub fn check_input(&self, x: &Tensor, kind: Kind) -> Result<(), ModelError> {
        let s = x.size();
        if s.len() != 4 || s[1] != self.in_chans {
            return Err(ModelError::Forward(format!(
                "input has shape {s:?}, expected [B, {}, H, W]",
                self.in_chans
            )));
        }
        if s[0] < 1 || s[2] < 1 || s[3] < 1 {
            return Err(ModelError::Forward(format!(
                "input has an empty dimension: {s:?}"
            )));
        }
        if x.kind() != kind {
            return Err(ModelError::Forward(format!(
                "input has dtype {:?}, expected {kind:?}",
                x.kind()
            )));
        }
        Ok(())
    }

    /// The whole network; `x [B, 3, H, W]` normalised and padded (checked by the caller).
    pub fn trace(&self, x: &Tensor) -> Trace {
        let features = self.backbone.forward(x);
        let pixel = self.pixel_decoder.forward(&features);
        let predictions = self
            .predictor
            .forward(&pixel.multi_scale_features, &pixel.mask_features);
        Trace {
            features,
            pixel,
            predictions,
        }
    }
}
