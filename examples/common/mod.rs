//! Helpers shared by the benchmark and GPU-check examples.
#![allow(dead_code)]

use maskomaly::demo::{road_scene, save_rgb};
use std::path::Path;

/// The command line. `--help` prints the example's doc comment (`source` is the example's own
/// text) and exits; an option the doc comment does not name is refused, so that a typo does not
/// start the whole default benchmark.
pub fn cli(source: &str) -> Vec<String> {
    let doc = source
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let args: Vec<String> = std::env::args().collect();
    if args.iter().skip(1).any(|a| a == "--help" || a == "-h") {
        println!("{doc}");
        std::process::exit(0);
    }
    let named = |flag: &str| {
        doc.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .any(|w| w == flag)
    };
    if let Some(bad) = args
        .iter()
        .skip(1)
        .find(|a| a.starts_with("--") && a.len() > 2 && !named(a))
    {
        eprintln!("unknown option {bad}; --help lists the options");
        std::process::exit(2);
    }
    args
}

/// The value after `--name` on the command line, or `default`.
pub fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

/// Writes `n` synthetic road scenes `img00000.<ext>`… into `dir` (kept if already there).
pub fn make_images(dir: &Path, n: usize, w: usize, h: usize, ext: &str) {
    std::fs::create_dir_all(dir).expect("create the image folder");
    for i in 0..n {
        let p = dir.join(format!("img{i:05}.{ext}"));
        if !p.exists() {
            save_rgb(&road_scene(w, h, i as u32), &p).expect("write image");
        }
    }
}
