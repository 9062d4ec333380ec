//! Swin Transformer backbone as Mask2Former uses it: `D2SwinTransformer` from
//! `facebookresearch/Mask2Former: mask2former/modeling/backbone/swin.py` (inference only: no
//! dropout, no drop-path, no absolute position embedding).
//!
//! Faithful details that change the numbers:
//! * windows are padded with zero tokens on the right/bottom and those tokens are attended to
//!   (there is no padding mask, only the shift mask);
//! * the shift mask uses −100, not −∞, and is built on the window-padded map;
//! * `PatchMerging` concatenates `x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], x[1::2,1::2]`;
//! * outputs are `norm{i}` of each stage's output *before* its downsampling, as NCHW.
//!
//! `relative_position_index` is not a weight here: it is recomputed (see
//! [`relative_position_index`]) and the checkpoint's copy is only compared with it.

use crate::model::config::Config;
use crate::model::network::layers::{init, layer_norm, lin, linear, Conv2d};
use crate::model::network::shape_cache::ShapeCache;
use crate::model::precision;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// Standard Swin relative position index for a `ws × ws` window: `[ws², ws²]` int64 with
/// `index[i, j] = (hi − hj + ws − 1)·(2ws − 1) + (wi − wj + ws − 1)`.
pub fn relative_position_index(ws: i64, device: Device) -> Tensor {
    let n = ws * ws;
    let mut idx = Vec::with_capacity((n * n) as usize);
    for i in 0..n {
        let (hi, wi) = (i / ws, i % ws);
        for j in 0..n {
            let (hj, wj) = (j / ws, j % ws);
            idx.push((hi - hj + ws - 1) * (2 * ws - 1) + (wi - wj + ws - 1));
        }
    }
    Tensor::from_slice(&idx).view([n, n]).to_device(device)
}

/// `x [B, H, W, C] -> [B·nW, ws, ws, C]` (H, W multiples of ws).
fn window_partition(x: &Tensor, ws: i64) -> Tensor {
    let (b, h, w, c) = x.size4().expect("window_partition takes a 4-D tensor");
    // [B, H/ws, ws, W/ws, ws, C] -> [B, H/ws, W/ws, ws, ws, C] -> [B·nW, ws, ws, C]
    x.view([b, h / ws, ws, w / ws, ws, c])
        .permute([0, 1, 3, 2, 4, 5])
        .contiguous()
        .view([-1, ws, ws, c])
}

/// The inverse of [`window_partition`]: `[B·nW, ws, ws, C] -> [B, H, W, C]`.
#[cfg(test)]
fn window_reverse(windows: &Tensor, ws: i64, h: i64, w: i64) -> Tensor {
    let c = windows.size()[3];
    let b = windows.size()[0] / ((h / ws) * (w / ws));
    // [B, H/ws, W/ws, ws, ws, C] -> [B, H/ws, ws, W/ws, ws, C] -> [B, H, W, C]
    windows
        .view([b, h / ws, w / ws, ws, ws, c])
        .permute([0, 1, 3, 2, 4, 5])
        .contiguous()
        .view([b, h, w, c])
}

/// `WindowAttention`: multi-head self-attention inside one window with a learned relative
/// position bias. Weights: `qkv` (packed, rows q, k, v), `proj`, `relative_position_bias_table`.
#[derive(Debug)]
pub struct WindowAttention {
    qkv: nn::Linear,
    proj: nn::Linear,
    relative_position_bias_table: Tensor,
    relative_position_index: Tensor,
    num_heads: i64,
    window_size: i64,
    scale: f64,
}

impl WindowAttention {
    pub fn new(p: nn::Path, dim: i64, window_size: i64, num_heads: i64) -> Self {
        let table_len = (2 * window_size - 1) * (2 * window_size - 1);
        WindowAttention {
            qkv: linear(&p / "qkv", dim, 3 * dim, true),
            proj: linear(&p / "proj", dim, dim, true),
            relative_position_bias_table: p.var(
                "relative_position_bias_table",
                &[table_len, num_heads],
                init(),
            ),
            relative_position_index: relative_position_index(window_size, p.device()),
            num_heads,
            window_size,
            scale: ((dim / num_heads) as f64).powf(-0.5),
        }
    }

    /// The relative position bias `[h, N, N]` (N = ws²) gathered from the table.
    fn bias(&self) -> Tensor {
        let n_ws = self.window_size * self.window_size;
        // table[index] : [N·N, h] -> [N, N, h] -> [h, N, N]
        self.relative_position_bias_table
            .index_select(0, &self.relative_position_index.view([-1]))
            .view([n_ws, n_ws, -1])
            .permute([2, 0, 1])
            .contiguous()
    }

    /// `qkv [B_, N, 3C]` (B_ = batch × windows, N = ws²) already projected; `mask [nW, N, N]`
    /// (0 / −100) or none. Returns the heads' output `[B_, N, C]` before `proj`.
    pub fn attend(&self, qkv: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let (b_, n, c3) = qkv.size3().expect("window attention takes [B_, N, 3C]");
        let (h, c) = (self.num_heads, c3 / 3);
        // [B_, N, 3C] -> [B_, N, 3, h, d] -> [3, B_, h, N, d]
        let qkv = qkv.view([b_, n, 3, h, c / h]).permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        // Additive float mask for the fused attention: bias [1, h, N, N], plus the shift mask per
        // window when shifted ([nW, h, N, N], repeated over the batch).
        let bias = self.bias().unsqueeze(0);
        let attn_mask = match mask {
            Some(mask) => {
                let nw = mask.size()[0];
                (bias + mask.unsqueeze(1))
                    .unsqueeze(0)
                    .expand([b_ / nw, nw, h, n, n], false)
                    .reshape([b_, h, n, n])
            }
            None => bias,
        };
        let out = precision::attention(&q, &k, &v, &attn_mask, self.scale);
        // [B_, h, N, d] -> [B_, N, h, d] -> [B_, N, C]
        out.transpose(1, 2).reshape([b_, n, c])
    }
}

/// Swin's `Mlp`: fc1, exact-erf GELU, fc2.
#[derive(Debug)]
pub struct Mlp {
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl Mlp {
    pub fn new(p: nn::Path, dim: i64, hidden: i64) -> Self {
        Mlp {
            fc1: linear(&p / "fc1", dim, hidden, true),
            fc2: linear(&p / "fc2", hidden, dim, true),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        lin(&self.fc2, &lin(&self.fc1, x).gelu("none"))
    }
}

/// `SwinTransformerBlock` (pre-norm residual; shifted when `shift_size > 0`).
#[derive(Debug)]
pub struct SwinTransformerBlock {
    norm1: nn::LayerNorm,
    attn: WindowAttention,
    norm2: nn::LayerNorm,
    mlp: Mlp,
    window_size: i64,
    shift_size: i64,
}

impl SwinTransformerBlock {
    fn new(
        p: nn::Path,
        dim: i64,
        num_heads: i64,
        window_size: i64,
        shift_size: i64,
        cfg: &Config,
    ) -> Self {
        let hidden = (dim as f64 * cfg.swin.mlp_ratio) as i64;
        SwinTransformerBlock {
            norm1: layer_norm(&p / "norm1", dim, cfg.norm_eps),
            attn: WindowAttention::new(&p / "attn", dim, window_size, num_heads),
            norm2: layer_norm(&p / "norm2", dim, cfg.norm_eps),
            mlp: Mlp::new(&p / "mlp", dim, hidden),
            window_size,
            shift_size,
        }
    }

    /// `x [B, H·W, C]`; `layout` is the stage's window layout for this block's shift.
    ///
    /// Equivalent to pad → roll → window partition → attention → reverse → roll back → crop, with
    /// the three copies on each side replaced by one row gather, and `qkv` / `proj` evaluated on
    /// real tokens only: a zero padding token projects to the `qkv` bias (one extra row stands in
    /// for all of them), and `proj` acts per token so the cropped tokens need none.
    pub fn forward(&self, x: &Tensor, layout: &WindowLayout) -> Tensor {
        let (b, l, c) = x.size3().expect("swin block takes [B, L, C]");
        let xn = self.norm1.forward(x);
        // [B, L, C] + one zero token -> [B, L+1, 3C] -> [B·(L+1), 3C]
        let zero = Tensor::zeros([b, 1, c], (xn.kind(), xn.device()));
        let qkv = lin(&self.attn.qkv, &Tensor::cat(&[xn, zero], 1)).view([b * (l + 1), 3 * c]);
        let n = self.window_size * self.window_size;
        // [B·nW·N, 3C] -> [B·nW, N, 3C]
        let windows = qkv.index_select(0, &layout.gather).view([-1, n, 3 * c]);
        let out = self.attn.attend(&windows, layout.mask.as_ref());
        // [B·nW·N, C] -> [B·L, C] -> [B, L, C]
        let out = out
            .view([-1, c])
            .index_select(0, &layout.scatter)
            .view([b, l, c]);
        let x = x + lin(&self.attn.proj, &out);
        &x + self.mlp.forward(&self.norm2.forward(&x))
    }
}

/// Where each window token of one block comes from (`gather`: a row of `[B·(L+1), ·]`, row `L`
/// of each image being the padding token) and where each real token ends up (`scatter`: a row
/// of `[B·nW·N, ·]`), for the padded, cyclically shifted map; plus the shift mask if shifted.
#[derive(Debug)]
pub struct WindowLayout {
    gather: Tensor,
    scatter: Tensor,
    mask: Option<Tensor>,
}

impl WindowLayout {
    fn new(b: i64, h: i64, w: i64, ws: i64, shift: i64, mask: Option<Tensor>, dev: Device) -> Self {
        let hp = (h + ws - 1) / ws * ws;
        let wp = (w + ws - 1) / ws * ws;
        let (nwx, n, l) = (wp / ws, ws * ws, h * w);
        let nw = (hp / ws) * nwx;
        let mut gather = Vec::with_capacity((b * nw * n) as usize);
        for bi in 0..b {
            for win in 0..nw {
                for pos in 0..n {
                    // Window coordinate in the shifted map; `roll(-s)` reads (y + s, x + s).
                    let y = (win / nwx) * ws + pos / ws;
                    let x = (win % nwx) * ws + pos % ws;
                    let (py, px) = ((y + shift) % hp, (x + shift) % wp);
                    let t = if py < h && px < w { py * w + px } else { l };
                    gather.push(bi * (l + 1) + t);
                }
            }
        }
        let mut scatter = Vec::with_capacity((b * l) as usize);
        for bi in 0..b {
            for py in 0..h {
                for px in 0..w {
                    let y = (py - shift).rem_euclid(hp);
                    let x = (px - shift).rem_euclid(wp);
                    let win = (y / ws) * nwx + x / ws;
                    scatter.push((bi * nw + win) * n + (y % ws) * ws + x % ws);
                }
            }
        }
        WindowLayout {
            gather: Tensor::from_slice(&gather).to_device(dev),
            scatter: Tensor::from_slice(&scatter).to_device(dev),
            mask,
        }
    }

    /// `[gather, scatter]` plus the mask if any, for the shape cache.
    fn into_tensors(self) -> Vec<Tensor> {
        let mut v = vec![self.gather, self.scatter];
        v.extend(self.mask);
        v
    }

    /// The inverse of [`WindowLayout::into_tensors`]: takes 2 tensors, or 3 when `masked`.
    fn take(t: &mut std::vec::IntoIter<Tensor>, masked: bool) -> Self {
        let mut next = || t.next().expect("a stage's layout tensors are complete");
        WindowLayout {
            gather: next(),
            scatter: next(),
            mask: masked.then(next),
        }
    }
}

/// One stage's two window layouts: unshifted (even blocks) and shifted with its mask (odd blocks).
#[derive(Debug)]
pub struct StageLayouts {
    plain: WindowLayout,
    shifted: WindowLayout,
}

/// The five tensors of a stage's layouts, in the order [`StageLayouts`] reads them back.
const STAGE_TENSORS: usize = 5;

/// `PatchMerging`: 2×2 neighbourhood → LayerNorm(4C) → Linear(4C → 2C, no bias).
#[derive(Debug)]
pub struct PatchMerging {
    norm: nn::LayerNorm,
    reduction: nn::Linear,
}

impl PatchMerging {
    fn new(p: nn::Path, dim: i64, eps: f64) -> Self {
        PatchMerging {
            norm: layer_norm(&p / "norm", 4 * dim, eps),
            reduction: linear(&p / "reduction", 4 * dim, 2 * dim, false),
        }
    }

    /// `x [B, H·W, C] -> [B, ceil(H/2)·ceil(W/2), 2C]`
    pub fn forward(&self, x: &Tensor, h: i64, w: i64) -> Tensor {
        let (b, _, c) = x.size3().expect("patch merging takes [B, L, C]");
        // [B, L, C] -> [B, H, W, C], padded to even H, W
        let x = x
            .view([b, h, w, c])
            .constant_pad_nd([0, 0, 0, w % 2, 0, h % 2]);
        let (hp, wp) = (h + h % 2, w + w % 2);
        let x0 = x.slice(1, 0, hp, 2).slice(2, 0, wp, 2);
        let x1 = x.slice(1, 1, hp, 2).slice(2, 0, wp, 2);
        let x2 = x.slice(1, 0, hp, 2).slice(2, 1, wp, 2);
        let x3 = x.slice(1, 1, hp, 2).slice(2, 1, wp, 2);
        // [B, H/2, W/2, 4C] -> [B, L/4, 4C]
        let x = Tensor::cat(&[x0, x1, x2, x3], -1).view([b, -1, 4 * c]);
        lin(&self.reduction, &self.norm.forward(&x))
    }
}

/// `BasicLayer`: one stage of blocks (odd blocks shifted) and an optional downsampling.
#[derive(Debug)]
pub struct BasicLayer {
    blocks: Vec<SwinTransformerBlock>,
    downsample: Option<PatchMerging>,
    window_size: i64,
    shift_size: i64,
}

impl BasicLayer {
    fn new(p: nn::Path, stage: usize, cfg: &Config) -> Self {
        let dim = cfg.stage_dim(stage);
        let ws = cfg.swin.window_size;
        let shift = ws / 2;
        let pb = &p / "blocks";
        let blocks = (0..cfg.swin.depths[stage])
            .map(|j| {
                let s = if j % 2 == 0 { 0 } else { shift };
                SwinTransformerBlock::new(&pb / j, dim, cfg.swin.num_heads[stage], ws, s, cfg)
            })
            .collect();
        let downsample = (stage + 1 < cfg.swin.depths.len())
            .then(|| PatchMerging::new(&p / "downsample", dim, cfg.norm_eps));
        BasicLayer {
            blocks,
            downsample,
            window_size: ws,
            shift_size: shift,
        }
    }

    /// The shift mask for an `h × w` map: `[nW, ws², ws²]`, 0 within a region and −100 across.
    fn shift_mask(&self, h: i64, w: i64, device: Device) -> Tensor {
        let ws = self.window_size;
        let s = self.shift_size;
        let hp = (h + ws - 1) / ws * ws;
        let wp = (w + ws - 1) / ws * ws;
        // Region id of a coordinate along one axis: slices (0:-ws), (-ws:-s), (-s:).
        let region = |i: i64, n: i64| -> i64 {
            if i < n - ws {
                0
            } else if i < n - s {
                1
            } else {
                2
            }
        };
        let mut ids = vec![0f32; (hp * wp) as usize];
        for i in 0..hp {
            for j in 0..wp {
                ids[(i * wp + j) as usize] = (region(i, hp) * 3 + region(j, wp)) as f32;
            }
        }
        let img = Tensor::from_slice(&ids)
            .view([1, hp, wp, 1])
            .to_device(device);
        // [nW, ws, ws, 1] -> [nW, ws²]
        let mw = window_partition(&img, ws).view([-1, ws * ws]);
        let diff = mw.unsqueeze(1) - mw.unsqueeze(2);
        diff.ne(0.0).to_kind(Kind::Float) * -100.0
    }

    /// This stage's window layouts for `b` maps of `h × w` tokens in `kind` on `dev`, built on
    /// the host and uploaded (5 tensors, see [`StageLayouts`]).
    pub fn layouts(&self, b: i64, h: i64, w: i64, kind: Kind, dev: Device) -> StageLayouts {
        let ws = self.window_size;
        let mask = self.shift_mask(h, w, dev).to_kind(kind);
        StageLayouts {
            plain: WindowLayout::new(b, h, w, ws, 0, None, dev),
            shifted: WindowLayout::new(b, h, w, ws, self.shift_size, Some(mask), dev),
        }
    }

    /// Returns (stage output before downsampling, downsampled tokens, their H, W); `layouts` are
    /// [`BasicLayer::layouts`] for `x`'s shape.
    pub fn forward(
        &self,
        x: &Tensor,
        h: i64,
        w: i64,
        layouts: &StageLayouts,
    ) -> (Tensor, Tensor, i64, i64) {
        let (plain, shifted) = (&layouts.plain, &layouts.shifted);
        let mut x = x.shallow_clone();
        for blk in &self.blocks {
            let layout = if blk.shift_size > 0 { shifted } else { plain };
            x = blk.forward(&x, layout);
        }
        match &self.downsample {
            Some(ds) => {
                let down = ds.forward(&x, h, w);
                (x, down, (h + 1) / 2, (w + 1) / 2)
            }
            None => (x.shallow_clone(), x, h, w),
        }
    }
}

/// `PatchEmbed`: zero-pad to a multiple of the patch size, Conv2d(k = s = patch), LayerNorm.
#[derive(Debug)]
pub struct PatchEmbed {
    proj: Conv2d,
    norm: nn::LayerNorm,
    patch_size: i64,
}

impl PatchEmbed {
    fn new(p: nn::Path, cfg: &Config) -> Self {
        let ps = cfg.swin.patch_size;
        PatchEmbed {
            proj: Conv2d::new(&p / "proj", cfg.swin.in_chans, cfg.swin.embed_dim, ps, ps),
            norm: layer_norm(&p / "norm", cfg.swin.embed_dim, cfg.norm_eps),
            patch_size: ps,
        }
    }

    /// `[B, 3, H, W] -> [B, C, ceil(H/ps), ceil(W/ps)]`
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let (_, _, h, w) = x.size4().expect("patch embed takes NCHW");
        let ps = self.patch_size;
        let x = x.constant_pad_nd([0, (ps - w % ps) % ps, 0, (ps - h % ps) % ps]);
        let x = self.proj.forward(&x);
        let (b, c, wh, ww) = x.size4().expect("conv output is NCHW");
        // [B, C, Wh, Ww] -> [B, Wh·Ww, C] -> norm -> [B, C, Wh, Ww]
        let t = self.norm.forward(&x.flatten(2, 3).transpose(1, 2));
        t.transpose(1, 2).view([b, c, wh, ww])
    }
}

/// `D2SwinTransformer`: returns `res2..res5` (strides 4, 8, 16, 32) as NCHW.
#[derive(Debug)]
pub struct SwinTransformer {
    patch_embed: PatchEmbed,
    layers: Vec<BasicLayer>,
    norms: Vec<nn::LayerNorm>,
    num_features: Vec<i64>,
    /// Every stage's layouts per (batch, patch grid H, W, dtype, device).
    layouts: ShapeCache<(i64, i64, i64, Kind, Device)>,
}

impl SwinTransformer {
    /// `p` is the `backbone` path.
    pub fn new(p: nn::Path, cfg: &Config) -> Self {
        let pl = &p / "layers";
        let n = cfg.swin.depths.len();
        SwinTransformer {
            patch_embed: PatchEmbed::new(&p / "patch_embed", cfg),
            layers: (0..n).map(|i| BasicLayer::new(&pl / i, i, cfg)).collect(),
            // `norm{i}` is a plain attribute name upstream, not a list entry.
            norms: (0..n)
                .map(|i| layer_norm(&p / format!("norm{i}"), cfg.stage_dim(i), cfg.norm_eps))
                .collect(),
            num_features: (0..n).map(|i| cfg.stage_dim(i)).collect(),
            layouts: ShapeCache::default(),
        }
    }

    /// Every stage's window layouts for `b` images whose patch grid is `h × w` (each stage
    /// halves it, rounding up), built fresh.
    pub fn build_layouts(
        &self,
        b: i64,
        h: i64,
        w: i64,
        kind: Kind,
        dev: Device,
    ) -> Vec<StageLayouts> {
        let (mut h, mut w) = (h, w);
        self.layers
            .iter()
            .map(|layer| {
                let l = layer.layouts(b, h, w, kind, dev);
                (h, w) = ((h + 1) / 2, (w + 1) / 2);
                l
            })
            .collect()
    }

    /// [`SwinTransformer::build_layouts`], built once per shape and kept.
    pub fn cached_layouts(
        &self,
        b: i64,
        h: i64,
        w: i64,
        kind: Kind,
        dev: Device,
    ) -> Vec<StageLayouts> {
        let flat = self.layouts.get_or_build((b, h, w, kind, dev), || {
            self.build_layouts(b, h, w, kind, dev)
                .into_iter()
                .flat_map(|s| {
                    let mut v = s.plain.into_tensors();
                    v.extend(s.shifted.into_tensors());
                    v
                })
                .collect()
        });
        debug_assert_eq!(flat.len(), STAGE_TENSORS * self.layers.len());
        let mut it = flat.into_iter();
        (0..self.layers.len())
            .map(|_| StageLayouts {
                plain: WindowLayout::take(&mut it, false),
                shifted: WindowLayout::take(&mut it, true),
            })
            .collect()
    }

    /// The layout cache (for tests: a repeated shape builds nothing).
    pub fn layout_cache(&self) -> &ShapeCache<(i64, i64, i64, Kind, Device)> {
        &self.layouts
    }

    /// `[B, 3, H, W]` -> `[res2, res3, res4, res5]`, each `[B, C_i, H_i, W_i]`.
    pub fn forward(&self, x: &Tensor) -> Vec<Tensor> {
        let x = self.patch_embed.forward(x);
        let (_, _, mut h, mut w) = x.size4().expect("patch embed output is NCHW");
        // [B, C, H, W] -> [B, H·W, C]
        let mut x = x.flatten(2, 3).transpose(1, 2);
        let layouts = self.cached_layouts(x.size()[0], h, w, x.kind(), x.device());
        let mut outs = Vec::with_capacity(self.layers.len());
        for (i, (layer, layouts)) in self.layers.iter().zip(&layouts).enumerate() {
            let (x_out, next, nh, nw) = layer.forward(&x, h, w, layouts);
            let x_out = self.norms[i].forward(&x_out);
            // [B, H·W, C] -> [B, H, W, C] -> [B, C, H, W]
            outs.push(
                x_out
                    .view([-1, h, w, self.num_features[i]])
                    .permute([0, 3, 1, 2])
                    .contiguous(),
            );
            x = next;
            h = nh;
            w = nw;
        }
        outs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_position_index_matches_the_standard_formula() {
        let idx = relative_position_index(12, Device::Cpu);
        assert_eq!(idx.size(), vec![144, 144]);
        assert_eq!(idx.int64_value(&[0, 0]), 11 * 23 + 11);
        // token 0 = (0,0), token 143 = (11,11): dh = dw = -11 -> 0
        assert_eq!(idx.int64_value(&[0, 143]), 0);
        assert_eq!(idx.int64_value(&[143, 0]), 22 * 23 + 22);
        assert_eq!(idx.max().int64_value(&[]), 23 * 23 - 1);
    }

    fn all_tensors(stages: Vec<StageLayouts>) -> Vec<Tensor> {
        stages
            .into_iter()
            .flat_map(|s| {
                let mut v = s.plain.into_tensors();
                v.extend(s.shifted.into_tensors());
                v
            })
            .collect()
    }

    /// The held layouts are the ones a fresh build makes (patch grids that need window padding,
    /// and a batch of two), and a repeated shape builds nothing.
    #[test]
    fn cached_layouts_equal_rebuilt_ones() {
        let vs = nn::VarStore::new(Device::Cpu);
        let swin = SwinTransformer::new(vs.root() / "backbone", &Config::tiny());
        let cache = swin.layout_cache();
        for (b, h, w) in [(1, 18, 26), (2, 8, 8), (1, 18, 26)] {
            let fresh = all_tensors(swin.build_layouts(b, h, w, Kind::Float, Device::Cpu));
            let first = all_tensors(swin.cached_layouts(b, h, w, Kind::Float, Device::Cpu));
            let again = all_tensors(swin.cached_layouts(b, h, w, Kind::Float, Device::Cpu));
            assert_eq!(fresh.len(), STAGE_TENSORS * 4);
            assert_eq!(first.len(), fresh.len());
            for ((f, c), a) in fresh.iter().zip(&first).zip(&again) {
                assert!(f.equal(c) && f.equal(a), "{b}×{h}×{w}: {:?}", f.size());
            }
        }
        assert_eq!(cache.builds(), 2, "two distinct shapes");
        assert_eq!(cache.len(), 2);
    }

    /// Window partition and reverse are inverse permutations.
    #[test]
    fn window_round_trip() {
        let x = Tensor::arange(2 * 8 * 12 * 3, (Kind::Float, Device::Cpu)).view([2, 8, 12, 3]);
        let w = window_partition(&x, 4);
        assert_eq!(w.size(), vec![12, 4, 4, 3]);
        assert!(window_reverse(&w, 4, 8, 12).equal(&x));
    }
}
