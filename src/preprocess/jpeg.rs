//! JPEG decoding exactly as `cv2.imread(path, IMREAD_COLOR)` does it (OpenCV 4.7,
//! `modules/imgcodecs/src/grfmt_jpeg.cpp`, `exif.cpp`, `loadsave.cpp`), through libjpeg-turbo's
//! TurboJPEG API:
//!
//! * libjpeg's defaults, which OpenCV leaves alone: the accurate integer IDCT (`JDCT_ISLOW`) and
//!   fancy (triangle-filter) chroma upsampling; TurboJPEG flags 0 keep both.
//! * 1 or 3 components: libjpeg converts to RGB (greyscale replicated). 4 components (CMYK, or
//!   YCCK which libjpeg turns into CMYK): decoded as CMYK, then OpenCV's own formula
//!   `R = K − ((255 − C)·K >> 8)` (same for G from M, B from Y).
//! * libjpeg warnings (corrupt entropy data, stray bytes) do not fail the decode, as in OpenCV;
//!   errors do, also after a warning.
//! * EXIF orientation from the *first* APP1 segment before the scan, parsed by OpenCV's rules
//!   ([`exif_orientation`]), applied afterwards by transposing and flipping.
//!
//! 12-bit JPEGs are rejected with a clear error: OpenCV's libjpeg-turbo is built for 8-bit samples
//! and rejects them too.

use super::{DecodeError, Rgb8};
use std::ffi::CStr;
use turbojpeg_sys as tj;

/// OpenCV's JPEG signature.
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// What the markers before the first scan say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub width: usize,
    pub height: usize,
    pub components: u8,
    pub precision: u8,
    /// EXIF orientation 1–8 as OpenCV reads it; `None` when absent or not one of those values.
    pub orientation: Option<u16>,
}

impl Header {
    /// (width, height) of the decoded image once the orientation is applied.
    pub fn oriented_size(&self) -> (usize, usize) {
        match self.orientation {
            Some(5..=8) => (self.height, self.width),
            _ => (self.width, self.height),
        }
    }
}

fn bad(msg: impl Into<String>) -> DecodeError {
    DecodeError::Jpeg(msg.into())
}

/// Walks the markers from SOI to the first SOS the way libjpeg's marker reader does (bytes other
/// than `FF` between segments are skipped, `FF` fill bytes too) and reads the frame header and the
/// first APP1 segment. Reads no entropy-coded data, so it costs microseconds.
pub fn read_header(bytes: &[u8]) -> Result<Header, DecodeError> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err(bad("no start-of-image marker"));
    }
    let mut pos = 2;
    let mut frame: Option<(usize, usize, u8, u8)> = None;
    let mut first_app1: Option<&[u8]> = None;
    loop {
        // Next marker: skip to an FF, then past any FF fill bytes; FF 00 is not a marker.
        let marker = loop {
            while pos < bytes.len() && bytes[pos] != 0xFF {
                pos += 1;
            }
            while pos < bytes.len() && bytes[pos] == 0xFF {
                pos += 1;
            }
            match bytes.get(pos) {
                None => return Err(bad("header ends before the first scan")),
                Some(0) => pos += 1,
                Some(&m) => {
                    pos += 1;
                    break m;
                }
            }
        };
        match marker {
            0xDA => break,
            0xD9 => return Err(bad("end-of-image marker before any scan")),
            // Markers without a length field.
            0x01 | 0xD0..=0xD7 | 0xD8 => continue,
            _ => {}
        }
        let len = match bytes.get(pos..pos + 2) {
            Some(l) => u16::from_be_bytes([l[0], l[1]]) as usize,
            None => return Err(bad("header ends inside a marker")),
        };
        if len < 2 || pos + len > bytes.len() {
            return Err(bad(format!(
                "marker FF{marker:02X} has length {len}, past the end of the file"
            )));
        }
        let seg = &bytes[pos + 2..pos + len];
        match marker {
            // SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                if frame.is_some() {
                    return Err(bad("two frame headers"));
                }
                if seg.len() < 6 {
                    return Err(bad("frame header too short"));
                }
                let h = u16::from_be_bytes([seg[1], seg[2]]) as usize;
                let w = u16::from_be_bytes([seg[3], seg[4]]) as usize;
                frame = Some((w, h, seg[5], seg[0]));
            }
            0xE1 if first_app1.is_none() => first_app1 = Some(seg),
            _ => {}
        }
        pos += len;
    }
    let (width, height, components, precision) =
        frame.ok_or_else(|| bad("no frame header before the first scan"))?;
    // OpenCV hands the APP1 body to its EXIF reader from byte 6 on, without checking "Exif\0\0".
    let orientation = first_app1
        .filter(|seg| seg.len() > 6)
        .and_then(|seg| exif_orientation(&seg[6..]))
        .filter(|o| (1..=8).contains(o));
    Ok(Header {
        width,
        height,
        components,
        precision,
        orientation,
    })
}

/// The orientation value OpenCV 4.7's `ExifReader` finds in a TIFF structure: byte order `II`
/// little-endian, anything else big-endian; IFD0 entries are read in order and the first
/// orientation entry (0x0112) gives the 16 bits at the start of its value field whatever its
/// type. Reading stops at the first entry whose value cannot be read (for the tags OpenCV
/// decodes), and entries read before it still count.
pub fn exif_orientation(tiff: &[u8]) -> Option<u16> {
    let little = tiff.len() >= 2 && tiff[0] == b'I' && tiff[1] == b'I';
    let u16_at = |o: usize| -> Option<u16> {
        let b = tiff.get(o..o.checked_add(2)?)?;
        Some(if little {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        })
    };
    let u32_at = |o: usize| -> Option<u32> {
        let b = tiff.get(o..o.checked_add(4)?)?;
        let b = [b[0], b[1], b[2], b[3]];
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    // `n` unsigned rationals (8 bytes each) at the offset stored in the entry's value field.
    let rationals = |entry: usize, n: usize| -> Option<()> {
        let at = u32_at(entry + 8)? as usize;
        u32_at(at + 8 * n - 4).map(|_| ())
    };
    if u16_at(2)? != 0x2A {
        return None;
    }
    let start = u32_at(4)? as usize;
    let count = u16_at(start)? as usize;
    let mut orientation = None;
    for i in 0..count {
        let entry = start + 2 + 12 * i;
        let tag = u16_at(entry)?;
        let read = match tag {
            // ASCII strings: count, then inline (≤ 4 bytes: OpenCV checks offset 8) or an offset.
            0x010E | 0x010F | 0x0110 | 0x0131 | 0x0132 | 0x8298 => {
                let size = u32_at(entry + 4)? as usize;
                let at = if size > 4 {
                    u32_at(entry + 8)? as usize
                } else {
                    8
                };
                (at <= tiff.len() && at + size <= tiff.len()).then_some(())
            }
            0x0112 => {
                let v = u16_at(entry + 8)?;
                orientation.get_or_insert(v);
                Some(())
            }
            // Resolution unit, YCbCr positioning.
            0x0128 | 0x0213 => u16_at(entry + 8).map(|_| ()),
            0x011A | 0x011B => rationals(entry, 1),
            0x013E => rationals(entry, 2),
            0x013F | 0x0214 => rationals(entry, 6),
            0x0211 => rationals(entry, 3),
            _ => Some(()),
        };
        if read.is_none() {
            break;
        }
    }
    orientation
}

/// A TurboJPEG decompressor, destroyed on drop.
struct Decompressor(tj::tjhandle);

impl Decompressor {
    fn new() -> Result<Self, DecodeError> {
        // SAFETY: plain constructor; a null handle is checked below.
        let h = unsafe { tj::tjInitDecompress() };
        if h.is_null() {
            return Err(bad("cannot create a libjpeg-turbo decompressor"));
        }
        Ok(Self(h))
    }

    fn last_error(&self) -> String {
        // SAFETY: the handle is valid; the string is owned by it and copied at once.
        unsafe { CStr::from_ptr(tj::tjGetErrorStr2(self.0)) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the handle came from tjInitDecompress and is destroyed once.
        unsafe {
            tj::tjDestroy(self.0);
        }
    }
}

/// A zeroed buffer, or an error instead of an abort when it cannot be allocated.
fn alloc(n: usize, w: usize, h: usize) -> Result<Vec<u8>, DecodeError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| bad(format!("cannot allocate {n} bytes for a {w}x{h} image")))?;
    v.resize(n, 0);
    Ok(v)
}

/// Decodes a JPEG to 8-bit RGB like `cv2.imread` + BGR→RGB. Returns the image and the text of a
/// libjpeg warning when there was one (the image is still complete, as OpenCV returns it).
pub fn decode(bytes: &[u8]) -> Result<(Rgb8, Option<String>), DecodeError> {
    let header = read_header(bytes)?;
    if header.precision != 8 {
        return Err(DecodeError::JpegPrecision(header.precision));
    }
    let (w, h) = (header.width, header.height);
    if w == 0 || h == 0 {
        return Err(DecodeError::ZeroSize);
    }
    let cmyk = header.components == 4;
    let (format, channels) = if cmyk {
        (tj::TJPF_TJPF_CMYK, 4)
    } else {
        (tj::TJPF_TJPF_RGB, 3)
    };
    let n = w
        .checked_mul(h)
        .and_then(|p| p.checked_mul(channels))
        .ok_or_else(|| bad(format!("{w}x{h} is too large")))?;
    let mut out = alloc(n, w, h)?;
    let d = Decompressor::new()?;
    // Width and height as in the frame header select scale 1/1. Flags 0: accurate integer IDCT
    // and fancy upsampling, libjpeg's defaults, which cv2.imread keeps.
    // SAFETY: TurboJPEG reads at most `bytes.len()` bytes of `bytes`. It writes the image scaled
    // by the largest of its scaling factors whose result fits in `w × h` (an error when none does),
    // so at most `h` rows of `pitch` bytes, whatever the file's own header says; with `w` and `h`
    // read from that header the factor is 1/1. The pitch is `w × channels`, and `channels` is the
    // pixel size of `format` (3 for RGB, which grey input is converted to; 4 for CMYK). `out` holds
    // `n = w × h × channels` bytes: every byte TurboJPEG may write.
    let rc = unsafe {
        tj::tjDecompress2(
            d.0,
            bytes.as_ptr(),
            bytes.len() as libc::c_ulong,
            out.as_mut_ptr(),
            w as libc::c_int,
            (w * channels) as libc::c_int,
            h as libc::c_int,
            format,
            0,
        )
    };
    let mut warning = None;
    if rc != 0 {
        let msg = d.last_error();
        // SAFETY: valid handle.
        let code = unsafe { tj::tjGetErrorCode(d.0) };
        // TurboJPEG reports "warning" whenever one was emitted, even when an error followed; the
        // message then is the error's (libjpeg keeps only the first warning's text).
        if code == tj::TJERR_TJERR_WARNING as libc::c_int && is_libjpeg_warning(&msg) {
            warning = Some(msg);
        } else {
            return Err(bad(msg));
        }
    }
    if cmyk {
        out = cmyk_to_rgb(&out);
    }
    let img = Rgb8 {
        width: w,
        height: h,
        data: out,
    };
    let img = match header.orientation {
        Some(o) => orient(&img, o),
        None => img,
    };
    Ok((img, warning))
}

/// Whether `msg` is one of libjpeg's warning messages (`JWRN_*` in `jerror.h`), after which
/// decoding goes on; every other message is an error that stopped it.
fn is_libjpeg_warning(msg: &str) -> bool {
    const WARNINGS: [&str; 7] = [
        "Corrupt JPEG data:",
        "Premature end of JPEG file",
        "Warning: unknown JFIF revision number",
        "Unknown Adobe color transform code",
        "Inconsistent progression sequence",
        "Invalid SOS parameters for sequential JPEG",
        "Application transferred too many scanlines",
    ];
    WARNINGS.iter().any(|w| msg.starts_with(w))
}

/// OpenCV's `icvCvt_CMYK2BGR_8u_C4C3R`, written in RGB order.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let f = |c: u8, k: u8| {
        let (c, k) = (c as i32, k as i32);
        (k - (((255 - c) * k) >> 8)) as u8
    };
    cmyk.chunks_exact(4)
        .flat_map(|p| [f(p[0], p[3]), f(p[1], p[3]), f(p[2], p[3])])
        .collect()
}

/// Applies an EXIF orientation the way OpenCV's `ExifTransform` does: 2 flip left-right, 3 flip
/// both, 4 flip up-down, 5 transpose, 6 transpose + flip left-right, 7 transpose + flip both,
/// 8 transpose + flip up-down. Other values leave the image as it is.
pub fn orient(img: &Rgb8, orientation: u16) -> Rgb8 {
    let (w, h) = (img.width, img.height);
    let transposed = (5..=8).contains(&orientation);
    let (ow, oh) = if transposed { (h, w) } else { (w, h) };
    // Source pixel (x, y) for output pixel (ox, oy).
    let src = |ox: usize, oy: usize| -> (usize, usize) {
        match orientation {
            2 => (w - 1 - ox, oy),
            3 => (w - 1 - ox, h - 1 - oy),
            4 => (ox, h - 1 - oy),
            5 => (oy, ox),
            6 => (oy, h - 1 - ox),
            7 => (w - 1 - oy, h - 1 - ox),
            8 => (w - 1 - oy, ox),
            _ => (ox, oy),
        }
    };
    let mut data = Vec::with_capacity(ow * oh * 3);
    for oy in 0..oh {
        for ox in 0..ow {
            let (x, y) = src(ox, oy);
            let i = (y * w + x) * 3;
            data.extend_from_slice(&img.data[i..i + 3]);
        }
    }
    Rgb8 {
        width: ow,
        height: oh,
        data,
    }
}

#[cfg(test)]
mod tests {
    //! Fixtures: `tests/fixtures/jpeg/`, made with
    //! `PYTHONPATH=/tmp/pycv python3 scripts/make_jpeg_fixtures.py tests/fixtures/jpeg`
    //! (opencv-python-headless 4.7.0.68; see the script header). Each encoded image sits beside
    //! OpenCV's decode of it (`cv2.imread`, BGR→RGB) as an 8-bit RGB PNG.
    use super::*;
    use crate::job::Preprocess;
    use crate::preprocess::{decode_file, image_dimensions, prepare};
    use std::path::{Path, PathBuf};

    fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg")
    }

    struct Case {
        file: String,
        /// OpenCV's decode, or `None` when OpenCV fails on the file.
        opencv: Option<Rgb8>,
        /// Text the error message must contain when OpenCV fails.
        error: Option<String>,
    }

    fn cases() -> Vec<Case> {
        let text = std::fs::read_to_string(dir().join("fixtures.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| Case {
                file: c["file"].as_str().unwrap().to_string(),
                opencv: c["opencv"].as_str().map(|p| {
                    let img = image::open(dir().join(p)).unwrap().to_rgb8();
                    Rgb8 {
                        width: img.width() as usize,
                        height: img.height() as usize,
                        data: img.into_raw(),
                    }
                }),
                error: c["error"].as_str().map(str::to_string),
            })
            .collect()
    }

    fn decode_case(c: &Case) -> Result<Rgb8, DecodeError> {
        let path = dir().join(&c.file);
        decode_file(&path, &std::fs::read(&path).unwrap())
    }

    #[test]
    fn fixture_set_is_complete() {
        let names: Vec<String> = cases().into_iter().map(|c| c.file).collect();
        for want in [
            "q90_420.jpg",
            "q60_420.jpg",
            "q90_422.jpg",
            "q90_444.jpg",
            "q90_440.jpg",
            "q90_411.jpg",
            "progressive_420.jpg",
            "restart_420.jpg",
            "grey.jpg",
            "odd_1x1_420.jpg",
            "odd_17x9_420.jpg",
            "odd_33x65_420.jpg",
            "odd_101x57_420.jpg",
            "exif_o3.jpg",
            "exif_o6.jpg",
            "exif_o8.jpg",
            "cmyk.jpg",
            "ycck.jpg",
            "precision12.jpg",
            "warning_extraneous.jpg",
            "webp_lossy.webp",
            "webp_lossless.webp",
            "png_rgb16.png",
        ] {
            assert!(names.iter().any(|n| n == want), "fixture {want} missing");
        }
    }

    /// Every fixture decodes to exactly OpenCV's bytes, or fails where OpenCV fails.
    #[test]
    fn decodes_like_opencv() {
        let mut failures = Vec::new();
        let all = cases();
        assert!(all.len() >= 40, "only {} fixtures", all.len());
        for c in &all {
            match (decode_case(c), &c.opencv, &c.error) {
                (Ok(ours), Some(cv), _) => {
                    if (ours.width, ours.height) != (cv.width, cv.height) {
                        failures.push(format!(
                            "{}: size {}x{}, OpenCV {}x{}",
                            c.file, ours.width, ours.height, cv.width, cv.height
                        ));
                        continue;
                    }
                    let diff = ours.data.iter().zip(&cv.data).filter(|(a, b)| a != b);
                    let (n, max) =
                        diff.fold((0, 0), |(n, m), (a, b)| (n + 1, m.max(a.abs_diff(*b))));
                    if n > 0 {
                        failures.push(format!(
                            "{}: {n} of {} bytes differ (max {max})",
                            c.file,
                            cv.data.len()
                        ));
                    }
                }
                (Err(e), Some(_), _) => failures.push(format!("{}: error {e}", c.file)),
                (Ok(_), None, _) => failures.push(format!("{}: decoded, OpenCV fails", c.file)),
                (Err(e), None, want) => {
                    let want = want.as_deref().unwrap_or("");
                    if !e.to_string().contains(want) {
                        failures.push(format!("{}: error {e:?} lacks {want:?}", c.file));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// The network input from our decode equals the one from OpenCV's decode: same tensor.
    #[test]
    fn prepared_input_equals_opencv() {
        let p = Preprocess {
            min_size: 40,
            max_size: 160,
            ..Preprocess::default()
        };
        let mut checked = 0;
        for c in cases() {
            let Some(cv) = &c.opencv else { continue };
            let ours = decode_case(&c).unwrap();
            let (a, b) = (prepare(&ours, &p).unwrap(), prepare(cv, &p).unwrap());
            assert_eq!(a.padded, b.padded, "{}", c.file);
            let differing = a.tensor.ne_tensor(&b.tensor).sum(tch::Kind::Int64);
            assert_eq!(
                differing.int64_value(&[]),
                0,
                "{}: tensor values differ",
                c.file
            );
            checked += 1;
        }
        assert!(checked >= 40);
    }

    #[test]
    fn cmyk_and_ycck_match_opencv_formula() {
        for name in ["cmyk.jpg", "ycck.jpg"] {
            let c = cases().into_iter().find(|c| c.file == name).unwrap();
            let bytes = std::fs::read(dir().join(name)).unwrap();
            assert_eq!(read_header(&bytes).unwrap().components, 4, "{name}");
            assert_eq!(
                decode_case(&c).unwrap().data,
                c.opencv.unwrap().data,
                "{name}"
            );
        }
    }

    #[test]
    fn header_size_equals_decoded_size() {
        for c in cases() {
            let bytes = std::fs::read(dir().join(&c.file)).unwrap();
            if let Ok(img) = decode_case(&c) {
                assert_eq!(
                    image_dimensions(&bytes).unwrap(),
                    (img.width, img.height),
                    "{}",
                    c.file
                );
            }
        }
    }

    #[test]
    fn header_errors_are_errors_not_panics() {
        let good = std::fs::read(dir().join("exif_o6.jpg")).unwrap();
        assert_eq!(read_header(&good).unwrap().orientation, Some(6));
        for n in 0..good.len().min(400) {
            let _ = read_header(&good[..n]);
        }
        assert!(read_header(b"\xFF\xD8\xFF\xD9").is_err());
        assert!(read_header(b"GIF89a").is_err());
        // Every prefix of the EXIF block, and offsets pointing anywhere.
        let seg = &good[good.windows(4).position(|w| w == b"Exif").unwrap() + 6..];
        for n in 0..64 {
            let _ = exif_orientation(&seg[..n]);
        }
        let mut t = b"II\x2A\x00\xFF\xFF\xFF\xFF".to_vec();
        assert_eq!(exif_orientation(&t), None);
        t[4..8].copy_from_slice(&[8, 0, 0, 0]);
        t.extend_from_slice(&[1, 0, 0x1A, 0x01, 5, 0, 1, 0, 0, 0, 0xF0, 0xFF, 0xFF, 0xFF]);
        assert_eq!(exif_orientation(&t), None);
    }

    #[test]
    fn orientation_is_a_permutation() {
        let img = Rgb8 {
            width: 3,
            height: 2,
            data: (0..18).collect(),
        };
        for o in 1..=8 {
            let r = orient(&img, o);
            assert_eq!(r.width * r.height, 6);
            let mut px: Vec<&[u8]> = r.data.chunks(3).collect();
            px.sort();
            assert_eq!(
                px,
                img.data.chunks(3).collect::<Vec<_>>(),
                "orientation {o}"
            );
        }
    }
}
