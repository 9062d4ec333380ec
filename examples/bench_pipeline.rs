//! Pipeline benchmark: images/s of a whole run (decode, resize, inference, scoring, HDF5 + PNG
//! writing) against the forward-only throughput of the same model on the same machine (the ceiling),
//! with each stage's busy time and the mean queue occupancy; then peak RSS of the binary at 10 and
//! at `--rss-images` small images (memory is bounded by the queues and the heap, not the input).
//!
//! `cargo run --release --example bench_pipeline -- [--images 200] [--width 1024 --height 512]
//!  [--checkpoint tests/fixtures/tiny_maskformer.pt | --preset NAME] [--min-size 1024]
//!  [--rss-images 1000 (0: skip)] [--out target/bench] [--tag pipeline]`
//!
//! `--preset` runs that architecture with seeded random weights instead of a checkpoint file;
//! `--min-size` sets the shortest-edge resize (the longest edge is capped at twice it).

mod common;
use common::arg;
use common::make_images;

use maskomaly::job::{DeviceChoice, Job};
use maskomaly::pipeline::{self, RunOptions};
use maskomaly::preprocess::prepare;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Peak resident memory of a child process, polled until it exits: (VmHWM, peak RssAnon) in KiB.
/// VmHWM includes the pages of the shared libraries it touched (libtorch alone is hundreds of MiB
/// of code); RssAnon is the process's own heap and stacks, what grows if anything leaks.
fn peak_rss_kib(mut cmd: std::process::Command) -> (u64, u64, i32) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let status_path = format!("/proc/{}/status", child.id());
    let (mut hwm, mut anon) = (0, 0);
    let field = |s: &str, name: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            hwm = hwm.max(field(&s, "VmHWM:").unwrap_or(0));
            anon = anon.max(field(&s, "RssAnon:").unwrap_or(0));
        }
        if let Some(st) = child.try_wait().expect("wait") {
            return (hwm, anon, st.code().unwrap_or(-1));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn main() {
    maskomaly::tune_allocator();
    let args = common::cli(include_str!("bench_pipeline.rs"));
    let n: usize = arg(&args, "--images", "200").parse().unwrap();
    let w: usize = arg(&args, "--width", "1024").parse().unwrap();
    let h: usize = arg(&args, "--height", "512").parse().unwrap();
    let rss_n: usize = arg(&args, "--rss-images", "1000").parse().unwrap();
    let ckpt = PathBuf::from(arg(
        &args,
        "--checkpoint",
        "tests/fixtures/tiny_maskformer.pt",
    ));
    let preset = args
        .iter()
        .position(|a| a == "--preset")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let min_size: u32 = arg(&args, "--min-size", "1024").parse().unwrap();
    let tag = arg(&args, "--tag", "pipeline");
    let out = PathBuf::from(arg(&args, "--out", "target/bench"));
    std::fs::create_dir_all(&out).unwrap();
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    make_images(&input, n, w, h, "jpg");

    let mut job = Job::default();
    job.dataset.root = input.clone();
    job.output.root = work.path().join("out");
    job.checkpoint.path = ckpt.clone();
    job.checkpoint.url = None;
    if let Some(f) = maskomaly::job::CheckpointFormat::guess(&ckpt) {
        job.checkpoint.format = f;
    }
    if let Some(p) = &preset {
        job.model.preset = Some(p.clone());
        job.checkpoint.format = maskomaly::job::CheckpointFormat::Random;
    }
    job.preprocess.min_size = min_size;
    job.preprocess.max_size = 2 * min_size;
    job.runtime.device = DeviceChoice::Cpu;
    job.runtime.decode_workers = 0;
    let model_name = match &preset {
        Some(p) => format!("{p} (random weights)"),
        None => ckpt.display().to_string(),
    };

    // Ceiling: forward only, on a preprocessed image, same model and device.
    let img = maskomaly::preprocess::decode_file(
        &input.join("img00000.jpg"),
        &std::fs::read(input.join("img00000.jpg")).unwrap(),
    )
    .unwrap();
    let prepared = prepare(&img, &job.preprocess).expect("image prepares");
    let model = maskomaly::model::load(&job, tch::Device::Cpu).expect("model loads");
    let x = prepared.tensor.unsqueeze(0);
    let _g = tch::no_grad_guard();
    let _ = model.forward(&x).unwrap();
    let reps = n.clamp(5, 50);
    let t0 = Instant::now();
    for _ in 0..reps {
        let _ = model.forward(&x).unwrap();
    }
    let ceiling = reps as f64 / t0.elapsed().as_secs_f64();
    drop(model);

    let opts = RunOptions {
        overwrite: true,
        quiet: true,
        ..RunOptions::default()
    };
    // Steady state: a short run and the full run, both with start-up (model build, first-forward
    // warm-up); the difference of their wall times is the cost of the extra images alone.
    let short = (n / 10).max(2).min(n.saturating_sub(1)).max(1);
    let first = pipeline::run(
        &job,
        &RunOptions {
            limit: Some(short),
            ..opts.clone()
        },
        Arc::new(AtomicUsize::new(0)),
    )
    .expect("short run");
    let summary = pipeline::run(&job, &opts, Arc::new(AtomicUsize::new(0))).expect("run");
    let extra = summary.counts.written.saturating_sub(first.counts.written);
    let throughput = if extra > 0 && summary.seconds > first.seconds {
        extra as f64 / (summary.seconds - first.seconds)
    } else {
        summary.counts.written as f64 / summary.seconds
    };
    let with_startup = summary.counts.written as f64 / summary.seconds;
    let stages = maskomaly::pipeline::STAGES;
    let queues = maskomaly::pipeline::QUEUES;

    println!(
        "Pipeline: {n} images {w}x{h} (input {}x{} padded), model {}, CPU, {} torch threads",
        prepared.padded.1,
        prepared.padded.0,
        model_name,
        tch::get_num_threads()
    );
    println!("| measure | images/s | s per image | ratio |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| forward only (ceiling) | {ceiling:.4} | {:.2} | 1.00 |",
        1.0 / ceiling
    );
    println!(
        "| maskomaly run (end to end, start-up excluded: {} - {} images) | {throughput:.4} | {:.2} | {:.2} |",
        summary.counts.written,
        first.counts.written,
        1.0 / throughput,
        throughput / ceiling
    );
    println!(
        "| maskomaly run (end to end, start-up included) | {with_startup:.4} | {:.2} | {:.2} |",
        1.0 / with_startup,
        with_startup / ceiling
    );
    println!(
        "stage busy time (s, summed over items; wall {:.1} s):",
        summary.seconds
    );
    for (s, b) in stages.iter().zip(summary.stage_busy_s) {
        println!("  {s:7} {b:8.2}");
    }
    println!(
        "mean queue occupancy when taken (capacity {}):",
        job.runtime.queue_depth
    );
    for (q, m) in queues.iter().zip(summary.queue_mean) {
        println!("  {q:9} {m:5.2}");
    }

    // Peak RSS of the real binary at 10 and at rss_n small images.
    let exe = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("maskomaly");
    let mut rss = Vec::new();
    let counts: &[usize] = if rss_n == 0 { &[] } else { &[10, rss_n] };
    for &count in counts {
        let dir = work.path().join(format!("rss{count}"));
        std::fs::create_dir_all(&dir).unwrap();
        make_images(&dir, count, 320, 240, "jpg");
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["-q", "run", "--input"])
            .arg(&dir)
            .arg("--output")
            .arg(work.path().join(format!("rss-out{count}")));
        cmd.arg("--checkpoint").arg(&ckpt).args(["--device", "cpu"]);
        let (hwm, anon, code) = peak_rss_kib(cmd);
        println!(
            "peak memory with {count:5} images (320x240): VmHWM {:.0} MiB, RssAnon {:.0} MiB (exit {code})",
            hwm as f64 / 1024.0,
            anon as f64 / 1024.0
        );
        rss.push((count, hwm, anon));
    }
    let json = serde_json::json!({
        "benchmark": "pipeline", "images": n, "width": w, "height": h, "model": model_name,
        "network_input": [prepared.padded.0, prepared.padded.1],
        "forward_only_images_per_s": ceiling, "run_images_per_s": throughput, "ratio": throughput / ceiling,
        "run_images_per_s_with_startup": with_startup,
        "stage_busy_s": stages.iter().zip(summary.stage_busy_s).map(|(s, b)| (s.to_string(), b)).collect::<std::collections::BTreeMap<_, _>>(),
        "queue_mean": queues.iter().zip(summary.queue_mean).map(|(s, b)| (s.to_string(), b)).collect::<std::collections::BTreeMap<_, _>>(),
        "peak_vmhwm_kib": rss.iter().map(|r| (r.0.to_string(), r.1)).collect::<std::collections::BTreeMap<_, _>>(),
        "peak_rss_anon_kib": rss.iter().map(|r| (r.0.to_string(), r.2)).collect::<std::collections::BTreeMap<_, _>>(),
    });
    std::fs::write(
        out.join(format!("{tag}.json")),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}
