//! `MultiScaleMaskedTransformerDecoder` from
//! `facebookresearch/Mask2Former: mask2former/modeling/transformer_decoder/mask2former_transformer_decoder.py`
//! (post-norm: `pre_norm = False`; no input projection since `in_channels == hidden_dim`).
//!
//! Layer `i` attends to memory level `i % 3` (1/32, 1/16, 1/8) under the attention mask of the
//! previous prediction head: `sigmoid(bilinear(mask → level size)) < 0.5` blocks a key, and a query
//! whose keys are all blocked gets none blocked (upstream's rule; without it the softmax gives NaN).
//! NOTE(upstream): the mask is computed as `sigmoid(x) < 0.5`, not `x < 0`; the two differ in fp32
//! for x in (−1.8e-7, 0).

use crate::model::config::Config;
use crate::model::network::layers::{init, layer_norm, lin, linear, Mlp, MultiheadAttention};
use crate::model::network::position_encoding::PositionEmbeddingSine;
use crate::model::network::shape_cache::{LevelsKey, ShapeCache};
use crate::model::precision;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// `SelfAttentionLayer`: `norm(tgt + self_attn(q = k = tgt + query_pos, v = tgt))`.
#[derive(Debug)]
pub struct SelfAttentionLayer {
    self_attn: MultiheadAttention,
    norm: nn::LayerNorm,
}

impl SelfAttentionLayer {
    fn new(p: nn::Path, d: i64, nheads: i64, eps: f64) -> Self {
        SelfAttentionLayer {
            self_attn: MultiheadAttention::new(&p / "self_attn", d, nheads),
            norm: layer_norm(&p / "norm", d, eps),
        }
    }

    pub fn forward(&self, tgt: &Tensor, query_pos: &Tensor) -> Tensor {
        let q = tgt + query_pos;
        let tgt2 = self.self_attn.forward(&q, &q, tgt, None);
        self.norm.forward(&(tgt + tgt2))
    }
}

/// `CrossAttentionLayer`: `norm(tgt + attn(q = tgt + query_pos, k = memory + pos, v = memory, mask))`.
#[derive(Debug)]
pub struct CrossAttentionLayer {
    multihead_attn: MultiheadAttention,
    norm: nn::LayerNorm,
}

impl CrossAttentionLayer {
    fn new(p: nn::Path, d: i64, nheads: i64, eps: f64) -> Self {
        CrossAttentionLayer {
            multihead_attn: MultiheadAttention::new(&p / "multihead_attn", d, nheads),
            norm: layer_norm(&p / "norm", d, eps),
        }
    }

    pub fn forward(
        &self,
        tgt: &Tensor,
        memory: &Tensor,
        mask: &Tensor,
        pos: &Tensor,
        query_pos: &Tensor,
    ) -> Tensor {
        let tgt2 =
            self.multihead_attn
                .forward(&(tgt + query_pos), &(memory + pos), memory, Some(mask));
        self.norm.forward(&(tgt + tgt2))
    }
}

/// `FFNLayer`: `norm(tgt + linear2(relu(linear1(tgt))))`.
#[derive(Debug)]
pub struct FFNLayer {
    linear1: nn::Linear,
    linear2: nn::Linear,
    norm: nn::LayerNorm,
}

impl FFNLayer {
    fn new(p: nn::Path, d: i64, ff: i64, eps: f64) -> Self {
        FFNLayer {
            linear1: linear(&p / "linear1", d, ff, true),
            linear2: linear(&p / "linear2", ff, d, true),
            norm: layer_norm(&p / "norm", d, eps),
        }
    }

    pub fn forward(&self, tgt: &Tensor) -> Tensor {
        let tgt2 = lin(&self.linear2, &lin(&self.linear1, tgt).relu());
        self.norm.forward(&(tgt + tgt2))
    }
}

/// One prediction head's output.
#[derive(Debug)]
pub struct Prediction {
    /// `[B, Q, K+1]`
    pub class: Tensor,
    /// `[B, Q, H/4, W/4]` mask logits
    pub mask: Tensor,
}

#[derive(Debug)]
pub struct MultiScaleMaskedTransformerDecoder {
    transformer_self_attention_layers: Vec<SelfAttentionLayer>,
    transformer_cross_attention_layers: Vec<CrossAttentionLayer>,
    transformer_ffn_layers: Vec<FFNLayer>,
    decoder_norm: nn::LayerNorm,
    query_feat: Tensor,
    query_embed: Tensor,
    level_embed: Tensor,
    class_embed: nn::Linear,
    mask_embed: Mlp,
    pe_layer: PositionEmbeddingSine,
    num_queries: i64,
    /// Each level's sine embedding `[1, H·W, C]` per (level sizes, dtype, device).
    pos: ShapeCache<LevelsKey>,
}

impl MultiScaleMaskedTransformerDecoder {
    /// `p` is `sem_seg_head.predictor`.
    pub fn new(p: nn::Path, cfg: &Config) -> Self {
        let t = &cfg.transformer_decoder;
        let d = t.hidden_dim;
        let eps = cfg.norm_eps;
        let (ps, pc, pf) = (
            &p / "transformer_self_attention_layers",
            &p / "transformer_cross_attention_layers",
            &p / "transformer_ffn_layers",
        );
        MultiScaleMaskedTransformerDecoder {
            transformer_self_attention_layers: (0..t.dec_layers)
                .map(|i| SelfAttentionLayer::new(&ps / i, d, t.nheads, eps))
                .collect(),
            transformer_cross_attention_layers: (0..t.dec_layers)
                .map(|i| CrossAttentionLayer::new(&pc / i, d, t.nheads, eps))
                .collect(),
            transformer_ffn_layers: (0..t.dec_layers)
                .map(|i| FFNLayer::new(&pf / i, d, t.dim_feedforward, eps))
                .collect(),
            decoder_norm: layer_norm(&p / "decoder_norm", d, eps),
            // nn.Embedding weights.
            query_feat: (&p / "query_feat").var("weight", &[t.num_queries, d], init()),
            query_embed: (&p / "query_embed").var("weight", &[t.num_queries, d], init()),
            level_embed: (&p / "level_embed").var("weight", &[3, d], init()),
            class_embed: linear(&p / "class_embed", d, t.num_classes + 1, true),
            mask_embed: Mlp::new(&p / "mask_embed", d, d, cfg.pixel_decoder.mask_dim, 3),
            pe_layer: PositionEmbeddingSine::new(d / 2),
            num_queries: t.num_queries,
            pos: ShapeCache::default(),
        }
    }

    /// Each level's position embedding `[1, H·W, C]` for `sizes`, built once per shape.
    fn positions(&self, sizes: &[(i64, i64)], kind: Kind, dev: Device) -> Vec<Tensor> {
        self.pos.get_or_build((sizes.to_vec(), kind, dev), || {
            sizes
                .iter()
                .map(|&(h, w)| self.pe_layer.tokens(h, w, kind, dev))
                .collect()
        })
    }

    /// `forward_prediction_heads`: class and mask logits of `output [B, Q, C]`, and the attention
    /// mask for the next layer at `target` size: `[B, Q, h·w]` bool, `true` = blocked.
    fn prediction_heads(
        &self,
        output: &Tensor,
        mask_features: &Tensor,
        target: (i64, i64),
    ) -> (Prediction, Tensor) {
        let h = self.decoder_norm.forward(output);
        let class = lin(&self.class_embed, &h);
        let me = self.mask_embed.forward(&h);
        // [B, Q, C] x [B, C, H, W] -> [B, Q, H, W]
        let mask = precision::einsum("bqc,bchw->bqhw", &me, mask_features);
        let attn = mask.upsample_bilinear2d([target.0, target.1], false, None, None);
        // [B, Q, h, w] -> [B, Q, h·w]
        let attn_mask = attn.sigmoid().flatten(2, 3).lt(0.5);
        (Prediction { class, mask }, attn_mask)
    }

    /// `x = [1/32, 1/16, 1/8]` maps `[B, C, H_l, W_l]`, `mask_features [B, C, H/4, W/4]`.
    /// Returns every prediction head (the initial one, then one per layer); the last is the output.
    pub fn forward(&self, x: &[Tensor], mask_features: &Tensor) -> Vec<Prediction> {
        let b = mask_features.size()[0];
        let mut src = Vec::with_capacity(x.len());
        let mut sizes = Vec::with_capacity(x.len());
        for (i, xi) in x.iter().enumerate() {
            let (_, c, h, w) = xi.size4().expect("multi-scale features are NCHW");
            sizes.push((h, w));
            // [B, C, H, W] -> [B, C, H·W] + level_embed[i] -> [B, H·W, C]
            src.push(
                (xi.flatten(2, 3) + self.level_embed.get(i as i64).view([1, c, 1])).transpose(1, 2),
            );
        }
        let like = x.first().unwrap_or(mask_features);
        let pos = self.positions(&sizes, like.kind(), like.device());
        let d = self.query_feat.size()[1];
        // [Q, C] -> [B, Q, C]
        let query_embed = self
            .query_embed
            .unsqueeze(0)
            .expand([b, self.num_queries, d], false);
        let mut output = self
            .query_feat
            .unsqueeze(0)
            .expand([b, self.num_queries, d], false)
            .contiguous();
        let mut preds = Vec::with_capacity(self.transformer_ffn_layers.len() + 1);
        let (pred, mut attn_mask) = self.prediction_heads(&output, mask_features, sizes[0]);
        preds.push(pred);
        let n_levels = x.len();
        for i in 0..self.transformer_ffn_layers.len() {
            let level = i % n_levels;
            // A query whose keys are all blocked attends to every key instead.
            let all_blocked = attn_mask.all_dim(-1, true);
            let mask = attn_mask.logical_and(&all_blocked.logical_not());
            output = self.transformer_cross_attention_layers[i].forward(
                &output,
                &src[level],
                &mask,
                &pos[level],
                &query_embed,
            );
            output = self.transformer_self_attention_layers[i].forward(&output, &query_embed);
            output = self.transformer_ffn_layers[i].forward(&output);
            let (pred, next) =
                self.prediction_heads(&output, mask_features, sizes[(i + 1) % n_levels]);
            preds.push(pred);
            attn_mask = next;
        }
        preds
    }
}
