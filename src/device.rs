//! The device a job runs on: resolving `runtime.device`, naming a device for logs and the manifest,
//! and reading a libtorch failure for what it says about the device (out of memory, a CUDA set-up
//! problem, a CUDA fault). Used by the pipeline, the model and the commands alike.

use crate::diagnostic::{Diagnose, ExitCode};
use crate::job::DeviceChoice;
use tch::Device;

/// `runtime.device` names a device this machine does not have.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("runtime.device is `cuda`, but {reason}")]
    CudaUnavailable { reason: String, hint: String },
}

impl Diagnose for DeviceError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Config
    }
    fn hint(&self) -> Option<String> {
        match self {
            DeviceError::CudaUnavailable { hint, .. } => Some(hint.clone()),
        }
    }
}

/// Resolves `auto` to CUDA when libtorch sees a GPU. When it does not although an NVIDIA GPU is
/// visible, `auto` warns (the run would otherwise be slow without a word why) and `cuda` fails.
pub fn resolve_device(choice: DeviceChoice) -> Result<Device, DeviceError> {
    let (device, warning) =
        resolve_with(choice, tch::Cuda::is_available(), crate::cuda::unavailable)?;
    if let Some(w) = warning {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| log::warn!("{w}"));
    }
    Ok(device)
}

/// [`resolve_device`] with what it asks the machine passed in: whether libtorch sees a GPU, and
/// why not when it does not. Returns the device and the warning for `auto`, if any.
pub fn resolve_with(
    choice: DeviceChoice,
    cuda_available: bool,
    why_not: impl FnOnce() -> crate::cuda::Unavailable,
) -> Result<(Device, Option<String>), DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok((Device::Cpu, None)),
        DeviceChoice::Cuda | DeviceChoice::Auto if cuda_available => Ok((Device::Cuda(0), None)),
        DeviceChoice::Cuda => {
            let u = why_not();
            Err(DeviceError::CudaUnavailable {
                reason: u.reason,
                hint: u.hint,
            })
        }
        DeviceChoice::Auto => {
            let u = why_not();
            if u.gpu_visible {
                Ok((
                    Device::Cpu,
                    Some(format!(
                        "running on the CPU: {} (hint: {})",
                        u.reason, u.hint
                    )),
                ))
            } else {
                log::debug!("runtime.device auto: CPU ({})", u.reason);
                Ok((Device::Cpu, None))
            }
        }
    }
}

/// `cpu`, `cuda:0`, ...: the name logs and the manifest use.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}"),
    }
}

/// What a libtorch failure says about the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The allocator ran out of memory (GPU or host): may pass when the device is less busy or the
    /// job asks for less (75).
    OutOfMemory,
    /// The binary, driver and GPU do not fit together (no kernel image for this GPU, driver too
    /// old, no device): permanent until the set-up changes (78).
    CudaSetup,
    /// Any other CUDA error (illegal address, launch failure, device-side assert): the CUDA
    /// context is unusable, and retrying the same input would fail the same way (70).
    Cuda,
}

impl Fault {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Fault::OutOfMemory => ExitCode::TempFail,
            Fault::CudaSetup => ExitCode::Config,
            Fault::Cuda => ExitCode::Software,
        }
    }
}

/// Messages of an allocation failure, as libtorch words them: c10::OutOfMemoryError from the CUDA
/// (or ROCm) caching allocator ("CUDA out of memory. Tried to allocate ..."), `cudaErrorMemoryAllocation`
/// through C10_CUDA_CHECK ("CUDA error: out of memory"), the cudaMallocAsync backend, the CPU
/// allocator ("DefaultCPUAllocator: can't allocate memory: you tried to allocate ..."; "not enough
/// memory" in older releases), and cuBLAS / cuDNN failing to allocate their workspace.
const OUT_OF_MEMORY: [&str; 8] = [
    "CUDA out of memory",
    "CUDA error: out of memory",
    "HIP out of memory",
    "DefaultCPUAllocator: can't allocate memory",
    "DefaultCPUAllocator: not enough memory",
    "would exceed allowed memory. (out of memory)",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_ALLOC_FAILED",
];

/// CUDA runtime messages (`cudaGetErrorString`) that mean the set-up, not the input, is wrong.
const CUDA_SETUP: [&str; 5] = [
    "no kernel image is available for execution on the device",
    "CUDA driver version is insufficient",
    "no CUDA-capable device is detected",
    "PTX was compiled with an unsupported toolchain",
    "Found no NVIDIA driver",
];

/// The line of a libtorch error message that says what failed: a TorchScript interpreter error
/// puts it last, under the script's traceback ("RuntimeError: ..."); other messages put it first,
/// above the C++ frames.
pub fn error_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim_end).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or(message);
    match lines.next_back() {
        Some(last) if first.contains("TorchScript interpreter") => format!("{first} {last}"),
        _ => first.to_string(),
    }
}

/// Reads a libtorch error message (a `tch::TchError`, or the message of a panic in an infallible
/// tch call) for a device fault; `None` when it names none (a shape error, a bad argument).
pub fn fault(message: &str) -> Option<Fault> {
    if OUT_OF_MEMORY.iter().any(|p| message.contains(p)) {
        Some(Fault::OutOfMemory)
    } else if CUDA_SETUP.iter().any(|p| message.contains(p)) {
        Some(Fault::CudaSetup)
    } else if message.contains("CUDA error") || message.contains("CUDNN_STATUS_") {
        Some(Fault::Cuda)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages as libtorch writes them (c10/cuda/CUDACachingAllocator.cpp, c10/cuda/CUDAException,
    /// c10/core/impl/alloc_cpu.cpp), wrapped as tch-rs passes them on: `TchError::Torch` displays
    /// as "Internal torch error: ...", a panic in an infallible call carries its Debug form.
    #[test]
    fn out_of_memory_is_told_from_other_cuda_errors() {
        let oom = [
            "Internal torch error: CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a \
             total capacity of 79.10 GiB of which 3.12 GiB is free.",
            "called `Result::unwrap()` on an `Err` value: Torch(\"CUDA out of memory. Tried to \
             allocate 2.00 MiB (GPU 0; 7.93 GiB total capacity; 7.10 GiB already allocated)\")",
            "Internal torch error: CUDA error: out of memory\nCUDA kernel errors might be \
             asynchronously reported",
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: \
             you tried to allocate 37984010240 bytes.",
            "RuntimeError: [enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: \
             can't allocate memory: you tried to allocate 508249249939456 bytes. Error code 12",
            "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
        ];
        for m in oom {
            assert_eq!(fault(m), Some(Fault::OutOfMemory), "{m}");
            assert_eq!(fault(m).unwrap().exit_code(), ExitCode::TempFail);
        }
        let cuda = [
            "Internal torch error: CUDA error: an illegal memory access was encountered",
            "CUDA error: device-side assert triggered",
            "CUDA error: unspecified launch failure",
            "cuDNN error: CUDNN_STATUS_EXECUTION_FAILED",
        ];
        for m in cuda {
            assert_eq!(fault(m), Some(Fault::Cuda), "{m}");
            assert_eq!(fault(m).unwrap().exit_code(), ExitCode::Software);
        }
        let setup = [
            "CUDA error: no kernel image is available for execution on the device",
            "CUDA error: CUDA driver version is insufficient for CUDA runtime version",
            "Found no NVIDIA driver on your system.",
        ];
        for m in setup {
            assert_eq!(fault(m), Some(Fault::CudaSetup), "{m}");
            assert_eq!(fault(m).unwrap().exit_code(), ExitCode::Config);
        }
        for m in [
            "Internal torch error: shape '[1, 3, 64]' is invalid for input of size 100",
            "model forward failed: input has 4 channels, expected 3",
            "the memory layout is out of order",
        ] {
            assert_eq!(fault(m), None, "{m}");
        }
    }

    #[test]
    fn the_failing_line_of_a_torchscript_error_is_kept() {
        let ts = "Internal torch error: The following operation failed in the TorchScript \
                  interpreter.\nTraceback of TorchScript, serialized code (most recent call \
                  last):\n  File \"code/__torch__.py\", line 7, in forward\n    _1 = \
                  torch.matmul(_0, _0)\n\nRuntimeError: [enforce fail at alloc_cpu.cpp:127] \
                  err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate \
                  508249249939456 bytes. Error code 12 (Cannot allocate memory)\n";
        let line = error_line(ts);
        assert!(
            line.starts_with("Internal torch error: The following"),
            "{line}"
        );
        assert!(line.ends_with("(Cannot allocate memory)"), "{line}");
        assert_eq!(fault(&line), Some(Fault::OutOfMemory));
        let plain = "Internal torch error: shape mismatch\nException raised from f at a.cpp:1 \
                     (most recent call first):\nframe #0: c10::Error::Error()";
        assert_eq!(error_line(plain), "Internal torch error: shape mismatch");
    }

    /// A simulated GPU machine whose CUDA half does not load: `auto` warns with the loader's
    /// error and the driver, `cuda` fails with the reason and a hint; without a GPU `auto` is
    /// quiet.
    #[test]
    fn a_visible_gpu_is_never_dropped_silently() {
        let gpu = crate::cuda::NvidiaHost {
            driver: Some("580.65.06".into()),
            device_nodes: vec!["/dev/nvidia0".into()],
        };
        let failed: Result<std::path::PathBuf, String> =
            Err("/l/libtorch_cuda.so: libcublas.so.13: cannot open shared object file".into());
        let why = || crate::cuda::diagnose(Some(&failed), &gpu);
        let (d, w) = resolve_with(DeviceChoice::Auto, false, why).unwrap();
        assert_eq!(d, Device::Cpu);
        let w = w.expect("a warning");
        assert!(
            w.contains("libcublas.so.13") && w.contains("580.65.06"),
            "{w}"
        );
        assert_eq!(w.lines().count(), 1, "{w}");
        let e = resolve_with(DeviceChoice::Cuda, false, why).unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::Config);
        assert!(e.to_string().contains("libcublas.so.13"), "{e}");
        assert_eq!(e.to_string().lines().count(), 1, "{e}");
        assert!(e.hint().unwrap().contains("DEVICE=cuda"));
        let none = || crate::cuda::diagnose(Some(&failed), &Default::default());
        assert_eq!(
            resolve_with(DeviceChoice::Auto, false, none).unwrap(),
            (Device::Cpu, None)
        );
        let (d, w) = resolve_with(DeviceChoice::Auto, true, why).unwrap();
        assert_eq!((d, w), (Device::Cuda(0), None));
    }

    #[test]
    fn devices_are_named_and_cpu_always_resolves() {
        assert_eq!(device_name(Device::Cpu), "cpu");
        assert_eq!(device_name(Device::Cuda(1)), "cuda:1");
        assert_eq!(resolve_device(DeviceChoice::Cpu).unwrap(), Device::Cpu);
        if !tch::Cuda::is_available() {
            let e = resolve_device(DeviceChoice::Cuda).unwrap_err();
            assert_eq!(e.exit_code(), ExitCode::Config);
            assert!(e.to_string().contains("runtime.device"), "{e}");
            assert_eq!(resolve_device(DeviceChoice::Auto).unwrap(), Device::Cpu);
        }
    }
}
