use super::*;
use tch::{Kind, Tensor};

/// The fused host pass on the CPU masks of `plan.needed()` (`[n, H, W]`, that order).
fn score_map(plan: &QueryPlan, masks: &Tensor, method: &Method) -> Vec<f32> {
    let size = masks.size();
    let (h, w) = (size[1] as usize, size[2] as usize);
    let data = Vec::<f32>::try_from(masks.to_kind(Kind::Float).flatten(0, -1)).unwrap();
    let needed = plan.needed();
    let plane = |q: i64| {
        let i = needed
            .binary_search(&q)
            .expect("plan.needed() covers every role");
        &data[i * h * w..(i + 1) * h * w]
    };
    score_host(plan, plane, h, w, method)
}

/// docs/method.md §14.1 golden inputs: Q = 100, 20 classes, 6×8. The expected values below are the
/// reference rule's in numpy 1.24.2 (`scripts/reference_scoring.py`), printed by
/// `scripts/make_golden_values.py`.
fn golden_inputs() -> (Vec<f32>, Tensor) {
    let s = [3, 19, 24, 31, 49, 70, 83];
    let mut cls = Vec::with_capacity(2000);
    for q in 0..100usize {
        let mut logits = [-4f32; 20];
        if s.contains(&q) {
            logits[q % 19] = 4.0 + (q % 3) as f32;
        } else {
            logits[19] = 4.0;
        }
        // softmax in float32, as torch/numpy on a float32 array
        let t = Tensor::from_slice(&logits).softmax(-1, Kind::Float);
        cls.extend(Vec::<f32>::try_from(t).unwrap());
    }
    let mut pred = Vec::with_capacity(100 * 48);
    for q in 0..100 {
        for y in 0..6 {
            for x in 0..8 {
                let m =
                    (6.0 * (0.37 * q as f64 + 0.9 * y as f64 + 1.3 * x as f64).sin() - 3.0) as f32;
                pred.push((1.0 / (1.0 + (-(m as f64)).exp())) as f32);
            }
        }
    }
    (cls, Tensor::from_slice(&pred).view([100, 6, 8]))
}

const GOLDEN: [[f32; 8]; 6] = [
    [
        0.000405, 0.235263, 0.379893, 0.106495, 0.032485, 0.001184, 0.317339, 0.378892,
    ],
    [
        0.054638, 0.38038, 0.294594, 0.054938, 0.000188, 0.141299, 0.379611, 0.198261,
    ],
    [
        0.364251, 0.367266, 0.18019, 0.000062, 0.020169, 0.376712, 0.341369, 0.089702,
    ],
    [
        0.38008, 0.067839, 0.032329, 0.002033, 0.339996, 0.376488, 0.317959, 0.000063,
    ],
    [
        0.255217, 0.044705, 0.000281, 0.193207, 0.37888, 0.526866, 0.033903, 0.000771,
    ],
    [
        0.129655, 0.000076, 0.035243, 0.37927, 0.319588, 0.06752, 0.00014, 0.102165,
    ],
];

#[test]
fn golden_scoring_vector() {
    let (cls, pred) = golden_inputs();
    let method = Method::default();
    let p = plan(&cls, 20, &method);
    let rejected: Vec<i64> = p.reject.iter().map(|r| r.0).collect();
    assert_eq!(rejected, vec![3, 19, 24, 31, 49, 70, 83]);
    // Confidences given to 5 decimals (off by up to 5e-6).
    assert!((p.reject[0].1 - 0.99367).abs() < 1e-5);
    assert!((p.reject[6].1 - 0.99914).abs() < 1e-5);
    let masks = pred.index_select(0, &Tensor::from_slice(&p.needed()));
    let out = Vec::<f32>::try_from(score(&p, &masks, &method).flatten(0, -1)).unwrap();
    let mut sum = 0f64;
    for (i, v) in out.iter().enumerate() {
        let g = GOLDEN[i / 8][i % 8];
        // GOLDEN holds 6 decimals (off by up to 5e-7); the other 5e-7 is 8 float32 roundings of
        // the values (≤ 0.53) for other kernels' softmax and products. Measured: 5.4e-7 with
        // libtorch's scalar and AVX2 kernels.
        assert!((v - g).abs() <= 1e-6, "pixel {i}: {v} vs {g}");
        sum += *v as f64;
    }
    // 48 values, each within 1e-6 of its golden value. Measured: 4.2e-7 (scalar kernels).
    assert!((sum - 8.679863697019755).abs() < 1e-5, "sum {sum}");
}

#[test]
fn golden_anomaly_term_row0() {
    let (cls, pred) = golden_inputs();
    let method = Method::default();
    let mut p = plan(&cls, 20, &method);
    // Only the anomaly term: λ = 0 gives soft2 directly.
    p.reject.clear();
    p.border.clear();
    p.ground.clear();
    let m = Method {
        lambda: 0.0,
        ..method
    };
    let masks = pred.index_select(0, &Tensor::from_slice(&p.needed()));
    let out = Vec::<f32>::try_from(score(&p, &masks, &m).flatten(0, -1)).unwrap();
    let want = [
        0.001014, 0.588157, 0.949732, 0.266238, 0.000362, 0.002959, 0.793346, 0.94723,
    ];
    for x in 0..8 {
        // 6 decimals (off by up to 5e-7) plus 4 float32 roundings of the values (≤ 0.95).
        // Measured: 4.7e-7 with libtorch's scalar and AVX2 kernels.
        assert!(
            (out[x] - want[x]).abs() <= 1e-6,
            "x={x}: {} vs {}",
            out[x],
            want[x]
        );
    }
}

/// The pairwise loop exactly as the reference writes it, for comparison with the counting form.
fn pairwise_border(pred: &[Vec<f32>], border: &[usize], thr: f32) -> Vec<bool> {
    let n = pred[0].len();
    let mut zero = vec![false; n];
    for (a, &i) in border.iter().enumerate() {
        for &j in &border[a + 1..] {
            for x in 0..n {
                if pred[i][x] > thr && pred[j][x] > thr {
                    zero[x] = true;
                }
            }
        }
    }
    zero
}

#[test]
fn counting_form_equals_pairwise_loop() {
    let (cls, pred) = golden_inputs();
    let method = Method {
        lambda: 1.0,
        border_threshold: 0.8,
        ..Method::default()
    };
    let mut p = plan(&cls, 20, &method);
    p.reject.clear();
    p.ground.clear();
    p.border = (0..6).collect(); // overlapping masks
    let masks = pred.index_select(0, &Tensor::from_slice(&p.needed()));
    let out = Vec::<f32>::try_from(score(&p, &masks, &method).flatten(0, -1)).unwrap();
    let rows: Vec<Vec<f32>> = (0..100)
        .map(|q| Vec::<f32>::try_from(pred.get(q).flatten(0, -1)).unwrap())
        .collect();
    let zero = pairwise_border(&rows, &(0..6).collect::<Vec<_>>(), 0.8f32);
    for x in 0..48 {
        assert_eq!(out[x] == 0.0, zero[x], "pixel {x}");
    }
    assert!(zero.iter().any(|z| *z) && zero.iter().any(|z| !*z));
}

#[test]
fn host_pass_is_bit_identical_to_tensor_ops() {
    let (cls, pred) = golden_inputs();
    for method in [
        Method::default(),
        Method {
            border_threshold: 0.8,
            lambda: 0.7,
            ..Method::default()
        },
    ] {
        let mut p = plan(&cls, 20, &method);
        p.border = (0..30).step_by(3).collect();
        let masks = pred.index_select(0, &Tensor::from_slice(&p.needed()));
        let a = Vec::<f32>::try_from(score(&p, &masks, &method).flatten(0, -1)).unwrap();
        let b = score_map(&p, &masks, &method);
        assert_eq!(a, b);
    }
}

/// Mask logits with blob structure: each query is a smooth bump plus noise, so masks overlap
/// and cross the border threshold along curves.
fn blob_logits(q: usize, h: usize, w: usize, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    let ys = Tensor::arange(h as i64, (Kind::Float, tch::Device::Cpu)).view([1, h as i64, 1]);
    let xs = Tensor::arange(w as i64, (Kind::Float, tch::Device::Cpu)).view([1, 1, w as i64]);
    let cy = Tensor::rand([q as i64, 1, 1], (Kind::Float, tch::Device::Cpu)) * h as f64;
    let cx = Tensor::rand([q as i64, 1, 1], (Kind::Float, tch::Device::Cpu)) * w as f64;
    let r = Tensor::rand([q as i64, 1, 1], (Kind::Float, tch::Device::Cpu))
        * (h.min(w) as f64 / 2.0)
        + 1.0;
    let d = ((ys - cy).square() + (xs - cx).square()).sqrt() / r;
    (d.neg() + 1.0) * 8.0
        + Tensor::randn(
            [q as i64, h as i64, w as i64],
            (Kind::Float, tch::Device::Cpu),
        ) * 0.5
}

#[test]
fn fused_pass_from_logits_matches_upsample_then_rule() {
    let classes = 20;
    for (h, w, hp, wp, seed) in [
        (16, 32, 64, 128, 1),
        (7, 13, 29, 50, 2),
        (12, 12, 12, 12, 3),
        (9, 20, 40, 37, 4),
    ] {
        let q = 100;
        let logits = blob_logits(q, h, w, seed);
        // Class probabilities: a third void, the rest split between confident and unsure.
        let mut cls = vec![0.01f32; q * classes];
        for i in 0..q {
            let c = if i % 3 == 0 {
                classes - 1
            } else {
                i % (classes - 1)
            };
            cls[i * classes + c] = if i % 2 == 0 { 0.9 } else { 0.6 };
        }
        for method in [
            Method::default(),
            Method {
                border_threshold: 0.5,
                lambda: 0.3,
                anomaly_queries: vec![0, 5, 99],
                ground_queries: vec![2, 3],
                ..Method::default()
            },
        ] {
            let p = plan(&cls, classes, &method);
            assert!(p.border.len() >= 2 && !p.reject.is_empty());
            let masks = needed_masks(&logits, &p.needed(), hp as i64, wp as i64);
            let want = score_map(&p, &masks, &method);
            let got = score_cpu(&p, &logits, (hp, wp), &method);
            assert_eq!(got.len(), want.len());
            let max = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(max <= 1e-6, "{h}x{w} -> {hp}x{wp}: max |diff| {max}");
            let lo = want.iter().copied().fold(f32::MAX, f32::min);
            let hi = want.iter().copied().fold(f32::MIN, f32::max);
            assert!(hi - lo > 0.1, "the map should not be flat: {lo}..{hi}");
        }
    }
}

/// The fused pass picks 8-wide AVX2 code where the CPU has it; the baseline x86-64 build gives
/// the same map bit for bit, so the Maskomaly map does not depend on the CPU.
#[test]
fn fused_pass_is_the_same_on_cpus_without_avx2() {
    let classes = 20;
    for (h, w, hp, wp, seed) in [(16, 32, 64, 128, 5), (9, 20, 40, 37, 6)] {
        let q = 100;
        let logits = blob_logits(q, h, w, seed);
        let cls: Vec<f32> = (0..q * classes)
            .map(|i| {
                if i % classes == (i / classes) % classes {
                    0.9
                } else {
                    0.005
                }
            })
            .collect();
        let method = Method {
            border_threshold: 0.5,
            lambda: 0.3,
            ..Method::default()
        };
        let p = plan(&cls, classes, &method);
        let sel = logits
            .index_select(0, &Tensor::from_slice(&p.needed()))
            .contiguous();
        let flat = Vec::<f32>::try_from(sel.flatten(0, -1)).unwrap();
        let native = score_from_logits(&p, &flat, (h, w), (hp, wp), &method);
        let baseline = fused::score_from_logits_baseline(&p, &flat, (h, w), (hp, wp), &method);
        assert!(native.iter().any(|&v| v > 0.1), "{h}x{w}: the map is empty");
        assert_eq!(
            native.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            baseline.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{h}x{w} -> {hp}x{wp}"
        );
    }
}

#[test]
fn row_sigmoid_is_within_two_ulp() {
    let xs: Vec<f32> = (-200_000..200_000)
        .map(|i| i as f32 * 5e-4)
        .chain([-120.0, -90.0, 90.0, 120.0])
        .collect();
    let mut out = vec![0f32; xs.len()];
    sigmoid_row(&xs, &mut out);
    for (&x, &p) in xs.iter().zip(&out) {
        let want = (1.0 / (1.0 + (-(x as f64)).exp())) as f32;
        let ulp = (want.to_bits() as i64 - p.to_bits() as i64).abs();
        assert!(
            ulp <= 2 || (p - want).abs() < 1e-37,
            "x = {x}: {p} vs {want}"
        );
    }
}

#[test]
fn masks_upsample_bilinear_half_pixel_then_sigmoid() {
    // Query 1 holds [[0, 1], [2, 3]]; ×2 with align_corners = false gives the half-pixel grid
    // 0, 0.25, 0.75, 1 along a row (edges clamped), then the sigmoid.
    let m = Tensor::from_slice(&[9f32, 9., 9., 9., 0., 1., 2., 3.]).view([2, 2, 2]);
    let up = needed_masks(&m, &[1], 4, 4);
    assert_eq!(up.size(), [1, 4, 4]);
    let want_logits: [[f64; 4]; 4] = [
        [0.0, 0.25, 0.75, 1.0],
        [0.5, 0.75, 1.25, 1.5],
        [1.5, 1.75, 2.25, 2.5],
        [2.0, 2.25, 2.75, 3.0],
    ];
    for (y, row) in want_logits.iter().enumerate() {
        for (x, &logit) in row.iter().enumerate() {
            let got = up.double_value(&[0, y as i64, x as i64]);
            let want = 1.0 / (1.0 + (-logit).exp());
            assert!((got - want).abs() < 1e-6, "({y},{x}): {got} vs {want}");
        }
    }
}

#[test]
fn class_probs_are_a_softmax_over_the_last_axis() {
    let l = Tensor::from_slice(&[0f32, 0., (3f32).ln(), 0.]).view([2, 2]);
    let p = class_probs(&l);
    assert_eq!(p.len(), 4);
    assert!((p[0] - 0.5).abs() < 1e-7 && (p[2] - 0.75).abs() < 1e-7);
}

#[test]
fn ties_pick_the_first_class() {
    assert_eq!(argmax(&[0.2, 0.4, 0.4]).0, 1);
}

#[test]
fn out_of_range_indices_are_reported() {
    let m = Method::default();
    let e = check_indices(&m, 50, 20).unwrap_err().to_string();
    assert!(e.contains("anomaly_queries") && e.contains("83"), "{e}");
    let e = check_indices(&m, 100, 19).unwrap_err().to_string();
    assert!(e.contains("void_class"), "{e}");
    assert!(check_indices(&m, 100, 20).is_ok());
}

#[test]
fn blend_weights_match_numpy() {
    let (a, b) = blend_weights(0.6);
    assert_eq!(a, 0.6f32);
    assert_eq!(b, 0.4f32);
}
