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

    /// Reads an HF `Mask2FormerConfig` `config.json` (Swin backbone only). Errors name the file,
    /// the key (`backbone_config.depths[2]`) and, for a wrong type, the line and column.
    pub fn from_hf_json(path: &Path) -> Result<Config, ModelError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ModelError::Config(format!("cannot read {}: {e}", path.display())))?;
        let mut de = serde_json::Deserializer::from_str(&text);
        let not_json = |e: serde_json::Error| {
            ModelError::Config(format!("{} is not JSON: {e}", path.display()))
        };
        let hf: HfConfig = match serde_path_to_error::deserialize(&mut de) {
            Ok(hf) => {
                de.end().map_err(not_json)?;
                hf
            }
            Err(e) if e.inner().is_syntax() || e.inner().is_eof() => {
                return Err(not_json(e.into_inner()))
            }
            Err(e) => {
                return Err(ModelError::Config(format!(
                    "{}: {}",
                    path.display(),
                    key_error(e)
                )))
            }
        };
        hf.into_config()
            .map_err(|m| ModelError::Config(format!("{}: {m}", path.display())))
    }

    /// The mapping from HF names to this config; a missing or `null` key takes HF's default.
    pub fn from_hf_value(v: &serde_json::Value) -> Result<Config, String> {
        let hf: HfConfig = serde_path_to_error::deserialize(v).map_err(key_error)?;
        hf.into_config()
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
        if p.conv_dim < 1 || p.num_groups < 1 || p.transformer_nheads < 1 {
            return Err(format!(
                "conv_dim {}, GroupNorm groups {} and heads {} must be positive",
                p.conv_dim, p.num_groups, p.transformer_nheads
            ));
        }
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
        if t.nheads < 1 || t.hidden_dim % t.nheads != 0 || t.hidden_dim % 2 != 0 {
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

/// `serde_path_to_error`'s error as "`key`: what is wrong".
fn key_error(e: serde_path_to_error::Error<serde_json::Error>) -> String {
    let key = e.path().to_string();
    format!("`{key}`: {}", e.into_inner())
}

/// The keys of an HF `Mask2FormerConfig` that this crate reads; `None` (missing or `null`) takes
/// HF's default. Other keys are ignored.
#[derive(Debug, Deserialize)]
struct HfConfig {
    #[serde(default)]
    model_type: Option<String>,
    #[serde(default)]
    backbone_config: Option<HfSwin>,
    #[serde(default)]
    id2label: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    num_labels: Option<i64>,
    #[serde(default)]
    decoder_layers: Option<i64>,
    #[serde(default)]
    feature_size: Option<i64>,
    #[serde(default)]
    mask_feature_size: Option<i64>,
    #[serde(default)]
    encoder_layers: Option<i64>,
    #[serde(default)]
    num_attention_heads: Option<i64>,
    #[serde(default)]
    encoder_feedforward_dim: Option<i64>,
    #[serde(default)]
    common_stride: Option<i64>,
    #[serde(default)]
    hidden_dim: Option<i64>,
    #[serde(default)]
    num_queries: Option<i64>,
    #[serde(default)]
    dim_feedforward: Option<i64>,
    #[serde(default)]
    pre_norm: Option<bool>,
    #[serde(default)]
    enforce_input_projection: Option<bool>,
}

/// `backbone_config` (HF `SwinConfig`); `depths` and `num_heads` have no default.
#[derive(Debug, Deserialize)]
struct HfSwin {
    #[serde(default)]
    model_type: Option<String>,
    #[serde(default)]
    hidden_act: Option<String>,
    #[serde(default)]
    use_absolute_embeddings: Option<bool>,
    #[serde(default)]
    layer_norm_eps: Option<f64>,
    #[serde(default)]
    patch_size: Option<i64>,
    #[serde(default)]
    num_channels: Option<i64>,
    #[serde(default)]
    embed_dim: Option<i64>,
    depths: Vec<i64>,
    num_heads: Vec<i64>,
    #[serde(default)]
    window_size: Option<i64>,
    #[serde(default)]
    mlp_ratio: Option<f64>,
}

impl HfConfig {
    fn into_config(self) -> Result<Config, String> {
        let model_type = self.model_type.as_deref().unwrap_or("");
        if model_type != "mask2former" {
            return Err(format!(
                "model_type is `{model_type}`, expected `mask2former`"
            ));
        }
        let b = self.backbone_config.ok_or("no `backbone_config`")?;
        let backbone_type = b.model_type.as_deref().unwrap_or("");
        if backbone_type != "swin" {
            return Err(format!(
                "backbone model_type is `{backbone_type}`, only `swin` is implemented"
            ));
        }
        if let Some(act) = b.hidden_act.as_deref() {
            if act != "gelu" {
                return Err(format!(
                    "backbone hidden_act `{act}` is not supported (only gelu)"
                ));
            }
        }
        if b.use_absolute_embeddings.unwrap_or(false) {
            return Err("backbone use_absolute_embeddings is not supported".into());
        }
        let eps = b.layer_norm_eps.unwrap_or(1e-5);
        // The HF Mask2Former heads use PyTorch's default eps; only the backbone's is configurable.
        if (eps - 1e-5).abs() > 1e-12 {
            return Err(format!(
                "backbone layer_norm_eps {eps} differs from the heads' 1e-5"
            ));
        }
        let num_labels = match &self.id2label {
            Some(m) => m.len() as i64,
            None => self.num_labels.unwrap_or(0),
        };
        let heads = self.num_attention_heads.unwrap_or(8);
        let cfg = Config {
            swin: SwinConfig {
                patch_size: b.patch_size.unwrap_or(4),
                in_chans: b.num_channels.unwrap_or(3),
                embed_dim: b.embed_dim.unwrap_or(96),
                depths: b.depths,
                num_heads: b.num_heads,
                window_size: b.window_size.unwrap_or(7),
                mlp_ratio: b.mlp_ratio.unwrap_or(4.0),
            },
            pixel_decoder: PixelDecoderConfig {
                conv_dim: self.feature_size.unwrap_or(256),
                mask_dim: self.mask_feature_size.unwrap_or(256),
                transformer_enc_layers: self.encoder_layers.unwrap_or(6),
                transformer_nheads: heads,
                transformer_dim_feedforward: self.encoder_feedforward_dim.unwrap_or(1024),
                n_points: 4,
                num_groups: 32,
                common_stride: self.common_stride.unwrap_or(4),
            },
            transformer_decoder: TransformerDecoderConfig {
                hidden_dim: self.hidden_dim.unwrap_or(256),
                num_queries: self.num_queries.unwrap_or(100),
                nheads: heads,
                dim_feedforward: self.dim_feedforward.unwrap_or(2048),
                dec_layers: self.decoder_layers.unwrap_or(10).saturating_sub(1),
                num_classes: num_labels,
            },
            norm_eps: 1e-5,
        };
        if self.pre_norm.unwrap_or(false) {
            return Err(
                "pre_norm = true is not supported (the released models are post-norm)".into(),
            );
        }
        if self.enforce_input_projection.unwrap_or(false) {
            return Err("enforce_input_projection = true is not supported".into());
        }
        cfg.validate()?;
        Ok(cfg)
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
        // `null` takes the default, as a missing key does.
        let mut nulled = v.clone();
        nulled["backbone_config"]["patch_size"] = serde_json::Value::Null;
        nulled["num_queries"] = serde_json::Value::Null;
        assert_eq!(
            Config::from_hf_value(&nulled).unwrap(),
            Config::mask2former_swin_large_cityscapes_semantic()
        );
    }

    /// A small valid HF config as text, one key per line.
    const HF_TINY: &str = r#"{
  "model_type": "mask2former",
  "backbone_config": {
    "model_type": "swin",
    "embed_dim": 16,
    "depths": [2, 2, 2, 2],
    "num_heads": [1, 2, 4, 8],
    "window_size": 4,
    "mlp_ratio": 2.0
  },
  "feature_size": 32, "mask_feature_size": 32, "hidden_dim": 32, "encoder_feedforward_dim": 64,
  "encoder_layers": 2, "decoder_layers": 4, "num_attention_heads": 4, "dim_feedforward": 64,
  "num_queries": 8, "num_labels": 4
}"#;

    fn hf_json_error(text: &str) -> String {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("config.json");
        std::fs::write(&path, text).unwrap();
        let e = Config::from_hf_json(&path).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "file missing: {e}");
        e
    }

    #[test]
    fn hf_json_reads_the_tiny_config() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("config.json");
        std::fs::write(&path, HF_TINY).unwrap();
        assert_eq!(Config::from_hf_json(&path).unwrap(), Config::tiny());
    }

    #[test]
    fn hf_json_wrong_type_names_the_key_and_the_line() {
        let e = hf_json_error(&HF_TINY.replace(r#""window_size": 4"#, r#""window_size": "4""#));
        assert!(e.contains("backbone_config.window_size"), "{e}");
        assert!(e.contains("line 8"), "{e}");
        // A silently ignored wrong type would have taken the default ratio.
        let e = hf_json_error(&HF_TINY.replace(r#""mlp_ratio": 2.0"#, r#""mlp_ratio": "2""#));
        assert!(e.contains("backbone_config.mlp_ratio"), "{e}");
        let e = hf_json_error(&HF_TINY.replace("[2, 2, 2, 2]", "[2, 2, true, 2]"));
        assert!(e.contains("backbone_config.depths[2]"), "{e}");
        let e = hf_json_error(&HF_TINY.replace(r#""num_queries": 8"#, r#""num_queries": 8.5"#));
        assert!(e.contains("`num_queries`"), "{e}");
    }

    #[test]
    fn hf_json_missing_required_key_is_named() {
        let e = hf_json_error(&HF_TINY.replace(r#""num_heads": [1, 2, 4, 8],"#, ""));
        assert!(
            e.contains("num_heads") && e.contains("backbone_config"),
            "{e}"
        );
        let e = hf_json_error(&HF_TINY.replace(r#""depths": [2, 2, 2, 2],"#, r#""depths": null,"#));
        assert!(e.contains("backbone_config.depths"), "{e}");
        let no_backbone = r#"{"model_type": "mask2former", "num_labels": 4}"#;
        assert!(hf_json_error(no_backbone).contains("`backbone_config`"));
    }

    #[test]
    fn hf_json_bad_syntax_and_bad_numbers_are_errors_not_panics() {
        assert!(hf_json_error("{\"model_type\": ").contains("is not JSON"));
        assert!(hf_json_error(&format!("{HF_TINY} x")).contains("is not JSON"));
        let e = hf_json_error(
            &HF_TINY.replace(r#""num_attention_heads": 4"#, r#""num_attention_heads": 0"#),
        );
        assert!(e.contains("heads"), "{e}");
        let e = hf_json_error(&HF_TINY.replace(
            r#""decoder_layers": 4"#,
            r#""decoder_layers": -9223372036854775808"#,
        ));
        assert!(e.contains("dec_layers"), "{e}");
    }
}
