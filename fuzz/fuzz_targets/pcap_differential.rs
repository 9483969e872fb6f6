//! Classic pcap read by the native parser and by libpcap must agree; see `src/capture.rs`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use trafgen_fuzz::MemFile;

static FILE: OnceLock<MemFile> = OnceLock::new();

fuzz_target!(init: trafgen_fuzz::ignore_sigpipe(), |data: &[u8]| {
    trafgen_fuzz::capture::run_differential(FILE.get_or_init(|| MemFile::new("differential")), data);
});
