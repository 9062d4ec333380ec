//! A self-contained demonstration with no network access: synthetic road scenes with an obstacle,
//! their anomaly labels, and a scripted stand-in model whose masks follow the scenes' regions, so a
//! run finds the obstacle. Tests use the same pieces, and the tiny random-weight model.

use crate::diagnostic::{Diagnose, ExitCode};
use crate::job::{CheckpointFormat, DatasetKind, DeviceChoice, Job};
use crate::preprocess::Rgb8;
use std::path::{Path, PathBuf};

/// The tiny TorchScript model (100 queries, 19 classes + void, so the default Maskomaly parameters
/// apply unchanged): mask logits are a 1×1 convolution of the 4×4-average-pooled input, class logits
/// a linear map of the image mean. Made by `scripts/make_tiny_model.py`; scripted, so any input size
/// works.
pub const TINY_MODEL: &[u8] = include_bytes!("../tests/fixtures/tiny_maskformer.pt");

/// Writes the tiny model as a TorchScript file.
pub fn write_tiny_model(path: &Path) -> std::io::Result<()> {
    crate::output::write_bytes_atomic(path, TINY_MODEL)
}

/// The demo's stand-in model: NOT a trained network but fixed colour rules written by hand
/// (`scripts/make_demo_model.py`). Query 0 (class road) covers grey pixels, query 10 (class sky)
/// blue ones, both with confident classes; query 49, the first default anomaly query, covers what is
/// neither, with a void class. On [`road_scene`] the Maskomaly rule therefore scores road and sky
/// near 0 and the obstacle near 1, as a trained Mask2Former does on a real anomaly. On other
/// images it shows nothing meaningful.
pub const DEMO_MODEL: &[u8] = include_bytes!("../tests/fixtures/demo_maskformer.pt");

/// The demo's scenes: size and format.
pub const DEMO_SCENES: [(usize, usize, &str); 4] = [
    (640, 360, "jpg"),
    (480, 320, "png"),
    (360, 480, "jpg"),
    (800, 450, "png"),
];

/// Writes the demo's inputs under `dir` and returns its job and the job file's path:
///
/// ```text
/// dir/input/images/sceneNN.{jpg,png}   synthetic road scenes, one obstacle each
/// dir/input/labels/sceneNN.png         1 = obstacle, 0 = road, 255 = sky (ignored); fs_static layout
/// dir/model/demo.pt                    the stand-in model (DEMO_MODEL)
/// dir/job.yaml                         fs_static dataset, TorchScript model, CPU, heatmaps on
/// ```
/// Outputs go to `dir/output`, the evaluation to `dir/output/eval`.
pub fn prepare(dir: &Path) -> Result<(Job, PathBuf), DemoError> {
    let input = dir.join("input");
    for (i, &(w, h, ext)) in DEMO_SCENES.iter().enumerate() {
        let seed = i as u32;
        let image = input.join(format!("images/scene{i:02}.{ext}"));
        save_rgb(&road_scene(w, h, seed), &image).map_err(|e| DemoError::write(&image, e))?;
        let label = input.join(format!("labels/scene{i:02}.png"));
        let grey = image::GrayImage::from_raw(w as u32, h as u32, road_scene_labels(w, h, seed))
            .expect("one label per pixel");
        std::fs::create_dir_all(input.join("labels")).map_err(|e| DemoError::write(&label, e))?;
        grey.save(&label).map_err(|e| DemoError::write(&label, e))?;
    }
    let model = dir.join("model").join("demo.pt");
    if let Some(parent) = model.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DemoError::write(parent, e))?;
    }
    crate::output::write_bytes_atomic(&model, DEMO_MODEL)
        .map_err(|e| DemoError::write(&model, e))?;
    let mut job = Job {
        name: "demo".into(),
        ..Default::default()
    };
    job.dataset.kind = DatasetKind::FsStatic;
    job.dataset.root = input;
    job.output.root = dir.join("output");
    job.output.heatmap = true;
    job.checkpoint.path = model;
    job.checkpoint.format = CheckpointFormat::Torchscript;
    job.checkpoint.url = None;
    job.runtime.device = DeviceChoice::Cpu;
    let job_path = dir.join("job.yaml");
    let text = serde_saphyr::to_string(&job).map_err(|e| DemoError::write(&job_path, e))?;
    std::fs::write(&job_path, text).map_err(|e| DemoError::write(&job_path, e))?;
    Ok((job, job_path))
}

/// A demo file that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}")]
pub struct DemoError {
    pub path: PathBuf,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl Diagnose for DemoError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::CantCreate
    }
}

impl DemoError {
    fn write(path: &Path, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> DemoError {
        DemoError {
            path: path.to_path_buf(),
            source: e.into(),
        }
    }
}

/// What a pixel of [`road_scene`] shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScenePart {
    /// The odd-coloured object (the anomaly).
    Object,
    Sky,
    LaneMark,
    Road,
}

/// The geometry of one synthetic scene.
struct Scene {
    width: usize,
    horizon: usize,
    ox: f32,
    oy: f32,
    r: f32,
}

impl Scene {
    fn new(width: usize, height: usize, seed: u32) -> Scene {
        Scene {
            width,
            horizon: height * 2 / 5,
            ox: (width as u32 * (3 + seed % 4) / 10) as f32,
            oy: (height as u32 * (6 + seed % 3) / 10) as f32,
            r: (width.min(height) as f32) * 0.08 * (1.0 + (seed % 3) as f32 * 0.3),
        }
    }

    fn part(&self, x: usize, y: usize) -> ScenePart {
        let (xf, yf) = (x as f32, y as f32);
        if ((xf - self.ox).powi(2) + (yf - self.oy).powi(2)).sqrt() < self.r {
            ScenePart::Object
        } else if y < self.horizon {
            ScenePart::Sky
        } else if (x as i64 - self.width as i64 / 2).abs() < (self.width / 80).max(1) as i64
            && (y / 12).is_multiple_of(2)
        {
            ScenePart::LaneMark
        } else {
            ScenePart::Road
        }
    }
}

/// A synthetic road scene: sky gradient, grey road with lane marks, and an odd-coloured object.
pub fn road_scene(width: usize, height: usize, seed: u32) -> Rgb8 {
    let scene = Scene::new(width, height, seed);
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let px = match scene.part(x, y) {
                ScenePart::Object => [230, 40 + (seed * 37 % 150) as u8, 200],
                ScenePart::Sky => {
                    let t = y as f32 / scene.horizon as f32;
                    [(90.0 + 80.0 * t) as u8, (140.0 + 60.0 * t) as u8, 235]
                }
                ScenePart::LaneMark => [240, 240, 240],
                ScenePart::Road => {
                    let n = ((x * 13 + y * 7 + seed as usize) % 11) as u8;
                    [95 + n, 95 + n, 100 + n]
                }
            };
            data.extend(px);
        }
    }
    Rgb8 {
        width,
        height,
        data,
    }
}

/// Anomaly labels of [`road_scene`], row-major: 1 on the object, 0 on the road and its lane marks,
/// 255 (ignored) on the sky.
pub fn road_scene_labels(width: usize, height: usize, seed: u32) -> Vec<u8> {
    let scene = Scene::new(width, height, seed);
    let mut labels = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            labels.push(match scene.part(x, y) {
                ScenePart::Object => 1,
                ScenePart::Sky => 255,
                ScenePart::LaneMark | ScenePart::Road => 0,
            });
        }
    }
    labels
}

/// Saves an RGB image by extension (`jpg`, `png`, ...).
pub fn save_rgb(img: &Rgb8, path: &Path) -> image::ImageResult<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    image::RgbImage::from_raw(img.width as u32, img.height as u32, img.data.clone())
        .expect("buffer matches size")
        .save(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_the_scene() {
        let (w, h) = (64, 48);
        for seed in 0..4 {
            let img = road_scene(w, h, seed);
            let labels = road_scene_labels(w, h, seed);
            assert_eq!(labels.len(), w * h);
            let object = [230, 40 + (seed * 37 % 150) as u8, 200];
            for (i, &l) in labels.iter().enumerate() {
                let px = &img.data[i * 3..i * 3 + 3];
                assert_eq!(l == 1, px == object, "pixel {i}");
            }
            assert!(labels.contains(&0) && labels.contains(&1) && labels.contains(&255));
        }
    }
}
