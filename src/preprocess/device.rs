//! [`super::prepare`]'s normalisation and padding done on the model's device from the resized
//! 8-bit pixels: an upload of 3 bytes per pixel instead of 12 (6 MB instead of 25 MB for a
//! 1024×2048 frame), and no float work on the host. Each channel's 256 values are computed on the
//! host by the same expression as `prepare` ([`super::channel_lut`]) and looked up on the device,
//! so the result equals `prepare`'s tensor bit for bit.

use super::{input_geometry, source_channel, DecodeError, Rgb8};
use crate::job::Preprocess;
use crate::resize::pillow_bilinear;
use tch::{Device, Kind, Tensor};

/// The resized 8-bit image, before normalisation.
#[derive(Debug)]
pub struct Pixels {
    /// `[h, w, 3]` uint8 on the CPU, RGB as decoded; pinned (page-locked) when made for a CUDA
    /// device, so that its upload can be asynchronous.
    pub data: Tensor,
    /// (H, W) of the decoded image.
    pub original: (usize, usize),
    /// (h, w) after the shortest-edge resize.
    pub resized: (usize, usize),
    /// (Hp, Wp) after padding.
    pub padded: (usize, usize),
}

/// The resize of [`super::prepare`], stopping at the 8-bit pixels; pinned for `device` when it is a
/// CUDA device.
pub fn resize(img: &Rgb8, p: &Preprocess, device: Device) -> Result<Pixels, DecodeError> {
    let (h, w) = (img.height, img.width);
    if img.data.len() != h * w * 3 {
        return Err(DecodeError::Decode(format!(
            "decoded buffer holds {} bytes, not {h}×{w}×3",
            img.data.len()
        )));
    }
    let ((nh, nw), padded) = input_geometry(h, w, p)?;
    let bytes = if (nh, nw) == (h, w) {
        std::borrow::Cow::Borrowed(&img.data)
    } else {
        std::borrow::Cow::Owned(pillow_bilinear(&img.data, w, h, 3, nw, nh))
    };
    let tensor = |r: Result<Tensor, tch::TchError>| {
        r.map_err(|e| DecodeError::Tensor {
            what: format!("[{nh}, {nw}, 3] uint8"),
            message: e.to_string(),
        })
    };
    let mut data = tensor(Tensor::f_from_slice(&bytes[..]))?;
    data = tensor(data.f_view([nh as i64, nw as i64, 3]))?;
    if device.is_cuda() {
        data = tensor(data.f_pin_memory(device))?;
    }
    Ok(Pixels {
        data,
        original: (h, w),
        resized: (nh, nw),
        padded,
    })
}

/// Every channel's 256 normalised values, `[3, 256]` float32 on `device` (channel = the model's).
pub fn lut(p: &Preprocess, device: Device) -> Tensor {
    let values: Vec<f32> = (0..3).flat_map(|c| super::channel_lut(p, c)).collect();
    Tensor::from_slice(&values).view([3, 256]).to_device(device)
}

/// `pixels [h, w, 3]` uint8 (any device) -> `[3, Hp, Wp]` float32 on `lut`'s device, normalised and
/// zero-padded bottom/right as [`super::prepare`] does. The upload is asynchronous when the
/// pixels are pinned.
pub fn normalise(pixels: &Tensor, lut: &Tensor, p: &Preprocess, padded: (usize, usize)) -> Tensor {
    let dev = lut.device();
    let (h, w, _) = pixels.size3().expect("pixels are [h, w, 3]");
    let (hp, wp) = (padded.0 as i64, padded.1 as i64);
    let order: Vec<i64> = (0..3).map(|c| source_channel(p, c) as i64).collect();
    let x = pixels.to_device_(dev, Kind::Uint8, true, false);
    // [h, w, 3] -> [3, h·w] int64 in the model's channel order
    let idx = x
        .permute([2, 0, 1])
        .index_select(0, &Tensor::from_slice(&order).to_device(dev))
        .reshape([3, h * w])
        .to_kind(Kind::Int64);
    // lut[c, idx[c, i]] -> [3, h, w] -> zero-padded [3, Hp, Wp]
    lut.gather(1, &idx, false)
        .view([3, h, w])
        .constant_pad_nd([0, wp - w, 0, hp - h])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::ColorFormat;

    /// The device path gives `prepare`'s tensor bit for bit: resized or not, RGB and BGR, with
    /// padding on both sides, and every byte value.
    #[test]
    fn equals_prepare_bit_for_bit() {
        let mut p = Preprocess {
            min_size: 48,
            max_size: 96,
            size_divisibility: 32,
            ..Preprocess::default()
        };
        for (w, h) in [(70usize, 37usize), (96, 48), (33, 61), (256, 1)] {
            let data: Vec<u8> = (0..w * h * 3).map(|i| (i * 97 % 256) as u8).collect();
            let img = Rgb8 {
                width: w,
                height: h,
                data,
            };
            for format in [ColorFormat::Rgb, ColorFormat::Bgr] {
                p.format = format;
                let want = match super::super::prepare(&img, &p) {
                    Ok(x) => x,
                    Err(e) => {
                        assert!(resize(&img, &p, Device::Cpu).is_err(), "{w}×{h}: {e}");
                        continue;
                    }
                };
                let px = resize(&img, &p, Device::Cpu).unwrap();
                assert_eq!(
                    (px.original, px.resized, px.padded),
                    (want.original, want.resized, want.padded)
                );
                let got = normalise(&px.data, &lut(&p, Device::Cpu), &p, px.padded);
                assert_eq!(got.kind(), Kind::Float);
                assert!(got.equal(&want.tensor), "{w}×{h} {format:?}");
            }
        }
    }
}
