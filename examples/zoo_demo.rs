//! The demo scenes with labels, for trying every score and their comparison without any download:
//! writes the four scenes of `maskomaly demo` as a SegmentMeIfYouCan anomaly-track copy (images +
//! `_labels_semantic.png`: object 1, road 0, sky ignored), the tiny model, and a job computing all
//! six scores.
//!
//! `cargo run --release --example zoo_demo -- DIR`, then
//! `maskomaly run --job DIR/job.yaml` and `maskomaly eval --job DIR/job.yaml`.
//! The tiny model has fixed-formula weights: its numbers show the format, not the methods.

use maskomaly::demo::{road_scene, road_scene_labels, save_rgb, write_tiny_model};
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "zoo-demo".into()));
    let root = dir.join("dataset_AnomalyTrack");
    // The sizes and seeds of `maskomaly demo`.
    for (i, (w, h)) in [(640, 360), (480, 320), (360, 480), (800, 450)]
        .into_iter()
        .enumerate()
    {
        let img = road_scene(w, h, i as u32);
        save_rgb(&img, &root.join(format!("images/validation{i:04}.png"))).expect("write image");
        let labels = road_scene_labels(w, h, i as u32);
        let label = image::GrayImage::from_raw(w as u32, h as u32, labels).expect("label size");
        let path = root.join(format!("labels_masks/validation{i:04}_labels_semantic.png"));
        std::fs::create_dir_all(path.parent().unwrap()).expect("label folder");
        label.save(&path).expect("write label");
    }
    let model = dir.join("model/tiny.pt");
    write_tiny_model(&model).expect("write the tiny model");
    let job = format!(
        "name: zoo-demo\n\
         dataset: {{kind: smiyc_anomaly, root: {root}, split: validation}}\n\
         checkpoint: {{format: torchscript, path: {model}}}\n\
         method:\n  scores: [maskomaly, rba, eam, energy, msp, entropy]\n\
         output: {{root: {out}, heatmap: true}}\n\
         runtime: {{device: cpu}}\n",
        root = root.display(),
        model = model.display(),
        out = dir.join("output").display()
    );
    std::fs::write(dir.join("job.yaml"), job).expect("write the job");
    println!("{}", dir.join("job.yaml").display());
}
