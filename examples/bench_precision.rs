//! Precision benchmark: every `runtime.precision` mode the device runs, end to end (`pipeline::run`:
//! decode, network, scoring, HDF5), on labelled synthetic road scenes (`demo::road_scene`, whose
//! odd-coloured object is the anomaly). Per mode: score difference from fp32, exact AP and its
//! change from fp32, images/s.
//!
//! `cargo run --release --example bench_precision -- [--images 20] [--width 512 --height 256]
//!  [--device cpu|cuda] [--preset [NAME]] [--threads 2] [--out target/bench]`
//!
//! Default model: the tiny native test configuration (`tests/fixtures/model/tiny_d2.pkl`).
//! `--preset` builds a named preset (default the Swin-L Cityscapes one) with seeded random weights.

mod common;
use common::arg;
use common::make_images;

use maskomaly::demo::road_scene_labels;
use maskomaly::eval::metrics::{Histogram, HistogramAccumulator};
use maskomaly::eval::predictions;
use maskomaly::job::{CheckpointFormat, DeviceChoice, Job, Precision};
use maskomaly::pipeline::{self, RunOptions};
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// `--preset` alone means the published Swin-L preset; `--preset NAME` names one.
fn preset_arg(args: &[String]) -> Option<String> {
    let i = args.iter().position(|a| a == "--preset")?;
    Some(match args.get(i + 1) {
        Some(v) if !v.starts_with("--") => v.clone(),
        _ => "mask2former_swin_large_cityscapes_semantic".into(),
    })
}

/// One mode's outcome: score maps per image and images/s, or why it did not run.
struct ModeRun {
    precision: Precision,
    result: Result<(Vec<Vec<f32>>, f64), String>,
}

fn main() {
    let args = common::cli(include_str!("bench_precision.rs"));
    let n: usize = arg(&args, "--images", "20").parse().unwrap();
    let w: usize = arg(&args, "--width", "512").parse().unwrap();
    let h: usize = arg(&args, "--height", "256").parse().unwrap();
    let threads: i32 = arg(&args, "--threads", "2").parse().unwrap();
    let device = match arg(&args, "--device", "cpu").as_str() {
        "cpu" => DeviceChoice::Cpu,
        "cuda" => DeviceChoice::Cuda,
        other => panic!("--device must be cpu or cuda, not {other}"),
    };
    let preset = preset_arg(&args);
    let out = PathBuf::from(arg(&args, "--out", "target/bench"));
    std::fs::create_dir_all(&out).unwrap();
    if device == DeviceChoice::Cuda {
        maskomaly::cuda::preload().expect("libtorch_cuda.so loads (set MASKOMALY_TORCH_CUDA)");
    }
    tch::set_num_threads(threads);

    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in");
    // PNG: lossless, so the labels match the pixels exactly.
    make_images(&input, n, w, h, "png");

    let mut job = Job::default();
    job.dataset.root = input.clone();
    job.checkpoint.url = None;
    // The images enter the network at their own size.
    job.preprocess.min_size = w.min(h) as u32;
    job.preprocess.max_size = w.max(h) as u32;
    job.output.png = false;
    job.runtime.device = device;
    job.runtime.decode_workers = 0;
    let model_name = match &preset {
        Some(p) => {
            job.model.preset = Some(p.clone());
            job.checkpoint.format = CheckpointFormat::Random;
            format!(
                "{p} (random weights, seed {})",
                maskomaly::model::RANDOM_SEED
            )
        }
        None => {
            job.model.preset = Some("tiny".into());
            job.checkpoint.format = CheckpointFormat::Detectron2;
            job.checkpoint.path =
                maskomaly::model::backend::native::fixture_dir().join("tiny_d2.pkl");
            // 8 queries, 4 classes + void.
            job.method.anomaly_queries = vec![1, 2];
            job.method.ground_queries = vec![0];
            job.method.void_class = 4;
            "tiny native test configuration (tests/fixtures/model/tiny_d2.pkl)".into()
        }
    };

    let opts = RunOptions {
        overwrite: true,
        quiet: true,
        ..RunOptions::default()
    };
    let mut runs = Vec::new();
    for p in Precision::ALL {
        let mut j = job.clone();
        j.runtime.precision = p;
        j.output.root = work.path().join(format!("out-{p}"));
        let result = pipeline::run(&j, &opts, Arc::new(AtomicUsize::new(0)))
            .map_err(|e| e.to_string())
            .and_then(|summary| {
                if summary.counts.written != n {
                    return Err(format!("{} of {n} items written", summary.counts.written));
                }
                let maps = (0..n)
                    .map(|i| {
                        let f = j.output.root.join(format!("img{i:05}.hdf5"));
                        predictions::read(&f)
                            .map(|p| p.scores)
                            .map_err(|e| e.to_string())
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((maps, summary.counts.written as f64 / summary.seconds))
            });
        if let Err(e) = &result {
            eprintln!("{p}: not available: {e}");
        }
        runs.push(ModeRun {
            precision: p,
            result,
        });
    }

    let labels: Vec<Vec<u8>> = (0..n).map(|i| road_scene_labels(w, h, i as u32)).collect();
    let ap = |maps: &[Vec<f32>]| -> f64 {
        let mut acc = HistogramAccumulator::new();
        for (scores, l) in maps.iter().zip(&labels) {
            let positive: Vec<u8> = l.iter().map(|&v| (v == 1) as u8).collect();
            let ignore: Vec<u8> = l.iter().map(|&v| (v == 255) as u8).collect();
            acc.push(Histogram::from_pixels(scores, &positive, Some(&ignore)).unwrap());
        }
        acc.finish().metrics().unwrap().ap
    };
    let (fp32_maps, _) = runs[0].result.as_ref().expect("fp32 runs on every device");
    let fp32_ap = ap(fp32_maps);

    println!(
        "Precision modes: {n} synthetic road scenes {w}x{h}, model {model_name}, device {}, {threads} torch threads",
        arg(&args, "--device", "cpu")
    );
    if preset.is_some() {
        println!("Random weights: the AP is meaningless in absolute terms; only its change from fp32 matters.");
    } else {
        println!("Test-fixture weights: the AP is meaningless in absolute terms; only its change from fp32 matters.");
    }
    println!("| precision | max abs score diff vs fp32 | mean abs score diff | AP | AP delta vs fp32 | images/s |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut rows = Vec::new();
    for r in &runs {
        match &r.result {
            Ok((maps, ips)) => {
                let (mut max, mut sum, mut count) = (0f64, 0f64, 0usize);
                for (a, b) in maps.iter().zip(fp32_maps) {
                    for (x, y) in a.iter().zip(b) {
                        let d = (*x as f64 - *y as f64).abs();
                        max = max.max(d);
                        sum += d;
                        count += 1;
                    }
                }
                let mean = sum / count.max(1) as f64;
                let a = ap(maps);
                println!(
                    "| {} | {max:.3e} | {mean:.3e} | {:.4} | {:+.4} | {ips:.2} |",
                    r.precision,
                    a,
                    a - fp32_ap
                );
                rows.push(
                    serde_json::json!({"precision": r.precision, "available": true,
                    "max_abs_diff": max, "mean_abs_diff": mean, "ap": a, "ap_delta": a - fp32_ap,
                    "images_per_s": ips}),
                );
            }
            Err(e) => {
                println!("| {} | not available | | | | |", r.precision);
                rows.push(
                    serde_json::json!({"precision": r.precision, "available": false, "error": e}),
                );
            }
        }
    }
    let json = serde_json::json!({
        "benchmark": "precision", "images": n, "width": w, "height": h, "threads": threads,
        "device": arg(&args, "--device", "cpu"), "model": model_name, "modes": rows,
    });
    std::fs::write(
        out.join("precision.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}
