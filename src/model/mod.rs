//! The model stage: NeCSTGen-style models of packets, flows and the flow mix, in tch.
//!
//! - packet level: a VAE over standardised packet vectors ([`vae`]) whose latent space is
//!   clustered by a full-covariance GMM ([`gmm`]); a component stands for a kind of packet;
//! - flow level: an LSTM per flow kind over the component sequence of a flow ([`flow_lstm`]);
//! - aggregate level: flow arrivals, kind mix, per-kind flow sizes and the header
//!   distributions (ports, protocols, host popularity) ([`aggregate`]), and the flows a
//!   capture is never without, kept apart from the arrivals ([`standing`]);
//! - TCP handshake and teardown heads: timing and sizes of the opening and closing packets of
//!   connected flows, and how flows close ([`tcp_heads`]).
//!
//! [`train`] builds all three from captures; [`Model`] loads, saves and samples them. A model
//! directory is `manifest.toml` + safetensors files ([`store`], [`manifest`]). This module does
//! not schedule or build traffic (that is `synth` and `wire`).

pub mod aggregate;
pub mod client_port;
pub mod component_gaps;
pub mod dataset;
pub mod flow_lstm;
pub mod gap_support;
pub mod gmm;
pub mod lean_lstm;
pub mod manifest;
pub mod marginals;
pub mod packet_bank;
pub mod payload_support;
pub mod scaler;
pub mod shared_hosts;
pub mod standing;
pub mod store;
pub mod tcp_heads;
pub mod train;
pub mod vae;

use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::flow::{Direction, FlowKind};
use crate::rng::SplitMix64;
use aggregate::Aggregate;
use dataset::{col, PACKET_DIM};
use flow_lstm::FlowLstm;
use gmm::Gmm;
use manifest::Manifest;
use store::ModelError;
use component_gaps::ComponentGaps;
use gap_support::GapSupport;
use payload_support::PayloadSupport;
use tcp_heads::TcpHeads;
use vae::Vae;

/// A trained model, ready to sample.
pub struct Model {
    pub manifest: Manifest,
    pub vae: Vae,
    pub packet_gmm: Gmm,
    pub lstm: [Option<FlowLstm>; 3],
    pub aggregate: Aggregate,
    pub tcp: TcpHeads,
    /// Payload lengths that recur in training; decoded packets snap to them.
    pub payload: PayloadSupport,
    /// Time gaps that recur in training (periodic traffic); decoded gaps snap to them.
    pub gaps: GapSupport,
    /// Per packet component, the gaps its later packets had; the bank's decoded gaps are
    /// mapped onto them.
    pub component_gaps: ComponentGaps,
}

/// A packet decoded from a component.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PacketSample {
    /// IP total length (≥ header_len).
    pub size: u32,
    pub header_len: u32,
    pub direction: Direction,
    pub tcp_flags: u16,
    /// Time since the previous packet of the flow.
    pub time_diff_s: f64,
}

/// The tensors of `file` in `dir`, parsed by `parse` (given a lookup by name); a file that
/// cannot be read or whose tensors do not parse is an error naming it.
fn parsed<T>(dir: &Path, file: &str, parse: impl FnOnce(&dyn Fn(&str) -> Option<Tensor>) -> Result<T, String>) -> Result<T, ModelError> {
    let path = dir.join(file);
    let t = store::read_tensors(&path)?;
    parse(&|n| t.get(n).map(|x| x.shallow_clone())).map_err(|msg| ModelError::Invalid { path, msg })
}

impl Model {
    /// Loads a model directory onto `device`.
    pub fn load(dir: &Path, device: Device) -> Result<Model, ModelError> {
        let manifest = store::read_manifest(dir)?;
        let invalid = |msg: String| ModelError::Invalid { path: dir.join(store::MANIFEST), msg };
        manifest.check(PACKET_DIM).map_err(invalid)?;
        // layers are built from the manifest's numbers before their weights are read: sizes
        // are checked against the files first
        let vae_path = dir.join(store::PACKET_VAE);
        store::check_size(&vae_path, "packet.vae", manifest.packet.vae.parameters())?;
        let mut vae = Vae::new(manifest.packet.vae, device);
        store::load_varstore(&vae_path, &mut vae.vs)?;
        let packet_gmm = parsed(dir, store::PACKET_GMM, |get| Gmm::from_named("gmm", get).map_err(|e| e.to_string()))?;
        if packet_gmm.dim() as i64 != manifest.packet.vae.latent || packet_gmm.k() != manifest.packet.gmm_k {
            return Err(ModelError::Invalid {
                path: dir.join(store::PACKET_GMM),
                msg: format!("GMM is {}×{}, the manifest says k={} latent={}", packet_gmm.k(), packet_gmm.dim(), manifest.packet.gmm_k, manifest.packet.vae.latent),
            });
        }
        if manifest.flow.lstm.k != packet_gmm.k() as i64 {
            return Err(invalid(format!("flow LSTM vocabulary {} ≠ {} packet components", manifest.flow.lstm.k, packet_gmm.k())));
        }
        let mut lstm: [Option<FlowLstm>; 3] = [None, None, None];
        for name in &manifest.flow.kinds {
            let kind = FlowKind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| invalid(format!("unknown flow kind `{name}`")))?;
            let path = dir.join(store::flow_lstm_file(name));
            store::check_size(&path, "flow.lstm", manifest.flow.lstm.parameters())?;
            let mut m = FlowLstm::new(manifest.flow.lstm, device);
            store::load_varstore(&path, &mut m.vs)?;
            lstm[kind.index()] = Some(m);
        }
        let aggregate = parsed(dir, store::AGGREGATE, |get| Aggregate::from_named(get))?;
        let k = packet_gmm.k();
        if let Some(i) = aggregate.standing.iter().position(|s| !s.chain.is_empty() && !s.chain_fits(k)) {
            let msg = format!("tensors `standing.c{i}.*` do not fit {k} packet components");
            return Err(ModelError::Invalid { path: dir.join(store::AGGREGATE), msg });
        }
        let tcp = parsed(dir, store::TCP_HEADS, |get| TcpHeads::from_named(get))?;
        let payload = parsed(dir, store::PAYLOAD_SUPPORT, |get| PayloadSupport::from_named(get))?;
        // recurring gaps and per-component gaps: files of their own, absent in models made
        // before them
        let optional = |file: &str| dir.join(file).exists();
        let gaps = if optional(store::GAP_SUPPORT) { parsed(dir, store::GAP_SUPPORT, |get| GapSupport::from_named(get))? } else { GapSupport::default() };
        let component_gaps = if optional(store::COMPONENT_GAPS) { parsed(dir, store::COMPONENT_GAPS, |get| ComponentGaps::from_named(get, k))? } else { ComponentGaps::default() };
        Ok(Model { manifest, vae, packet_gmm, lstm, aggregate, tcp, payload, gaps, component_gaps })
    }

    /// Writes the model directory (created if needed).
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::Write { path: dir.to_path_buf(), msg: e.to_string() })?;
        store::save_varstore(&dir.join(store::PACKET_VAE), &self.vae.vs)?;
        store::write_tensors(&dir.join(store::PACKET_GMM), &self.packet_gmm.named_tensors("gmm"))?;
        for kind in FlowKind::ALL {
            if let Some(m) = &self.lstm[kind.index()] {
                store::save_varstore(&dir.join(store::flow_lstm_file(kind.name())), &m.vs)?;
            }
        }
        store::write_tensors(&dir.join(store::AGGREGATE), &self.aggregate.named_tensors())?;
        store::write_tensors(&dir.join(store::TCP_HEADS), &self.tcp.named_tensors())?;
        store::write_tensors(&dir.join(store::PAYLOAD_SUPPORT), &self.payload.named_tensors())?;
        store::write_tensors(&dir.join(store::GAP_SUPPORT), &self.gaps.named_tensors())?;
        if self.component_gaps.fits(self.packet_gmm.k()) {
            store::write_tensors(&dir.join(store::COMPONENT_GAPS), &self.component_gaps.named_tensors())?;
        }
        store::write_manifest(dir, &self.manifest)
    }

    pub fn device(&self) -> Device {
        self.vae.vs.device()
    }

    /// Decodes packets from GMM `components` (one latent draw each from the project RNG);
    /// payload lengths and time gaps near a recurring training value become that value.
    pub fn sample_packets(&self, components: &[usize], rng: &mut SplitMix64) -> Vec<PacketSample> {
        if components.is_empty() {
            return Vec::new();
        }
        let latent: Vec<f32> = components.iter().flat_map(|&k| self.packet_gmm.sample_component(k, rng)).map(|x| x as f32).collect();
        let z = Tensor::from_slice(&latent).view([components.len() as i64, -1]).to_device(self.device());
        let x = tch::no_grad(|| self.manifest.features.scaler.inverse_clamped(&self.vae.decode(&z)))
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous();
        let flat = Vec::<f32>::try_from(x.view([-1])).unwrap_or_default();
        flat.chunks_exact(PACKET_DIM)
            .map(|v| {
                let mut p = decode_row(v, rng);
                p.size = p.header_len + self.payload.snap(p.size - p.header_len);
                if p.time_diff_s > 0.0 {
                    p.time_diff_s = self.gaps.snap(p.time_diff_s);
                }
                p
            })
            .collect()
    }
}

impl Model {
    /// Samples one flow's component sequence from the kind's LSTM (at most `max_len`
    /// packets; ends at the END token). `None` when the model has no LSTM for the kind.
    pub fn sample_flow_components(&self, kind: FlowKind, max_len: usize, rng: &mut SplitMix64) -> Option<Vec<usize>> {
        let m = self.lstm[kind.index()].as_ref()?;
        let mut state = m.zero_state(1);
        let mut token = m.shape.start_token();
        let mut out = Vec::new();
        while out.len() < max_len {
            let (logits, next) = m.step(&Tensor::from_slice(&[token]).to_device(self.device()), &state);
            state = next;
            let l = Vec::<f32>::try_from(logits.to_device(Device::Cpu).to_kind(Kind::Float).view([-1])).unwrap_or_default();
            let t = flow_lstm::sample_token(&l, rng);
            if t == m.shape.end_token() {
                break;
            }
            out.push(t as usize);
            token = t;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests;

/// Packet fields from a decoded (unscaled) feature vector. The decoder's binary features
/// (direction, each TCP flag) come out as values between 0 and 1, the decoder's estimate of
/// how likely the bit is: each is drawn as a Bernoulli of that probability (a 0.5 threshold
/// would drop every flag the component carries less than half the time, e.g. PSH).
pub fn decode_row(v: &[f32], rng: &mut SplitMix64) -> PacketSample {
    let header_len = v[col::HEADER].round().clamp(0.0, 120.0) as u32;
    let payload = dataset::payload_of(v[col::LOG_PAYLOAD].clamp(0.0, 4.9)).round().clamp(0.0, f64::from(65_535 - header_len)) as u32;
    let size = header_len + payload;
    let mut bit = |x: f32| rng.next_f64() < f64::from(x).clamp(0.0, 1.0);
    let flag_bits = [0x01u16, 0x02, 0x04, 0x08, 0x10];
    let mut tcp_flags = 0;
    for (i, b) in flag_bits.iter().enumerate() {
        if bit(v[col::FLAGS + i]) {
            tcp_flags |= b;
        }
    }
    let backward = bit(v[col::DIRECTION]);
    let log_dt = f64::from(v[col::LOG_DT]);
    PacketSample {
        size,
        header_len,
        direction: if backward { Direction::Backward } else { Direction::Forward },
        tcp_flags,
        time_diff_s: if log_dt <= -6.9 { 0.0 } else { 10f64.powf(log_dt.min(6.0)) },
    }
}
