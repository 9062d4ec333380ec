//! Building blocks shared by the Mask2Former modules: `torch.nn.MultiheadAttention` (packed
//! `in_proj_weight`, inference path of `torch.nn.functional.multi_head_attention_forward`), the
//! decoder's `MLP` (`mask2former/modeling/transformer_decoder/mask2former_transformer_decoder.py`),
//! detectron2's `Conv2d` with an attached `norm` (`detectron2/layers/wrappers.py`) and constructors
//! for LayerNorm / GroupNorm / Linear with upstream's names and eps.
//!
//! Every constructor takes the path of its own module; the weight names (`weight`, `bias`,
//! `in_proj_weight`, `out_proj`, `layers.{i}`, `norm`) are those of upstream's `state_dict()`.

use crate::model::precision;
use tch::nn::{self, Module};
use tch::Tensor;

/// The `VarStore` group of the weights of matrix products (linear layers, convolutions, attention
/// projections): the ones a reduced precision converts; every other parameter stays float32.
pub const MATMUL_GROUP: usize = 1;

/// `p` with its new variables in [`MATMUL_GROUP`].
pub(crate) fn matmul_path<'a>(p: &nn::Path<'a>) -> nn::Path<'a> {
    p.set_group(MATMUL_GROUP)
}

/// A linear layer under the thread's precision policy.
pub(crate) fn lin(l: &nn::Linear, x: &Tensor) -> Tensor {
    precision::linear(x, &l.ws, l.bs.as_ref())
}

/// `torch.nn.Conv2d` without padding or dilation (`weight`, `bias`), run under the thread's
/// precision policy.
#[derive(Debug)]
pub struct Conv2d {
    ws: Tensor,
    bs: Option<Tensor>,
    stride: i64,
}

impl Conv2d {
    /// `kernel × kernel` with stride `stride` (weights in [`MATMUL_GROUP`]).
    pub(crate) fn new(p: nn::Path, in_dim: i64, out_dim: i64, kernel: i64, stride: i64) -> Self {
        let cfg = nn::ConvConfig {
            stride,
            ws_init: init(),
            ..Default::default()
        };
        let c = nn::conv2d(matmul_path(&p), in_dim, out_dim, kernel, cfg);
        Conv2d {
            ws: c.ws,
            bs: c.bs,
            stride,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        precision::conv2d(
            x,
            &self.ws,
            self.bs.as_ref(),
            [self.stride, self.stride],
            [0, 0],
            1,
        )
    }
}

/// A weight of unknown value: every parameter is overwritten by the checkpoint before use, so the
/// initialiser only has to give finite numbers (a random-weights model still runs end to end).
pub(crate) fn init() -> nn::Init {
    nn::Init::Randn {
        mean: 0.0,
        stdev: 0.02,
    }
}

pub(crate) fn linear(p: nn::Path, in_dim: i64, out_dim: i64, bias: bool) -> nn::Linear {
    let p = matmul_path(&p);
    let ws = p.var("weight", &[out_dim, in_dim], init());
    let bs = if bias {
        Some(p.var("bias", &[out_dim], nn::Init::Const(0.0)))
    } else {
        None
    };
    nn::Linear { ws, bs }
}

pub(crate) fn layer_norm(p: nn::Path, dim: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(
        p,
        vec![dim],
        nn::LayerNormConfig {
            eps,
            ..Default::default()
        },
    )
}

pub(crate) fn group_norm(p: nn::Path, groups: i64, channels: i64, eps: f64) -> nn::GroupNorm {
    nn::group_norm(
        p,
        groups,
        channels,
        nn::GroupNormConfig {
            eps,
            ..Default::default()
        },
    )
}

/// detectron2 `Conv2d(in, out, k, padding, bias, norm=GroupNorm, activation)`: the norm's weights sit
/// under `<conv>.norm.*` next to the convolution's own `weight`/`bias`.
#[derive(Debug)]
pub struct Conv2dNorm {
    weight: Tensor,
    bias: Option<Tensor>,
    norm: nn::GroupNorm,
    padding: i64,
    relu: bool,
}

impl Conv2dNorm {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        p: nn::Path,
        in_dim: i64,
        out_dim: i64,
        kernel: i64,
        bias: bool,
        groups: i64,
        eps: f64,
        relu: bool,
    ) -> Self {
        let pm = matmul_path(&p);
        let weight = pm.var("weight", &[out_dim, in_dim, kernel, kernel], init());
        let bias = if bias {
            Some(pm.var("bias", &[out_dim], nn::Init::Const(0.0)))
        } else {
            None
        };
        let norm = group_norm(&p / "norm", groups, out_dim, eps);
        Conv2dNorm {
            weight,
            bias,
            norm,
            padding: kernel / 2,
            relu,
        }
    }

    /// [B, Cin, H, W] -> [B, Cout, H, W]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let y = precision::conv2d(
            x,
            &self.weight,
            self.bias.as_ref(),
            [1, 1],
            [self.padding, self.padding],
            1,
        );
        let y = self.norm.forward(&y);
        if self.relu {
            y.relu()
        } else {
            y
        }
    }
}

/// `torch.nn.MultiheadAttention(embed_dim, num_heads)` (batch-first here; upstream's sequence-first
/// layout gives the same numbers). Weights: `in_proj_weight [3E, E]` (rows q, k, v),
/// `in_proj_bias [3E]`, `out_proj.{weight,bias}`.
#[derive(Debug)]
pub struct MultiheadAttention {
    in_proj_weight: Tensor,
    in_proj_bias: Tensor,
    out_proj: nn::Linear,
    num_heads: i64,
    head_dim: i64,
}

impl MultiheadAttention {
    pub fn new(p: nn::Path, embed_dim: i64, num_heads: i64) -> Self {
        let pm = matmul_path(&p);
        let in_proj_weight = pm.var("in_proj_weight", &[3 * embed_dim, embed_dim], init());
        let in_proj_bias = pm.var("in_proj_bias", &[3 * embed_dim], nn::Init::Const(0.0));
        let out_proj = linear(&p / "out_proj", embed_dim, embed_dim, true);
        MultiheadAttention {
            in_proj_weight,
            in_proj_bias,
            out_proj,
            num_heads,
            head_dim: embed_dim / num_heads,
        }
    }

    /// `query [B, Lq, E]`, `key`/`value [B, Lk, E]`; `attn_mask [B, Lq, Lk]` bool, `true` = blocked
    /// (the same mask for every head, as upstream builds it with `repeat` over heads).
    /// Returns `[B, Lq, E]`.
    pub fn forward(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        attn_mask: Option<&Tensor>,
    ) -> Tensor {
        let e = self.num_heads * self.head_dim;
        let (b, lq) = (query.size()[0], query.size()[1]);
        let lk = key.size()[1];
        let w = self.in_proj_weight.split(e, 0);
        let bi = self.in_proj_bias.split(e, 0);
        let heads = |x: &Tensor, l: i64| {
            // [B, L, E] -> [B, L, h, d] -> [B, h, L, d]
            x.view([b, l, self.num_heads, self.head_dim])
                .permute([0, 2, 1, 3])
        };
        let q = heads(&precision::linear(query, &w[0], Some(&bi[0])), lq);
        let k = heads(&precision::linear(key, &w[1], Some(&bi[1])), lk);
        let v = heads(&precision::linear(value, &w[2], Some(&bi[2])), lk);
        // torch scales q (not the product) by sqrt(1 / d).
        let q = q * (1.0 / self.head_dim as f64).sqrt();
        // [B, h, Lq, d] x [B, h, d, Lk] -> [B, h, Lq, Lk]
        let mut attn = precision::matmul(&q, &k.transpose(-2, -1));
        if let Some(mask) = attn_mask {
            // A bool mask becomes -inf before the softmax.
            attn = attn.masked_fill(&mask.unsqueeze(1), f64::NEG_INFINITY);
        }
        let attn = attn.softmax(-1, attn.kind());
        // [B, h, Lq, Lk] x [B, h, Lk, d] -> [B, h, Lq, d] -> [B, Lq, h, d] -> [B, Lq, E]
        let out = precision::matmul(&attn, &v)
            .permute([0, 2, 1, 3])
            .reshape([b, lq, e]);
        lin(&self.out_proj, &out)
    }
}

/// The decoder's `MLP(input_dim, hidden_dim, output_dim, num_layers)`: Linear layers under
/// `layers.{i}`, ReLU between them (not after the last).
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
}

impl Mlp {
    pub fn new(
        p: nn::Path,
        input_dim: i64,
        hidden_dim: i64,
        output_dim: i64,
        num_layers: i64,
    ) -> Self {
        let pl = &p / "layers";
        let layers = (0..num_layers)
            .map(|i| {
                let n_in = if i == 0 { input_dim } else { hidden_dim };
                let n_out = if i + 1 == num_layers {
                    output_dim
                } else {
                    hidden_dim
                };
                linear(&pl / i, n_in, n_out, true)
            })
            .collect();
        Mlp { layers }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let n = self.layers.len();
        let mut x = x.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            x = lin(layer, &x);
            if i + 1 < n {
                x = x.relu();
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// The all-blocked rule is applied by the caller; a row with some allowed key must ignore the
    /// blocked ones exactly (weight 0 after the softmax).
    #[test]
    fn masked_keys_get_no_weight() {
        let vs = nn::VarStore::new(Device::Cpu);
        let mha = MultiheadAttention::new(vs.root() / "m", 8, 2);
        let q = Tensor::randn([1, 3, 8], (Kind::Float, Device::Cpu));
        let k = Tensor::randn([1, 5, 8], (Kind::Float, Device::Cpu));
        let mask = Tensor::from_slice(&[false, false, true, true, true])
            .view([1, 1, 5])
            .expand([1, 3, 5], false);
        let full = mha.forward(&q, &k, &k, Some(&mask));
        // Changing the blocked keys must not change the output.
        let k2 = Tensor::cat(
            &[
                k.narrow(1, 0, 2),
                Tensor::randn([1, 3, 8], (Kind::Float, Device::Cpu)),
            ],
            1,
        );
        let v2 = Tensor::cat(
            &[
                k.narrow(1, 0, 2),
                Tensor::randn([1, 3, 8], (Kind::Float, Device::Cpu)),
            ],
            1,
        );
        let other = mha.forward(&q, &k2, &v2, Some(&mask));
        let diff = (full - other).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "blocked keys leaked: {diff}");
    }
}
