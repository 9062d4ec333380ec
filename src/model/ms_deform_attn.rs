//! Multi-scale deformable attention, `MSDeformAttn` from
//! `facebookresearch/Mask2Former: mask2former/modeling/pixel_decoder/ops/modules/ms_deform_attn.py`,
//! computed as upstream's pure-PyTorch `ms_deform_attn_core_pytorch`
//! (`ops/functions/ms_deform_attn_func.py`): bilinear `grid_sample` with zero padding and
//! `align_corners=False`, which is mathematically the CUDA kernel's sampling rule.
//!
//! Weights: `sampling_offsets`, `attention_weights`, `value_proj`, `output_proj`.

use super::layers::linear;
use tch::nn::{self, Module};
use tch::Tensor;

#[derive(Debug)]
pub struct MSDeformAttn {
    sampling_offsets: nn::Linear,
    attention_weights: nn::Linear,
    value_proj: nn::Linear,
    output_proj: nn::Linear,
    d_model: i64,
    n_levels: i64,
    n_heads: i64,
    n_points: i64,
}

impl MSDeformAttn {
    pub fn new(p: nn::Path, d_model: i64, n_levels: i64, n_heads: i64, n_points: i64) -> Self {
        MSDeformAttn {
            sampling_offsets: linear(
                &p / "sampling_offsets",
                d_model,
                n_heads * n_levels * n_points * 2,
                true,
            ),
            attention_weights: linear(
                &p / "attention_weights",
                d_model,
                n_heads * n_levels * n_points,
                true,
            ),
            value_proj: linear(&p / "value_proj", d_model, d_model, true),
            output_proj: linear(&p / "output_proj", d_model, d_model, true),
            d_model,
            n_levels,
            n_heads,
            n_points,
        }
    }

    /// * `query [N, Lq, C]`, `reference_points [N, Lq, L, 2]` (normalised (x, y) in [0, 1]),
    /// * `input_flatten [N, S, C]` with `S = Σ H_l·W_l` (levels in the order of `spatial_shapes`),
    /// * `spatial_shapes`: `(H_l, W_l)` per level.
    ///
    /// Returns `[N, Lq, C]`. No padding mask: at inference upstream's mask is all false.
    pub fn forward(
        &self,
        query: &Tensor,
        reference_points: &Tensor,
        input_flatten: &Tensor,
        spatial_shapes: &[(i64, i64)],
    ) -> Tensor {
        let (n, lq, _) = query.size3().expect("query is [N, Lq, C]");
        let s = input_flatten.size()[1];
        let (m, l, p) = (self.n_heads, self.n_levels, self.n_points);
        let d = self.d_model / m;
        // [N, S, C] -> [N, S, M, D]
        let value = self.value_proj.forward(input_flatten).view([n, s, m, d]);
        // [N, Lq, M·L·P·2] -> [N, Lq, M, L, P, 2]   ((x, y) order)
        let offsets = self
            .sampling_offsets
            .forward(query)
            .view([n, lq, m, l, p, 2]);
        // [N, Lq, M, L·P] softmax -> [N, Lq, M, L, P]
        let attn = self
            .attention_weights
            .forward(query)
            .view([n, lq, m, l * p])
            .softmax(-1, query.kind())
            .view([n, lq, m, l, p]);
        // Offsets are in cells of each level: divide by (W_l, H_l).
        let norm: Vec<f32> = spatial_shapes
            .iter()
            .flat_map(|&(h, w)| [w as f32, h as f32])
            .collect();
        let normalizer = Tensor::from_slice(&norm)
            .view([1, 1, 1, l, 1, 2])
            .to_device(query.device())
            .to_kind(query.kind());
        // [N, Lq, 1, L, 1, 2] + [N, Lq, M, L, P, 2] / [1, 1, 1, L, 1, 2]
        let loc = reference_points.reshape([n, lq, 1, l, 1, 2]) + offsets / normalizer;
        let out = ms_deform_attn_core(&value, spatial_shapes, &loc, &attn);
        self.output_proj.forward(&out)
    }
}

/// `ms_deform_attn_core_pytorch`: `value [N, S, M, D]`, `sampling_locations [N, Lq, M, L, P, 2]`,
/// `attention_weights [N, Lq, M, L, P]` -> `[N, Lq, M·D]`.
pub fn ms_deform_attn_core(
    value: &Tensor,
    spatial_shapes: &[(i64, i64)],
    sampling_locations: &Tensor,
    attention_weights: &Tensor,
) -> Tensor {
    let (n, _, m, d) = value.size4().expect("value is [N, S, M, D]");
    let sz = sampling_locations.size();
    let (lq, l, p) = (sz[1], sz[3], sz[4]);
    let sizes: Vec<i64> = spatial_shapes.iter().map(|&(h, w)| h * w).collect();
    let values = value.split_with_sizes(sizes.as_slice(), 1);
    // grid_sample works in [-1, 1].
    let grids = sampling_locations * 2.0 - 1.0;
    let mut sampled = Vec::with_capacity(spatial_shapes.len());
    for (lid, &(h, w)) in spatial_shapes.iter().enumerate() {
        // [N, H·W, M, D] -> [N, H·W, M·D] -> [N, M·D, H·W] -> [N·M, D, H, W]
        let v = values[lid]
            .flatten(2, 3)
            .transpose(1, 2)
            .reshape([n * m, d, h, w]);
        // [N, Lq, M, P, 2] -> [N, M, Lq, P, 2] -> [N·M, Lq, P, 2]
        let g = grids.select(3, lid as i64).transpose(1, 2).flatten(0, 1);
        // bilinear, zero padding, align_corners=False -> [N·M, D, Lq, P]
        sampled.push(Tensor::grid_sampler(&v, &g, 0, 0, false));
    }
    // [N, Lq, M, L, P] -> [N, M, Lq, L, P] -> [N·M, 1, Lq, L·P]
    let a = attention_weights
        .transpose(1, 2)
        .reshape([n * m, 1, lq, l * p]);
    // stack: [N·M, D, Lq, L, P] -> [N·M, D, Lq, L·P]; weighted sum -> [N·M, D, Lq] -> [N, M·D, Lq]
    let out = (Tensor::stack(&sampled, -2).flatten(-2, -1) * a)
        .sum_dim_intlist(-1, false, value.kind())
        .view([n, m * d, lq]);
    // [N, M·D, Lq] -> [N, Lq, M·D]
    out.transpose(1, 2).contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Direct evaluation of the CUDA kernel's rule (`h_im = y·H − 0.5`, corners outside the map
    /// count as zero) on a small case, against the grid_sample formulation.
    #[test]
    fn core_matches_the_kernel_rule() {
        let opts = (Kind::Float, Device::Cpu);
        let shapes = [(2i64, 3i64), (3, 2)];
        let (n, m, d, lq, p) = (1i64, 2i64, 3i64, 4i64, 2i64);
        let s: i64 = shapes.iter().map(|(h, w)| h * w).sum();
        let value = Tensor::randn([n, s, m, d], opts);
        let loc = Tensor::rand([n, lq, m, 2, p, 2], opts) * 1.4 - 0.2;
        let attn = Tensor::rand([n, lq, m, 2, p], opts);
        let got = ms_deform_attn_core(&value, &shapes, &loc, &attn);
        let mut start = 0;
        let mut want = vec![0f64; (lq * m * d) as usize];
        for (li, &(h, w)) in shapes.iter().enumerate() {
            for q in 0..lq {
                for head in 0..m {
                    for pt in 0..p {
                        let x = loc.double_value(&[0, q, head, li as i64, pt, 0]) * w as f64 - 0.5;
                        let y = loc.double_value(&[0, q, head, li as i64, pt, 1]) * h as f64 - 0.5;
                        let a = attn.double_value(&[0, q, head, li as i64, pt]);
                        let (x0, y0) = (x.floor(), y.floor());
                        for (yy, wy) in [(y0, 1.0 - (y - y0)), (y0 + 1.0, y - y0)] {
                            for (xx, wx) in [(x0, 1.0 - (x - x0)), (x0 + 1.0, x - x0)] {
                                if yy < 0.0 || xx < 0.0 || yy >= h as f64 || xx >= w as f64 {
                                    continue;
                                }
                                let idx = start + yy as i64 * w + xx as i64;
                                for c in 0..d {
                                    let v = value.double_value(&[0, idx, head, c]);
                                    want[(q * m * d + head * d + c) as usize] += a * wy * wx * v;
                                }
                            }
                        }
                    }
                }
            }
            start += h * w;
        }
        let want = Tensor::from_slice(&want)
            .view([1, lq, m * d])
            .to_kind(Kind::Float);
        let diff = (got - want).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "max abs diff {diff}");
    }
}
