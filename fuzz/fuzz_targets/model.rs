//! Model directories with one fuzzed file; see `src/model.rs`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use trafgen_fuzz::model::ModelDir;

static DIR: OnceLock<ModelDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| DIR.get_or_init(ModelDir::new).run(data));
