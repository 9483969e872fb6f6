//! The `model` target: a model directory whose manifest or one of whose safetensors files is
//! the input, loaded with `Model::load` and, when it loads, used: samples from every level and
//! a hundred packets from the generation engine (a model that loads must not fail later).
//!
//! Input: byte 0 below 0x80 picks the file ([`files`], modulo), the rest is its content; the
//! other files are those of `models/default`. Byte 0 from 0x80 on: the rest is a list of
//! 9-byte edits to the default manifest ([`ManifestEdit`]: a field and a value), which reach
//! the numbers the loader builds layers from far sooner than byte mutations of TOML text do.
//! Beyond "no panic, no abort": a load error names the file.

use std::path::{Path, PathBuf};

use tch::Device;
use trafgen::flow::FlowKind;
use trafgen::model::{store, Model};
use trafgen::rng::SplitMix64;
use trafgen::synth::engine::{Engine, EngineConfig};

/// The files of a model directory, in the order byte 0 picks them.
pub fn files() -> Vec<String> {
    let mut v = vec![store::MANIFEST.to_string(), store::PACKET_VAE.into(), store::PACKET_GMM.into()];
    v.extend(FlowKind::ALL.iter().map(|k| store::flow_lstm_file(k.name())));
    v.extend([store::AGGREGATE.into(), store::TCP_HEADS.into(), store::PAYLOAD_SUPPORT.into(), store::GAP_SUPPORT.into()]);
    v
}

fn default_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/default")
}

/// A copy of `models/default` in memory-backed storage, one file of which each run replaces.
pub struct ModelDir {
    dir: tempfile::TempDir,
    originals: Vec<Vec<u8>>,
}

impl ModelDir {
    pub fn new() -> ModelDir {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("temp dir");
        let originals: Vec<Vec<u8>> = files()
            .iter()
            .map(|f| std::fs::read(default_model().join(f)).unwrap_or_else(|e| panic!("models/default/{f}: {e}")))
            .collect();
        for (f, bytes) in files().iter().zip(&originals) {
            std::fs::write(dir.path().join(f), bytes).expect("write model file");
        }
        ModelDir { dir, originals }
    }

    pub fn run(&self, data: &[u8]) {
        let Some((&pick, rest)) = data.split_first() else { return };
        let names = files();
        let (i, content) = if pick < 0x80 {
            (usize::from(pick) % names.len(), rest.to_vec())
        } else {
            (0, edited_manifest(&self.originals[0], rest))
        };
        let file = self.dir.path().join(&names[i]);
        std::fs::write(&file, &content).expect("write fuzzed file");
        let result = Model::load(self.dir.path(), Device::Cpu);
        std::fs::write(&file, &self.originals[i]).expect("restore file");
        match result {
            Ok(model) => exercise(&model),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(&*self.dir.path().to_string_lossy()), "error without its file: {msg}");
            }
        }
    }
}

impl Default for ModelDir {
    fn default() -> Self {
        Self::new()
    }
}

/// One edit of the manifest: `FIELDS[field % len]` set from the 8 value bytes (an integer, the
/// bits of a float, or a length to cut an array to).
enum Edit {
    Int,
    Float,
    Truncate,
    Text,
}

const FIELDS: [(&str, Edit); 26] = [
    ("format_version", Edit::Int),
    ("seed", Edit::Int),
    ("packet.vae.input", Edit::Int),
    ("packet.vae.hidden", Edit::Int),
    ("packet.vae.latent", Edit::Int),
    ("packet.gmm_k", Edit::Int),
    ("packet.gmm_k_range", Edit::Truncate),
    ("packet.beta", Edit::Float),
    ("flow.lstm.k", Edit::Int),
    ("flow.lstm.embed", Edit::Int),
    ("flow.lstm.hidden", Edit::Int),
    ("flow.lstm.layers", Edit::Int),
    ("flow.lstm.window", Edit::Int),
    ("flow.kinds", Edit::Truncate),
    ("flow.kinds", Edit::Text),
    ("aggregate.gmm_k_max", Edit::Int),
    ("aggregate.flows.connected", Edit::Int),
    ("features.names", Edit::Truncate),
    ("features.scaler.mean", Edit::Truncate),
    ("features.scaler.std", Edit::Truncate),
    ("features.scaler.min", Edit::Truncate),
    ("features.scaler.max", Edit::Truncate),
    ("features.scaler.mean", Edit::Float),
    ("features.scaler.std", Edit::Float),
    ("features.scaler.min", Edit::Float),
    ("features.scaler.max", Edit::Float),
];

/// The default manifest with `edits` (9 bytes each) applied.
fn edited_manifest(original: &[u8], edits: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(original).expect("the default manifest is UTF-8");
    let mut doc: toml::Table = toml::from_str(text).expect("the default manifest parses");
    for e in edits.chunks_exact(9) {
        let (path, kind) = &FIELDS[usize::from(e[0]) % FIELDS.len()];
        let raw = u64::from_le_bytes(e[1..9].try_into().expect("8 bytes"));
        let mut keys = path.split('.');
        let first = keys.next().expect("a key");
        let Some(v) = keys.fold(doc.get_mut(first), |v, k| v.and_then(|v| v.get_mut(k))) else { continue };
        match (kind, v) {
            (Edit::Int, v) => *v = toml::Value::Integer(raw as i64),
            (Edit::Float, toml::Value::Array(a)) if !a.is_empty() => {
                let n = a.len();
                a[(raw as usize) % n] = toml::Value::Float(f64::from_bits(raw));
            }
            (Edit::Float, v) => *v = toml::Value::Float(f64::from_bits(raw)),
            (Edit::Truncate, toml::Value::Array(a)) => a.truncate((raw % 32) as usize),
            (Edit::Text, toml::Value::Array(a)) if !a.is_empty() => {
                let n = a.len();
                let names = ["connected", "unconnected", "noflow", "bogus", ""];
                a[(raw as usize) % n] = toml::Value::String(names[(raw >> 8) as usize % names.len()].into());
            }
            _ => {}
        }
    }
    toml::to_string(&doc).expect("a table serialises").into_bytes()
}

/// What `trafgen generate` and `trafgend` do with a model, in small.
fn exercise(m: &Model) {
    let mut rng = SplitMix64::new(7);
    for kind in FlowKind::ALL {
        if let Some(c) = m.sample_flow_components(kind, 16, &mut rng) {
            let _ = m.sample_packets(&c, &mut rng);
        }
    }
    let comps: Vec<usize> = (0..8).map(|_| m.packet_gmm.draw_component(&mut rng)).collect();
    let _ = m.sample_packets(&comps, &mut rng);
    let _ = m.aggregate.sample_flow(&mut rng);
    let cfg = EngineConfig { bank_per_component: 8, max_live_flows: 64, max_flow_packets: 64, ..EngineConfig::default() };
    if let Ok(engine) = Engine::new(m, cfg) {
        let mut last = i64::MIN;
        for p in engine.take(100) {
            assert!(p.ts_ns >= last, "departure times go back: {p:?} after {last}");
            last = p.ts_ns;
        }
    }
}

/// Seeds: each file of `models/default` as it is, and a few manifest edits.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let edit = |field: u8, value: i64| {
        let mut e = vec![field];
        e.extend_from_slice(&value.to_le_bytes());
        e
    };
    let mut edits: Vec<(String, Vec<u8>)> = [(3u8, 32i64), (10, 128), (11, 2), (8, 4)]
        .iter()
        .map(|&(f, v)| (format!("edit-{}-{v}", FIELDS[usize::from(f)].0), [vec![0x80], edit(f, v)].concat()))
        .collect();
    edits.extend(files()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut input = vec![i as u8];
            input.extend(std::fs::read(default_model().join(f)).expect("models/default"));
            (format!("default-{f}"), input)
        }));
    edits
}
