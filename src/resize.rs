//! The exact resize rules the method depends on:
//!
//! * [`pillow_bilinear`]: Pillow 9.3 `Image.resize(BILINEAR)` on 8-bit images (detectron2's
//!   `ResizeTransform` input resize): separable triangle filter with anti-aliasing, 22-bit fixed-point
//!   weights, horizontal pass then vertical pass, each rounding to uint8.
//! * [`opencv_area`]: OpenCV 4.7 `cv2.resize(..., INTER_AREA)` on single-channel float32 (the score map
//!   back to the input size): area tables when shrinking in both axes (box average for integer
//!   factors), otherwise the linear kernel with "area" coefficients.
//! * [`bilinear_taps`]: libtorch's `upsample_bilinear2d` (align_corners = false) taps along one
//!   axis, for the fused CPU scoring pass that upsamples the mask logits row by row.

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's per-axis coefficients: for each output index, the first input index and its weights.
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    /// `ksize` fixed-point weights per output index.
    k: Vec<i32>,
}

fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn precompute_coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support is 1.0
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut k = vec![0i32; out_size * ksize];
    let mut w = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C casts truncate toward zero; the max(0) clamp makes that equal to floor here.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, wx) in w.iter_mut().enumerate().take(xmax) {
            *wx = bilinear_filter((x as f64 + xmin as f64 - center + 0.5) * ss);
            ww += *wx;
        }
        for x in 0..xmax {
            let v = if ww != 0.0 { w[x] / ww } else { w[x] };
            let f = (1i64 << PRECISION_BITS) as f64;
            k[xx * ksize + x] = if v < 0.0 {
                (-0.5 + v * f) as i32
            } else {
                (0.5 + v * f) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    Coeffs { bounds, ksize, k }
}

#[inline]
fn clip8(v: i32) -> u8 {
    let s = v >> PRECISION_BITS;
    s.clamp(0, 255) as u8
}

/// Resizes an interleaved 8-bit image (`channels` per pixel, row-major) exactly as Pillow 9.3's
/// `BILINEAR`. A same-size resize returns a copy.
pub fn pillow_bilinear(
    src: &[u8],
    w: usize,
    h: usize,
    channels: usize,
    new_w: usize,
    new_h: usize,
) -> Vec<u8> {
    assert_eq!(
        src.len(),
        w * h * channels,
        "image buffer does not match its size"
    );
    // An empty image or target has no pixel to compute (callers refuse such sizes earlier).
    if [w, h, new_w, new_h].contains(&0) {
        return vec![0; new_w * new_h * channels];
    }
    let need_h = new_w != w;
    let need_v = new_h != h;
    let vert = need_v.then(|| precompute_coeffs(h, new_h));
    // Only the input rows the vertical pass reads go through the horizontal pass.
    let (row0, row1) = match &vert {
        Some(c) => {
            let (last_min, last_len) = c.bounds[new_h - 1];
            (c.bounds[0].0, last_min + last_len)
        }
        None => (0, h),
    };
    let (tmp, tmp_w) = if need_h {
        let c = precompute_coeffs(w, new_w);
        let rows = row1 - row0;
        let mut out = vec![0u8; rows * new_w * channels];
        for (r, out_row) in out.chunks_mut(new_w * channels).enumerate() {
            let in_row = &src[(row0 + r) * w * channels..(row0 + r + 1) * w * channels];
            for (xx, &(xmin, xmax)) in c.bounds.iter().enumerate() {
                let k = &c.k[xx * c.ksize..xx * c.ksize + xmax];
                for ch in 0..channels {
                    let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                    for (x, &kx) in k.iter().enumerate() {
                        ss = ss.wrapping_add(in_row[(x + xmin) * channels + ch] as i32 * kx);
                    }
                    out_row[xx * channels + ch] = clip8(ss);
                }
            }
        }
        (out, new_w)
    } else {
        (src[row0 * w * channels..row1 * w * channels].to_vec(), w)
    };
    let Some(c) = vert else { return tmp };
    let stride = tmp_w * channels;
    let mut out = vec![0u8; new_h * stride];
    for (yy, out_row) in out.chunks_mut(stride).enumerate() {
        let (ymin, ymax) = c.bounds[yy];
        let ymin = ymin - row0;
        let k = &c.k[yy * c.ksize..yy * c.ksize + ymax];
        for (i, o) in out_row.iter_mut().enumerate() {
            let mut ss: i32 = 1 << (PRECISION_BITS - 1);
            for (y, &ky) in k.iter().enumerate() {
                ss = ss.wrapping_add(tmp[(y + ymin) * stride + i] as i32 * ky);
            }
            *o = clip8(ss);
        }
    }
    out
}

/// One entry of OpenCV's area table: destination index, source index, weight.
struct AreaTab {
    di: usize,
    si: usize,
    alpha: f32,
}

fn area_tab(ssize: usize, dsize: usize, scale: f64) -> Vec<AreaTab> {
    let mut tab = Vec::with_capacity(ssize * 2);
    for dx in 0..dsize {
        let fsx1 = dx as f64 * scale;
        let fsx2 = fsx1 + scale;
        let cell_width = scale.min(ssize as f64 - fsx1);
        let mut sx1 = fsx1.ceil() as i64;
        let sx2 = (fsx2.floor() as i64).min(ssize as i64 - 1);
        sx1 = sx1.min(sx2);
        if sx1 as f64 - fsx1 > 1e-3 {
            tab.push(AreaTab {
                di: dx,
                si: (sx1 - 1) as usize,
                alpha: ((sx1 as f64 - fsx1) / cell_width) as f32,
            });
        }
        for sx in sx1..sx2 {
            tab.push(AreaTab {
                di: dx,
                si: sx as usize,
                alpha: (1.0 / cell_width) as f32,
            });
        }
        if fsx2 - sx2 as f64 > 1e-3 {
            let a = (fsx2 - sx2 as f64).min(1.0).min(cell_width) / cell_width;
            tab.push(AreaTab {
                di: dx,
                si: sx2 as usize,
                alpha: a as f32,
            });
        }
    }
    tab
}

/// Resizes a single-channel float32 map (row-major `h × w`) to `new_h × new_w` with OpenCV 4.7's
/// `INTER_AREA`. A same-size resize is a copy.
pub fn opencv_area(src: &[f32], w: usize, h: usize, new_w: usize, new_h: usize) -> Vec<f32> {
    assert_eq!(src.len(), w * h, "map buffer does not match its size");
    if w == new_w && h == new_h {
        return src.to_vec();
    }
    if [w, h, new_w, new_h].contains(&0) {
        return vec![0.0; new_w * new_h];
    }
    // OpenCV derives the scale from the inverse scale, not as src/dst directly.
    let inv_x = new_w as f64 / w as f64;
    let inv_y = new_h as f64 / h as f64;
    let scale_x = 1.0 / inv_x;
    let scale_y = 1.0 / inv_y;
    if scale_x >= 1.0 && scale_y >= 1.0 {
        let ix = scale_x.round();
        let iy = scale_y.round();
        if (scale_x - ix).abs() < f64::EPSILON && (scale_y - iy).abs() < f64::EPSILON {
            return area_fast(src, w, new_w, new_h, ix as usize, iy as usize);
        }
        return area_general(src, w, h, new_w, new_h, scale_x, scale_y);
    }
    linear_area(src, w, h, new_w, new_h, scale_x, scale_y, inv_x, inv_y)
}

/// Integer factors: box average, summed in OpenCV's order (row-major over the box).
fn area_fast(src: &[f32], w: usize, new_w: usize, new_h: usize, sx: usize, sy: usize) -> Vec<f32> {
    let scale = 1.0f32 / (sx * sy) as f32;
    let mut out = vec![0f32; new_w * new_h];
    for dy in 0..new_h {
        for dx in 0..new_w {
            let mut sum = 0f32;
            let mut k = 0;
            let area = sx * sy;
            let at = |k: usize| src[(dy * sy + k / sx) * w + dx * sx + k % sx];
            // OpenCV adds four box entries at a time, then the rest one by one.
            while k + 4 <= area {
                sum += at(k) + at(k + 1) + at(k + 2) + at(k + 3);
                k += 4;
            }
            while k < area {
                sum += at(k);
                k += 1;
            }
            out[dy * new_w + dx] = sum * scale;
        }
    }
    out
}

fn area_general(
    src: &[f32],
    w: usize,
    h: usize,
    new_w: usize,
    new_h: usize,
    sx: f64,
    sy: f64,
) -> Vec<f32> {
    let xtab = area_tab(w, new_w, sx);
    let ytab = area_tab(h, new_h, sy);
    let mut out = vec![0f32; new_w * new_h];
    let mut buf = vec![0f32; new_w];
    let mut sum = vec![0f32; new_w];
    let mut prev_dy: Option<usize> = None;
    for yt in &ytab {
        buf.iter_mut().for_each(|b| *b = 0.0);
        let row = &src[yt.si * w..(yt.si + 1) * w];
        for xt in &xtab {
            buf[xt.di] += row[xt.si] * xt.alpha;
        }
        if prev_dy != Some(yt.di) {
            if let Some(p) = prev_dy {
                out[p * new_w..(p + 1) * new_w].copy_from_slice(&sum);
            }
            for (s, b) in sum.iter_mut().zip(&buf) {
                *s = yt.alpha * *b;
            }
            prev_dy = Some(yt.di);
        } else {
            for (s, b) in sum.iter_mut().zip(&buf) {
                *s += yt.alpha * *b;
            }
        }
    }
    if let Some(p) = prev_dy {
        out[p * new_w..(p + 1) * new_w].copy_from_slice(&sum);
    }
    out
}

/// Per-axis (index, weight of index, weight of index+1) for the upscaling branch of INTER_AREA.
fn linear_area_coeffs(
    ssize: usize,
    dsize: usize,
    scale: f64,
    inv_scale: f64,
) -> Vec<(usize, f32, f32)> {
    (0..dsize)
        .map(|d| {
            let mut s = (d as f64 * scale).floor() as i64;
            let mut f = ((d + 1) as f64 - (s + 1) as f64 * inv_scale) as f32;
            f = if f <= 0.0 { 0.0 } else { f - f.floor() };
            if s < 0 {
                s = 0;
                f = 0.0;
            }
            if s >= ssize as i64 - 1 {
                s = ssize as i64 - 1;
                f = 0.0;
            }
            (s as usize, 1.0 - f, f)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn linear_area(
    src: &[f32],
    w: usize,
    h: usize,
    new_w: usize,
    new_h: usize,
    sx: f64,
    sy: f64,
    inv_x: f64,
    inv_y: f64,
) -> Vec<f32> {
    let xc = linear_area_coeffs(w, new_w, sx, inv_x);
    let yc = linear_area_coeffs(h, new_h, sy, inv_y);
    let hrow = |r: usize| -> Vec<f32> {
        let row = &src[r * w..(r + 1) * w];
        xc.iter()
            .map(|&(s, a0, a1)| {
                if s + 1 < w {
                    row[s] * a0 + row[s + 1] * a1
                } else {
                    row[s] * a0
                }
            })
            .collect()
    };
    let mut out = vec![0f32; new_w * new_h];
    let mut cache: Option<(usize, Vec<f32>, Vec<f32>)> = None;
    for (dy, &(s, b0, b1)) in yc.iter().enumerate() {
        let s1 = (s + 1).min(h - 1);
        let (r0, r1) = match cache.take() {
            Some((cs, r0, r1)) if cs == s => (r0, r1),
            Some((cs, _, r1)) if cs + 1 == s => (r1, hrow(s1)),
            _ => (hrow(s), hrow(s1)),
        };
        for (x, o) in out[dy * new_w..(dy + 1) * new_w].iter_mut().enumerate() {
            *o = r0[x] * b0 + r1[x] * b1;
        }
        cache = Some((s, r0, r1));
    }
    out
}

/// Source indices and weights of libtorch's bilinear resize (align_corners = false) along one
/// axis: output `i` reads `src[i0]·l0 + src[i1]·l1`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tap {
    pub i0: usize,
    pub i1: usize,
    pub l0: f32,
    pub l1: f32,
}

pub(crate) fn bilinear_taps(input: usize, output: usize) -> Vec<Tap> {
    if input == output {
        return (0..output)
            .map(|i| Tap {
                i0: i,
                i1: i,
                l0: 1.0,
                l1: 0.0,
            })
            .collect();
    }
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|i| {
            let real = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (real.floor() as usize).min(input - 1);
            let l1 = (real - i0 as f32).clamp(0.0, 1.0);
            let i1 = i0 + usize::from(i0 < input - 1);
            Tap {
                i0,
                i1,
                l0: 1.0 - l1,
                l1,
            }
        })
        .collect()
}

#[inline(always)]
pub(crate) fn hresize(src: &[f32], taps: &[Tap], out: &mut [f32]) {
    for (o, t) in out.iter_mut().zip(taps) {
        *o = src[t.i0] * t.l0 + src[t.i1] * t.l1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/method.md §14.2 pattern: `src[y][x][c] = (x*7 + y*13 + c*101 + (x*y)%17) % 256`. The
    /// expected values are Pillow 9.3.0's, printed by `scripts/make_golden_values.py`.
    fn pattern(h: usize, w: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(h * w * 3);
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    v.push(((x * 7 + y * 13 + c * 101 + (x * y) % 17) % 256) as u8);
                }
            }
        }
        v
    }

    fn px(img: &[u8], w: usize, y: usize, x: usize) -> [u8; 3] {
        let i = (y * w + x) * 3;
        [img[i], img[i + 1], img[i + 2]]
    }

    #[test]
    fn pillow_golden_720x1280() {
        let out = pillow_bilinear(&pattern(720, 1280), 1280, 720, 3, 1820, 1024);
        assert_eq!(out.iter().map(|&v| v as u64).sum::<u64>(), 712872835);
        assert_eq!(px(&out, 1820, 0, 0), [0, 101, 202]);
        assert_eq!(px(&out, 1820, 511, 910), [195, 40, 141]);
        assert_eq!(px(&out, 1820, 1023, 1819), [127, 228, 73]);
        assert_eq!(px(&out, 1820, 300, 1234), [115, 216, 61]);
    }

    #[test]
    fn pillow_golden_1080x1920_downscale() {
        let out = pillow_bilinear(&pattern(1080, 1920), 1920, 1080, 3, 1820, 1024);
        assert_eq!(out.iter().map(|&v| v as u64).sum::<u64>(), 712890924);
        assert_eq!(px(&out, 1820, 0, 0), [2, 103, 204]);
        assert_eq!(px(&out, 1820, 511, 910), [169, 31, 115]);
        assert_eq!(px(&out, 1820, 1023, 1819), [68, 169, 14]);
        assert_eq!(px(&out, 1820, 300, 1234), [182, 27, 128]);
    }

    #[test]
    fn pillow_same_size_is_a_copy() {
        let src = pattern(33, 47);
        assert_eq!(pillow_bilinear(&src, 47, 33, 3, 47, 33), src);
    }

    /// docs/method.md §14.3 pattern: `f[y][x] = f32(((x*31 + y*17) % 97) / 97)`, 1024×1824. The
    /// expected values are OpenCV 4.7.0's, printed by `scripts/make_golden_values.py`.
    fn area_pattern() -> Vec<f32> {
        let (h, w) = (1024, 1824);
        let mut v = Vec::with_capacity(h * w);
        for y in 0..h {
            for x in 0..w {
                v.push((((x * 31 + y * 17) % 97) as f64 / 97.0) as f32);
            }
        }
        v
    }

    fn sum64(v: &[f32]) -> f64 {
        v.iter().map(|&x| x as f64).sum()
    }

    #[test]
    fn area_golden_downscale() {
        let r = opencv_area(&area_pattern(), 1824, 1024, 1280, 720);
        assert!(
            (sum64(&r) - 456049.279133).abs() < 1e-3,
            "sum {}",
            sum64(&r)
        );
        assert!((r[0] - 0.1473452).abs() < 1e-6, "{}", r[0]);
        assert!((r[359 * 1280 + 640] - 0.2722379).abs() < 1e-6);
        assert!((r[719 * 1280 + 1279] - 0.749_562).abs() < 1e-6);
    }

    #[test]
    fn area_golden_upscale() {
        let r = opencv_area(&area_pattern(), 1824, 1024, 1920, 1080);
        assert!(
            (sum64(&r) - 1026110.872561).abs() < 1e-3,
            "sum {}",
            sum64(&r)
        );
        assert_eq!(r[0], 0.0);
        assert!(
            (r[359 * 1920 + 640] - 0.6069587).abs() < 1e-6,
            "{}",
            r[359 * 1920 + 640]
        );
        assert!((r[1079 * 1920 + 1919] - 0.8969072).abs() < 1e-6);
    }

    #[test]
    fn area_same_size_is_a_copy() {
        let src: Vec<f32> = (0..35).map(|i| i as f32 * 0.37).collect();
        assert_eq!(opencv_area(&src, 7, 5, 7, 5), src);
    }

    #[test]
    fn area_integer_factor_is_the_box_mean() {
        let src: Vec<f32> = (0..4 * 6).map(|i| i as f32).collect();
        let r = opencv_area(&src, 6, 4, 3, 2);
        // box (0,0): 0,1,6,7
        assert_eq!(r[0], (0.0 + 1.0 + 6.0 + 7.0) / 4.0);
        assert_eq!(r[5], (16.0 + 17.0 + 22.0 + 23.0) / 4.0);
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            /// Every size pair, thin and extreme ones included, in both directions: the output has
            /// the requested size and stays within the input's range.
            #[test]
            fn resizes_of_any_shape_keep_size_and_range(
                w in 1usize..300, h in 1usize..300, nw in 1usize..300, nh in 1usize..300,
                thin in 0usize..4,
            ) {
                // Also very thin shapes: one row or one column on either side.
                let (w, h, nw, nh) = match thin {
                    1 => (w, 1, nw, nh),
                    2 => (1, h, nw, 1),
                    3 => (w * 20, 1, 1, nh),
                    _ => (w, h, nw, nh),
                };
                let src: Vec<u8> = (0..w * h * 3).map(|i| (i * 37 % 251) as u8).collect();
                let out = pillow_bilinear(&src, w, h, 3, nw, nh);
                prop_assert_eq!(out.len(), nw * nh * 3);
                let map: Vec<f32> = (0..w * h).map(|i| (i % 7) as f32 / 6.0).collect();
                let out = opencv_area(&map, w, h, nw, nh);
                prop_assert_eq!(out.len(), nw * nh);
                prop_assert!(out.iter().all(|v| (-1e-5..=1.0 + 1e-5).contains(v)), "{:?}", out);
            }
        }
    }
}
