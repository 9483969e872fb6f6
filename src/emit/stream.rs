//! One stream end to end: checks, then source → ring → pacer → sender until it ends.
//!
//! This module owns the order of start-up, so that nothing is sent unless every check passed:
//! the interface is looked up and the socket opened (a missing interface or capability fails
//! first), the address plan (model) or every frame of the capture (pcap) is checked against
//! the allowlist, a model's rate target is resolved by a pilot run, then the producer thread
//! starts and the calling thread becomes the pacer ([`prepare_thread`], [`pacer::run`]).
//! It is what `trafgen send` runs, and what the daemon will run once per configured stream.
//! It does not print (callers read [`Live`] and the [`StreamReport`]).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use super::allowlist::{Allowlist, AllowlistError};
use super::pacer::{self, prepare_thread, Live, PacerConfig, PacerError, PacerReport};
use super::sender::{FrameSender, Interface, PacketSocket, SendError};
use super::source::{spawn_model, ModelLimits, ModelSpec, PcapInfo, PcapSchedule, PcapSource, SourceError};
use crate::synth::engine::Rate;
use crate::synth::EngineConfig;
use crate::wire::{FrameBuilder, WireConfig};

/// What a stream sends.
#[derive(Clone, Debug)]
pub enum SourceSpec {
    /// Live generation from a model directory.
    Model {
        dir: PathBuf,
        engine: EngineConfig,
        wire: WireConfig,
        /// Rate targets resolved to the flow-arrival scale by a pilot run (per-flow timing
        /// kept); at most one.
        pps: Option<f64>,
        mbps: Option<f64>,
        /// Stop starting flows after this many.
        flows: Option<u64>,
    },
    /// A capture replayed `loops` times.
    Pcap { path: PathBuf, schedule: PcapSchedule, loops: u64 },
}

/// Everything one stream needs.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub interface: String,
    pub source: SourceSpec,
    pub pacer: PacerConfig,
    pub allowlist: Allowlist,
}

/// What the source turned out to be, known before the first frame leaves.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StreamStart {
    pub interface: String,
    pub ifindex: u32,
    pub mtu: u32,
    /// Model: the model's own rate (pilot run) when a target was given, and the scale used.
    pub pilot: Option<Rate>,
    pub arrival_scale: Option<f64>,
    /// Pcap: frames, bytes and span of one pass.
    pub pcap: Option<PcapInfo>,
}

/// What a stream did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StreamReport {
    pub start: StreamStart,
    pub pacer: PacerReport,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Send(#[from] SendError),
    #[error("the stream does not start: {0}")]
    Allowlist(#[from] AllowlistError),
    #[error("the stream does not start: {0}")]
    Source(#[from] SourceError),
    #[error(transparent)]
    Pacer(#[from] PacerError),
    #[error("{what} must be a finite number > 0, not {value}")]
    Value { what: &'static str, value: f64 },
}

fn positive(what: &'static str, v: Option<f64>) -> Result<(), StreamError> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => Err(StreamError::Value { what, value: x }),
        _ => Ok(()),
    }
}

/// Runs `spec` on the calling thread (which becomes the pacer) until it ends; `started` is
/// called once every check passed, just before the first frame is scheduled.
pub fn run_stream(spec: &StreamSpec, stop: &AtomicBool, live: &Live, started: &mut dyn FnMut(&StreamStart)) -> Result<StreamReport, StreamError> {
    positive("multiplier", Some(spec.pacer.multiplier))?;
    positive("duration", spec.pacer.duration_s)?;
    let mut sender = PacketSocket::open(&spec.interface)?;
    let iface: Interface = sender.interface().clone();
    let mut start = StreamStart { interface: iface.name.clone(), ifindex: iface.index, mtu: iface.mtu, pilot: None, arrival_scale: None, pcap: None };
    match &spec.source {
        SourceSpec::Pcap { path, schedule, loops } => {
            if let PcapSchedule::Pps(v) | PcapSchedule::Mbps(v) = schedule {
                positive("rate", Some(*v))?;
            }
            std::thread::scope(|scope| {
                let mut src = PcapSource::open(scope, path, *schedule, *loops, &spec.allowlist, sender.max_frame_len(), stop)?;
                start.pcap = Some(src.info());
                prepare_thread(spec.pacer.cpu, spec.pacer.fifo_priority)?;
                started(&start);
                let pacer = pacer::run(&spec.pacer, &mut src, &mut sender, &spec.allowlist, stop, live)?;
                Ok(StreamReport { start: start.clone(), pacer })
            })
        }
        SourceSpec::Model { dir, engine, wire, pps, mbps, flows } => {
            positive("pps", *pps)?;
            positive("mbps", *mbps)?;
            spec.allowlist.check_plan(wire)?;
            // the frames must fit the interface: the plan's MTU is the IP packet size
            if wire.mtu as usize + 14 > sender.max_frame_len() {
                return Err(SendError::TooLong { name: iface.name.clone(), len: wire.mtu as usize + 14, mtu: iface.mtu, max: sender.max_frame_len() }.into());
            }
            let builder = FrameBuilder::new(wire.clone(), engine.seed).map_err(SourceError::from)?;
            let model = ModelSpec {
                dir: dir.clone(),
                // time is scaled by the pacer, not the engine
                engine: EngineConfig { multiplier: 1.0, ..engine.clone() },
                pps: *pps,
                mbps: *mbps,
                limits: ModelLimits {
                    frames: spec.pacer.limit,
                    flows: *flows,
                    // the engine runs in model time; the pacer divides it by the multiplier
                    duration_ns: spec.pacer.duration_s.map(|d| (d * spec.pacer.multiplier * 1e9).ceil() as i64 + 1),
                },
            };
            std::thread::scope(|scope| {
                let (mut src, m) = spawn_model(scope, model, builder, stop)?;
                start.pilot = m.pilot;
                start.arrival_scale = Some(m.arrival_scale);
                prepare_thread(spec.pacer.cpu, spec.pacer.fifo_priority)?;
                started(&start);
                let pacer = pacer::run(&spec.pacer, &mut src, &mut sender, &spec.allowlist, stop, live)?;
                Ok(StreamReport { start: start.clone(), pacer })
            })
        }
    }
}
