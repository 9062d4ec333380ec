//! Dataset-scale benchmark: the real release binary over N small frames (64×128 PNG, folders of
//! 500) with a small TorchScript model, under GNU time (`/usr/bin/time -v`). Records the run's wall
//! time, time per frame, peak RSS, the manifest's size, the bytes written to the manifest, its
//! journal and their sorting over the run (counted by the binary, `--json`), the file-system bytes
//! the process wrote (GNU time's "File system outputs" × 512), a rerun with nothing to do, `verify`,
//! and `merge` of `--merge-shards` shard manifests of `--merge-items` items each.
//!
//! `cargo run --release --example bench_scale -- [--frames 10000] [--merge-shards 1000]
//!  [--merge-items 1000] [--hdf5] [--bin target/release/maskomaly] [--dir target/bench/scale-work]
//!  [--out target/bench] [--keep]`
//!
//! Outputs are 16-bit PNG maps only, unless `--hdf5` adds the default HDF5 maps (34 KiB a frame).
//! The frames are made once per `--dir` and kept there with `--keep` (else removed at the end, with
//! the run's outputs). Writes `<out>/scale-<frames>.json` and prints one table row.

mod common;
use common::arg;

use maskomaly::provenance::manifest::{
    CheckpointInfo, Counts, ItemRecord, ItemStatus, Manifest, Numerics, OutputFile, Program,
    RunStatus, Timings, FORMAT,
};
use maskomaly::provenance::shard::{self, Shard, ShardSource};
use maskomaly::provenance::stream::ManifestWriter;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What GNU time reported about one command.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct Timed {
    wall_s: f64,
    peak_rss_kib: u64,
    fs_out_bytes: u64,
    exit: i32,
}

/// Runs `cmd` under `/usr/bin/time -v`; its stdout comes back with the figures.
fn timed(bin: &Path, args: &[&str]) -> (Timed, String) {
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(bin)
        .args(args)
        .output()
        .expect("/usr/bin/time (Debian package `time`, installed by scripts/bench-deps.sh)");
    let err = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| -> Option<&str> {
        err.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim_start_matches(':').trim())
    };
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)").map_or(f64::NAN, |v| {
        v.split(':')
            .map(|p| p.parse::<f64>().unwrap_or(f64::NAN))
            .fold(0.0, |acc, x| acc * 60.0 + x)
    });
    let num = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let t = Timed {
        wall_s: wall,
        peak_rss_kib: num("Maximum resident set size (kbytes)"),
        fs_out_bytes: num("File system outputs") * 512,
        exit: num("Exit status") as i32,
    };
    if t.exit != 0 && t.exit != 1 {
        eprintln!(
            "{}",
            err.lines().rev().take(30).collect::<Vec<_>>().join("\n")
        );
    }
    (t, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `n` frames in folders of 500: `frames/f0000/000000.png`… Sixteen distinct scenes, written as
/// bytes once encoded (a million encodes would dominate the set-up).
fn make_frames(root: &Path, n: usize) {
    let marker = root.join(format!(".made-{n}"));
    if marker.exists() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let scenes: Vec<Vec<u8>> = (0..16u32)
        .map(|i| {
            let p = tmp.path().join(format!("{i}.png"));
            maskomaly::demo::save_rgb(&maskomaly::demo::road_scene(128, 64, i), &p).unwrap();
            std::fs::read(&p).unwrap()
        })
        .collect();
    for i in 0..n {
        let dir = root.join(format!("f{:04}", i / 500));
        if i % 500 == 0 {
            std::fs::create_dir_all(&dir).unwrap();
        }
        std::fs::write(dir.join(format!("{i:07}.png")), &scenes[i % 16]).unwrap();
    }
    std::fs::write(marker, b"").unwrap();
}

fn dir_bytes(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// `shards` shard manifests of `items` records each (synthetic records: merge reads only the
/// manifests) under `<root>/manifests/`, over an input root that does not exist (so the expected
/// items are the recorded ones).
fn make_shard_manifests(root: &Path, shards: usize, items: usize) {
    let mut job = maskomaly::job::Job::default();
    job.dataset.root = root.join("no-such-input");
    let header = Manifest {
        format: FORMAT.into(),
        run_id: String::new(),
        program: Program {
            name: "maskomaly".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            git_commit: None,
        },
        command_line: vec!["maskomaly".into(), "run".into()],
        job: serde_json::to_value(&job).unwrap(),
        libtorch: "bench".into(),
        device: "cpu".into(),
        model: "bench".into(),
        numerics: Numerics {
            precision: "fp32".into(),
            tf32: false,
            deterministic: true,
        },
        checkpoint: CheckpointInfo {
            path: "/bench.pt".into(),
            format: "torchscript".into(),
            sha256: "00".into(),
        },
        shard: None,
        started: "2026-01-01T00:00:00Z".into(),
        finished: Some("2026-01-01T00:10:00Z".into()),
        status: RunStatus::Complete,
        counts: Counts::default(),
        items: vec![],
    };
    for k in 0..shards {
        let s = Shard {
            index: k,
            count: shards,
            source: ShardSource::Flag,
        };
        let h = Manifest {
            run_id: format!("bench-{k}"),
            shard: Some(s),
            ..header.clone()
        };
        let mut w = ManifestWriter::create(&shard::manifest_path(root, Some(&s)), &h, &[]).unwrap();
        for i in 0..items {
            let n = k * items + i;
            let stem = format!("f{:04}/{n:07}", n / 500);
            w.push(&ItemRecord {
                input: format!("{stem}.png").into(),
                input_sha256: Some(format!("{n:064x}")),
                input_size: Some(1000),
                input_mtime_ns: Some(0),
                stem: stem.clone().into(),
                status: ItemStatus::Written,
                error: None,
                outputs: vec![OutputFile {
                    path: format!("{stem}.png").into(),
                    sha256: format!("{:064x}", n + 1),
                }],
                nan_values: 0,
                timings_ms: Timings::default(),
            })
            .unwrap();
        }
        w.commit(items, None).unwrap();
    }
}

fn main() {
    let args = common::cli(include_str!("bench_scale.rs"));
    let n: usize = arg(&args, "--frames", "10000").parse().expect("--frames");
    let shards: usize = arg(&args, "--merge-shards", "1000")
        .parse()
        .expect("--merge-shards");
    let per_shard: usize = arg(&args, "--merge-items", "1000")
        .parse()
        .expect("--merge-items");
    let hdf5 = args.iter().any(|a| a == "--hdf5");
    let keep = args.iter().any(|a| a == "--keep");
    let bin = PathBuf::from(arg(&args, "--bin", "target/release/maskomaly"));
    let work = PathBuf::from(arg(&args, "--dir", "target/bench/scale-work"));
    let out = PathBuf::from(arg(&args, "--out", "target/bench"));
    assert!(
        bin.is_file(),
        "{} not found: cargo build --release --bin maskomaly",
        bin.display()
    );
    std::fs::create_dir_all(&out).unwrap();
    let frames = work.join(format!("frames-{n}"));
    let run_out = work.join(format!("out-{n}"));
    let _ = std::fs::remove_dir_all(&run_out);
    eprintln!("bench_scale: making {n} frames in {}", frames.display());
    make_frames(&frames, n);
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_maskformer.pt");
    let job = work.join("job.yaml");
    std::fs::write(
        &job,
        format!(
            "name: scale\ncheckpoint: {{format: torchscript}}\n\
             preprocess: {{min_size: 64, max_size: 128}}\n\
             output: {{hdf5: {{enabled: {hdf5}}}, png: true}}\n\
             runtime: {{device: cpu}}\n"
        ),
    )
    .unwrap();
    let (f, o, m) = (
        frames.to_string_lossy().into_owned(),
        run_out.to_string_lossy().into_owned(),
        model.to_string_lossy().into_owned(),
    );
    let run_args = [
        "run",
        "--job",
        job.to_str().unwrap(),
        "--input",
        &f,
        "--output",
        &o,
        "--checkpoint",
        &m,
        "--quiet",
        "--json",
    ];
    eprintln!("bench_scale: run over {n} frames");
    let (run, stdout) = timed(&bin, &run_args);
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or(json!(null));
    let manifest_bytes = std::fs::metadata(run_out.join("manifest.json")).map_or(0, |m| m.len());
    let crate_bytes =
        std::fs::metadata(run_out.join("ro-crate-metadata.json")).map_or(0, |m| m.len());
    let output_bytes = dir_bytes(&run_out);
    eprintln!("bench_scale: rerun with nothing to do");
    let (rerun, rerun_stdout) = timed(&bin, &run_args);
    let rerun_summary: serde_json::Value =
        serde_json::from_str(rerun_stdout.trim()).unwrap_or(json!(null));
    eprintln!("bench_scale: verify");
    let (verify, _) = timed(&bin, &["verify", &o]);

    eprintln!("bench_scale: merge of {shards} shard manifests × {per_shard} items");
    let merge_dir = work.join(format!("merge-{shards}x{per_shard}"));
    let _ = std::fs::remove_dir_all(&merge_dir);
    make_shard_manifests(&merge_dir, shards, per_shard);
    let shard_bytes = dir_bytes(&merge_dir.join("manifests"));
    let (merge, _) = timed(&bin, &["merge", merge_dir.to_str().unwrap()]);
    let merged_bytes = std::fs::metadata(merge_dir.join("manifest.json")).map_or(0, |m| m.len());
    let disk = dir_bytes(&work);

    let per_frame_ms = run.wall_s * 1e3 / n as f64;
    let report = json!({
        "frames": n,
        "outputs": if hdf5 { "hdf5+png" } else { "png" },
        "run": run,
        "per_frame_ms": per_frame_ms,
        "written": summary["written"],
        "failed": summary["failed"],
        "manifest_bytes": manifest_bytes,
        "manifest_bytes_written": summary["manifest_bytes_written"],
        "ro_crate_bytes": crate_bytes,
        "output_folder_bytes": output_bytes,
        "rerun": rerun,
        "rerun_skipped": rerun_summary["skipped"],
        "rerun_share_of_run": rerun.wall_s / run.wall_s,
        "verify": verify,
        "merge": {"shards": shards, "items_per_shard": per_shard, "timed": merge,
                  "shard_manifest_bytes": shard_bytes, "merged_manifest_bytes": merged_bytes},
        "work_folder_bytes": disk,
        "binary": bin,
    });
    let path = out.join(format!("scale-{n}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
    println!(
        "| frames | wall | per frame | peak RSS | manifest | manifest bytes written | rerun | verify | merge {shards}×{per_shard} (wall, peak RSS) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {n} | {:.1} s | {:.2} ms | {:.0} MB | {:.1} MB | {:.1} MB | {:.1} s ({:.1} %) | {:.1} s | {:.1} s, {:.0} MB |",
        run.wall_s,
        per_frame_ms,
        run.peak_rss_kib as f64 / 1024.0,
        manifest_bytes as f64 / 1e6,
        summary["manifest_bytes_written"].as_f64().unwrap_or(f64::NAN) / 1e6,
        rerun.wall_s,
        100.0 * rerun.wall_s / run.wall_s,
        verify.wall_s,
        merge.wall_s,
        merge.peak_rss_kib as f64 / 1024.0,
    );
    eprintln!(
        "bench_scale: {} (work folder {:.2} GB)",
        path.display(),
        disk as f64 / 1e9
    );
    let _ = std::fs::remove_dir_all(&merge_dir);
    let _ = std::fs::remove_dir_all(&run_out);
    if !keep {
        let _ = std::fs::remove_dir_all(&frames);
    }
}
