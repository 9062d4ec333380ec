//! `runtime.precision`: libtorch's global TF32 switches, the mixed-precision policy of the native
//! model, and a backend wrapper that hands float32 outputs to scoring (which always runs in float32).
//!
//! Mixed precision follows autocast: the matrix-product class of operations (linear layers,
//! convolutions, matmuls, attention, the mask einsum) runs in bfloat16 / float16 with float32
//! accumulation, and its result returns to float32; softmax, the norms, the deformable-attention
//! sampling, the masked-attention threshold and the outputs stay float32. Where the device has no
//! fast kernels for the reduced dtype (a CPU without AVX512-BF16 / AMX, where libtorch's bfloat16
//! GEMM and convolution run 5–400× slower than float32), the operands and results are rounded to the
//! reduced dtype and the products run in float32 kernels: the same numbers up to summation order,
//! at float32 speed.

use crate::job::Precision;
use crate::model::{Backend, ModelError, RawOutput};
use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};
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
    set_tf32_switches(allow, allow);
}

/// What [`set_tf32_switches`] last set: bit 0 cuBLAS, bit 1 cuDNN (libtorch's own cuDNN getter
/// takes a C++ `std::optional`, not callable from here).
static TF32_SET: AtomicU8 = AtomicU8::new(0);

/// Allows or forbids TF32 separately for cuBLAS matmuls and cuDNN convolutions (process-wide).
pub fn set_tf32_switches(cublas: bool, cudnn: bool) {
    // SAFETY: `globalContext()` returns libtorch's static context, alive for the whole process.
    unsafe {
        let ctx = ffi::global_context();
        ffi::set_allow_tf32_cublas(ctx, cublas);
        ffi::set_allow_tf32_cudnn(ctx, cudnn);
    }
    TF32_SET.store(cublas as u8 | (cudnn as u8) << 1, Ordering::SeqCst);
}

/// Whether a product on `device` may run in TF32 now: a CUDA device with either switch on (set
/// by this process, or cuBLAS's as libtorch reports it). Scoring then computes its products in
/// float64, so that its float32 results do not depend on the network's precision.
pub fn tf32_possible(device: Device) -> bool {
    device.is_cuda() && (TF32_SET.load(Ordering::SeqCst) != 0 || tf32_cublas())
}

/// Whether TF32 is currently allowed for cuBLAS.
pub fn tf32_cublas() -> bool {
    // SAFETY: as in `set_tf32`; a const getter.
    unsafe { ffi::allow_tf32_cublas(ffi::global_context()) }
}

/// The dtype the network runs in.
pub fn kind(p: Precision) -> Kind {
    match p {
        Precision::Fp32 | Precision::Tf32 | Precision::Pytorch => Kind::Float,
        Precision::Bf16 => Kind::BFloat16,
        Precision::Fp16 => Kind::Half,
    }
}

/// How the matrix-product class of operations runs (every other operation runs in float32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compute {
    /// Float32 throughout (`fp32`, `tf32`): the unchanged network.
    Float32,
    /// Operands cast to the reduced dtype, its kernels, the result cast back to float32.
    Reduced(Kind),
    /// Operands and result rounded to the reduced dtype, float32 kernels in between: `Reduced`'s
    /// numbers where the device has no fast kernels for the dtype.
    Rounded(Kind),
}

impl Compute {
    /// The dtype matrix products round to (float32 for `Float32`).
    pub fn kind(self) -> Kind {
        match self {
            Compute::Float32 => Kind::Float,
            Compute::Reduced(k) | Compute::Rounded(k) => k,
        }
    }
}

/// The policy for matrix products in `kind` (float32, bfloat16 or float16) on a device: reduced
/// kernels on CUDA and on CPUs with matrix instructions for the dtype, rounded float32 kernels on
/// other CPUs.
pub fn compute_for(kind: Kind, device: Device) -> Compute {
    match kind {
        Kind::Float => Compute::Float32,
        k if device.is_cuda() || cpu_has_fast_kernels(k) => Compute::Reduced(k),
        k => Compute::Rounded(k),
    }
}

/// Whether this CPU has matrix instructions for `kind` that libtorch's oneDNN kernels use:
/// AVX512-BF16 or AMX-BF16 for bfloat16, AVX512-FP16 or AMX-FP16 for float16.
pub fn cpu_has_fast_kernels(kind: Kind) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid_count;
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return false;
        }
        // SAFETY: CPUID exists on every x86_64 CPU; leaf 7 is below the maximum leaf wherever
        // AVX-512 is reported.
        #[allow(unused_unsafe)]
        let (l0, l1) = unsafe { (__cpuid_count(7, 0), __cpuid_count(7, 1)) };
        let bit = |r: u32, b: u32| r >> b & 1 == 1;
        match kind {
            // AMX-BF16: leaf 7.0 EDX bit 22; AVX512-BF16: leaf 7.1 EAX bit 5.
            Kind::BFloat16 => bit(l0.edx, 22) || bit(l1.eax, 5),
            // AVX512-FP16: leaf 7.0 EDX bit 23; AMX-FP16: leaf 7.1 EAX bit 21.
            Kind::Half => bit(l0.edx, 23) || bit(l1.eax, 21),
            _ => false,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = kind;
        false
    }
}

thread_local! {
    static COMPUTE: Cell<Compute> = const { Cell::new(Compute::Float32) };
}

/// The policy of the forward pass running on this thread (`Float32` outside one).
pub fn compute() -> Compute {
    COMPUTE.with(Cell::get)
}

/// Restores the previous policy when dropped.
pub struct ComputeGuard(Compute);

impl Drop for ComputeGuard {
    fn drop(&mut self) {
        COMPUTE.with(|c| c.set(self.0));
    }
}

/// Sets this thread's policy until the guard drops (the native model sets its own per forward).
pub fn enter(c: Compute) -> ComputeGuard {
    ComputeGuard(COMPUTE.with(|cell| cell.replace(c)))
}

/// An activation as a matrix-product operand under `c`.
fn operand(x: &Tensor, c: Compute) -> Tensor {
    match c {
        Compute::Float32 => x.shallow_clone(),
        Compute::Reduced(k) => x.to_kind(k),
        Compute::Rounded(k) => x.to_kind(k).to_kind(Kind::Float),
    }
}

/// A matrix product's result under `c`, as float32.
fn result(y: Tensor, c: Compute) -> Tensor {
    match c {
        Compute::Float32 => y,
        Compute::Reduced(_) => y.to_kind(Kind::Float),
        Compute::Rounded(k) => y.to_kind(k).to_kind(Kind::Float),
    }
}

/// `x · wᵀ + b` under the thread's policy (the weights already converted by the model).
pub fn linear(x: &Tensor, ws: &Tensor, bs: Option<&Tensor>) -> Tensor {
    match compute() {
        Compute::Float32 => x.linear(ws, bs),
        c => result(operand(x, c).linear(ws, bs), c),
    }
}

/// A convolution (zero padding) under the thread's policy.
pub fn conv2d(
    x: &Tensor,
    ws: &Tensor,
    bs: Option<&Tensor>,
    stride: [i64; 2],
    padding: [i64; 2],
    groups: i64,
) -> Tensor {
    match compute() {
        Compute::Float32 => x.conv2d(ws, bs, stride, padding, [1, 1], groups),
        c => result(
            operand(x, c).conv2d(ws, bs, stride, padding, [1, 1], groups),
            c,
        ),
    }
}

/// `a @ b` of two activations under the thread's policy.
pub fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    match compute() {
        Compute::Float32 => a.matmul(b),
        c => result(operand(a, c).matmul(&operand(b, c)), c),
    }
}

/// A two-operand einsum of activations under the thread's policy.
pub fn einsum(eq: &str, a: &Tensor, b: &Tensor) -> Tensor {
    match compute() {
        Compute::Float32 => Tensor::einsum(eq, &[a, b], None::<i64>),
        c => result(
            Tensor::einsum(eq, &[operand(a, c), operand(b, c)], None::<i64>),
            c,
        ),
    }
}

/// Fused attention `softmax(q·kᵀ·scale + mask)·v` under the thread's policy (`mask` additive).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Tensor {
    let c = compute();
    let mask = match c {
        Compute::Reduced(kind) => mask.to_kind(kind),
        _ => mask.shallow_clone(),
    };
    let out = Tensor::scaled_dot_product_attention(
        &operand(q, c),
        &operand(k, c),
        &operand(v, c),
        Some(&mask),
        0.0,
        false,
        scale,
        false,
    );
    result(out, c)
}

/// Serialises changes of the process-wide switches.
static FLAGS: Mutex<()> = Mutex::new(());

/// The TF32 switches `p` sets: (cuBLAS matmuls, cuDNN convolutions).
pub fn tf32_switches(p: Precision) -> (bool, bool) {
    match p {
        Precision::Tf32 => (true, true),
        Precision::Pytorch => (false, true),
        Precision::Fp32 | Precision::Bf16 | Precision::Fp16 => (false, false),
    }
}

/// Sets the global switches a precision needs: TF32 for matmuls and convolutions for `tf32`, for
/// convolutions only for `pytorch` (PyTorch's own defaults), off for every other mode.
pub fn apply_global_flags(p: Precision, device: Device) {
    let _l = FLAGS.lock().unwrap_or_else(|e| e.into_inner());
    let (cublas, cudnn) = tf32_switches(p);
    set_tf32_switches(cublas, cudnn);
    if matches!(p, Precision::Tf32 | Precision::Pytorch) && device == Device::Cpu {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            log::info!("runtime.precision {p} only affects CUDA; on the CPU it runs as fp32")
        });
    }
    let reduced = match p {
        Precision::Bf16 => Some((Kind::BFloat16, "bfloat16", "AVX512-BF16 or AMX-BF16")),
        Precision::Fp16 => Some((Kind::Half, "float16", "AVX512-FP16 or AMX-FP16")),
        _ => None,
    };
    if let Some((_, dtype, isa)) =
        reduced.filter(|&(k, ..)| device == Device::Cpu && !cpu_has_fast_kernels(k))
    {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            log::warn!(
                "runtime.precision {p}: this CPU has no {dtype} matrix instructions ({isa}); \
                 products run in float32 kernels on rounded operands, no faster than fp32, \
                 which gives exact maps"
            )
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
        if self.inner.float32_io() {
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

    fn float32_io(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::backend::native::NativeModel;
    use crate::model::config::Config;

    /// The tiny fixture checkpoint (deterministic weights, unlike a seeded random model in tests
    /// that run in parallel).
    fn native() -> Box<dyn Backend> {
        let file = crate::model::backend::native::fixture_dir().join("tiny_d2.pkl");
        let m = NativeModel::from_file(
            &file,
            crate::model::weights::checkpoint::FileFormat::Detectron2Pickle,
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

    /// `pytorch` is PyTorch's default: TF32 for cuDNN convolutions only; any TF32 switch makes
    /// scoring's CUDA products leave float32 kernels, never on the CPU.
    #[test]
    fn pytorch_precision_is_tf32_for_convolutions_only() {
        assert_eq!(tf32_switches(Precision::Pytorch), (false, true));
        assert_eq!(tf32_switches(Precision::Tf32), (true, true));
        assert_eq!(tf32_switches(Precision::Fp32), (false, false));
        assert_eq!(kind(Precision::Pytorch), Kind::Float);
        let _l = FLAGS.lock().unwrap();
        set_tf32_switches(false, true);
        assert!(!tf32_cublas());
        assert!(tf32_possible(Device::Cuda(0)) && !tf32_possible(Device::Cpu));
        set_tf32(false);
        assert!(!tf32_possible(Device::Cuda(0)));
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
            Precision::Fp32 | Precision::Tf32 | Precision::Pytorch => 0.0,
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

    /// Rounded float32 kernels give the reduced kernels' numbers: per operation the two differ by
    /// the result's rounding and the summation order (a few units of the reduced dtype's last
    /// place), while both differ from float32.
    #[test]
    fn rounded_products_match_reduced_kernels() {
        let _g = tch::no_grad_guard();
        let opts = (Kind::Float, Device::Cpu);
        let x = Tensor::randn([64, 96], opts);
        let w = Tensor::randn([48, 96], opts) * 0.1;
        let b = Tensor::randn([48], opts);
        let img = Tensor::randn([1, 8, 12, 10], opts);
        let cw = Tensor::randn([6, 8, 3, 3], opts) * 0.1;
        for k in [Kind::BFloat16, Kind::Half] {
            let run = |c: Compute| {
                let (w, b, cw) = match c {
                    Compute::Float32 => (w.copy(), b.copy(), cw.copy()),
                    Compute::Reduced(k) => (w.to_kind(k), b.to_kind(k), cw.to_kind(k)),
                    Compute::Rounded(k) => (
                        w.to_kind(k).to_kind(Kind::Float),
                        b.to_kind(k).to_kind(Kind::Float),
                        cw.to_kind(k).to_kind(Kind::Float),
                    ),
                };
                let _c = enter(c);
                [
                    linear(&x, &w, Some(&b)),
                    conv2d(&img, &cw, None, [1, 1], [1, 1], 1),
                    matmul(&x, &x.transpose(0, 1)),
                    einsum("qc,chw->qhw", &x.narrow(1, 0, 8), &img.get(0)),
                ]
            };
            let (f, red, rnd) = (
                run(Compute::Float32),
                run(Compute::Reduced(k)),
                run(Compute::Rounded(k)),
            );
            // Machine epsilon of the reduced dtype.
            let eps = if k == Kind::BFloat16 {
                2f64.powi(-7)
            } else {
                2f64.powi(-10)
            };
            for (i, ((f, red), rnd)) in f.iter().zip(&red).zip(&rnd).enumerate() {
                assert_eq!(red.kind(), Kind::Float);
                assert_eq!(rnd.kind(), Kind::Float);
                let scale = f.abs().max().double_value(&[]);
                let d = max_abs(rnd, red) / scale;
                let from_fp32 = max_abs(rnd, f) / scale;
                println!("{k:?} op {i}: |rounded - reduced| {d:.2e}, |rounded - fp32| {from_fp32:.2e} (of max |y|)");
                assert!(d <= 2.0 * eps, "{k:?} op {i}: {d:e}");
                assert!(
                    from_fp32 > 0.0 && from_fp32 <= 4.0 * eps,
                    "{k:?} op {i}: {from_fp32:e}"
                );
                // Results are representable in the reduced dtype.
                assert!(
                    rnd.equal(&rnd.to_kind(k).to_kind(Kind::Float)),
                    "{k:?} op {i}"
                );
            }
        }
        assert_eq!(compute(), Compute::Float32, "guards restore the policy");
    }

    /// bf16 converts only the matrix-product weights: norms, embeddings and tables stay float32.
    #[test]
    fn reduced_precision_converts_only_matrix_product_weights() {
        use crate::model::network::layers::MATMUL_GROUP;
        let mut m = NativeModel::from_file(
            &crate::model::backend::native::fixture_dir().join("tiny_d2.pkl"),
            crate::model::weights::checkpoint::FileFormat::Detectron2Pickle,
            &Config::tiny(),
            "tiny",
            Device::Cpu,
        )
        .unwrap();
        let before: Vec<(usize, Tensor)> = m
            .var_store()
            .variables_
            .lock()
            .unwrap()
            .trainable_variables
            .iter()
            .map(|v| (v.group, v.tensor.copy()))
            .collect();
        for c in [
            Compute::Reduced(Kind::BFloat16),
            Compute::Rounded(Kind::BFloat16),
        ] {
            m.set_compute(Compute::Float32);
            m.set_compute(c);
            assert_eq!(m.compute(), c);
            let vars = m.var_store().variables_.lock().unwrap();
            let mut n = [0usize; 2];
            for (v, (g, old)) in vars.trainable_variables.iter().zip(&before) {
                assert_eq!(v.group, *g);
                let t = &v.tensor;
                if *g == MATMUL_GROUP {
                    n[1] += 1;
                    let want = if c == Compute::Reduced(Kind::BFloat16) {
                        Kind::BFloat16
                    } else {
                        Kind::Float
                    };
                    assert_eq!(t.kind(), want);
                    assert!(t
                        .to_kind(Kind::Float)
                        .equal(&old.to_kind(Kind::BFloat16).to_kind(Kind::Float)));
                } else {
                    n[0] += 1;
                    assert!(
                        t.kind() == Kind::Float && t.equal(old),
                        "a float32 parameter changed"
                    );
                }
            }
            // Norms / embeddings / tables, and the linear and convolution weights.
            assert!(n[0] > 20 && n[1] > 40, "{n:?}");
        }
    }

    #[test]
    fn policy_per_device() {
        assert_eq!(compute_for(Kind::Float, Device::Cpu), Compute::Float32);
        assert_eq!(
            compute_for(Kind::BFloat16, Device::Cuda(0)),
            Compute::Reduced(Kind::BFloat16)
        );
        let cpu = compute_for(Kind::BFloat16, Device::Cpu);
        assert_eq!(
            cpu == Compute::Reduced(Kind::BFloat16),
            cpu_has_fast_kernels(Kind::BFloat16)
        );
        assert_eq!(cpu.kind(), Kind::BFloat16);
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
            Box::new(
                crate::model::backend::torchscript::TorchScriptModel::load(&path, Device::Cpu)
                    .unwrap(),
            )
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
