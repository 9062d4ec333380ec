//! Checkpoint files → the native model's parameters, strictly.
//!
//! * detectron2 `.pkl` (model zoo, read by [`super::pickle`]) or `.safetensors` with detectron2
//!   names; legacy names are normalised as `MaskFormerHead._load_from_state_dict` and
//!   `MultiScaleMaskedTransformerDecoder._load_from_state_dict` do upstream (see [`normalize_d2_name`]).
//! * HF transformers safetensors (`Mask2FormerForUniversalSegmentation`), mapped to detectron2
//!   names by the one function [`hf_sources`] (the reverse of
//!   `convert_mask2former_original_pytorch_checkpoint_to_pytorch.py`), which accepts the names of
//!   transformers 4.x (`attention.self.query`, …) and 5.x (`attention.q_proj`, …).
//!
//! Before anything is copied, the file's inventory is compared with the model's (missing,
//! unexpected, shape, dtype) and the outcome is an [`InspectReport`]. `tch`'s own
//! `VarStore::load` is not used: it ignores extra keys and broadcasts shapes.

use super::config::{ArchSummary, Config, PRESETS};
use super::pickle::{self, DType};
use super::swin::relative_position_index;
use super::ModelError;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// The layout of a checkpoint file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// detectron2 model-zoo pickle.
    Detectron2Pickle,
    /// safetensors with detectron2 names.
    Detectron2Safetensors,
    /// safetensors with HF transformers names.
    HfSafetensors,
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileFormat::Detectron2Pickle => "detectron2 pickle",
            FileFormat::Detectron2Safetensors => "detectron2 safetensors",
            FileFormat::HfSafetensors => "HF transformers safetensors",
        })
    }
}

/// The weights file and format a job's `checkpoint.path` stands for: an HF folder means its
/// `model.safetensors`; a detectron2 path ending in `.safetensors` is read as safetensors.
pub fn resolve_file(path: &Path, hf: bool) -> Result<(PathBuf, FileFormat), ModelError> {
    if hf {
        let file = if path.is_dir() {
            path.join("model.safetensors")
        } else {
            path.to_path_buf()
        };
        if !file.is_file() {
            return Err(ModelError::Missing { path: file });
        }
        return Ok((file, FileFormat::HfSafetensors));
    }
    if !path.is_file() {
        return Err(ModelError::Missing {
            path: path.to_path_buf(),
        });
    }
    let st = path.extension().is_some_and(|e| e == "safetensors");
    Ok((
        path.to_path_buf(),
        if st {
            FileFormat::Detectron2Safetensors
        } else {
            FileFormat::Detectron2Pickle
        },
    ))
}

/// detectron2 names of old checkpoints → current names (method spec §9.4): a `sem_seg_head.` key
/// outside `predictor.`/`pixel_decoder.` belongs to the pixel decoder, and `static_query` is
/// `query_feat`. Returns `None` for keys that are not model weights (`criterion.*`).
pub fn normalize_d2_name(name: &str) -> Option<String> {
    if name.starts_with("criterion.") {
        return None;
    }
    let mut n = name.to_string();
    if let Some(rest) = n.strip_prefix("sem_seg_head.") {
        if !rest.starts_with("predictor.") && !rest.starts_with("pixel_decoder.") {
            n = format!("sem_seg_head.pixel_decoder.{rest}");
        }
    }
    if n.contains("static_query") {
        n = n.replace("static_query", "query_feat");
    }
    Some(n)
}

/// The HF tensor(s) that hold detectron2 parameter `d2`: the outer list is concatenated along
/// dim 0 (Swin's q/k/v and the self-attention's `in_proj` are split in HF); the inner list gives
/// alternative names (transformers 5.x first, then 4.x). `None`: no HF counterpart.
pub fn hf_sources(d2: &str) -> Option<Vec<Vec<String>>> {
    let one = |alts: Vec<String>| Some(vec![alts]);
    let same = |n: String| Some(vec![vec![n]]);
    let enc = "model.pixel_level_module.encoder";
    if let Some(rest) = d2.strip_prefix("backbone.") {
        if let Some(x) = rest.strip_prefix("patch_embed.proj.") {
            return one(vec![
                format!("{enc}.swin.embeddings.patch_embeddings.projection.{x}"),
                format!("{enc}.embeddings.patch_embeddings.projection.{x}"),
            ]);
        }
        if let Some(x) = rest.strip_prefix("patch_embed.norm.") {
            return one(vec![
                format!("{enc}.swin.embeddings.norm.{x}"),
                format!("{enc}.embeddings.norm.{x}"),
            ]);
        }
        if let Some(x) = rest.strip_prefix("norm") {
            let (i, x) = x.split_once('.')?;
            let stage = i.parse::<usize>().ok()? + 1;
            return same(format!("{enc}.hidden_states_norms.stage{stage}.{x}"));
        }
        let x = rest.strip_prefix("layers.")?;
        let (i, x) = x.split_once('.')?;
        if let Some(y) = x.strip_prefix("downsample.") {
            return one(vec![
                format!("{enc}.swin.encoder.layers.{i}.downsample.{y}"),
                format!("{enc}.encoder.layers.{i}.downsample.{y}"),
            ]);
        }
        let x = x.strip_prefix("blocks.")?;
        let (j, y) = x.split_once('.')?;
        let b5 = format!("{enc}.swin.encoder.layers.{i}.blocks.{j}");
        let b4 = format!("{enc}.encoder.layers.{i}.blocks.{j}");
        let pair = |v5: &str, v4: &str| vec![format!("{b5}.{v5}"), format!("{b4}.{v4}")];
        let (part, s) = y.rsplit_once('.').unwrap_or((y, ""));
        return match (part, s) {
            ("norm1", s) => one(pair(
                &format!("layernorm_before.{s}"),
                &format!("layernorm_before.{s}"),
            )),
            ("norm2", s) => one(pair(
                &format!("layernorm_after.{s}"),
                &format!("layernorm_after.{s}"),
            )),
            ("attn.qkv", s) => Some(vec![
                pair(
                    &format!("attention.q_proj.{s}"),
                    &format!("attention.self.query.{s}"),
                ),
                pair(
                    &format!("attention.k_proj.{s}"),
                    &format!("attention.self.key.{s}"),
                ),
                pair(
                    &format!("attention.v_proj.{s}"),
                    &format!("attention.self.value.{s}"),
                ),
            ]),
            ("attn.proj", s) => one(pair(
                &format!("attention.o_proj.{s}"),
                &format!("attention.output.dense.{s}"),
            )),
            ("attn", "relative_position_bias_table") => one(pair(
                "attention.relative_position_bias.relative_position_bias_table",
                "attention.self.relative_position_bias_table",
            )),
            ("attn", "relative_position_index") => one(pair(
                "attention.relative_position_bias.relative_position_index",
                "attention.self.relative_position_index",
            )),
            ("mlp.fc1", s) => one(pair(
                &format!("mlp.fc1.{s}"),
                &format!("intermediate.dense.{s}"),
            )),
            ("mlp.fc2", s) => one(pair(&format!("mlp.fc2.{s}"), &format!("output.dense.{s}"))),
            _ => None,
        };
    }
    let dec = "model.pixel_level_module.decoder";
    if let Some(rest) = d2.strip_prefix("sem_seg_head.pixel_decoder.") {
        if rest == "transformer.level_embed" {
            return same(format!("{dec}.level_embed"));
        }
        if let Some(x) = rest.strip_prefix("input_proj.") {
            return same(format!("{dec}.input_projections.{x}"));
        }
        if let Some(x) = rest.strip_prefix("mask_features.") {
            return same(format!("{dec}.mask_projection.{x}"));
        }
        for conv in ["adapter_1", "layer_1"] {
            if rest == format!("{conv}.weight") {
                return same(format!("{dec}.{conv}.0.weight"));
            }
            if let Some(x) = rest.strip_prefix(&format!("{conv}.norm.")) {
                return same(format!("{dec}.{conv}.1.{x}"));
            }
        }
        let x = rest.strip_prefix("transformer.encoder.layers.")?;
        let (k, y) = x.split_once('.')?;
        let (part, s) = y.rsplit_once('.')?;
        let hf = match part {
            "norm1" => "self_attn_layer_norm",
            "norm2" => "final_layer_norm",
            "linear1" => "fc1",
            "linear2" => "fc2",
            p if p.starts_with("self_attn.") => p,
            _ => return None,
        };
        return same(format!("{dec}.encoder.layers.{k}.{hf}.{s}"));
    }
    let tm = "model.transformer_module";
    let rest = d2.strip_prefix("sem_seg_head.predictor.")?;
    match rest {
        "query_embed.weight" => return same(format!("{tm}.queries_embedder.weight")),
        "query_feat.weight" => return same(format!("{tm}.queries_features.weight")),
        "level_embed.weight" => return same(format!("{tm}.level_embed.weight")),
        _ => {}
    }
    if let Some(s) = rest.strip_prefix("decoder_norm.") {
        return same(format!("{tm}.decoder.layernorm.{s}"));
    }
    if let Some(s) = rest.strip_prefix("class_embed.") {
        return same(format!("class_predictor.{s}"));
    }
    if let Some(x) = rest.strip_prefix("mask_embed.layers.") {
        let (i, s) = x.split_once('.')?;
        return same(format!(
            "{tm}.decoder.mask_predictor.mask_embedder.{i}.0.{s}"
        ));
    }
    let (kind, x) = rest.split_once('.')?;
    let (i, y) = x.split_once('.')?;
    let layer = format!("{tm}.decoder.layers.{i}");
    match (kind, y) {
        ("transformer_self_attention_layers", y) => {
            if let Some(s) = y.strip_prefix("self_attn.in_proj_") {
                return Some(
                    ["q", "k", "v"]
                        .iter()
                        .map(|q| vec![format!("{layer}.self_attn.{q}_proj.{s}")])
                        .collect(),
                );
            }
            if let Some(s) = y.strip_prefix("self_attn.out_proj.") {
                return same(format!("{layer}.self_attn.out_proj.{s}"));
            }
            y.strip_prefix("norm.")
                .and_then(|s| same(format!("{layer}.self_attn_layer_norm.{s}")))
        }
        ("transformer_cross_attention_layers", y) => {
            if let Some(z) = y.strip_prefix("multihead_attn.") {
                return same(format!("{layer}.cross_attn.{z}"));
            }
            y.strip_prefix("norm.")
                .and_then(|s| same(format!("{layer}.cross_attn_layer_norm.{s}")))
        }
        ("transformer_ffn_layers", y) => {
            let (part, s) = y.split_once('.')?;
            let hf = match part {
                "linear1" => "fc1",
                "linear2" => "fc2",
                "norm" => "final_layer_norm",
                _ => return None,
            };
            same(format!("{layer}.{hf}.{s}"))
        }
        _ => None,
    }
}

/// Keys a checkpoint may hold that the model does not use, with the reason (shown in reports).
fn expected_unused(file_key: &str) -> Option<&'static str> {
    if file_key.starts_with("criterion.") {
        Some("training-loss buffer (SetCriterion / Mask2FormerLoss)")
    } else if file_key.ends_with("relative_position_index") {
        Some("buffer recomputed from the window size; checked to be equal")
    } else if file_key.starts_with("model.pixel_level_module.encoder.swin.layernorm.") {
        Some("SwinModel's final norm, unused by the backbone outputs")
    } else {
        None
    }
}

/// One tensor as the report shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub shape: Vec<i64>,
    pub dtype: String,
}

/// The comparison of a checkpoint with the model's inventory.
#[derive(Debug, Clone, Default)]
pub struct InspectReport {
    pub path: PathBuf,
    pub format: String,
    /// Where the architecture came from (preset name or `config.json`).
    pub architecture: String,
    pub file_tensors: usize,
    pub file_values: i64,
    pub model_tensors: usize,
    pub model_parameters: i64,
    pub matched: usize,
    /// Model parameters the file lacks.
    pub missing: Vec<Entry>,
    /// File tensors the model has no use for.
    pub unexpected: Vec<Entry>,
    /// `(model, file)` pairs whose shapes differ.
    pub shape_mismatch: Vec<(Entry, Entry)>,
    /// `(model, file)` pairs whose dtypes differ.
    pub dtype_mismatch: Vec<(Entry, Entry)>,
    /// Buffers whose values differ from the recomputed ones.
    pub value_mismatch: Vec<String>,
    /// File keys deliberately not used, with the reason.
    pub unused: Vec<(String, String)>,
    /// Legacy names that were normalised (`file name`, `model name`).
    pub renamed: Vec<(String, String)>,
    /// Top-level pickle entries besides the state dict.
    pub other_keys: Vec<String>,
    /// The architecture the file's tensors describe, and the one the model was built as.
    pub file_arch: ArchSummary,
    pub model_arch: ArchSummary,
}

impl InspectReport {
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.shape_mismatch.is_empty()
            && self.dtype_mismatch.is_empty()
            && self.value_mismatch.is_empty()
    }

    /// One line saying why the file does not fit, before the tensor lists.
    pub fn diagnosis(&self) -> Option<String> {
        if self.is_ok() {
            return None;
        }
        if self.file_arch != self.model_arch && self.model_arch != ArchSummary::default() {
            return Some(format!(
                "the file holds {}; the job asks for {} ({})",
                self.file_arch, self.model_arch, self.architecture
            ));
        }
        Some(format!(
            "the file holds {} like the model ({}), but {} of its tensors do not fit",
            self.file_arch,
            self.architecture,
            self.problems()
        ))
    }

    fn problems(&self) -> usize {
        self.missing.len()
            + self.unexpected.len()
            + self.shape_mismatch.len()
            + self.dtype_mismatch.len()
            + self.value_mismatch.len()
    }
}

fn shape_str(s: &[i64]) -> String {
    format!(
        "[{}]",
        s.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The diagnosis ends the caller's first line ("... does not fit the model: ").
        if let Some(d) = self.diagnosis() {
            writeln!(f, "{d}")?;
        }
        writeln!(f, "checkpoint {} ({})", self.path.display(), self.format)?;
        writeln!(
            f,
            "  file: {} tensors, {} values",
            self.file_tensors, self.file_values
        )?;
        writeln!(
            f,
            "  model ({}): {} parameter tensors, {} float parameters",
            self.architecture, self.model_tensors, self.model_parameters
        )?;
        writeln!(f, "  matched: {} of {}", self.matched, self.model_tensors)?;
        if !self.other_keys.is_empty() {
            writeln!(
                f,
                "  other top-level entries: {}",
                self.other_keys.join(", ")
            )?;
        }
        if !self.renamed.is_empty() {
            writeln!(f, "  legacy names normalised: {}", self.renamed.len())?;
            for (a, b) in self.renamed.iter().take(5) {
                writeln!(f, "    {a} -> {b}")?;
            }
        }
        let list = |f: &mut fmt::Formatter<'_>, title: &str, items: &[Entry]| -> fmt::Result {
            if !items.is_empty() {
                writeln!(f, "  {title}: {}", items.len())?;
                for e in items.iter().take(20) {
                    writeln!(f, "    {} {} {}", e.name, shape_str(&e.shape), e.dtype)?;
                }
                if items.len() > 20 {
                    writeln!(f, "    … and {} more", items.len() - 20)?;
                }
            }
            Ok(())
        };
        list(f, "MISSING from the file", &self.missing)?;
        list(f, "UNEXPECTED in the file", &self.unexpected)?;
        for (title, pairs) in [
            ("SHAPE differs", &self.shape_mismatch),
            ("DTYPE differs", &self.dtype_mismatch),
        ] {
            if !pairs.is_empty() {
                writeln!(f, "  {title}: {}", pairs.len())?;
                for (m, x) in pairs.iter().take(20) {
                    writeln!(
                        f,
                        "    {}: model {} {}, file {} {}",
                        m.name,
                        shape_str(&m.shape),
                        m.dtype,
                        shape_str(&x.shape),
                        x.dtype
                    )?;
                }
            }
        }
        if !self.value_mismatch.is_empty() {
            writeln!(
                f,
                "  VALUES differ from the recomputed buffer: {}",
                self.value_mismatch.join(", ")
            )?;
        }
        if !self.unused.is_empty() {
            let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
            for (_, r) in &self.unused {
                *reasons.entry(r).or_default() += 1;
            }
            writeln!(f, "  not used (expected):")?;
            for (r, n) in reasons {
                writeln!(f, "    {n} × {r}")?;
            }
        }
        write!(
            f,
            "  verdict: {}",
            if self.is_ok() { "OK" } else { "NOT LOADABLE" }
        )
    }
}

fn kind_name(k: Kind) -> String {
    match k {
        Kind::Float => "float32".into(),
        Kind::Double => "float64".into(),
        Kind::Half => "float16".into(),
        Kind::BFloat16 => "bfloat16".into(),
        Kind::Int64 => "int64".into(),
        Kind::Int => "int32".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn to_tensor(name: &str, a: pickle::NdArray) -> Result<Tensor, String> {
    let kind = match a.dtype {
        DType::F16 => Kind::Half,
        DType::F32 => Kind::Float,
        DType::F64 => Kind::Double,
        DType::I8 => Kind::Int8,
        DType::I16 => Kind::Int16,
        DType::I32 => Kind::Int,
        DType::I64 => Kind::Int64,
        DType::U8 => Kind::Uint8,
        DType::Bool => Kind::Bool,
    };
    if a.fortran_order {
        // Column-major bytes are the row-major bytes of the reversed shape; permute back.
        let rev: Vec<i64> = a.shape.iter().rev().copied().collect();
        let t =
            Tensor::f_from_data_size(&a.data, &rev, kind).map_err(|e| format!("{name}: {e}"))?;
        let perm: Vec<i64> = (0..a.shape.len() as i64).rev().collect();
        Ok(t.permute(perm.as_slice()).contiguous())
    } else {
        Tensor::f_from_data_size(&a.data, &a.shape, kind).map_err(|e| format!("{name}: {e}"))
    }
}

/// A checkpoint's tensors under the names the file uses, plus what the report needs.
pub struct RawCheckpoint {
    pub path: PathBuf,
    pub format: FileFormat,
    pub tensors: Vec<(String, Tensor)>,
    pub other_keys: Vec<String>,
}

/// Reads every tensor of a checkpoint file (on the CPU).
pub fn read_file(path: &Path, format: FileFormat) -> Result<RawCheckpoint, ModelError> {
    let load_err = |message: String| ModelError::Load {
        path: path.to_path_buf(),
        message,
    };
    let (tensors, other_keys) = match format {
        FileFormat::Detectron2Pickle => {
            let bytes = std::fs::read(path).map_err(|e| load_err(e.to_string()))?;
            let sd = pickle::read_state_dict(&bytes).map_err(|e| load_err(e.to_string()))?;
            drop(bytes);
            let mut out = Vec::with_capacity(sd.tensors.len());
            for (name, a) in sd.tensors {
                let t = to_tensor(&name, a).map_err(load_err)?;
                out.push((name, t));
            }
            (out, sd.other_keys)
        }
        FileFormat::Detectron2Safetensors | FileFormat::HfSafetensors => {
            let t =
                Tensor::read_safetensors(path).map_err(|e| load_err(first_line(&e.to_string())))?;
            (t, Vec::new())
        }
    };
    Ok(RawCheckpoint {
        path: path.to_path_buf(),
        format,
        tensors,
        other_keys,
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

/// The model's parameters as `(name, shape)`, plus the names of the recomputed buffers.
pub struct Inventory {
    pub params: BTreeMap<String, Vec<i64>>,
    /// `relative_position_index` name → window size.
    pub buffers: BTreeMap<String, i64>,
}

/// Matches a checkpoint to an inventory. Returns the report and, under model names, the tensors
/// to copy (only meaningful when the report is OK).
pub fn match_checkpoint(
    raw: RawCheckpoint,
    inv: &Inventory,
    architecture: &str,
) -> (InspectReport, HashMap<String, Tensor>) {
    let mut rep = InspectReport {
        path: raw.path.clone(),
        format: raw.format.to_string(),
        architecture: architecture.to_string(),
        file_tensors: raw.tensors.len(),
        file_values: raw.tensors.iter().map(|(_, t)| t.numel() as i64).sum(),
        model_tensors: inv.params.len(),
        model_parameters: inv.params.values().map(|s| s.iter().product::<i64>()).sum(),
        other_keys: raw.other_keys.clone(),
        ..Default::default()
    };
    rep.file_arch = file_arch(&raw.tensors);
    let entry = |name: &str, t: &Tensor| Entry {
        name: name.to_string(),
        shape: t.size(),
        dtype: kind_name(t.kind()),
    };
    // Bring the file to model names.
    let mut by_model: HashMap<String, Tensor> = HashMap::new();
    let mut file_names: HashMap<String, String> = HashMap::new();
    match raw.format {
        FileFormat::Detectron2Pickle | FileFormat::Detectron2Safetensors => {
            for (name, t) in raw.tensors {
                match normalize_d2_name(&name) {
                    None => rep.unused.push((
                        name.clone(),
                        expected_unused(&name).unwrap_or("not a weight").into(),
                    )),
                    Some(n) => {
                        if n != name {
                            rep.renamed.push((name.clone(), n.clone()));
                        }
                        if by_model.contains_key(&n) {
                            rep.unexpected.push(entry(&name, &t));
                            continue;
                        }
                        file_names.insert(n.clone(), name);
                        by_model.insert(n, t);
                    }
                }
            }
        }
        FileFormat::HfSafetensors => {
            let mut file: HashMap<String, Tensor> = raw.tensors.into_iter().collect();
            let wanted = inv.params.keys().chain(inv.buffers.keys());
            for name in wanted {
                let Some(parts) = hf_sources(name) else {
                    continue;
                };
                let mut found = Vec::with_capacity(parts.len());
                for alts in &parts {
                    if let Some(a) = alts.iter().find(|a| file.contains_key(*a)) {
                        found.push(a.clone());
                    }
                }
                if found.len() != parts.len() {
                    // Leave partial finds in `file`: they show up as unexpected.
                    continue;
                }
                let ts: Vec<Tensor> = found.iter().filter_map(|a| file.remove(a)).collect();
                let t = if ts.len() == 1 {
                    ts.into_iter()
                        .next()
                        .unwrap_or_else(|| Tensor::zeros([0], (Kind::Float, Device::Cpu)))
                } else {
                    match Tensor::f_cat(&ts, 0) {
                        Ok(t) => t,
                        Err(_) => {
                            for (a, t) in found.iter().zip(&ts) {
                                rep.unexpected.push(entry(a, t));
                            }
                            continue;
                        }
                    }
                };
                file_names.insert(name.clone(), found.join(" + "));
                by_model.insert(name.clone(), t);
            }
            let mut rest: Vec<_> = file.into_iter().collect();
            rest.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, t) in rest {
                match expected_unused(&name) {
                    Some(r) => rep.unused.push((name, r.into())),
                    None => rep.unexpected.push(entry(&name, &t)),
                }
            }
        }
    }
    // Compare.
    for (name, shape) in &inv.params {
        let model = Entry {
            name: name.clone(),
            shape: shape.clone(),
            dtype: "float32".into(),
        };
        match by_model.get(name) {
            None => rep.missing.push(model),
            Some(t) => {
                let fe = Entry {
                    name: file_names.get(name).cloned().unwrap_or_default(),
                    ..entry(name, t)
                };
                if t.size() != *shape {
                    rep.shape_mismatch.push((model, fe));
                } else if t.kind() != Kind::Float {
                    rep.dtype_mismatch.push((model, fe));
                } else {
                    rep.matched += 1;
                }
            }
        }
    }
    for (name, &ws) in &inv.buffers {
        if let Some(t) = by_model.remove(name) {
            let want = relative_position_index(ws, Device::Cpu);
            let same = t.size() == want.size()
                && t.f_to_kind(Kind::Int64)
                    .map(|t| t.equal(&want))
                    .unwrap_or(false);
            if !same {
                rep.value_mismatch.push(name.clone());
            }
            rep.unused.push((
                file_names.remove(name).unwrap_or_default(),
                expected_unused(name).unwrap_or("").into(),
            ));
        }
    }
    let mut extra: Vec<_> = by_model
        .keys()
        .filter(|k| !inv.params.contains_key(*k))
        .cloned()
        .collect();
    extra.sort();
    for k in extra {
        if let Some(t) = by_model.remove(&k) {
            let fname = file_names.get(&k).cloned().unwrap_or(k);
            rep.unexpected.push(entry(&fname, &t));
        }
    }
    (rep, by_model)
}

/// The architecture a checkpoint's tensors describe, read from the names and shapes both naming
/// schemes use (detectron2 and Hugging Face).
pub fn file_arch(tensors: &[(String, Tensor)]) -> ArchSummary {
    let mut a = ArchSummary::default();
    let mut blocks: BTreeMap<i64, i64> = BTreeMap::new();
    for (name, t) in tensors {
        let size = t.size();
        if (name.ends_with("patch_embed.proj.weight")
            || name.ends_with("patch_embeddings.projection.weight"))
            && size.len() == 4
        {
            a.embed_dim = Some(size[0]);
        }
        if name.ends_with("query_feat.weight") || name.ends_with("queries_features.weight") {
            a.queries = size.first().copied();
        }
        if (name.ends_with("class_embed.weight") || name.ends_with("class_predictor.weight"))
            && !size.is_empty()
        {
            a.classes = Some(size[0] - 1);
        }
        // `...layers.{i}.blocks.{j}...`: the depth of stage i is one more than its largest j.
        if let Some(rest) = name.split("layers.").nth(1) {
            let mut it = rest.split('.');
            if let (Some(i), Some("blocks"), Some(j)) = (it.next(), it.next(), it.next()) {
                if let (Ok(i), Ok(j)) = (i.parse::<i64>(), j.parse::<i64>()) {
                    let d = blocks.entry(i).or_default();
                    *d = (*d).max(j + 1);
                }
            }
        }
    }
    a.depths = blocks.values().copied().collect();
    a
}

/// Builds the inventory of `cfg` (parameters with shapes, recomputed buffers).
pub fn inventory(cfg: &Config) -> Inventory {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let _model = super::native::Mask2Former::new(&vs.root(), cfg);
    let params = vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.size()))
        .collect();
    Inventory {
        params,
        buffers: inventory_buffers(cfg),
    }
}

/// The `relative_position_index` buffers upstream's state dict holds (one per Swin block).
pub fn inventory_buffers(cfg: &Config) -> BTreeMap<String, i64> {
    let mut buffers = BTreeMap::new();
    for (i, &depth) in cfg.swin.depths.iter().enumerate() {
        for j in 0..depth {
            buffers.insert(
                format!("backbone.layers.{i}.blocks.{j}.attn.relative_position_index"),
                cfg.swin.window_size,
            );
        }
    }
    buffers
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

/// `config.json` in the folder of an HF weights file, if there is one.
pub fn hf_config_beside(file: &Path) -> Option<PathBuf> {
    let c = file.parent().unwrap_or(Path::new(".")).join("config.json");
    c.is_file().then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model")
    }

    #[test]
    fn legacy_names_are_normalised() {
        assert_eq!(
            normalize_d2_name("sem_seg_head.adapter_1.weight").as_deref(),
            Some("sem_seg_head.pixel_decoder.adapter_1.weight")
        );
        assert_eq!(
            normalize_d2_name("sem_seg_head.pixel_decoder.adapter_1.weight").as_deref(),
            Some("sem_seg_head.pixel_decoder.adapter_1.weight")
        );
        assert_eq!(
            normalize_d2_name("sem_seg_head.predictor.static_query.weight").as_deref(),
            Some("sem_seg_head.predictor.query_feat.weight")
        );
        assert_eq!(normalize_d2_name("criterion.empty_weight"), None);
        assert_eq!(
            normalize_d2_name("backbone.norm0.weight").as_deref(),
            Some("backbone.norm0.weight")
        );
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
    fn hf_map_examples_both_transformers_generations() {
        let qkv = hf_sources("backbone.layers.2.blocks.17.attn.qkv.weight").unwrap();
        assert_eq!(qkv.len(), 3);
        assert_eq!(
            qkv[0][0],
            "model.pixel_level_module.encoder.swin.encoder.layers.2.blocks.17.attention.q_proj.weight"
        );
        assert_eq!(
            qkv[2][1],
            "model.pixel_level_module.encoder.encoder.layers.2.blocks.17.attention.self.value.weight"
        );
        assert_eq!(
            hf_sources("backbone.layers.0.blocks.1.mlp.fc2.bias").unwrap()[0][1],
            "model.pixel_level_module.encoder.encoder.layers.0.blocks.1.output.dense.bias"
        );
        assert_eq!(
            hf_sources("backbone.norm3.weight").unwrap(),
            vec![vec![
                "model.pixel_level_module.encoder.hidden_states_norms.stage4.weight".to_string()
            ]]
        );
        assert_eq!(
            hf_sources("sem_seg_head.pixel_decoder.adapter_1.norm.bias").unwrap()[0][0],
            "model.pixel_level_module.decoder.adapter_1.1.bias"
        );
        assert_eq!(
            hf_sources("sem_seg_head.pixel_decoder.transformer.encoder.layers.5.norm2.weight")
                .unwrap()[0][0],
            "model.pixel_level_module.decoder.encoder.layers.5.final_layer_norm.weight"
        );
        let inp = hf_sources(
            "sem_seg_head.predictor.transformer_self_attention_layers.8.self_attn.in_proj_bias",
        )
        .unwrap();
        assert_eq!(
            inp[1][0],
            "model.transformer_module.decoder.layers.8.self_attn.k_proj.bias"
        );
        assert_eq!(
            hf_sources("sem_seg_head.predictor.transformer_cross_attention_layers.0.multihead_attn.in_proj_weight")
                .unwrap()[0][0],
            "model.transformer_module.decoder.layers.0.cross_attn.in_proj_weight"
        );
        assert_eq!(
            hf_sources("sem_seg_head.predictor.mask_embed.layers.2.weight").unwrap()[0][0],
            "model.transformer_module.decoder.mask_predictor.mask_embedder.2.0.weight"
        );
        assert_eq!(
            hf_sources("sem_seg_head.predictor.class_embed.bias").unwrap()[0][0],
            "class_predictor.bias"
        );
        assert_eq!(hf_sources("something.else"), None);
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
    fn fortran_order_arrays_become_row_major_tensors() {
        let path = fixtures().join("small_proto4.pkl");
        let raw = read_file(&path, FileFormat::Detectron2Pickle).unwrap();
        let get = |n: &str| {
            raw.tensors
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, t)| t.shallow_clone())
                .unwrap()
        };
        assert!(get("f").equal(&get("a")));
        assert_eq!(get("i").kind(), Kind::Int64);
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
