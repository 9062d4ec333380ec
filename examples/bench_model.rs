//! Model benchmark: the native Mask2Former forward against Hugging Face transformers (Python, CPU)
//! on the same configuration, weights, input and thread count (`scripts/bench_model.py` builds the
//! model and saves it; this loads that folder as an `hf` checkpoint).
//!
//! `cargo run --release --example bench_model -- [--python python3] [--height 256 --width 512]
//!  [--threads 2] [--reps 3] [--dir target/bench/model] [--out target/bench]`

mod common;
use common::arg;

use maskomaly::job::{CheckpointFormat, DeviceChoice, Job};
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let python = arg(&args, "--python", "python3");
    let (h, w): (i64, i64) = (
        arg(&args, "--height", "256").parse().unwrap(),
        arg(&args, "--width", "512").parse().unwrap(),
    );
    let threads: i32 = arg(&args, "--threads", "2").parse().unwrap();
    let reps: usize = arg(&args, "--reps", "3").parse().unwrap();
    let dir = PathBuf::from(arg(&args, "--dir", "target/bench/model"));
    let out = PathBuf::from(arg(&args, "--out", "target/bench"));
    std::fs::create_dir_all(&out).unwrap();

    let py = std::process::Command::new(&python)
        .args([
            "scripts/bench_model.py",
            "--height",
            &h.to_string(),
            "--width",
            &w.to_string(),
        ])
        .args([
            "--threads",
            &threads.to_string(),
            "--reps",
            &reps.to_string(),
            "--dir",
        ])
        .arg(&dir)
        .status()
        .expect("python runs");
    assert!(py.success(), "scripts/bench_model.py failed");
    let hf_s: f64 = std::fs::read_to_string(dir.join("hf_seconds.txt"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    tch::set_num_threads(threads);
    let mut job = Job::default();
    job.model.preset = None; // architecture from config.json
    job.checkpoint.format = CheckpointFormat::Hf;
    job.checkpoint.path = dir.clone();
    job.checkpoint.url = None;
    job.runtime.device = DeviceChoice::Cpu;
    let model = maskomaly::model::load(&job, Device::Cpu).expect("native model loads");
    let c = Tensor::arange(3, (Kind::Float, Device::Cpu)).view([3, 1, 1]);
    let y = Tensor::arange(h, (Kind::Float, Device::Cpu)).view([1, h, 1]);
    let x = Tensor::arange(w, (Kind::Float, Device::Cpu)).view([1, 1, w]);
    // Same formula as the Python side, computed in float64 then rounded to float32.
    let inp = ((c * 7.0 + y * 3.0 + x).to_kind(Kind::Double) * 0.01)
        .sin()
        .to_kind(Kind::Float)
        .unsqueeze(0);
    let _g = tch::no_grad_guard();
    let mut o = model.forward(&inp).unwrap();
    let mut times = Vec::new();
    for _ in 0..reps {
        let t0 = Instant::now();
        o = model.forward(&inp).unwrap();
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let ours = times[times.len() / 2];
    let reference = Tensor::read_npz(dir.join("hf_out.npz")).unwrap();
    let get = |n: &str| {
        reference
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, t)| t.shallow_clone())
            .unwrap()
    };
    let rel = |a: &Tensor, b: &Tensor| {
        (a - b).abs().max().double_value(&[]) / b.abs().max().double_value(&[])
    };
    let rl = rel(&o.pred_logits.get(0), &get("pred_logits"));
    let rm = rel(&o.pred_masks.get(0), &get("pred_masks"));
    println!("Model: Mask2Former Swin-L (100 queries, 19 classes, random weights), input {h}x{w}, CPU, {threads} threads");
    println!("| implementation | seconds (median of {reps}) | speed-up |");
    println!("| --- | --- | --- |");
    println!("| HF transformers (Python) | {hf_s:.3} | 1.00x |");
    println!(
        "| maskomaly native (tch) | {ours:.3} | {:.2}x |",
        hf_s / ours
    );
    println!("max |diff| / max |ref|: pred_logits {rl:.2e}, pred_masks {rm:.2e}");
    let json = serde_json::json!({"benchmark": "model", "height": h, "width": w, "threads": threads,
        "hf_seconds": hf_s, "native_seconds": ours, "speedup": hf_s / ours,
        "rel_err_pred_logits": rl, "rel_err_pred_masks": rm});
    std::fs::write(
        out.join("model.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}
