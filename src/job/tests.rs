//! Tests of the job file: defaults, validation, error positions.

use super::*;

fn parse(text: &str) -> Result<Job, JobError> {
    Job::from_yaml(text, Path::new("job.yaml"))
}

#[test]
fn empty_job_is_the_default_job() {
    let job = parse("").unwrap();
    assert_eq!(job, Job::default());
    assert_eq!(job.dataset.root, PathBuf::from("/input"));
    assert_eq!(job.output.root, PathBuf::from("/output"));
    assert_eq!(job.method.anomaly_queries, vec![49, 31, 83, 32]);
}

#[test]
fn partial_job_keeps_defaults() {
    let job = parse("method:\n  lambda: 0.7\noutput: {png: false}\n").unwrap();
    assert_eq!(job.method.lambda, 0.7);
    assert_eq!(job.method.ground_queries, vec![19, 24]);
    assert!(!job.output.png);
    assert!(job.output.hdf5.enabled);
}

#[test]
fn unknown_key_is_rejected_with_its_name_and_line() {
    let err = parse("name: x\nmethod:\n  lamda: 0.7\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("lamda"), "{err}");
    assert!(err.contains('3'), "line missing: {err}");
}

#[test]
fn wrong_type_names_the_line() {
    let err = parse("runtime:\n  batch_size: many\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batch_size") || err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn out_of_range_value_names_key_and_line() {
    let err = parse("name: x\nmethod:\n  void_class: 19\n  lambda: 1.5\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`method.lambda`"), "{msg}");
    assert!(msg.contains("line 4"), "{msg}");
}

/// Maskomaly's keys are checked when the job computes Maskomaly, and only then.
#[test]
fn maskomaly_keys_are_checked_only_for_maskomaly() {
    let text = "method:\n  scores: [energy, msp]\n  anomaly_queries: []\n  lambda: 1.5\n";
    let job = parse(text).unwrap();
    assert_eq!(job.method.scores, [ScoreKind::Energy, ScoreKind::Msp]);
    let with = text.replace("[energy, msp]", "[energy, maskomaly]");
    let msg = parse(&with).unwrap_err().to_string();
    assert!(msg.contains("`method.anomaly_queries`"), "{msg}");
}

#[test]
fn bad_sha256_is_rejected() {
    let err = parse("checkpoint: {sha256: abc}\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("checkpoint.sha256"), "{err}");
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn dataset_label_keys_parse() {
    let job =
        parse("dataset: {kind: street_hazards, label_value: [255], labels: color}\n").unwrap();
    assert_eq!(job.dataset.label_value, Some(vec![255]));
    assert_eq!(job.dataset.labels, LabelFormat::Color);
    let err = parse("dataset:\n  label_value: []\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dataset.label_value") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn precision_parses_and_defaults_to_fp32() {
    assert_eq!(parse("").unwrap().runtime.precision, Precision::Fp32);
    for p in Precision::ALL {
        let job = parse(&format!("runtime:\n  precision: {p}\n")).unwrap();
        assert_eq!(job.runtime.precision, p);
    }
}

#[test]
fn text_names_equal_the_job_file_names() {
    let serde_name = |v: serde_json::Value| v.as_str().unwrap().to_string();
    for &k in <DatasetKind as strum::VariantArray>::VARIANTS {
        assert_eq!(k.as_str(), serde_name(serde_json::to_value(k).unwrap()));
    }
    for p in Precision::ALL {
        assert_eq!(p.as_str(), serde_name(serde_json::to_value(p).unwrap()));
        assert_eq!(p.to_string(), p.as_str());
        assert_eq!(p.as_str().parse::<Precision>(), Ok(p));
    }
    assert_eq!(DatasetKind::FsLaf.as_str(), "fs_laf");
    assert_eq!(Precision::Bf16.as_str(), "bf16");
    let e = "fp8".parse::<Precision>().unwrap_err();
    assert!(e.contains("fp8") && e.contains("pytorch"), "{e}");
}

#[test]
fn unknown_precision_is_rejected_with_its_name_and_line() {
    let err = parse("name: x\nruntime:\n  device: cpu\n  precision: fp8\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("fp8"), "{err}");
    assert!(err.contains("precision"), "{err}");
    assert!(err.contains('4'), "line missing: {err}");
}

#[test]
fn scores_parse_in_order_and_default_to_maskomaly() {
    assert_eq!(parse("").unwrap().method.scores, vec![ScoreKind::Maskomaly]);
    let job =
        parse("method:\n  scores: [rba, maskomaly, entropy]\n  rba: {smoothing: true}\n").unwrap();
    assert_eq!(
        job.method.scores,
        vec![ScoreKind::Rba, ScoreKind::Maskomaly, ScoreKind::Entropy]
    );
    assert!(job.method.rba.smoothing);
    let all = parse("method:\n  scores: [maskomaly, rba, eam, energy, msp, entropy]\n").unwrap();
    assert_eq!(all.method.scores, ScoreKind::ALL.to_vec());
}

#[test]
fn unknown_score_lists_the_valid_names_and_the_line() {
    let err = parse("name: x\nmethod:\n  lambda: 0.5\n  scores: [maskomaly, odin]\n")
        .unwrap_err()
        .to_string();
    eprintln!("{err}");
    assert!(err.contains("odin"), "{err}");
    for k in ScoreKind::ALL {
        assert!(err.contains(k.as_str()), "{k} missing: {err}");
    }
    assert!(err.contains("line 4"), "line missing: {err}");
}

#[test]
fn repeated_score_lists_the_valid_names_and_the_line() {
    let err = parse("name: x\nmethod:\n  scores:\n    - rba\n    - eam\n    - rba\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("method.scores") && err.contains("`rba` twice"),
        "{err}"
    );
    assert!(err.contains("line 3"), "line missing: {err}");
    for k in ScoreKind::ALL {
        assert!(err.contains(k.as_str()), "{k} missing: {err}");
    }
    let err = parse("method: {scores: []}\n").unwrap_err().to_string();
    assert!(
        err.contains("method.scores") && err.contains("line 1"),
        "{err}"
    );
}

#[test]
fn job_round_trips_through_json() {
    let job = parse("name: rt\noutput: {layout: smiyc, hdf5: {dtype: float16}}\n").unwrap();
    let back: Job = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
    assert_eq!(job, back);
}

#[test]
fn only_a_named_url_is_used_for_a_checkpoint() {
    // The default job fetches the model zoo's file for its default path.
    let job = parse("").unwrap();
    assert_eq!(job.checkpoint.effective_url(), Some(DEFAULT_CHECKPOINT_URL));
    // A job naming another path gets no URL unless it names one too.
    let job = parse("checkpoint: {path: /models/typo.pkl}\n").unwrap();
    assert_eq!(job.checkpoint.effective_url(), None);
    let job = parse("checkpoint: {path: /m/x.pkl, url: 'http://h/x.pkl'}\n").unwrap();
    assert_eq!(job.checkpoint.effective_url(), Some("http://h/x.pkl"));
    // A checkpoint section that keeps the default path keeps the default file's URL.
    let job = parse("checkpoint: {sha256: null}\n").unwrap();
    assert_eq!(job.checkpoint.effective_url(), Some(DEFAULT_CHECKPOINT_URL));
}

#[test]
fn resource_settings_are_bounded() {
    for (text, key) in [
        ("runtime: {queue_depth: 100000000}\n", "runtime.queue_depth"),
        ("runtime: {batch_size: 100000}\n", "runtime.batch_size"),
        ("runtime: {max_pixels: 0}\n", "runtime.max_pixels"),
        (
            "preprocess: {max_size: 4000000000}\n",
            "preprocess.max_size",
        ),
        (
            "preprocess: {size_divisibility: 100000}\n",
            "preprocess.size_divisibility",
        ),
    ] {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains("line 1"), "{text}: {err}");
    }
    // Decode workers are capped by the cores and the work, not refused.
    let job = parse("runtime: {decode_workers: 10000}\n").unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(job.decode_workers(6), cores.min(6));
    assert_eq!(job.decode_workers(0), 1);
    assert_eq!(parse("").unwrap().runtime.max_pixels, DEFAULT_MAX_PIXELS);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Fragments of real job files, recombined and mutated below.
    const PIECES: &[&str] = &[
        "name: x\n",
        "dataset:\n  kind: folder\n  root: /in\n",
        "dataset: {kind: smiyc_anomaly, split: validation, label_value: [1, 255]}\n",
        "checkpoint: {format: torchscript, path: m.pt, url: null, sha256: null}\n",
        "preprocess:\n  min_size: 96\n  max_size: 192\n  pixel_std: [1, 2, 3]\n",
        "method:\n  anomaly_queries: [1, 2]\n  lambda: 0.5\n",
        "method: {anomaly_queries_top: 3, rejection_threshold: .nan}\n",
        "output: {root: /o, layout: smiyc, hdf5: {dtype: float16}}\n",
        "runtime: {device: cpu, precision: bf16, batch_size: 2, max_pixels: 1e3}\n",
        "&a [1, 2]\n",
        "*a\n",
        "!!binary AAAA\n",
        "? [a, b]\n: c\n",
        "- - - -\n",
        "{{{{[[[[\n",
        "'unterminated\n",
        "\t: \t\n",
        "key: \"\\u00ff\\x00\"\n",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Arbitrary text: a job or an error, never a panic.
        #[test]
        fn job_parser_never_panics_on_any_text(text in "\\PC{0,200}") {
            let _ = Job::from_yaml(&text, Path::new("fuzz.yaml"));
        }

        /// Recombined pieces of job files with byte-level edits.
        #[test]
        fn job_parser_never_panics_on_mutated_jobs(
            picks in proptest::collection::vec(0..PIECES.len(), 0..8),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        ) {
            let mut bytes: Vec<u8> = picks.iter().flat_map(|&i| PIECES[i].bytes()).collect();
            for (at, b) in edits {
                if !bytes.is_empty() {
                    let i = at % bytes.len();
                    bytes[i] = b;
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(job) = Job::from_yaml(&text, Path::new("fuzz.yaml")) {
                // Whatever parses has passed validation.
                prop_assert!(job.validate(None, Path::new("fuzz.yaml")).is_ok());
            }
        }
    }
}
