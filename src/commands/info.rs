//! `maskomaly info`: what this binary runs on (used by the container tests as the CUDA probe),
//! and when CUDA cannot run, why and what to do.

use crate::diagnostic::ExitCode;
use crate::provenance::build::{git_commit, libtorch_version};

pub fn info() -> ExitCode {
    println!("maskomaly {}", env!("CARGO_PKG_VERSION"));
    if let Some(c) = git_commit() {
        println!("commit: {c}");
    }
    println!("libtorch: {}", libtorch_version());
    match crate::cuda::status() {
        Some(Ok(p)) => println!("cuda support: loaded from {}", p.display()),
        Some(Err(e)) => println!("cuda support: not loaded ({e})"),
        None => println!("cuda support: not probed"),
    }
    let host = crate::cuda::NvidiaHost::probe();
    if host.present() {
        println!("nvidia: {}", host.describe());
    } else {
        println!("nvidia: no driver, no GPU device");
    }
    let n = tch::Cuda::device_count();
    println!("cuda devices: {n}");
    if n == 0 && (host.present() || crate::cuda::status().is_some_and(|s| s.is_ok())) {
        let u = crate::cuda::diagnose(crate::cuda::status(), &host);
        println!("cuda unavailable: {}", u.reason);
        println!("hint: {}", u.hint);
    }
    println!("cudnn: {}", tch::Cuda::cudnn_is_available());
    ExitCode::Ok
}
