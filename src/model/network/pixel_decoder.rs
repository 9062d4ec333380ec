//! `MSDeformAttnPixelDecoder` from
//! `facebookresearch/Mask2Former: mask2former/modeling/pixel_decoder/msdeformattn.py`
//! (with its `MSDeformAttnTransformerEncoderOnly` and encoder layers; post-norm, ReLU, no dropout).
//!
//! Level order is low → high resolution: level 0 = res5 (1/32), 1 = res4, 2 = res3. The sine
//! position embedding of each level gets `level_embed[l]` added. One extra FPN level (res2, stride
//! 4) is built from `adapter_1` + the upsampled 1/8 map, then `layer_1`; `mask_features` projects it.

use crate::model::config::Config;
use crate::model::network::layers::{init, layer_norm, lin, linear, Conv2d, Conv2dNorm};
use crate::model::network::ms_deform_attn::{Levels, MSDeformAttn};
use crate::model::network::position_encoding::PositionEmbeddingSine;
use crate::model::network::shape_cache::{LevelsKey, ShapeCache};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// `MSDeformAttnTransformerEncoderLayer` (post-norm).
#[derive(Debug)]
pub struct MSDeformAttnTransformerEncoderLayer {
    self_attn: MSDeformAttn,
    norm1: nn::LayerNorm,
    linear1: nn::Linear,
    linear2: nn::Linear,
    norm2: nn::LayerNorm,
}

impl MSDeformAttnTransformerEncoderLayer {
    fn new(p: nn::Path, cfg: &Config) -> Self {
        let pd = &cfg.pixel_decoder;
        let c = pd.conv_dim;
        MSDeformAttnTransformerEncoderLayer {
            self_attn: MSDeformAttn::new(
                &p / "self_attn",
                c,
                3,
                pd.transformer_nheads,
                pd.n_points,
            ),
            norm1: layer_norm(&p / "norm1", c, cfg.norm_eps),
            linear1: linear(&p / "linear1", c, pd.transformer_dim_feedforward, true),
            linear2: linear(&p / "linear2", pd.transformer_dim_feedforward, c, true),
            norm2: layer_norm(&p / "norm2", c, cfg.norm_eps),
        }
    }

    /// `src, pos [N, S, C]`, `reference_points [N, S, L, 2]`, `levels` for `src`'s shapes.
    pub fn forward(
        &self,
        src: &Tensor,
        pos: &Tensor,
        reference_points: &Tensor,
        levels: &Levels,
    ) -> Tensor {
        let src2 = self
            .self_attn
            .forward(&(src + pos), reference_points, src, levels);
        let src = self.norm1.forward(&(src + src2));
        let src2 = lin(&self.linear2, &lin(&self.linear1, &src).relu());
        self.norm2.forward(&(src + src2))
    }
}

/// Reference points of every query position: cell centres `((x + 0.5)/W, (y + 0.5)/H)` of its own
/// level, repeated for every level (valid ratios are all 1 without padding masks).
/// Returns `[1, S, L, 2]`.
fn reference_points(shapes: &[(i64, i64)], device: Device) -> Tensor {
    let opts = (Kind::Float, device);
    let per_level: Vec<Tensor> = shapes
        .iter()
        .map(|&(h, w)| {
            // Same float32 steps as upstream: linspace(0.5, H − 0.5, H) / H.
            let ys = Tensor::linspace(0.5, h as f64 - 0.5, h, opts);
            let xs = Tensor::linspace(0.5, w as f64 - 0.5, w, opts);
            let grid = Tensor::meshgrid_indexing(&[ys, xs], "ij");
            let ry = grid[0].reshape([1, -1]) / h as f64;
            let rx = grid[1].reshape([1, -1]) / w as f64;
            // [1, H·W, 2] in (x, y) order
            Tensor::stack(&[rx, ry], -1)
        })
        .collect();
    let l = shapes.len() as i64;
    // [1, S, 2] -> [1, S, L, 2]
    Tensor::cat(&per_level, 1)
        .unsqueeze(2)
        .expand([-1, -1, l, -1], false)
}

/// The pixel decoder's outputs.
#[derive(Debug)]
pub struct PixelDecoderOutput {
    /// `[B, mask_dim, H/4, W/4]`
    pub mask_features: Tensor,
    /// `[1/32, 1/16, 1/8]` maps, `[B, conv_dim, H_l, W_l]`.
    pub multi_scale_features: Vec<Tensor>,
}

#[derive(Debug)]
pub struct MSDeformAttnPixelDecoder {
    input_proj: Vec<(Conv2d, nn::GroupNorm)>,
    level_embed: Tensor,
    encoder_layers: Vec<MSDeformAttnTransformerEncoderLayer>,
    adapter_1: Conv2dNorm,
    layer_1: Conv2dNorm,
    mask_features: Conv2d,
    pe_layer: PositionEmbeddingSine,
    /// Per (batch, level shapes, dtype, device): each level's sine embedding `[1, H·W, C]`, the
    /// reference points `[1, S, L, 2]` and the deformable attention's [`Levels`].
    constants: ShapeCache<(i64, LevelsKey)>,
}

/// What the encoder needs for one input shape besides the features (see
/// [`MSDeformAttnPixelDecoder::constants`]).
#[derive(Debug)]
pub struct EncoderConstants {
    /// Per level `[1, H_l·W_l, C]`, without `level_embed` (a weight, added each forward).
    pub pos: Vec<Tensor>,
    /// `[1, S, L, 2]`
    pub reference: Tensor,
    pub levels: Levels,
}

impl MSDeformAttnPixelDecoder {
    /// `p` is `sem_seg_head.pixel_decoder`.
    pub fn new(p: nn::Path, cfg: &Config) -> Self {
        let pd = &cfg.pixel_decoder;
        let c = pd.conv_dim;
        let pi = &p / "input_proj";
        // input_proj.{0,1,2} read res5, res4, res3.
        let input_proj = (0..3)
            .map(|l| {
                let in_ch = cfg.stage_dim(3 - l as usize);
                let seq = &pi / l;
                (
                    Conv2d::new(&seq / 0, in_ch, c, 1, 1),
                    crate::model::network::layers::group_norm(
                        &seq / 1,
                        pd.num_groups,
                        c,
                        cfg.norm_eps,
                    ),
                )
            })
            .collect();
        let pt = &p / "transformer";
        let level_embed = pt.var("level_embed", &[3, c], init());
        let pe = &pt / "encoder" / "layers";
        let encoder_layers = (0..pd.transformer_enc_layers)
            .map(|k| MSDeformAttnTransformerEncoderLayer::new(&pe / k, cfg))
            .collect();
        MSDeformAttnPixelDecoder {
            input_proj,
            level_embed,
            encoder_layers,
            adapter_1: Conv2dNorm::new(
                &p / "adapter_1",
                cfg.stage_dim(0),
                c,
                1,
                false,
                pd.num_groups,
                cfg.norm_eps,
                false,
            ),
            layer_1: Conv2dNorm::new(
                &p / "layer_1",
                c,
                c,
                3,
                false,
                pd.num_groups,
                cfg.norm_eps,
                true,
            ),
            mask_features: Conv2d::new(&p / "mask_features", c, pd.mask_dim, 1, 1),
            pe_layer: PositionEmbeddingSine::new(c / 2),
            constants: ShapeCache::default(),
        }
    }

    /// The encoder's shape-only inputs for `b` images whose levels are `shapes`, built fresh.
    pub fn build_constants(
        &self,
        b: i64,
        shapes: &[(i64, i64)],
        kind: Kind,
        dev: Device,
    ) -> EncoderConstants {
        let pos = shapes
            .iter()
            .map(|&(h, w)| self.pe_layer.tokens(h, w, kind, dev))
            .collect();
        let s: i64 = shapes.iter().map(|&(h, w)| h * w).sum();
        let attn = self.encoder_layers.first().map(|l| &l.self_attn);
        EncoderConstants {
            pos,
            reference: reference_points(shapes, dev).to_kind(kind),
            levels: match attn {
                Some(a) => a.levels(shapes, b, s, kind, dev),
                // No encoder layer: nothing samples.
                None => Levels::new(shapes, (b, s, 1, 1), kind, dev),
            },
        }
    }

    /// [`MSDeformAttnPixelDecoder::build_constants`], built once per shape and kept.
    pub fn constants(
        &self,
        b: i64,
        shapes: &[(i64, i64)],
        kind: Kind,
        dev: Device,
    ) -> EncoderConstants {
        let n = shapes.len();
        let mut t = self
            .constants
            .get_or_build((b, (shapes.to_vec(), kind, dev)), || {
                let c = self.build_constants(b, shapes, kind, dev);
                let mut v = c.pos;
                v.push(c.reference);
                v.extend(c.levels.into_tensors());
                v
            });
        let levels = Levels::from_tensors(shapes, t.split_off(n + 1));
        let reference = t.pop().expect("reference points are held");
        EncoderConstants {
            pos: t,
            reference,
            levels,
        }
    }

    /// The constants' cache (for tests: a repeated shape builds nothing).
    pub fn constant_cache(&self) -> &ShapeCache<(i64, LevelsKey)> {
        &self.constants
    }

    /// `features = [res2, res3, res4, res5]` from the backbone.
    pub fn forward(&self, features: &[Tensor]) -> PixelDecoderOutput {
        let b = features[0].size()[0];
        let mut srcs = Vec::with_capacity(3);
        let mut shapes = Vec::with_capacity(3);
        for (l, (conv, gn)) in self.input_proj.iter().enumerate() {
            let x = &features[3 - l];
            let (_, _, h, w) = x.size4().expect("backbone features are NCHW");
            let src = gn.forward(&conv.forward(x));
            // [B, C, H, W] -> [B, H·W, C]
            srcs.push(src.flatten(2, 3).transpose(1, 2));
            shapes.push((h, w));
        }
        // [B, S, C]
        let mut memory = Tensor::cat(&srcs, 1);
        let (kind, dev) = (memory.kind(), memory.device());
        let consts = self.constants(b, &shapes, kind, dev);
        // Each level's [1, H·W, C] + level_embed[l]
        let pos: Vec<Tensor> = consts
            .pos
            .iter()
            .enumerate()
            .map(|(l, p)| p + self.level_embed.get(l as i64).view([1, 1, -1]))
            .collect();
        let lvl_pos = Tensor::cat(&pos, 1).expand([b, -1, -1], false);
        let reference = consts.reference.expand([b, -1, -1, -1], false);
        for layer in &self.encoder_layers {
            memory = layer.forward(&memory, &lvl_pos, &reference, &consts.levels);
        }
        // Split back into the three maps: [B, H_l·W_l, C] -> [B, C, H_l, W_l]
        let sizes: Vec<i64> = shapes.iter().map(|&(h, w)| h * w).collect();
        let mut out: Vec<Tensor> = memory
            .split_with_sizes(sizes.as_slice(), 1)
            .iter()
            .zip(&shapes)
            .map(|(z, &(h, w))| z.transpose(1, 2).contiguous().view([b, -1, h, w]))
            .collect();
        // Extra FPN level at stride 4.
        let cur = self.adapter_1.forward(&features[0]);
        let (_, _, h2, w2) = cur.size4().expect("adapter output is NCHW");
        let up = out[2].upsample_bilinear2d([h2, w2], false, None, None);
        let y = self.layer_1.forward(&(cur + up));
        let mask_features = self.mask_features.forward(&y);
        out.truncate(3);
        PixelDecoderOutput {
            mask_features,
            multi_scale_features: out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The held constants are the ones a fresh build makes, and a repeated shape builds nothing.
    #[test]
    fn cached_constants_equal_rebuilt_ones() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = Config::tiny();
        let pd = MSDeformAttnPixelDecoder::new(vs.root() / "pixel_decoder", &cfg);
        let flat = |c: EncoderConstants| {
            let mut v = c.pos;
            v.push(c.reference);
            v.extend(c.levels.into_tensors());
            v
        };
        let shapes = [(3i64, 5i64), (5, 9), (9, 17)];
        for b in [1, 2, 1] {
            let fresh = flat(pd.build_constants(b, &shapes, Kind::Float, Device::Cpu));
            let first = flat(pd.constants(b, &shapes, Kind::Float, Device::Cpu));
            let again = flat(pd.constants(b, &shapes, Kind::Float, Device::Cpu));
            assert_eq!(fresh.len(), 3 + 1 + 8);
            for ((f, c), a) in fresh.iter().zip(&first).zip(&again) {
                assert_eq!(f.kind(), c.kind());
                assert!(f.equal(c) && f.equal(a), "batch {b}: {:?}", f.size());
            }
        }
        assert_eq!(pd.constant_cache().builds(), 2, "batch 1 and batch 2");
    }
}
