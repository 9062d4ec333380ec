//! Decoding and detectron2's test-time input rule (docs/method.md §2):
//! decode to 8-bit RGB → ResizeShortestEdge (Pillow bilinear on uint8) → float32 CHW →
//! `(x − mean) / std` → zero-pad bottom/right to the size divisibility.

use crate::job::{ColorFormat, Preprocess};
pub mod device;
pub mod jpeg;

use crate::resize::pillow_bilinear;
use image::{DynamicImage, ImageDecoder, ImageReader};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// An image as the reference reads it: 8-bit, 3 channels, RGB order, row-major.
#[derive(Debug, Clone)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("empty file")]
    Empty,
    #[error("not a decodable image: {0}")]
    Decode(String),
    #[error("image has zero size")]
    ZeroSize,
    #[error("truncated JPEG: no end-of-image marker after the last scan")]
    TruncatedJpeg,
    #[error("JPEG: {0}")]
    Jpeg(String),
    #[error("{0}-bit JPEG: only 8-bit samples are read (as by OpenCV's libjpeg-turbo)")]
    JpegPrecision(u8),
    #[error(
        "image is {width}×{height} ({mp:.1} megapixels), above runtime.max_pixels = {max_pixels}; \
         raise runtime.max_pixels in the job to process it",
        mp = *width as f64 * *height as f64 / 1e6
    )]
    TooLarge {
        width: u64,
        height: u64,
        max_pixels: u64,
    },
    #[error(
        "image is {width}×{height}: resizing its shortest edge to preprocess.min_size = {min_size} \
         with the longest capped at max_size = {max_size} gives {rw}×{rh}, an empty network input; \
         its aspect ratio is too extreme for this model's input rule"
    )]
    TooThin {
        width: usize,
        height: usize,
        rw: usize,
        rh: usize,
        min_size: u32,
        max_size: u32,
    },
    #[error("cannot build the network input ({what}): {message}")]
    Tensor { what: String, message: String },
}

/// Width and height from the file's header, read without decoding any pixel.
pub fn probe_size(bytes: &[u8]) -> Result<(u32, u32), DecodeError> {
    let (w, h) = image_dimensions(bytes)?;
    Ok((w as u32, h as u32))
}

/// Refuses an image above `max_pixels` (`runtime.max_pixels`).
pub fn check_size((width, height): (u32, u32), max_pixels: u64) -> Result<(), DecodeError> {
    let (width, height) = (width as u64, height as u64);
    if width * height > max_pixels {
        return Err(DecodeError::TooLarge {
            width,
            height,
            max_pixels,
        });
    }
    Ok(())
}

/// The decoders' own limits: no buffer beyond what `max_pixels` pixels of the widest sample
/// layout (RGBA, 16 bits) need, with the image crate's default as the floor.
fn decoder_limits(max_pixels: u64) -> image::Limits {
    let mut l = image::Limits::default();
    l.max_alloc = Some(max_pixels.saturating_mul(8).max(512 << 20));
    l
}

/// A JPEG whose last scan (SOS, `FF DA`) is not followed by an end-of-image marker (`FF D9`) was cut
/// short; lenient decoders fill the missing part with grey. Entropy-coded data stuffs every `FF` with
/// `00`, so a marker pair cannot occur inside a scan; an EXIF thumbnail's markers come before the
/// main scan.
fn jpeg_is_truncated(bytes: &[u8]) -> bool {
    let last = |m: u8| bytes.windows(2).rposition(|w| w[0] == 0xFF && w[1] == m);
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) => eoi < sos,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Decodes an image file like `cv2.imread(path, IMREAD_COLOR)` followed by the BGR→RGB flip:
/// EXIF orientation applied, grey replicated, palettes expanded, alpha dropped, 16-bit samples
/// reduced by dropping the low byte (libpng's strip-16, which OpenCV uses). JPEGs go through
/// libjpeg-turbo with OpenCV's settings ([`jpeg`]), other formats through the `image` crate.
pub fn decode_file(path: &Path, bytes: &[u8]) -> Result<Rgb8, DecodeError> {
    decode_file_limited(path, bytes, crate::job::DEFAULT_MAX_PIXELS)
}

/// [`decode_file`] for images of at most `max_pixels` pixels: the size is read from the header
/// and checked before any pixel buffer is allocated (decompression bombs fail at once).
pub fn decode_file_limited(
    path: &Path,
    bytes: &[u8],
    max_pixels: u64,
) -> Result<Rgb8, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    check_size(probe_size(bytes)?, max_pixels)?;
    if jpeg::is_jpeg(bytes) {
        if jpeg_is_truncated(bytes) {
            return Err(DecodeError::TruncatedJpeg);
        }
        let (img, warning) = jpeg::decode(bytes)?;
        if let Some(w) = warning {
            log::warn!("{}: libjpeg-turbo: {w}", path.display());
        }
        return Ok(img);
    }
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DecodeError::Decode(e.to_string()))?;
    reader.limits(decoder_limits(max_pixels));
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| DecodeError::Decode(e.to_string()))?;
    // `into_decoder` does not count the output buffer against the limits; `decode` would.
    decoder_limits(max_pixels)
        .reserve(decoder.total_bytes())
        .map_err(|e| DecodeError::Decode(e.to_string()))?;
    let orientation = decoder.orientation().ok();
    let mut img =
        DynamicImage::from_decoder(decoder).map_err(|e| DecodeError::Decode(e.to_string()))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    if img.width() == 0 || img.height() == 0 {
        return Err(DecodeError::ZeroSize);
    }
    let (width, height) = (img.width() as usize, img.height() as usize);
    let data = match img {
        DynamicImage::ImageLuma16(b) => b
            .as_raw()
            .iter()
            .flat_map(|&v| [(v >> 8) as u8; 3])
            .collect(),
        DynamicImage::ImageLumaA16(b) => b
            .as_raw()
            .chunks(2)
            .flat_map(|p| [(p[0] >> 8) as u8; 3])
            .collect(),
        DynamicImage::ImageRgb16(b) => b.as_raw().iter().map(|&v| (v >> 8) as u8).collect(),
        DynamicImage::ImageRgba16(b) => b
            .as_raw()
            .chunks(4)
            .flat_map(|p| [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])
            .collect(),
        other => other.into_rgb8().into_raw(),
    };
    Ok(Rgb8 {
        width,
        height,
        data,
    })
}

/// (width, height) of the image [`decode_file`] returns (EXIF orientation applied), from the
/// headers alone: no pixel data is decoded.
pub fn image_dimensions(bytes: &[u8]) -> Result<(usize, usize), DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if jpeg::is_jpeg(bytes) {
        return Ok(jpeg::read_header(bytes)?.oriented_size());
    }
    let mut decoder = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DecodeError::Decode(e.to_string()))?
        .into_decoder()
        .map_err(|e| DecodeError::Decode(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    let swapped = matches!(
        decoder.orientation(),
        Ok(image::metadata::Orientation::Rotate90
            | image::metadata::Orientation::Rotate270
            | image::metadata::Orientation::Rotate90FlipH
            | image::metadata::Orientation::Rotate270FlipH)
    );
    Ok(if swapped {
        (h as usize, w as usize)
    } else {
        (w as usize, h as usize)
    })
}

/// Output size of `ResizeShortestEdge(min_size, max_size)` for an `h × w` input, as (h, w).
/// Either side may round to 0 for extreme aspect ratios; [`input_geometry`] refuses those.
pub fn shortest_edge_size(h: usize, w: usize, min_size: u32, max_size: u32) -> (usize, usize) {
    let (h, w) = (h as f64, w as f64);
    let size = min_size as f64;
    let scale = size / h.min(w);
    let (mut newh, mut neww) = if h < w {
        (size, scale * w)
    } else {
        (scale * h, size)
    };
    if newh.max(neww) > max_size as f64 {
        let s = max_size as f64 / newh.max(neww);
        newh *= s;
        neww *= s;
    }
    // int(x + 0.5): round half up, truncating like Python's int() for positives (saturating).
    ((newh + 0.5) as usize, (neww + 0.5) as usize)
}

/// (height, width).
pub type Size = (usize, usize);

/// The resized (h, w) and padded (Hp, Wp) network input sizes for an `h × w` image, or why there
/// is none: an empty side, or a size whose float32 tensor cannot be addressed.
pub fn input_geometry(h: usize, w: usize, p: &Preprocess) -> Result<(Size, Size), DecodeError> {
    if h == 0 || w == 0 {
        return Err(DecodeError::ZeroSize);
    }
    let (nh, nw) = shortest_edge_size(h, w, p.min_size, p.max_size);
    let thin = || DecodeError::TooThin {
        width: w,
        height: h,
        rw: nw,
        rh: nh,
        min_size: p.min_size,
        max_size: p.max_size,
    };
    if nh == 0 || nw == 0 {
        return Err(thin());
    }
    let d = (p.size_divisibility as usize).max(1);
    let pad = |n: usize| n.checked_next_multiple_of(d);
    let (Some(hp), Some(wp)) = (pad(nh), pad(nw)) else {
        return Err(thin());
    };
    if hp
        .checked_mul(wp)
        .and_then(|n| n.checked_mul(3 * 4))
        .is_none_or(|b| b > isize::MAX as usize)
    {
        return Err(thin());
    }
    Ok(((nh, nw), (hp, wp)))
}

/// Rounds `n` up to a multiple of `d`.
pub fn pad_to(n: usize, d: usize) -> usize {
    n.div_ceil(d) * d
}

/// The network input for one image and the sizes needed to map scores back.
#[derive(Debug)]
pub struct Prepared {
    /// [3, Hp, Wp] float32, normalised, zero-padded bottom/right; or, where the model runs on a
    /// GPU, the resized `[h, w, 3]` uint8 pixels that [`device::normalise`] turns into it there.
    pub tensor: Tensor,
    /// (H, W) of the decoded image.
    pub original: (usize, usize),
    /// (h, w) after the shortest-edge resize.
    pub resized: (usize, usize),
    /// (Hp, Wp) after padding.
    pub padded: (usize, usize),
}

/// `(v − mean) / std` of the model's channel `c` for each of the 256 byte values, computed as the
/// reference does.
pub fn channel_lut(p: &Preprocess, c: usize) -> Vec<f32> {
    let (mean, std) = (p.pixel_mean[c], p.pixel_std[c]);
    (0..=255u8).map(|v| (v as f32 - mean) / std).collect()
}

/// The source channel (of RGB bytes) that the model's channel `c` reads.
pub fn source_channel(p: &Preprocess, c: usize) -> usize {
    match p.format {
        ColorFormat::Rgb => c,
        ColorFormat::Bgr => 2 - c,
    }
}

/// Applies the resize, normalisation and padding to a decoded RGB image. An image whose geometry
/// leaves no network input (see [`input_geometry`]) is an error, as is a failed allocation.
pub fn prepare(img: &Rgb8, p: &Preprocess) -> Result<Prepared, DecodeError> {
    let (h, w) = (img.height, img.width);
    if img.data.len() != h * w * 3 {
        return Err(DecodeError::Decode(format!(
            "decoded buffer holds {} bytes, not {h}×{w}×3",
            img.data.len()
        )));
    }
    let ((nh, nw), (hp, wp)) = input_geometry(h, w, p)?;
    let resized = if (nh, nw) == (h, w) {
        std::borrow::Cow::Borrowed(&img.data)
    } else {
        std::borrow::Cow::Owned(pillow_bilinear(&img.data, w, h, 3, nw, nh))
    };
    // Written in place into the tensor's own buffer: no second full-size copy.
    let tensor =
        Tensor::f_zeros([3, hp as i64, wp as i64], (Kind::Float, Device::Cpu)).map_err(|e| {
            DecodeError::Tensor {
                what: format!("[3, {hp}, {wp}] float32"),
                message: e.to_string(),
            }
        })?;
    // SAFETY: a fresh contiguous float32 CPU tensor of 3·Hp·Wp elements, only accessed through this
    // slice until the slice goes out of scope.
    let buf = unsafe { std::slice::from_raw_parts_mut(tensor.data_ptr() as *mut f32, 3 * hp * wp) };
    for c in 0..3 {
        // The model's channel c reads source channel c (RGB) or 2 − c (BGR).
        let src_c = source_channel(p, c);
        let lut = channel_lut(p, c);
        let plane = &mut buf[c * hp * wp..(c + 1) * hp * wp];
        for y in 0..nh {
            let row = &resized[y * nw * 3..(y + 1) * nw * 3];
            for (out, px) in plane[y * wp..y * wp + nw]
                .iter_mut()
                .zip(row.chunks_exact(3))
            {
                *out = lut[px[src_c] as usize];
            }
        }
    }
    Ok(Prepared {
        tensor,
        original: (h, w),
        resized: (nh, nw),
        padded: (hp, wp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_edge_table() {
        // The example sizes of docs/method.md §2.
        for ((h, w), want, padded) in [
            ((1024, 2048), (1024, 2048), (1024, 2048)),
            ((720, 1280), (1024, 1820), (1024, 1824)),
            ((1080, 1920), (1024, 1820), (1024, 1824)),
            ((1200, 1920), (1024, 1638), (1024, 1664)),
            ((600, 800), (1024, 1365), (1024, 1376)),
            ((1536, 2048), (1024, 1365), (1024, 1376)),
        ] {
            let got = shortest_edge_size(h, w, 1024, 2048);
            assert_eq!(got, want, "{h}x{w}");
            assert_eq!((pad_to(got.0, 32), pad_to(got.1, 32)), padded);
        }
        // max_size cap on a very wide image, and a portrait one
        assert_eq!(shortest_edge_size(100, 1000, 1024, 2048), (205, 2048));
        assert_eq!(shortest_edge_size(1280, 720, 1024, 2048), (1820, 1024));
    }

    #[test]
    fn prepare_normalises_and_pads_with_zero() {
        let p = Preprocess {
            min_size: 8,
            max_size: 100,
            ..Preprocess::default()
        };
        let img = Rgb8 {
            width: 10,
            height: 8,
            data: (0..240).map(|i| (i % 251) as u8).collect(),
        };
        let out = prepare(&img, &p).unwrap();
        assert_eq!(out.resized, (8, 10));
        assert_eq!(out.padded, (32, 32));
        assert_eq!(out.tensor.size(), [3, 32, 32]);
        let v = |c: i64, y: i64, x: i64| out.tensor.double_value(&[c, y, x]) as f32;
        assert_eq!(v(0, 0, 0), (0.0 - 123.675f32) / 58.395f32);
        assert_eq!(
            v(2, 1, 3),
            (img.data[(10 + 3) * 3 + 2] as f32 - 103.53f32) / 57.375f32
        );
        assert_eq!(v(1, 8, 0), 0.0);
        assert_eq!(v(1, 0, 10), 0.0);
        assert_eq!(v(1, 31, 31), 0.0);
    }

    #[test]
    fn bgr_format_swaps_channels() {
        let p = Preprocess {
            min_size: 4,
            max_size: 100,
            size_divisibility: 1,
            format: ColorFormat::Bgr,
            ..Preprocess::default()
        };
        let img = Rgb8 {
            width: 4,
            height: 4,
            data: [10u8, 20, 30].repeat(16),
        };
        let out = prepare(&img, &p).unwrap();
        assert_eq!(
            out.tensor.double_value(&[0, 0, 0]) as f32,
            (30.0 - 123.675f32) / 58.395f32
        );
    }

    #[test]
    fn garbage_and_empty_bytes_are_errors() {
        assert!(matches!(
            decode_file(Path::new("x"), b""),
            Err(DecodeError::Empty)
        ));
        assert!(decode_file(Path::new("x"), b"not an image at all").is_err());
    }

    #[test]
    fn truncated_jpeg_is_an_error() {
        let img =
            image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 77]));
        let mut bytes = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        assert!(decode_file(Path::new("a.jpg"), &bytes).is_ok());
        let cut = &bytes[..bytes.len() * 2 / 3];
        assert!(matches!(
            decode_file(Path::new("a.jpg"), cut),
            Err(DecodeError::TruncatedJpeg)
        ));
        // Trailing bytes after the end-of-image marker are fine.
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"trailer");
        assert!(decode_file(Path::new("a.jpg"), &trailing).is_ok());
    }

    #[test]
    fn sixteen_bit_grey_png_drops_the_low_byte() {
        let img =
            image::ImageBuffer::<image::Luma<u16>, _>::from_raw(2, 1, vec![0x1234u16, 0xfff0])
                .unwrap();
        let mut bytes = Vec::new();
        DynamicImage::ImageLuma16(img)
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        let d = decode_file(Path::new("g.png"), &bytes).unwrap();
        assert_eq!(d.data, vec![0x12, 0x12, 0x12, 0xff, 0xff, 0xff]);
    }

    fn encode(img: DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut bytes = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut bytes), format)
            .unwrap();
        bytes
    }

    /// A real small PNG whose header is rewritten to declare `w × h` (CRC fixed).
    fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let img = DynamicImage::ImageRgb8(image::RgbImage::new(8, 8));
        let mut b = encode(img, image::ImageFormat::Png);
        // Signature (8), IHDR length (4), "IHDR" (4), then width and height.
        assert_eq!(b[29..33], crc32fast::hash(&b[12..29]).to_be_bytes());
        b[16..20].copy_from_slice(&w.to_be_bytes());
        b[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32fast::hash(&b[12..29]);
        b[29..33].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn oversized_headers_fail_before_decoding_and_name_the_key() {
        let bomb = png_claiming(30000, 30000);
        assert_eq!(probe_size(&bomb).unwrap(), (30000, 30000));
        let e = decode_file_limited(Path::new("b.png"), &bomb, 64_000_000).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, DecodeError::TooLarge { .. }), "{msg}");
        assert!(
            msg.contains("30000×30000") && msg.contains("runtime.max_pixels"),
            "{msg}"
        );
        // A raised cap lets the header through; the decoder's own limits still apply.
        let e = decode_file_limited(Path::new("b.png"), &png_claiming(3000, 3000), 10_000_000);
        assert!(e.is_err(), "8×8 pixels of data cannot fill 3000×3000");
        // Within the cap, a real image decodes as before.
        let ok = encode(
            DynamicImage::ImageRgb8(image::RgbImage::from_pixel(5, 3, image::Rgb([1, 2, 3]))),
            image::ImageFormat::Png,
        );
        assert_eq!(
            decode_file_limited(Path::new("a.png"), &ok, 15)
                .unwrap()
                .data
                .len(),
            45
        );
        assert!(matches!(
            decode_file_limited(Path::new("a.png"), &ok, 14),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn extreme_aspect_ratios_are_clear_errors() {
        let p = Preprocess::default();
        for (h, w) in [(1, 5000), (3, 100_000), (100_000, 3), (1, usize::MAX / 2)] {
            let e = input_geometry(h, w, &p).unwrap_err();
            assert!(matches!(e, DecodeError::TooThin { .. }), "{h}x{w}: {e}");
            assert!(e.to_string().contains("preprocess.min_size"), "{e}");
        }
        // Thin but representable: processed.
        assert_eq!(
            input_geometry(1, 1, &p).unwrap(),
            ((1024, 1024), (1024, 1024))
        );
        assert_eq!(
            input_geometry(5, 5000, &p).unwrap(),
            ((2, 2048), (32, 2048))
        );
        let img = Rgb8 {
            width: 5000,
            height: 1,
            data: vec![7; 15000],
        };
        assert!(matches!(
            prepare(&img, &p),
            Err(DecodeError::TooThin { .. })
        ));
        let img = Rgb8 {
            width: 4,
            height: 4,
            data: vec![7; 47],
        };
        assert!(
            prepare(&img, &p).is_err(),
            "a buffer that does not match its size"
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            /// Any image size and any valid preprocessing: sizes >= 1 and padded, or an error.
            #[test]
            fn geometry_is_sizes_or_an_error(
                h in 1usize..1_000_000, w in 1usize..1_000_000,
                min_size in 1u32..4096, extra in 0u32..4096, d in 1u32..=1024,
            ) {
                let p = Preprocess {
                    min_size,
                    max_size: (min_size + extra).min(crate::job::MAX_INPUT_SIZE).max(min_size),
                    size_divisibility: d,
                    ..Preprocess::default()
                };
                if let Ok(((nh, nw), (hp, wp))) = input_geometry(h, w, &p) {
                    prop_assert!(nh >= 1 && nw >= 1 && hp >= nh && wp >= nw);
                    prop_assert!(hp % d as usize == 0 && wp % d as usize == 0);
                    prop_assert!(nh.max(nw) <= p.max_size as usize + 1);
                }
            }

            /// Small images of any shape go through the whole preprocessing without a panic.
            #[test]
            fn small_images_prepare_or_fail_cleanly(
                h in 1usize..40, w in 1usize..40, min_size in 1u32..48, extra in 0u32..64,
                d in 1u32..40,
            ) {
                let p = Preprocess {
                    min_size,
                    max_size: min_size + extra,
                    size_divisibility: d,
                    ..Preprocess::default()
                };
                let img = Rgb8 { width: w, height: h, data: (0..h * w * 3).map(|i| i as u8).collect() };
                if let Ok(out) = prepare(&img, &p) {
                    let (hp, wp) = out.padded;
                    prop_assert_eq!(out.tensor.size(), vec![3, hp as i64, wp as i64]);
                }
            }

            /// Arbitrary bytes, and mutated real images: a size, an image or an error.
            #[test]
            fn decoding_arbitrary_bytes_never_panics(
                fmt in 0usize..4,
                edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
                cut in any::<usize>(),
            ) {
                let f = [image::ImageFormat::Png, image::ImageFormat::Jpeg, image::ImageFormat::WebP, image::ImageFormat::Bmp][fmt];
                let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(9, 7, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 5])));
                let mut b = encode(img, f);
                for (at, v) in edits {
                    let i = at % b.len();
                    b[i] = v;
                }
                b.truncate(cut % (b.len() + 1));
                let _ = probe_size(&b);
                let _ = decode_file_limited(Path::new("x"), &b, 1_000_000);
            }
        }
    }
}
