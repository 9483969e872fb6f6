//! Model directories on disk: `manifest.toml` + safetensors files, written and read back with
//! checks. A missing directory or file, a manifest that is not valid TOML or lacks a field, a
//! different format version, a truncated or corrupt safetensors file and a tensor of the wrong
//! shape are each a clear error naming the directory or file, never a panic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{nn, Device, Tensor};

use super::manifest::{Manifest, FORMAT_VERSION};

pub const MANIFEST: &str = "manifest.toml";
pub const PACKET_VAE: &str = "packet_vae.safetensors";
pub const PACKET_GMM: &str = "packet_gmm.safetensors";
pub const AGGREGATE: &str = "aggregate_gmm.safetensors";
pub const TCP_HEADS: &str = "tcp_heads.safetensors";
pub const PAYLOAD_SUPPORT: &str = "payload_support.safetensors";
/// Recurring time gaps; optional (models made before it have none).
pub const GAP_SUPPORT: &str = "gap_support.safetensors";
/// Per packet component, the gaps of its later packets; optional (models made before it have none).
pub const COMPONENT_GAPS: &str = "component_gaps.safetensors";

pub fn flow_lstm_file(kind: &str) -> String {
    format!("flow_lstm_{kind}.safetensors")
}

/// Why a model directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: no such model directory")]
    NoDirectory { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: cannot write: {msg}")]
    Write { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    Manifest { path: PathBuf, msg: String },
    #[error("{path}: model format {found}, this build reads format {FORMAT_VERSION}; retrain the model with this version (the manifest records the command)")]
    FormatVersion { path: PathBuf, found: u32 },
    #[error("{path}: not a valid safetensors file (truncated or corrupt): {msg}")]
    Safetensors { path: PathBuf, msg: String },
    #[error("{path}: tensor `{name}`: {msg}")]
    Tensor { path: PathBuf, name: String, msg: String },
    #[error("{path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
}

/// Reads and checks the manifest (format version first).
pub fn read_manifest(dir: &Path) -> Result<Manifest, ModelError> {
    if !dir.is_dir() {
        return Err(ModelError::NoDirectory { path: dir.to_path_buf() });
    }
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|source| ModelError::Read { path: path.clone(), source })?;
    // The version is checked before the rest, so an old or new model says so plainly.
    #[derive(serde::Deserialize)]
    struct Version {
        format_version: u32,
    }
    let v: Version = toml::from_str(&text).map_err(|e| manifest_err(&path, &text, e))?;
    if v.format_version != FORMAT_VERSION {
        return Err(ModelError::FormatVersion { path, found: v.format_version });
    }
    toml::from_str(&text).map_err(|e| manifest_err(&path, &text, e))
}

fn manifest_err(path: &Path, text: &str, e: toml::de::Error) -> ModelError {
    let at = e.span().map(|s| crate::text_position::line_column(text, s.start));
    let msg = match at {
        Some((l, c)) => format!("{l}:{c}: {}", e.message()),
        None => e.message().to_string(),
    };
    ModelError::Manifest { path: path.to_path_buf(), msg }
}

pub fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), ModelError> {
    let path = dir.join(MANIFEST);
    let text = toml::to_string_pretty(m).map_err(|e| ModelError::Write { path: path.clone(), msg: e.to_string() })?;
    let header = "# trafgen model manifest: how this model was made and how to read it.\n# Retrain with the `command` below (same inputs, seed and device give the same model on the same kind of CPU).\n\n";
    std::fs::write(&path, format!("{header}{text}")).map_err(|e| ModelError::Write { path, msg: e.to_string() })
}

/// Writes named tensors (moved to the CPU).
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), ModelError> {
    let cpu: Vec<(String, Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t.to_device(Device::Cpu).contiguous())).collect();
    Tensor::write_safetensors(&cpu, path).map_err(|e| ModelError::Write { path: path.to_path_buf(), msg: e.to_string() })
}

/// Reads a safetensors file into a name → tensor map, after checking the file as a whole.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>, ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Read { path: path.to_path_buf(), source })?;
    // safetensors validates the header and every tensor's byte range before tch sees it
    safetensors::SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Safetensors { path: path.to_path_buf(), msg: e.to_string() })?;
    let v = Tensor::read_safetensors(path).map_err(|e| ModelError::Safetensors { path: path.to_path_buf(), msg: e.to_string() })?;
    Ok(v.into_iter().collect())
}

/// Checks that the file at `path` is large enough for the `parameters` the manifest's
/// `what` implies (at least one byte each, in any dtype), before layers of that size are built:
/// a manifest that asks for more (a typo, a corrupt number) is an error naming both, not an
/// allocation of any size. `None`: the count overflowed.
pub fn check_size(path: &Path, what: &str, parameters: Option<u64>) -> Result<(), ModelError> {
    let bytes = std::fs::metadata(path).map_err(|source| ModelError::Read { path: path.to_path_buf(), source })?.len();
    match parameters {
        Some(p) if p <= bytes => Ok(()),
        p => Err(ModelError::Invalid {
            path: path.to_path_buf(),
            msg: format!(
                "the manifest's {what} needs {} parameters, more than this file's {bytes} bytes can hold (the file is truncated or corrupt, or the manifest does not describe it)",
                p.map_or("more than 2^64".to_string(), |p| p.to_string())
            ),
        }),
    }
}

/// Saves a VarStore's variables.
pub fn save_varstore(path: &Path, vs: &nn::VarStore) -> Result<(), ModelError> {
    let named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    write_tensors(path, &named)
}

/// Loads a file into a VarStore whose variables were created with the expected shapes: every
/// variable must be present with exactly its shape.
pub fn load_varstore(path: &Path, vs: &mut nn::VarStore) -> Result<(), ModelError> {
    let file = read_tensors(path)?;
    let vars = vs.variables();
    for (name, var) in &vars {
        let t = file.get(name).ok_or_else(|| ModelError::Tensor { path: path.to_path_buf(), name: name.clone(), msg: "missing".into() })?;
        if t.size() != var.size() {
            return Err(ModelError::Tensor {
                path: path.to_path_buf(),
                name: name.clone(),
                msg: format!("shape {:?}, the manifest implies {:?}", t.size(), var.size()),
            });
        }
    }
    tch::no_grad(|| {
        for (name, var) in vars {
            let mut v = var.shallow_clone();
            v.copy_(&file[&name].to_kind(v.kind()).to_device(v.device()));
        }
    });
    Ok(())
}
