//! The native Mask2Former backend: the network of `facebookresearch/Mask2Former:
//! mask2former/maskformer_model.py` (`MaskFormer` minus pre- and post-processing: the input is the
//! normalised, padded batch) built in a `VarStore`, weights copied from a checkpoint after a strict
//! inventory check ([`crate::model::weights::checkpoint`]).
//!
//! Parameter names follow upstream's `state_dict()`: `backbone.*`, `sem_seg_head.pixel_decoder.*`,
//! `sem_seg_head.predictor.*`.

use crate::job::{CheckpointFormat, Job};
use crate::model::config::{ArchSummary, Config, DEFAULT_PRESET};
use crate::model::network::layers::MATMUL_GROUP;
use crate::model::network::{Mask2Former, Trace};
use crate::model::precision::{self, Compute};
use crate::model::weights::checkpoint::{self, FileFormat};
use crate::model::weights::fetch;
use crate::model::{Backend, ModelError, RawOutput};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

/// The architecture to build for `file`: an HF `config.json` beside the weights decides unless the
/// job names a preset, and a named preset must agree with it; otherwise the named preset, else
/// [`DEFAULT_PRESET`]. Returns the config and where it came from.
pub fn architecture(
    preset: Option<&str>,
    hf: bool,
    file: &Path,
) -> Result<(Config, String), ModelError> {
    let beside = if hf {
        checkpoint::hf_config_beside(file)
    } else {
        None
    };
    match (preset, beside) {
        (None, Some(c)) => Ok((Config::from_hf_json(&c)?, c.display().to_string())),
        (Some(p), Some(c)) => {
            let named = Config::preset(p)?;
            let described = Config::from_hf_json(&c)?;
            if named != described {
                return Err(ModelError::Config(format!(
                    "`model.preset` {p} is {}, but {} describes {}{}; remove `model.preset` to use config.json",
                    ArchSummary::of(&named),
                    c.display(),
                    ArchSummary::of(&described),
                    differing_keys(&named, &described)
                )));
            }
            Ok((named, p.to_string()))
        }
        (p, None) => {
            let p = p.unwrap_or(DEFAULT_PRESET);
            Ok((Config::preset(p)?, p.to_string()))
        }
    }
}

/// ` (differs in a, b)`: the config keys whose values differ, for the one-line error.
fn differing_keys(a: &Config, b: &Config) -> String {
    fn walk(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                for (k, v) in x {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    match y.get(k) {
                        Some(w) => walk(&key, v, w, out),
                        None => out.push(key),
                    }
                }
            }
            _ if a != b => out.push(prefix.to_string()),
            _ => {}
        }
    }
    let (Ok(x), Ok(y)) = (serde_json::to_value(a), serde_json::to_value(b)) else {
        return String::new();
    };
    let mut keys = Vec::new();
    walk("", &x, &y, &mut keys);
    if keys.is_empty() {
        String::new()
    } else {
        format!(" (differs in {})", keys.join(", "))
    }
}

/// The native backend.
pub struct NativeModel {
    vs: nn::VarStore,
    model: Mask2Former,
    description: String,
    /// How matrix products run (float32 unless converted); the input is always float32.
    compute: Compute,
}

impl std::fmt::Debug for NativeModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl NativeModel {
    /// Builds the model a job names and loads its checkpoint (fetching it first if needed).
    pub fn load(job: &Job, device: Device) -> Result<Self, ModelError> {
        let ck = &job.checkpoint;
        let hf = match ck.format {
            CheckpointFormat::Hf => true,
            CheckpointFormat::Detectron2 => false,
            CheckpointFormat::Torchscript | CheckpointFormat::Random => {
                return Err(ModelError::Unsupported(format!(
                    "{:?} is not a native file",
                    ck.format
                )))
            }
        };
        let path = fetch::resolve(&ck.path, ck.effective_url(), ck.sha256.as_deref())?;
        let (file, format) = checkpoint::resolve_file(&path, hf)?;
        let (cfg, arch) = architecture(job.model.preset.as_deref(), hf, &file)?;
        Self::from_file(&file, format, &cfg, &arch, device)
    }

    /// Builds `cfg` on `device` and loads `file` into it, strictly.
    pub fn from_file(
        file: &Path,
        format: FileFormat,
        cfg: &Config,
        arch: &str,
        device: Device,
    ) -> Result<Self, ModelError> {
        cfg.validate().map_err(ModelError::Config)?;
        let mut vs = nn::VarStore::new(device);
        let model = Mask2Former::new(&vs.root(), cfg);
        let inv = checkpoint::Inventory::of(&vs, cfg);
        let raw = checkpoint::read_file(file, format)?;
        let (mut report, tensors) = checkpoint::match_checkpoint(raw, &inv, arch);
        report.model_arch = ArchSummary::of(cfg);
        if !report.is_ok() {
            return Err(ModelError::Mismatch {
                path: file.to_path_buf(),
                report: Box::new(report),
            });
        }
        log::debug!("{report}");
        let mut vars = vs.variables();
        tch::no_grad(|| -> Result<(), ModelError> {
            for (name, src) in &tensors {
                // Shapes and dtypes were checked above; a failure here is a device problem.
                if let Some(var) = vars.get_mut(name) {
                    var.f_copy_(src).map_err(|e| ModelError::Load {
                        path: file.to_path_buf(),
                        message: format!("copying {name}: {e}"),
                    })?;
                }
            }
            Ok(())
        })?;
        vs.freeze();
        let description = format!(
            "native mask2former ({arch}, {} parameters) from {} ({format})",
            report.model_parameters,
            file.display()
        );
        Ok(NativeModel {
            vs,
            model,
            description,
            compute: Compute::Float32,
        })
    }

    /// A model with random weights (no checkpoint): for smoke tests and benchmarks of the graph.
    pub fn random(cfg: &Config, device: Device) -> Result<Self, ModelError> {
        cfg.validate().map_err(ModelError::Config)?;
        let mut vs = nn::VarStore::new(device);
        let model = Mask2Former::new(&vs.root(), cfg);
        vs.freeze();
        Ok(NativeModel {
            vs,
            model,
            description: "native mask2former (random weights)".into(),
            compute: Compute::Float32,
        })
    }

    pub fn set_description(&mut self, d: String) {
        self.description = d;
    }

    pub fn model(&self) -> &Mask2Former {
        &self.model
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// How this model's matrix products run; a forward pass outside [`NativeModel::trace`] (module by
    /// module) must run under `precision::enter(model.compute())`.
    pub fn compute(&self) -> Compute {
        self.compute
    }

    /// Converts the matrix-product weights ([`MATMUL_GROUP`]) for `c`: to its dtype for `Reduced`,
    /// rounded to it but kept float32 for `Rounded`, back to float32 for `Float32` (bits lost by an
    /// earlier rounding stay lost). Norms, embeddings and tables stay float32.
    pub fn set_compute(&mut self, c: Compute) {
        let vars = self.vs.variables_.lock().unwrap_or_else(|e| e.into_inner());
        tch::no_grad(|| {
            for v in vars.trainable_variables.iter() {
                if v.group != MATMUL_GROUP {
                    continue;
                }
                let mut t = v.tensor.shallow_clone();
                let new = match c {
                    Compute::Float32 => t.to_kind(Kind::Float),
                    Compute::Reduced(k) => t.to_kind(k),
                    Compute::Rounded(k) => t.to_kind(k).to_kind(Kind::Float),
                };
                t.set_data(&new);
            }
        });
        self.compute = c;
    }

    /// Runs the whole network with input checks, turning a libtorch failure into an error.
    pub fn trace(&self, x: &Tensor) -> Result<Trace, ModelError> {
        self.model.check_input(x, Kind::Float)?;
        let x = x.to_device(self.vs.device());
        let _c = precision::enter(self.compute);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.model.trace(&x))).map_err(
            |p| {
                let msg = p
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| p.downcast_ref::<&str>().copied())
                    .unwrap_or("libtorch failed");
                ModelError::Forward(msg.lines().next().unwrap_or(msg).to_string())
            },
        )
    }
}

impl Backend for NativeModel {
    fn forward(&self, x: &Tensor) -> Result<RawOutput, ModelError> {
        let mut t = self.trace(x)?;
        let last = t
            .predictions
            .pop()
            .ok_or_else(|| ModelError::Forward("no prediction head ran".into()))?;
        Ok(RawOutput {
            pred_logits: last.class,
            pred_masks: last.mask,
        })
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    /// Mixed precision (see [`precision`]): matrix products in `kind`, the rest in float32.
    fn set_kind(&mut self, kind: Kind) -> Result<(), ModelError> {
        if !matches!(kind, Kind::Float | Kind::BFloat16 | Kind::Half) {
            return Err(ModelError::Unsupported(format!("native model in {kind:?}")));
        }
        let c = precision::compute_for(kind, self.vs.device());
        if let Compute::Rounded(k) = c {
            log::info!(
                "this CPU has no {k:?} matrix instructions (AVX512 / AMX): matrix products round \
                 to {k:?} and run in float32 kernels (the same numbers at float32 speed)"
            );
        }
        self.set_compute(c);
        Ok(())
    }

    fn float32_io(&self) -> bool {
        true
    }
}

/// Path of the test fixtures (also used by integration tests).
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model")
}

#[cfg(test)]
mod tests {
    //! Parity with HF transformers' Mask2Former (eager attention) on the tiny fixture made by
    //! `python3 scripts/make_model_fixtures.py tests/fixtures/model` (see tests/fixtures/README.md).
    use super::*;
    use crate::job::CheckpointSpec;
    use std::collections::HashMap;

    /// Largest |error| as a fraction of the reference's largest magnitude: float32 through a few
    /// dozen layers, each adding hundreds of products in an order that depends on the library and
    /// on libtorch's kernel set. Measured: 1.3e-6 with the scalar and AVX2 kernels.
    const TOL: f64 = 1e-4;

    fn reference() -> HashMap<String, Tensor> {
        Tensor::read_safetensors(fixture_dir().join("tiny_reference.safetensors"))
            .unwrap()
            .into_iter()
            .collect()
    }

    /// Max abs error and max error relative to the reference's largest magnitude.
    fn errors(got: &Tensor, want: &Tensor) -> (f64, f64) {
        assert_eq!(got.size(), want.size());
        let abs = (got - want).abs().max().double_value(&[]);
        let scale = want.abs().max().double_value(&[]).max(1e-12);
        (abs, abs / scale)
    }

    fn check(name: &str, got: &Tensor, want: &Tensor) -> f64 {
        let (abs, rel) = errors(got, want);
        // Element-wise relative error, with values below 1e-3 of the largest taken as 1e-3 of it.
        let floor = want.abs().max().double_value(&[]) * 1e-3;
        let elem = ((got - want).abs() / want.abs().clamp_min(floor))
            .max()
            .double_value(&[]);
        println!("{name:32} max abs {abs:.3e}  max rel {rel:.3e}  element-wise rel {elem:.3e}");
        assert!(rel <= TOL, "{name}: relative error {rel:.3e} > {TOL:e}");
        rel
    }

    fn job(format: CheckpointFormat, path: PathBuf, preset: Option<&str>) -> Job {
        let mut j = Job::default();
        j.model.preset = preset.map(str::to_string);
        j.checkpoint = CheckpointSpec {
            format,
            path,
            sha256: None,
            url: None,
        };
        j
    }

    fn parity(model: &NativeModel, label: &str) {
        let r = reference();
        let _g = tch::no_grad_guard();
        let out = model.forward(&r["input"]).unwrap();
        crate::model::check_outputs(&out, 1).unwrap();
        check(
            &format!("{label} pred_logits"),
            &out.pred_logits,
            &r["pred_logits"],
        );
        check(
            &format!("{label} pred_masks"),
            &out.pred_masks,
            &r["pred_masks"],
        );
    }

    #[test]
    fn parity_detectron2_pickle() {
        let j = job(
            CheckpointFormat::Detectron2,
            fixture_dir().join("tiny_d2.pkl"),
            Some("tiny"),
        );
        parity(&NativeModel::load(&j, Device::Cpu).unwrap(), "d2 pkl");
    }

    #[test]
    fn parity_hf_folder_with_config_json() {
        let j = job(CheckpointFormat::Hf, fixture_dir().join("tiny_hf"), None);
        let m = NativeModel::load(&j, Device::Cpu).unwrap();
        assert!(m.describe().contains("config.json"));
        parity(&m, "hf");
    }

    /// A job that names only the format and the path: the HF config.json decides the architecture
    /// (here the tiny one, not the default Swin-L preset).
    #[test]
    fn hf_folder_needs_only_format_and_path() {
        let mut j = Job::default();
        j.checkpoint.format = CheckpointFormat::Hf;
        j.checkpoint.path = fixture_dir().join("tiny_hf");
        j.checkpoint.url = None;
        assert_eq!(j.model.preset, None);
        let m = NativeModel::load(&j, Device::Cpu).unwrap();
        assert!(m.describe().contains("config.json"), "{}", m.describe());
        parity(&m, "hf, job without preset");
    }

    #[test]
    fn named_preset_contradicting_config_json_is_one_line() {
        let j = job(
            CheckpointFormat::Hf,
            fixture_dir().join("tiny_hf"),
            Some("mask2former_swin_large_cityscapes_semantic"),
        );
        let e = NativeModel::load(&j, Device::Cpu).unwrap_err().to_string();
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.contains("a Swin-L with 100 queries and 19 classes"),
            "{e}"
        );
        assert!(
            e.contains("config.json describes a Swin (embedding 16"),
            "{e}"
        );
        assert!(e.contains("remove `model.preset`"), "{e}");
        // The preset that agrees with config.json is accepted.
        let j = job(
            CheckpointFormat::Hf,
            fixture_dir().join("tiny_hf"),
            Some("tiny"),
        );
        NativeModel::load(&j, Device::Cpu).unwrap();
    }

    #[test]
    fn mismatch_report_starts_with_a_diagnosis() {
        for (format, path) in [
            (
                CheckpointFormat::Detectron2,
                fixture_dir().join("tiny_d2.pkl"),
            ),
            (
                CheckpointFormat::Hf,
                fixture_dir().join("tiny_hf/model.safetensors"),
            ),
        ] {
            // No config.json beside a lone weights file copy: the default preset is built.
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join(path.file_name().unwrap());
            std::fs::copy(&path, &file).unwrap();
            let e = NativeModel::load(&job(format, file, None), Device::Cpu)
                .unwrap_err()
                .to_string();
            let first = e.lines().next().unwrap();
            assert!(
                first.contains("the file holds a Swin (embedding 16, depths [2, 2, 2, 2]) with 8 queries and 4 classes; the job asks for a Swin-L with 100 queries and 19 classes"),
                "{format:?}: {e}"
            );
        }
    }

    /// The names transformers 4.x wrote (`attention.self.query`, `intermediate.dense`, no `swin.`
    /// level, `relative_position_index` buffers saved), made here by renaming the 5.x fixture.
    #[test]
    fn parity_hf_transformers_4_names() {
        let raw = checkpoint::read_file(
            &fixture_dir().join("tiny_hf/model.safetensors"),
            FileFormat::HfSafetensors,
        )
        .unwrap();
        let mut v4: Vec<(String, Tensor)> = Vec::new();
        for (name, t) in raw.tensors {
            if name.contains(".swin.layernorm.") {
                continue; // 4.x's SwinBackbone has no final norm
            }
            let mut n = name.replace("encoder.swin.", "encoder.");
            if n.contains(".blocks.") {
                for (a, b) in [
                    ("attention.q_proj", "attention.self.query"),
                    ("attention.k_proj", "attention.self.key"),
                    ("attention.v_proj", "attention.self.value"),
                    ("attention.o_proj", "attention.output.dense"),
                    (
                        "attention.relative_position_bias.relative_position_bias_table",
                        "attention.self.relative_position_bias_table",
                    ),
                    ("mlp.fc1", "intermediate.dense"),
                    ("mlp.fc2", "output.dense"),
                ] {
                    n = n.replace(a, b);
                }
                if n.ends_with("relative_position_bias_table") {
                    let idx = n.replace("relative_position_bias_table", "relative_position_index");
                    v4.push((
                        idx,
                        crate::model::network::swin::relative_position_index(4, Device::Cpu),
                    ));
                }
            }
            v4.push((n, t));
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            fixture_dir().join("tiny_hf/config.json"),
            dir.path().join("config.json"),
        )
        .unwrap();
        Tensor::write_safetensors(&v4, dir.path().join("model.safetensors")).unwrap();
        let rep = crate::model::inspect_with(dir.path(), true, None).unwrap();
        assert!(rep.is_ok(), "{rep}");
        assert_eq!(
            rep.unused
                .iter()
                .filter(|(_, r)| r.contains("recomputed"))
                .count(),
            8,
            "{rep}"
        );
        parity(
            &NativeModel::load(
                &job(CheckpointFormat::Hf, dir.path().to_path_buf(), None),
                Device::Cpu,
            )
            .unwrap(),
            "hf 4.x names",
        );
    }

    /// detectron2 names in safetensors: written here from the pickle (the same bytes).
    #[test]
    fn parity_detectron2_safetensors() {
        let raw = checkpoint::read_file(
            &fixture_dir().join("tiny_d2.pkl"),
            FileFormat::Detectron2Pickle,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tiny_d2.safetensors");
        Tensor::write_safetensors(&raw.tensors, &file).unwrap();
        let j = job(CheckpointFormat::Detectron2, file, Some("tiny"));
        parity(
            &NativeModel::load(&j, Device::Cpu).unwrap(),
            "d2 safetensors",
        );
    }

    /// Old-format detectron2 names (pixel decoder keys directly under `sem_seg_head.`,
    /// `static_query`) are normalised as upstream's `_load_from_state_dict` does.
    #[test]
    fn legacy_detectron2_names_load() {
        let raw = checkpoint::read_file(
            &fixture_dir().join("tiny_d2.pkl"),
            FileFormat::Detectron2Pickle,
        )
        .unwrap();
        let legacy: Vec<(String, Tensor)> = raw
            .tensors
            .into_iter()
            .map(|(n, t)| {
                (
                    n.replace("sem_seg_head.pixel_decoder.", "sem_seg_head.")
                        .replace("query_feat", "static_query"),
                    t,
                )
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("legacy.safetensors");
        Tensor::write_safetensors(&legacy, &file).unwrap();
        let rep = crate::model::inspect_with(&file, false, Some("tiny")).unwrap();
        assert!(rep.is_ok(), "{rep}");
        let renamed = |a: &str, b: &str| rep.renamed.iter().any(|(x, y)| x == a && y == b);
        assert!(renamed(
            "sem_seg_head.predictor.static_query.weight",
            "sem_seg_head.predictor.query_feat.weight"
        ));
        assert!(renamed(
            "sem_seg_head.adapter_1.weight",
            "sem_seg_head.pixel_decoder.adapter_1.weight"
        ));
        assert!(rep.to_string().contains("legacy names normalised"), "{rep}");
        let j = job(CheckpointFormat::Detectron2, file, Some("tiny"));
        parity(
            &NativeModel::load(&j, Device::Cpu).unwrap(),
            "d2 legacy names",
        );
    }

    /// Module by module, each fed the reference's own inputs, so an error points at one module.
    #[test]
    fn layer_level_parity() {
        let r = reference();
        let j = job(
            CheckpointFormat::Detectron2,
            fixture_dir().join("tiny_d2.pkl"),
            Some("tiny"),
        );
        let m = NativeModel::load(&j, Device::Cpu).unwrap();
        let _g = tch::no_grad_guard();
        let model = m.model();
        // Swin backbone (window attention with padding and shifts, patch merging).
        let feats = model.backbone.forward(&r["input"]);
        for (i, f) in feats.iter().enumerate() {
            check(
                &format!("backbone.res{}", i + 2),
                f,
                &r[&format!("backbone.res{}", i + 2)],
            );
        }
        // Pixel decoder (MSDeformAttn encoder + FPN level) on the reference features.
        let ref_feats: Vec<Tensor> = (2..6)
            .map(|i| r[&format!("backbone.res{i}")].shallow_clone())
            .collect();
        let pix = model.pixel_decoder.forward(&ref_feats);
        check(
            "pixel_decoder.mask_features",
            &pix.mask_features,
            &r["pixel_decoder.mask_features"],
        );
        for (i, f) in pix.multi_scale_features.iter().enumerate() {
            check(
                &format!("pixel_decoder.ms{i}"),
                f,
                &r[&format!("pixel_decoder.ms{i}")],
            );
        }
        // Transformer decoder on the reference pixel-decoder outputs: every prediction head.
        let ms: Vec<Tensor> = (0..3)
            .map(|i| r[&format!("pixel_decoder.ms{i}")].shallow_clone())
            .collect();
        let preds = model
            .predictor
            .forward(&ms, &r["pixel_decoder.mask_features"]);
        assert_eq!(preds.len(), 4);
        for (i, p) in preds.iter().enumerate() {
            check(
                &format!("decoder.logits{i}"),
                &p.class,
                &r[&format!("decoder.logits{i}")],
            );
            check(
                &format!("decoder.masks{i}"),
                &p.mask,
                &r[&format!("decoder.masks{i}")],
            );
        }
    }

    /// The forward with the shape caches is bit for bit the forward that rebuilds every
    /// shape-only tensor, on a first and a repeated shape, with window padding and a batch of two;
    /// a repeated shape builds nothing.
    #[test]
    fn shape_caches_keep_the_forward_bit_identical() {
        tch::manual_seed(7);
        let m = NativeModel::random(&Config::tiny(), Device::Cpu).unwrap();
        let _g = tch::no_grad_guard();
        let net = m.model();
        let builds = || {
            [
                net.backbone.layout_cache().builds(),
                net.pixel_decoder.constant_cache().builds(),
            ]
        };
        for x in [
            Tensor::randn([1, 3, 72, 104], (Kind::Float, Device::Cpu)),
            Tensor::randn([2, 3, 64, 96], (Kind::Float, Device::Cpu)),
        ] {
            crate::model::network::shape_cache::set_enabled(false);
            let want = m.forward(&x).unwrap();
            crate::model::network::shape_cache::set_enabled(true);
            let first = m.forward(&x).unwrap();
            let before = builds();
            let again = m.forward(&x).unwrap();
            assert_eq!(builds(), before, "a repeated shape rebuilds");
            for got in [&first, &again] {
                assert!(got.pred_logits.equal(&want.pred_logits), "{:?}", x.size());
                assert!(got.pred_masks.equal(&want.pred_masks), "{:?}", x.size());
            }
        }
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let m = NativeModel::random(&Config::tiny(), Device::Cpu).unwrap();
        let _g = tch::no_grad_guard();
        for bad in [
            Tensor::zeros([1, 4, 32, 32], (Kind::Float, Device::Cpu)),
            Tensor::zeros([3, 32, 32], (Kind::Float, Device::Cpu)),
            Tensor::zeros([1, 3, 32, 32], (Kind::Double, Device::Cpu)),
            Tensor::zeros([1, 3, 0, 32], (Kind::Float, Device::Cpu)),
        ] {
            assert!(
                matches!(m.forward(&bad), Err(ModelError::Forward(_))),
                "{:?}",
                bad.size()
            );
        }
    }

    #[test]
    fn load_errors_are_readable() {
        let dir = tempfile::tempdir().unwrap();
        // Truncated pickle.
        let bytes = std::fs::read(fixture_dir().join("tiny_d2.pkl")).unwrap();
        let cut = dir.path().join("cut.pkl");
        std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
        let e = NativeModel::load(
            &job(CheckpointFormat::Detectron2, cut, Some("tiny")),
            Device::Cpu,
        )
        .unwrap_err();
        assert!(e.to_string().contains("ends early"), "{e}");
        // Not a pickle at all.
        let junk = dir.path().join("junk.pkl");
        std::fs::write(&junk, b"PK\x03\x04 this is a zip").unwrap();
        let e = NativeModel::load(
            &job(CheckpointFormat::Detectron2, junk, Some("tiny")),
            Device::Cpu,
        )
        .unwrap_err();
        assert!(e.to_string().contains("cannot load checkpoint"), "{e}");
        // Corrupt safetensors (a header length beyond the file).
        let bad = dir.path().join("bad.safetensors");
        std::fs::write(&bad, [0xffu8, 0xff, 0xff, 0xff, 0, 0, 0, 0, b'{']).unwrap();
        let e = NativeModel::load(
            &job(CheckpointFormat::Detectron2, bad, Some("tiny")),
            Device::Cpu,
        )
        .unwrap_err();
        assert!(matches!(e, ModelError::Load { .. }), "{e}");
        // The right file for another architecture: a mismatch report, not a panic.
        let j = job(
            CheckpointFormat::Detectron2,
            fixture_dir().join("tiny_d2.pkl"),
            Some("mask2former_swin_large_cityscapes_semantic"),
        );
        let e = NativeModel::load(&j, Device::Cpu).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("SHAPE differs") && text.contains("NOT LOADABLE"),
            "{text}"
        );
        // Missing file, no URL.
        let e = NativeModel::load(
            &job(CheckpointFormat::Hf, dir.path().join("none"), None),
            Device::Cpu,
        )
        .unwrap_err();
        assert!(matches!(e, ModelError::Missing { .. }), "{e}");
    }

    /// The real model-zoo file (or `scripts/make_swin_large_pkl.py`'s random stand-in) through the
    /// whole load path at full size: `MASKOMALY_SWINL_CHECKPOINT=/path/model_final_17c1ee.pkl`.
    #[test]
    #[ignore = "needs an ~800 MB Swin-L checkpoint named by MASKOMALY_SWINL_CHECKPOINT"]
    fn swin_large_checkpoint_loads() {
        let Some(path) = std::env::var_os("MASKOMALY_SWINL_CHECKPOINT") else {
            panic!("set MASKOMALY_SWINL_CHECKPOINT to a Swin-L detectron2 checkpoint");
        };
        let t0 = std::time::Instant::now();
        let rep = crate::model::inspect_with(
            Path::new(&path),
            false,
            Some("mask2former_swin_large_cityscapes_semantic"),
        )
        .unwrap();
        println!("{rep}\ninspect: {:.1} s", t0.elapsed().as_secs_f64());
        assert!(rep.is_ok());
        let t0 = std::time::Instant::now();
        let j = job(
            CheckpointFormat::Detectron2,
            PathBuf::from(&path),
            Some("mask2former_swin_large_cityscapes_semantic"),
        );
        let m = NativeModel::load(&j, Device::Cpu).unwrap();
        println!("load: {:.1} s", t0.elapsed().as_secs_f64());
        let _g = tch::no_grad_guard();
        let out = m
            .forward(&Tensor::randn([1, 3, 64, 128], (Kind::Float, Device::Cpu)))
            .unwrap();
        assert_eq!(out.pred_logits.size(), vec![1, 100, 20]);
        assert_eq!(out.pred_masks.size(), vec![1, 100, 16, 32]);
        assert!(bool::try_from(out.pred_masks.isfinite().all()).unwrap());
    }

    /// The published architecture: inventory of docs/method.md §9.4 and one forward on a small input.
    #[test]
    fn swin_large_preset_inventory_and_forward() {
        let cfg = Config::mask2former_swin_large_cityscapes_semantic();
        let m = NativeModel::random(&cfg, Device::Cpu).unwrap();
        let vars = m.var_store().variables();
        let floats: i64 = vars.values().map(|t| t.numel() as i64).sum();
        let buffers = checkpoint::inventory_buffers(&cfg).len();
        println!(
            "Swin-L: {} parameter tensors + {buffers} index buffers, {floats} float parameters",
            vars.len()
        );
        assert_eq!(vars.len() + buffers, 649);
        assert_eq!(floats, 215_455_112);
        let backbone: i64 = vars
            .iter()
            .filter(|(k, _)| k.starts_with("backbone."))
            .map(|(_, t)| t.numel() as i64)
            .sum();
        assert_eq!(backbone, 195_201_204);
        let _g = tch::no_grad_guard();
        let x = Tensor::randn([1, 3, 64, 64], (Kind::Float, Device::Cpu));
        let out = m.forward(&x).unwrap();
        assert_eq!(out.pred_logits.size(), vec![1, 100, 20]);
        assert_eq!(out.pred_masks.size(), vec![1, 100, 16, 16]);
        assert!(bool::try_from(out.pred_masks.isfinite().all()).unwrap());
    }
}
