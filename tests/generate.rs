//! `trafgen generate` and the engine behind it, on the shipped `models/default`: the same seed
//! gives the same bytes, limits are exact, the multiplier scales time, memory stays bounded,
//! and the output passes our validator and tshark with the model's flow-kind mix.

use std::path::{Path, PathBuf};
use std::process::Command;

use trafgen::flow::FlowKind;
use trafgen::model::Model;
use trafgen::synth::{Engine, EngineConfig};

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
    assert!(rss_at[1] <= rss_at[0] + 4 << 20, "RSS grew from {} to {}", rss_at[0], rss_at[1]);
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
