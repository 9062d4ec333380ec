//! The command layer through the real binary: `forward` and `run` read, override, download and
//! verify a checkpoint alike, and a failure prints `error:`, one `caused by:` per cause and a
//! `hint:`, with the exit code of its kind.

mod common;
use common::{code, fixture, stderr};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn maskomaly(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maskomaly"))
        .args(args)
        .env("MASKOMALY_CACHE", cache)
        .env("RUST_LOG", "maskomaly=warn")
        .output()
        .expect("binary runs")
}

fn sha256(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Serves `body` over HTTP on 127.0.0.1 for `n` requests; returns the base URL.
fn serve(body: Vec<u8>, n: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let Ok(mut s) = stream else { continue };
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}")
}

/// A folder with one image, an output folder and a job naming `checkpoint` (YAML flow mapping).
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    image: PathBuf,
    cache: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let image = root.join("in").join("x.png");
        std::fs::create_dir_all(image.parent().unwrap()).unwrap();
        maskomaly::demo::save_rgb(&maskomaly::demo::road_scene(90, 60, 1), &image).unwrap();
        Setup {
            cache: root.join("cache"),
            _dir: dir,
            root,
            image,
        }
    }

    fn job(&self, name: &str, checkpoint: &str, extra: &str) -> PathBuf {
        let p = self.root.join(format!("{name}.yaml"));
        let text = format!(
            "dataset: {{kind: folder, root: {}}}\ncheckpoint: {checkpoint}\n\
             preprocess: {{min_size: 64, max_size: 128}}\noutput: {{root: {}}}\n\
             runtime: {{device: cpu}}\n{extra}",
            self.image.parent().unwrap().display(),
            self.root.join(format!("out-{name}")).display()
        );
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `forward` then `run` over `job` with `extra` flags: both exit codes and stderrs.
    fn both(&self, job: &Path, extra: &[&str]) -> [(i32, String); 2] {
        let raw = self.root.join("raw.safetensors");
        let job = job.to_str().unwrap();
        let fwd = [
            &["forward", "--job", job, "--image"][..],
            &[self.image.to_str().unwrap(), "--out", raw.to_str().unwrap()],
            extra,
        ]
        .concat();
        let run = [&["run", "--overwrite", "--job", job][..], extra].concat();
        [fwd, run].map(|args| {
            let o = maskomaly(&args, &self.cache);
            (code(&o), stderr(&o))
        })
    }
}

#[test]
fn a_checkpoint_flag_replaces_the_jobs_file_and_checksum_in_forward_and_run() {
    let s = Setup::new();
    let (a, b) = (fixture("demo_maskformer.pt"), fixture("tiny_maskformer.pt"));
    // The job names file A with A's checksum; --checkpoint B must not be checked against it.
    let job = s.job(
        "a",
        &format!(
            "{{format: torchscript, path: {}, sha256: {}, url: null}}",
            a.display(),
            sha256(&a)
        ),
        "",
    );
    for (cmd, (code, err)) in ["forward", "run"]
        .iter()
        .zip(s.both(&job, &["--checkpoint", b.to_str().unwrap()]))
    {
        assert_eq!(code, 0, "{cmd} --checkpoint B: {err}");
    }
    assert!(s.root.join("raw.safetensors").is_file());
    assert!(s.root.join("out-a").join("x.hdf5").is_file());
}

#[test]
fn a_mismatching_checksum_is_refused_by_forward_and_run() {
    let s = Setup::new();
    let a = fixture("demo_maskformer.pt");
    let job = s.job(
        "bad",
        &format!(
            "{{format: torchscript, path: {}, sha256: {}, url: null}}",
            a.display(),
            "0".repeat(64)
        ),
        "",
    );
    for (cmd, (code, err)) in ["forward", "run"].iter().zip(s.both(&job, &[])) {
        assert_eq!(code, 78, "{cmd}: {err}");
        assert!(
            err.contains("SHA-256") && err.contains(&sha256(&a)),
            "{cmd}: {err}"
        );
        assert!(err.contains("\nhint: "), "{cmd}: {err}");
    }
    assert!(!s.root.join("raw.safetensors").exists());
    assert!(!s.root.join("out-bad").join("x.hdf5").exists());
}

#[test]
fn forward_and_run_download_a_missing_checkpoint_from_the_jobs_url() {
    let s = Setup::new();
    let b = fixture("tiny_maskformer.pt");
    // Two requests at most: forward downloads into the cache, run finds it there.
    let url = format!("{}/tiny.pt", serve(std::fs::read(&b).unwrap(), 2));
    let job = s.job(
        "url",
        &format!(
            "{{format: torchscript, path: {}, url: '{url}', sha256: {}}}",
            s.root.join("absent.pt").display(),
            sha256(&b)
        ),
        "",
    );
    for (cmd, (code, err)) in ["forward", "run"].iter().zip(s.both(&job, &[])) {
        assert_eq!(code, 0, "{cmd}: {err}");
    }
    assert_eq!(sha256(&s.cache.join("tiny.pt")), sha256(&b));
    assert!(s.root.join("raw.safetensors").is_file());
}

#[test]
fn failures_print_error_then_causes_then_hint() {
    let s = Setup::new();
    let missing = s.root.join("nothing.png");
    let job = s.job(
        "ok",
        &format!(
            "{{format: torchscript, path: {}, url: null}}",
            fixture("tiny_maskformer.pt").display()
        ),
        "",
    );
    let o = maskomaly(
        &[
            "forward",
            "--job",
            job.to_str().unwrap(),
            "--image",
            missing.to_str().unwrap(),
            "--out",
            s.root.join("r.safetensors").to_str().unwrap(),
        ],
        &s.cache,
    );
    assert_eq!(code(&o), 66, "{}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            format!("error: cannot read {}", missing.display()).as_str(),
            "  caused by: No such file or directory (os error 2)",
        ],
        "{err}"
    );

    // A checkpoint that is not there and no URL: error, then the hint, nothing else.
    let job = s.job(
        "absent",
        "{format: torchscript, path: /models/absent.pt, url: null}",
        "",
    );
    let o = maskomaly(&["run", "-q", "--job", job.to_str().unwrap()], &s.cache);
    assert_eq!(code(&o), 66, "{}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(
        lines[0],
        "error: checkpoint /models/absent.pt does not exist"
    );
    assert!(lines[1].starts_with("hint: ") && lines[1].contains("--checkpoint"));
}

/// A network whose forward pass asks the CPU allocator for more memory than any machine has
/// (a [HW, HW] Gram matrix of a 4096² input: about 1 PB) fails with libtorch's out-of-memory
/// error, which is the one temporary failure: exit 75 (a scheduler retries), with a hint.
#[test]
fn running_out_of_memory_is_a_temporary_failure() {
    let s = Setup::new();
    let oom = s.root.join("gram.pt");
    let mut gram = |xs: &[tch::Tensor]| {
        let v = xs[0].view([1, 3, -1]); // [1, 3, H, W] -> [1, 3, HW]
        vec![v.transpose(1, 2).matmul(&v).mean(tch::Kind::Float)] // [1, HW, HW] -> []
    };
    let input = tch::Tensor::zeros([1, 3, 8, 8], (tch::Kind::Float, tch::Device::Cpu));
    tch::CModule::create_by_tracing("Gram", "forward", &[input], &mut gram)
        .unwrap()
        .save(&oom)
        .unwrap();
    let job = s.job(
        "oom",
        &format!(
            "{{format: torchscript, path: {}, url: null}}",
            oom.display()
        ),
        "",
    );
    let text = std::fs::read_to_string(&job).unwrap().replace(
        "min_size: 64, max_size: 128",
        "min_size: 4096, max_size: 4096",
    );
    std::fs::write(&job, text).unwrap();
    let o = maskomaly(
        &[
            "forward",
            "--job",
            job.to_str().unwrap(),
            "--image",
            s.image.to_str().unwrap(),
            "--out",
            s.root.join("r.safetensors").to_str().unwrap(),
        ],
        &s.cache,
    );
    let err = stderr(&o);
    assert_eq!(code(&o), 75, "{err}");
    assert!(err.contains("DefaultCPUAllocator"), "{err}");
    assert!(err.contains("\nhint: "), "{err}");
}

/// Two labelled 8×6 frames in the Fishyscapes Static layout with `.npy` predictions, and a job
/// naming them: what `eval` needs, no model involved.
struct EvalSetup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    preds: PathBuf,
}

impl EvalSetup {
    fn new() -> EvalSetup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let (data, preds) = (root.join("fs_static"), root.join("preds"));
        for f in 0..2 {
            let anomaly = |x: u32, y: u32| (2..5).contains(&x) && (1..3).contains(&y);
            let image = data.join(format!("images/{f}.png"));
            let label = data.join(format!("labels/{f}.png"));
            for p in [&image, &label] {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            }
            image::RgbImage::from_pixel(8, 6, image::Rgb([40, 80, 120]))
                .save(&image)
                .unwrap();
            image::GrayImage::from_fn(8, 6, |x, y| image::Luma([anomaly(x, y) as u8]))
                .save(&label)
                .unwrap();
            let scores: Vec<f32> = (0..48u32)
                .map(|i| (i % 7) as f32 / 10.0 + anomaly(i % 8, i / 8) as u8 as f32 * 0.3)
                .collect();
            std::fs::create_dir_all(&preds).unwrap();
            maskomaly::output::npy::write_f32(&preds.join(format!("{f}.npy")), &scores, &[6, 8])
                .unwrap();
        }
        EvalSetup {
            _dir: dir,
            root,
            data,
            preds,
        }
    }

    /// A job over `data` (YAML), with `extra` lines.
    fn job(&self, data: &Path, extra: &str) -> PathBuf {
        let p = self.root.join("eval.yaml");
        let text = format!(
            "dataset: {{kind: fs_static, root: {}}}\noutput: {{root: {}}}\n{extra}",
            data.display(),
            self.preds.display()
        );
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `maskomaly eval --job JOB --output OUT` with `extra` flags.
    fn eval(&self, job: &Path, out: &Path, extra: &[&str]) -> Output {
        let args = [
            &["-q", "eval", "--job", job.to_str().unwrap()][..],
            &["--output", out.to_str().unwrap()],
            extra,
        ]
        .concat();
        maskomaly(&args, &self.root.join("cache"))
    }
}

/// `eval` follows `run`'s error policy: a missing dataset root is 66, a bad job 78, a missing
/// prediction 66, an image it cannot decode 65 and reported as a read (a full disk, 74:
/// [`eval_on_a_full_disk_exits_74`]); each with its causes on their own lines.
#[test]
fn eval_exit_codes_follow_the_runs_policy() {
    let s = EvalSetup::new();
    let out = s.root.join("eval");
    let o = s.eval(&s.job(&s.data, ""), &out, &["--no-report"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(out.join("results.json").is_file());

    let missing = s.root.join("absent");
    let o = s.eval(&s.job(&missing, ""), &out, &[]);
    let err = stderr(&o);
    assert_eq!(code(&o), 66, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[0],
        format!("error: input folder {} does not exist", missing.display())
    );
    assert!(lines[1].starts_with("hint: "), "{err}");

    let o = s.eval(&s.job(&s.data, "method: {lamda: 0.5}\n"), &out, &[]);
    assert_eq!(code(&o), 78, "{}", stderr(&o));
    assert!(stderr(&o).contains("lamda"), "{}", stderr(&o));

    std::fs::rename(s.preds.join("1.npy"), s.root.join("1.npy")).unwrap();
    let o = s.eval(&s.job(&s.data, ""), &out, &["--no-report"]);
    assert_eq!(code(&o), 66, "{}", stderr(&o));
    assert!(stderr(&o).contains("no prediction for item `1`"));
    std::fs::rename(s.root.join("1.npy"), s.preds.join("1.npy")).unwrap();

    // The overlays read the input image: a broken one is a failed read, with the decoder's reason.
    let image = s.data.join("images/0.png");
    let good = std::fs::read(&image).unwrap();
    std::fs::write(&image, b"\x89PNG\r\n\x1a\nnot a png").unwrap();
    let o = s.eval(&s.job(&s.data, ""), &out, &["--no-report"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 65, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[0],
        format!("error: cannot read image {}", image.display())
    );
    assert!(lines[1].starts_with("  caused by: "), "{err}");
    assert!(!err.contains("cannot write"), "{err}");
    std::fs::write(&image, good).unwrap();
}

/// `eval` onto a full disk (under the reports) exits 74 with the cause.
#[test]
#[ignore = "needs root: mounts a 64 KiB tmpfs to fill up (make test runs it)"]
fn eval_on_a_full_disk_exits_74() {
    let s = EvalSetup::new();
    let mnt = s.root.join("mnt");
    let _tmpfs = common::mount_tmpfs(&mnt, "64k");
    let full = mnt.join("eval");
    std::fs::create_dir_all(&full).unwrap();
    let mut filler = std::fs::File::create(mnt.join("filler")).unwrap();
    while filler.write_all(&[1u8; 4096]).is_ok() {}
    let o = s.eval(
        &s.job(&s.data, ""),
        &full,
        &["--no-report", "--no-overlays"],
    );
    let err = stderr(&o);
    assert_eq!(code(&o), 74, "{err}");
    assert!(err.contains("caused by: No space left on device"), "{err}");
}

/// Run errors keep their causes as `caused by:` lines and their advice as `hint:` lines.
#[test]
fn run_errors_keep_their_causes_and_hints() {
    let s = Setup::new();
    let job = s.job(
        "ok",
        &format!(
            "{{format: torchscript, path: {}, url: null}}",
            fixture("tiny_maskformer.pt").display()
        ),
        "",
    );
    let job = job.to_str().unwrap();
    let o = maskomaly(
        &["run", "-q", "--job", job, "--output", "/dev/null/out"],
        &s.cache,
    );
    let err = stderr(&o);
    assert_eq!(code(&o), 73, "{err}");
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            "error: cannot create output folder /dev/null/out",
            "  caused by: Not a directory (os error 20)",
        ],
        "{err}"
    );

    // Another process holds the output folder: retry later, and the advice is a hint.
    let out = s.root.join("held");
    std::fs::create_dir_all(&out).unwrap();
    let _held = maskomaly::output::lock::lock_output(&out, None).unwrap();
    let o = maskomaly(
        &["run", "-q", "--job", job, "--output", out.to_str().unwrap()],
        &s.cache,
    );
    let err = stderr(&o);
    assert_eq!(code(&o), 75, "{err}");
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            format!(
                "error: another maskomaly process is writing {} (it holds {})",
                out.display(),
                out.join(".maskomaly.lock").display()
            )
            .as_str(),
            "hint: wait for the other run to finish, or choose another output folder",
        ],
        "{err}"
    );
}

#[path = "../build/git.rs"]
mod git;

/// Runs git in `dir`; panics when it fails.
fn git_in(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// What the build records: the commit of HEAD, `-dirty` while tracked files differ from it, and
/// watched files that change with every new commit on the same branch (also once its ref is
/// packed), so the build script reruns and never keeps an old hash.
#[test]
fn the_build_records_the_commit_and_a_dirty_tree() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    git_in(repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("a.txt"), "1").unwrap();
    git_in(repo, &["add", "a.txt"]);
    git_in(repo, &["commit", "-q", "-m", "one"]);
    let first = git::read(repo).unwrap();
    assert_eq!(first.commit, git_in(repo, &["rev-parse", "HEAD"]));
    assert_eq!(first.describe(), first.commit);
    let snapshot = |watch: &[PathBuf]| -> Vec<Option<Vec<u8>>> {
        watch
            .iter()
            .map(|p| {
                if p.is_dir() {
                    std::fs::read_dir(p)
                        .ok()
                        .map(|e| format!("{}", e.count()).into_bytes())
                } else {
                    std::fs::read(p).ok()
                }
            })
            .collect()
    };
    let before = snapshot(&first.watch);

    // An untracked file is not a change to the commit; an edited tracked file is.
    std::fs::write(repo.join("scratch.txt"), "x").unwrap();
    assert!(!git::read(repo).unwrap().dirty);
    std::fs::write(repo.join("a.txt"), "2").unwrap();
    let dirty = git::read(repo).unwrap();
    assert_eq!(dirty.describe(), format!("{}-dirty", first.commit));

    git_in(repo, &["commit", "-q", "-am", "two"]);
    let second = git::read(repo).unwrap();
    assert_ne!(second.commit, first.commit);
    assert!(!second.dirty);
    assert_ne!(
        snapshot(&first.watch),
        before,
        "a new commit on the same branch changes no watched file: {:?}",
        first.watch
    );

    // Refs packed: the next commit creates the loose ref, in a watched folder.
    git_in(repo, &["pack-refs", "--all"]);
    let packed = git::read(repo).unwrap();
    let before = snapshot(&packed.watch);
    std::fs::write(repo.join("a.txt"), "3").unwrap();
    git_in(repo, &["commit", "-q", "-am", "three"]);
    assert_ne!(snapshot(&packed.watch), before, "{:?}", packed.watch);
}

/// `maskomaly info` states the commit of the work tree it was built from (dirty or not) and the
/// libtorch version the build found, never a guess.
#[test]
fn info_states_the_build_it_comes_from() {
    let o = maskomaly(&["info"], Path::new("/nonexistent"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::to_string)
    };
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("MASKOMALY_GIT_COMMIT").is_none() {
        if let Some(state) = git::read(manifest_dir) {
            assert_eq!(value("commit: "), Some(state.describe()), "{text}");
        }
    }
    let libtorch = value("libtorch: ").expect("a libtorch line");
    match std::env::var_os("LIBTORCH")
        .and_then(|d| std::fs::read_to_string(Path::new(&d).join("build-version")).ok())
    {
        Some(v) => assert_eq!(libtorch, v.trim()),
        None => assert!(!libtorch.is_empty(), "{text}"),
    }
}

/// A GPU machine whose CUDA half cannot load, simulated: a driver version file and a device node
/// under `MASKOMALY_NVIDIA_ROOT`, and libtorch's own CUDA library opened from a folder of links to
/// libtorch's libraries that holds no cuBLAS. `device: auto` warns at the default log level with
/// the loader's error and the driver version, `device: cuda` stops with one line and a hint, and
/// `info` prints all of it.
#[test]
fn a_visible_gpu_whose_cuda_libraries_cannot_load_is_reported() {
    // The build's libtorch (`.cargo/config.toml`, installed by scripts/setup.sh from the PyPI torch
    // wheel) always ships its CUDA half.
    let torch_lib = Path::new(env!("LIBTORCH")).join("lib");
    assert!(
        torch_lib.join("libtorch_cuda.so").is_file(),
        "{} holds no libtorch_cuda.so: this test needs the CUDA build of libtorch that \
         scripts/setup.sh installs",
        torch_lib.display()
    );
    let s = Setup::new();
    let fake = s.root.join("machine");
    std::fs::create_dir_all(fake.join("proc/driver/nvidia")).unwrap();
    std::fs::write(
        fake.join("proc/driver/nvidia/version"),
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  \
         (dvs-builder@U16-I2-C03-12-4)  Sun Jul 27 06:54:38 UTC 2025\n",
    )
    .unwrap();
    std::fs::create_dir_all(fake.join("dev")).unwrap();
    std::fs::write(fake.join("dev/nvidia0"), "").unwrap();
    let lib = s.root.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    for e in std::fs::read_dir(&torch_lib).unwrap().flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with("libcublas") {
            std::os::unix::fs::symlink(e.path(), lib.join(&name)).unwrap();
        }
    }
    let cmd = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_maskomaly"))
            .args(args)
            .env_remove("RUST_LOG")
            .env("MASKOMALY_CACHE", &s.cache)
            .env("MASKOMALY_NVIDIA_ROOT", &fake)
            .env("MASKOMALY_TORCH_CUDA", lib.join("libtorch_cuda.so"))
            .output()
            .expect("binary runs")
    };
    let loader = "cannot open shared object file";

    let o = cmd(&["info"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(code(&o), 0, "{out}");
    assert!(out.contains("cuda support: not loaded ("), "{out}");
    assert!(out.contains(loader), "{out}");
    assert!(
        out.contains(&format!(
            "nvidia: driver 580.65.06, {}",
            fake.join("dev/nvidia0").display()
        )),
        "{out}"
    );
    assert!(
        out.contains("cuda unavailable: an NVIDIA GPU is visible"),
        "{out}"
    );
    assert!(out.contains("hint: install the CUDA libraries"), "{out}");

    let job = s.job(
        "gpu",
        &format!(
            "{{format: torchscript, path: {}}}",
            fixture("tiny_maskformer.pt").display()
        ),
        "",
    );
    let job = job.to_str().unwrap();
    let o = cmd(&["run", "--overwrite", "--job", job, "--device", "auto"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    let warning = err
        .lines()
        .find(|l| l.contains("WARN") && l.contains("running on the CPU"))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(
        warning.contains(loader) && warning.contains("580.65.06"),
        "{warning}"
    );
    // `--profile` (per-stage device waits) is accepted; on the CPU it changes nothing.
    let o = cmd(&[
        "run",
        "--overwrite",
        "--job",
        job,
        "--device",
        "cpu",
        "--profile",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    let o = cmd(&["run", "--overwrite", "--job", job, "--device", "cuda"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 78, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("error: runtime.device is `cuda`, but an NVIDIA GPU is visible")
            && lines[0].contains(loader),
        "{err}"
    );
    assert!(lines[1].starts_with("hint: "), "{err}");
}
