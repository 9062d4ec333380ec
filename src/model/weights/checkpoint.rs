//! Checkpoint files → the native model's parameters, strictly.
//!
//! * detectron2 `.pkl` (model zoo, read by [`crate::model::weights::pickle`]) or `.safetensors` with detectron2
//!   names; legacy names are normalised as `MaskFormerHead._load_from_state_dict` and
//!   `MultiScaleMaskedTransformerDecoder._load_from_state_dict` do upstream
//!   ([`crate::model::weights::names::normalize_d2_name`]).
//! * HF transformers safetensors (`Mask2FormerForUniversalSegmentation`), mapped to detectron2
//!   names by the table [`crate::model::weights::names::HF_RULES`].
//!
//! Before anything is copied, the file's inventory is compared with the model's (missing,
//! unexpected, shape, dtype) and the outcome is an [`InspectReport`]. `tch`'s own
//! `VarStore::load` is not used: it ignores extra keys and broadcasts shapes.

use crate::model::config::{ArchSummary, Config};
use crate::model::network::swin::relative_position_index;
use crate::model::weights::names::{hf_sources, normalize_d2_name};
use crate::model::weights::pickle::{self, DType};
use crate::model::ModelError;
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

    pub(crate) fn problems(&self) -> usize {
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

impl Inventory {
    /// The inventory of the model `cfg` describes, built in `vs`: its variables with their shapes,
    /// and the recomputed buffers.
    pub fn of(vs: &tch::nn::VarStore, cfg: &Config) -> Inventory {
        Inventory {
            params: vs
                .variables()
                .into_iter()
                .map(|(k, v)| (k, v.size()))
                .collect(),
            buffers: inventory_buffers(cfg),
        }
    }
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

/// `config.json` in the folder of an HF weights file, if there is one.
pub fn hf_config_beside(file: &Path) -> Option<PathBuf> {
    let c = file.parent().unwrap_or(Path::new(".")).join("config.json");
    c.is_file().then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_order_arrays_become_row_major_tensors() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model/small_proto4.pkl");
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
}
