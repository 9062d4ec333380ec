//! Score-stage benchmark: the time every training-free score adds to one forward pass.
//!
//! Runs the Mask2Former architecture of `--preset` (default Swin-L Cityscapes) with seeded random
//! weights on one synthetic `--width`×`--height` image (default 2048×1024, no resize), times the
//! forward pass `--forwards` times, then the score stage on those outputs: each score alone, all
//! six together (one shared pass) and Maskomaly alone, each the median of `--repeats` runs. The
//! stage is what the pipeline's scoring thread does per item: every map at input resolution on
//! the host.
//!
//! `cargo run --release --example bench_scores -- [--preset NAME] [--width 2048 --height 1024]
//!  [--forwards 2] [--repeats 5] [--out target/bench]`
//!
//! Prints a table and writes `DIR/scores.json`. Wall and CPU seconds (this process, all threads)
//! are both reported: on shared cores the CPU time is the steadier measure of the work.

mod common;
use common::arg;

use maskomaly::job::{CheckpointFormat, Job, Method};
use maskomaly::preprocess::prepare;
use maskomaly::scores::{self, Outputs, ScoreKind};
use std::path::PathBuf;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// CPU seconds this process has used (user + system, all threads): unlike wall time, it does not
/// grow when other processes share the cores.
fn cpu_s() -> f64 {
    // SAFETY: rusage is plain integers, for which all-zero bytes are a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Wall and CPU seconds of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (t0, c0) = (Instant::now(), cpu_s());
    let r = f();
    (r, t0.elapsed().as_secs_f64(), cpu_s() - c0)
}

fn main() {
    maskomaly::tune_allocator();
    let args = common::cli(include_str!("bench_scores.rs"));
    let preset = arg(
        &args,
        "--preset",
        "mask2former_swin_large_cityscapes_semantic",
    );
    let w: usize = arg(&args, "--width", "2048").parse().unwrap();
    let h: usize = arg(&args, "--height", "1024").parse().unwrap();
    let forwards: usize = arg(&args, "--forwards", "2").parse().unwrap();
    let repeats: usize = arg(&args, "--repeats", "5").parse().unwrap();
    let out = PathBuf::from(arg(&args, "--out", "target/bench"));
    std::fs::create_dir_all(&out).unwrap();
    let _g = tch::no_grad_guard();

    let mut job = Job::default();
    job.model.preset = Some(preset.clone());
    job.checkpoint.format = CheckpointFormat::Random;
    job.checkpoint.url = None;
    job.preprocess.min_size = h.min(w) as u32;
    job.preprocess.max_size = h.max(w) as u32;
    let img = maskomaly::demo::road_scene(w, h, 0);
    let prepared = prepare(&img, &job.preprocess).expect("image prepares");
    let model = maskomaly::model::load(&job, tch::Device::Cpu).expect("model builds");
    let x = prepared.tensor.unsqueeze(0);

    let (mut forward_s, mut forward_cpu) = (Vec::new(), Vec::new());
    let mut outputs = None;
    for _ in 0..forwards.max(1) {
        let (o, wall, cpu) = timed(|| model.forward(&x).expect("forward runs"));
        forward_s.push(wall);
        forward_cpu.push(cpu);
        outputs = Some(o);
    }
    drop(model);
    let o = outputs.unwrap();
    let (logits, masks) = (o.pred_logits.get(0), o.pred_masks.get(0));
    let cls = logits.softmax(-1, tch::Kind::Float).argmax(1, false);
    let void = logits.size()[1] - 1;
    let non_void = Vec::<i64>::try_from(&cls)
        .unwrap()
        .iter()
        .filter(|&&c| c != void)
        .count();
    let outs = Outputs {
        pred_logits: &logits,
        pred_masks: &masks,
        padded: prepared.padded,
        resized: prepared.resized,
        original: (h, w),
    };
    // (wall, CPU) seconds of the score stage, medians over the repeats.
    let time = |scores: Vec<ScoreKind>| -> (f64, f64) {
        let method = Method {
            scores,
            ..Method::default()
        };
        let (mut wall, mut cpu) = (Vec::new(), Vec::new());
        for _ in 0..repeats.max(1) {
            let (r, wt, ct) =
                timed(|| scores::compute(&method, &outs, false).expect("scores compute"));
            assert_eq!(r.maps[0].1.len(), h * w);
            wall.push(wt);
            cpu.push(ct);
        }
        (median(wall), median(cpu))
    };
    let mut rows: Vec<(String, (f64, f64))> = ScoreKind::ALL
        .iter()
        .map(|&k| (k.to_string(), time(vec![k])))
        .collect();
    let all = time(ScoreKind::ALL.to_vec());
    rows.push(("all six (one shared pass)".into(), all));
    let forward = (median(forward_s.clone()), median(forward_cpu.clone()));
    let maskomaly = rows[0].1;

    let threads = tch::get_num_threads();
    println!(
        "{preset}, random weights, {w}×{h} (padded {}×{}), CPU, {threads} threads; {non_void} of {} queries non-void",
        prepared.padded.1,
        prepared.padded.0,
        logits.size()[0]
    );
    println!(
        "forward pass: {:.2} s wall, {:.2} s CPU (medians of {forward_s:.2?} / {forward_cpu:.2?})",
        forward.0, forward.1
    );
    println!("| score stage | wall s | CPU s | wall / forward | CPU / forward |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, (wall, cpu)) in &rows {
        println!(
            "| {name} | {wall:.3} | {cpu:.3} | {:.1} % | {:.1} % |",
            100.0 * wall / forward.0,
            100.0 * cpu / forward.1
        );
    }
    let ratio = (forward.0 + all.0) / (forward.0 + maskomaly.0);
    let ratio_cpu = (forward.1 + all.1) / (forward.1 + maskomaly.1);
    println!(
        "forward + all six / forward + maskomaly: {ratio:.3} wall, {ratio_cpu:.3} CPU; all six add \
         {:.1} % (wall) / {:.1} % (CPU) to the forward; goal < 10 %",
        100.0 * all.0 / forward.0,
        100.0 * all.1 / forward.1
    );
    let json = serde_json::json!({
        "preset": preset,
        "width": w,
        "height": h,
        "threads": threads,
        "non_void_queries": non_void,
        "forward_wall_s": forward_s,
        "forward_cpu_s": forward_cpu,
        "score_wall_cpu_s": rows
            .iter()
            .map(|(n, (wt, ct))| (n.clone(), serde_json::json!([wt, ct])))
            .collect::<serde_json::Map<_, _>>(),
        "all_over_forward_wall": all.0 / forward.0,
        "all_over_forward_cpu": all.1 / forward.1,
        "forward_plus_all_over_forward_plus_maskomaly_wall": ratio,
        "forward_plus_all_over_forward_plus_maskomaly_cpu": ratio_cpu,
    });
    let path = out.join("scores.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    println!("{}", path.display());
}
