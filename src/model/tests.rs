//! Training on a synthetic capture with known structure, and the model directory round trip.
//!
//! The capture: TCP connections whose requests carry 60 bytes and responses 1300 bytes (two
//! packet-size modes), in strict request/response alternation (3 rounds: 16 packets a flow), starting with
//! exponential gaps of mean 50 ms. A short training must recover these within tolerances.

use super::manifest::FORMAT_VERSION;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::train::{train, TrainOptions};
use super::*;
use crate::sink::{FileSink, OutputFormat};
use crate::synth::script::tcp_flow;
use crate::torch::DeviceChoice;
use crate::wire::{FrameBuilder, WireConfig};

const MEAN_GAP_S: f64 = 0.05;
const FLOWS: u64 = 600;

fn write_capture(path: &Path) {
    let mut rng = SplitMix64::new(99);
    let mut records = Vec::new();
    let mut t = 0i64;
    for id in 0..FLOWS {
        t += (-(1.0 - rng.next_f64()).ln() * MEAN_GAP_S * 1e9) as i64;
        records.extend(tcp_flow(id, t, 3, 60, 1300, false));
    }
    records.sort_by_key(|r| (r.ts_ns, r.flow_id));
    let mut b = FrameBuilder::new(WireConfig::default(), 1).unwrap();
    let mut sink = FileSink::create(path, OutputFormat::Pcap, 65_535).unwrap();
    for r in &records {
        for f in b.build(r) {
            sink.write_frame(1_600_000_000_000_000_000 + f.ts_ns, &f.parts()).unwrap();
        }
    }
    sink.finish().unwrap();
}

fn options() -> TrainOptions {
    TrainOptions { epochs: 25, seed: 3, device: DeviceChoice::Cpu, k_range: [2, 10], patience: 4, ..TrainOptions::default() }
}

/// The capture and the directory of a model trained on it, shared by the tests (training
/// takes seconds; tensors are not `Sync`, so each test loads its own copy).
fn trained_dirs() -> &'static (tempfile::TempDir, PathBuf, PathBuf) {
    static M: OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> = OnceLock::new();
    M.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cap = dir.path().join("known.pcap");
        write_capture(&cap);
        let model = train(&[cap.clone()], &options(), &mut |_| {}).unwrap();
        let out = dir.path().join("model");
        model.save(&out).unwrap();
        (dir, cap, out)
    })
}

fn trained() -> (PathBuf, Model) {
    let (_, cap, dir) = trained_dirs();
    (cap.clone(), Model::load(dir, Device::Cpu).unwrap())
}

#[test]
fn losses_decrease() {
    let m = &trained().1.manifest.training;
    let v = &m.vae_loss.train;
    assert!(v.last().unwrap() < &(v[0] * 0.7), "VAE loss {v:?}");
    let (_, l) = &m.lstm_loss[0];
    assert!(l.train.last().unwrap() < &(l.train[0] * 0.8), "LSTM loss {:?}", l.train);
}

#[test]
fn packet_level_recovers_the_two_size_modes_and_their_directions() {
    let model = &trained().1;
    let mut rng = SplitMix64::new(1);
    let comps: Vec<usize> = (0..4000).map(|_| model.packet_gmm.draw_component(&mut rng)).collect();
    let pk = model.sample_packets(&comps, &mut rng);
    // data packets: requests 52 + 60 = 112 bytes from the client, responses 1352 from the server
    let near = |p: &PacketSample, s: f64| (f64::from(p.size) - s).abs() < 0.1 * s;
    let req = pk.iter().filter(|p| near(p, 112.0)).count() as f64 / pk.len() as f64;
    let resp: Vec<&PacketSample> = pk.iter().filter(|p| near(p, 1352.0)).collect();
    let resp_share = resp.len() as f64 / pk.len() as f64;
    // true shares: 3 requests and 3 responses in 16 packets each (0.19)
    assert!((req - 3.0 / 16.0).abs() < 0.06, "request share {req}");
    assert!((resp_share - 3.0 / 16.0).abs() < 0.06, "response share {resp_share}");
    let resp_backward = resp.iter().filter(|p| p.direction == Direction::Backward).count() as f64 / resp.len() as f64;
    assert!(resp_backward > 0.9, "responses come from the server: {resp_backward}");
    // nothing in between the modes and the 52-byte control packets
    let odd = pk.iter().filter(|p| !(near(p, 112.0) || near(p, 1352.0) || near(p, 52.0) || near(p, 60.0))).count();
    assert!((odd as f64) < 0.1 * pk.len() as f64, "{odd} packets away from every mode");
}

#[test]
fn flow_level_reproduces_alternation_and_length() {
    let model = &trained().1;
    let mut rng = SplitMix64::new(2);
    let mut lengths = Vec::new();
    let mut alternating = 0;
    let mut data_pairs = 0;
    for _ in 0..100 {
        let comps = model.sample_flow_components(FlowKind::Connected, 64, &mut rng).unwrap();
        lengths.push(comps.len());
        let pk = model.sample_packets(&comps, &mut rng);
        let data: Vec<&PacketSample> = pk.iter().filter(|p| p.size > 100).collect();
        for w in data.windows(2) {
            data_pairs += 1;
            if w[0].direction != w[1].direction {
                alternating += 1;
            }
        }
    }
    let mean_len = lengths.iter().sum::<usize>() as f64 / lengths.len() as f64;
    assert!((mean_len - 16.0).abs() < 2.0, "mean flow length {mean_len} (true 16)");
    let alt = f64::from(alternating) / f64::from(data_pairs.max(1));
    assert!(alt > 0.85, "request/response alternation {alt}");
}

#[test]
fn aggregate_level_recovers_the_gap_mean_and_kind_mix() {
    let model = &trained().1;
    let mut rng = SplitMix64::new(3);
    let draws: Vec<_> = (0..20_000).map(|_| model.aggregate.sample_flow(&mut rng)).collect();
    let mean_gap = draws.iter().map(|d| d.gap_s).sum::<f64>() / draws.len() as f64;
    assert!((mean_gap - MEAN_GAP_S).abs() < 0.2 * MEAN_GAP_S, "mean gap {mean_gap}");
    assert!(draws.iter().all(|d| d.kind == FlowKind::Connected));
    assert!(draws.iter().all(|d| d.server_port == 443 || d.server_port == 80));
    let mean_pk = draws.iter().map(|d| d.packets).sum::<f64>() / draws.len() as f64;
    assert!((mean_pk - 16.0).abs() < 1.5, "mean packets {mean_pk} (true 16)");
}

#[test]
fn save_load_gives_identical_outputs_and_bad_files_give_errors() {
    let (cap, model) = trained();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("again");
    model.save(&out).unwrap();
    let back = Model::load(&out, Device::Cpu).unwrap();
    assert_eq!(back.manifest, model.manifest);
    assert!(model.component_gaps.fits(model.packet_gmm.k()));
    assert_eq!(back.component_gaps, model.component_gaps);
    let sample = |m: &Model| {
        let mut rng = SplitMix64::new(7);
        let c = m.sample_flow_components(FlowKind::Connected, 40, &mut rng).unwrap();
        let p = m.sample_packets(&c, &mut rng);
        let a = m.aggregate.sample_flow(&mut rng);
        (c, p, a)
    };
    assert_eq!(sample(&model), sample(&back));
    assert!(back.manifest.inputs[0].sha256.len() == 64 && back.manifest.inputs[0].path == cap.display().to_string());
    let dir = tmp.path();

    // a model made before per-component gaps loads and maps none; a malformed table is named
    let bad = dir.join("bad");
    copy_dir(&out, &bad);
    std::fs::remove_file(bad.join(store::COMPONENT_GAPS)).unwrap();
    assert_eq!(Model::load(&bad, Device::Cpu).unwrap().component_gaps, component_gaps::ComponentGaps::default());
    store::write_tensors(&bad.join(store::COMPONENT_GAPS), &[("component_gaps".into(), tch::Tensor::from_slice(&[0.5f64; 3]))]).unwrap();
    let e = Model::load(&bad, Device::Cpu).err().unwrap().to_string();
    assert!(e.contains(store::COMPONENT_GAPS) && e.contains("tensor `component_gaps` is [3]"), "{e}");

    // wrong format version
    let bad = dir.join("bad");
    copy_dir(&out, &bad);
    let m = std::fs::read_to_string(bad.join("manifest.toml")).unwrap();
    std::fs::write(bad.join("manifest.toml"), m.replace(&format!("format_version = {FORMAT_VERSION}"), "format_version = 99")).unwrap();
    let e = Model::load(&bad, Device::Cpu).err().unwrap().to_string();
    assert!(e.contains(&format!("model format 99, this build reads format {FORMAT_VERSION}")), "{e}");
    // truncated safetensors
    copy_dir(&out, &bad);
    let f = bad.join("packet_vae.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let e = Model::load(&bad, Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("packet_vae.safetensors") && e.contains("truncated or corrupt"), "{e}");
    // a missing file
    copy_dir(&out, &bad);
    std::fs::remove_file(bad.join("flow_lstm_connected.safetensors")).unwrap();
    let e = Model::load(&bad, Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("flow_lstm_connected.safetensors") && e.contains("cannot read"), "{e}");
    // a manifest whose shapes disagree with the tensors
    copy_dir(&out, &bad);
    let m = std::fs::read_to_string(bad.join("manifest.toml")).unwrap();
    std::fs::write(bad.join("manifest.toml"), m.replacen("hidden = 64", "hidden = 32", 1)).unwrap();
    let e = Model::load(&bad, Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("shape"), "{e}");
}

#[test]
fn same_data_and_seed_give_the_same_model() {
    let (cap, model) = trained();
    let again = train(&[cap], &options(), &mut |_| {}).unwrap();
    assert_eq!(again.manifest.training.vae_loss, model.manifest.training.vae_loss);
    assert_eq!(again.manifest.packet.gmm_k, model.manifest.packet.gmm_k);
    let a = again.packet_gmm.named_tensors("g");
    let b = model.packet_gmm.named_tensors("g");
    for ((_, x), (_, y)) in a.iter().zip(&b) {
        assert!(x.equal(y));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn parameter_counts_are_those_of_the_layers_built() {
    let numel = |vs: &tch::nn::VarStore| vs.variables().values().map(|t| t.numel() as u64).sum::<u64>();
    for (hidden, latent) in [(64, 4), (3, 1), (100, 9)] {
        let shape = vae::VaeShape { input: dataset::PACKET_DIM as i64, hidden, latent };
        assert_eq!(shape.parameters(), Some(numel(&Vae::new(shape, Device::Cpu).vs)), "{shape:?}");
    }
    for (k, embed, hidden, layers) in [(15, 16, 64, 1), (2, 3, 5, 3)] {
        let shape = flow_lstm::LstmShape { k, embed, hidden, layers, window: 32 };
        assert_eq!(shape.parameters(), Some(numel(&FlowLstm::new(shape, Device::Cpu).vs)), "{shape:?}");
    }
    let shape = flow_lstm::LstmShape { k: i64::MAX, embed: i64::MAX, hidden: 1, layers: 1, window: 1 };
    assert_eq!(shape.parameters(), None, "overflow");
    assert_eq!(vae::VaeShape { input: 14, hidden: 0, latent: 4 }.parameters(), None);
}

/// `models/default` with the manifest's `field` (a dotted path) set to `value`.
fn default_model_with(dir: &Path, field: &str, value: toml::Value) {
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default"), dir);
    let text = std::fs::read_to_string(dir.join(store::MANIFEST)).unwrap();
    let mut doc: toml::Table = toml::from_str(&text).unwrap();
    let (parent, key) = field.rsplit_once('.').unwrap();
    let table = parent.split('.').fold(&mut doc, |t, k| t.get_mut(k).unwrap().as_table_mut().unwrap());
    table.insert(key.into(), value);
    std::fs::write(dir.join(store::MANIFEST), toml::to_string(&doc).unwrap()).unwrap();
}

/// Manifests that made the `model` fuzz target panic or abort (in tch: a negative layer size,
/// an allocation of 4 TiB, an LSTM of 0 layers; in sampling: a scaler list of the wrong
/// length): each is now an error naming the file and the field.
#[test]
fn fuzz_found_manifests_are_errors_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    let int = toml::Value::Integer;
    let mut names: Vec<toml::Value> = dataset::PACKET_FEATURES.iter().map(|&n| toml::Value::String(n.into())).collect();
    // a model whose packet vector began with log10 of the IP total length (format 3)
    names[0] = toml::Value::String("log_size".into());
    let cases: [(&str, toml::Value, &str, &str); 8] = [
        ("packet.vae.hidden", int(-1), "manifest.toml", "`packet.vae.hidden` is -1, must be at least 1"),
        ("packet.vae.hidden", int(1 << 40), "packet_vae.safetensors", "the manifest's packet.vae needs more than 2^64 parameters"),
        ("flow.lstm.layers", int(0), "manifest.toml", "`flow.lstm.layers` is 0, must be at least 1"),
        ("flow.lstm.hidden", int(1 << 20), "flow_lstm_connected.safetensors", "parameters, more than this file's"),
        ("features.scaler.std", toml::Value::Array(vec![toml::Value::Float(1.0); 3]), "manifest.toml", "`features.scaler.std` has 3 values, expected 14"),
        ("features.scaler.max", toml::Value::Array(vec![toml::Value::Float(f64::NAN); 14]), "manifest.toml", "`features.scaler.max[0]` is NaN"),
        ("packet.vae.input", int(3), "manifest.toml", "`packet.vae.input` is 3, this build has 14 features"),
        ("features.names", toml::Value::Array(names), "manifest.toml", "`features.names[0]` is \"log_size\", this build's feature 0 is \"log_payload\""),
    ];
    for (field, value, file, message) in cases {
        default_model_with(&dir, field, value);
        let e = Model::load(&dir, Device::Cpu).err().unwrap_or_else(|| panic!("{field}: loads")).to_string();
        assert!(e.contains(&dir.join(file).display().to_string()) && e.contains(message), "{field}: {e}");
    }
}

#[test]
fn the_packet_banks_bins_split_each_component_by_payload() {
    use crate::model::packet_bank::{PacketBank, BINS};
    let model = &trained().1;
    let bank = PacketBank::build(model, 256, &mut SplitMix64::new(4));
    let bins = bank.bin_payloads();
    assert_eq!(bins.len(), bank.components() * BINS);
    let mut rng = SplitMix64::new(5);
    for k in 0..bank.components() {
        let means = &bins[k * BINS..(k + 1) * BINS];
        assert!(means.windows(2).all(|w| w[0] <= w[1]), "component {k}: bins in order of payload {means:?}");
        // a bin's draws lie between its neighbours' means, and average to its own
        for b in 0..BINS {
            let draws: Vec<f32> = (0..200).map(|_| bank.draw_in_bin(k, b, &mut rng)).map(|p| p.size.saturating_sub(p.header_len) as f32).collect();
            let lo = if b == 0 { f32::NEG_INFINITY } else { means[b - 1] };
            let hi = if b + 1 == BINS { f32::INFINITY } else { means[b + 1] };
            assert!(draws.iter().all(|&x| x >= lo && x <= hi), "component {k} bin {b}: {draws:?} outside {lo}..{hi}");
            let mean = draws.iter().sum::<f32>() / draws.len() as f32;
            assert!((mean - means[b]).abs() <= 0.1 * means[b].abs() + 2.0, "component {k} bin {b}: mean {mean} against {}", means[b]);
        }
    }
    // a plain draw is uniform over the component: its mean is the bins' mean
    let all: f32 = (0..4000).map(|_| bank.draw(0, &mut rng)).map(|p| p.size.saturating_sub(p.header_len) as f32).sum::<f32>() / 4000.0;
    let of_bins = bins[..BINS].iter().sum::<f32>() / BINS as f32;
    assert!((all - of_bins).abs() <= 0.1 * of_bins.abs() + 2.0, "{all} against {of_bins}");
    // the sides and the handshake steps: the known capture's flows open with a SYN from the
    // client and a SYN-ACK from the server, one each in 16 packets; its responses come from
    // the server, with its SYN-ACK, an ACK and its FIN (6 in 16)
    let weights = Vec::<f64>::try_from(model.packet_gmm.weights.to_kind(tch::Kind::Double)).unwrap();
    let share = |v: &[f32]| weights.iter().zip(v).map(|(w, &x)| w * f64::from(x)).sum::<f64>();
    for (step, want) in [(0, 1.0 / 16.0), (1, 1.0 / 16.0)] {
        let got = share(bank.opening_shares(step));
        assert!((got - want).abs() < 0.02, "handshake step {step}: {got}");
    }
    let back = share(bank.back_shares());
    assert!((back - 6.0 / 16.0).abs() < 0.06, "server's share {back}");
}

#[test]
fn the_packet_banks_gaps_are_those_of_later_packets_not_a_first_packets_none() {
    use crate::model::packet_bank::PacketBank;
    let (_, mut model) = trained();
    // the known capture's gaps after a flow's first packet are 0.1, 0.2, 1 and 5 ms
    let later = |g: f64| (0.9e-4..=5.5e-3).contains(&g);
    let bank = PacketBank::build(&model, 256, &mut SplitMix64::new(4));
    let mut rng = SplitMix64::new(5);
    for k in 0..bank.components() {
        let gaps: Vec<f64> = (0..300).map(|_| bank.draw(k, &mut rng).time_diff_s).collect();
        assert!(gaps.iter().all(|&g| later(g)), "component {k}: {gaps:?}");
    }
    // the client's SYN is always a flow's first packet: decoded as it is, its component has
    // the first packet's "no gap", which a later packet drawn from it took
    let opening = bank.opening_shares(0);
    let syn = (0..opening.len()).max_by(|&a, &b| opening[a].total_cmp(&opening[b])).unwrap();
    assert!(opening[syn] > 0.5, "{opening:?}");
    model.component_gaps = component_gaps::ComponentGaps::default();
    let decoded = PacketBank::build(&model, 256, &mut SplitMix64::new(4));
    let none = (0..300).filter(|_| decoded.draw(syn, &mut rng).time_diff_s < 1e-5).count();
    assert!(none > 150, "{none} of 300 SYNs without a gap as decoded");
}
