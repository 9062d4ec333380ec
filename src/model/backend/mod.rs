//! The backends that run the network: native (Rust modules over libtorch kernels) and TorchScript.

pub mod native;
pub mod torchscript;
