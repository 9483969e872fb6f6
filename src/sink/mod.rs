//! The end of the data path: where built frames leave the generator.
//!
//! This module owns turning a time-ordered stream of finished Ethernet frames into output:
//! today capture files ([`FileSink`]: classic pcap with nanosecond timestamps, or pcapng with
//! `if_tsresol` = 9), later the NIC sender (AF_PACKET, batched) and its pacer, as
//! `shared/design.md` lays out. It also owns the stop flag that Ctrl-C/SIGTERM raise
//! ([`signals::stop_flag`]), so a run can end with a file that holds only whole records.
//!
//! It does not build frames (that is [`crate::wire`]: the sink copies the header and payload
//! parts it is handed, byte for byte), does not decide departure times (it writes the
//! timestamp it is given) and never truncates a frame to the snapshot length: a frame longer
//! than the snaplen is refused with an error.
//!
//! Files: [`file`] (buffering, record boundaries, truncation after a failed write),
//! [`pcap_format`] (the bytes of headers and records), [`signals`]; `tests.rs` checks files
//! end to end (our reader, tshark/tcpdump, disk full, size limit).

pub mod file;
pub mod pcap_format;
pub mod signals;

use std::path::{Path, PathBuf};

pub use file::FileSink;

#[cfg(test)]
mod tests;

/// Largest snaplen a file may declare: libpcap's `MAXIMUM_SNAPLEN`; readers reject records
/// longer than this whatever the header says.
pub const MAX_SNAPLEN: u32 = 262_144;

/// Container format of an output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// Classic pcap, nanosecond timestamps (magic 0xa1b23c4d), little-endian.
    Pcap,
    /// pcapng: one section, one Ethernet interface with `if_tsresol` = 9, Enhanced Packet Blocks.
    PcapNg,
}

impl OutputFormat {
    /// `.pcapng` (any case) selects pcapng; any other name selects classic pcap.
    pub fn from_path(path: &Path) -> OutputFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("pcapng") => OutputFormat::PcapNg,
            _ => OutputFormat::Pcap,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Pcap => "pcap",
            OutputFormat::PcapNg => "pcapng",
        }
    }
}

/// What a finished file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkStats {
    /// Frames (records) in the file.
    pub frames: u64,
    /// File size in bytes, headers included.
    pub bytes: u64,
}

/// Something that stops a sink. Every variant names the output file. After a write error
/// (`DiskFull`, `Write`) the file has been cut back to its last whole record, so it is a valid
/// capture of `frames` frames; the sink then refuses further frames with the same error.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{path}: cannot create the output file: {source}")]
    Create { path: PathBuf, source: std::io::Error },

    #[error("{path}: snaplen {snaplen} is out of range (1..={max})", max = MAX_SNAPLEN)]
    Snaplen { path: PathBuf, snaplen: u32 },

    #[error("{path}: disk full (No space left on device, ENOSPC); the file was cut back to its last whole record and holds {frames} whole frames ({bytes} bytes)")]
    DiskFull { path: PathBuf, frames: u64, bytes: u64 },

    #[error("{path}: write failed: {source}; the file was cut back to its last whole record and holds {frames} whole frames ({bytes} bytes)")]
    Write { path: PathBuf, frames: u64, bytes: u64, source: std::io::Error },

    #[error("{path}: write failed ({write}) and cutting the file back to its last whole record ({bytes} bytes, {frames} frames) failed too: {source}; the file may end in a partial record")]
    Truncate { path: PathBuf, frames: u64, bytes: u64, write: std::io::Error, source: std::io::Error },

    #[error("{path}: frame #{index} is {len} bytes, longer than the snaplen {snaplen}; frames are never truncated")]
    FrameTooLong { path: PathBuf, index: u64, len: u64, snaplen: u32 },

    #[error("{path}: frame #{index} has timestamp {ts_ns} ns, which {format} cannot hold (before 1970{})",
        if *format == "pcap" { ", or after 2106" } else { "" })]
    Timestamp { path: PathBuf, index: u64, ts_ns: i64, format: &'static str },
}

impl SinkError {
    pub fn path(&self) -> &Path {
        match self {
            SinkError::Create { path, .. }
            | SinkError::Snaplen { path, .. }
            | SinkError::DiskFull { path, .. }
            | SinkError::Write { path, .. }
            | SinkError::Truncate { path, .. }
            | SinkError::FrameTooLong { path, .. }
            | SinkError::Timestamp { path, .. } => path,
        }
    }

    /// Whole frames the file holds after a write error (`None` for other errors).
    pub fn frames_in_file(&self) -> Option<u64> {
        match self {
            SinkError::DiskFull { frames, .. } | SinkError::Write { frames, .. } => Some(*frames),
            _ => None,
        }
    }
}
