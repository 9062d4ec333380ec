//! The job file: every key has a default, unknown keys are rejected, and a bad value is reported with
//! the key's dotted path and its line in the file. A job is validated once, when it is loaded.
//!
//! With no file at all, the default job is the published Maskomaly Swin-L Cityscapes run reading
//! `/input` and writing `/output`.

pub mod queries;
mod score_kind;
use crate::diagnostic::{Diagnose, ExitCode};
pub use score_kind::ScoreKind;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A whole job as resolved (defaults filled in). Serialised verbatim into `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Job {
    /// Used in the manifest and as the method name of the `smiyc` output layout.
    pub name: String,
    pub dataset: DatasetSpec,
    pub model: ModelSpec,
    pub checkpoint: CheckpointSpec,
    pub preprocess: Preprocess,
    pub method: Method,
    pub output: OutputSpec,
    pub runtime: Runtime,
}

impl Default for Job {
    fn default() -> Self {
        Job {
            name: "maskomaly".into(),
            dataset: DatasetSpec::default(),
            model: ModelSpec::default(),
            // The published run: the model-zoo file, fetched from its URL when not mounted.
            checkpoint: CheckpointSpec {
                url: Some(DEFAULT_CHECKPOINT_URL.into()),
                ..CheckpointSpec::default()
            },
            preprocess: Preprocess::default(),
            method: Method::default(),
            output: OutputSpec::default(),
            runtime: Runtime::default(),
        }
    }
}

/// `as_str` (strum) and serde derive the names from the variants by one rule, snake_case.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DatasetKind {
    /// Every image under the root (recursively), no labels.
    Folder,
    SmiycAnomaly,
    SmiycObstacle,
    FsStatic,
    FsLaf,
    RoadAnomaly,
    StreetHazards,
    LostAndFound,
}

impl DatasetKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatasetSpec {
    pub kind: DatasetKind,
    pub root: PathBuf,
    /// Dataset-specific subset (e.g. `validation`); `null` takes the layout's default.
    pub split: Option<String>,
    /// Label values that mean "anomaly", replacing the layout's default (StreetHazards: the raw
    /// annotations use 14, the reference tested 255; Fishyscapes L&F: 1, the reference tested 120).
    pub label_value: Option<Vec<u8>>,
    /// Which label image the SMIYC and RoadAnomaly layouts read.
    pub labels: LabelFormat,
}

/// `semantic`: the index image (`*_labels_semantic.png`, as the benchmark reads it); `color`: the
/// colour image the reference evaluation reads (`*_labels_semantic_color.png`, one channel tested).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelFormat {
    #[default]
    Semantic,
    Color,
}

impl Default for DatasetSpec {
    fn default() -> Self {
        DatasetSpec {
            kind: DatasetKind::Folder,
            root: PathBuf::from("/input"),
            split: None,
            label_value: None,
            labels: LabelFormat::Semantic,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSpec {
    /// Named architecture for native checkpoints; ignored by `torchscript`. Unset: an HF
    /// checkpoint's `config.json` decides, else `mask2former_swin_large_cityscapes_semantic`.
    pub preset: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointFormat {
    /// A TorchScript module: `forward(x[B,3,Hp,Wp]) -> (pred_logits[B,Q,K+1], pred_masks[B,Q,h,w])`.
    Torchscript,
    /// The Mask2Former model zoo `.pkl` (or `.safetensors` with detectron2 names), run natively.
    Detectron2,
    /// A Hugging Face transformers Mask2Former checkpoint (folder or `model.safetensors`), run natively.
    Hf,
    /// No file: the `model.preset` architecture with seeded random weights. For timing benchmarks
    /// only; its scores mean nothing.
    Random,
}

/// Where the published run expects the model-zoo checkpoint (mounted at /models).
pub const DEFAULT_CHECKPOINT_PATH: &str = "/models/model_final_17c1ee.pkl";
/// The official Mask2Former model zoo file: Swin-L IN21k, Cityscapes semantic, 100 queries.
pub const DEFAULT_CHECKPOINT_URL: &str = "https://dl.fbaipublicfiles.com/maskformer/mask2former/cityscapes/semantic/maskformer2_swin_large_IN21k_384_bs16_90k/model_final_17c1ee.pkl";

impl CheckpointFormat {
    /// The format a checkpoint file's name implies, where it implies one: `.pt`/`.pth`/`.ts` →
    /// TorchScript, `.pkl` → detectron2, a folder → Hugging Face. `.safetensors` is ambiguous.
    pub fn guess(path: &Path) -> Option<CheckpointFormat> {
        if path.is_dir() {
            return Some(CheckpointFormat::Hf);
        }
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "pt" | "pth" | "ts" | "jit" => Some(CheckpointFormat::Torchscript),
            "pkl" => Some(CheckpointFormat::Detectron2),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointSpec {
    pub format: CheckpointFormat,
    pub path: PathBuf,
    /// If set, the file's SHA-256 is checked before use; a mismatch writes nothing.
    pub sha256: Option<String>,
    /// Where to fetch the file from when `path` does not exist. Only a URL the job names is used
    /// (or, for the default path, the model zoo's): a missing file without one is an error.
    pub url: Option<String>,
}

impl Default for CheckpointSpec {
    /// A `checkpoint:` section of a job file starts from this: no URL, so that a job naming its own
    /// `path` never falls back to another file's download.
    fn default() -> Self {
        CheckpointSpec {
            format: CheckpointFormat::Detectron2,
            path: PathBuf::from(DEFAULT_CHECKPOINT_PATH),
            sha256: None,
            url: None,
        }
    }
}

impl CheckpointSpec {
    /// The URL to fetch a missing `path` from: the job's own, or the model zoo's for the default
    /// path only.
    pub fn effective_url(&self) -> Option<&str> {
        match &self.url {
            Some(u) => Some(u),
            None if self.path == Path::new(DEFAULT_CHECKPOINT_PATH) => Some(DEFAULT_CHECKPOINT_URL),
            None => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColorFormat {
    #[serde(rename = "RGB")]
    Rgb,
    #[serde(rename = "BGR")]
    Bgr,
}

/// detectron2's test-time input rule (ResizeShortestEdge + normalise + pad), docs/method.md §2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Preprocess {
    pub min_size: u32,
    pub max_size: u32,
    pub size_divisibility: u32,
    pub format: ColorFormat,
    pub pixel_mean: [f32; 3],
    pub pixel_std: [f32; 3],
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            min_size: 1024,
            max_size: 2048,
            size_divisibility: 32,
            format: ColorFormat::Rgb,
            pixel_mean: [123.675, 116.28, 103.53],
            pixel_std: [58.395, 57.12, 57.375],
        }
    }
}

/// Which anomaly scores a run computes, and their parameters. The Maskomaly rule's parameters (docs/method.md §4)
/// sit at this level; query indices are query ids, not class ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Method {
    /// The scores computed from each forward pass, in this order (`crate::scores`). One score
    /// writes its outputs into `output.root`; several write each into `output.root/<score>/`.
    pub scores: Vec<ScoreKind>,
    /// RbA's options.
    pub rba: RbaSpec,
    pub anomaly_queries: Vec<i64>,
    /// A ranking written by `discover-queries` (path relative to the job file). When set, it
    /// replaces `anomaly_queries` ([`queries::resolve_anomaly_queries`]).
    pub anomaly_queries_file: Option<PathBuf>,
    /// Take the first N ranked queries of `anomaly_queries_file` instead of its `selected` list.
    pub anomaly_queries_top: Option<usize>,
    pub ground_queries: Vec<i64>,
    pub void_class: i64,
    /// Compared as the reference does: in float64 against the float32 class probability.
    pub rejection_threshold: f64,
    /// Compared in float32 (`pred > f32(border_threshold)`), as numpy does.
    pub border_threshold: f64,
    /// Blend weight; the second weight is `1 - lambda`, computed in float64, then both cast to float32.
    pub lambda: f64,
}

/// RbA's options (NazirNayal8/RbA `support.py`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RbaSpec {
    /// torchvision's `GaussianBlur(7, sigma=1)` on the RbA map; off in the published evaluation.
    pub smoothing: bool,
}

impl Default for Method {
    fn default() -> Self {
        Method {
            scores: vec![ScoreKind::Maskomaly],
            rba: RbaSpec::default(),
            anomaly_queries: vec![49, 31, 83, 32],
            anomaly_queries_file: None,
            anomaly_queries_top: None,
            ground_queries: vec![19, 24],
            void_class: 19,
            rejection_threshold: 0.7,
            border_threshold: 0.1,
            lambda: 0.6,
        }
    }
}

impl Method {
    /// Checks the Maskomaly rule's keys (query and class indices, thresholds, blend weight);
    /// `bad(key, message)` makes the error.
    fn validate_maskomaly(&self, bad: impl Fn(&str, String) -> JobError) -> Result<(), JobError> {
        if self.anomaly_queries.is_empty() {
            return Err(bad(
                "method.anomaly_queries",
                "needs at least one query index".into(),
            ));
        }
        for (key, list) in [
            ("method.anomaly_queries", &self.anomaly_queries),
            ("method.ground_queries", &self.ground_queries),
        ] {
            if let Some(q) = list.iter().find(|q| **q < 0) {
                return Err(bad(key, format!("query index {q} is negative")));
            }
        }
        if self.anomaly_queries_top == Some(0) {
            return Err(bad("method.anomaly_queries_top", "must be >= 1".into()));
        }
        if self.void_class < 0 {
            return Err(bad("method.void_class", "must be >= 0".into()));
        }
        for (key, v) in [
            ("method.rejection_threshold", self.rejection_threshold),
            ("method.border_threshold", self.border_threshold),
            ("method.lambda", self.lambda),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(key, format!("must lie in [0, 1], got {v}")));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `<root>/<relative dir>/<stem>.<ext>`
    Flat,
    /// `<root>/anomaly_p/<name>/<dataset>/<stem>.hdf5` (SegmentMeIfYouCan submission layout).
    Smiyc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum H5Dtype {
    Float32,
    /// SMIYC's storage type; written with gzip level 9.
    Float16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hdf5Spec {
    pub enabled: bool,
    pub dtype: H5Dtype,
}

impl Default for Hdf5Spec {
    fn default() -> Self {
        Hdf5Spec {
            enabled: true,
            dtype: H5Dtype::Float32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSpec {
    pub root: PathBuf,
    pub layout: Layout,
    /// HDF5 dataset `value`, H×W at input resolution.
    pub hdf5: Hdf5Spec,
    /// 16-bit greyscale PNG, `round(score × 65535)` of the score's fixed [0, 1] mapping
    /// (`scores::display`; the identity for Maskomaly).
    pub png: bool,
    /// `<stem>_heat.png`: JET colour map blended 50/50 with the image.
    pub heatmap: bool,
    /// `<stem>_segmentation.png`: Cityscapes trainIds from the reference's semantic inference.
    pub segmentation: bool,
    /// The Fishyscapes pair `<stem>_anomaly.npy` (float32) + `<stem>_segmentation.npy` (uint8 trainIds).
    pub npy: bool,
}

impl Default for OutputSpec {
    fn default() -> Self {
        OutputSpec {
            root: PathBuf::from("/output"),
            layout: Layout::Flat,
            hdf5: Hdf5Spec::default(),
            png: true,
            heatmap: false,
            segmentation: false,
            npy: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// CUDA when available, else CPU.
    Auto,
    Cpu,
    Cuda,
}

/// Numeric precision of the network; scoring always runs in float32.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Precision {
    /// float32 with TF32 disabled: the faithful default.
    #[default]
    Fp32,
    /// float32 weights, TF32 allowed for CUDA matmuls and convolutions (same as `fp32` on CPU).
    Tf32,
    /// PyTorch's own GPU defaults, which the reference ran with: cuDNN convolutions in TF32,
    /// matmuls in float32 (same as `fp32` on CPU).
    Pytorch,
    /// The network in bfloat16; outputs cast back to float32.
    Bf16,
    /// The network in float16; outputs cast back to float32.
    Fp16,
}

impl Precision {
    pub const ALL: [Precision; 5] = [
        Precision::Fp32,
        Precision::Tf32,
        Precision::Pytorch,
        Precision::Bf16,
        Precision::Fp16,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Precision::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!("unknown precision `{s}` (expected fp32, tf32, pytorch, bf16 or fp16)")
            })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Runtime {
    pub device: DeviceChoice,
    /// `fp32` (default), `tf32`, `pytorch`, `bf16` or `fp16`.
    pub precision: Precision,
    pub batch_size: usize,
    /// Decode threads; 0 = one per core, at most 8. Never more than the cores or the items to do.
    pub decode_workers: usize,
    /// Capacity of every channel between stages, in items.
    pub queue_depth: usize,
    /// Largest image accepted, in pixels (width × height from the file's header, checked before
    /// decoding). 64 megapixels holds every benchmark frame; one decoded item of that size takes
    /// about 0.2 GB of RGB, so peak memory stays bounded by the queues.
    pub max_pixels: u64,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            device: DeviceChoice::Auto,
            precision: Precision::Fp32,
            batch_size: 1,
            decode_workers: 2,
            queue_depth: 4,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

/// Default `runtime.max_pixels`: 64 megapixels.
pub const DEFAULT_MAX_PIXELS: u64 = 64_000_000;
/// Upper bounds on resource settings: beyond them a value is a mistake, not a configuration.
pub const MAX_BATCH_SIZE: usize = 256;
pub const MAX_QUEUE_DEPTH: usize = 1024;
/// Largest `preprocess.max_size`: a 16384² network input is already 3 GiB of float32.
pub const MAX_INPUT_SIZE: u32 = 16384;
pub const MAX_SIZE_DIVISIBILITY: u32 = 1024;

/// A job file that could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cannot read job file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("job file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("job file {path}{line}: `{key}` {message}", line = line_suffix(*.line))]
    Invalid {
        path: PathBuf,
        key: String,
        line: Option<usize>,
        message: String,
    },
}

impl Diagnose for JobError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Config
    }
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(", line {l}")).unwrap_or_default()
}

impl Job {
    /// Loads and validates a job file.
    pub fn load(path: &Path) -> Result<Job, JobError> {
        let text = std::fs::read_to_string(path).map_err(|source| JobError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Job::from_yaml(&text, path)
    }

    /// Parses and validates job text; `path` is only used in messages.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Job, JobError> {
        let job: Job = if text.trim().is_empty() {
            Job::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| JobError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
        };
        job.validate(Some(text), path)?;
        Ok(job)
    }

    /// Checks values that serde cannot: ranges, index sets, sizes.
    pub fn validate(&self, text: Option<&str>, path: &Path) -> Result<(), JobError> {
        let bad = |key: &str, message: String| JobError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            line: text.and_then(|t| locate_key(t, key)),
            message,
        };
        if self.name.is_empty() || self.name.contains(['/', '\\']) {
            return Err(bad(
                "name",
                "must be a non-empty name without slashes".into(),
            ));
        }
        if self
            .dataset
            .label_value
            .as_ref()
            .is_some_and(|v| v.is_empty())
        {
            return Err(bad(
                "dataset.label_value",
                "needs at least one label value".into(),
            ));
        }
        let p = &self.preprocess;
        if p.min_size == 0 {
            return Err(bad("preprocess.min_size", "must be > 0".into()));
        }
        if p.max_size < p.min_size {
            return Err(bad(
                "preprocess.max_size",
                format!("must be >= min_size ({})", p.min_size),
            ));
        }
        if p.max_size > MAX_INPUT_SIZE {
            return Err(bad(
                "preprocess.max_size",
                format!("must be <= {MAX_INPUT_SIZE}"),
            ));
        }
        if p.size_divisibility == 0 || p.size_divisibility > MAX_SIZE_DIVISIBILITY {
            return Err(bad(
                "preprocess.size_divisibility",
                format!("must lie in 1..={MAX_SIZE_DIVISIBILITY}"),
            ));
        }
        if let Some(i) = p
            .pixel_std
            .iter()
            .position(|s| !(*s > 0.0 && s.is_finite()))
        {
            return Err(bad(
                "preprocess.pixel_std",
                format!("entry {i} must be a positive number"),
            ));
        }
        let m = &self.method;
        if m.scores.is_empty() {
            return Err(bad(
                "method.scores",
                format!(
                    "needs at least one score (valid: {})",
                    ScoreKind::valid_names()
                ),
            ));
        }
        if let Some((i, k)) = m
            .scores
            .iter()
            .enumerate()
            .find(|(i, k)| m.scores[..*i].contains(k))
        {
            return Err(bad(
                "method.scores",
                format!(
                    "names `{k}` twice (entry {}); each score may appear once (valid: {})",
                    i + 1,
                    ScoreKind::valid_names()
                ),
            ));
        }
        // The rule's own keys matter only to a run that computes it.
        if m.scores.contains(&ScoreKind::Maskomaly) {
            m.validate_maskomaly(bad)?;
        }
        let o = &self.output;
        if !o.hdf5.enabled && !o.png && !o.heatmap && !o.segmentation && !o.npy {
            return Err(bad(
                "output",
                "enables no output (hdf5, png and heatmap are all off)".into(),
            ));
        }
        if o.layout == Layout::Smiyc && !o.hdf5.enabled {
            return Err(bad(
                "output.layout",
                "smiyc needs output.hdf5.enabled: true".into(),
            ));
        }
        let r = &self.runtime;
        for (key, v, max) in [
            ("runtime.batch_size", r.batch_size, MAX_BATCH_SIZE),
            ("runtime.queue_depth", r.queue_depth, MAX_QUEUE_DEPTH),
        ] {
            if !(1..=max).contains(&v) {
                return Err(bad(key, format!("must lie in 1..={max}, got {v}")));
            }
        }
        if r.max_pixels == 0 {
            return Err(bad("runtime.max_pixels", "must be >= 1".into()));
        }
        if let Some(h) = &self.checkpoint.sha256 {
            if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad(
                    "checkpoint.sha256",
                    "must be 64 hexadecimal digits".into(),
                ));
            }
        }
        Ok(())
    }

    /// Decode threads actually used for `items` items to do: the setting (0 = one per core, at
    /// most 8), never more than the cores or the items, at least one.
    pub fn decode_workers(&self, items: usize) -> usize {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let wanted = match self.runtime.decode_workers {
            0 => cores.min(8),
            n => n.min(cores),
        };
        wanted.min(items).max(1)
    }
}

/// Finds the 1-based line of a dotted key (`method.lambda`) in block-style YAML text.
/// Flow-style mappings (`method: {lambda: 2}`) resolve to the line of the innermost block key found.
fn locate_key(text: &str, dotted: &str) -> Option<usize> {
    let parts: Vec<&str> = dotted.split('.').collect();
    let mut found = None;
    let mut depth = 0usize;
    let mut parent_indent: isize = -1;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = (line.len() - trimmed.len()) as isize;
        if depth > 0 && indent <= parent_indent {
            // Left the block of the last matched parent.
            break;
        }
        if trimmed.starts_with(&format!("{}:", parts[depth])) && indent > parent_indent {
            found = Some(i + 1);
            depth += 1;
            if depth == parts.len() {
                return found;
            }
            // Flow mapping on the same line: report this line.
            if trimmed.contains('{') && trimmed.contains(&format!("{}:", parts[depth])) {
                return found;
            }
            parent_indent = indent;
        }
    }
    found
}

#[cfg(test)]
mod tests;
