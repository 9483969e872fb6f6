//! The generation loop: model → records ([`crate::synth`]) → frames ([`crate::wire`]) →
//! capture file ([`crate::sink`]).
//!
//! This module owns driving a stream of [`SynthPacket`]s through the wire stage into a file,
//! honouring a stop flag (Ctrl-C/SIGTERM) between frames so an interrupted run still leaves a
//! valid file of whole records ([`write_capture`], any record source), and [`generate`], which
//! does it for the model-driven engine with the limits and rate targets of `trafgen generate`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::model::Model;
use crate::sink::{FileSink, OutputFormat, SinkError};
use crate::synth::engine::Rate;
use crate::synth::{Engine, EngineConfig, EngineError, EngineStats, SynthPacket};
use crate::wire::{FrameBuilder, WireConfig, WireConfigError, WireStats};

/// What a run wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WriteSummary {
    pub path: PathBuf,
    pub frames: u64,
    pub file_bytes: u64,
    /// Records offered (some may have been dropped by the wire stage, e.g. after a RST).
    pub records: u64,
    /// Stopped early by the stop flag.
    pub interrupted: bool,
    pub wire: WireStats,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Wire(#[from] WireConfigError),
}

/// Writes the frames of `records` to `path`, timestamps offset by `start_ns`, until the
/// records end, `max_frames` frames were written, or `stop` is set.
pub fn write_capture(
    records: impl IntoIterator<Item = SynthPacket>,
    builder: &mut FrameBuilder,
    path: &Path,
    format: OutputFormat,
    start_ns: i64,
    max_frames: Option<u64>,
    stop: &AtomicBool,
) -> Result<WriteSummary, GenerateError> {
    let mut sink = FileSink::create(path, format, crate::sink::MAX_SNAPLEN)?;
    let mut records_seen = 0u64;
    let mut interrupted = false;
    'records: for r in records {
        if max_frames.is_some_and(|m| sink.frames() >= m) {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        records_seen += 1;
        for f in builder.build(&r) {
            if max_frames.is_some_and(|m| sink.frames() >= m) {
                break 'records;
            }
            sink.write_frame(start_ns + f.ts_ns, &f.parts())?;
        }
    }
    let stats = sink.finish()?;
    Ok(WriteSummary {
        path: path.to_path_buf(),
        frames: stats.frames,
        file_bytes: stats.bytes,
        records: records_seen,
        interrupted,
        wire: builder.stats(),
    })
}

/// How to generate traffic from a model (everything `trafgen generate` can set).
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub engine: EngineConfig,
    /// Stop after this many frames / flows / seconds of traffic, whichever comes first.
    pub packets: Option<u64>,
    pub flows: Option<u64>,
    pub duration_s: Option<f64>,
    /// Targets that scale the flow-arrival rate (measured by a pilot run): packets/s or Mbit/s.
    pub pps: Option<f64>,
    pub mbps: Option<f64>,
    /// Timestamp of the stream's start, ns since the Unix epoch.
    pub start_ns: i64,
    pub wire: WireConfig,
    pub format: OutputFormat,
}

/// What `generate` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GenerateSummary {
    pub write: WriteSummary,
    pub engine: EngineStats,
    /// The arrival scale used (1 unless a rate target was given).
    pub arrival_scale: f64,
    /// The model's rate at scale 1 when a target was given.
    pub pilot: Option<Rate>,
    /// Time from the first to the last packet, seconds.
    pub span_s: f64,
    pub seconds: f64,
}

/// Packets of the pilot run that measures a model's natural rate.
const PILOT_PACKETS: usize = 50_000;

/// Generates traffic from `model` into `path`. `progress` is called every 64k frames with
/// (frames written, flows started).
pub fn generate(
    model: &Model,
    opts: &GenerateOptions,
    path: &Path,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<GenerateSummary, GenerateError> {
    let t0 = std::time::Instant::now();
    let mut cfg = opts.engine.clone();
    let mut pilot = None;
    if opts.pps.is_some() || opts.mbps.is_some() {
        let rate = Engine::pilot_rate(model, &cfg, PILOT_PACKETS)?;
        let scale = match (opts.pps, opts.mbps) {
            (Some(pps), _) => pps / rate.pps,
            (None, Some(mbps)) => mbps * 1e6 / rate.bps,
            (None, None) => 1.0,
        };
        cfg.arrival_scale = scale;
        pilot = Some(rate);
    }
    let mut engine = Engine::new(model, cfg.clone())?;
    if let Some(f) = opts.flows {
        engine.limit_flows(f);
    }
    if let Some(d) = opts.duration_s {
        engine.limit_duration((d * 1e9).round() as i64);
    }
    let mut builder = FrameBuilder::new(opts.wire.clone(), opts.engine.seed)?;
    let (mut n, mut first, mut last) = (0u64, None, 0i64);
    let records = std::iter::from_fn(|| {
        let p = engine.next()?;
        n += 1;
        if n % (1 << 16) == 0 {
            progress(n, engine.stats().flows.iter().sum());
        }
        first.get_or_insert(p.ts_ns);
        last = p.ts_ns;
        Some(p)
    });
    let write = write_capture(records, &mut builder, path, opts.format, opts.start_ns, opts.packets, stop)?;
    Ok(GenerateSummary {
        span_s: (last - first.unwrap_or(last)) as f64 / 1e9,
        write,
        engine: engine.stats().clone(),
        arrival_scale: cfg.arrival_scale,
        pilot,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Errors of [`train_and_generate`].
#[derive(Debug, thiserror::Error)]
pub enum TrainGenerateError {
    #[error(transparent)]
    Train(#[from] crate::model::train::TrainError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
}

/// The synthetic arm of a time-split evaluation: trains a model on `train` (a capture) and
/// generates `duration_ns` of traffic starting at `start_ns` into `out` (pcap). Returns what
/// generation did.
pub fn train_and_generate(
    train: &Path,
    train_opts: &crate::model::train::TrainOptions,
    engine: &EngineConfig,
    start_ns: i64,
    duration_ns: i64,
    out: &Path,
) -> Result<GenerateSummary, TrainGenerateError> {
    let model = crate::model::train::train(&[train.to_path_buf()], train_opts, &mut |_| {})?;
    let opts = GenerateOptions {
        engine: engine.clone(),
        packets: None,
        flows: None,
        duration_s: Some(duration_ns.max(1) as f64 / 1e9),
        pps: None,
        mbps: None,
        start_ns,
        wire: WireConfig::default(),
        format: OutputFormat::Pcap,
    };
    let never = AtomicBool::new(false);
    Ok(generate(&model, &opts, out, &never, &mut |_, _| {})?)
}
