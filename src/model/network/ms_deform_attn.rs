//! Multi-scale deformable attention, `MSDeformAttn` from
//! `facebookresearch/Mask2Former: mask2former/modeling/pixel_decoder/ops/modules/ms_deform_attn.py`,
//! computing what upstream's pure-PyTorch `ms_deform_attn_core_pytorch`
//! (`ops/functions/ms_deform_attn_func.py`) computes: bilinear sampling with zero padding and
//! `align_corners=False` (the CUDA kernel's rule), weighted by the attention weights.
//!
//! Weights: `sampling_offsets`, `attention_weights`, `value_proj`, `output_proj`.

use crate::model::network::layers::{lin, linear};
use tch::nn;
use tch::{Device, Kind, Tensor};

/// What the sampling needs besides the network's outputs, all from the input's shape: the levels'
/// sizes and first rows as tensors, the row base of each (image, head) and the bag offsets.
/// Built on the host and uploaded ([`Levels::new`]), so worth building once per shape
/// ([`Levels::into_tensors`] / [`Levels::from_tensors`] for the shape cache).
#[derive(Debug)]
pub struct Levels {
    spatial_shapes: Vec<(i64, i64)>,
    /// `(W_l, H_l)` as `[1, 1, 1, L, 1, 2]` in the activations' dtype (offsets are in cells).
    normalizer: Tensor,
    /// `W_l`, `H_l` as `[1, 1, 1, L, 1]`, in the activations' dtype and as int64.
    wf: Tensor,
    hf: Tensor,
    wi: Tensor,
    hi: Tensor,
    /// First row of each level in the flattened value, `[1, 1, 1, L, 1]` int64.
    first: Tensor,
    /// Row of `(n, s = 0, m)` in `value` viewed as `[N·S·M, D]`: `[N, 1, M, 1, 1]` int64.
    nm: Tensor,
    /// `embedding_bag` offsets: one bag of `L·P·4` rows per (n, q, m).
    offsets: Tensor,
}

/// Tensors in [`Levels`], in the order of [`Levels::into_tensors`].
const LEVEL_TENSORS: usize = 8;

impl Levels {
    /// For `n` images with `lq` queries and `m` heads sampling `p` points on each of
    /// `spatial_shapes`, in `kind` on `dev`.
    pub fn new(
        spatial_shapes: &[(i64, i64)],
        (n, lq, m, p): (i64, i64, i64, i64),
        kind: Kind,
        dev: Device,
    ) -> Self {
        let l = spatial_shapes.len() as i64;
        let s: i64 = spatial_shapes.iter().map(|&(h, w)| h * w).sum();
        let norm: Vec<f32> = spatial_shapes
            .iter()
            .flat_map(|&(h, w)| [w as f32, h as f32])
            .collect();
        let normalizer = Tensor::from_slice(&norm)
            .view([1, 1, 1, l, 1, 2])
            .to_device(dev)
            .to_kind(kind);
        let mut start = Vec::with_capacity(spatial_shapes.len());
        let mut acc = 0;
        for &(h, w) in spatial_shapes {
            start.push(acc);
            acc += h * w;
        }
        let per_level = |v: Vec<i64>, kind: Kind| {
            Tensor::from_slice(&v)
                .to_kind(kind)
                .view([1, 1, 1, l, 1])
                .to_device(dev)
        };
        let ws: Vec<i64> = spatial_shapes.iter().map(|&(_, w)| w).collect();
        let hs: Vec<i64> = spatial_shapes.iter().map(|&(h, _)| h).collect();
        let (wf, hf) = (per_level(ws.clone(), kind), per_level(hs.clone(), kind));
        let (wi, hi) = (per_level(ws, Kind::Int64), per_level(hs, Kind::Int64));
        let first = per_level(start, Kind::Int64);
        let nm = (Tensor::arange(n, (Kind::Int64, dev)).view([n, 1, 1, 1, 1]) * (s * m))
            + Tensor::arange(m, (Kind::Int64, dev)).view([1, 1, m, 1, 1]);
        let bag = l * p * 4;
        let offsets = Tensor::arange_start_step(0, n * lq * m * bag, bag, (Kind::Int64, dev));
        Levels {
            spatial_shapes: spatial_shapes.to_vec(),
            normalizer,
            wf,
            hf,
            wi,
            hi,
            first,
            nm,
            offsets,
        }
    }

    pub fn into_tensors(self) -> Vec<Tensor> {
        vec![
            self.normalizer,
            self.wf,
            self.hf,
            self.wi,
            self.hi,
            self.first,
            self.nm,
            self.offsets,
        ]
    }

    /// The inverse of [`Levels::into_tensors`] (the shapes are the cache's key).
    pub fn from_tensors(spatial_shapes: &[(i64, i64)], t: Vec<Tensor>) -> Self {
        assert_eq!(t.len(), LEVEL_TENSORS, "a Levels entry has 8 tensors");
        let [normalizer, wf, hf, wi, hi, first, nm, offsets]: [Tensor; LEVEL_TENSORS] =
            t.try_into().expect("8 tensors");
        Levels {
            spatial_shapes: spatial_shapes.to_vec(),
            normalizer,
            wf,
            hf,
            wi,
            hi,
            first,
            nm,
            offsets,
        }
    }
}

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
    /// * `levels`: [`MSDeformAttn::levels`] for these shapes (`(H_l, W_l)` per level).
    ///
    /// Returns `[N, Lq, C]`. No padding mask: at inference upstream's mask is all false.
    pub fn forward(
        &self,
        query: &Tensor,
        reference_points: &Tensor,
        input_flatten: &Tensor,
        levels: &Levels,
    ) -> Tensor {
        let (n, lq, _) = query.size3().expect("query is [N, Lq, C]");
        let s = input_flatten.size()[1];
        let (m, l, p) = (self.n_heads, self.n_levels, self.n_points);
        let d = self.d_model / m;
        // [N, S, C] -> [N, S, M, D]
        let value = lin(&self.value_proj, input_flatten).view([n, s, m, d]);
        // [N, Lq, M·L·P·2] -> [N, Lq, M, L, P, 2]   ((x, y) order)
        let offsets = lin(&self.sampling_offsets, query).view([n, lq, m, l, p, 2]);
        // [N, Lq, M, L·P] softmax -> [N, Lq, M, L, P]
        let attn = lin(&self.attention_weights, query)
            .view([n, lq, m, l * p])
            .softmax(-1, query.kind())
            .view([n, lq, m, l, p]);
        // Offsets are in cells of each level: divide by (W_l, H_l).
        // [N, Lq, 1, L, 1, 2] + [N, Lq, M, L, P, 2] / [1, 1, 1, L, 1, 2]
        let loc = reference_points.reshape([n, lq, 1, l, 1, 2]) + offsets / &levels.normalizer;
        let out = core(&value, &loc, &attn, levels);
        lin(&self.output_proj, &out)
    }

    /// The per-shape constants for `n` images with `lq` queries on `spatial_shapes`.
    pub fn levels(
        &self,
        spatial_shapes: &[(i64, i64)],
        n: i64,
        lq: i64,
        kind: Kind,
        dev: Device,
    ) -> Levels {
        Levels::new(
            spatial_shapes,
            (n, lq, self.n_heads, self.n_points),
            kind,
            dev,
        )
    }
}

/// `ms_deform_attn_core_pytorch` evaluated as one weighted row gather: `value [N, S, M, D]`,
/// `sampling_locations [N, Lq, M, L, P, 2]`, `attention_weights [N, Lq, M, L, P]` -> `[N, Lq, M·D]`.
///
/// Bilinear sampling with zero padding and `align_corners=False` reads the four neighbours of
/// `(x·W − 0.5, y·H − 0.5)`; each neighbour's weight (bilinear × attention, 0 outside the map) and
/// row of `value` go to `embedding_bag`, which sums `L·P·4` weighted rows per (query, head) without
/// materialising the samples.
pub fn ms_deform_attn_core(
    value: &Tensor,
    spatial_shapes: &[(i64, i64)],
    sampling_locations: &Tensor,
    attention_weights: &Tensor,
) -> Tensor {
    let (n, _, m, _) = value.size4().expect("value is [N, S, M, D]");
    let sz = sampling_locations.size();
    let levels = Levels::new(
        spatial_shapes,
        (n, sz[1], m, sz[4]),
        value.kind(),
        value.device(),
    );
    core(value, sampling_locations, attention_weights, &levels)
}

/// [`ms_deform_attn_core`] with the per-shape constants already built.
fn core(
    value: &Tensor,
    sampling_locations: &Tensor,
    attention_weights: &Tensor,
    levels: &Levels,
) -> Tensor {
    let (n, s, m, d) = value.size4().expect("value is [N, S, M, D]");
    let lq = sampling_locations.size()[1];
    let kind = value.kind();
    let Levels {
        wf,
        hf,
        wi,
        hi,
        first,
        nm,
        ..
    } = levels;
    debug_assert_eq!(
        s,
        levels
            .spatial_shapes
            .iter()
            .map(|&(h, w)| h * w)
            .sum::<i64>()
    );
    // Pixel coordinates, [N, Lq, M, L, P].
    let x = sampling_locations.select(-1, 0) * wf - 0.5;
    let y = sampling_locations.select(-1, 1) * hf - 0.5;
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (&x - &x0, &y - &y0);
    let (x0, y0) = (x0.to_kind(Kind::Int64), y0.to_kind(Kind::Int64));
    // Row (n, s, m) of `value` viewed as [N·S·M, D]: base for (n, m) plus s·M.
    let mut idx = Vec::with_capacity(4);
    let mut wts = Vec::with_capacity(4);
    for (dy, wy) in [(0i64, 1.0 - &fy), (1, fy.shallow_clone())] {
        for (dx, wx) in [(0i64, 1.0 - &fx), (1, fx.shallow_clone())] {
            let (xx, yy) = (&x0 + dx, &y0 + dy);
            let inside = xx
                .ge(0)
                .logical_and(&xx.lt_tensor(wi))
                .logical_and(&yy.ge(0))
                .logical_and(&yy.lt_tensor(hi));
            let s_idx = (first + &yy * wi + &xx) * inside.to_kind(Kind::Int64);
            idx.push(nm + s_idx * m);
            wts.push(attention_weights * &wy * &wx * inside.to_kind(kind));
        }
    }
    // [N, Lq, M, L, P, 4] -> one bag of L·P·4 rows per (n, q, m)
    let idx = Tensor::stack(&idx, -1).view([-1]);
    let wts = Tensor::stack(&wts, -1).view([-1]);
    let (out, _, _, _) = Tensor::embedding_bag(
        &value.reshape([n * s * m, d]),
        &idx,
        &levels.offsets,
        false,
        0,
        false,
        Some(&wts),
        false,
    );
    // [N·Lq·M, D] -> [N, Lq, M·D]
    out.view([n, lq, m * d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Direct evaluation of the CUDA kernel's rule (`h_im = y·H − 0.5`, corners outside the map
    /// count as zero) on a small case, against the gather formulation.
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
