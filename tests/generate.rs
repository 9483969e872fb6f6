//! `trafgen generate` and the engine behind it, on the shipped `models/default`: the same seed
//! gives the same bytes, limits are exact, the multiplier scales time, memory stays bounded,
//! and the output passes our validator and tshark with the model's flow-kind mix. Faults:
//! SIGTERM/SIGINT mid-run and a full file system (a 256 KiB tmpfs, as root) leave a valid
//! file of whole records; a missing or damaged model is an error naming the file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trafgen::flow::FlowKind;
use trafgen::model::standing::{states, StandingFlow, GAP_QUANTILES};
use trafgen::model::Model;
use trafgen::model::client_port::{ClientPorts, FixedPort};
use trafgen::model::shared_hosts::SharedHost;
use trafgen::synth::{Engine, EngineConfig, FlowBytes, FlowLengths, FlowTiming, Side};

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/default")
}

fn trafgen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trafgen")).args(args).output().expect("run trafgen")
}

/// Runs `trafgen generate` with `--json`; returns the summary.
fn generate(out: &Path, extra: &[&str]) -> serde_json::Value {
    let dir = model_dir();
    let mut args = vec!["generate", "-m", dir.to_str().unwrap(), "-o", out.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let o = trafgen(&args);
    assert!(o.status.success(), "generate {extra:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("JSON summary")
}

fn sha256(path: &Path) -> String {
    trafgen::model::dataset::sha256_file(path).unwrap().0
}

fn load() -> Model {
    Model::load(&model_dir(), tch::Device::Cpu).expect("models/default loads")
}

#[test]
fn same_seed_same_bytes_other_seed_other_traffic() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, c) = (d.path().join("a.pcap"), d.path().join("b.pcap"), d.path().join("c.pcap"));
    generate(&a, &["--packets", "3000", "--seed", "7", "--pps", "2000"]);
    generate(&b, &["--packets", "3000", "--seed", "7", "--pps", "2000"]);
    generate(&c, &["--packets", "3000", "--seed", "8", "--pps", "2000"]);
    assert_eq!(sha256(&a), sha256(&b));
    assert_ne!(sha256(&a), sha256(&c));
    // pcapng by extension, same traffic
    let n = d.path().join("a.pcapng");
    generate(&n, &["--packets", "3000", "--seed", "7", "--pps", "2000"]);
    assert_eq!(&std::fs::read(&n).unwrap()[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
}

#[test]
fn packet_flow_and_duration_limits_are_exact() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("p.pcap");
    let s = generate(&p, &["--packets", "2500"]);
    assert_eq!(s["write"]["frames"], 2500);
    let f = d.path().join("f.pcap");
    let s = generate(&f, &["--flows", "40"]);
    let flows: u64 = s["engine"]["flows"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).sum();
    assert_eq!(flows, 40);
    assert_eq!(s["write"]["wire"]["flows_started"], 40, "every started flow reached the file");
    // duration: every packet inside [start, start + 20 s)
    let t = d.path().join("t.pcap");
    generate(&t, &["--duration", "20", "--start", "1000", "--pps", "300"]);
    let o = trafgen(&["inspect", "--json", t.to_str().unwrap()]);
    assert!(o.status.success());
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let first = j["files"][0]["first_ns"].as_i64().unwrap();
    let last = j["files"][0]["last_ns"].as_i64().unwrap();
    assert!(first >= 1_000_000_000_000 && last < 1_020_000_000_000, "{first} .. {last}");
    assert!(j["packets"].as_u64().unwrap() > 1000, "the 20 s were filled at ~300 pps");
}

#[test]
fn multiplier_two_halves_the_span() {
    let m = load();
    let run = |mult: f64| -> (Vec<i64>, usize) {
        let mut e = Engine::new(&m, EngineConfig { seed: 3, multiplier: mult, ..Default::default() }).unwrap();
        e.limit_flows(30);
        let ts: Vec<i64> = e.map(|p| p.ts_ns).collect();
        let n = ts.len();
        (ts, n)
    };
    let (a, n) = run(1.0);
    let (b, nb) = run(2.0);
    assert_eq!(n, nb, "the same packets");
    let (sa, sb) = (a[n - 1] - a[0], b[n - 1] - b[0]);
    // every gap is halved then rounded to the ns: at most 1 ns of error per packet
    assert!((sa as f64 / 2.0 - sb as f64).abs() <= n as f64, "span {sa} vs {sb}");
    assert!(sa > 1_000_000_000, "a span worth measuring: {sa} ns");
}

#[test]
fn memory_is_bounded_by_the_live_flow_cap() {
    // RSS is the process's: measured in a process of its own (this test binary running this
    // test alone), since the other tests of this file load models and generate alongside
    const ALONE: &str = "TRAFGEN_TEST_RSS_ALONE";
    if std::env::var_os(ALONE).is_none() {
        let exe = std::env::current_exe().unwrap();
        let o = Command::new(exe).args(["memory_is_bounded_by_the_live_flow_cap", "--exact", "--nocapture", "--test-threads", "1"]).env(ALONE, "1").output().unwrap();
        let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success() && out.contains("1 passed"), "{out}");
        eprintln!("{}", out.lines().filter(|l| l.starts_with("RSS")).collect::<Vec<_>>().join("\n"));
        return;
    }
    let m = load();
    let cap = 200;
    let cfg = EngineConfig { seed: 5, arrival_scale: 5_000.0, max_live_flows: cap, ..Default::default() };
    let mut e = Engine::new(&m, cfg).unwrap();
    let rss = || -> u64 {
        let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        s.split_whitespace().nth(1).and_then(|x| x.parse().ok()).unwrap_or(0) * 4096
    };
    let mut last = i64::MIN;
    let mut rss_at = Vec::new();
    for i in 0..120_000u64 {
        let p = e.next().expect("endless with no limits");
        assert!(p.ts_ns >= last, "out of order at {i}");
        last = p.ts_ns;
        if i % 1000 == 0 {
            assert!(e.live_flows() <= cap);
            assert!(e.buffered_packets() <= cap * 16, "{} buffered", e.buffered_packets());
        }
        if i == 30_000 || i == 119_999 {
            rss_at.push(rss());
        }
    }
    assert!(e.stats().delayed_starts > 0, "the cap was reached");
    // alone in its process it does not grow at all: 8 MiB is a leak of 100 bytes in each of
    // the 90,000 packets between the two readings
    eprintln!("RSS {} -> {}", rss_at[0], rss_at[1]);
    assert!(rss_at[1] <= rss_at[0] + (8 << 20), "RSS grew from {} to {}", rss_at[0], rss_at[1]);
}

#[test]
fn output_is_valid_and_has_the_models_kind_mix() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("g.pcap");
    let s = generate(&p, &["--flows", "1500", "--pps", "5000", "--seed", "11"]);
    let o = trafgen(&["validate", p.to_str().unwrap()]);
    assert!(o.status.success(), "violations:\n{}", String::from_utf8_lossy(&o.stdout));
    // flow-kind mix of the engine's flows vs the aggregate model
    let m = load();
    let kp = m.aggregate.kind_p;
    let flows: Vec<f64> = s["engine"]["flows"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    let total: f64 = flows.iter().sum();
    for k in FlowKind::ALL {
        let share = flows[k.index()] / total;
        assert!((share - kp[k.index()]).abs() < 0.05, "{}: {share:.3} vs model {:.3}", k.name(), kp[k.index()]);
    }
    // no-flow traffic is ARP at ARP's size (the model's drawn sizes are captured frames')
    assert!(flows[FlowKind::NoFlow.index()] > 0.0);
    assert_eq!(s["write"]["wire"]["repairs"]["size_fixed_by_protocol"], 0, "{}", s["write"]["wire"]);
    // and as our own ingestion sees the file: TCP/UDP flows come out as generated
    let o = trafgen(&["inspect", "--json", p.to_str().unwrap()]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in [FlowKind::Connected, FlowKind::Unconnected] {
        let got = j["flows"][k.name()].as_f64().unwrap();
        assert!((got - flows[k.index()]).abs() <= 0.02 * total, "{}: inspect {got} vs engine {}", k.name(), flows[k.index()]);
    }
    if Command::new("tshark").arg("-v").output().is_err() {
        eprintln!("tshark not installed (scripts/setup.sh installs it): tshark check skipped");
        return;
    }
    let out = Command::new("tshark")
        .args(["-r", p.to_str().unwrap(), "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE", "-z", "expert,warn", "-q"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Expert-info rows: "  count  Group  Protocol  Summary". Payloads are fill bytes by design
    // (the model describes headers, not application content), so an application dissector
    // (DHCP, NTP…) may call them malformed; frames, IP, TCP, UDP, ICMP and ARP must be clean.
    let wire_layers = ["eth", "ip", "ipv4", "ipv6", "tcp", "udp", "icmp", "icmpv6", "arp", "frame"];
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() >= 4 && (cols[1] == "Malformed" || cols[1] == "Checksum" || line.contains("Bad checksum")) {
            let proto = cols[2].to_ascii_lowercase();
            assert!(!wire_layers.contains(&proto.as_str()), "tshark: {line}\n{text}");
        }
    }
}

#[test]
fn the_kind_mix_holds_in_every_stretch_of_flows() {
    let mut m = load();
    m.aggregate.standing.clear();
    let kp = m.aggregate.kind_p;
    let mut e = Engine::new(&m, EngineConfig { seed: 21, arrival_scale: 1000.0, ..Default::default() }).unwrap();
    e.limit_flows(3000);
    let mut kinds: std::collections::BTreeMap<u64, FlowKind> = Default::default();
    for p in e.by_ref() {
        kinds.entry(p.flow_id).or_insert(p.kind());
    }
    let kinds: Vec<FlowKind> = kinds.into_values().collect();
    assert_eq!(kinds.len(), 3000);
    // every 100 flows in a row carry each kind within 3 of its share (independent draws of
    // the default model's ~50/50 mix stray by ±5 and more)
    for (w, win) in kinds.windows(100).enumerate().step_by(10) {
        for k in FlowKind::ALL {
            let n = win.iter().filter(|&&x| x == k).count() as f64;
            assert!((n - 100.0 * kp[k.index()]).abs() <= 3.0, "flows {w}..{}: {n} {} flows, model share {:.3}", w + 100, k.name(), kp[k.index()]);
        }
    }
}

/// Two-sample KS statistic.
fn ks(a: &mut [f64], b: &mut [f64]) -> f64 {
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

/// Per flow of `flows` flows from the engine: the sum of `value` over its packets.
fn per_flow_sum(m: &Model, cfg: EngineConfig, flows: u64, value: impl Fn(&trafgen::synth::SynthPacket) -> f64) -> Vec<f64> {
    let mut e = Engine::new(m, cfg).unwrap();
    e.limit_flows(flows);
    let mut per: std::collections::HashMap<u64, f64> = Default::default();
    for p in e.by_ref() {
        *per.entry(p.flow_id).or_default() += value(&p);
    }
    per.into_values().collect()
}

/// Packets per flow of `flows` flows of one kind from the engine.
fn flow_sizes(m: &Model, cfg: EngineConfig, flows: u64) -> Vec<f64> {
    per_flow_sum(m, cfg, flows, |_| 1.0)
}

#[test]
fn flow_sizes_follow_the_aggregate_model() {
    let mut m = load();
    // TCP flows too: their handshake, their LSTM's FIN and their close land on the drawn length,
    // also where the close drawn is none (an LSTM's FIN then adds a whole FIN exchange)
    for (kind, no_close) in [(FlowKind::Unconnected, false), (FlowKind::Connected, false), (FlowKind::Connected, true)] {
        if no_close {
            m.tcp.close_p = [0.0, 0.0, 0.0, 1.0];
        }
        let cfg = EngineConfig { seed: 4, arrival_scale: 1000.0, flow_kinds: vec![kind], ..Default::default() };
        let mut got = flow_sizes(&m, cfg.clone(), 3000);
        // (and the model's standing flows, which run outside the arrivals)
        assert!((3000..3000 + m.aggregate.standing.len()).contains(&got.len()), "{} flows", got.len());
        // what the aggregate model draws for the kind (the engine rounds it to whole packets)
        let mut rng = trafgen::rng::SplitMix64::new(77);
        let mut want: Vec<f64> = std::iter::repeat_with(|| m.aggregate.sample_flow(&mut rng))
            .filter(|d| d.kind == kind)
            .take(3000)
            .map(|d| d.packets.round().max(1.0))
            .collect();
        let d = ks(&mut got, &mut want);
        // in log10 packets (a standing flow's thousands of packets are one flow of 3,000)
        let lg = |v: &[f64]| -> Vec<f64> { v.iter().map(|p| p.log10()).collect() };
        let over = emd(&mut lg(&got), &mut lg(&want));
        eprintln!("{kind:?} (no close: {no_close}): KS {d:.3}, EMD {over:.4} (log10 packets) between the engine's flow sizes and the aggregate's draws");
        assert!(d < 0.05 && over < 0.02, "{kind:?} (no close: {no_close}): KS {d:.3}, EMD {over:.4} (log10 packets) between the engine's flow sizes and the aggregate's draws");
        // the LSTM alone ends flows by its END token: another distribution
        let lstm = EngineConfig { flow_lengths: FlowLengths::Lstm, ..cfg };
        let mut alone = flow_sizes(&m, lstm, 3000);
        let d_lstm = ks(&mut alone, &mut want);
        assert!(d_lstm > d, "{kind:?}: KS with the LSTM deciding lengths {d_lstm:.3}, with the aggregate {d:.3}");
    }
}

/// Options for a pcap of `flows` flows from the engine `cfg`.
fn flows_to_pcap(cfg: EngineConfig, flows: u64) -> trafgen::generate::GenerateOptions {
    trafgen::generate::GenerateOptions {
        engine: cfg,
        packets: None,
        flows: Some(flows),
        duration_s: None,
        pps: None,
        mbps: None,
        start_ns: 1_700_000_000_000_000_000,
        wire: Default::default(),
        format: trafgen::sink::OutputFormat::Pcap,
    }
}

/// `trafgen generate` in this process (its counters at hand).
fn generate_in_process(m: &Model, opts: &trafgen::generate::GenerateOptions, path: &Path) -> trafgen::generate::GenerateSummary {
    trafgen::generate::generate(m, opts, path, &std::sync::atomic::AtomicBool::new(false), &mut |_, _| {}).unwrap()
}

/// The shipped model with every TCP flow opening, unanswered and seen from one side with the
/// given shares in every size component, and no standing flows (arrivals only: a standing
/// flow runs through the stream, answered).
fn opening_tcp_model(unanswered_p: f64, one_sided_p: [f64; 2]) -> Model {
    let mut m = load();
    let k = m.aggregate.flow[FlowKind::Connected.index()].as_ref().unwrap().k();
    m.aggregate.component_open_p = vec![1.0; k];
    m.aggregate.component_unanswered_p = vec![unanswered_p; k];
    m.aggregate.component_one_sided_p = vec![one_sided_p; k];
    m.aggregate.standing.clear();
    m
}

/// (flags, sent by the client, time) of each packet of the first `flows` flows of a stream, by flow.
fn tcp_packets_by_flow(m: &Model, cfg: &EngineConfig, flows: u64) -> std::collections::HashMap<u64, Vec<(u16, bool, i64)>> {
    let mut e = Engine::new(m, cfg.clone()).unwrap();
    e.limit_flows(flows);
    let mut by_flow: std::collections::HashMap<u64, Vec<(u16, bool, i64)>> = Default::default();
    for p in e.by_ref() {
        by_flow.entry(p.flow_id).or_default().push((p.tcp_flags, p.direction == trafgen::flow::Direction::Forward, p.ts_ns));
    }
    by_flow
}

#[test]
fn an_attempt_nobody_answers_sends_its_syn_again_and_nothing_else() {
    // every opening TCP flow unanswered (a scan of dead ports)
    let m = opening_tcp_model(1.0, [0.0; 2]);
    let cfg = EngineConfig { seed: 13, arrival_scale: 1000.0, flow_kinds: vec![FlowKind::Connected], ..Default::default() };
    let flows = tcp_packets_by_flow(&m, &cfg, 500);
    use trafgen::capture::TcpFlags;
    let arrivals: Vec<_> = flows.values().collect();
    assert_eq!(arrivals.len(), 500);
    for v in &arrivals {
        assert!(v.iter().all(|&(f, fwd, _)| f == TcpFlags::SYN && fwd), "an unanswered flow sends its SYN only, from the client: {v:?}");
    }
    // retransmissions are spaced in time, not a burst
    let again = arrivals.iter().filter(|v| v.len() >= 2).count();
    let spaced = arrivals.iter().filter(|v| v.len() >= 2 && v.windows(2).all(|w| w[1].2 > w[0].2)).count();
    assert!(again > 50 && spaced == again, "{spaced} of {again} flows with retransmitted SYNs spaced");
    // on the wire: the same SYN again (same sequence number), valid TCP
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("syns.pcap");
    let opts = flows_to_pcap(cfg, 300);
    let sum = generate_in_process(&m, &opts, &path);
    // (no SYN-ACK made up for them)
    assert_eq!(sum.write.wire.repairs.handshake_forced, 0, "{:?}", sum.write.wire.repairs);
    let o = trafgen(&["validate", path.to_str().unwrap()]);
    assert!(o.status.success(), "violations:\n{}", String::from_utf8_lossy(&o.stdout));
    let report = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(report.contains("violations_total                        0"), "{report}");
}

#[test]
fn a_flow_seen_from_one_side_hides_the_other_sides_packets() {
    // every TCP flow opens, is answered, and is seen from the client's side or the server's,
    // half each (a tap on one direction of a link)
    let mut m = opening_tcp_model(0.0, [0.5, 0.5]);
    let cfg = EngineConfig { seed: 14, arrival_scale: 1000.0, flow_kinds: vec![FlowKind::Connected], ..Default::default() };
    let mut e = Engine::new(&m, cfg.clone()).unwrap();
    e.limit_flows(600);
    let mut flows: std::collections::HashMap<u64, Vec<(u16, bool, bool)>> = Default::default();
    for p in e.by_ref() {
        flows.entry(p.flow_id).or_default().push((p.tcp_flags, p.direction == trafgen::flow::Direction::Forward, p.hidden));
    }
    use trafgen::capture::TcpFlags;
    let (mut from_client, mut from_server) = (0, 0);
    for v in flows.values() {
        let seen: Vec<_> = v.iter().filter(|r| !r.2).collect();
        let side = seen[0].1;
        assert!(seen.iter().all(|r| r.1 == side), "one side seen: {v:?}");
        // the other side's packets are there for the connection's state, hidden
        assert!(v.iter().filter(|r| r.1 != side).all(|r| r.2), "{v:?}");
        // the handshake as that side sends it
        let first = if side { TcpFlags::SYN } else { TcpFlags::SYN | TcpFlags::ACK };
        assert_eq!(seen[0].0, first, "{v:?}");
        if side { from_client += 1 } else { from_server += 1 }
    }
    assert!((200..=400).contains(&from_client) && from_client + from_server == 600, "{from_client} from the client, {from_server} from the server");
    let hidden: u64 = flows.values().map(|v| v.iter().filter(|r| r.2).count() as u64).sum();
    assert_eq!(e.stats().hidden_packets, hidden);
    // on the wire: only the seen side's frames, as many as the flows drew (the same as with
    // both sides seen), and no repair the hidden records caused; the server-side flows show
    // SYN-ACKs without SYNs, as a one-sided capture does
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("one-sided.pcap");
    let mut opts = flows_to_pcap(cfg, 300);
    // (jumbo frames: no record of the model's offloaded segments is cut in pieces, so frames
    // and records are one to one)
    opts.wire.mtu = 9000;
    let run = |m: &Model, both_sides: bool| {
        let opts = trafgen::generate::GenerateOptions { engine: EngineConfig { both_sides, ..opts.engine.clone() }, ..opts.clone() };
        generate_in_process(m, &opts, &path).write.wire
    };
    let one_sided = std::mem::take(&mut m.aggregate.component_one_sided_p);
    let both = run(&m, false);
    m.aggregate.component_one_sided_p = one_sided;
    // `--both-sides`: whole conversations from the same model, as if it had none
    assert_eq!(run(&m, true), both);
    let wire = run(&m, false);
    assert_eq!((both.hidden, wire.frames), (0, both.frames));
    assert!(wire.hidden > 0);
    let r = &wire.repairs;
    assert_eq!((r.handshake_forced, r.flags_removed, r.data_after_fin, r.dropped_after_rst), (0, 0, 0, 0), "{r:?}");
    let o = trafgen(&["validate", "--json", path.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!("{report}");
    assert!(report.to_string().contains("syn_ack_without_syn"), "{report}");
}

#[test]
fn flows_seen_from_the_middle_carry_timestamps_as_often_as_the_model_says_and_learn_back() {
    // every TCP flow seen from the middle (a backbone capture), 3 in 4 with timestamps
    let mut m = opening_tcp_model(0.0, [0.0; 2]);
    let k = m.aggregate.component_open_p.len();
    m.aggregate.component_open_p = vec![0.0; k];
    m.aggregate.component_timestamps_p = vec![0.75; k];
    // ephemeral client ports only: a flow seen from the middle on a fixed port's 4-tuple
    // after one that was reset reads as packets after the RST to a validator
    m.aggregate.client_ports = Default::default();
    let cfg = EngineConfig { seed: 15, arrival_scale: 1000.0, flow_kinds: vec![FlowKind::Connected], ..Default::default() };
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("mid-stream.pcap");
    let sum = generate_in_process(&m, &flows_to_pcap(cfg, 400), &path);
    // no repair: the shipped model's coalesced segments (a capture host's offload, over
    // 1,460 bytes) go out in pieces as big as the MTU allows, with timestamps or without
    let r = &sum.write.wire.repairs;
    assert_eq!(r.total(), 0, "{r:?}");
    assert!(sum.write.wire.segmented > 0, "{:?}", sum.write.wire);
    let o = trafgen(&["validate", path.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("violations_total                        0"), "{}", String::from_utf8_lossy(&o.stdout));
    // read back as training data: each flow's segments all carry the option or none does
    // (a flow's first segment decides; checked on every segment below), 3 in 4 flows do
    let ds = trafgen::model::dataset::collect(std::slice::from_ref(&path), &Default::default()).unwrap();
    let mid: Vec<_> = ds.flow_rows.iter().filter(|r| r.kind == FlowKind::Connected && r.mid_stream).collect();
    let with = mid.iter().filter(|r| r.timestamps == Some(true)).count() as f64 / mid.len() as f64;
    assert!(mid.len() >= 350 && (0.68..0.82).contains(&with), "{} of {} flows with timestamps", with * mid.len() as f64, mid.len());
    let o = Command::new("tshark").args(["-r", path.to_str().unwrap(), "-Y", "tcp", "-T", "fields", "-e", "tcp.stream", "-e", "tcp.option_kind"]).output();
    if let Some(o) = o.ok().filter(|o| o.status.success()) {
        let mut per_flow: std::collections::HashMap<String, std::collections::HashSet<bool>> = Default::default();
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let mut f = line.split('\t');
            let stream = f.next().unwrap_or_default().to_string();
            let ts = f.next().unwrap_or_default().split(',').any(|k| k == "8");
            per_flow.entry(stream).or_default().insert(ts);
        }
        assert!(per_flow.values().all(|s| s.len() == 1), "a flow mixes segments with and without timestamps");
    }
    // a model without the table sends no options on such flows
    m.aggregate.component_timestamps_p.clear();
    generate_in_process(&m, &flows_to_pcap(EngineConfig { seed: 15, arrival_scale: 1000.0, flow_kinds: vec![FlowKind::Connected], ..Default::default() }, 100), &path);
    let ds = trafgen::model::dataset::collect(&[path], &Default::default()).unwrap();
    assert!(ds.flow_rows.iter().all(|r| r.timestamps != Some(true)));
}

#[test]
fn the_lstm_replays_no_handshake_as_data() {
    // the LSTM learnt whole flows, handshake first: after the heads' handshake its own SYN,
    // SYN-ACK and ACK tokens move its state on and send nothing (they once came out as empty
    // ACKs right after the handshake)
    let m = load();
    let cfg = EngineConfig { seed: 12, arrival_scale: 1000.0, flow_kinds: vec![FlowKind::Connected], ..Default::default() };
    let mut e = Engine::new(&m, cfg).unwrap();
    e.limit_flows(2000);
    let mut seen: std::collections::HashMap<u64, Vec<(u32, u16, bool)>> = Default::default();
    for p in e.by_ref() {
        let v = seen.entry(p.flow_id).or_default();
        if v.len() < 4 {
            v.push((p.size, p.tcp_flags, p.direction == trafgen::flow::Direction::Forward));
        }
    }
    use trafgen::capture::TcpFlags;
    let opened: Vec<_> = seen.values().filter(|v| v.len() == 4 && v[0].1 & TcpFlags::SYN != 0).collect();
    // the handshake's ACK, then another empty one from the client (as long: no payload)
    let replayed = opened.iter().filter(|v| v[3].1 == TcpFlags::ACK && v[3].2 && v[3].0 == v[2].0).count();
    let share = replayed as f64 / opened.len() as f64;
    eprintln!("{replayed} of {} opened flows follow their handshake ACK with another empty ACK", opened.len());
    assert!(opened.len() > 500 && share < 0.2, "{replayed} of {} opened flows follow their handshake ACK with another empty ACK", opened.len());
}

#[test]
fn a_four_way_close_sends_the_extra_acks_its_flow_length_had_in_training() {
    // every TCP flow opens, is answered and closes four-way; flows of 10 packets close with
    // no extra ACK, every other length with one (an IoT hub ACKs its server's FIN twice)
    let mut m = opening_tcp_model(0.0, [0.0; 2]);
    m.tcp.close_p = [1.0, 0.0, 0.0, 0.0];
    m.tcp.close_acks = (0..trafgen::model::tcp_heads::ACK_BUCKETS).map(|i| if i == 9 { [100.0, 0.0] } else { [0.0, 100.0] }).collect();
    m.tcp.close_ack_log_dt = [-3.0; trafgen::model::tcp_heads::QUANTILES];
    let cfg = EngineConfig { seed: 15, arrival_scale: 1000.0, flow_kinds: vec![FlowKind::Connected], ..Default::default() };
    let flows = tcp_packets_by_flow(&m, &cfg, 2000);
    use trafgen::capture::TcpFlags;
    let fin = |f: u16| f & TcpFlags::FIN != 0;
    let (mut ten, mut other) = ([0usize; 2], [0usize; 2]);
    for v in flows.values() {
        // the close: from the first FIN on
        let Some(i) = v.iter().position(|p| fin(p.0)) else { continue };
        let (len, c) = (v.len(), &v[i..]);
        let (a, b) = (c[0].1, !c[0].1);
        let acks = c.len().saturating_sub(4);
        let shape_ok = c.len() >= 4
            && c[1..c.len() - 2].iter().all(|p| p.0 == TcpFlags::ACK && p.1 == b)
            && fin(c[c.len() - 2].0) && c[c.len() - 2].1 == b
            && c[c.len() - 1].0 == TcpFlags::ACK && c[c.len() - 1].1 == a;
        assert!(shape_ok && acks <= 1, "a {len}-packet flow closes {c:?}");
        // (the extra ACK comes its drawn gap, 1 ms, after the first)
        if acks == 1 {
            assert!((c[2].2 - c[1].2 - 1_000_000).abs() <= 1, "{c:?}");
        }
        // (an 8-packet flow has room for no extra ACK: handshake, a data packet, the close)
        match len {
            10 => ten[acks] += 1,
            9 | 11.. => other[acks] += 1,
            _ => assert_eq!(acks, 0, "a {len}-packet flow closes {c:?}"),
        }
    }
    eprintln!("10-packet flows: {ten:?} closes without/with the extra ACK; other lengths: {other:?}");
    assert!(ten[0] >= 20 && ten[1] * 20 <= ten[0], "10-packet flows: {ten:?}");
    assert!(other[1] >= 500 && other[0] * 20 <= other[1], "other lengths: {other:?}");
    // on the wire: the extra ACK (a duplicate of the first) is valid TCP
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("acks.pcap");
    generate_in_process(&m, &flows_to_pcap(cfg, 300), &path);
    let o = trafgen(&["validate", path.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success() && report.contains("violations_total                        0"), "{report}");
}

/// Seconds from first to last packet of each flow of `flows` flows with at least 2 packets.
fn flow_durations(m: &Model, cfg: EngineConfig, flows: u64) -> Vec<f64> {
    let mut e = Engine::new(m, cfg).unwrap();
    e.limit_flows(flows);
    let mut per: std::collections::HashMap<u64, (i64, i64, u32)> = Default::default();
    for p in e.by_ref() {
        let f = per.entry(p.flow_id).or_insert((p.ts_ns, p.ts_ns, 0));
        f.1 = p.ts_ns;
        f.2 += 1;
    }
    per.into_values().filter(|f| f.2 >= 2).map(|f| (f.1 - f.0) as f64 / 1e9).collect()
}

#[test]
fn flow_durations_follow_the_aggregate_model() {
    let m = load();
    for kind in [FlowKind::Unconnected, FlowKind::Connected] {
        let cfg = EngineConfig { seed: 6, arrival_scale: 1000.0, flow_kinds: vec![kind], ..Default::default() };
        let mut got = flow_durations(&m, cfg.clone(), 3000);
        // what the aggregate model draws for the kind's flows of 2 packets or more
        let mut rng = trafgen::rng::SplitMix64::new(78);
        let mut want: Vec<f64> = std::iter::repeat_with(|| m.aggregate.sample_flow(&mut rng))
            .filter(|d| d.kind == kind && d.packets.round() >= 2.0)
            .take(got.len())
            .map(|d| d.duration_s)
            .collect();
        let d = ks(&mut got, &mut want);
        // the LSTM's gaps alone: every flow at its kind's typical pace
        let mut alone = flow_durations(&m, EngineConfig { flow_timing: FlowTiming::Lstm, ..cfg }, 3000);
        let d_lstm = ks(&mut alone, &mut want);
        eprintln!("{kind:?}: KS of durations against the aggregate's draws {d:.3}, with the LSTM's gaps {d_lstm:.3}");
        // TCP flows: the handshake and teardown keep the heads' timing, which the drawn
        // duration knows only by its typical value (measured: KS 0.29 against 0.35)
        let bound = if kind == FlowKind::Unconnected { 0.15 } else { 1.0 };
        assert!(d < bound && d < d_lstm, "{kind:?}: KS {d:.3} with drawn durations, {d_lstm:.3} with the LSTM's gaps");
    }
}

/// Bytes (IP total lengths) of each flow of `flows` flows.
fn flow_bytes(m: &Model, cfg: EngineConfig, flows: u64) -> Vec<f64> {
    per_flow_sum(m, cfg, flows, |p| f64::from(p.size))
}

/// Earth mover's distance between two samples of equal size (mean gap of their sorted values).
fn emd(a: &mut [f64], b: &mut [f64]) -> f64 {
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len().min(b.len()) as f64
}

#[test]
fn flow_bytes_follow_the_aggregate_model() {
    let m = load();
    for kind in [FlowKind::Unconnected, FlowKind::Connected] {
        let cfg = EngineConfig { seed: 9, arrival_scale: 1000.0, flow_kinds: vec![kind], ..Default::default() };
        // in log10 bytes: a flow of 600 bytes at 1,200 is as far off as one of 6,000 at 12,000
        let lg = |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(|b| b.max(1.0).log10()).collect() };
        let mut got = lg(flow_bytes(&m, cfg.clone(), 3000));
        let mut rng = trafgen::rng::SplitMix64::new(79);
        let mut want = lg(std::iter::repeat_with(|| m.aggregate.sample_flow(&mut rng)).filter(|d| d.kind == kind).take(3000).map(|d| d.bytes).collect());
        let d = emd(&mut got, &mut want);
        // the LSTM's tokens as drawn: every flow with its kind's typical sizes
        let mut alone = lg(flow_bytes(&m, EngineConfig { flow_bytes: FlowBytes::Lstm, ..cfg }, 3000));
        let d_lstm = emd(&mut alone, &mut want);
        eprintln!("{kind:?}: EMD of log10 flow bytes against the aggregate's draws {d:.3}, with the LSTM's sizes {d_lstm:.3}");
        assert!(d < 0.1 && d < 0.7 * d_lstm, "{kind:?}: EMD {d:.3} steered towards the drawn bytes, {d_lstm:.3} with the LSTM's sizes");
    }
}

#[test]
fn services_keep_their_fixed_client_ports_and_single_flow_hosts_get_hosts_of_their_own() {
    let mut m = load();
    let kind = FlowKind::Unconnected;
    // every UDP service of the model: half its flows from client port 999
    let rows = m.aggregate.ports[kind.index()].iter().map(|w| FixedPort { server_port: w.value.0, ip_proto: w.value.1, client_port: 999, p: 0.5 });
    m.aggregate.client_ports = ClientPorts { rows: rows.collect() };
    m.aggregate.client_ports.rows.sort_by_key(|r| (r.server_port, r.ip_proto, r.client_port));
    // every client rank from 2 on is a host seen once in training (and none on both sides,
    // whose ranks are hosts of the table wherever they lie)
    m.aggregate.fresh_rank = [2, u32::MAX];
    m.aggregate.shared_hosts = Default::default();
    let cfg = EngineConfig { seed: 5, arrival_scale: 1000.0, flow_kinds: vec![kind], ..Default::default() };
    let run = |m: &Model| -> Vec<trafgen::synth::SynthPacket> {
        let mut e = Engine::new(m, cfg.clone()).unwrap();
        e.limit_flows(2000);
        let mut first: std::collections::BTreeMap<u64, trafgen::synth::SynthPacket> = Default::default();
        for p in e.by_ref() {
            first.entry(p.flow_id).or_insert(p);
        }
        first.into_values().collect()
    };
    let flows = run(&m);
    let listed = |p: &trafgen::synth::SynthPacket| m.aggregate.ports[kind.index()].iter().any(|w| w.value.0 == p.server_port);
    let (fixed, of) = (flows.iter().filter(|p| listed(p) && p.client_port == 999).count(), flows.iter().filter(|p| listed(p)).count());
    assert!((fixed as f64 / of as f64 - 0.5).abs() < 0.05, "{fixed} of {of} flows from the fixed port");
    assert!(flows.iter().all(|p| p.client_port == 999 || p.client_port == 0), "other flows: the plan picks");
    // hosts of their own: a new rank per flow, past the tables; ranks 0 and 1 stay shared
    let fresh: Vec<u32> = flows.iter().map(|p| p.client_rank).filter(|&r| r >= 2).collect();
    assert!(fresh.iter().all(|&r| r >= trafgen::model::aggregate::FRESH_HOSTS));
    assert_eq!(fresh.iter().collect::<std::collections::HashSet<_>>().len(), fresh.len(), "each its own");
    assert!(flows.len() - fresh.len() > 100, "{} flows on ranks 0 and 1", flows.len() - fresh.len());
    // neither table changes any other draw: sizes, times and server ports stay as they were
    let mut plain = load();
    plain.aggregate.client_ports = ClientPorts::default();
    plain.aggregate.fresh_rank = [u32::MAX; 2];
    let before = run(&plain);
    assert!(before.iter().zip(&flows).all(|(a, b)| (a.ts_ns, a.size, a.server_port) == (b.ts_ns, b.size, b.server_port)));
}

#[test]
fn a_host_seen_on_both_sides_keeps_one_address() {
    let m = load();
    let shared = &m.aggregate.shared_hosts;
    assert!(!shared.hosts.is_empty(), "the default model has hosts seen on both sides");
    let mut e = Engine::new(&m, EngineConfig { seed: 3, arrival_scale: 1000.0, ..Default::default() }).unwrap();
    e.limit_flows(5000);
    let mut first: std::collections::BTreeMap<u64, trafgen::synth::SynthPacket> = Default::default();
    for p in e.by_ref() {
        first.entry(p.flow_id).or_insert(p);
    }
    // every end on the other side's prefix is a host of the table, at its kept side's rank
    let mut crossed = 0;
    for p in first.values() {
        for (end, (side, rank)) in [(p.sides[0], p.client_rank), (p.sides[1], p.server_rank)].into_iter().enumerate() {
            if side != trafgen::synth::OWN_SIDES[end] {
                crossed += 1;
                let kept = |h: &&SharedHost| if end == 0 { h.kept == Side::Server && h.server_rank == rank } else { h.kept == Side::Client && h.client_rank == rank };
                assert!(shared.hosts.iter().any(|h| kept(&h)), "flow {}: end {end} at {side:?} rank {rank} is no shared host", p.flow_id);
            }
        }
        assert_ne!((p.sides[0], p.client_rank), (p.sides[1], p.server_rank), "flow {}: one host at both ends", p.flow_id);
    }
    assert!(crossed > 50, "{crossed} of {} flows have an end on the other side", first.len());
}

#[test]
fn the_rate_that_pps_divides_by_is_the_long_run_rate() {
    let mut m = load();
    // flows capped at 100 packets and gaps between flow starts at 1 s, so that 10,000 flows
    // pin the long-run mean down: the default model's gaps reach 26 minutes, and the rate of
    // 10,000 of its flows' draws scatters from 0.83 to 1.18 of the long run (20 streams; capped:
    // 0.98 to 1.05). Realised over the engine's stream, capped: 0.946 to 0.996 of the estimate
    // over seeds 1, 2, 3 and 9.
    m.aggregate.gap_range[1] = m.aggregate.gap_range[1].min(0.0);
    let cfg = EngineConfig { seed: 9, max_flow_packets: 100, ..Default::default() };
    let rate = Engine::pilot_rate(&m, &cfg, 5_000).unwrap();
    let mut e = Engine::new(&m, cfg).unwrap();
    e.limit_flows(10_000);
    let (mut n, mut last) = (0u64, 0i64);
    for p in e.by_ref() {
        n += 1;
        last = p.ts_ns;
    }
    let realised = n as f64 / (last as f64 / 1e9);
    eprintln!("estimated {:.3} pps, realised {realised:.3} over {n} packets", rate.pps);
    assert!((realised / rate.pps - 1.0).abs() < 0.08, "estimated {:.3} pps, realised {realised:.3} over {n} packets", rate.pps);
}

#[test]
fn tcp_flows_open_with_a_handshake_as_often_as_in_training() {
    let mut m = load();
    m.aggregate.tcp_open_p = 0.3;
    // (the share of the kind as a whole, not of each size's flows)
    m.aggregate.component_open_p.clear();
    let cfg = EngineConfig { seed: 8, arrival_scale: 1000.0, flow_kinds: vec![FlowKind::Connected], ..Default::default() };
    let mut e = Engine::new(&m, cfg).unwrap();
    e.limit_flows(2000);
    let mut first: std::collections::HashMap<u64, u16> = Default::default();
    for p in e.by_ref() {
        first.entry(p.flow_id).or_insert(p.tcp_flags);
    }
    let opened = first.values().filter(|&&f| f & trafgen::capture::TcpFlags::SYN != 0).count() as f64 / first.len() as f64;
    assert!((opened - 0.3).abs() < 0.04, "{opened:.3} of TCP flows open with SYN, the model says 0.3");
}

#[test]
fn a_standing_flow_runs_through_the_stream_at_its_rate_with_its_ports() {
    let mut m = load();
    let stream = StandingFlow {
        kind: FlowKind::Unconnected,
        pps: 80.0,
        server_port: 26454,
        client_port: 18826,
        ip_proto: 17,
        v6: false,
        client_rank: 0,
        server_rank: 1,
        mid_stream: false,
        share: 1.0,
        chain: Vec::new(),
        gaps: Vec::new(),
    };
    let cfg = EngineConfig { seed: 3, ..Default::default() };
    let without = Engine::pilot_rate(&m, &cfg, 2_000).unwrap().pps;
    m.aggregate.standing = vec![stream.clone()];
    let with = Engine::pilot_rate(&m, &cfg, 2_000).unwrap().pps;
    assert!((with - without - 80.0).abs() < 1e-6, "the steady rate counts the stream: {without} -> {with}");
    // 60 s: the stream is there from its first second to its last, at 80 packets/s
    let mut e = Engine::new(&m, cfg.clone()).unwrap();
    e.limit_duration(60_000_000_000);
    let mut ts = Vec::new();
    for p in e.by_ref().filter(|p| p.client_port == 18826) {
        assert_eq!((p.server_port, p.proto), (26454, trafgen::synth::Proto::Udp));
        ts.push(p.ts_ns as f64 / 1e9);
    }
    let n = ts.len() as f64;
    assert!((n / 60.0 / 80.0 - 1.0).abs() < 0.25, "{n} packets in 60 s, 4800 expected");
    // (the stream keeps its LSTM's pauses, scaled to its rate: the last one may reach past
    // the end, but an early end would leave more than any pause within)
    let pause = ts.windows(2).map(|w| w[1] - w[0]).fold(1.0, f64::max);
    let last = *ts.last().unwrap();
    assert!(ts[0] < 1.0 && 60.0 - last <= pause, "from {} s to {last} s (longest pause {pause} s)", ts[0]);
    for w in 0..6 {
        let k = ts.iter().filter(|&&t| t >= w as f64 * 10.0 && t < (w + 1) as f64 * 10.0).count();
        assert!(k > 400, "{k} packets in seconds {}..{}", w * 10, (w + 1) * 10);
    }
    // a stream limited to so many flows ends with its last one; the stream ends with it
    let mut e = Engine::new(&m, cfg.clone()).unwrap();
    e.limit_flows(20);
    let ids: std::collections::HashSet<u64> = e.by_ref().map(|p| p.flow_id).collect();
    assert_eq!(ids.len(), 21, "20 flows and the standing one");
    // a capture's share: in a stream with that probability (one draw per seed)
    m.aggregate.standing[0].share = 0.3;
    let has = (0..200)
        .filter(|&seed| {
            let mut e = Engine::new(&m, EngineConfig { seed, ..cfg.clone() }).unwrap();
            e.limit_duration(1_000_000_000);
            e.by_ref().any(|p| p.client_port == 18826)
        })
        .count();
    assert!((40..80).contains(&has), "{has} of 200 streams have it, 60 expected");
    // its own chain: from the client (state 2c) 12.5 ms after the previous packet, then from
    // the server (state 2c + 1) 1 ms after, and again
    let k = m.packet_gmm.k();
    let n = states(k);
    let c = k / 2;
    let (ask, answer) = (2 * c, 2 * c + 1);
    let mut own = StandingFlow { chain: vec![0.0; (n + 1) * n], gaps: vec![f64::NAN; n * GAP_QUANTILES], ..stream };
    own.chain[ask * n + answer] = 1.0;
    own.chain[answer * n + ask] = 1.0;
    own.chain[n * n + ask] = 1.0;
    own.gaps[ask * GAP_QUANTILES..(ask + 1) * GAP_QUANTILES].fill(0.0125f64.log10());
    own.gaps[answer * GAP_QUANTILES..(answer + 1) * GAP_QUANTILES].fill(0.001f64.log10());
    m.aggregate.standing = vec![own];
    let mut e = Engine::new(&m, cfg).unwrap();
    e.limit_duration(10_000_000_000);
    let mine: Vec<_> = e.by_ref().filter(|p| p.client_port == 18826).collect();
    assert!((750..850).contains(&mine.len()), "{} packets in 10 s at 80/s", mine.len());
    // paced to 80/s (a mean gap of 12.5 ms): the 12.5 and 1 ms gaps are stretched by 25/13.5
    let stretch = 25.0 / 13.5;
    // (after the first 100 packets, which set the running mean)
    for w in mine[100..].windows(2) {
        let (g, answered) = ((w[1].ts_ns - w[0].ts_ns) as f64 / 1e6, w[1].direction == trafgen::flow::Direction::Backward);
        assert_ne!(w[0].direction, w[1].direction, "they alternate");
        let want = if answered { 1.0 } else { 12.5 } * stretch;
        assert!((g / want - 1.0).abs() < 0.05, "gap {g:.3} ms, {want:.3} ms expected");
    }
}

#[test]
fn a_warm_start_is_the_cold_streams_continuation_seen_mid_stream_and_valid() {
    let m = load();
    // (the default model's flows start 9 s apart on average, with pauses of up to an hour
    // between sessions: at 500 times its rate, no pause is as long as the first 2 s)
    let cfg = EngineConfig { seed: 6, arrival_scale: 500.0, ..Default::default() };
    // packets in the first and the second 2 s of a 4 s stream
    let windows = |cfg: EngineConfig| -> ([u64; 2], Vec<trafgen::synth::SynthPacket>) {
        let mut e = Engine::new(&m, cfg).unwrap();
        e.limit_duration(4_000_000_000);
        let ps: Vec<_> = e.by_ref().collect();
        let mut n = [0u64; 2];
        ps.iter().for_each(|p| n[(p.ts_ns / 2_000_000_000) as usize] += 1);
        (n, ps)
    };
    let (warm, ps) = windows(EngineConfig { warm_up_s: 20.0, ..cfg.clone() });
    assert!(ps.iter().all(|p| (0..4_000_000_000).contains(&p.ts_ns)), "every packet inside the window");
    assert!(ps.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns), "in time order");
    assert!(warm[0] > 0, "traffic from the first instant: {warm:?}");
    // the warm stream is the cold one's continuation: the same flows, 20 s on
    let mut e = Engine::new(&m, cfg.clone()).unwrap();
    e.limit_duration(24_000_000_000);
    let tail: Vec<i64> = e.filter(|p| p.ts_ns >= 20_000_000_000).map(|p| p.ts_ns - 20_000_000_000).collect();
    assert_eq!(tail, ps.iter().map(|p| p.ts_ns).collect::<Vec<_>>());
    // the warm-up run ahead of time (as a sender's producer does it, showing progress, and
    // stopped once and resumed) gives the very same stream
    let fast = EngineConfig { warm_up_s: 30.0, ..cfg.clone() };
    let engine = || {
        let mut e = Engine::new(&m, fast.clone()).unwrap();
        // (a second: the model's traffic comes in bursts, and 200 ms can fall between two)
        e.limit_duration(1_000_000_000);
        e
    };
    let stream = |e: &mut Engine| -> Vec<i64> { e.by_ref().map(|p| p.ts_ns).collect() };
    let cold = stream(&mut engine());
    let mut e = engine();
    let mut seen = Vec::new();
    assert!(!e.warm_up(500, |n| { seen.push(n); false }), "stopped by its caller");
    assert!(e.warm_up(500, |n| { seen.push(n); true }), "resumed to its end");
    assert!(seen.len() > 2 && seen.windows(2).all(|w| w[0] < w[1]), "progress reported: {seen:?}");
    let before = e.stats().warm_up_packets;
    assert!(e.warm_up(1, |_| panic!("no more warm-up")), "a finished warm-up stays finished");
    assert!(!cold.is_empty());
    assert_eq!(stream(&mut e), cold);
    assert_eq!(e.stats().warm_up_packets, before);
    // TCP flows in progress at the start are seen from the middle: their first packet is no SYN
    let mut first: std::collections::HashMap<u64, u16> = Default::default();
    for p in ps.iter().filter(|p| p.proto == trafgen::synth::Proto::Tcp) {
        first.entry(p.flow_id).or_insert(p.tcp_flags);
    }
    let mid = first.values().filter(|&&f| f & trafgen::capture::TcpFlags::SYN == 0).count();
    assert!(mid > 0, "{mid} of {} TCP flows mid-stream", first.len());
    // and the frames of such flows are consistent TCP (sequence numbers, checksums)
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("warm.pcap");
    generate(&p, &["--duration", "10", "--warm-up", "60", "--pps", "500", "--seed", "2"]);
    let o = trafgen(&["validate", p.to_str().unwrap()]);
    assert!(o.status.success(), "violations:\n{}", String::from_utf8_lossy(&o.stdout));
    // in the file too: TCP flows whose first frame is no SYN (the wire stage makes up no
    // handshake for them)
    let csv = d.path().join("features");
    assert!(trafgen(&["inspect", "--features-csv", csv.to_str().unwrap(), p.to_str().unwrap()]).status.success());
    let flows = std::fs::read_to_string(csv.join("flows.csv")).unwrap();
    let mut lines = flows.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let (kind, mid) = (header.iter().position(|&h| h == "kind").unwrap(), header.iter().position(|&h| h == "mid_stream").unwrap());
    let tcp: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect::<Vec<_>>()).filter(|c| c[kind] == "connected").collect();
    let mid_stream = tcp.iter().filter(|c| c[mid] == "1").count();
    assert!(mid_stream > 0 && mid_stream < tcp.len(), "{mid_stream} of {} TCP flows in the file mid-stream", tcp.len());
}

/// Records in `path` read by our reader (every one whole: a cut record is an error), and
/// tcpdump's count of the same file when tcpdump is installed.
fn whole_records(path: &Path) -> u64 {
    let mut r = trafgen::capture::CaptureReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut n = 0u64;
    while r.next_record().unwrap_or_else(|e| panic!("record #{n}: {e}")).is_some() {
        n += 1;
    }
    match Command::new("tcpdump").arg("-r").arg(path).arg("--count").output() {
        Err(_) => eprintln!("tcpdump not installed: tcpdump check skipped"),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success() && !err.contains("truncated"), "tcpdump -r {}: {err}", path.display());
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), format!("{n} packets"), "tcpdump's count");
        }
    }
    n
}

#[test]
fn sigterm_and_sigint_mid_run_leave_every_whole_record() {
    let d = tempfile::tempdir().unwrap();
    let dir = model_dir();
    for (sig, name) in [(libc::SIGTERM, "term.pcap"), (libc::SIGINT, "int.pcapng")] {
        let out = d.path().join(name);
        // a run far longer than the test: only the signal ends it
        let mut child = Command::new(env!("CARGO_BIN_EXE_trafgen"))
            .args(["generate", "-m", dir.to_str().unwrap(), "--packets", "1000000000", "--json", "-o"])
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // past the first 1 MiB buffer, so the file has records and more are buffered
        let t0 = Instant::now();
        while std::fs::metadata(&out).map_or(0, |m| m.len()) < 1 << 20 {
            assert!(t0.elapsed() < Duration::from_secs(60), "no data after 60 s");
            assert!(child.try_wait().unwrap().is_none(), "generate ended before the signal");
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: kill on the pid of our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "signal {sig}: {:?}\n{}", o.status, String::from_utf8_lossy(&o.stderr));
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON summary");
        assert_eq!(s["write"]["interrupted"], true, "{s}");
        let frames = s["write"]["frames"].as_u64().unwrap();
        assert!(frames > 1000, "{frames} frames");
        assert_eq!(s["write"]["file_bytes"].as_u64().unwrap(), std::fs::metadata(&out).unwrap().len());
        // every frame it reports is in the file, whole, and nothing else
        assert_eq!(whole_records(&out), frames, "signal {sig}");
    }
}

/// A tmpfs mounted over a directory; unmounted on drop (also when the test fails).
struct Tmpfs(std::ffi::CString);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "256k") over `dir`, or says why it cannot.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root (mounting a tmpfs needs it)".into());
        }
        let target = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        let opts = std::ffi::CString::new(format!("size={size}")).unwrap();
        // SAFETY: valid C strings; a fresh tmpfs over our own empty temp dir.
        let rc = unsafe { libc::mount(c"trafgen-test".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, opts.as_ptr().cast()) };
        if rc != 0 {
            return Err(format!("cannot mount a tmpfs: {}", std::io::Error::last_os_error()));
        }
        Ok(Tmpfs(target))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // SAFETY: a valid C string; MNT_DETACH so a busy mount still goes.
        unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn a_full_file_system_is_a_clear_error_and_leaves_whole_records() {
    let d = tempfile::tempdir().unwrap();
    let _fs = match Tmpfs::mount(d.path(), "256k") {
        Ok(m) => m,
        Err(why) => return eprintln!("skipping: {why}"),
    };
    let out = d.path().join("full.pcap");
    let o = trafgen(&["generate", "-m", model_dir().to_str().unwrap(), "-o", out.to_str().unwrap(), "--packets", "100000"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{}: disk full (No space left on device", out.display())), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // "... holds N whole frames (B bytes)": exactly what the file holds
    let tail = err.split("holds ").nth(1).unwrap_or_else(|| panic!("{err}"));
    let frames: u64 = tail.split_whitespace().next().unwrap().parse().unwrap();
    let bytes: u64 = tail.split('(').nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(frames > 100, "{err}");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), bytes);
    assert_eq!(whole_records(&out), frames);
}

#[test]
fn a_missing_or_damaged_model_is_an_error_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let copy = |name: &str| -> PathBuf {
        let to = d.path().join(name);
        std::fs::create_dir(&to).unwrap();
        for e in std::fs::read_dir(model_dir()).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
        to
    };
    let missing_dir = d.path().join("no-such-model");
    let no_manifest = copy("no-manifest");
    std::fs::remove_file(no_manifest.join("manifest.toml")).unwrap();
    let bad_toml = copy("bad-toml");
    let m = std::fs::read_to_string(bad_toml.join("manifest.toml")).unwrap();
    // the first key's `=` doubled: not TOML
    std::fs::write(bad_toml.join("manifest.toml"), m.replacen(" = ", " = = ", 1)).unwrap();
    let cut = copy("cut");
    let f = cut.join("packet_vae.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let empty = copy("empty");
    std::fs::write(empty.join("aggregate_gmm.safetensors"), b"").unwrap();
    let no_lstm = copy("no-lstm");
    std::fs::remove_file(no_lstm.join("flow_lstm_connected.safetensors")).unwrap();
    for (dir, names, says) in [
        (&missing_dir, missing_dir.clone(), "no such model directory"),
        (&no_manifest, no_manifest.join("manifest.toml"), "cannot read"),
        (&bad_toml, bad_toml.join("manifest.toml"), &format!("{}:", m.lines().position(|l| l.contains(" = ")).unwrap() + 1) as &str),
        (&cut, cut.join("packet_vae.safetensors"), "not a valid safetensors file (truncated or corrupt)"),
        (&empty, empty.join("aggregate_gmm.safetensors"), "not a valid safetensors file (truncated or corrupt)"),
        (&no_lstm, no_lstm.join("flow_lstm_connected.safetensors"), "cannot read"),
    ] {
        let out = d.path().join("out.pcap");
        let o = trafgen(&["generate", "-m", dir.to_str().unwrap(), "-o", out.to_str().unwrap(), "--packets", "10"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {err}", dir.display());
        assert!(err.contains(&format!("{}: {says}", names.display())), "{}: {err}", dir.display());
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "an output file was created for a model that does not load");
    }
}
