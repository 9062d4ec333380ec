//! `run_eval` on small synthetic datasets written into a temporary folder.

use super::*;
use crate::dataset::layout::testutil::{grey, image};
use crate::job::DatasetKind;

const W: usize = 8;
const H: usize = 6;

/// Deterministic scores with ties, higher inside the anomaly.
fn scores(frame: usize, anomaly: &dyn Fn(usize, usize) -> bool) -> Vec<f32> {
    (0..H * W)
        .map(|i| {
            let (y, x) = (i / W, i % W);
            let base = ((x * 7 + y * 3 + frame * 5) % 10) as f32 / 20.0;
            if anomaly(x, y) {
                base + 0.45
            } else {
                base
            }
        })
        .collect()
}

fn job_for(kind: DatasetKind, root: &Path) -> Job {
    let mut job = Job::default();
    job.dataset.kind = kind;
    job.dataset.root = root.to_path_buf();
    job
}

fn quiet() -> EvalOptions {
    EvalOptions {
        progress: false,
        print_summary: false,
        ..Default::default()
    }
}

/// fs_static with two frames; frame 1 has an ignored column. Returns (root, predictions).
fn fs_static(dir: &Path) -> (PathBuf, PathBuf) {
    let root = dir.join("fs_static");
    let preds = dir.join("preds");
    std::fs::create_dir_all(&preds).unwrap();
    for f in 0..2usize {
        let in_anomaly = move |x: usize, y: usize| (2..5).contains(&x) && (1..3 + f).contains(&y);
        image(
            &root.join(format!("images/{f}.png")),
            W as u32,
            H as u32,
            [40, 80, 120],
        );
        grey(
            &root.join(format!("labels/{f}.png")),
            W as u32,
            H as u32,
            |x, y| {
                if f == 1 && x == 7 {
                    255
                } else {
                    in_anomaly(x as usize, y as usize) as u8
                }
            },
        );
        crate::output::npy::write_f32(
            &preds.join(format!("{f}.npy")),
            &scores(f, &in_anomaly),
            &[H, W],
        )
        .unwrap();
    }
    (root, preds)
}

#[test]
fn total_mode_pools_non_ignored_pixels_and_writes_every_report() {
    let d = tempfile::tempdir().unwrap();
    let (root, preds) = fs_static(d.path());
    std::fs::write(
        preds.join("manifest.json"),
        r#"{"run_id": "r1", "checkpoint": {"sha256": "ab"}, "x": 1}"#,
    )
    .unwrap();
    let out = d.path().join("eval");
    let opts = EvalOptions {
        smiyc: true,
        ..quiet()
    };
    let s = run_eval(&job_for(DatasetKind::FsStatic, &root), &preds, &out, &opts).unwrap();

    // The same pixels pooled by hand.
    let mut acc = metrics::HistogramAccumulator::new();
    for f in 0..2usize {
        let in_anomaly = move |x: usize, y: usize| (2..5).contains(&x) && (1..3 + f).contains(&y);
        let sc = scores(f, &in_anomaly);
        let gt: Vec<u8> = (0..H * W).map(|i| in_anomaly(i % W, i / W) as u8).collect();
        let ig: Vec<u8> = (0..H * W).map(|i| (f == 1 && i % W == 7) as u8).collect();
        acc.push(Histogram::from_pixels(&sc, &gt, Some(&ig)).unwrap());
    }
    let want = acc.finish().metrics().unwrap();
    let r = &s.results;
    assert_eq!(r.mode, Mode::Total);
    assert_eq!(
        (r.frames, r.pixels.ignored, r.pixels.evaluated),
        (2, 6, 2 * 48 - 6)
    );
    assert_eq!((r.ap, r.auroc, r.fpr95), (want.ap, want.auroc, want.fpr95));
    assert_eq!(r.prediction_dtype, "float32");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    for key in ["ap", "auroc", "fpr95", "fpr_at_tpr90_seed", "aupr_seed"] {
        let v = json[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    assert_eq!(json["mode"], "total");
    assert!(json["smiyc"]["ap"].as_f64().is_some());
    assert!(
        json["components"]["mean_f1"].as_f64().is_some() || json["components"]["mean_f1"].is_null()
    );
    assert_eq!(
        json["run"],
        serde_json::json!({"run_id": "r1", "checkpoint": {"sha256": "ab"}})
    );
    let txt = std::fs::read_to_string(out.join("results.txt")).unwrap();
    assert!(
        txt.starts_with(&format!("{:.3}%\n", 100.0 * want.ap)),
        "{txt}"
    );
    let csv = std::fs::read_to_string(out.join("per_frame.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3);
    assert!(csv.lines().nth(2).unwrap().starts_with("1,1,"), "{csv}");
    for f in [
        "pr_curve.png",
        "roc_curve.png",
        "overlays/000_heat.png",
        "overlays/001_anomaly.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The best-F1 overlay zeroes green and blue where the score passes the threshold.
    let marked = image::open(out.join("overlays/000_anomaly.png"))
        .unwrap()
        .into_rgb8();
    assert_eq!(marked.get_pixel(3, 1).0, [40, 0, 0]);
    assert_eq!(marked.get_pixel(0, 5).0, [40, 80, 120]);
}

#[test]
fn float16_hdf5_predictions_are_reported_as_such() {
    let d = tempfile::tempdir().unwrap();
    let (root, preds) = fs_static(d.path());
    for f in 0..2 {
        let p = predictions::read(&preds.join(format!("{f}.npy"))).unwrap();
        std::fs::remove_file(preds.join(format!("{f}.npy"))).unwrap();
        let v: Vec<half::f16> = p.scores.iter().map(|&x| half::f16::from_f32(x)).collect();
        let file = hdf5::File::create(preds.join(format!("{f}.hdf5"))).unwrap();
        file.new_dataset::<half::f16>()
            .shape((H, W))
            .create("value")
            .unwrap()
            .write_raw(&v)
            .unwrap();
    }
    let opts = EvalOptions {
        plots: false,
        overlays: false,
        ..quiet()
    };
    let s = run_eval(
        &job_for(DatasetKind::FsStatic, &root),
        &preds,
        &d.path().join("o"),
        &opts,
    )
    .unwrap();
    assert_eq!(s.results.prediction_dtype, "float16");
    assert!(!d.path().join("o/pr_curve.png").exists());
}

#[test]
fn street_hazards_uses_image_mode_and_refuses_labels_without_anomalies() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("streethazards-test/test");
    let preds = d.path().join("preds");
    for (f, town) in ["t5", "t6"].iter().enumerate() {
        let in_anomaly = move |x: usize, y: usize| f == 0 && x < 3 && y < 2;
        image(
            &root.join(format!("images/test/{town}/100.png")),
            W as u32,
            H as u32,
            [1, 2, 3],
        );
        grey(
            &root.join(format!("annotations/test/{town}/100.png")),
            W as u32,
            H as u32,
            |x, y| {
                if in_anomaly(x as usize, y as usize) {
                    14
                } else {
                    3
                }
            },
        );
        std::fs::create_dir_all(&preds).unwrap();
        crate::output::npy::write_f32(
            &preds.join(format!("{town}_100.npy")),
            &scores(f, &in_anomaly),
            &[H, W],
        )
        .unwrap();
    }
    let mut job = job_for(DatasetKind::StreetHazards, d.path());
    let opts = EvalOptions {
        plots: false,
        overlays: false,
        ..quiet()
    };
    let s = run_eval(&job, &preds, &d.path().join("o"), &opts).unwrap();
    assert_eq!(s.results.mode, Mode::Image);
    // Frame t6 has no anomaly: its AP (-0.0) counts in the mean, its AUROC (NaN) does not.
    let m0 = s.per_frame[0].metrics.unwrap();
    let m1 = s.per_frame[1].metrics.unwrap();
    assert!(m1.ap == 0.0 && m1.auroc.is_nan());
    assert_eq!(s.results.ap, metrics::nanmean_f32(&[m0.ap, m1.ap]));
    assert_eq!(s.results.auroc, m0.auroc as f32 as f64);

    job.dataset.label_value = Some(vec![255]);
    let err = run_eval(&job, &preds, &d.path().join("o"), &opts).unwrap_err();
    assert!(matches!(err, EvalError::NoPositives { .. }), "{err}");
    let hint = crate::diagnostic::Diagnose::hint(&err).unwrap();
    assert!(hint.contains("label_value"), "{hint}");
}

#[test]
fn missing_or_mis_sized_predictions_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let (root, preds) = fs_static(d.path());
    let job = job_for(DatasetKind::FsStatic, &root);
    let opts = EvalOptions {
        plots: false,
        overlays: false,
        ..quiet()
    };
    crate::output::npy::write_f32(&preds.join("1.npy"), &[0.0; 4], &[2, 2]).unwrap();
    let err = run_eval(&job, &preds, &d.path().join("o"), &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1.npy") && err.contains("2×2"), "{err}");
    std::fs::remove_file(preds.join("1.npy")).unwrap();
    let err = run_eval(&job, &preds, &d.path().join("o"), &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no prediction for item `1`"), "{err}");
}

#[test]
fn unlabelled_items_cannot_be_evaluated() {
    let d = tempfile::tempdir().unwrap();
    image(&d.path().join("a.png"), 2, 2, [0, 0, 0]);
    let err = run_eval(
        &job_for(DatasetKind::Folder, d.path()),
        &d.path().join("preds"),
        &d.path().join("o"),
        &quiet(),
    )
    .unwrap_err();
    assert!(matches!(err, EvalError::NoLabel { .. }));
}

/// `eval --smiyc` on every dataset case of `tests/fixtures/smiyc/` (written by
/// `scripts/make_smiyc_fixtures.py` with the benchmark's own code): the fixture's frames become a
/// SMIYC track folder (labels 0 / 1 / 255) and HDF5 maps of the fixture's dtype; the binned pixel
/// metrics equal the benchmark's within 1e-9, the component counts exactly.
#[test]
fn smiyc_metrics_equal_the_benchmark_on_fixtures() {
    use crate::eval::components::fixture_tests::check_components;
    use crate::eval::smiyc::fixture_tests::{cases, check, dtype, frames};
    let mut checked = 0;
    for (name, case) in cases() {
        let Some(want_pixel) = case["expected"].get("pixel") else {
            continue;
        };
        let (kind, folder) = match case["track"].as_str().unwrap() {
            "anomaly" => (DatasetKind::SmiycAnomaly, "dataset_AnomalyTrack"),
            "obstacle" => (DatasetKind::SmiycObstacle, "dataset_ObstacleTrack"),
            other => panic!("{name}: track {other}"),
        };
        let d = tempfile::tempdir().unwrap();
        let (root, preds) = (d.path().join("smiyc"), d.path().join("preds"));
        std::fs::create_dir_all(&preds).unwrap();
        for f in frames(&case) {
            let (w, h) = (f.width as u32, f.height as u32);
            image(
                &root.join(format!("{folder}/images/{}.png", f.fid)),
                w,
                h,
                [9, 9, 9],
            );
            grey(
                &root.join(format!(
                    "{folder}/labels_masks/{}_labels_semantic.png",
                    f.fid
                )),
                w,
                h,
                |x, y| {
                    let i = (y * w + x) as usize;
                    if f.void[i] != 0 {
                        255
                    } else {
                        f.anomaly[i]
                    }
                },
            );
            let file = hdf5::File::create(preds.join(format!("{}.hdf5", f.fid))).unwrap();
            let shape = (f.height, f.width);
            match dtype(&case) {
                PredDtype::Float16 => {
                    let v: Vec<half::f16> =
                        f.scores.iter().map(|&s| half::f16::from_f32(s)).collect();
                    file.new_dataset::<half::f16>()
                        .shape(shape)
                        .create("value")
                        .unwrap()
                        .write_raw(&v)
                        .unwrap();
                }
                PredDtype::Float32 => file
                    .new_dataset::<f32>()
                    .shape(shape)
                    .create("value")
                    .unwrap()
                    .write_raw(&f.scores)
                    .unwrap(),
            }
        }
        let opts = EvalOptions {
            smiyc: true,
            plots: false,
            overlays: false,
            ..quiet()
        };
        let out = d.path().join("eval");
        let s = run_eval(&job_for(kind, &root), &preds, &out, &opts).unwrap();
        let m = s.results.smiyc.expect("smiyc block");
        for (k, got) in [
            ("ap", m.ap),
            ("auroc", m.auroc),
            ("fpr95", m.fpr95),
            ("tpr95_threshold", m.tpr95_threshold),
            ("best_f1", m.best_f1),
            ("best_f1_threshold", m.best_f1_threshold),
        ] {
            check(&name, k, got, &want_pixel[k], 1e-9);
        }
        assert_eq!(
            m.curve_points as u64,
            want_pixel["curve_points"].as_u64().unwrap()
        );
        let c = s.results.components.as_ref().expect("components block");
        check_components(&name, c, &case["expected"]["components"]);
        // results.json carries both blocks.
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(json["smiyc"]["curve_points"], want_pixel["curve_points"]);
        assert_eq!(
            json["components"]["by_siou"][0]["fn"],
            case["expected"]["components"]["by_siou"][0]["fn"]
        );
        checked += 1;
    }
    assert!(checked >= 5, "SMIYC dataset fixtures missing");
}

/// The page does not grow with the dataset: with 60 or 240 frames it holds the same number of
/// frame rows (the 25 lowest- and 25 highest-AP frames), the same gallery, and the same pictures;
/// every frame stays in `per_frame.csv`.
#[test]
fn report_page_is_bounded_in_the_number_of_frames() {
    let mut sizes = Vec::new();
    for n in [60usize, 240] {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("fs_static");
        let preds = d.path().join("preds");
        std::fs::create_dir_all(&preds).unwrap();
        for f in 0..n {
            let in_anomaly = move |x: usize, y: usize| (2..5).contains(&x) && (1..3).contains(&y);
            image(
                &root.join(format!("images/{f:04}.png")),
                W as u32,
                H as u32,
                [40, 80, 120],
            );
            grey(
                &root.join(format!("labels/{f:04}.png")),
                W as u32,
                H as u32,
                |x, y| in_anomaly(x as usize, y as usize) as u8,
            );
            crate::output::npy::write_f32(
                &preds.join(format!("{f:04}.npy")),
                &scores(f, &in_anomaly),
                &[H, W],
            )
            .unwrap();
        }
        let out = d.path().join("eval");
        let opts = EvalOptions {
            overlays: false,
            ..quiet()
        };
        run_eval(&job_for(DatasetKind::FsStatic, &root), &preds, &out, &opts).unwrap();
        let page = std::fs::read_to_string(out.join("report.html")).unwrap();
        let table = page.split("<table class=\"frames\">").nth(1).unwrap();
        let rows = table.matches("<tr>").count() - 1;
        assert_eq!(rows, 2 * html::picks::TABLE_ROWS, "{n} frames");
        let pictures = std::fs::read_dir(out.join("report")).unwrap().count();
        let csv = std::fs::read_to_string(out.join("per_frame.csv")).unwrap();
        assert_eq!(csv.lines().count(), n + 1);
        sizes.push((page.matches("<img ").count(), pictures));
    }
    assert_eq!(sizes[0], sizes[1], "the page grew with the frames");
    assert!(sizes[0].0 <= 4 * 2 * html::picks::GALLERY_FRAMES);
}

/// `eval`'s errors get the run's exit codes.
#[test]
fn eval_errors_follow_the_run_policy() {
    let root = EvalError::Dataset(crate::dataset::DatasetError::NoRoot("/in".into()));
    assert_eq!(root.exit_code(), ExitCode::NoInput);
    assert!(root.hint().is_some());
    let full = EvalError::Write {
        path: "/out/results.json".into(),
        source: std::io::Error::from_raw_os_error(libc::ENOSPC).into(),
    };
    assert_eq!(full.exit_code(), ExitCode::Io);
    let gone = EvalError::ReadImage {
        path: "/in/a.png".into(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound).into(),
    };
    assert_eq!(gone.exit_code(), ExitCode::NoInput);
    assert_eq!(gone.to_string(), "cannot read image /in/a.png");
    let garbage = EvalError::ReadImage {
        path: "/in/a.png".into(),
        source: "not a PNG".into(),
    };
    assert_eq!(garbage.exit_code(), ExitCode::Data);
    let scored = compare::CompareError::Eval {
        score: crate::scores::ScoreKind::Rba,
        source: full,
    };
    assert_eq!(scored.exit_code(), ExitCode::Io);
}
