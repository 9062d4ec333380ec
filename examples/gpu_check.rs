//! Helpers of `scripts/gpu-check.sh`:
//!
//! * `gpu_check devices [--require-cuda]`: whether libtorch's CUDA half loaded and sees a GPU
//!   (exit 3 with `--require-cuda` when not).
//! * `gpu_check images --dir D [--count 4] [--width 512] [--height 256]`: demo road scenes (PNG).
//! * `gpu_check compare A B [--tol 1e-4] [--max-share 0]`: per score map (HDF5 / npy) under folder A
//!   and the same file under B, the count and share of pixels differing by more than the tolerance
//!   and the max difference on the rest (Maskomaly's border count is a hard threshold: one last-bit
//!   difference can move a pixel by 0.1–1); exit 1 when the share over all maps exceeds
//!   `--max-share` or a file is missing or differs in size.
//! * `gpu_check forward [--preset NAME] [--device cpu|cuda] [--height 1024 --width 2048] [--reps 5]
//!   [--precisions fp32,tf32,bf16,fp16] [--out FILE.json]`: forward-only images/s per precision,
//!   seeded random weights (`--preset tiny` for the small test configuration).
//! * `gpu_check modules [--preset NAME] [--device cuda] [--height 1024 --width 2048] [--reps 3]
//!   [--kernels reduced]
//!   [--precisions fp32,bf16] [--out FILE.json]`: milliseconds per forward in the backbone, the pixel
//!   decoder and the transformer decoder (device synchronised after each), per precision.

mod common;
use common::arg;

use maskomaly::device::{device_name, resolve_device};
use maskomaly::job::{CheckpointFormat, DeviceChoice, Job, Precision};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn main() {
    maskomaly::tune_allocator();
    // Before anything asks libtorch about CUDA.
    let cuda = maskomaly::cuda::preload();
    let args = common::cli(include_str!("gpu_check.rs"));
    let code = match args.get(1).map(String::as_str) {
        Some("devices") => devices(&args, cuda),
        Some("images") => images(&args),
        Some("compare") => compare(&args),
        Some("forward") => forward(&args),
        Some("modules") => modules(&args),
        _ => {
            eprintln!(
                "usage: gpu_check devices|images|compare|forward ... (see the source header)"
            );
            2
        }
    };
    std::process::exit(code);
}

fn devices(args: &[String], cuda: Result<PathBuf, String>) -> i32 {
    match &cuda {
        Ok(p) => println!("libtorch_cuda: loaded from {}", p.display()),
        Err(e) => println!("libtorch_cuda: not loaded ({e})"),
    }
    let available = tch::Cuda::is_available();
    println!("cuda available: {available}");
    println!("cuda devices: {}", tch::Cuda::device_count());
    println!("cudnn available: {}", tch::Cuda::cudnn_is_available());
    if args.iter().any(|a| a == "--require-cuda") && !available {
        eprintln!("error: libtorch sees no CUDA device");
        return 3;
    }
    0
}

fn images(args: &[String]) -> i32 {
    let dir = PathBuf::from(arg(args, "--dir", "images"));
    let n: usize = arg(args, "--count", "4").parse().unwrap();
    let w: usize = arg(args, "--width", "512").parse().unwrap();
    let h: usize = arg(args, "--height", "256").parse().unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        let p = dir.join(format!("img{i:05}.png"));
        maskomaly::demo::save_rgb(&maskomaly::demo::road_scene(w, h, i as u32), &p).unwrap();
    }
    println!("{n} images {w}x{h} in {}", dir.display());
    0
}

/// Score-map files under `dir`, relative to it, sorted.
fn score_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walk(dir)
        .into_iter()
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".hdf5") || name.ends_with(".h5") || name.ends_with("_anomaly.npy")
        })
        .map(|p| p.strip_prefix(dir).unwrap().to_path_buf())
        .collect();
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn compare(args: &[String]) -> i32 {
    let (Some(a), Some(b)) = (args.get(2), args.get(3)) else {
        eprintln!("usage: gpu_check compare A B [--tol 1e-4]");
        return 2;
    };
    let tol: f64 = arg(args, "--tol", "1e-4").parse().unwrap();
    let max_share: f64 = arg(args, "--max-share", "0").parse().unwrap();
    let (a, b) = (Path::new(a), Path::new(b));
    let files = score_files(a);
    if files.is_empty() {
        eprintln!("error: no score maps under {}", a.display());
        return 1;
    }
    let mut all = Parity::default();
    let mut bad = false;
    for rel in &files {
        let pa = predictions(&a.join(rel));
        let pb = predictions(&b.join(rel));
        match (pa, pb) {
            (Ok(x), Ok(y)) if (x.width, x.height) == (y.width, y.height) => {
                let p = Parity::of(&x.scores, &y.scores, tol);
                println!("{}: {}", rel.display(), p.describe(tol));
                all.add(&p);
            }
            (Ok(x), Ok(y)) => {
                println!(
                    "{}: sizes differ ({}x{} vs {}x{})",
                    rel.display(),
                    x.width,
                    x.height,
                    y.width,
                    y.height
                );
                bad = true;
            }
            (Err(e), _) | (_, Err(e)) => {
                println!("{}: {e}", rel.display());
                bad = true;
            }
        }
    }
    let ok = !bad && all.share() <= max_share;
    println!(
        "{} score maps: {} (allowed share {max_share:e}): {}",
        files.len(),
        all.describe(tol),
        if ok { "PASS" } else { "FAIL" }
    );
    if ok {
        0
    } else {
        1
    }
}

/// How two score maps differ: pixels beyond the tolerance, and the largest difference of the rest
/// and of all.
#[derive(Debug, Default)]
struct Parity {
    pixels: u64,
    beyond: u64,
    max_rest: f64,
    max_all: f64,
}

impl Parity {
    fn of(a: &[f32], b: &[f32], tol: f64) -> Parity {
        let mut p = Parity::default();
        for (x, y) in a.iter().zip(b) {
            // A NaN on one side only counts as beyond; NaN on both as equal.
            let d = match (x.is_nan(), y.is_nan()) {
                (true, true) => 0.0,
                (false, false) => (*x as f64 - *y as f64).abs(),
                _ => f64::INFINITY,
            };
            p.pixels += 1;
            if d > tol {
                p.beyond += 1;
            } else {
                p.max_rest = p.max_rest.max(d);
            }
            p.max_all = p.max_all.max(d);
        }
        p
    }

    fn add(&mut self, o: &Parity) {
        self.pixels += o.pixels;
        self.beyond += o.beyond;
        self.max_rest = self.max_rest.max(o.max_rest);
        self.max_all = self.max_all.max(o.max_all);
    }

    fn share(&self) -> f64 {
        self.beyond as f64 / self.pixels.max(1) as f64
    }

    fn describe(&self, tol: f64) -> String {
        format!(
            "{} of {} pixels ({:.4} %) differ by more than {tol:e} (max {:.3e}); max abs diff on the rest {:.3e}",
            self.beyond,
            self.pixels,
            100.0 * self.share(),
            self.max_all,
            self.max_rest
        )
    }
}

fn predictions(p: &Path) -> Result<maskomaly::eval::predictions::Prediction, String> {
    maskomaly::eval::predictions::read(p).map_err(|e| e.to_string())
}

fn forward(args: &[String]) -> i32 {
    let preset = arg(
        args,
        "--preset",
        "mask2former_swin_large_cityscapes_semantic",
    );
    let choice = match arg(args, "--device", "cuda").as_str() {
        "cpu" => DeviceChoice::Cpu,
        "cuda" => DeviceChoice::Cuda,
        other => {
            eprintln!("error: --device must be cpu or cuda, not {other}");
            return 2;
        }
    };
    let h: i64 = arg(args, "--height", "1024").parse().unwrap();
    let w: i64 = arg(args, "--width", "2048").parse().unwrap();
    let reps: usize = arg(args, "--reps", "5").parse().unwrap();
    let precisions: Vec<Precision> = arg(args, "--precisions", "fp32,tf32,bf16,fp16")
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let device = match resolve_device(choice) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    let mut job = Job::default();
    job.model.preset = Some(preset.clone());
    job.checkpoint.format = CheckpointFormat::Random;
    job.checkpoint.url = None;
    let _g = tch::no_grad_guard();
    let x = Tensor::randn([1, 3, h, w], (Kind::Float, device));
    println!(
        "Forward only: {preset} (random weights), input {h}x{w}, {}, {reps} timed passes after 1 warm-up",
        device_name(device)
    );
    println!("| precision | images/s | seconds per image |");
    println!("| --- | --- | --- |");
    let mut rows = Vec::new();
    for p in precisions {
        job.runtime.precision = p;
        let row = match maskomaly::model::load(&job, device) {
            Ok(m) => {
                let timed = (|| -> Result<f64, maskomaly::model::ModelError> {
                    m.forward(&x)?;
                    sync();
                    let t0 = Instant::now();
                    for _ in 0..reps {
                        m.forward(&x)?;
                    }
                    sync();
                    Ok(t0.elapsed().as_secs_f64() / reps as f64)
                })();
                match timed {
                    Ok(s) => {
                        println!("| {p} | {:.3} | {s:.4} |", 1.0 / s);
                        serde_json::json!({"precision": p, "available": true,
                            "images_per_s": 1.0 / s, "seconds_per_image": s})
                    }
                    Err(e) => {
                        println!("| {p} | failed | |");
                        serde_json::json!({"precision": p, "available": false, "error": e.to_string()})
                    }
                }
            }
            Err(e) => {
                println!("| {p} | not available | |");
                eprintln!("{p}: {e}");
                serde_json::json!({"precision": p, "available": false, "error": e.to_string()})
            }
        };
        rows.push(row);
    }
    let json = serde_json::json!({"benchmark": "forward", "preset": preset, "height": h, "width": w,
        "device": device_name(device), "reps": reps, "modes": rows});
    let out = arg(args, "--out", "");
    if !out.is_empty() {
        if let Some(d) = Path::new(&out).parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    }
    0
}

fn modules(args: &[String]) -> i32 {
    use maskomaly::model::backend::native::NativeModel;
    use maskomaly::model::config::Config;
    use maskomaly::model::Backend;
    let preset = arg(
        args,
        "--preset",
        "mask2former_swin_large_cityscapes_semantic",
    );
    let device = match arg(args, "--device", "cuda").as_str() {
        "cpu" => Device::Cpu,
        _ => match resolve_device(DeviceChoice::Cuda) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: {e}");
                return 3;
            }
        },
    };
    let h: i64 = arg(args, "--height", "1024").parse().unwrap();
    let w: i64 = arg(args, "--width", "2048").parse().unwrap();
    let reps: usize = arg(args, "--reps", "3").parse().unwrap();
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    let cfg = Config::preset(&preset).unwrap();
    let mut m = NativeModel::random(&cfg, device).unwrap();
    let _g = tch::no_grad_guard();
    println!(
        "Forward by module: {preset}, input {h}x{w}, {}, mean of {reps} after 1 warm-up",
        device_name(device)
    );
    println!("| precision | backbone ms | pixel decoder ms | transformer decoder ms | total ms |");
    println!("| --- | --- | --- | --- | --- |");
    let mut rows = Vec::new();
    for p in arg(args, "--precisions", "fp32,bf16").split(',') {
        let p: Precision = p.parse().unwrap();
        maskomaly::model::precision::apply_global_flags(p, device);
        let kind = maskomaly::model::precision::kind(p);
        if let Err(e) = m.set_kind(kind) {
            println!("| {p} | {e} | | | |");
            continue;
        }
        // `--kernels reduced`: the reduced dtype's own kernels even on a CPU without matrix
        // instructions for it (to profile them).
        if kind != Kind::Float && arg(args, "--kernels", "") == "reduced" {
            m.set_compute(maskomaly::model::precision::Compute::Reduced(kind));
        }
        let label = format!("{p} ({:?})", m.compute());
        // Float32 input and the model's mixed-precision policy, as in `NativeModel::trace`.
        let x = Tensor::randn([1, 3, h, w], (Kind::Float, device));
        let _c = maskomaly::model::precision::enter(m.compute());
        let net = m.model();
        let mut t = [0f64; 3];
        for rep in 0..=reps {
            sync();
            let t0 = Instant::now();
            let f = net.backbone.forward(&x);
            sync();
            let t1 = Instant::now();
            let px = net.pixel_decoder.forward(&f);
            sync();
            let t2 = Instant::now();
            let out = net
                .predictor
                .forward(&px.multi_scale_features, &px.mask_features);
            sync();
            let t3 = Instant::now();
            drop(out);
            if rep > 0 {
                for (a, d) in t.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
                    *a += d.as_secs_f64() * 1e3 / reps as f64;
                }
            }
        }
        println!(
            "| {label} | {:.1} | {:.1} | {:.1} | {:.1} |",
            t[0],
            t[1],
            t[2],
            t.iter().sum::<f64>()
        );
        rows.push(
            serde_json::json!({"precision": p, "compute": label, "backbone_ms": t[0],
            "pixel_decoder_ms": t[1], "transformer_decoder_ms": t[2]}),
        );
    }
    let out = arg(args, "--out", "");
    if !out.is_empty() {
        let json = serde_json::json!({"benchmark": "modules", "preset": preset, "height": h,
            "width": w, "device": device_name(device), "reps": reps, "modes": rows});
        std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    }
    0
}
