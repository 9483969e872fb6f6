//! Generation throughput (issue 5): packets/s from a model to a pcap on disk, on one core,
//! with a breakdown, next to `tcpdump -r` copying the very file we wrote (the I/O floor).
//!
//! Stages, each timed on one core (the thread is pinned to CPU 0; libtorch is not used after
//! the engine is built):
//! 1. engine: the model-driven engine alone (aggregate draws, lean LSTM steps, packet bank,
//!    TCP heads, the time-ordered merge) — "model inference";
//! 2. engine + frames: records turned into checksummed frames (wire stage), not written;
//! 3. engine + frames + write: the whole `trafgen generate` path into a pcap file;
//! 4. floor: `tcpdump -r OUT -w COPY` on the file stage 3 wrote.
//!
//! The model is `models/default` (or `TRAFGEN_BENCH_MODEL`), its flow arrivals scaled so that
//! many flows are alive at once (`TRAFGEN_BENCH_SCALE`, default 535,000: ~0.9 M packets per
//! second of traffic time; the model's own rate is 1.69 packets/s since its flow-start gaps
//! follow the training gaps' own marginals, 13.8 before, when the default was 65,000). `TRAFGEN_BENCH_PACKETS` (default 3,000,000) sets
//! the count, `TRAFGEN_BENCH_RUNS` (default 3) the runs per stage (the best is reported).
//! `TRAFGEN_BENCH_FLOW_TIMING=lstm` and `TRAFGEN_BENCH_FLOW_BYTES=lstm` turn off pacing to the
//! drawn durations and steering to the drawn bytes, to measure what each costs.
//! Results: a table and one JSON line on stdout, also `target/bench/generate.json`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use trafgen::generate::write_capture;
use trafgen::model::Model;
use trafgen::sink::OutputFormat;
use trafgen::synth::{Engine, EngineConfig, FlowBytes, FlowTiming};
use trafgen::wire::{FrameBuilder, WireConfig};

fn pin_to_cpu0() -> bool {
    // SAFETY: a zeroed cpu_set_t is valid; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let n: usize = env("TRAFGEN_BENCH_PACKETS", 3_000_000);
    let runs: usize = env("TRAFGEN_BENCH_RUNS", 3);
    let scale: f64 = env("TRAFGEN_BENCH_SCALE", 535_000.0);
    let model_dir = PathBuf::from(std::env::var("TRAFGEN_BENCH_MODEL").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/models/default").into()));
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench"));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let model = Model::load(&model_dir, tch::Device::Cpu).expect("model");
    // TRAFGEN_BENCH_FLOW_TIMING=lstm: the LSTM's gaps as drawn (no pacing to the drawn duration)
    let flow_timing = if std::env::var("TRAFGEN_BENCH_FLOW_TIMING").is_ok_and(|v| v == "lstm") { FlowTiming::Lstm } else { FlowTiming::Aggregate };
    // TRAFGEN_BENCH_FLOW_BYTES=lstm: the LSTM's token choices as drawn (no steering to the drawn bytes)
    let flow_bytes = if std::env::var("TRAFGEN_BENCH_FLOW_BYTES").is_ok_and(|v| v == "lstm") { FlowBytes::Lstm } else { FlowBytes::Aggregate };
    let cfg = EngineConfig { seed: 1, arrival_scale: scale, flow_timing, flow_bytes, ..Default::default() };
    let t = Instant::now();
    drop(Engine::new(&model, cfg.clone()).expect("engine"));
    let setup_s = t.elapsed().as_secs_f64();
    // what the traffic looks like at this scale (from the engine stage's run)
    let (mut span_s, mut peak_live) = (0f64, 0usize);
    let pinned = pin_to_cpu0();
    let best = |f: &mut dyn FnMut() -> f64| -> f64 { (0..runs).map(|_| f()).fold(f64::INFINITY, f64::min) };

    let engine_s = best(&mut || {
        let mut e = Engine::new(&model, cfg.clone()).unwrap();
        let t = Instant::now();
        let (mut bytes, mut last) = (0u64, 0i64);
        for p in e.by_ref().take(n) {
            bytes += u64::from(p.size);
            last = p.ts_ns;
        }
        std::hint::black_box(bytes);
        let s = t.elapsed().as_secs_f64();
        (span_s, peak_live) = (last as f64 / 1e9, e.stats().peak_live);
        s
    });
    let frames_s = best(&mut || {
        let mut e = Engine::new(&model, cfg.clone()).unwrap();
        let mut b = FrameBuilder::new(WireConfig::default(), 1).unwrap();
        let t = Instant::now();
        let mut bytes = 0usize;
        for p in e.by_ref().take(n) {
            for f in b.build(&p) {
                bytes += f.len();
            }
        }
        std::hint::black_box(bytes);
        t.elapsed().as_secs_f64()
    });
    let out = dir.join("generate.pcap");
    let mut file_bytes = 0;
    let write_s = best(&mut || {
        let _ = std::fs::remove_file(&out);
        let mut e = Engine::new(&model, cfg.clone()).unwrap();
        let mut b = FrameBuilder::new(WireConfig::default(), 1).unwrap();
        let t = Instant::now();
        let w = write_capture(e.by_ref(), &mut b, &out, OutputFormat::Pcap, 1_700_000_000_000_000_000, Some(n as u64), &AtomicBool::new(false)).unwrap();
        file_bytes = w.file_bytes;
        t.elapsed().as_secs_f64()
    });
    let copy = dir.join("generate-copy.pcap");
    let tcpdump_s = best(&mut || {
        let _ = std::fs::remove_file(&copy);
        let t = Instant::now();
        let ok = Command::new("taskset")
            .args(["-c", "0", "tcpdump", "-r", out.to_str().unwrap(), "-w", copy.to_str().unwrap()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok { t.elapsed().as_secs_f64() } else { f64::NAN }
    });
    let _ = std::fs::remove_file(&copy);

    let pps = |s: f64| n as f64 / s;
    println!("generate benchmark: {n} packets from {} (flow-arrival scale {scale}: {:.0} packets/s of traffic time, {peak_live} live flows at the peak); pinned to CPU 0: {pinned}; best of {runs}", model_dir.display(), n as f64 / span_s);
    println!("engine set-up (lean LSTMs + packet bank, libtorch): {setup_s:.2} s, once per run");
    println!("{:<34} {:>8} {:>10} {:>9} {:>12}", "stage", "s", "M pkts/s", "ns/pkt", "vs tcpdump");
    for (name, s) in [("engine (model inference)", engine_s), ("engine + frames", frames_s), ("engine + frames + write pcap", write_s), ("tcpdump -r F -w COPY (I/O floor)", tcpdump_s)] {
        println!("{name:<34} {s:>8.3} {:>10.3} {:>9.1} {:>11.2}x", pps(s) / 1e6, s * 1e9 / n as f64, tcpdump_s / s);
    }
    println!(
        "breakdown per packet: inference {:.0} ns, frames {:.0} ns, writing {:.0} ns; goal >= 1 M packets/s model -> pcap on one core: {}",
        engine_s * 1e9 / n as f64,
        (frames_s - engine_s) * 1e9 / n as f64,
        (write_s - frames_s) * 1e9 / n as f64,
        if pps(write_s) >= 1e6 { "MET" } else { "NOT MET" }
    );
    let json = serde_json::json!({
        "bench": "generate", "packets": n, "runs": runs, "arrival_scale": scale, "peak_live": peak_live,
        "setup_s": setup_s, "file_bytes": file_bytes, "pinned": pinned,
        "engine_pps": pps(engine_s), "frames_pps": pps(frames_s), "write_pps": pps(write_s), "tcpdump_pps": pps(tcpdump_s),
    });
    println!("{json}");
    let _ = std::fs::write(dir.join("generate.json"), json.to_string());
}
