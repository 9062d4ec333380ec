//! Golden tests against `tests/fixtures/scores/synthetic.safetensors`, made by
//! `PYTHONPATH=/tmp/pyscores python3 scripts/make_score_fixtures.py tests/fixtures/scores`
//! (torch 2.11.0, torchvision 0.26.0, opencv-python-headless 4.7.0.68; see the script's header):
//! each score computed from the same outputs the way its official code does.

use super::*;
use crate::job::Method;
use std::collections::HashMap;

fn fixtures() -> HashMap<String, Tensor> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/scores/synthetic.safetensors");
    Tensor::read_safetensors(&p)
        .expect("fixture reads")
        .into_iter()
        .collect()
}

const CASES: [&str; 4] = ["landscape", "portrait", "identity", "void_only"];

/// The case's method: every score, the Maskomaly indices the fixture used.
fn method_for(t: &HashMap<String, Tensor>, case: &str) -> Method {
    let p = Vec::<i64>::try_from(&t[&format!("{case}.maskomaly_params")]).unwrap();
    Method {
        scores: ScoreKind::ALL.to_vec(),
        anomaly_queries: p[0..4].to_vec(),
        ground_queries: p[4..6].to_vec(),
        void_class: p[6],
        ..Method::default()
    }
}

fn sizes(t: &HashMap<String, Tensor>, case: &str) -> [usize; 6] {
    let s = Vec::<i64>::try_from(&t[&format!("{case}.sizes")]).unwrap();
    std::array::from_fn(|i| s[i] as usize)
}

fn run_case(t: &HashMap<String, Tensor>, case: &str, method: &Method) -> ItemScores {
    let s = sizes(t, case);
    let out = Outputs {
        pred_logits: &t[&format!("{case}.pred_logits")],
        pred_masks: &t[&format!("{case}.pred_masks")],
        padded: (s[4], s[5]),
        resized: (s[2], s[3]),
        original: (s[0], s[1]),
    };
    compute(method, &out, true).unwrap()
}

/// Compares a map with its fixture (made by torch on another CPU): [`crate::parity::score_map`].
fn fixture_parity(got: &[f32], want: &Tensor) -> crate::parity::Parity {
    let want = Vec::<f32>::try_from(want.flatten(0, -1)).unwrap();
    crate::parity::score_map(got, &want)
}

/// max |got − want| relative to the reference map's range; the range must not be 0.
fn rel_diff(got: &[f32], want: &Tensor) -> f64 {
    let want = Vec::<f32>::try_from(want.flatten(0, -1)).unwrap();
    assert_eq!(got.len(), want.len());
    let lo = want.iter().copied().fold(f32::MAX, f32::min) as f64;
    let hi = want.iter().copied().fold(f32::MIN, f32::max) as f64;
    assert!(hi - lo > 1e-3, "the reference map is flat: {lo}..{hi}");
    got.iter()
        .zip(&want)
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .fold(0.0, f64::max)
        / (hi - lo)
}

#[test]
fn every_score_matches_its_official_formula() {
    let _g = tch::no_grad_guard();
    let t = fixtures();
    for case in CASES {
        let method = method_for(&t, case);
        let got = run_case(&t, case, &method);
        let [h, w, ..] = sizes(&t, case);
        assert_eq!(got.classes, 7);
        assert_eq!(
            got.maps.iter().map(|m| m.0).collect::<Vec<_>>(),
            ScoreKind::ALL
        );
        for (kind, map) in &got.maps {
            assert_eq!(map.len(), h * w, "{case}/{kind}");
            let p = fixture_parity(map, &t[&format!("{case}.{kind}")]);
            assert!(p.ok(), "{case}/{kind}: {p}");
        }
    }
}

#[test]
fn rba_smoothing_is_torchvisions_gaussian_blur() {
    let _g = tch::no_grad_guard();
    let t = fixtures();
    for case in CASES {
        let mut method = method_for(&t, case);
        method.scores = vec![ScoreKind::Rba];
        method.rba.smoothing = true;
        let got = run_case(&t, case, &method);
        let p = fixture_parity(&got.maps[0].1, &t[&format!("{case}.rba_smoothed")]);
        assert!(p.ok(), "{case}: {p}");
        let plain = rel_diff(&got.maps[0].1, &t[&format!("{case}.rba")]);
        assert!(
            plain > 1e-3,
            "{case}: smoothing changed nothing ({plain:e})"
        );
    }
}

/// The edge cases of the fixture inputs, through the scores: pixels that no query claims (where
/// Σ_k S'_k = 0), queries that all predict void, and the padding of the network input.
#[test]
fn edge_cases_give_the_defined_scores() {
    let _g = tch::no_grad_guard();
    let t = fixtures();
    let close = |a: f32, b: f32| (a - b).abs() <= 4.0 * f32::EPSILON * b.abs().max(1.0);
    // Σ_k S'_k = 0 (the reference's entropy is ln K there, and only there: class 0 is never
    // predicted, so elsewhere it is at most ln (K − 1)): entropy ln K (K = 7), msp 1, rba 0,
    // energy −ln K, eam 1.
    let ln_k = (7f64).ln() as f32;
    for case in ["landscape", "identity"] {
        let reference = Vec::<f32>::try_from(t[&format!("{case}.entropy")].flatten(0, -1)).unwrap();
        let zero: Vec<usize> = (0..reference.len())
            .filter(|&i| reference[i] == ln_k)
            .collect();
        assert!(zero.len() > 50, "{case}: {} empty pixels", zero.len());
        let got = run_case(&t, case, &method_for(&t, case));
        for (kind, want) in [
            (ScoreKind::Entropy, ln_k),
            (ScoreKind::Msp, 1.0),
            (ScoreKind::Rba, 0.0),
            (ScoreKind::Energy, -ln_k),
            (ScoreKind::Eam, 1.0),
        ] {
            let map = &got.maps.iter().find(|m| m.0 == kind).unwrap().1;
            for &i in &zero {
                assert!(close(map[i], want), "{case}/{kind} pixel {i}: {}", map[i]);
            }
        }
    }

    // Void-only: every query's argmax is void, so S'_k ≤ Σ_q max_k p̃_q,k =: B everywhere, and
    // msp and eam are at least 1 − B; every map is finite.
    let logits = &t["void_only.pred_logits"];
    let p = logits.softmax(-1, Kind::Float);
    assert!(Vec::<i64>::try_from(&p.argmax(1, false))
        .unwrap()
        .iter()
        .all(|&c| c == 7));
    let bound = p
        .narrow(1, 0, 7)
        .max_dim(1, false)
        .0
        .sum(Kind::Float)
        .double_value(&[]) as f32;
    assert!(bound < 0.5, "void-only inputs with inlier mass {bound}");
    let got = run_case(&t, "void_only", &method_for(&t, "void_only"));
    for (kind, map) in &got.maps {
        assert!(map.iter().all(|v| v.is_finite()), "void_only/{kind}");
        if matches!(kind, ScoreKind::Msp | ScoreKind::Eam) {
            let low = map.iter().copied().fold(f32::MAX, f32::min);
            assert!(
                low >= 1.0 - bound - 1e-6,
                "void_only/{kind}: {low} < 1 − {bound}"
            );
        }
    }

    // Padding (landscape: columns on the right; portrait: rows at the bottom): changing the mask
    // logits that only reach padded pixels (bilinear ×4, half-pixel centres) changes no score
    // computed on the cropped map, and changes Maskomaly, which resizes the padded map as its
    // official code does.
    for (case, dim) in [("landscape", 2), ("portrait", 1)] {
        let [_, _, rh, rw, hp, wp] = sizes(&t, case);
        assert!((rh, rw) != (hp, wp), "{case} is not padded");
        let resized = if dim == 1 { rh } else { rw };
        let cells = t[&format!("{case}.pred_masks")].size()[dim] as usize;
        // The last cell a kept pixel reads: floor((resized − 0.5) / 4 − 0.5) + 1.
        let first_padding_only = ((resized as f64 - 0.5) / 4.0 - 0.5).floor() as usize + 2;
        assert!(first_padding_only < cells, "{case}: no padding-only cells");
        let mut changed: HashMap<String, Tensor> = t
            .iter()
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect();
        let masks = t[&format!("{case}.pred_masks")].copy();
        let _ = masks
            .narrow(
                dim as i64,
                first_padding_only as i64,
                (cells - first_padding_only) as i64,
            )
            .neg_();
        changed.insert(format!("{case}.pred_masks"), masks);
        let method = method_for(&t, case);
        let (a, b) = (
            run_case(&t, case, &method),
            run_case(&changed, case, &method),
        );
        for ((kind, x), (_, y)) in a.maps.iter().zip(&b.maps) {
            if *kind == ScoreKind::Maskomaly {
                assert!(x != y, "{case}: the padding does not reach Maskomaly");
            } else {
                assert!(x == y, "{case}/{kind}: the padding changed the score");
            }
        }
    }
}

#[test]
fn the_shared_pass_gives_each_score_what_it_gives_alone() {
    let _g = tch::no_grad_guard();
    let t = fixtures();
    for case in ["landscape", "identity"] {
        let all = run_case(&t, case, &method_for(&t, case));
        for (kind, map) in &all.maps {
            let mut method = method_for(&t, case);
            method.scores = vec![*kind];
            let alone = run_case(&t, case, &method);
            // EAM's row shares the band product with S' or not, so libtorch may split the
            // Q-sum into other blocks: a few roundings of the magnitude (measured: up to 1.9
            // with the scalar and AVX2 kernels), nothing from the range.
            let p = crate::parity::compare(map, &alone.maps[0].1, 8.0, 0.0);
            assert!(p.ok(), "{case}/{kind}: {p}");
        }
    }
}

#[test]
fn segmentation_is_the_argmax_of_the_shared_semantic_map() {
    let _g = tch::no_grad_guard();
    let t = fixtures();
    let case = "portrait";
    let [h, w, rh, rw, hp, wp] = sizes(&t, case);
    let got = run_case(&t, case, &method_for(&t, case));
    let seg = got.segmentation.unwrap();
    let logits = &t[&format!("{case}.pred_logits")];
    let masks = &t[&format!("{case}.pred_masks")];
    let direct = semantic::semantic_segmentation(&Outputs {
        pred_logits: logits,
        pred_masks: masks,
        padded: (hp, wp),
        resized: (rh, rw),
        original: (h, w),
    });
    assert_eq!(seg, direct);
    // Class 0 never wins (its probability is 0), several others do.
    assert!(!seg.contains(&0));
    let mut seen = seg.clone();
    seen.sort_unstable();
    seen.dedup();
    assert!(seen.len() >= 3, "{seen:?}");
}

#[test]
fn display_ranges_are_fixed_and_monotone() {
    let k = 19;
    // One fully claimed pixel maps to 0, an unclaimed one to 1, for every score.
    let claimed = |kind: ScoreKind| -> f32 {
        match kind {
            ScoreKind::Rba => -(1f32.tanh()),
            ScoreKind::Energy => -((1f32).exp() + (k - 1) as f32).ln(),
            _ => 0.0,
        }
    };
    let unclaimed = |kind: ScoreKind| -> f32 {
        match kind {
            ScoreKind::Energy => -(k as f32).ln(),
            ScoreKind::Entropy => (k as f32).ln(),
            ScoreKind::Rba => 0.0,
            _ => 1.0,
        }
    };
    for kind in ScoreKind::ALL {
        let v = [claimed(kind), unclaimed(kind), -50.0, 50.0];
        let d = display(kind, k, &v);
        // The float32 inputs carry rounding that the energy range (0.13 wide) magnifies 7.5×.
        assert!(d[0].abs() < 1e-5, "{kind}: {}", d[0]);
        assert!((d[1] - 1.0).abs() < 1e-5, "{kind}: {}", d[1]);
        assert_eq!((d[2], d[3]), (0.0, 1.0), "{kind}: clamped");
        let xs: Vec<f32> = (0..100).map(|i| claimed(kind) + i as f32 * 0.01).collect();
        let ys = display(kind, k, &xs);
        assert!(ys.windows(2).all(|p| p[0] <= p[1]), "{kind} not monotone");
    }
    // Maskomaly maps are written as they are.
    assert!(matches!(
        display(ScoreKind::Maskomaly, k, &[0.3]),
        Cow::Borrowed(_)
    ));
}

#[test]
fn bad_shapes_and_tiny_images_are_errors() {
    let _g = tch::no_grad_guard();
    let logits = Tensor::zeros([4, 3], (Kind::Float, Device::Cpu));
    let masks = Tensor::zeros([5, 2, 2], (Kind::Float, Device::Cpu));
    let out = Outputs {
        pred_logits: &logits,
        pred_masks: &masks,
        padded: (8, 8),
        resized: (8, 8),
        original: (8, 8),
    };
    let method = Method {
        scores: vec![ScoreKind::Rba],
        ..Method::default()
    };
    let e = compute(&method, &out, false).err().unwrap().to_string();
    assert!(e.contains("[4, 3]") && e.contains("[5, 2, 2]"), "{e}");
    let masks = Tensor::zeros([4, 1, 1], (Kind::Float, Device::Cpu));
    let out = Outputs {
        pred_masks: &masks,
        padded: (4, 4),
        resized: (3, 4),
        original: (3, 4),
        ..out
    };
    let mut method = method;
    method.rba.smoothing = true;
    let e = compute(&method, &out, false).err().unwrap().to_string();
    assert!(e.contains("4×3") && e.contains("smoothing"), "{e}");
    method.rba.smoothing = false;
    assert_eq!(compute(&method, &out, false).unwrap().maps[0].1.len(), 12);
}

#[test]
fn semantic_segmentation_matches_the_einsum_definition() {
    // 3 queries, 2 classes + void, 2×2 mask logits, padded 4×4 with the image in the top-left 4×3.
    let logits = Tensor::from_slice(&[3f32, 0., 0., 0., 3., 0., 0., 0., 5.]).view([3, 3]);
    let masks =
        Tensor::from_slice(&[4f32, -4., 4., -4., -4., 4., -4., 4., 0., 0., 0., 0.]).view([3, 2, 2]);
    let seg = semantic::semantic_segmentation(&Outputs {
        pred_logits: &logits,
        pred_masks: &masks,
        padded: (4, 4),
        resized: (4, 3),
        original: (4, 3),
    });
    // Direct evaluation of the definition.
    let cls = logits.softmax(-1, Kind::Float).narrow(1, 0, 2);
    let up = masks
        .unsqueeze(0)
        .upsample_bilinear2d([4, 4], false, None, None)
        .squeeze_dim(0)
        .sigmoid();
    let sem = Tensor::einsum("qc,qhw->chw", &[cls, up], None::<i64>).narrow(2, 0, 3);
    let want = Vec::<i64>::try_from(sem.argmax(0, false).flatten(0, -1)).unwrap();
    assert_eq!(seg.iter().map(|&v| v as i64).collect::<Vec<_>>(), want);
    assert!(seg.contains(&0) && seg.contains(&1));
}

mod parity_tolerance {
    use crate::parity::{compare, score_map, EPS};

    /// Values near 3 with a range of 0.058 (the tiny model's entropy map), moved by 4 ulps (what
    /// AVX-512 kernels gave): within the score tolerance, beyond 1e-5 of the range alone; an
    /// error of 1e-4 is not within it.
    #[test]
    fn a_few_roundings_of_values_far_from_zero_are_allowed() {
        let want: Vec<f32> = (0..100).map(|i| 2.75 + 0.058 * i as f32 / 99.0).collect();
        let moved: Vec<f32> = want
            .iter()
            .map(|&v| f32::from_bits(v.to_bits() + 4))
            .collect();
        let p = score_map(&moved, &want);
        assert!(p.ok(), "{p}");
        assert!(p.max_diff > 1e-5 * p.range, "{p}");
        let off: Vec<f32> = want.iter().map(|&v| v + 1e-4).collect();
        assert!(!score_map(&off, &want).ok());
    }

    #[test]
    fn nan_and_length_mismatch_fail() {
        let want = [0.0f32, 1.0];
        assert!(!score_map(&[0.0, f32::NAN], &want).ok());
        assert!(!score_map(&[0.0], &want).ok());
        assert!(compare(&want, &want, 0.0, 0.0).ok());
    }

    /// Small values still get the roundings of 1 (MSP = 1 − max S' is near 0.24 where S' is
    /// near 0.76).
    #[test]
    fn magnitude_is_at_least_one() {
        let want = [0.1f32, 0.2];
        assert_eq!(compare(&want, &want, 1.0, 0.0).tolerance, EPS);
    }
}
