//! Scoring benchmark: the Maskomaly rule on 100 queries × 1024×2048 against the reference's numpy
//! formulation (`scripts/reference_scoring.py`, pairwise border loop) on identical inputs.
//!
//! `cargo run --release --example bench_scoring [-- --python python3 --out DIR]`
//! Prints a table and writes `DIR/scoring.json`. Inputs are synthetic with a fixed seed: ~20 non-void
//! queries with overlapping blob-shaped masks, the rest void.

mod common;

use maskomaly::job::Method;
use maskomaly::output::npy;
use maskomaly::scores::maskomaly as scoring;
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

const Q: i64 = 100;
const K: i64 = 20;
const H: i64 = 1024;
const W: i64 = 2048;

/// A small deterministic generator (64-bit LCG), so Rust and Python see the same numbers via files.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn inputs() -> (Tensor, Tensor) {
    let mut rng = Lcg(2023);
    let mut logits = vec![-3f32; (Q * K) as usize];
    let non_void: Vec<i64> = (0..Q)
        .filter(|q| q % 5 == 0 || *q == 19 || *q == 24)
        .collect();
    for q in 0..Q {
        let row = &mut logits[(q * K) as usize..((q + 1) * K) as usize];
        if non_void.contains(&q) {
            row[(q % 19) as usize] = 2.0 + 4.0 * rng.next() as f32;
        } else {
            row[(K - 1) as usize] = 1.0 + 4.0 * rng.next() as f32;
        }
    }
    let cls = Tensor::from_slice(&logits)
        .view([Q, K])
        .softmax(-1, Kind::Float);
    let ys = Tensor::arange(H, (Kind::Float, Device::Cpu)).view([1, H, 1]);
    let xs = Tensor::arange(W, (Kind::Float, Device::Cpu)).view([1, 1, W]);
    let mut params = Vec::new();
    for _ in 0..Q {
        let (cy, cx) = (rng.next() * H as f64, rng.next() * W as f64);
        let (ry, rx) = (100.0 + rng.next() * 400.0, 150.0 + rng.next() * 700.0);
        params.push([
            cy as f32,
            cx as f32,
            ry as f32,
            rx as f32,
            (2.0 + rng.next() * 6.0) as f32,
        ]);
    }
    let p = Tensor::from_slice(&params.concat()).view([Q, 5]);
    let col = |i: i64| p.select(1, i).view([Q, 1, 1]);
    let d = ((&ys - col(0)) / col(2)).square() + ((&xs - col(1)) / col(3)).square();
    let pred = ((d.neg() + 1.0) * col(4)).sigmoid(); // [Q, H, W]
    (cls, pred)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args = common::cli(include_str!("bench_scoring.rs"));
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let python = flag("--python").unwrap_or_else(|| "python3".into());
    let out = PathBuf::from(flag("--out").unwrap_or_else(|| "target/bench".into()));
    std::fs::create_dir_all(&out).expect("output folder");
    let _g = tch::no_grad_guard();
    let threads = tch::get_num_threads();

    let (cls_t, pred) = inputs();
    let cls = Vec::<f32>::try_from(cls_t.flatten(0, -1)).unwrap();
    let method = Method::default();

    let pred = pred.contiguous();
    let plane_len = (H * W) as usize;
    // SAFETY: `pred` is a contiguous float32 CPU tensor that outlives the slice.
    let all = unsafe {
        std::slice::from_raw_parts(pred.data_ptr() as *const f32, Q as usize * plane_len)
    };
    let mut times = Vec::new();
    let mut result = None;
    for _ in 0..5 {
        let t0 = Instant::now();
        let plan = scoring::plan(&cls, K as usize, &method);
        let plane = |q: i64| &all[q as usize * plane_len..(q as usize + 1) * plane_len];
        let s = scoring::score_host(&plan, plane, H as usize, W as usize, &method);
        times.push(t0.elapsed().as_secs_f64());
        result = Some(s);
    }
    let rust_s = median(times);
    let result = result.unwrap();
    let plan = scoring::plan(&cls, K as usize, &method);

    let cls_path = out.join("scoring_cls.npy");
    let pred_path = out.join("scoring_pred.npy");
    let ref_path = out.join("scoring_reference.npy");
    npy::write_f32(&cls_path, &cls, &[Q as usize, K as usize]).unwrap();
    let pred_v = Vec::<f32>::try_from(pred.flatten(0, -1)).unwrap();
    npy::write_f32(&pred_path, &pred_v, &[Q as usize, H as usize, W as usize]).unwrap();
    drop(pred_v);
    let status = std::process::Command::new(&python)
        .args(["scripts/reference_scoring.py"])
        .args([&cls_path, &pred_path, &ref_path])
        .output();
    let (numpy_s, max_diff) = match status {
        Ok(o) if o.status.success() => {
            let secs: f64 = String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .unwrap_or(f64::NAN);
            let reference = maskomaly::eval::predictions::read_npy(&ref_path)
                .unwrap()
                .scores;
            let md = reference
                .iter()
                .zip(&result)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            (secs, md)
        }
        Ok(o) => {
            eprintln!(
                "numpy reference failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            (f64::NAN, f32::NAN)
        }
        Err(e) => {
            eprintln!("cannot run {python}: {e}");
            (f64::NAN, f32::NAN)
        }
    };
    for p in [&cls_path, &pred_path, &ref_path] {
        let _ = std::fs::remove_file(p);
    }
    let ratio = numpy_s / rust_s;
    println!("Scoring: Maskomaly rule, {Q} queries x {H}x{W}, {} non-void ({} rejected), CPU, {threads} threads", plan.border.len(), plan.reject.len());
    println!("| implementation | seconds (median of 5 / 1) | speed-up |");
    println!("| --- | --- | --- |");
    println!("| numpy reference (pairwise loop) | {numpy_s:.3} | 1.0x |");
    println!("| maskomaly (fused pass, counting form) | {rust_s:.3} | {ratio:.1}x |");
    println!("max |difference| = {max_diff:.3e} (goal <= 1e-6)");
    let json = serde_json::json!({
        "benchmark": "scoring", "queries": Q, "height": H, "width": W, "threads": threads,
        "non_void": plan.border.len(), "numpy_seconds": numpy_s, "maskomaly_seconds": rust_s,
        "speedup": ratio, "max_abs_diff": max_diff,
    });
    std::fs::write(
        out.join("scoring.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}
