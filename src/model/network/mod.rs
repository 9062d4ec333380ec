//! Mask2Former's network modules, built from tch tensors and loaded weights.

pub mod layers;
pub mod ms_deform_attn;
pub mod pixel_decoder;
pub mod position_encoding;
pub mod shape_cache;
pub mod swin;
pub mod transformer_decoder;
