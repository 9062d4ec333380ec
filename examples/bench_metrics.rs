//! Benchmark (not a test): exact AP / AUROC / FPR95 over a large pooled score set, the way
//! `maskomaly eval` computes them (per-frame histograms merged into one).
//!
//! Run through `scripts/bench_metrics.py`, which writes the data, times scikit-learn on the same
//! pixels and compares. Alone:
//!
//!     cargo run --release --example bench_metrics -- DIR
//!
//! reads `DIR/scores.f16` (little-endian float16) and `DIR/labels.u8` (0/1), splits them into
//! 1024×2048 frames, and writes `DIR/rust.json` with the metrics and the seconds taken.
//!
//!     cargo run --release --example bench_metrics -- --synthetic-f32 100
//!
//! generates that many 1024×2048 frames of float32 scores with (nearly) all-distinct values, the
//! worst case for the histogram (Fishyscapes Lost & Found is 100 such frames, 210 M pixels), and
//! prints the time and the peak memory of the process.

use maskomaly::eval::metrics::{Histogram, HistogramAccumulator};
use std::time::Instant;

/// Peak resident memory of this process in MiB (Linux), for the report.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

/// Frames generated one at a time (never all in memory), like an evaluation reading files.
fn synthetic(frames: usize) -> Result<(), Box<dyn std::error::Error>> {
    const FRAME: usize = 1024 * 2048;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        // xorshift64*: fast, reproducible, 24 random mantissa bits per score.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let start = Instant::now();
    let mut acc = HistogramAccumulator::new();
    let mut scores = vec![0f32; FRAME];
    let mut labels = vec![0u8; FRAME];
    for _ in 0..frames {
        for (s, l) in scores.iter_mut().zip(labels.iter_mut()) {
            let r = next();
            *l = (r % 50 == 0) as u8;
            let u = (r >> 40) as f32 / (1u64 << 24) as f32;
            *s = if *l == 1 { 0.5 + 0.5 * u } else { 0.8 * u };
        }
        acc.push(Histogram::from_pixels(&scores, &labels, None)?);
    }
    let hist = acc.finish();
    let m = hist.metrics()?;
    let out = serde_json::json!({
        "pixels": frames * FRAME,
        "distinct_scores": hist.bins().len(),
        "ap": m.ap,
        "auroc": m.auroc,
        "fpr95": m.fpr95,
        "seconds": start.elapsed().as_secs_f64(),
        "peak_rss_mib": peak_rss_mib(),
        "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
    });
    println!("{out}");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args()
        .nth(1)
        .ok_or("usage: bench_metrics DIR | --synthetic-f32 FRAMES")?;
    if arg == "--help" || arg == "-h" {
        println!(
            "usage: bench_metrics DIR | --synthetic-f32 FRAMES (run by scripts/bench_metrics.py)"
        );
        return Ok(());
    }
    if arg == "--synthetic-f32" {
        let n = std::env::args()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .ok_or("--synthetic-f32 needs a frame count")?;
        return synthetic(n);
    }
    let dir = std::path::PathBuf::from(arg);
    let raw = std::fs::read(dir.join("scores.f16"))?;
    let labels = std::fs::read(dir.join("labels.u8"))?;
    if raw.len() != 2 * labels.len() {
        return Err(format!(
            "scores.f16 has {} values, labels.u8 {}",
            raw.len() / 2,
            labels.len()
        )
        .into());
    }
    // The evaluation reads float16 files and widens them to f32; do that outside the timing, as
    // the Python side loads its array before timing too.
    let scores: Vec<f32> = raw
        .chunks_exact(2)
        .map(|c| f32::from(half::f16::from_le_bytes([c[0], c[1]])))
        .collect();
    drop(raw);
    const FRAME: usize = 1024 * 2048;
    let start = Instant::now();
    let mut acc = HistogramAccumulator::new();
    for (s, l) in scores.chunks(FRAME).zip(labels.chunks(FRAME)) {
        acc.push(Histogram::from_pixels(s, l, None)?);
    }
    let hist = acc.finish();
    let m = hist.metrics()?;
    let seconds = start.elapsed().as_secs_f64();
    let out = serde_json::json!({
        "pixels": scores.len(),
        "frames": scores.len().div_ceil(FRAME),
        "distinct_scores": hist.bins().len(),
        "ap": m.ap,
        "auroc": m.auroc,
        "fpr95": m.fpr95,
        "seconds": seconds,
        "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
    });
    std::fs::write(dir.join("rust.json"), serde_json::to_string_pretty(&out)?)?;
    println!("{out}");
    Ok(())
}
