//! CUDA support from one binary: torch-sys links only `libtorch_cpu`, so the CUDA half of libtorch
//! (`libtorch_cuda.so`, which registers the CUDA backend when loaded) is opened at start-up when it
//! and its CUDA libraries are present. On a machine without them nothing changes and the CPU path
//! runs. This must happen before anything asks libtorch about CUDA.

use std::path::PathBuf;

/// Candidate locations of `libtorch_cuda.so`, most specific first.
fn candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(p) = std::env::var("MASKOMALY_TORCH_CUDA") {
        v.push(PathBuf::from(p));
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

/// Why `runtime.device: cuda` cannot run here, in one line for people.
pub fn unavailable_reason() -> String {
    match status() {
        Some(Ok(p)) => format!(
            "no GPU is visible: the CUDA libraries are loaded ({}), the NVIDIA driver is not \
             (pass it in: docker run --gpus all, podman run --device nvidia.com/gpu=all, \
             apptainer run --nv)",
            p.display()
        ),
        Some(Err(_)) => "this build or image has no CUDA libraries (libtorch_cuda.so is not \
                         installed): use the CUDA image, or --device cpu"
            .into(),
        None => "libtorch sees no CUDA device".into(),
    }
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
            Err(e) => errors.push(format!("{}: {e}", c.display())),
        }
    }
    Err(errors.join("; "))
}

fn libc_flags() -> std::os::raw::c_int {
    libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL
}
