//! CUDA support from one binary: torch-sys links only `libtorch_cpu`, so the CUDA half of libtorch
//! (`libtorch_cuda.so`, which registers the CUDA backend when loaded) is opened at start-up when it
//! and its CUDA libraries are present. On a machine without them nothing changes and the CPU path
//! runs. This must happen before anything asks libtorch about CUDA.
//!
//! When CUDA cannot run, [`NvidiaHost`] reads what the machine itself shows of an NVIDIA GPU (the
//! kernel driver's version, the device nodes a container gets when the GPU is passed in), so that
//! the message says which part is missing: the CUDA libraries, a driver new enough for CUDA 13, or
//! the container's pass-through.

use std::path::{Path, PathBuf};

/// Candidate locations of `libtorch_cuda.so`, most specific first; `$MASKOMALY_TORCH_CUDA`, when
/// set, is the only one (a chosen library set is tried alone, never mixed with another).
fn candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(p) = std::env::var("MASKOMALY_TORCH_CUDA") {
        return vec![PathBuf::from(p)];
    }
    if let Some(dir) = option_env!("MASKOMALY_LIBTORCH_LIB") {
        v.push(PathBuf::from(dir).join("libtorch_cuda.so"));
    }
    // The loader's own search (LD_LIBRARY_PATH, the executable's rpath, ld.so.cache).
    v.push(PathBuf::from("libtorch_cuda.so"));
    v
}

/// The outcome of [`preload`], for messages about the device.
static LOADED: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();

/// What [`preload`] found, if it ran: where `libtorch_cuda.so` came from, or why it did not load.
pub fn status() -> Option<&'static Result<PathBuf, String>> {
    LOADED.get()
}

/// The oldest NVIDIA driver branch that runs CUDA 13, which libtorch's CUDA half is built with.
pub const MIN_DRIVER: u32 = 580;

/// How to pass a GPU into a container, for messages.
const PASS_IN: &str =
    "docker run --gpus all, podman run --device nvidia.com/gpu=all, apptainer run --nv";

/// What the machine shows of an NVIDIA GPU without libtorch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NvidiaHost {
    /// The kernel driver's version (`580.65.06`), from `/proc/driver/nvidia/version` or
    /// `nvidia-smi`.
    pub driver: Option<String>,
    /// GPU device nodes (`/dev/nvidia0`, ...): present when the GPU is passed in.
    pub device_nodes: Vec<PathBuf>,
}

impl NvidiaHost {
    /// Reads this machine: under `$MASKOMALY_NVIDIA_ROOT` instead of `/` when set (tests
    /// simulate a GPU machine with it; `nvidia-smi` is then not asked).
    pub fn probe() -> Self {
        match std::env::var_os("MASKOMALY_NVIDIA_ROOT") {
            Some(root) => Self::probe_at(Path::new(&root), None),
            None => Self::probe_at(Path::new("/"), Some("nvidia-smi")),
        }
    }

    /// Reads `root/proc/driver/nvidia/version` and `root/dev/nvidia<N>`; asks `nvidia_smi` for the
    /// driver version when the file does not give it.
    pub fn probe_at(root: &Path, nvidia_smi: Option<&str>) -> Self {
        let driver = std::fs::read_to_string(root.join("proc/driver/nvidia/version"))
            .ok()
            .and_then(|t| driver_from_proc(&t))
            .or_else(|| nvidia_smi.and_then(driver_from_smi));
        let mut device_nodes: Vec<PathBuf> = std::fs::read_dir(root.join("dev"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix("nvidia"))
                    .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        device_nodes.sort();
        NvidiaHost {
            driver,
            device_nodes,
        }
    }

    /// Whether an NVIDIA driver or GPU shows at all.
    pub fn present(&self) -> bool {
        self.driver.is_some() || !self.device_nodes.is_empty()
    }

    /// The driver's major version (`580` of `580.65.06`).
    pub fn driver_major(&self) -> Option<u32> {
        self.driver.as_deref()?.split('.').next()?.parse().ok()
    }

    /// Whether the driver is known to be older than CUDA 13 needs.
    pub fn driver_too_old(&self) -> bool {
        self.driver_major().is_some_and(|m| m < MIN_DRIVER)
    }

    /// `driver 580.65.06, /dev/nvidia0` or `driver unknown, no /dev/nvidia* device`.
    pub fn describe(&self) -> String {
        let driver = match &self.driver {
            Some(v) => format!("driver {v}"),
            None => "driver version unknown".into(),
        };
        let nodes = if self.device_nodes.is_empty() {
            "no /dev/nvidia<N> device".to_string()
        } else {
            self.device_nodes
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!("{driver}, {nodes}")
    }
}

/// The version in `NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul 27 ...`.
fn driver_from_proc(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("NVRM version"))?;
    line.split_whitespace()
        .find(|w| {
            w.contains('.')
                && w.split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
}

fn driver_from_smi(cmd: &str) -> Option<String> {
    let out = std::process::Command::new(cmd)
        .args(["--query-gpu=driver_version", "--format=csv,noheader"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.lines().next()?.trim();
    (out.status.success() && !v.is_empty()).then(|| v.to_string())
}

/// Why CUDA does not run here and what to do about it, from the outcome of loading the CUDA half
/// (`loaded`, `None` when it was not tried) and what the machine shows (`host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// One line: what is missing.
    pub reason: String,
    /// One line: what to do.
    pub hint: String,
    /// Whether an NVIDIA GPU or driver shows, so that falling back to the CPU deserves a warning.
    pub gpu_visible: bool,
}

pub fn diagnose(loaded: Option<&Result<PathBuf, String>>, host: &NvidiaHost) -> Unavailable {
    let old_driver = || {
        format!(
            "the NVIDIA driver {} is older than CUDA 13 needs ({MIN_DRIVER} or newer)",
            host.driver.as_deref().unwrap_or("?")
        )
    };
    let update = format!(
        "install NVIDIA driver {MIN_DRIVER} or newer on the host, or run with --device cpu"
    );
    let (reason, hint) = match loaded {
        Some(Err(e)) if host.present() => {
            let mut reason = format!(
                "an NVIDIA GPU is visible ({}) and libtorch's CUDA half cannot be loaded: {e}",
                host.describe()
            );
            let mut hint = String::new();
            if host.driver_too_old() {
                reason.push_str(&format!("; also, {}", old_driver()));
                hint = format!("install NVIDIA driver {MIN_DRIVER} or newer on the host; ");
            }
            hint.push_str(
                "install the CUDA libraries with `make run DEVICE=cuda` (scripts/setup.sh), or \
                 use the CUDA image",
            );
            (reason, hint)
        }
        Some(Err(e)) => (
            format!(
                "this build or image has no CUDA libraries (libtorch's CUDA half cannot be \
                 loaded: {e}) and no NVIDIA GPU is visible"
            ),
            "on a GPU machine use the CUDA image or `make run DEVICE=cuda`; here, run with \
             --device cpu"
                .to_string(),
        ),
        Some(Ok(_)) | None if host.driver_too_old() => (old_driver(), update),
        Some(Ok(p)) if host.driver.is_some() && host.device_nodes.is_empty() => (
            format!(
                "no GPU is visible: the NVIDIA driver {} is on the host and the CUDA \
                 libraries are loaded ({}), but no /dev/nvidia<N> device is passed in",
                host.driver.as_deref().unwrap_or("?"),
                p.display()
            ),
            format!("pass the GPU in: {PASS_IN}"),
        ),
        Some(Ok(p)) if host.present() => (
            format!(
                "libtorch sees no CUDA device although the CUDA libraries are loaded ({}) and \
                 the machine shows {}",
                p.display(),
                host.describe()
            ),
            "check the GPU with nvidia-smi (a GPU in use by another container, or a \
             CUDA_VISIBLE_DEVICES that hides it)"
                .to_string(),
        ),
        Some(Ok(p)) => (
            format!(
                "no GPU is visible: the CUDA libraries are loaded ({}), the NVIDIA driver is not",
                p.display()
            ),
            format!("pass the GPU and its driver in: {PASS_IN}"),
        ),
        None => (
            "libtorch sees no CUDA device".into(),
            "run with --device cpu (or runtime.device: cpu)".into(),
        ),
    };
    Unavailable {
        reason,
        hint,
        gpu_visible: host.present(),
    }
}

/// [`diagnose`] for this process and machine.
pub fn unavailable() -> Unavailable {
    diagnose(status(), &NvidiaHost::probe())
}

/// Why `runtime.device: cuda` cannot run here, in one line for people.
pub fn unavailable_reason() -> String {
    unavailable().reason
}

/// Loads `libtorch_cuda.so` for the life of the process; returns where it came from, or why not.
pub fn preload() -> Result<PathBuf, String> {
    let r = load();
    let _ = LOADED.set(r.clone());
    r
}

fn load() -> Result<PathBuf, String> {
    let mut errors = Vec::new();
    for c in candidates() {
        // SAFETY: loading libtorch's own CUDA library runs its static initialisers, which only
        // register the CUDA backend with the already loaded libtorch_cpu.
        match unsafe { libloading::os::unix::Library::open(Some(&c), libc_flags()) } {
            Ok(lib) => {
                std::mem::forget(lib); // keep it loaded for the whole run
                return Ok(c);
            }
            Err(e) => errors.push((
                c.is_absolute() && c.exists(),
                format!("{}: {e}", c.display()),
            )),
        }
    }
    Err(load_error(errors))
}

/// The loader's message that says why: a file that exists but cannot be loaded (a missing
/// dependency such as cuBLAS) says more than the search that found nothing, so those come first
/// and alone when there are any.
fn load_error(errors: Vec<(bool, String)>) -> String {
    let found: Vec<&str> = errors
        .iter()
        .filter(|(exists, _)| *exists)
        .map(|(_, e)| e.as_str())
        .collect();
    if found.is_empty() {
        let all: Vec<&str> = errors.iter().map(|(_, e)| e.as_str()).collect();
        all.join("; ")
    } else {
        found.join("; ")
    }
}

fn libc_flags() -> std::os::raw::c_int {
    libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(driver: Option<&str>, nodes: &[&str]) -> NvidiaHost {
        NvidiaHost {
            driver: driver.map(str::to_string),
            device_nodes: nodes.iter().map(PathBuf::from).collect(),
        }
    }

    #[test]
    fn the_driver_version_is_read_from_proc() {
        let text = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release \
                    Build  (dvs-builder@U16-I2-C03-12-4)  Sun Jul 27 06:54:38 UTC 2025\n\
                    GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n";
        assert_eq!(driver_from_proc(text).as_deref(), Some("580.65.06"));
        let old = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n";
        assert_eq!(driver_from_proc(old).as_deref(), Some("550.54.15"));
        assert_eq!(driver_from_proc("garbage"), None);
    }

    #[test]
    fn a_simulated_machine_is_probed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!NvidiaHost::probe_at(dir.path(), None).present());
        std::fs::create_dir_all(dir.path().join("proc/driver/nvidia")).unwrap();
        std::fs::write(
            dir.path().join("proc/driver/nvidia/version"),
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 2024\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("dev")).unwrap();
        for n in ["nvidia0", "nvidiactl", "nvidia-uvm", "nvidia1"] {
            std::fs::write(dir.path().join("dev").join(n), "").unwrap();
        }
        let h = NvidiaHost::probe_at(dir.path(), None);
        assert_eq!(h.driver.as_deref(), Some("550.54.15"));
        assert_eq!(
            h.device_nodes,
            vec![
                dir.path().join("dev/nvidia0"),
                dir.path().join("dev/nvidia1")
            ]
        );
        assert!(h.driver_too_old());
    }

    #[test]
    fn each_missing_part_is_named() {
        let dlopen = "libtorch_cuda.so: libcublas.so.13: cannot open shared object file";
        let not_loaded: Result<PathBuf, String> = Err(dlopen.into());
        let loaded: Result<PathBuf, String> = Ok(PathBuf::from("/x/libtorch_cuda.so"));

        // A GPU machine without the CUDA libraries: the loader's error and the driver.
        let d = diagnose(
            Some(&not_loaded),
            &host(Some("580.65.06"), &["/dev/nvidia0"]),
        );
        assert!(d.gpu_visible);
        assert!(d.reason.contains(dlopen), "{}", d.reason);
        assert!(d.reason.contains("driver 580.65.06"), "{}", d.reason);
        assert!(d.hint.contains("make run DEVICE=cuda"), "{}", d.hint);
        assert!(!d.reason.contains("older"), "{}", d.reason);
        // ... with an old driver too: both said.
        let d = diagnose(
            Some(&not_loaded),
            &host(Some("550.54.15"), &["/dev/nvidia0"]),
        );
        assert!(d.reason.contains(dlopen) && d.reason.contains("older than CUDA 13"));
        assert!(d.hint.contains("driver 580 or newer") && d.hint.contains("DEVICE=cuda"));

        // Libraries loaded, driver too old: the driver, not the pass-through, is blamed.
        for nodes in [&["/dev/nvidia0"][..], &[]] {
            let d = diagnose(Some(&loaded), &host(Some("550.54.15"), nodes));
            assert!(
                d.reason.contains("550.54.15") && d.reason.contains("580"),
                "{}",
                d.reason
            );
            assert!(
                !d.reason.contains("pass") && !d.hint.contains("--gpus"),
                "{d:?}"
            );
            assert!(d.hint.contains("driver 580 or newer"), "{}", d.hint);
        }
        // Driver on the host, no device node: the pass-through.
        let d = diagnose(Some(&loaded), &host(Some("580.65.06"), &[]));
        assert!(
            d.reason.contains("no /dev/nvidia<N> device is passed in"),
            "{}",
            d.reason
        );
        assert!(d.hint.contains("--gpus all"), "{}", d.hint);
        // Nothing NVIDIA at all.
        let d = diagnose(Some(&not_loaded), &NvidiaHost::default());
        assert!(!d.gpu_visible);
        assert!(
            d.reason.contains("no NVIDIA GPU is visible"),
            "{}",
            d.reason
        );
        let d = diagnose(Some(&loaded), &NvidiaHost::default());
        assert!(
            d.reason.contains("the NVIDIA driver is not"),
            "{}",
            d.reason
        );
        for d in [
            diagnose(
                Some(&not_loaded),
                &host(Some("580.65.06"), &["/dev/nvidia0"]),
            ),
            diagnose(Some(&loaded), &host(Some("550.54.15"), &[])),
        ] {
            assert_eq!(d.reason.lines().count(), 1, "{}", d.reason);
            assert_eq!(d.hint.lines().count(), 1, "{}", d.hint);
        }
    }

    #[test]
    fn the_loader_error_of_an_existing_file_comes_alone() {
        let e = load_error(vec![
            (
                true,
                "/t/lib/libtorch_cuda.so: libcublas.so.13: cannot open".into(),
            ),
            (
                false,
                "libtorch_cuda.so: cannot open shared object file".into(),
            ),
        ]);
        assert_eq!(e, "/t/lib/libtorch_cuda.so: libcublas.so.13: cannot open");
        let e = load_error(vec![(false, "a".into()), (false, "b".into())]);
        assert_eq!(e, "a; b");
    }
}
