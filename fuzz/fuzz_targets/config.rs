//! trafgend.toml and wire-settings files; see `src/config.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trafgen_fuzz::config::run(data));
