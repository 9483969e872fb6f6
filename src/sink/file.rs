//! Writing frames to a capture file, so that the file only ever holds whole records.
//!
//! This module owns [`FileSink`]: it appends each record (header, the frame's parts, trailer)
//! to its own 1 MiB buffer, and hands the buffer to `write(2)` when the next record would not
//! fit: no allocation and no system call per frame. The buffer only ever holds whole records,
//! and the sink keeps the end offset of each one, so when a write fails part-way (disk full,
//! file size limit, I/O error) it cuts the file back to the last record that made it whole
//! (`ftruncate`) and reports how many frames that file holds. The same holds at the other
//! ends of a run: [`FileSink::finish`] flushes, and dropping an unfinished sink flushes the
//! whole records it buffered. It does not fsync, and it does not choose byte layouts
//! (see [`super::pcap_format`]).

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::pcap_format::{self as fmt, max_ts_ns, record_len};
use super::{OutputFormat, SinkError, SinkStats, MAX_SNAPLEN};

/// Size of the write buffer; a record of [`MAX_SNAPLEN`] bytes always fits.
const BUF_CAP: usize = 1 << 20;
/// Most records the buffer can hold (the smallest record is a 16-byte pcap header).
const MAX_RECORDS: usize = BUF_CAP / 16;
const _: () = assert!(record_len(OutputFormat::PcapNg, MAX_SNAPLEN as usize) <= BUF_CAP);

/// A capture file being written.
pub struct FileSink {
    path: PathBuf,
    /// `None` once finished.
    file: Option<File>,
    format: OutputFormat,
    snaplen: u32,
    max_ts_ns: i64,
    /// Whole records not yet written; never grows past [`BUF_CAP`].
    buf: Vec<u8>,
    /// End offset in `buf` of each record in it.
    ends: Vec<u32>,
    /// Bytes in the file, all of them whole records (headers included).
    file_len: u64,
    /// Frames in the file.
    frames_in_file: u64,
    /// Frames accepted: in the file or in the buffer.
    frames: u64,
    /// The error that stopped the sink, returned again for every later call.
    failed: Option<SinkError>,
}

impl FileSink {
    /// Creates (or truncates) `path` and writes the file header for Ethernet frames of at
    /// most `snaplen` bytes (1..=262144).
    pub fn create(path: &Path, format: OutputFormat, snaplen: u32) -> Result<FileSink, SinkError> {
        let path = path.to_path_buf();
        if snaplen == 0 || snaplen > MAX_SNAPLEN {
            return Err(SinkError::Snaplen { path, snaplen });
        }
        let mut file = match File::create(&path) {
            Ok(f) => f,
            Err(source) => return Err(SinkError::Create { path, source }),
        };
        let mut buf = Vec::with_capacity(BUF_CAP);
        fmt::put_file_header(&mut buf, format, snaplen);
        if let Err(source) = file.write_all(&buf) {
            // Half a header is not a capture file: leave nothing behind.
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(SinkError::Create { path, source });
        }
        let file_len = buf.len() as u64;
        buf.clear();
        Ok(FileSink {
            path,
            file: Some(file),
            format,
            snaplen,
            max_ts_ns: max_ts_ns(format),
            buf,
            ends: Vec::with_capacity(MAX_RECORDS),
            file_len,
            frames_in_file: 0,
            frames: 0,
            failed: None,
        })
    }

    /// Appends one frame, the concatenation of `parts`, sent at `ts_ns` (ns since 1970).
    /// A frame longer than the snaplen or a timestamp the format cannot hold is refused
    /// (and nothing is written); a failed write stops the sink (see [`SinkError`]).
    pub fn write_frame(&mut self, ts_ns: i64, parts: &[&[u8]]) -> Result<(), SinkError> {
        if let Some(e) = &self.failed {
            return Err(again(e));
        }
        if !(0..=self.max_ts_ns).contains(&ts_ns) {
            return Err(SinkError::Timestamp {
                path: self.path.clone(),
                index: self.frames,
                ts_ns,
                format: self.format.name(),
            });
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > self.snaplen as usize {
            return Err(SinkError::FrameTooLong {
                path: self.path.clone(),
                index: self.frames,
                len: len as u64,
                snaplen: self.snaplen,
            });
        }
        if self.buf.len() + record_len(self.format, len) > BUF_CAP {
            self.flush_buf()?;
        }
        // len <= snaplen <= MAX_SNAPLEN: fits u32, and the record fits the empty buffer.
        fmt::put_record_header(&mut self.buf, self.format, ts_ns as u64, len as u32);
        for part in parts {
            self.buf.extend_from_slice(part);
        }
        fmt::put_record_trailer(&mut self.buf, self.format, len as u32);
        self.ends.push(self.buf.len() as u32);
        self.frames += 1;
        Ok(())
    }

    /// Writes what is buffered and closes the file (no fsync).
    pub fn finish(mut self) -> Result<SinkStats, SinkError> {
        if let Some(e) = self.failed.take() {
            self.file = None;
            return Err(e);
        }
        self.flush_buf()?;
        self.file = None;
        Ok(SinkStats { frames: self.frames_in_file, bytes: self.file_len })
    }

    /// Frames accepted so far (written or buffered); after a failed write, the frames the
    /// file holds.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// Writes the buffer; on failure cuts the file back to its last whole record.
    fn flush_buf(&mut self) -> Result<(), SinkError> {
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        let mut done = 0;
        while done < self.buf.len() {
            match file.write(&self.buf[done..]) {
                Ok(0) => return Err(self.fail(ErrorKind::WriteZero.into(), done)),
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(e, done)),
            }
        }
        self.file_len += self.buf.len() as u64;
        self.frames_in_file += self.ends.len() as u64;
        self.buf.clear();
        self.ends.clear();
        Ok(())
    }

    /// `done` bytes of the buffer reached the file before `write_err`: keep its whole
    /// records, cut the rest, and stop the sink.
    fn fail(&mut self, write_err: std::io::Error, done: usize) -> SinkError {
        let whole = self.ends.partition_point(|&end| end as usize <= done);
        if whole > 0 {
            self.file_len += u64::from(self.ends[whole - 1]);
            self.frames_in_file += whole as u64;
        }
        self.buf.clear();
        self.ends.clear();
        self.frames = self.frames_in_file;
        let (path, frames, bytes) = (self.path.clone(), self.frames_in_file, self.file_len);
        let cut = match self.file.as_ref() {
            Some(f) => f.set_len(bytes),
            None => Ok(()),
        };
        let err = match cut {
            Err(source) => SinkError::Truncate { path, frames, bytes, write: write_err, source },
            Ok(()) if write_err.raw_os_error() == Some(libc::ENOSPC) => SinkError::DiskFull { path, frames, bytes },
            Ok(()) => SinkError::Write { path, frames, bytes, source: write_err },
        };
        self.failed = Some(again(&err));
        err
    }
}

impl Drop for FileSink {
    /// An unfinished sink writes the whole records it buffered (errors are logged: the file
    /// is cut back to whole records all the same).
    fn drop(&mut self) {
        if self.failed.is_none() && !self.buf.is_empty() {
            if let Err(e) = self.flush_buf() {
                tracing::warn!("{e}");
            }
        }
    }
}

/// A copy of a stopping error, to return again (io::Error is not Clone).
fn again(e: &SinkError) -> SinkError {
    let io = |e: &std::io::Error| match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(e.kind(), e.to_string()),
    };
    let path = e.path().to_path_buf();
    match e {
        SinkError::DiskFull { frames, bytes, .. } => SinkError::DiskFull { path, frames: *frames, bytes: *bytes },
        SinkError::Write { frames, bytes, source, .. } => {
            SinkError::Write { path, frames: *frames, bytes: *bytes, source: io(source) }
        }
        SinkError::Truncate { frames, bytes, write, source, .. } => {
            SinkError::Truncate { path, frames: *frames, bytes: *bytes, write: io(write), source: io(source) }
        }
        SinkError::Create { source, .. } => SinkError::Create { path, source: io(source) },
        SinkError::Snaplen { snaplen, .. } => SinkError::Snaplen { path, snaplen: *snaplen },
        SinkError::FrameTooLong { index, len, snaplen, .. } => {
            SinkError::FrameTooLong { path, index: *index, len: *len, snaplen: *snaplen }
        }
        SinkError::Timestamp { index, ts_ns, format, .. } => {
            SinkError::Timestamp { path, index: *index, ts_ns: *ts_ns, format }
        }
    }
}
