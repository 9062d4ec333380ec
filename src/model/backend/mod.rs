//! The backends that run the network: native (Rust modules over libtorch kernels), TorchScript, and
//! the precision wrapper around either.

pub mod native;
pub mod precision;
pub mod torchscript;
