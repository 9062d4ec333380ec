//! The README's pictures, made from the demo (`maskomaly demo`'s scenes and stand-in model):
//!
//! * `docs/demo_heatmap.png`: the first demo scene beside the JET heat map of the score the run
//!   wrote for it (blue 0 … red 1);
//! * `docs/report_metrics.png`: the comparison table of the evaluation page (`report.html`) of the
//!   demo run with three scores (Maskomaly, RbA, MSP), rendered by headless Chromium (Debian's
//!   `chromium`) and cropped.
//!
//! ```text
//! cargo run --example docs_pictures [-- --dir target/docs-demo --out docs]
//! ```

#[path = "../tests/common/browser.rs"]
mod browser;
mod common;
use common::arg;

use maskomaly::eval::compare::{run_compare, CompareOutcome};
use maskomaly::eval::{html, EvalOptions};
use maskomaly::job::ScoreKind;
use maskomaly::pipeline::{self, RunOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

/// Width of each half of the heat-map picture.
const HALF_WIDTH: u32 = 400;

fn main() {
    let args = common::cli(include_str!("docs_pictures.rs"));
    let dir = PathBuf::from(arg(&args, "--dir", "target/docs-demo"));
    let out = PathBuf::from(arg(&args, "--out", "docs"));
    std::fs::create_dir_all(&out).expect("create the output folder");
    let (mut job, _) = maskomaly::demo::prepare(&dir).expect("write the demo inputs");
    // Three scores from one forward pass: the page compares them.
    job.method.scores = vec![ScoreKind::Maskomaly, ScoreKind::Rba, ScoreKind::Msp];
    let opts = RunOptions {
        overwrite: true,
        quiet: true,
        ..Default::default()
    };
    let summary = pipeline::run(&job, &opts, Arc::new(AtomicUsize::new(0))).expect("demo run");
    assert_eq!(summary.counts.failed, 0, "demo items failed");
    let eval_dir = job.output.root.join("eval");
    let outcome = run_compare(
        &job,
        &job.output.root,
        &eval_dir,
        &EvalOptions {
            progress: false,
            print_summary: false,
            ..Default::default()
        },
        None,
    )
    .expect("demo evaluation");
    let CompareOutcome::Several { per_score, .. } = outcome else {
        panic!("the demo run wrote one score only");
    };

    let scene = first_file(&job.dataset.root.join("images"));
    let stem = scene.file_stem().unwrap().to_string_lossy().into_owned();
    let pred =
        maskomaly::eval::predictions::read(&job.output.root.join(format!("maskomaly/{stem}.hdf5")))
            .expect("the demo's score map");
    let heat = image::RgbImage::from_fn(pred.width as u32, pred.height as u32, |x, y| {
        let s = pred.scores[y as usize * pred.width + x as usize];
        image::Rgb(maskomaly::output::image::jet(
            (s * 255.0).clamp(0.0, 255.0) as u8
        ))
    });
    let scene = image::open(&scene).expect("demo scene").into_rgb8();
    side_by_side(scene, heat, &out.join("demo_heatmap.png"));

    let chromium = browser::find_chromium().expect("chromium is needed (apt-get install chromium)");
    let page = dir.join("metrics.html");
    let rows: Vec<(&str, &maskomaly::eval::EvalResults)> = per_score
        .iter()
        .map(|(k, s)| (k.as_str(), &s.results))
        .collect();
    std::fs::write(&page, html::metrics_page(&rows)).unwrap();
    let shot = dir.join("metrics.png");
    browser::screenshot(
        &chromium,
        &page,
        &shot,
        (1000, 400),
        Duration::from_secs(120),
        &[],
    )
    .expect("screenshot");
    crop_to_content(&shot, &out.join("report_metrics.png"));
    println!(
        "{} and {} (AP: {}); the page: {}",
        out.join("demo_heatmap.png").display(),
        out.join("report_metrics.png").display(),
        rows.iter()
            .map(|(k, r)| format!("{k} {:.2}%", 100.0 * r.ap))
            .collect::<Vec<_>>()
            .join(", "),
        eval_dir.join("report.html").display()
    );
}

fn first_file(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("demo images")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.remove(0)
}

/// The two pictures scaled to `HALF_WIDTH` and put side by side with a white gap.
fn side_by_side(a: image::RgbImage, b: image::RgbImage, out: &Path) {
    let scale = |img: image::RgbImage| {
        let h = (img.height() as f64 * HALF_WIDTH as f64 / img.width() as f64).round() as u32;
        image::imageops::resize(&img, HALF_WIDTH, h, image::imageops::FilterType::Triangle)
    };
    let (a, b) = (scale(a), scale(b));
    let gap = 8;
    let mut canvas =
        image::RgbImage::from_pixel(2 * HALF_WIDTH + gap, a.height(), image::Rgb([255; 3]));
    image::imageops::replace(&mut canvas, &a, 0, 0);
    image::imageops::replace(&mut canvas, &b, (HALF_WIDTH + gap) as i64, 0);
    canvas.save(out).unwrap();
}

/// Crops a screenshot to what differs from its corner pixel, with a small margin.
fn crop_to_content(shot: &Path, out: &Path) {
    let img = image::open(shot).unwrap().into_rgb8();
    let bg = *img.get_pixel(0, 0);
    let (mut x0, mut y0, mut x1, mut y1) = (img.width(), img.height(), 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if *p != bg {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    assert!(x1 > x0 && y1 > y0, "the metrics page rendered blank");
    let m = 6;
    let (x0, y0) = (x0.saturating_sub(m), y0.saturating_sub(m));
    let (x1, y1) = (
        (x1 + m).min(img.width() - 1),
        (y1 + m).min(img.height() - 1),
    );
    image::imageops::crop_imm(&img, x0, y0, x1 - x0 + 1, y1 - y0 + 1)
        .to_image()
        .save(out)
        .unwrap();
}
