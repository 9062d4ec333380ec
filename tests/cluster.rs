//! Batch-system behaviour of the real binary: sharding and merge, `verify`, and runs that are
//! killed (SIGKILL while held mid-run and at random points, SIGTERM mid-run) and then rerun. Every
//! test works on images and a tiny TorchScript model made by `maskomaly demo` in a temp dir, on CPU.

mod common;

use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Images (12, several sizes, two sub-folders), the tiny TorchScript model and a small-size job in
/// a temp dir, removed at drop. Queues of one item keep the work in flight small, so a run stopped
/// after its first item still has items left.
struct Demo {
    dir: tempfile::TempDir,
}

const N_IMAGES: usize = 12;

impl Demo {
    fn new() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("demo/images");
        for i in 0..N_IMAGES {
            let (w, h) = [(130, 97), (120, 200), (256, 128), (96, 96)][i % 4];
            let sub = ["", "a/", "b/"][i % 3];
            let ext = if i % 2 == 0 { "png" } else { "jpg" };
            let img = maskomaly::demo::road_scene(w, h, i as u32);
            maskomaly::demo::save_rgb(&img, &images.join(format!("{sub}img{i:02}.{ext}"))).unwrap();
        }
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_maskformer.pt");
        std::fs::copy(model, dir.path().join("demo/model.pt")).unwrap();
        let job = "name: cluster-test\n\
                   checkpoint: {format: torchscript}\n\
                   preprocess: {min_size: 96, max_size: 192}\n\
                   output: {heatmap: true}\n\
                   runtime: {device: cpu, decode_workers: 1, queue_depth: 1}\n";
        std::fs::write(dir.path().join("demo/job.yaml"), job).unwrap();
        Demo { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn images(&self) -> PathBuf {
        self.path("demo/images")
    }
    /// `maskomaly run` over the demo images into `out`, with extra arguments.
    fn run_cmd(&self, out: &Path, extra: &[&str]) -> Command {
        let (images, out, model) = (self.images(), out.to_path_buf(), self.path("demo/model.pt"));
        let mut args = vec!["--input", images.to_str().unwrap()];
        args.extend(["--output", out.to_str().unwrap()]);
        args.extend(["--checkpoint", model.to_str().unwrap(), "--device", "cpu"]);
        args.extend(extra);
        common::run_cmd(self.path("demo/job.yaml"), &args)
    }
    fn run(&self, out: &Path, extra: &[&str]) -> Output {
        self.run_cmd(out, extra).output().unwrap()
    }
    /// An uninterrupted run to compare against, and how long it took.
    fn reference(&self) -> (PathBuf, Duration) {
        let out = self.path("reference");
        let t = Instant::now();
        let o = self.run(&out, &[]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "reference run: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        (out, t.elapsed())
    }
}

fn manifest(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Output files of a run (relative, sorted), without manifests, the crate and temporary files.
fn outputs(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|r| {
            !r.starts_with("manifests/")
                && r != "manifest.json"
                && r != "ro-crate-metadata.json"
                && !Path::new(r)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with('.')
        })
        .collect();
    v.sort();
    v
}

fn hidden_files(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path().to_path_buf())
        .collect()
}

fn assert_same_outputs(a: &Path, b: &Path) {
    let (fa, fb) = (outputs(a), outputs(b));
    assert!(!fa.is_empty(), "{} holds no outputs", a.display());
    assert_eq!(fa, fb, "different output files");
    for f in &fa {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{f} differs"
        );
    }
}

fn assert_complete(out: &Path, total: usize) {
    let m = manifest(&out.join("manifest.json"));
    assert_eq!(m["status"], "complete", "{}", m["counts"]);
    assert_eq!(m["counts"]["total"], total);
    let done = m["counts"]["written"].as_u64().unwrap() + m["counts"]["skipped"].as_u64().unwrap();
    assert_eq!(done as usize, total, "{}", m["counts"]);
    assert_eq!(m["items"].as_array().unwrap().len(), total);
}

/// xorshift64* from a fixed seed, or MASKOMALY_TEST_SEED; the seed is printed so a failing
/// sequence of kill points can be replayed.
struct Rng(u64);
impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("MASKOMALY_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x6d61_736b_6f6d_616c)
            | 1;
        eprintln!("MASKOMALY_TEST_SEED={seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// Five runs into one folder, each killed (SIGKILL): the first while it is held still mid-run
/// (some items finished, not all), the others at random points of the run's length, start-up
/// included. A round counts as killed mid-run when the process had not exited and it finished
/// items without finishing them all; at least one must. Then a rerun completes with a clean run's
/// bytes.
#[test]
fn sigkill_at_random_points_then_rerun_gives_identical_outputs() {
    let demo = Demo::new();
    let (reference, took) = demo.reference();
    let total = manifest(&reference.join("manifest.json"))["counts"]["total"]
        .as_u64()
        .unwrap() as usize;
    let out = demo.path("killed");
    let manifest_path = out.join("manifest.json");
    let mut rng = Rng::new();
    let span = took.as_millis() as u64;
    let mut mid_run = 0;
    for round in 0..5 {
        let before = common::finished_items(&manifest_path).0;
        let mut child = demo
            .run_cmd(&out, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let at = if round == 0 {
            common::stop_mid_run(&mut child, &manifest_path);
            "held mid-run".to_string()
        } else {
            // A rerun skips the finished items: the span shrinks with the work left.
            let span = span * (total - before.min(total) + 1) as u64 / (total + 1) as u64 + 1;
            let at = rng.below(span);
            std::thread::sleep(Duration::from_millis(at));
            format!("{at} ms of ~{span} ms")
        };
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        let after = common::finished_items(&manifest_path).0;
        let killed = status.signal() == Some(libc::SIGKILL);
        let mid = killed && before < after && after < total;
        mid_run += usize::from(mid);
        eprintln!(
            "round {round}: killed at {at} ({status}), {before} -> {after} of {total} items done{}",
            if mid { ", mid-run" } else { "" }
        );
    }
    assert!(mid_run >= 1, "no round was killed mid-run");
    let o = demo.run(&out, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "rerun: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_complete(&out, total);
    assert_same_outputs(&reference, &out);
    assert!(
        hidden_files(&out).is_empty(),
        "temporary files left: {:?}",
        hidden_files(&out)
    );
    let v = common::verify(&out);
    assert_eq!(
        v.status.code(),
        Some(0),
        "verify: {}",
        String::from_utf8_lossy(&v.stderr)
    );
}

#[test]
fn sigterm_mid_run_exits_143_with_a_consistent_manifest_and_rerun_completes() {
    let demo = Demo::new();
    let (reference, _) = demo.reference();
    let out = demo.path("terminated");
    let mut child = demo
        .run_cmd(&out, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let manifest_path = out.join("manifest.json");
    common::signal_mid_run(&mut child, &manifest_path, libc::SIGTERM);
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(143),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Consistent: interrupted, and every item it calls written is on disk with the recorded hash.
    let m = manifest(&manifest_path);
    assert_eq!(m["status"], "interrupted");
    assert!(m["finished"].is_string());
    let items = m["items"].as_array().unwrap();
    let written = items.iter().filter(|i| i["status"] == "written").count();
    assert_eq!(m["counts"]["written"], written);
    // Items in flight when the signal came are finished; the rest are not started.
    assert!(
        written >= 1 && written < m["counts"]["total"].as_u64().unwrap() as usize,
        "{}",
        m["counts"]
    );
    for it in items.iter().filter(|i| i["status"] == "written") {
        for o in it["outputs"].as_array().unwrap() {
            let p = out.join(o["path"].as_str().unwrap());
            assert_eq!(
                maskomaly::output::digest::sha256_file(&p).unwrap(),
                o["sha256"].as_str().unwrap(),
                "{}",
                p.display()
            );
        }
    }
    assert!(
        hidden_files(&out).is_empty(),
        "temporary files left: {:?}",
        hidden_files(&out)
    );

    let o = demo.run(&out, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "rerun: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let total = m["counts"]["total"].as_u64().unwrap() as usize;
    assert_complete(&out, total);
    assert_same_outputs(&reference, &out);
}

#[test]
fn shards_merge_into_the_single_run_result() {
    let demo = Demo::new();
    let (reference, _) = demo.reference();
    let total = manifest(&reference.join("manifest.json"))["counts"]["total"]
        .as_u64()
        .unwrap() as usize;
    let out = demo.path("sharded");
    // One shard from the flag, one from a Slurm array environment, one from a Kubernetes index.
    let o = demo.run(&out, &["--shard", "0/3"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = demo
        .run_cmd(&out, &[])
        .env("SLURM_ARRAY_TASK_ID", "11")
        .env("SLURM_ARRAY_TASK_MIN", "10")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !out.join("manifest.json").exists(),
        "a shard wrote the whole-run manifest"
    );

    // Before the last shard: merge names what is missing and fails.
    let mg = common::merge(&out);
    assert_eq!(mg.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&mg.stderr).contains("missing shard manifest: shard 2/3"));

    let o = demo
        .run_cmd(&out, &["--shards", "3"])
        .env("JOB_COMPLETION_INDEX", "2")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut seen = 0;
    for k in 0..3 {
        let m = manifest(&out.join(format!("manifests/shard-0000{k}-of-00003.json")));
        assert_eq!(m["shard"]["index"], k);
        assert_eq!(m["shard"]["count"], 3);
        seen += m["items"].as_array().unwrap().len();
    }
    assert_eq!(seen, total, "shards overlap or miss items");

    let mg = common::merge(&out);
    assert_eq!(
        mg.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&mg.stderr)
    );
    assert_complete(&out, total);
    assert_same_outputs(&reference, &out);
    let v = common::verify(&out);
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
}

#[test]
fn bad_shard_settings_are_rejected_before_any_work() {
    let demo = Demo::new();
    let out = demo.path("bad");
    let o = demo.run(&out, &["--shard", "3/3"]);
    assert_eq!(
        o.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = demo
        .run_cmd(&out, &[])
        .env("MASKOMALY_SHARDS", "4")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(outputs(&out).is_empty());
}

#[test]
fn verify_detects_flipped_byte_deleted_output_and_extra_file() {
    let demo = Demo::new();
    let (out, _) = demo.reference();
    let verify = |extra: &[&str]| {
        common::command(["verify", out.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = verify(&[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.join("ro-crate-metadata.json").is_file(),
        "no RO-Crate next to the manifest"
    );

    // A fresh run of the same job is bit-identical on CPU.
    let o = verify(&["--rerun"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let files = outputs(&out);
    let h5 = files
        .iter()
        .find(|f| f.ends_with(".hdf5"))
        .expect("an HDF5 output");
    let png = files
        .iter()
        .find(|f| f.ends_with(".png"))
        .expect("a PNG output");

    let p = out.join(h5);
    let original = std::fs::read(&p).unwrap();
    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    std::fs::write(&p, &flipped).unwrap();
    let o = verify(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("changed: {h5}")), "{err}");
    std::fs::write(&p, &original).unwrap();

    let png_bytes = std::fs::read(out.join(png)).unwrap();
    std::fs::remove_file(out.join(png)).unwrap();
    let o = verify(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("missing: {png}")), "{err}");

    std::fs::write(out.join(png), png_bytes).unwrap();
    std::fs::write(out.join("stray.png"), b"not an output").unwrap();
    let o = verify(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("extra: stray.png"), "{err}");
}
