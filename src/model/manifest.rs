//! `manifest.toml`: what a model directory holds and how it was made.
//!
//! Format version, the feature list and its scaling, every hyper-parameter, the flow-kind mix,
//! the training inputs (path, sha256, bytes, packets, licence), the exact command line, seed,
//! device, trafgen version and a training summary. Loading checks the format version first.

use super::dataset::{InputFile, PACKET_FEATURES};
use crate::flow::FlowKind;
use super::flow_lstm::LstmShape;
use super::scaler::Scaler;
use super::vae::{LossCurve, VaeShape};

/// The model format this build writes and reads.
/// 2: adds the TCP handshake/teardown heads (`tcp_heads.safetensors`).
/// 3: adds the recurring payload lengths (`payload_support.safetensors`).
/// 4: the packet vector's first feature is `log_payload` (log10 of 1 + the transport payload),
///    not `log_size` (log10 of the IP total length): a decoded payload no longer depends on
///    how the decoder rounds the header length. The aggregate model may hold
///    `mid_stream_timestamps`.
pub const FORMAT_VERSION: u32 = 4;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub trafgen_version: String,
    /// The command that trained it, argument by argument.
    pub command: Vec<String>,
    pub seed: u64,
    pub device: String,
    pub inputs: Vec<InputFile>,
    pub features: Features,
    pub packet: PacketLevel,
    pub flow: FlowLevel,
    pub aggregate: AggregateLevel,
    pub training: TrainingSummary,
}

impl Manifest {
    /// Checks what the loader builds from before it builds anything: the feature list and its
    /// scaler against `dim` (this build's packet features), every layer dimension ≥ 1, the
    /// VAE's input, and the flow kinds. Sizes against the files are checked by the loader
    /// ([`super::Model::load`]). The error names the field.
    pub fn check(&self, dim: usize) -> Result<(), String> {
        if self.features.names.len() != dim {
            return Err(format!("{} packet features, this build uses {dim}", self.features.names.len()));
        }
        if let Some((i, (have, want))) = self.features.names.iter().zip(PACKET_FEATURES).enumerate().find(|(_, (a, b))| a.as_str() != *b) {
            return Err(format!("`features.names[{i}]` is \"{have}\", this build's feature {i} is \"{want}\""));
        }
        self.features.scaler.check(dim)?;
        if self.packet.vae.input != dim as i64 {
            return Err(format!("`packet.vae.input` is {}, this build has {dim} features", self.packet.vae.input));
        }
        let vae = self.packet.vae;
        let lstm = self.flow.lstm;
        for (field, v) in [
            ("packet.vae.hidden", vae.hidden),
            ("packet.vae.latent", vae.latent),
            ("flow.lstm.k", lstm.k),
            ("flow.lstm.embed", lstm.embed),
            ("flow.lstm.hidden", lstm.hidden),
            ("flow.lstm.layers", lstm.layers),
            ("flow.lstm.window", lstm.window),
        ] {
            if v < 1 {
                return Err(format!("`{field}` is {v}, must be at least 1"));
            }
        }
        for (i, name) in self.flow.kinds.iter().enumerate() {
            if !FlowKind::ALL.iter().any(|k| k.name() == name) {
                return Err(format!("`flow.kinds[{i}]`: unknown flow kind `{name}`"));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    pub names: Vec<String>,
    pub scaler: Scaler,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketLevel {
    pub vae: VaeShape,
    pub beta: f64,
    pub gmm_k_range: [usize; 2],
    pub gmm_k: usize,
    /// BIC per number of components tried.
    pub gmm_bic: Vec<(usize, f64)>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowLevel {
    /// One LSTM per kind that had training flows: "connected", "unconnected", "noflow".
    pub kinds: Vec<String>,
    pub lstm: LstmShape,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateLevel {
    pub gmm_k_max: usize,
    /// Flows per kind in the training data.
    pub flows: KindCounts,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindCounts {
    pub connected: u64,
    pub unconnected: u64,
    pub noflow: u64,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSummary {
    pub packets: u64,
    pub vae_loss: LossCurve,
    /// Per kind with an LSTM.
    pub lstm_loss: Vec<(String, LossCurve)>,
    pub seconds_packet: f64,
    pub seconds_flow: f64,
    pub seconds_aggregate: f64,
}
