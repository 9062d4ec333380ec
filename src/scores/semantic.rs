//! The one pass over the upsampled masks that the `S'`-based scores and EAM share, and the
//! per-pixel formulas of `rba`, `energy`, `msp` and `entropy`.
//!
//! ```text
//! p = softmax(pred_logits)[:, :K]                        [Q, K]   (void dropped after the softmax)
//! for each band of output rows:
//!     u = up(m)[band]                                    [Q, rows, Wp]  bilinear, align_corners = false
//!     S[band] = pᵀ σ(u)                                  [K, rows·Wp]   Mask2Former's semantic_inference
//! for each chunk of queries (EAM):
//!     EAM_sum += max_k p · σ(post(up(m)))                [H·W]          Open-set-M2F: sigmoid after post
//! S' = post(S) = bilinear(S[:, :h', :w'] → H × W)        [K, H, W]      detectron2's sem_seg_postprocess
//! ```
//! When `post` is the identity (no resize, no padding: e.g. 2048×1024 Cityscapes frames) EAM's
//! weights ride along as one more row of the band product instead.

use super::{softmax_classes, Outputs, ScoreKind};
use tch::{Kind, Tensor};

/// Output rows per band of the `S'` product: 64 × 2048 pixels × 100 queries float32 = 50 MiB of
/// upsampled masks at a time.
const BAND_ROWS: usize = 64;
/// Queries upsampled at once for EAM when post-processing is not the identity (16 × 1024 × 2048
/// float32 = 128 MiB).
const CHUNK: i64 = 16;

/// What the shared pass produced.
pub struct Shared {
    /// `S'`: `[K, H, W]`.
    pub semantic: Option<Tensor>,
    /// The EAM map `[H, W]`.
    pub eam: Option<Tensor>,
}

/// Bilinear (align_corners = false) resize of `[C, h, w]` to `(H, W)`; the tensor itself when the
/// size already matches (the resize would be an exact copy).
fn resize(t: &Tensor, (h, w): (usize, usize)) -> Tensor {
    let s = t.size();
    if (s[1], s[2]) == (h as i64, w as i64) {
        return t.shallow_clone();
    }
    t.unsqueeze(0)
        .upsample_bilinear2d([h as i64, w as i64], false, None, None)
        .squeeze_dim(0)
}

/// detectron2's `sem_seg_postprocess` on `[C, Hp, Wp]`: crop to the resized image, then bilinear to
/// the input size.
pub fn post(t: &Tensor, resized: (usize, usize), original: (usize, usize)) -> Tensor {
    let crop = t
        .narrow(1, 0, resized.0 as i64)
        .narrow(2, 0, resized.1 as i64);
    resize(&crop, original)
}

/// Rows `y0..y1` of `up(masks)` (`[Q, h, w]` → `[Q, y1 − y0, Wp]`), bit-identical to those rows of
/// the whole upsampled tensor. With a power-of-two factor `Hp / h` and band edges on multiples of
/// it, the band is upsampled from its source rows plus one row of margin on each side: every
/// source coordinate `(y + 0.5) / f − 0.5` is then exact in float32 in both, so each output row
/// reads the same rows with the same weights. libtorch's CPU kernel also depends on the output
/// size (height + width ≤ 128 takes a differently rounded one), so bands are used only where every
/// band and the whole take the same kernel (`Wp > 128`). Otherwise: the whole tensor, one band.
fn upsample_rows(masks: &Tensor, hp: usize, wp: usize, y0: usize, y1: usize) -> Tensor {
    let h = masks.size()[1] as usize;
    let f = hp / h;
    let banded = wp > 128
        && hp.is_multiple_of(h)
        && f.is_power_of_two()
        && y0.is_multiple_of(f)
        && y1.is_multiple_of(f);
    if !banded || (y0, y1) == (0, hp) {
        return resize(masks, (hp, wp)).narrow(1, y0 as i64, (y1 - y0) as i64);
    }
    let start = (y0 / f).saturating_sub(1);
    let end = (y1 / f + 1).min(h);
    let local = resize(
        &masks.narrow(1, start as i64, (end - start) as i64),
        (f * (end - start), wp),
    );
    local.narrow(1, (y0 - f * start) as i64, (y1 - y0) as i64)
}

/// Output rows per band: a multiple of the upsampling factor (so bands stay exact), about
/// [`BAND_ROWS`].
fn band_rows(h: usize, hp: usize) -> usize {
    let f = (hp / h.max(1)).max(1);
    BAND_ROWS.div_ceil(f) * f
}

/// Runs the shared pass for `S'` (when `semantic`) and EAM (when `eam`).
///
/// `S` is one matrix product over all queries per band of rows, as Mask2Former's einsum sums them,
/// so `S'` equals the reference's float32 result on the same BLAS, not only within rounding.
pub fn compute(out: &Outputs, semantic: bool, eam: bool) -> Shared {
    if !semantic && !eam {
        return Shared {
            semantic: None,
            eam: None,
        };
    }
    let (hp, wp) = out.padded;
    let (h, w) = (out.original.0 as i64, out.original.1 as i64);
    let q = out.pred_logits.size()[0];
    let k = out.pred_logits.size()[1] - 1;
    let masks = out.pred_masks.to_kind(Kind::Float);
    let p = softmax_classes(out.pred_logits).narrow(1, 0, k); // [Q, K]
    let max_p = p.amax([1], true); // [Q, 1]
    let identity = out.resized == out.padded && out.original == out.resized;
    let eam_in_product = eam && identity;
    let mut parts = Vec::new();
    if semantic {
        parts.push(p.shallow_clone());
    }
    if eam_in_product {
        parts.push(max_p.shallow_clone());
    }
    let opts = (Kind::Float, masks.device());
    let product = (!parts.is_empty()).then(|| {
        let wt = Tensor::cat(&parts, 1).transpose(0, 1).contiguous(); // [R, Q]
        let rows = wt.size()[0];
        let acc = Tensor::empty([rows, (hp * wp) as i64], opts); // [R, Hp·Wp]
        let step = band_rows(masks.size()[1] as usize, hp);
        for y0 in (0..hp).step_by(step) {
            let y1 = (y0 + step).min(hp);
            let n = ((y1 - y0) * wp) as i64;
            let s = upsample_rows(&masks, hp, wp, y0, y1)
                .sigmoid()
                .reshape([q, n]); // [Q, band]
            acc.narrow(1, (y0 * wp) as i64, n).copy_(&mm_f32(&wt, &s)); // [R, band]
        }
        acc
    });
    let eam_sum = (eam && !identity).then(|| {
        let mut acc = Tensor::zeros([1, h * w], opts); // [1, H·W]
        for start in (0..q).step_by(CHUNK as usize) {
            let n = CHUNK.min(q - start);
            let u = resize(&masks.narrow(0, start, n), out.padded); // [n, Hp, Wp]
            let s = post(&u, out.resized, out.original)
                .sigmoid()
                .reshape([n, h * w]);
            addmm_f32(&mut acc, &max_p.narrow(0, start, n).transpose(0, 1), &s);
        }
        acc
    });
    let semantic_map = semantic.then(|| {
        let s = product
            .as_ref()
            .expect("semantic rows")
            .narrow(0, 0, k)
            .view([k, hp as i64, wp as i64]);
        post(&s, out.resized, out.original).contiguous()
    });
    let eam_map = eam.then(|| {
        let sum = match (&eam_sum, &product) {
            (Some(e), _) => e.shallow_clone(),
            (None, Some(acc)) => acc.narrow(0, acc.size()[0] - 1, 1),
            (None, None) => unreachable!("EAM is accumulated somewhere"),
        };
        (sum.neg() + 1.0).view([h, w])
    });
    Shared {
        semantic: semantic_map,
        eam: eam_map,
    }
}

/// Scoring stays float32 whatever `runtime.precision` lets the network do: with a TF32 switch on
/// (process-wide, so it would reach these products too) a CUDA product runs in float64 and is
/// rounded to float32; otherwise, and always on a CPU, it runs in float32 as it is.
fn f64_products(t: &Tensor) -> bool {
    crate::model::precision::tf32_possible(t.device())
}

/// `a · b` in float32 or better (see [`f64_products`]).
fn mm_f32(a: &Tensor, b: &Tensor) -> Tensor {
    if f64_products(a) {
        a.to_kind(Kind::Double)
            .mm(&b.to_kind(Kind::Double))
            .to_kind(Kind::Float)
    } else {
        a.mm(b)
    }
}

/// `acc += a · b` in float32 or better (see [`f64_products`]).
fn addmm_f32(acc: &mut Tensor, a: &Tensor, b: &Tensor) {
    if f64_products(a) {
        let _ = acc.g_add_(&mm_f32(a, b));
    } else {
        let _ = acc.addmm_(a, b);
    }
}

/// The per-pixel formula of an `S'`-based score on `s = S' [K, H, W]`, as `[H, W]`.
pub fn score(kind: ScoreKind, s: &Tensor) -> Tensor {
    match kind {
        // RbA: −Σ_k tanh(S'_k).
        ScoreKind::Rba => s.tanh().sum_dim_intlist(0, false, Kind::Float).neg(),
        // Energy: −logsumexp_k S'_k.
        ScoreKind::Energy => s.logsumexp(0, false).neg(),
        // 1 − max_k S'_k.
        ScoreKind::Msp => s.amax([0], false).neg() + 1.0,
        // −Σ π ln π with π = S' / Σ S'; xlogy gives 0 for π = 0; Σ S' = 0 scores ln K.
        ScoreKind::Entropy => {
            let k = s.size()[0];
            let total = s.sum_dim_intlist(0, true, Kind::Float); // [1, H, W]
            let pi = s / &total;
            let h = pi.xlogy(&pi).sum_dim_intlist(0, false, Kind::Float).neg();
            h.masked_fill(&total.squeeze_dim(0).eq(0.0), (k as f64).ln())
        }
        ScoreKind::Maskomaly | ScoreKind::Eam => {
            unreachable!("{kind} does not read S'")
        }
    }
}

/// torchvision's `GaussianBlur(7, sigma=1)` on an `[H, W]` map (RbA's optional smoothing): the
/// normalised 1-D kernel `exp(−x²/2)` at x = −3…3, its outer product, reflected borders. H and W
/// must be at least 4.
pub fn gaussian_blur(t: &Tensor) -> Tensor {
    let size = t.size();
    let opts = (Kind::Float, t.device());
    let x = Tensor::linspace(-3.0, 3.0, 7, opts);
    let pdf = (x.square() * -0.5).exp();
    let k1 = &pdf / pdf.sum(Kind::Float);
    let k2 = k1.unsqueeze(1).matmul(&k1.unsqueeze(0)); // [7, 7]
                                                       // Under TF32 (see [`f64_products`]) the kernel is built and the convolution runs in float64.
    let kind = if f64_products(t) {
        Kind::Double
    } else {
        Kind::Float
    };
    let k2 = if kind == Kind::Double {
        let k1 = k1.to_kind(kind);
        k1.unsqueeze(1) * k1.unsqueeze(0)
    } else {
        k2
    };
    t.to_kind(kind)
        .view([1, 1, size[0], size[1]])
        .reflection_pad2d([3, 3, 3, 3])
        .conv2d(
            &k2.view([1, 1, 7, 7]),
            None::<Tensor>,
            [1, 1],
            [0, 0],
            [1, 1],
            1,
        )
        .view([size[0], size[1]])
        .to_kind(Kind::Float)
}

/// `argmax_k S'` as uint8 trainIds `[H, W]` (the first class wins ties).
pub fn argmax_classes(s: &Tensor) -> Tensor {
    s.argmax(0, false).to_kind(Kind::Uint8)
}

/// The reference's semantic inference (Mask2Former `semantic_inference` + detectron2
/// `sem_seg_postprocess`): `S'` from [`compute`], argmax over classes → trainIds (H × W) on the
/// host. `S' = Σ_q softmax(cls)[q, :K] · sigmoid(mask_q)` at the padded size, cropped to the
/// resized image, bilinearly resized to the input size.
pub fn semantic_segmentation(out: &Outputs) -> Vec<u8> {
    let s = compute(out, true, false).semantic.expect("asked for S'");
    let ids = argmax_classes(&s).to_device(tch::Device::Cpu).contiguous();
    Vec::<u8>::try_from(ids.flatten(0, -1)).expect("uint8 tensor converts to Vec<u8>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_of_the_upsampled_masks_equal_the_whole() {
        tch::manual_seed(7);
        for (h, w, hp, wp) in [
            (16, 40, 64, 160),
            (24, 33, 96, 132),
            (10, 40, 40, 160),
            (9, 40, 27, 160),
            (16, 24, 64, 96),
            (8, 130, 8, 130),
        ] {
            let m = Tensor::randn([5, h as i64, w as i64], (Kind::Float, tch::Device::Cpu)) * 4.0;
            let whole = resize(&m, (hp, wp));
            let step = band_rows(h, hp).min(8 * (hp / h).max(1));
            for y0 in (0..hp).step_by(step) {
                let y1 = (y0 + step).min(hp);
                let band = upsample_rows(&m, hp, wp, y0, y1);
                let want = whole.narrow(1, y0 as i64, (y1 - y0) as i64);
                assert!(band.equal(&want), "{h}x{w} -> {hp}x{wp}, rows {y0}..{y1}");
            }
        }
    }
}
