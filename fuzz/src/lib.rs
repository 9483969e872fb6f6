//! What the fuzz targets share: the layout of their inputs, the in-memory file they hand to
//! the readers, and the seed inputs (made here from the test fixture builders, never copied
//! from captures). Each target in `fuzz_targets/` is a thin shell over one function here, so
//! the seed generator (`src/bin/seeds.rs`) and the targets cannot drift apart.
//!
//! This crate does not check behaviour beyond "no panic, no abort, no endless loop, errors
//! that name their file": the exact behaviour on each bad input is the main crate's
//! `tests/bad_input/` table.

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The test fixture builders (pcap_bytes, pcapng_bytes, Link, standard_mix, the unusual
/// frames, assert_parsers_agree), shared with `tests/ingestion.rs`.
#[path = "../../tests/support/mod.rs"]
pub mod support;

pub mod capture;
pub mod config;
pub mod model;

/// A file that lives in memory (memfd): libpcap and the native reader open it by path
/// (`/proc/self/fd/N`) like any capture, without touching the disk between runs.
pub struct MemFile {
    fd: OwnedFd,
    path: PathBuf,
}

impl MemFile {
    pub fn new(name: &str) -> MemFile {
        let cname = std::ffi::CString::new(name).expect("no NUL in a name");
        // SAFETY: cname is a valid C string; the returned descriptor is checked below.
        let raw = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
        assert!(raw >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        // SAFETY: raw is a fresh descriptor owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let path = PathBuf::from(format!("/proc/self/fd/{raw}"));
        MemFile { fd, path }
    }

    /// Replaces the contents with `bytes`.
    pub fn set(&self, bytes: &[u8]) {
        let mut f = std::fs::File::from(self.fd.try_clone().expect("dup memfd"));
        f.set_len(0).expect("truncate memfd");
        std::io::Seek::rewind(&mut f).expect("rewind memfd");
        f.write_all(bytes).expect("write memfd");
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Writing into a pipe whose reader has gone must be an error, not a signal: Rust's `main`
/// ignores SIGPIPE, but libFuzzer's `main` (C++) does not, and the gzip reader relies on it.
pub fn ignore_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_IGN has no other effect.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
