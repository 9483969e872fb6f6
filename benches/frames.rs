//! Frame synthesis + file writing throughput (issue 3's benchmark).
//!
//! Records are prepared in memory first (a seeded `ScriptedMix`), then timed on one core:
//! 1. build: records → frames (wire stage only; frames are checksummed but not written)
//! 2. build+write: records → frames → pcap file (FileSink)
//! 3. floor: `tcpdump -r OUT -w COPY` copying the very file stage 2 wrote, in the same run
//!
//! `TRAFGEN_BENCH_FRAMES` (default 5,000,000) sets the count, `TRAFGEN_BENCH_DIR` the output
//! directory (default target/bench). Prints a table and a JSON line (also target/bench/frames.json).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use trafgen::sink::{FileSink, OutputFormat};
use trafgen::synth::script::ScriptedMix;
use trafgen::synth::SynthPacket;
use trafgen::wire::{FrameBuilder, WireConfig};

fn pin_to_cpu0() -> bool {
    // SAFETY: a zeroed cpu_set_t is valid; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

fn best<F: FnMut() -> f64>(runs: usize, mut f: F) -> (f64, Vec<f64>) {
    let all: Vec<f64> = (0..runs).map(|_| f()).collect();
    (all.iter().copied().fold(f64::INFINITY, f64::min), all)
}

fn main() {
    // cargo bench passes --bench; nothing else to parse
    let n: usize = std::env::var("TRAFGEN_BENCH_FRAMES").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000_000);
    let dir = PathBuf::from(std::env::var("TRAFGEN_BENCH_DIR").unwrap_or_else(|_| "target/bench".into()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let pinned = pin_to_cpu0();
    eprintln!("preparing {n} records in memory …");
    let records: Vec<SynthPacket> = ScriptedMix::new(42, 20_000.0).take(n).collect();
    let runs = 3;

    let (build_s, build_all) = best(runs, || {
        let mut b = FrameBuilder::new(WireConfig::default(), 1).unwrap();
        let t = Instant::now();
        let mut bytes = 0usize;
        for r in &records {
            for f in b.build(r) {
                bytes += f.len();
            }
        }
        std::hint::black_box(bytes);
        t.elapsed().as_secs_f64()
    });

    let out = dir.join("frames.pcap");
    let mut file_bytes = 0u64;
    let (write_s, write_all) = best(runs, || {
        let _ = std::fs::remove_file(&out);
        let mut b = FrameBuilder::new(WireConfig::default(), 1).unwrap();
        let t = Instant::now();
        let mut sink = FileSink::create(&out, OutputFormat::Pcap, 262_144).unwrap();
        for r in &records {
            for f in b.build(r) {
                sink.write_frame(1_700_000_000_000_000_000 + f.ts_ns, &f.parts()).unwrap();
            }
        }
        let stats = sink.finish().unwrap();
        file_bytes = stats.bytes;
        t.elapsed().as_secs_f64()
    });

    let copy = dir.join("frames-copy.pcap");
    let tcpdump = Command::new("taskset").args(["-c", "0", "true"]).status().is_ok();
    let (floor_s, floor_all) = best(runs, || {
        let _ = std::fs::remove_file(&copy);
        let t = Instant::now();
        let mut cmd = if tcpdump { Command::new("taskset") } else { Command::new("tcpdump") };
        if tcpdump {
            cmd.args(["-c", "0", "tcpdump"]);
        }
        let st = cmd.args(["-r", out.to_str().unwrap(), "-w", copy.to_str().unwrap()]).stderr(std::process::Stdio::null()).status();
        match st {
            Ok(s) if s.success() => t.elapsed().as_secs_f64(),
            _ => f64::NAN,
        }
    });
    let _ = std::fs::remove_file(&copy);

    let mfps = |s: f64| n as f64 / s / 1e6;
    println!("frames benchmark: {n} frames, file {:.2} GB, {} , pinned to cpu0: {pinned}", file_bytes as f64 / 1e9, out.display());
    println!("{:<28} {:>9} {:>12} {:>14}", "stage", "best s", "M frames/s", "vs tcpdump -r");
    println!("{:<28} {:>9.3} {:>12.2} {:>14.2}", "build (wire only)", build_s, mfps(build_s), floor_s / build_s);
    println!("{:<28} {:>9.3} {:>12.2} {:>14.2}", "build + write pcap", write_s, mfps(write_s), floor_s / write_s);
    println!("{:<28} {:>9.3} {:>12.2} {:>14}", "tcpdump -r F -w COPY", floor_s, mfps(floor_s), "1.00");
    println!("(vs tcpdump -r: >1 means faster than tcpdump copying the same file; goal ≥ 3 M frames/s)");
    let json = serde_json::json!({
        "bench": "frames", "frames": n, "file_bytes": file_bytes, "pinned": pinned,
        "build": {"best_s": build_s, "runs_s": build_all, "mfps": mfps(build_s)},
        "build_write": {"best_s": write_s, "runs_s": write_all, "mfps": mfps(write_s)},
        "tcpdump_copy": {"best_s": floor_s, "runs_s": floor_all, "mfps": mfps(floor_s)},
        "goal_mfps": 3.0, "goal_met": mfps(write_s) >= 3.0,
    });
    println!("{json}");
    let _ = std::fs::write(dir.join("frames.json"), json.to_string());
}
