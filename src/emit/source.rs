//! Where frames come from: the [`FrameSource`] trait the pacer reads, the bounded ring that
//! joins a producer thread to it, and the two sources.
//!
//! * [`spawn_model`]: the model engine ([`Engine`] → [`FrameBuilder`]) on its own thread,
//!   filling [`Batch`]es that travel on a bounded ring (a `sync_channel` of batches; sent
//!   batches come back on a return channel and are refilled, so steady state allocates
//!   nothing per packet). Offsets are the engine's departure times.
//! * [`PcapSource`]: a capture file replayed tcpreplay-style: the recorded gaps (offset =
//!   timestamp − first timestamp), or constant spacing at `pps`, or spacing by frame size at
//!   `mbps`; `loops` times back to back. The file is checked whole before anything is sent
//!   (Ethernet link type, no truncated record, every frame within the interface MTU and the
//!   allowlist); a file up to [`PRELOAD_MAX_BYTES`] is then replayed from memory (like
//!   `tcpreplay -K`), a larger one is streamed again by a reader thread through the ring.
//!
//! This module does not pace, scale time (the multiplier is the pacer's) nor send.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;

use super::allowlist::{Allowlist, AllowlistError};
use super::batch::Batch;
use crate::capture::{CaptureError, CaptureReader, LinkType};
use crate::model::store::ModelError;
use crate::model::Model;
use crate::synth::engine::Rate;
use crate::synth::{Engine, EngineConfig, EngineError};
use crate::wire::{FrameBuilder, WireConfigError};

/// Batches in flight on the ring (× 256 frames).
pub const RING_BATCHES: usize = 64;

/// Captures up to this many bytes of frames are replayed from memory.
pub const PRELOAD_MAX_BYTES: u64 = 256 << 20;

/// Why a source cannot produce frames. Variants name the file and record where there is one.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("{path}: link type {link:?}: only Ethernet captures can be replayed on an interface")]
    LinkType { path: PathBuf, link: LinkType },
    #[error("{path}: record #{index} is truncated ({caplen} of {wire_len} bytes captured); a truncated frame cannot be replayed")]
    Truncated { path: PathBuf, index: u64, caplen: usize, wire_len: u32 },
    #[error("{path}: record #{index} is {len} bytes, more than the interface takes ({max} bytes: its MTU plus the Ethernet header)")]
    TooLong { path: PathBuf, index: u64, len: usize, max: usize },
    #[error("{path}: record #{index}: {source}")]
    Allowlist { path: PathBuf, index: u64, source: AllowlistError },
    #[error("{path}: the capture holds no frames")]
    Empty { path: PathBuf },
    #[error("{path}: the capture changed while it was replayed (record #{index})")]
    Changed { path: PathBuf, index: u64 },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Wire(#[from] WireConfigError),
    #[error("loading model {dir}: {source}")]
    Model { dir: PathBuf, source: ModelError },
    #[error("the generation thread ended without a result (it panicked)")]
    Producer,
    #[error("cannot start a source thread: {0}")]
    Thread(String),
}

/// What the pacer reads: batches of frames in departure order.
pub trait FrameSource {
    /// The next batch and a shift to add to its offsets (ns), or `None` at the end. The
    /// previous batch is given back to its producer by this call.
    fn next_batch(&mut self) -> Result<Option<(&Batch, i64)>, SourceError>;
    /// Frames produced and not yet taken by the pacer (the generator's lead).
    fn backlog(&self) -> u64;
    /// True once enough frames are buffered (or the producer is done) for the stream's
    /// clock to start: a generator that is slow to start must not make the first frames late.
    fn prefilled(&self) -> bool {
        true
    }
    /// Work the producer has done so far (frames made, and the packets of a model's warm-up,
    /// which are generated and left out before the first frame): while it grows, a source that
    /// is not yet [`FrameSource::prefilled`] is busy, not stuck.
    fn progress(&self) -> u64 {
        0
    }
}

/// Frames a ring holds before the stream's clock starts (see [`FrameSource::prefilled`]).
pub const PREFILL_FRAMES: u64 = 4 * super::batch::BATCH_FRAMES as u64;

type Item = Result<Batch, SourceError>;

/// The producer's end of a ring.
pub struct RingWriter {
    tx: SyncSender<Item>,
    back: Receiver<Batch>,
    batch: Batch,
    produced: Arc<AtomicU64>,
    /// Work before the first frame (see [`RingWriter::prepared`]).
    prepared: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
}

/// The pacer's end of a ring.
pub struct RingSource {
    rx: Receiver<Item>,
    back: Sender<Batch>,
    current: Option<Batch>,
    produced: Arc<AtomicU64>,
    prepared: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    taken: u64,
}

impl Drop for RingWriter {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
    }
}

/// A bounded ring of `depth` batches.
pub fn ring(depth: usize) -> (RingWriter, RingSource) {
    let (tx, rx) = sync_channel(depth.max(1));
    let (back_tx, back_rx) = std::sync::mpsc::channel();
    let produced = Arc::new(AtomicU64::new(0));
    let prepared = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    (
        RingWriter { tx, back: back_rx, batch: Batch::new(), produced: produced.clone(), prepared: prepared.clone(), done: done.clone() },
        RingSource { rx, back: back_tx, current: None, produced, prepared, done, taken: 0 },
    )
}

impl RingWriter {
    /// Shows the reader that work before the first frame goes on (`units` done so far, e.g.
    /// warm-up packets): it counts in [`FrameSource::progress`].
    pub fn prepared(&self, units: u64) {
        self.prepared.store(units, Ordering::Relaxed);
    }

    /// Adds a frame; returns false once the reader is gone (stop producing).
    pub fn push(&mut self, offset_ns: i64, header: &[u8], payload: &[u8]) -> bool {
        self.batch.push(offset_ns, header, payload);
        if self.batch.is_full() {
            return self.flush();
        }
        true
    }

    /// Hands the current batch over (blocks while the ring is full); false once the reader
    /// is gone.
    pub fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let mut next = self.back.try_recv().unwrap_or_else(|_| Batch::new());
        next.clear();
        let full = std::mem::replace(&mut self.batch, next);
        let n = full.len() as u64;
        self.produced.fetch_add(n, Ordering::Relaxed);
        self.tx.send(Ok(full)).is_ok()
    }

    /// Ends the stream with an error (after the frames already handed over).
    pub fn fail(mut self, e: SourceError) {
        self.flush();
        let _ = self.tx.send(Err(e));
    }
}

impl FrameSource for RingSource {
    fn next_batch(&mut self) -> Result<Option<(&Batch, i64)>, SourceError> {
        if let Some(b) = self.current.take() {
            let _ = self.back.send(b);
        }
        match self.rx.recv() {
            Ok(Ok(b)) => {
                self.taken += b.len() as u64;
                Ok(Some((self.current.insert(b), 0)))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(None),
        }
    }

    fn backlog(&self) -> u64 {
        self.produced.load(Ordering::Relaxed).saturating_sub(self.taken)
    }

    fn prefilled(&self) -> bool {
        self.backlog() >= PREFILL_FRAMES || self.done.load(Ordering::Acquire)
    }

    fn progress(&self) -> u64 {
        self.produced.load(Ordering::Relaxed) + self.prepared.load(Ordering::Relaxed)
    }
}

/// Limits of a model stream, in the engine's time.
#[derive(Clone, Copy, Debug, Default)]
pub struct ModelLimits {
    pub frames: Option<u64>,
    pub flows: Option<u64>,
    pub duration_ns: Option<i64>,
}

/// A model stream: the model directory, the engine's settings and a rate target.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub dir: PathBuf,
    pub engine: EngineConfig,
    /// Rate targets resolved to the flow-arrival scale by a pilot run (per-flow timing kept).
    pub pps: Option<f64>,
    pub mbps: Option<f64>,
    pub limits: ModelLimits,
}

/// What the generation thread found before its first frame.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct ModelStart {
    /// The model's own rate at scale 1 (pilot run), when a target was given.
    pub pilot: Option<Rate>,
    pub arrival_scale: f64,
}

/// Warm-up packets between two progress reports (~1 ms of generation; a debug build's tens of
/// ms stay far below the pacer's patience with a source showing no progress).
const WARM_UP_STEP: u64 = 4096;

/// Packets of the pilot run that measures a model's natural rate (as `trafgen generate`).
const PILOT_PACKETS: usize = 50_000;

/// Starts the generation thread on `scope`: it loads the model (tch models stay on the thread
/// that uses them), resolves a rate target by a pilot run, runs the warm-up (showing its
/// progress to the reader: [`FrameSource::progress`]), then runs engine → `builder` into
/// a ring until the engine's end, a limit, `stop`, or until the reader is dropped. Returns
/// once the thread is ready to produce (or with its set-up error).
pub fn spawn_model<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    spec: ModelSpec,
    mut builder: FrameBuilder,
    stop: &'env AtomicBool,
) -> Result<(RingSource, ModelStart), SourceError> {
    let (mut w, r) = ring(RING_BATCHES);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<ModelStart, SourceError>>();
    std::thread::Builder::new()
        .name("trafgen-gen".into())
        .spawn_scoped(scope, move || {
            let model = match Model::load(&spec.dir, tch::Device::Cpu) {
                Ok(m) => m,
                Err(source) => return drop(ready_tx.send(Err(SourceError::Model { dir: spec.dir.clone(), source }))),
            };
            let mut cfg = spec.engine.clone();
            let mut start = ModelStart { pilot: None, arrival_scale: cfg.arrival_scale };
            if spec.pps.is_some() || spec.mbps.is_some() {
                let rate = match Engine::pilot_rate(&model, &cfg, PILOT_PACKETS) {
                    Ok(r) => r,
                    Err(e) => return drop(ready_tx.send(Err(e.into()))),
                };
                cfg.arrival_scale = match (spec.pps, spec.mbps) {
                    (Some(p), _) => p / rate.pps,
                    (None, Some(m)) => m * 1e6 / rate.bps,
                    (None, None) => 1.0,
                };
                start = ModelStart { pilot: Some(rate), arrival_scale: cfg.arrival_scale };
            }
            let mut engine = match Engine::new(&model, cfg) {
                Ok(e) => e,
                Err(e) => return drop(ready_tx.send(Err(e.into()))),
            };
            if let Some(f) = spec.limits.flows {
                engine.limit_flows(f);
            }
            if let Some(d) = spec.limits.duration_ns {
                engine.limit_duration(d);
            }
            if ready_tx.send(Ok(start)).is_err() {
                return;
            }
            // the warm-up before the first frame (the pacer's clock waits for it)
            if !engine.warm_up(WARM_UP_STEP, |n| {
                w.prepared(n);
                !stop.load(Ordering::Relaxed)
            }) {
                return;
            }
            let mut frames = 0u64;
            'records: for rec in engine.by_ref() {
                if spec.limits.frames.is_some_and(|m| frames >= m) || stop.load(Ordering::Relaxed) {
                    break;
                }
                for f in builder.build(&rec) {
                    if spec.limits.frames.is_some_and(|m| frames >= m) {
                        break 'records;
                    }
                    frames += 1;
                    if !w.push(f.ts_ns, f.header, f.payload) {
                        return;
                    }
                }
            }
            w.flush();
        })
        .map_err(|e| SourceError::Thread(e.to_string()))?;
    let start = ready_rx.recv().map_err(|_| SourceError::Producer)??;
    Ok((r, start))
}

/// How a capture's frames are spaced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PcapSchedule {
    /// The recorded gaps.
    Recorded,
    /// Constant spacing, this many frames per second.
    Pps(f64),
    /// Each frame followed by its own size at this many Mbit/s.
    Mbps(f64),
}

/// What [`PcapSource::open`] found in the file.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct PcapInfo {
    pub frames: u64,
    pub bytes: u64,
    /// Offset of the last frame of one pass (ns).
    pub span_ns: i64,
    /// One pass's length: the next pass starts this long after the previous one did.
    pub loop_ns: i64,
    pub preloaded: bool,
}

/// Offsets of one pass over a capture.
#[derive(Clone, Copy, Debug)]
struct Spacer {
    schedule: PcapSchedule,
    first_ts: Option<i64>,
    last: i64,
    index: u64,
    bits: f64,
}

impl Spacer {
    fn new(schedule: PcapSchedule) -> Spacer {
        Spacer { schedule, first_ts: None, last: 0, index: 0, bits: 0.0 }
    }

    /// The offset of the next frame (never before the previous one).
    fn next(&mut self, ts_ns: i64, len: usize) -> i64 {
        let off = match self.schedule {
            PcapSchedule::Recorded => ts_ns - *self.first_ts.get_or_insert(ts_ns),
            PcapSchedule::Pps(pps) => (self.index as f64 * 1e9 / pps).round() as i64,
            PcapSchedule::Mbps(mbps) => (self.bits * 1e3 / mbps).round() as i64,
        };
        self.index += 1;
        self.bits += (len * 8) as f64;
        self.last = off.max(self.last);
        self.last
    }

    /// Length of a whole pass of `frames` frames ending at offset `span`.
    fn loop_len(&self, frames: u64, span: i64) -> i64 {
        match self.schedule {
            PcapSchedule::Recorded => span + if frames > 1 { span / (frames as i64 - 1) } else { 0 },
            PcapSchedule::Pps(pps) => (frames as f64 * 1e9 / pps).round() as i64,
            PcapSchedule::Mbps(mbps) => (self.bits * 1e3 / mbps).round() as i64,
        }
    }
}

/// A capture replayed `loops` times.
pub struct PcapSource {
    info: PcapInfo,
    loops: u64,
    inner: PcapInner,
}

enum PcapInner {
    Memory { batches: Vec<Batch>, pass: u64, next: usize },
    Stream(RingSource),
}

impl PcapSource {
    /// Checks the whole of `path` (see the module doc) and prepares its replay. A file larger
    /// than [`PRELOAD_MAX_BYTES`] is streamed by a thread of `scope`.
    pub fn open<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        path: &Path,
        schedule: PcapSchedule,
        loops: u64,
        allow: &Allowlist,
        max_frame_len: usize,
        stop: &'env AtomicBool,
    ) -> Result<PcapSource, SourceError> {
        let mut reader = CaptureReader::open(path)?;
        if reader.link_type() != LinkType::Ethernet {
            return Err(SourceError::LinkType { path: path.into(), link: reader.link_type() });
        }
        let mut spacer = Spacer::new(schedule);
        let mut batches = vec![Batch::new()];
        let mut info = PcapInfo { preloaded: true, ..Default::default() };
        while let Some(r) = reader.next_record()? {
            check_record(path, r.index, r.data, r.wire_len, allow, max_frame_len)?;
            let off = spacer.next(r.ts_ns, r.data.len());
            info.frames += 1;
            info.bytes += r.data.len() as u64;
            info.span_ns = off;
            if info.preloaded {
                if info.bytes > PRELOAD_MAX_BYTES {
                    info.preloaded = false;
                    batches = Vec::new();
                } else {
                    if batches.last().is_some_and(Batch::is_full) {
                        batches.push(Batch::new());
                    }
                    batches.last_mut().expect("one batch at least").push(off, r.data, &[]);
                }
            }
        }
        if info.frames == 0 {
            return Err(SourceError::Empty { path: path.into() });
        }
        info.loop_ns = spacer.loop_len(info.frames, info.span_ns);
        let loops = loops.max(1);
        let inner = if info.preloaded {
            PcapInner::Memory { batches, pass: 0, next: 0 }
        } else {
            PcapInner::Stream(spawn_pcap_reader(scope, path.to_path_buf(), schedule, loops, info, allow.clone(), max_frame_len, stop))
        };
        Ok(PcapSource { info, loops, inner })
    }

    pub fn info(&self) -> PcapInfo {
        self.info
    }
}

fn check_record(path: &Path, index: u64, data: &[u8], wire_len: u32, allow: &Allowlist, max: usize) -> Result<(), SourceError> {
    if (data.len() as u64) < u64::from(wire_len) {
        return Err(SourceError::Truncated { path: path.into(), index, caplen: data.len(), wire_len });
    }
    if data.len() > max {
        return Err(SourceError::TooLong { path: path.into(), index, len: data.len(), max });
    }
    allow.check_frame(data).map_err(|source| SourceError::Allowlist { path: path.into(), index, source })
}

#[allow(clippy::too_many_arguments)]
fn spawn_pcap_reader<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    path: PathBuf,
    schedule: PcapSchedule,
    loops: u64,
    info: PcapInfo,
    allow: Allowlist,
    max: usize,
    stop: &'env AtomicBool,
) -> RingSource {
    let (mut w, r) = ring(RING_BATCHES);
    let spawned = std::thread::Builder::new().name("trafgen-pcap".into()).spawn_scoped(scope, move || {
        for pass in 0..loops {
            let shift = pass as i64 * info.loop_ns;
            let mut reader = match CaptureReader::open(&path) {
                Ok(r) => r,
                Err(e) => return w.fail(e.into()),
            };
            let mut spacer = Spacer::new(schedule);
            loop {
                if stop.load(Ordering::Relaxed) {
                    w.flush();
                    return;
                }
                let r = match reader.next_record() {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => return w.fail(e.into()),
                };
                if r.index >= info.frames {
                    return w.fail(SourceError::Changed { path: path.clone(), index: r.index });
                }
                if let Err(e) = check_record(&path, r.index, r.data, r.wire_len, &allow, max) {
                    return w.fail(e);
                }
                let off = spacer.next(r.ts_ns, r.data.len());
                if !w.push(shift + off, r.data, &[]) {
                    return;
                }
            }
        }
        w.flush();
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the capture reader thread: {e}");
    }
    r
}

impl FrameSource for PcapSource {
    fn next_batch(&mut self) -> Result<Option<(&Batch, i64)>, SourceError> {
        match &mut self.inner {
            PcapInner::Stream(r) => r.next_batch(),
            PcapInner::Memory { batches, pass, next } => {
                if *next == batches.len() {
                    *pass += 1;
                    *next = 0;
                }
                if *pass >= self.loops {
                    return Ok(None);
                }
                *next += 1;
                Ok(Some((&batches[*next - 1], *pass as i64 * self.info.loop_ns)))
            }
        }
    }

    fn backlog(&self) -> u64 {
        match &self.inner {
            PcapInner::Stream(r) => r.backlog(),
            PcapInner::Memory { .. } => 0,
        }
    }

    fn prefilled(&self) -> bool {
        match &self.inner {
            PcapInner::Stream(r) => r.prefilled(),
            PcapInner::Memory { .. } => true,
        }
    }

    fn progress(&self) -> u64 {
        match &self.inner {
            PcapInner::Stream(r) => r.progress(),
            PcapInner::Memory { .. } => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacer_keeps_gaps_or_spaces_by_count_or_size() {
        let mut s = Spacer::new(PcapSchedule::Recorded);
        let offs: Vec<i64> = [1000, 1500, 1400, 4000].iter().map(|&t| s.next(t, 100)).collect();
        assert_eq!(offs, [0, 500, 500, 3000]); // a step back in time is held, not reversed
        assert_eq!(s.loop_len(4, 3000), 4000);
        let mut s = Spacer::new(PcapSchedule::Pps(1000.0));
        let offs: Vec<i64> = (0..3).map(|_| s.next(0, 60)).collect();
        assert_eq!(offs, [0, 1_000_000, 2_000_000]);
        assert_eq!(s.loop_len(3, 2_000_000), 3_000_000);
        // 1000-byte frames at 8 Mbit/s: 1 ms each
        let mut s = Spacer::new(PcapSchedule::Mbps(8.0));
        let offs: Vec<i64> = (0..3).map(|_| s.next(0, 1000)).collect();
        assert_eq!(offs, [0, 1_000_000, 2_000_000]);
        assert_eq!(s.loop_len(3, 2_000_000), 3_000_000);
    }

    #[test]
    fn ring_hands_batches_over_in_order_and_reuses_them() {
        let (mut w, mut r) = ring(2);
        let t = std::thread::spawn(move || {
            for i in 0..1000i64 {
                assert!(w.push(i, &i.to_le_bytes(), b"p"));
            }
            w.flush();
        });
        let mut seen = 0i64;
        while let Some((b, shift)) = r.next_batch().unwrap() {
            assert_eq!(shift, 0);
            for k in 0..b.len() {
                assert_eq!(b.offset(k), seen);
                assert_eq!(b.frame(k)[0], seen.to_le_bytes());
                seen += 1;
            }
        }
        t.join().unwrap();
        assert_eq!(seen, 1000);
        assert_eq!(r.backlog(), 0);
    }
}
