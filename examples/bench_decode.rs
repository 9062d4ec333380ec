//! JPEG decoding benchmark: the decoder the runner uses (libjpeg-turbo with OpenCV's settings,
//! `maskomaly::preprocess::jpeg`) against the `image` crate's (zune-jpeg) on the same 2048×1024 files, 4:2:0 at
//! quality 90 and 4:4:4 at quality 90. Both produce 8-bit RGB; only the first is exact to OpenCV.
//!
//! `cargo run --release --example bench_decode -- [--repeats 15] [--out target/bench]`
//!
//! The images are synthetic road scenes (`demo::road_scene`) with noise added, encoded by
//! libjpeg-turbo. Prints ms/image (median of the repeats, the two decoders timed alternately) per
//! decoder and their ratio; writes `DIR/decode.json`.

mod common;
use common::arg;

use maskomaly::demo::road_scene;
use std::path::PathBuf;
use std::time::Instant;
use turbojpeg_sys as tj;

const W: usize = 2048;
const H: usize = 1024;

/// Road scene plus uniform noise in [-8, 8] from a fixed-seed LCG: photo-like entropy.
fn content() -> Vec<u8> {
    let mut img = road_scene(W, H, 7).data;
    let mut s = 12345u64;
    for v in img.iter_mut() {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = ((s >> 33) % 17) as i32 - 8;
        *v = (*v as i32 + n).clamp(0, 255) as u8;
    }
    img
}

/// Encodes RGB with libjpeg-turbo (TurboJPEG `tjCompress2`).
fn encode(rgb: &[u8], subsamp: tj::TJSAMP, quality: i32) -> Vec<u8> {
    // SAFETY: `rgb` holds W×H×3 bytes; the output buffer is allocated by TurboJPEG, copied, then
    // freed with tjFree; the handle is destroyed once.
    unsafe {
        let h = tj::tjInitCompress();
        assert!(!h.is_null());
        let mut buf: *mut u8 = std::ptr::null_mut();
        let mut size: libc::c_ulong = 0;
        let rc = tj::tjCompress2(
            h,
            rgb.as_ptr(),
            W as i32,
            0,
            H as i32,
            tj::TJPF_TJPF_RGB,
            &mut buf,
            &mut size,
            subsamp as i32,
            quality,
            0,
        );
        assert_eq!(rc, 0, "tjCompress2 failed");
        let out = std::slice::from_raw_parts(buf, size as usize).to_vec();
        tj::tjFree(buf);
        tj::tjDestroy(h);
        out
    }
}

/// Median ms of `a` and of `b`, timed alternately (a, b, a, b, ...) so that changing load on a
/// shared machine hits both alike.
fn medians_ms(repeats: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    a(); // warm-up
    b();
    let time = |f: &mut dyn FnMut()| {
        let t0 = Instant::now();
        f();
        t0.elapsed().as_secs_f64() * 1e3
    };
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        ta.push(time(&mut a));
        tb.push(time(&mut b));
    }
    let median = |mut t: Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    (median(ta), median(tb))
}

fn main() {
    let args = common::cli(include_str!("bench_decode.rs"));
    let repeats: usize = arg(&args, "--repeats", "15").parse().expect("--repeats");
    let out = PathBuf::from(arg(&args, "--out", "target/bench"));
    std::fs::create_dir_all(&out).expect("create the output folder");
    let rgb = content();
    let mut rows = Vec::new();
    println!("JPEG decode, {W}x{H}, median of {repeats} (ms/image)");
    println!("| file | libjpeg-turbo (OpenCV settings) | image crate (zune-jpeg) | ratio |");
    println!("| --- | --- | --- | --- |");
    for (name, subsamp) in [
        ("4:2:0 q90", tj::TJSAMP_TJSAMP_420),
        ("4:4:4 q90", tj::TJSAMP_TJSAMP_444),
    ] {
        let jpg = encode(&rgb, subsamp, 90);
        let (ours, crate_ms) = medians_ms(
            repeats,
            || {
                let (img, _) = maskomaly::preprocess::jpeg::decode(&jpg).expect("decode");
                assert_eq!(img.data.len(), W * H * 3);
            },
            || {
                let img = image::load_from_memory_with_format(&jpg, image::ImageFormat::Jpeg)
                    .expect("decode")
                    .into_rgb8();
                assert_eq!(img.as_raw().len(), W * H * 3);
            },
        );
        println!(
            "| {name} ({} KiB) | {ours:.2} | {crate_ms:.2} | {:.2} |",
            jpg.len() / 1024,
            ours / crate_ms
        );
        rows.push(serde_json::json!({
            "file": name, "bytes": jpg.len(), "libjpeg_turbo_ms": ours, "image_crate_ms": crate_ms,
            "ratio": ours / crate_ms,
        }));
    }
    let json = serde_json::json!({
        "benchmark": "decode", "width": W, "height": H, "repeats": repeats, "rows": rows,
    });
    std::fs::write(
        out.join("decode.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}
