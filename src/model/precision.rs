//! `runtime.precision`: libtorch's global TF32 switches, and a backend wrapper that runs the network
//! in bfloat16 / float16 while handing float32 outputs to scoring (which always runs in float32).

use super::{Backend, ModelError, RawOutput};
use crate::job::Precision;
use std::sync::{Mutex, Once};
use tch::{Device, Kind, Tensor};

/// tch does not expose `at::globalContext()`'s TF32 switches; libtorch_cpu exports them as plain
/// C++ symbols. Itanium C++ ABI: a member function takes `this` as its first argument. The setters
/// only store a flag, so they are safe to call without CUDA.
mod ffi {
    use std::os::raw::c_void;
    extern "C" {
        #[link_name = "_ZN2at13globalContextEv"]
        pub fn global_context() -> *mut c_void;
        #[link_name = "_ZN2at7Context18setAllowTF32CuBLASEb"]
        pub fn set_allow_tf32_cublas(ctx: *mut c_void, allow: bool);
        #[link_name = "_ZN2at7Context17setAllowTF32CuDNNEb"]
        pub fn set_allow_tf32_cudnn(ctx: *mut c_void, allow: bool);
        #[link_name = "_ZNK2at7Context15allowTF32CuBLASEv"]
        pub fn allow_tf32_cublas(ctx: *const c_void) -> bool;
    }
}

/// Allows or forbids TF32 for cuBLAS matmuls and cuDNN convolutions (process-wide).
pub fn set_tf32(allow: bool) {
    // SAFETY: `globalContext()` returns libtorch's static context, alive for the whole process.
    unsafe {
        let ctx = ffi::global_context();
        ffi::set_allow_tf32_cublas(ctx, allow);
        ffi::set_allow_tf32_cudnn(ctx, allow);
    }
}

/// Whether TF32 is currently allowed for cuBLAS.
pub fn tf32_cublas() -> bool {
    // SAFETY: as in `set_tf32`; a const getter.
    unsafe { ffi::allow_tf32_cublas(ffi::global_context()) }
}

/// The dtype the network runs in.
pub fn kind(p: Precision) -> Kind {
    match p {
        Precision::Fp32 | Precision::Tf32 => Kind::Float,
        Precision::Bf16 => Kind::BFloat16,
        Precision::Fp16 => Kind::Half,
    }
}

/// Serialises changes of the process-wide switches.
static FLAGS: Mutex<()> = Mutex::new(());

/// Sets the global switches a precision needs: TF32 on for `tf32`, off for every other mode.
pub fn apply_global_flags(p: Precision, device: Device) {
    let _l = FLAGS.lock().unwrap_or_else(|e| e.into_inner());
    set_tf32(p == Precision::Tf32);
    if p == Precision::Tf32 && device == Device::Cpu {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            log::info!("runtime.precision tf32 only affects CUDA; on the CPU it runs as fp32")
        });
    }
}

/// A backend converted to a precision: casts the input to the network's dtype and the outputs back
/// to float32.
pub struct Precise {
    inner: Box<dyn Backend>,
    precision: Precision,
    kind: Kind,
}

/// Applies `p` to a loaded float32 backend on `device`: sets the global flags, converts the weights,
/// and for bfloat16 / float16 runs one small probe batch so that a dtype the device cannot run fails
/// here, before any item is processed.
pub fn wrap(
    mut inner: Box<dyn Backend>,
    p: Precision,
    device: Device,
) -> Result<Box<dyn Backend>, ModelError> {
    apply_global_flags(p, device);
    let kind = kind(p);
    let unsupported = |message: String| ModelError::Precision {
        precision: p,
        device: crate::device::device_name(device),
        message: first_line(&message),
    };
    if kind != Kind::Float {
        inner
            .set_kind(kind)
            .map_err(|e| unsupported(e.to_string()))?;
    }
    let m = Precise {
        inner,
        precision: p,
        kind,
    };
    if kind != Kind::Float {
        let _g = tch::no_grad_guard();
        let x = Tensor::zeros([1, 3, 64, 64], (Kind::Float, device));
        let out = m.forward(&x).map_err(|e| unsupported(e.to_string()))?;
        let finite = |t: &Tensor| bool::try_from(t.isfinite().all()).unwrap_or(false);
        if !finite(&out.pred_logits) || !finite(&out.pred_masks) {
            return Err(unsupported(
                "the probe batch gave non-finite outputs".into(),
            ));
        }
    }
    Ok(Box::new(m))
}

/// The first line of a libtorch message, without tch's `Torch("...")` wrapping and backtrace.
fn first_line(s: &str) -> String {
    let s = s.split_once("Torch(\"").map_or(s, |(_, rest)| rest);
    let s = s.split("\\n").next().unwrap_or(s);
    s.lines()
        .next()
        .unwrap_or(s)
        .trim_end_matches("\")")
        .to_string()
}

impl Backend for Precise {
    fn forward(&self, x: &Tensor) -> Result<RawOutput, ModelError> {
        if self.kind == Kind::Float {
            return self.inner.forward(x);
        }
        let out = self.inner.forward(&x.to_kind(self.kind))?;
        Ok(RawOutput {
            pred_logits: out.pred_logits.to_kind(Kind::Float),
            pred_masks: out.pred_masks.to_kind(Kind::Float),
        })
    }

    fn describe(&self) -> String {
        format!("{}, precision {}", self.inner.describe(), self.precision)
    }

    fn set_kind(&mut self, kind: Kind) -> Result<(), ModelError> {
        self.inner.set_kind(kind)?;
        self.kind = kind;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::Config;
    use crate::model::native::NativeModel;

    /// The tiny fixture checkpoint (deterministic weights, unlike a seeded random model in tests
    /// that run in parallel).
    fn native() -> Box<dyn Backend> {
        let file = crate::model::native::fixture_dir().join("tiny_d2.pkl");
        let m = NativeModel::from_file(
            &file,
            crate::model::checkpoint::FileFormat::Detectron2Pickle,
            &Config::tiny(),
            "tiny",
            Device::Cpu,
        )
        .unwrap();
        Box::new(m)
    }

    /// A smooth, deterministic batch of two images.
    fn input() -> Tensor {
        let n = 2 * 3 * 64 * 96;
        (Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.0137)
            .sin()
            .view([2, 3, 64, 96])
    }

    fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn tf32_flags_set_and_clear_without_cuda() {
        let _l = FLAGS.lock().unwrap();
        for allow in [true, false, true, false] {
            set_tf32(allow);
            assert_eq!(tf32_cublas(), allow);
        }
    }

    /// fp32 through the wrapper is the unwrapped model, bit for bit.
    #[test]
    fn fp32_is_bit_identical() {
        let _g = tch::no_grad_guard();
        let x = input();
        let plain = native().forward(&x).unwrap();
        let wrapped = wrap(native(), Precision::Fp32, Device::Cpu)
            .unwrap()
            .forward(&x)
            .unwrap();
        assert!(plain.pred_logits.equal(&wrapped.pred_logits));
        assert!(plain.pred_masks.equal(&wrapped.pred_masks));
    }

    /// Largest allowed |output - fp32 output| as a fraction of max |fp32 output|: exact for fp32
    /// and tf32 (TF32 does not exist on the CPU); bfloat16 keeps 8 significant bits, float16 11.
    fn tolerance(p: Precision) -> f64 {
        match p {
            Precision::Fp32 | Precision::Tf32 => 0.0,
            Precision::Bf16 => 0.06,
            Precision::Fp16 => 0.01,
        }
    }

    /// Every mode runs on the CPU and gives float32 outputs of the fp32 shapes, close to fp32.
    #[test]
    fn modes_on_the_tiny_native_model() {
        let _g = tch::no_grad_guard();
        let x = input();
        let reference = native().forward(&x).unwrap();
        for p in Precision::ALL {
            let m = wrap(native(), p, Device::Cpu).unwrap();
            assert!(m.describe().ends_with(&format!("precision {p}")));
            let out = m.forward(&x).unwrap();
            crate::model::check_outputs(&out, 2).unwrap();
            assert_eq!(out.pred_logits.size(), reference.pred_logits.size());
            assert_eq!(out.pred_masks.size(), reference.pred_masks.size());
            let dl = max_abs(&out.pred_logits, &reference.pred_logits);
            let dm = max_abs(&out.pred_masks, &reference.pred_masks);
            let sl = reference.pred_logits.abs().max().double_value(&[]);
            let sm = reference.pred_masks.abs().max().double_value(&[]);
            println!("{p}: max abs diff logits {dl:.3e} (max |fp32| {sl:.3}), masks {dm:.3e} (max |fp32| {sm:.3})");
            assert!(dl <= tolerance(p) * sl, "{p} pred_logits");
            assert!(dm <= tolerance(p) * sm, "{p} pred_masks");
            // The reduced modes really ran in their dtype: their outputs are not fp32's.
            let reduced = matches!(p, Precision::Bf16 | Precision::Fp16);
            assert_eq!(dl > 0.0 && dm > 0.0, reduced, "{p} ran in float32");
        }
    }

    /// A backend that cannot change its dtype.
    struct Fixed;
    impl Backend for Fixed {
        fn forward(&self, _: &Tensor) -> Result<RawOutput, ModelError> {
            unreachable!()
        }
        fn describe(&self) -> String {
            "fixed".into()
        }
    }

    #[test]
    fn a_mode_that_cannot_run_fails_at_load_naming_key_and_device() {
        let err = wrap(Box::new(Fixed), Precision::Fp16, Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("runtime.precision `fp16` does not run on cpu"),
            "{err}"
        );
        assert!(first_line("a\nb") == "a");
    }

    /// The tiny TorchScript model in every mode that runs on the CPU.
    #[test]
    fn modes_on_the_tiny_torchscript_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.pt");
        crate::demo::write_tiny_model(&path).unwrap();
        let load = || -> Box<dyn Backend> {
            Box::new(crate::model::torchscript::TorchScriptModel::load(&path, Device::Cpu).unwrap())
        };
        let _g = tch::no_grad_guard();
        let x = input();
        let reference = load().forward(&x).unwrap();
        for p in Precision::ALL {
            let out = wrap(load(), p, Device::Cpu).unwrap().forward(&x).unwrap();
            crate::model::check_outputs(&out, 2).unwrap();
            let dl = max_abs(&out.pred_logits, &reference.pred_logits);
            let dm = max_abs(&out.pred_masks, &reference.pred_masks);
            println!("torchscript {p}: max abs diff logits {dl:.3e}, masks {dm:.3e}");
            let sl = reference.pred_logits.abs().max().double_value(&[]);
            let sm = reference.pred_masks.abs().max().double_value(&[]);
            assert!(dl <= tolerance(p) * sl, "{p} pred_logits");
            assert!(dm <= tolerance(p) * sm, "{p} pred_masks");
            // The reduced modes really ran in their dtype: their outputs are not fp32's.
            let reduced = matches!(p, Precision::Bf16 | Precision::Fp16);
            assert_eq!(dl > 0.0 && dm > 0.0, reduced, "{p} ran in float32");
        }
    }
}
