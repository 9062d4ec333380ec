//! `PositionEmbeddingSine(num_pos_feats, temperature=10000, normalize=True, scale=2π)` from
//! `facebookresearch/Mask2Former: mask2former/modeling/transformer_decoder/position_encoding.py`.
//!
//! Upstream derives the embedding from a padding mask that is always empty at inference, so it
//! depends only on the feature map's size. The float32 operations (cumsum, `+ 1e-6`, the `pow` of
//! `dim_t`) are done in the same order as upstream so the numbers match bit for bit.

use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, Copy)]
pub struct PositionEmbeddingSine {
    num_pos_feats: i64,
    temperature: f64,
    scale: f64,
}

impl PositionEmbeddingSine {
    /// `normalize=True` (the only form Mask2Former uses); `num_pos_feats` is half the channels.
    pub fn new(num_pos_feats: i64) -> Self {
        PositionEmbeddingSine {
            num_pos_feats,
            temperature: 10000.0,
            scale: 2.0 * std::f64::consts::PI,
        }
    }

    /// [`Self::forward`] as tokens: `[1, h·w, 2·num_pos_feats]` in `kind`.
    pub fn tokens(&self, h: i64, w: i64, kind: Kind, device: Device) -> Tensor {
        self.forward(h, w, device)
            .to_kind(kind)
            .flatten(2, 3)
            .transpose(1, 2)
    }

    /// Returns `[1, 2·num_pos_feats, h, w]` (channels 0..F from y, F..2F from x).
    pub fn forward(&self, h: i64, w: i64, device: Device) -> Tensor {
        let eps = 1e-6;
        let opts = (Kind::Float, device);
        let ones = Tensor::ones([1, h, w], opts);
        // [1, H, W]: 1..H down the rows, 1..W along the columns.
        let y_embed = ones.cumsum(1, Kind::Float);
        let x_embed = ones.cumsum(2, Kind::Float);
        let y_embed = &y_embed / (y_embed.narrow(1, h - 1, 1) + eps) * self.scale;
        let x_embed = &x_embed / (x_embed.narrow(2, w - 1, 1) + eps) * self.scale;

        let f = self.num_pos_feats;
        let dim_t = Tensor::arange(f, opts);
        let dim_t = Tensor::pow_scalar(
            self.temperature,
            &(dim_t.floor_divide_scalar(2) * 2 / f as f64),
        );
        let embed = |e: &Tensor| {
            // [1, H, W] -> [1, H, W, F]
            let pos = e.unsqueeze(-1) / &dim_t;
            let sin = pos.slice(3, 0, f, 2).sin();
            let cos = pos.slice(3, 1, f, 2).cos();
            // [1, H, W, F/2, 2] -> [1, H, W, F]: sin and cos interleaved.
            Tensor::stack(&[sin, cos], 4).flatten(3, 4)
        };
        // [1, H, W, 2F] -> [1, 2F, H, W]
        Tensor::cat(&[embed(&y_embed), embed(&x_embed)], 3)
            .permute([0, 3, 1, 2])
            .contiguous()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Closed form of docs/method.md §9.2: `y_embed[i] = (i+1)/(H+1e-6)·2π`, channel 2k = sin(e / 10000^(2k/F)),
    /// 2k+1 = cos(e / 10000^(2k/F)).
    #[test]
    fn matches_the_closed_form() {
        let (h, w, f) = (3i64, 5i64, 8i64);
        let pe = PositionEmbeddingSine::new(f).forward(h, w, Device::Cpu);
        assert_eq!(pe.size(), vec![1, 2 * f, h, w]);
        for c in 0..2 * f {
            for i in 0..h {
                for j in 0..w {
                    let (e, k) = if c < f {
                        ((i + 1) as f64 / (h as f64 + 1e-6), c)
                    } else {
                        ((j + 1) as f64 / (w as f64 + 1e-6), c - f)
                    };
                    let e = e * 2.0 * std::f64::consts::PI;
                    let d = 10000f64.powf((2 * (k / 2)) as f64 / f as f64);
                    let want = if k % 2 == 0 {
                        (e / d).sin()
                    } else {
                        (e / d).cos()
                    };
                    let got = pe.double_value(&[0, c, i, j]);
                    assert!(
                        (got - want).abs() < 1e-5,
                        "c {c} i {i} j {j}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
