//! How far a float32 map may lie from a reference computed on another CPU or by another library:
//! the tolerance of the tests that compare score maps with fixtures. Used by the unit tests and,
//! through `tests/common`, by the end-to-end tests.
//!
//! libtorch picks its CPU kernels at run time (scalar, AVX2 or AVX-512; `ATEN_CPU_CAPABILITY`
//! forces one). They add in different orders and approximate exp, log, tanh and the sigmoid
//! differently, so a value moves by a few float32 roundings of the numbers it is made of: a bound
//! in units of the values' magnitude, which a fraction of the range alone does not give when the
//! values are far from zero (an entropy map near 3 with a range of 0.06 moves by 4 roundings of 3,
//! 1.6e-5 of its range).

/// float32's machine epsilon: a rounding of a value of magnitude m changes it by at most ε·m.
pub const EPS: f64 = f32::EPSILON as f64;

/// The comparison of one map with its reference.
#[derive(Debug, Clone, Copy)]
pub struct Parity {
    /// max |got − want| (infinite when a value is NaN or the lengths differ).
    pub max_diff: f64,
    /// The largest difference allowed.
    pub tolerance: f64,
    /// max(1, max |want|): every score is built from probabilities and sigmoids in [0, 1] (MSP
    /// and EAM subtract from 1), so its roundings are never smaller than those of 1.
    pub magnitude: f64,
    /// max(want) − min(want).
    pub range: f64,
}

impl Parity {
    pub fn ok(&self) -> bool {
        self.max_diff <= self.tolerance
    }
}

impl std::fmt::Display for Parity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "max |diff| {:.3e} = {:.2} ε of magnitude {:.4} = {:.2e} of range {:.4}; tolerance {:.3e}",
            self.max_diff,
            self.max_diff / (EPS * self.magnitude),
            self.magnitude,
            self.max_diff / self.range,
            self.range,
            self.tolerance
        )
    }
}

/// Compares `got` with `want`, allowing `ulps` float32 roundings of the reference's magnitude plus
/// `of_range` of its range.
pub fn compare(got: &[f32], want: &[f32], ulps: f64, of_range: f64) -> Parity {
    let lo = want.iter().copied().fold(f32::INFINITY, f32::min) as f64;
    let hi = want.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let magnitude = want.iter().map(|v| v.abs() as f64).fold(1.0, f64::max);
    let max_diff = if got.len() == want.len() {
        got.iter()
            .zip(want)
            .map(|(&a, &b)| (a as f64 - b as f64).abs())
            .fold(
                0.0,
                |m, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
            )
    } else {
        f64::INFINITY
    };
    Parity {
        max_diff,
        tolerance: ulps * EPS * magnitude + of_range * (hi - lo),
        magnitude,
        range: hi - lo,
    }
}

/// Roundings of the magnitude allowed between a score map and a fixture made by torch on another
/// CPU: the kernel sets add the Q query products of `S'` (24 in the synthetic cases, 100 in the tiny
/// model) and a score's K ≤ 19 class terms in different orders (vector lanes and blocks, or one by
/// one; a blocked sum of n terms is off by about log2 n roundings: 7 and 5) and approximate exp,
/// log, tanh and the sigmoid to 1–2 ulp each: 16 in all. Measured with the scalar and AVX2 kernels:
/// at most 6 (EAM of the tiny model, scalar kernels).
pub const SCORE_ULPS: f64 = 16.0;

/// Fraction of a score map's range allowed on top of [`SCORE_ULPS`]: the references resize with
/// other code (OpenCV's INTER_AREA, torchvision's blur, detectron2's bilinear post-processing),
/// whose rounded weights multiply differences between neighbouring values, bounded by the range.
pub const SCORE_OF_RANGE: f64 = 1e-5;

/// A score map against its fixture, within [`SCORE_ULPS`] and [`SCORE_OF_RANGE`].
pub fn score_map(got: &[f32], want: &[f32]) -> Parity {
    compare(got, want, SCORE_ULPS, SCORE_OF_RANGE)
}
