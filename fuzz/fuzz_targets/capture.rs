//! Capture files through the whole data path; input layout in `src/capture.rs`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use trafgen_fuzz::MemFile;

static FILE: OnceLock<MemFile> = OnceLock::new();

fuzz_target!(init: trafgen_fuzz::ignore_sigpipe(), |data: &[u8]| {
    trafgen_fuzz::capture::run(FILE.get_or_init(|| MemFile::new("capture")), data);
});
