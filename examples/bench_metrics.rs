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

use maskomaly::eval::metrics::{Histogram, HistogramAccumulator};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).ok_or("usage: bench_metrics DIR")?);
    let raw = std::fs::read(dir.join("scores.f16"))?;
    let labels = std::fs::read(dir.join("labels.u8"))?;
    if raw.len() != 2 * labels.len() {
        return Err(format!("scores.f16 has {} values, labels.u8 {}", raw.len() / 2, labels.len()).into());
    }
    // The evaluation reads float16 files and widens them to f32; do that outside the timing, as
    // the Python side loads its array before timing too.
    let scores: Vec<f32> =
        raw.chunks_exact(2).map(|c| f32::from(half::f16::from_le_bytes([c[0], c[1]]))).collect();
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
