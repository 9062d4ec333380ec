//! Architecture hyper-parameters of Mask2Former (Swin backbone + MSDeformAttn pixel decoder +
//! masked-attention transformer decoder), mirroring the detectron2 config keys of
//! `facebookresearch/Mask2Former: mask2former/config.py` and the HF `Mask2FormerConfig`
//! (`huggingface/transformers: models/mask2former/configuration_mask2former.py`).
//!
//! Named presets: [`Config::mask2former_swin_large_cityscapes_semantic`] (the model-zoo
//! `model_final_17c1ee.pkl`) and [`Config::tiny`] (a few hundred thousand parameters, for tests).
//! [`Config::from_hf_json`] reads the `config.json` that sits beside an HF checkpoint.

use super::ModelError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `MODEL.SWIN.*` (detectron2) / `backbone_config` (HF `SwinConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwinConfig {
    pub patch_size: i64,
    pub in_chans: i64,
    pub embed_dim: i64,
    pub depths: Vec<i64>,
    pub num_heads: Vec<i64>,
    pub window_size: i64,
    pub mlp_ratio: f64,
}

/// `MODEL.SEM_SEG_HEAD.*` for `MSDeformAttnPixelDecoder`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PixelDecoderConfig {
    /// `CONVS_DIM` (HF `feature_size`).
    pub conv_dim: i64,
    /// `MASK_DIM` (HF `mask_feature_size`).
    pub mask_dim: i64,
    /// `TRANSFORMER_ENC_LAYERS` (HF `encoder_layers`).
    pub transformer_enc_layers: i64,
    /// Deformable-attention heads; upstream reuses `MASK_FORMER.NHEADS` (HF `num_attention_heads`).
    pub transformer_nheads: i64,
    /// Hard-coded 1024 upstream (HF `encoder_feedforward_dim`).
    pub transformer_dim_feedforward: i64,
    /// Sampling points per head and level (4 upstream, hard-coded).
    pub n_points: i64,
    /// GroupNorm groups of the "GN" norm (32 upstream, hard-coded).
    pub num_groups: i64,
    /// `COMMON_STRIDE`: the stride of `mask_features` (4).
    pub common_stride: i64,
}

/// `MODEL.MASK_FORMER.*` for `MultiScaleMaskedTransformerDecoder`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerDecoderConfig {
    pub hidden_dim: i64,
    pub num_queries: i64,
    pub nheads: i64,
    pub dim_feedforward: i64,
    /// Number of decoder layers actually built: `DEC_LAYERS - 1` (HF `decoder_layers - 1`).
    pub dec_layers: i64,
    /// Known classes K; the class head has K + 1 outputs (the last is "no object").
    pub num_classes: i64,
}

/// The whole network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub swin: SwinConfig,
    pub pixel_decoder: PixelDecoderConfig,
    pub transformer_decoder: TransformerDecoderConfig,
    /// LayerNorm / GroupNorm epsilon (PyTorch's default everywhere upstream).
    pub norm_eps: f64,
}

/// The preset a job gets when it names none and no HF `config.json` describes the checkpoint.
pub const DEFAULT_PRESET: &str = "mask2former_swin_large_cityscapes_semantic";

/// The shape-deciding facts of an architecture, as one line for people.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ArchSummary {
    pub embed_dim: Option<i64>,
    pub depths: Vec<i64>,
    pub queries: Option<i64>,
    /// Known classes K (the class head has K + 1 outputs).
    pub classes: Option<i64>,
}

impl ArchSummary {
    pub fn of(cfg: &Config) -> Self {
        ArchSummary {
            embed_dim: Some(cfg.swin.embed_dim),
            depths: cfg.swin.depths.clone(),
            queries: Some(cfg.transformer_decoder.num_queries),
            classes: Some(cfg.transformer_decoder.num_classes),
        }
    }

    /// Swin-T/S/B/L by upstream's embedding width and depths, else the numbers.
    pub fn backbone_name(&self) -> String {
        let name = match (self.embed_dim, self.depths.as_slice()) {
            (Some(96), [2, 2, 6, 2]) => Some("Swin-T"),
            (Some(96), [2, 2, 18, 2]) => Some("Swin-S"),
            (Some(128), [2, 2, 18, 2]) => Some("Swin-B"),
            (Some(192), [2, 2, 18, 2]) => Some("Swin-L"),
            _ => None,
        };
        match (name, self.embed_dim) {
            (Some(n), _) => n.to_string(),
            (None, Some(e)) => format!("Swin (embedding {e}, depths {:?})", self.depths),
            (None, None) => "no recognisable Swin backbone".to_string(),
        }
    }
}

impl std::fmt::Display for ArchSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a {}", self.backbone_name())?;
        if let Some(q) = self.queries {
            write!(f, " with {q} queries")?;
        }
        if let Some(k) = self.classes {
            write!(f, " and {k} classes")?;
        }
        Ok(())
    }
}

/// Names accepted by [`Config::preset`].
pub const PRESETS: &[&str] = &["mask2former_swin_large_cityscapes_semantic", "tiny"];

impl Config {
    /// `configs/cityscapes/semantic-segmentation/swin/maskformer2_swin_large_IN21k_384_bs16_90k.yaml`.
    pub fn mask2former_swin_large_cityscapes_semantic() -> Config {
        Config {
            swin: SwinConfig {
                patch_size: 4,
                in_chans: 3,
                embed_dim: 192,
                depths: vec![2, 2, 18, 2],
                num_heads: vec![6, 12, 24, 48],
                window_size: 12,
                mlp_ratio: 4.0,
            },
            pixel_decoder: PixelDecoderConfig {
                conv_dim: 256,
                mask_dim: 256,
                transformer_enc_layers: 6,
                transformer_nheads: 8,
                transformer_dim_feedforward: 1024,
                n_points: 4,
                num_groups: 32,
                common_stride: 4,
            },
            transformer_decoder: TransformerDecoderConfig {
                hidden_dim: 256,
                num_queries: 100,
                nheads: 8,
                dim_feedforward: 2048,
                dec_layers: 9,
                num_classes: 19,
            },
            norm_eps: 1e-5,
        }
    }

    /// The configuration of the test fixtures (`scripts/make_model_fixtures.py`): every code path of
    /// the large model (window padding, shifted windows, four stages, three feature levels, masked
    /// attention at every level) at a size that runs in milliseconds.
    pub fn tiny() -> Config {
        Config {
            swin: SwinConfig {
                patch_size: 4,
                in_chans: 3,
                embed_dim: 16,
                depths: vec![2, 2, 2, 2],
                num_heads: vec![1, 2, 4, 8],
                window_size: 4,
                mlp_ratio: 2.0,
            },
            pixel_decoder: PixelDecoderConfig {
                conv_dim: 32,
                mask_dim: 32,
                transformer_enc_layers: 2,
                transformer_nheads: 4,
                transformer_dim_feedforward: 64,
                n_points: 4,
                num_groups: 32,
                common_stride: 4,
            },
            transformer_decoder: TransformerDecoderConfig {
                hidden_dim: 32,
                num_queries: 8,
                nheads: 4,
                dim_feedforward: 64,
                dec_layers: 3,
                num_classes: 4,
            },
            norm_eps: 1e-5,
        }
    }

    /// Looks a preset up by name.
    pub fn preset(name: &str) -> Result<Config, ModelError> {
        match name {
            "mask2former_swin_large_cityscapes_semantic" => {
                Ok(Config::mask2former_swin_large_cityscapes_semantic())
            }
            "tiny" => Ok(Config::tiny()),
            other => Err(ModelError::Config(format!(
                "unknown model preset `{other}`; known presets: {}",
                PRESETS.join(", ")
            ))),
        }
    }

    /// Reads an HF `Mask2FormerConfig` `config.json` (Swin backbone only).
    pub fn from_hf_json(path: &Path) -> Result<Config, ModelError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ModelError::Config(format!("cannot read {}: {e}", path.display())))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::Config(format!("{} is not JSON: {e}", path.display())))?;
        Config::from_hf_value(&v)
            .map_err(|m| ModelError::Config(format!("{}: {m}", path.display())))
    }

    /// The mapping from HF names to this config; a missing key takes HF's default.
    pub fn from_hf_value(v: &serde_json::Value) -> Result<Config, String> {
        let int = |obj: &serde_json::Value, key: &str, default: i64| -> Result<i64, String> {
            match obj.get(key) {
                None | Some(serde_json::Value::Null) => Ok(default),
                Some(x) => x
                    .as_i64()
                    .ok_or_else(|| format!("`{key}` must be an integer, found {x}")),
            }
        };
        let ints = |obj: &serde_json::Value, key: &str| -> Result<Vec<i64>, String> {
            let arr = obj
                .get(key)
                .and_then(|x| x.as_array())
                .ok_or_else(|| format!("`{key}` must be a list"))?;
            arr.iter()
                .map(|x| {
                    x.as_i64()
                        .ok_or_else(|| format!("`{key}` must hold integers"))
                })
                .collect()
        };
        let model_type = v.get("model_type").and_then(|x| x.as_str()).unwrap_or("");
        if model_type != "mask2former" {
            return Err(format!(
                "model_type is `{model_type}`, expected `mask2former`"
            ));
        }
        let b = v.get("backbone_config").ok_or("no `backbone_config`")?;
        let backbone_type = b.get("model_type").and_then(|x| x.as_str()).unwrap_or("");
        if backbone_type != "swin" {
            return Err(format!(
                "backbone model_type is `{backbone_type}`, only `swin` is implemented"
            ));
        }
        if let Some(act) = b.get("hidden_act").and_then(|x| x.as_str()) {
            if act != "gelu" {
                return Err(format!(
                    "backbone hidden_act `{act}` is not supported (only gelu)"
                ));
            }
        }
        if b.get("use_absolute_embeddings")
            .and_then(|x| x.as_bool())
            .unwrap_or(false)
        {
            return Err("backbone use_absolute_embeddings is not supported".into());
        }
        let eps = b
            .get("layer_norm_eps")
            .and_then(|x| x.as_f64())
            .unwrap_or(1e-5);
        // The HF Mask2Former heads use PyTorch's default eps; only the backbone's is configurable.
        if (eps - 1e-5).abs() > 1e-12 {
            return Err(format!(
                "backbone layer_norm_eps {eps} differs from the heads' 1e-5"
            ));
        }
        let num_labels = match v.get("id2label").and_then(|x| x.as_object()) {
            Some(m) => m.len() as i64,
            None => int(v, "num_labels", 0)?,
        };
        let decoder_layers = int(v, "decoder_layers", 10)?;
        let cfg = Config {
            swin: SwinConfig {
                patch_size: int(b, "patch_size", 4)?,
                in_chans: int(b, "num_channels", 3)?,
                embed_dim: int(b, "embed_dim", 96)?,
                depths: ints(b, "depths")?,
                num_heads: ints(b, "num_heads")?,
                window_size: int(b, "window_size", 7)?,
                mlp_ratio: b.get("mlp_ratio").and_then(|x| x.as_f64()).unwrap_or(4.0),
            },
            pixel_decoder: PixelDecoderConfig {
                conv_dim: int(v, "feature_size", 256)?,
                mask_dim: int(v, "mask_feature_size", 256)?,
                transformer_enc_layers: int(v, "encoder_layers", 6)?,
                transformer_nheads: int(v, "num_attention_heads", 8)?,
                transformer_dim_feedforward: int(v, "encoder_feedforward_dim", 1024)?,
                n_points: 4,
                num_groups: 32,
                common_stride: int(v, "common_stride", 4)?,
            },
            transformer_decoder: TransformerDecoderConfig {
                hidden_dim: int(v, "hidden_dim", 256)?,
                num_queries: int(v, "num_queries", 100)?,
                nheads: int(v, "num_attention_heads", 8)?,
                dim_feedforward: int(v, "dim_feedforward", 2048)?,
                dec_layers: decoder_layers - 1,
                num_classes: num_labels,
            },
            norm_eps: 1e-5,
        };
        if v.get("pre_norm").and_then(|x| x.as_bool()).unwrap_or(false) {
            return Err(
                "pre_norm = true is not supported (the released models are post-norm)".into(),
            );
        }
        if v.get("enforce_input_projection")
            .and_then(|x| x.as_bool())
            .unwrap_or(false)
        {
            return Err("enforce_input_projection = true is not supported".into());
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the relations the modules rely on (divisibility, list lengths).
    pub fn validate(&self) -> Result<(), String> {
        let s = &self.swin;
        if s.depths.len() != 4 || s.num_heads.len() != 4 {
            return Err(format!(
                "the Swin backbone needs 4 stages (depths {:?}, num_heads {:?})",
                s.depths, s.num_heads
            ));
        }
        if s.patch_size < 1 || s.window_size < 2 || s.embed_dim < 1 || s.in_chans < 1 {
            return Err(
                "patch_size, window_size, embed_dim and in_chans must be positive (window >= 2)"
                    .into(),
            );
        }
        for (i, (&d, &h)) in s.depths.iter().zip(&s.num_heads).enumerate() {
            let dim = s.embed_dim << i;
            if d < 1 || h < 1 || dim % h != 0 {
                return Err(format!(
                    "stage {i}: depth {d}, {h} heads for {dim} channels"
                ));
            }
        }
        let p = &self.pixel_decoder;
        if p.conv_dim % p.num_groups != 0 || p.conv_dim % p.transformer_nheads != 0 {
            return Err(format!(
                "conv_dim {} must be divisible by the GroupNorm groups ({}) and the heads ({})",
                p.conv_dim, p.num_groups, p.transformer_nheads
            ));
        }
        if p.common_stride != 4 {
            return Err(format!(
                "common_stride {} is not supported (only 4: one extra FPN level)",
                p.common_stride
            ));
        }
        let t = &self.transformer_decoder;
        if t.hidden_dim != p.conv_dim || p.mask_dim != t.hidden_dim {
            return Err(format!(
                "hidden_dim {} must equal conv_dim {} and mask_dim {} (no decoder input projection)",
                t.hidden_dim, p.conv_dim, p.mask_dim
            ));
        }
        if t.hidden_dim % t.nheads != 0 || t.hidden_dim % 2 != 0 {
            return Err(format!(
                "hidden_dim {} must be even and divisible by nheads {}",
                t.hidden_dim, t.nheads
            ));
        }
        if t.dec_layers < 1 || t.num_queries < 1 || t.num_classes < 1 {
            return Err("dec_layers, num_queries and num_classes must be positive".into());
        }
        Ok(())
    }

    /// Channel count of backbone stage `i` (`embed_dim · 2^i`).
    pub fn stage_dim(&self, i: usize) -> i64 {
        self.swin.embed_dim << i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate() {
        for name in PRESETS {
            Config::preset(name).unwrap().validate().unwrap();
        }
        assert!(Config::preset("nope").is_err());
    }

    #[test]
    fn hf_json_maps_to_the_large_preset() {
        let v = serde_json::json!({
            "model_type": "mask2former",
            "backbone_config": {"model_type": "swin", "embed_dim": 192, "depths": [2, 2, 18, 2],
                "num_heads": [6, 12, 24, 48], "window_size": 12, "patch_size": 4, "num_channels": 3,
                "mlp_ratio": 4.0, "hidden_act": "gelu", "layer_norm_eps": 1e-5},
            "feature_size": 256, "mask_feature_size": 256, "hidden_dim": 256,
            "encoder_feedforward_dim": 1024, "encoder_layers": 6, "decoder_layers": 10,
            "num_attention_heads": 8, "dim_feedforward": 2048, "num_queries": 100, "common_stride": 4,
            "id2label": {"0": "a", "1": "b", "2": "c", "3": "d", "4": "e", "5": "f", "6": "g", "7": "h",
                "8": "i", "9": "j", "10": "k", "11": "l", "12": "m", "13": "n", "14": "o", "15": "p",
                "16": "q", "17": "r", "18": "s"}
        });
        assert_eq!(
            Config::from_hf_value(&v).unwrap(),
            Config::mask2former_swin_large_cityscapes_semantic()
        );
        let mut bad = v.clone();
        bad["backbone_config"]["model_type"] = "resnet".into();
        assert!(Config::from_hf_value(&bad).unwrap_err().contains("swin"));
    }
}
