//! Helpers shared by the benchmark and GPU-check examples.
#![allow(dead_code)]

use maskomaly::demo::{road_scene, save_rgb};
use std::path::Path;

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
