//! The parameter inventory of a configuration, and checkpoint inspection against it: builds the
//! native model on the CPU and compares a file's tensors with its variables
//! ([`crate::model::weights::checkpoint::match_checkpoint`]).

use crate::job::CheckpointFormat;
use crate::model::config::{ArchSummary, Config, PRESETS};
use crate::model::network::Mask2Former;
use crate::model::weights::checkpoint::{
    hf_config_beside, match_checkpoint, read_file, resolve_file, InspectReport, Inventory,
    RawCheckpoint,
};
use crate::model::ModelError;
use std::path::Path;
use tch::Device;

/// The inventory of `cfg` (parameters with shapes, recomputed buffers), from the model built on
/// the CPU.
pub fn inventory(cfg: &Config) -> Inventory {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let _model = Mask2Former::new(&vs.root(), cfg);
    Inventory::of(&vs, cfg)
}

/// Compares a checkpoint file with the model it is meant for and reports the differences.
/// `format` is `detectron2` (a `.pkl`, or `.safetensors` with detectron2 names) or `hf` (a
/// folder with `model.safetensors` + `config.json`, or the weights file). The architecture is the
/// HF `config.json` beside the file if there is one, else the closest known preset.
pub fn inspect(path: &Path, format: CheckpointFormat) -> Result<InspectReport, ModelError> {
    match format {
        CheckpointFormat::Detectron2 => inspect_with(path, false, None),
        CheckpointFormat::Hf => inspect_with(path, true, None),
        CheckpointFormat::Torchscript => Err(ModelError::Unsupported(
            "torchscript (no parameter names to inspect)".into(),
        )),
        CheckpointFormat::Random => Err(ModelError::Unsupported("random (no file)".into())),
    }
}

/// Reads `path` and compares it with the model. With no `preset`, the architecture comes from the
/// HF `config.json` beside the file, else every known preset is tried and the closest one reported.
pub fn inspect_with(
    path: &Path,
    hf: bool,
    preset: Option<&str>,
) -> Result<InspectReport, ModelError> {
    let (file, format) = resolve_file(path, hf)?;
    let candidates: Vec<(String, Config)> = match preset {
        Some(p) => vec![(p.to_string(), Config::preset(p)?)],
        None => match hf_config_beside(&file) {
            Some(c) => vec![("config.json".into(), Config::from_hf_json(&c)?)],
            None => PRESETS
                .iter()
                .map(|p| Ok((p.to_string(), Config::preset(p)?)))
                .collect::<Result<_, ModelError>>()?,
        },
    };
    let raw = read_file(&file, format)?;
    let mut best: Option<InspectReport> = None;
    for (name, cfg) in candidates {
        // Shallow copies: every candidate sees the same tensors without a second read.
        let copy = RawCheckpoint {
            path: raw.path.clone(),
            format: raw.format,
            tensors: raw
                .tensors
                .iter()
                .map(|(n, t)| (n.clone(), t.shallow_clone()))
                .collect(),
            other_keys: raw.other_keys.clone(),
        };
        let (mut rep, _) = match_checkpoint(copy, &inventory(&cfg), &name);
        rep.model_arch = ArchSummary::of(&cfg);
        if best.as_ref().is_none_or(|b| rep.problems() < b.problems()) {
            best = Some(rep);
        }
    }
    best.ok_or_else(|| ModelError::Config("no architecture to compare with".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::weights::checkpoint::FileFormat;
    use std::path::PathBuf;
    use tch::{Kind, Tensor};

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model")
    }

    /// Every parameter of the tiny model maps to an HF tensor of the fixture and every fixture
    /// tensor is either used or expected-unused: the map is total and one-to-one on a real file.
    #[test]
    fn hf_map_covers_the_fixture_exactly() {
        let raw = read_file(
            &fixtures().join("tiny_hf/model.safetensors"),
            FileFormat::HfSafetensors,
        )
        .unwrap();
        let (rep, _) = match_checkpoint(raw, &inventory(&Config::tiny()), "tiny");
        assert!(rep.is_ok(), "{rep}");
        assert_eq!(rep.matched, rep.model_tensors);
        println!("{rep}");
    }

    #[test]
    fn detectron2_pickle_fixture_matches_the_tiny_inventory() {
        let raw = read_file(
            &fixtures().join("tiny_d2.pkl"),
            FileFormat::Detectron2Pickle,
        )
        .unwrap();
        let (rep, tensors) = match_checkpoint(raw, &inventory(&Config::tiny()), "tiny");
        assert!(rep.is_ok(), "{rep}");
        assert_eq!(tensors.len(), rep.model_tensors);
        let text = rep.to_string();
        assert!(text.contains("training-loss buffer"), "{text}");
        assert!(text.contains("recomputed"), "{text}");
        assert!(text.contains("verdict: OK"), "{text}");
    }

    #[test]
    fn wrong_shape_missing_and_unexpected_keys_are_reported() {
        let raw = read_file(
            &fixtures().join("tiny_d2.pkl"),
            FileFormat::Detectron2Pickle,
        )
        .unwrap();
        let mut tensors = raw.tensors;
        tensors.retain(|(n, _)| n != "sem_seg_head.predictor.query_feat.weight");
        for (n, t) in tensors.iter_mut() {
            if n == "backbone.norm0.weight" {
                *t = Tensor::zeros([17], (Kind::Float, Device::Cpu));
            }
            if n == "backbone.norm1.weight" {
                *t = t.to_kind(Kind::Double);
            }
            if n == "backbone.layers.0.blocks.0.attn.relative_position_index" {
                *t = t.zeros_like();
            }
        }
        tensors.push((
            "backbone.extra.weight".into(),
            Tensor::zeros([2], (Kind::Float, Device::Cpu)),
        ));
        let raw = RawCheckpoint { tensors, ..raw };
        let (rep, _) = match_checkpoint(raw, &inventory(&Config::tiny()), "tiny");
        assert!(!rep.is_ok());
        let text = rep.to_string();
        for want in [
            "MISSING from the file: 1",
            "sem_seg_head.predictor.query_feat.weight [8, 32] float32",
            "UNEXPECTED in the file: 1",
            "backbone.extra.weight [2]",
            "backbone.norm0.weight: model [16] float32, file [17] float32",
            "backbone.norm1.weight: model [32] float32, file [32] float64",
            "VALUES differ from the recomputed buffer: backbone.layers.0.blocks.0.attn.relative_position_index",
            "NOT LOADABLE",
        ] {
            assert!(text.contains(want), "`{want}` not in\n{text}");
        }
    }

    #[test]
    fn inspect_picks_the_architecture() {
        let rep = inspect_with(&fixtures().join("tiny_hf"), true, None).unwrap();
        assert_eq!(rep.architecture, "config.json");
        assert!(rep.is_ok(), "{rep}");
        let rep = inspect_with(&fixtures().join("tiny_d2.pkl"), false, None).unwrap();
        assert_eq!(rep.architecture, "tiny");
        assert!(rep.is_ok(), "{rep}");
    }
}
