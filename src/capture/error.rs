//! Errors of the capture stage. Every variant names the file and, where one exists,
//! the packet index (0-based record number) and byte offset, so a user can find the spot.

use std::path::PathBuf;

/// Something in a capture file that stops reading it.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: cannot open: {source}")]
    Open { path: PathBuf, source: std::io::Error },

    #[error("{path}: empty file (0 bytes), not a capture")]
    Empty { path: PathBuf },

    #[error("{path}: not a pcap or pcapng file: magic number 0x{magic:08x} at byte offset 0")]
    BadMagic { path: PathBuf, magic: u32 },

    #[error("{path}: file header is truncated: {size} bytes, a {format} header needs {needed}")]
    TruncatedHeader { path: PathBuf, size: u64, format: &'static str, needed: u64 },

    #[error("{path}: bad pcap file header: {msg}")]
    BadHeader { path: PathBuf, msg: String },

    #[error("{path}: gzip stream is corrupt: {msg}")]
    Gzip { path: PathBuf, msg: String },

    #[error("{path}: libpcap cannot open it: {msg}")]
    Libpcap { path: PathBuf, msg: String },

    #[error("{path}: unsupported link type {linktype} ({name}); supported: Ethernet (1), raw IP (12/14/101/228/229), Linux SLL (113), SLL2 (276), BSD loopback (0/108)")]
    UnsupportedLinkType { path: PathBuf, linktype: i32, name: String },

    #[error("{path}: corrupt record at packet #{index}{}: {msg}; {packets_read} packets were read before it (use --skip-bad to keep them and continue)",
        match (offset, near) {
            (Some(o), _) => format!(" (byte offset {o})"),
            (None, Some(n)) => format!(" (found at byte offset {n})"),
            _ => String::new(),
        })]
    CorruptRecord {
        path: PathBuf,
        index: u64,
        /// Byte offset of the record (classic pcap).
        offset: Option<u64>,
        /// Where the error was found in the stream (pcapng, when the record start is unknown).
        near: Option<u64>,
        packets_read: u64,
        msg: String,
    },

    #[error("{path}: record at packet #{index} (byte offset {offset}) has caplen {caplen}, more than the file's snaplen {snaplen}; the file is damaged or was written by a broken tool (use --skip-bad to skip such records)")]
    CaplenOverSnaplen { path: PathBuf, index: u64, offset: u64, caplen: u64, snaplen: u32 },
}

impl CaptureError {
    /// True when the error concerns one record after a valid file header: the packets read
    /// before it are good, and `--skip-bad` may keep them.
    pub fn is_record_level(&self) -> bool {
        matches!(self, CaptureError::CorruptRecord { .. } | CaptureError::CaplenOverSnaplen { .. })
    }

    /// True when reading can go on with the next record (`--skip-bad` skips just this one).
    pub fn is_resumable(&self) -> bool {
        matches!(self, CaptureError::CaplenOverSnaplen { .. })
    }
}
