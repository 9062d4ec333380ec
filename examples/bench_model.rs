//! Model benchmark: the native Mask2Former forward, float32 and mixed bfloat16, against Hugging Face
//! transformers (Python, CPU) in float32 and under `torch.autocast` bfloat16, on the same
//! configuration, weights, input and thread count, side by side in one run, with the 2048² matmul
//! peak of both dtypes measured in the same run (`scripts/bench_model.py` builds the model and
//! saves it; this loads that folder as an `hf` checkpoint).
//!
//! `cargo run --release --example bench_model -- [--python python3] [--sizes 512x1024,1024x2048]
//!  [--threads 2] [--reps 3] [--hf-limit 900] [--dir target/bench/model] [--out target/bench]`
//!
//! `--hf-limit`: seconds one Python mode may take at one size (warm-up and timed passes); a mode
//! past it is stopped and reported as at least that time per forward.
//!
//! `--native-only`: no Python. The Swin-L preset with random weights, native fp32 with the shape
//! caches (window layouts, shift masks, sampling constants kept per input shape) against the same
//! forward rebuilding them on the host each time, alternating forward by forward (the order swapped
//! every repetition) so that a changing machine load falls on both; wall seconds and the process's
//! CPU seconds (user + system, from /proc/self/stat) per forward; the outputs of the two are checked
//! bit for bit. Also times the rebuilding alone (what the caches save per forward): every stage's
//! window layouts and shift mask, and the pixel decoder's encoder constants, 10 times.

mod common;
use common::arg;

use maskomaly::job::{CheckpointFormat, DeviceChoice, Job, Precision};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};

/// GFLOP/s of a `n × n` matmul in `kind` (median of `reps` after one warm-up).
fn matmul_gflops(kind: Kind, n: i64, reps: usize) -> f64 {
    let a = Tensor::randn([n, n], (Kind::Float, Device::Cpu)).to_kind(kind);
    let b = Tensor::randn([n, n], (Kind::Float, Device::Cpu)).to_kind(kind);
    let _ = a.matmul(&b);
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            let _ = a.matmul(&b);
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    2.0 * (n as f64).powi(3) / t[t.len() / 2] / 1e9
}

/// Runs one Python mode with a wall-clock limit; its JSON, or `None` when stopped at the limit.
#[allow(clippy::too_many_arguments)]
fn python(
    py: &str,
    mode: &str,
    h: i64,
    w: i64,
    threads: i32,
    reps: usize,
    dir: &Path,
    limit: f64,
) -> Option<serde_json::Value> {
    let mut child = std::process::Command::new(py)
        .args(["scripts/bench_model.py", "--mode", mode])
        .args(["--height", &h.to_string(), "--width", &w.to_string()])
        .args([
            "--threads",
            &threads.to_string(),
            "--reps",
            &reps.to_string(),
        ])
        .arg("--dir")
        .arg(dir)
        .spawn()
        .expect("python runs");
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("python waits") {
            assert!(
                status.success(),
                "scripts/bench_model.py --mode {mode} failed"
            );
            let text = std::fs::read_to_string(dir.join(format!("hf_{mode}.json"))).unwrap();
            return Some(serde_json::from_str(&text).unwrap());
        }
        if t0.elapsed().as_secs_f64() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The deterministic input of `scripts/bench_model.py`: sin(0.01 (7c + 3y + x)), computed in
/// float64 then rounded to float32.
fn input(h: i64, w: i64) -> Tensor {
    let c = Tensor::arange(3, (Kind::Float, Device::Cpu)).view([3, 1, 1]);
    let y = Tensor::arange(h, (Kind::Float, Device::Cpu)).view([1, h, 1]);
    let x = Tensor::arange(w, (Kind::Float, Device::Cpu)).view([1, 1, w]);
    ((c * 7.0 + y * 3.0 + x).to_kind(Kind::Double) * 0.01)
        .sin()
        .to_kind(Kind::Float)
        .unsqueeze(0)
}

/// Median seconds of `reps` forwards after one warm-up, and the last outputs.
fn time_native(
    m: &dyn maskomaly::model::Backend,
    x: &Tensor,
    reps: usize,
) -> (f64, maskomaly::model::RawOutput) {
    let mut o = m.forward(x).unwrap();
    let mut t = Vec::new();
    for _ in 0..reps {
        let t0 = Instant::now();
        o = m.forward(x).unwrap();
        t.push(t0.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], o)
}

/// max |a − b| / max |b|.
fn rel(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[]) / b.abs().max().double_value(&[])
}

fn npz(path: &Path, name: &str) -> Tensor {
    Tensor::read_npz(path)
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, t)| t)
        .unwrap()
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat (clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// Milliseconds to build the shape-only tensors of one `h × w` forward (mean of 10), without
/// the network.
fn rebuild_ms(preset: &str, h: i64, w: i64) -> f64 {
    use maskomaly::model::{config::Config, network::pixel_decoder::MSDeformAttnPixelDecoder};
    let cfg = Config::preset(preset).expect("preset");
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let swin = maskomaly::model::network::swin::SwinTransformer::new(vs.root() / "backbone", &cfg);
    let pd = MSDeformAttnPixelDecoder::new(vs.root() / "pixel_decoder", &cfg);
    // Patch grid (patch 4, padded up) and the three encoder levels (strides 32, 16, 8).
    let (gh, gw) = ((h + 3) / 4, (w + 3) / 4);
    let half = |(a, b): (i64, i64)| ((a + 1) / 2, (b + 1) / 2);
    let s8 = half(((gh), (gw)));
    let s16 = half(s8);
    let s32 = half(s16);
    let t0 = Instant::now();
    for _ in 0..10 {
        let _ = swin.build_layouts(1, gh, gw, Kind::Float, Device::Cpu);
        let _ = pd.build_constants(1, &[s32, s16, s8], Kind::Float, Device::Cpu);
    }
    t0.elapsed().as_secs_f64() * 1e3 / 10.0
}

/// `--native-only`: median seconds with and without the shape caches, alternating.
fn native_only(sizes: &[(i64, i64)], threads: i32, reps: usize, out: &Path) {
    use maskomaly::model::network::shape_cache::set_enabled;
    let preset = "mask2former_swin_large_cityscapes_semantic";
    let mut job = Job::default();
    job.model.preset = Some(preset.into());
    job.checkpoint.format = CheckpointFormat::Random;
    job.checkpoint.url = None;
    job.runtime.device = DeviceChoice::Cpu;
    job.runtime.precision = Precision::Fp32;
    let m = maskomaly::model::load(&job, Device::Cpu).expect("native model builds");
    let mut rows = Vec::new();
    for &(h, w) in sizes {
        let x = input(h, w);
        let timed = |cached: bool| {
            set_enabled(cached);
            let (t0, c0) = (Instant::now(), cpu_seconds());
            let o = m.forward(&x).unwrap();
            (t0.elapsed().as_secs_f64(), cpu_seconds() - c0, o)
        };
        // Warm-up of both (the first cached forward fills the caches).
        let _ = timed(false);
        let _ = timed(true);
        let (mut on, mut off, mut on_cpu, mut off_cpu) = (vec![], vec![], vec![], vec![]);
        let mut identical = true;
        for r in 0..reps {
            let order = if r % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            let mut outs = Vec::new();
            for cached in order {
                let (s, c, o) = timed(cached);
                if cached {
                    on.push(s);
                    on_cpu.push(c);
                } else {
                    off.push(s);
                    off_cpu.push(c);
                }
                outs.push(o);
            }
            identical &= outs[0].pred_logits.equal(&outs[1].pred_logits)
                && outs[0].pred_masks.equal(&outs[1].pred_masks);
        }
        set_enabled(true);
        let median = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (s_off, s_on) = (median(&off), median(&on));
        let (c_off, c_on) = (median(&off_cpu), median(&on_cpu));
        println!(
            "Swin-L random weights, {h}x{w}, CPU, {threads} threads, fp32, median of {reps}: \
             rebuilt per forward {s_off:.3} s ({c_off:.2} CPU s), cached {s_on:.3} s ({c_on:.2} CPU s); \
             wall {:.3}×, CPU {:.3}×; outputs bit-identical: {identical}",
            s_off / s_on,
            c_off / c_on
        );
        let rebuild_ms = rebuild_ms(preset, h, w);
        println!("rebuilding the shape-only tensors alone: {rebuild_ms:.2} ms per forward");
        rows.push(json!({"height": h, "width": w, "rebuilt_seconds": s_off, "cached_seconds": s_on,
            "rebuild_only_ms": rebuild_ms,
            "rebuilt_cpu_seconds": c_off, "cached_cpu_seconds": c_on,
            "rebuilt_all": off, "cached_all": on, "rebuilt_cpu_all": off_cpu, "cached_cpu_all": on_cpu,
            "bit_identical": identical}));
    }
    let json = json!({"benchmark": "model-native-shape-cache", "threads": threads, "reps": reps,
        "sizes": rows});
    std::fs::write(
        out.join("model-native.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}

fn main() {
    // The binary's allocator settings, so that the native rows time what `maskomaly run` runs.
    maskomaly::tune_allocator();
    let args = common::cli(include_str!("bench_model.rs"));
    let py = arg(&args, "--python", "python3");
    let sizes: Vec<(i64, i64)> = arg(&args, "--sizes", "512x1024,1024x2048")
        .split(',')
        .map(|s| {
            let (h, w) = s.split_once('x').expect("--sizes takes HxW,HxW");
            (h.parse().unwrap(), w.parse().unwrap())
        })
        .collect();
    let threads: i32 = arg(&args, "--threads", "2").parse().unwrap();
    let reps: usize = arg(&args, "--reps", "3").parse().unwrap();
    let limit: f64 = arg(&args, "--hf-limit", "900").parse().unwrap();
    let dir = PathBuf::from(arg(&args, "--dir", "target/bench/model"));
    let out = PathBuf::from(arg(&args, "--out", "target/bench"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    tch::set_num_threads(threads);
    let _g = tch::no_grad_guard();
    if args.iter().any(|a| a == "--native-only") {
        native_only(&sizes, threads, reps, &out);
        return;
    }

    let peak32 = matmul_gflops(Kind::Float, 2048, 5);
    let peak16 = matmul_gflops(Kind::BFloat16, 512, 3);
    let fast = maskomaly::model::precision::cpu_has_fast_kernels(Kind::BFloat16);
    println!(
        "matmul peak, {threads} threads: float32 2048² {peak32:.1} GFLOP/s; bfloat16 512² {peak16:.2} GFLOP/s; bfloat16 matrix instructions: {}",
        if fast { "yes" } else { "no (bf16 runs rounded in float32 kernels)" }
    );
    let mut rows = Vec::new();
    for &(h, w) in &sizes {
        let sub = dir.join(format!("{h}x{w}"));
        std::fs::create_dir_all(&sub).unwrap();
        // Python first: it writes the weights the native side loads.
        let hf32 = python(&py, "fp32", h, w, threads, reps, &sub, limit * 4.0)
            .expect("transformers fp32 finishes");
        let hf16 = python(&py, "autocast-bf16", h, w, threads, reps, &sub, limit);
        let flops = hf32["flops"].as_f64().unwrap();

        let mut job = Job::default();
        job.model.preset = None; // architecture from config.json
        job.checkpoint.format = CheckpointFormat::Hf;
        job.checkpoint.path = sub.clone();
        job.checkpoint.url = None;
        job.runtime.device = DeviceChoice::Cpu;
        let x = input(h, w);
        let mut native = Vec::new();
        for p in [Precision::Fp32, Precision::Bf16] {
            job.runtime.precision = p;
            let m = maskomaly::model::load(&job, Device::Cpu).expect("native model loads");
            native.push(time_native(m.as_ref(), &x, reps));
        }
        let ref32 = sub.join("hf_fp32.npz");
        let (n32, o32) = &native[0];
        let (n16, o16) = &native[1];
        let err = |o: &maskomaly::model::RawOutput, path: &Path| {
            (
                rel(&o.pred_logits.get(0), &npz(path, "pred_logits")),
                rel(&o.pred_masks.get(0), &npz(path, "pred_masks")),
            )
        };
        let e32 = err(o32, &ref32);
        let e16 = err(o16, &ref32);
        let e16n = (
            rel(&o16.pred_logits, &o32.pred_logits),
            rel(&o16.pred_masks, &o32.pred_masks),
        );
        let hf32_s = hf32["seconds"].as_f64().unwrap();
        let hf16_s = hf16.as_ref().map(|v| v["seconds"].as_f64().unwrap());
        let hf16_err = hf16.as_ref().map(|_| {
            let p = sub.join("hf_autocast-bf16.npz");
            (
                rel(&npz(&p, "pred_logits"), &npz(&ref32, "pred_logits")),
                rel(&npz(&p, "pred_masks"), &npz(&ref32, "pred_masks")),
            )
        });
        println!(
            "\nMask2Former Swin-L (100 queries, 19 classes, random weights), input {h}x{w}, CPU, {threads} threads, \
             {:.1} GFLOP per forward",
            flops / 1e9
        );
        println!("| implementation | seconds (median of {reps}) | vs transformers fp32 | vs native fp32 | GFLOP/s | % of fp32 matmul peak |");
        println!("| --- | --- | --- | --- | --- | --- |");
        let row = |name: &str, s: f64| {
            println!(
                "| {name} | {s:.2} | {:.2}× | {:.2}× | {:.1} | {:.0} % |",
                hf32_s / s,
                n32 / s,
                flops / s / 1e9,
                100.0 * flops / s / 1e9 / peak32
            );
        };
        row("transformers fp32", hf32_s);
        match hf16_s {
            Some(s) => row("transformers autocast bf16", s),
            None => println!(
                "| transformers autocast bf16 | > {limit:.0} (stopped) | < {:.2}× | < {:.2}× | | |",
                hf32_s / limit,
                n32 / limit
            ),
        }
        row("native fp32", *n32);
        row("native bf16", *n16);
        println!(
            "max |diff| / max |transformers fp32|: native fp32 logits {:.1e} masks {:.1e}; native bf16 {:.1e} / {:.1e}{}",
            e32.0,
            e32.1,
            e16.0,
            e16.1,
            hf16_err
                .map(|e| format!("; transformers autocast bf16 {:.1e} / {:.1e}", e.0, e.1))
                .unwrap_or_default()
        );
        rows.push(json!({"height": h, "width": w, "flops": flops,
            "hf_fp32_seconds": hf32_s, "hf_autocast_bf16_seconds": hf16_s,
            "hf_autocast_bf16_stopped_after": if hf16_s.is_none() { Some(limit) } else { None },
            "native_fp32_seconds": n32, "native_bf16_seconds": n16,
            "rel_err_native_fp32": [e32.0, e32.1], "rel_err_native_bf16": [e16.0, e16.1],
            "rel_err_native_bf16_vs_native_fp32": [e16n.0, e16n.1],
            "rel_err_hf_autocast_bf16": hf16_err.map(|e| [e.0, e.1])}));
    }
    let json = json!({"benchmark": "model", "threads": threads, "reps": reps,
        "matmul_fp32_2048_gflops": peak32, "matmul_bf16_512_gflops": peak16,
        "bf16_matrix_instructions": fast, "sizes": rows});
    std::fs::write(
        out.join("model.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}
