//! TorchScript backend: a scripted or traced module that meets the contract in `model/mod.rs`.

use crate::model::{Backend, ModelError, RawOutput};
use std::path::Path;
use tch::{CModule, Device, IValue, Tensor};

pub struct TorchScriptModel {
    module: CModule,
    path: String,
    device: Device,
}

impl TorchScriptModel {
    pub fn load(path: &Path, device: Device) -> Result<Self, ModelError> {
        if !path.is_file() {
            return Err(ModelError::Missing {
                path: path.to_path_buf(),
            });
        }
        let mut module = CModule::load_on_device(path, device).map_err(|e| ModelError::Load {
            path: path.to_path_buf(),
            message: first_line(&e.to_string()),
        })?;
        module.set_eval();
        Ok(TorchScriptModel {
            module,
            path: path.display().to_string(),
            device,
        })
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

impl Backend for TorchScriptModel {
    fn forward(&self, x: &Tensor) -> Result<RawOutput, ModelError> {
        let out = self
            .module
            .forward_is(&[IValue::Tensor(x.shallow_clone())])
            .map_err(|e| ModelError::Forward(crate::device::error_line(&e.to_string())))?;
        let (a, b) = match out {
            IValue::Tuple(v) | IValue::GenericList(v) if v.len() == 2 => {
                let mut it = v.into_iter();
                (it.next().unwrap(), it.next().unwrap())
            }
            other => {
                return Err(ModelError::Contract(format!(
                    "forward returned {}, expected a (pred_logits, pred_masks) tuple",
                    ivalue_kind(&other)
                )))
            }
        };
        match (a, b) {
            (IValue::Tensor(pred_logits), IValue::Tensor(pred_masks)) => Ok(RawOutput {
                pred_logits,
                pred_masks,
            }),
            _ => Err(ModelError::Contract(
                "forward's tuple must hold two tensors".into(),
            )),
        }
    }

    fn describe(&self) -> String {
        format!("torchscript {}", self.path)
    }

    fn set_kind(&mut self, kind: tch::Kind) -> Result<(), ModelError> {
        self.module.to(self.device, kind, false);
        Ok(())
    }
}

fn ivalue_kind(v: &IValue) -> &'static str {
    match v {
        IValue::Tensor(_) => "a single tensor",
        IValue::Tuple(_) => "a tuple of the wrong length",
        IValue::GenericList(_) | IValue::TensorList(_) => "a list",
        IValue::GenericDict(_) => "a dict",
        _ => "a non-tensor value",
    }
}
