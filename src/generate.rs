//! The generation loop: records → frames ([`crate::wire`]) → capture file ([`crate::sink`]).
//!
//! This module owns driving any stream of [`SynthPacket`]s through the wire stage into a file,
//! honouring a stop flag (Ctrl-C/SIGTERM) between frames so an interrupted run still leaves a
//! valid file of whole records. The record source is the caller's: scripted records today, the
//! model-driven engine once it lands.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sink::{FileSink, OutputFormat, SinkError};
use crate::synth::SynthPacket;
use crate::wire::{FrameBuilder, WireStats};

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
    for r in records {
        if max_frames.is_some_and(|m| sink.frames() >= m) {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        records_seen += 1;
        if let Some(f) = builder.build(&r) {
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
