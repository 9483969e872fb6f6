//! Model benchmarks (issue 4), on this machine's CPU (or CUDA with TRAFGEN_BENCH_DEVICE=cuda):
//! 1. training time of all three levels on a ≥ 1 M-packet capture made by trafgen itself
//!    (scripted mix → wire → pcap), with the per-level split (goal ≤ 10 min on 2 cores);
//! 2. batched flow-LSTM stepping: packets/s sampled for 10 k concurrent flows (one forward pass
//!    per step for all of them), next to batch 1 (one call per flow step).
//!
//! Environment: TRAFGEN_BENCH_PACKETS (default 1 000 000), TRAFGEN_BENCH_EPOCHS (default 20),
//! TRAFGEN_BENCH_DEVICE (auto|cpu|cuda, default auto), TRAFGEN_BENCH_DIR (default target/bench).
//! Prints a table and a JSON line (also TRAFGEN_BENCH_DIR/model.json).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use tch::{Device, Kind, Tensor};
use trafgen::flow::FlowKind;
use trafgen::model::train::{train, Progress, TrainOptions};
use trafgen::sink::OutputFormat;
use trafgen::synth::script::ScriptedMix;
use trafgen::torch::DeviceChoice;
use trafgen::wire::{FrameBuilder, WireConfig};

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn main() {
    let packets: u64 = env("TRAFGEN_BENCH_PACKETS", 1_000_000);
    let epochs: usize = env("TRAFGEN_BENCH_EPOCHS", 20);
    let device = match std::env::var("TRAFGEN_BENCH_DEVICE").as_deref() {
        Ok("cpu") => DeviceChoice::Cpu,
        Ok("cuda") => DeviceChoice::Cuda,
        _ => DeviceChoice::Auto,
    };
    let dir = PathBuf::from(std::env::var("TRAFGEN_BENCH_DIR").unwrap_or_else(|_| "target/bench".into()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let cap = dir.join(format!("train-{packets}.pcap"));
    if !cap.exists() {
        eprintln!("writing {} …", cap.display());
        let mut b = FrameBuilder::new(WireConfig::default(), 1).unwrap();
        let stop = AtomicBool::new(false);
        trafgen::generate::write_capture(ScriptedMix::new(7, 2_000.0), &mut b, &cap, OutputFormat::Pcap, 1_700_000_000_000_000_000, Some(packets), &stop).unwrap();
    }
    let opts = TrainOptions { epochs, seed: 1, device, ..TrainOptions::default() };
    let t = Instant::now();
    let mut last_level = String::new();
    let model = train(&[cap.clone()], &opts, &mut |p| match p {
        Progress::Epoch { level, epoch, train, .. } => {
            if level != last_level {
                eprintln!("{level} …");
                last_level = level.clone();
            }
            eprintln!("  epoch {epoch} loss {train:.4} ({:.0} s)", t.elapsed().as_secs_f64());
        }
        Progress::LevelDone { level, seconds } => eprintln!("{level} level: {seconds:.1} s"),
        _ => {}
    })
    .expect("training");
    let total = t.elapsed().as_secs_f64();
    let m = &model.manifest;

    // batched LSTM stepping
    let lstm = model.lstm[FlowKind::Connected.index()].as_ref().or(model.lstm.iter().flatten().next()).expect("an LSTM");
    let dev = model.device();
    let step_rate = |batch: i64, steps: usize| {
        let mut state = lstm.zero_state(batch);
        let mut tokens = Tensor::full([batch], lstm.shape.start_token(), (Kind::Int64, dev));
        let t = Instant::now();
        for _ in 0..steps {
            let (logits, s) = lstm.step(&tokens, &state);
            state = s;
            // sampling on the device: one draw per flow from the softmax
            tokens = logits.softmax(-1, Kind::Float).multinomial(1, true).view([batch]);
        }
        let _ = tokens.to_device(Device::Cpu);
        (batch as f64 * steps as f64) / t.elapsed().as_secs_f64()
    };
    let batched = step_rate(10_000, 50);
    let single = step_rate(1, 500);
    println!("model benchmark: {} packets ({}), device {}", m.training.packets, cap.display(), m.device);
    println!("{:<34} {:>10}", "training level", "seconds");
    println!("{:<34} {:>10.1}", "packet (VAE + GMM, K by BIC)", m.training.seconds_packet);
    println!("{:<34} {:>10.1}", "flow (LSTM per kind)", m.training.seconds_flow);
    println!("{:<34} {:>10.1}", "aggregate", m.training.seconds_aggregate);
    println!("{:<34} {:>10.1}   (goal ≤ 600 s)", "total incl. ingestion", total);
    println!("LSTM stepping: {:.0} packets/s at batch 10 000, {:.0} packets/s at batch 1 ({:.0}×)", batched, single, batched / single);
    let json = serde_json::json!({
        "bench": "model", "packets": m.training.packets, "device": m.device, "epochs": epochs,
        "seconds": {"packet": m.training.seconds_packet, "flow": m.training.seconds_flow, "aggregate": m.training.seconds_aggregate, "total": total},
        "gmm_k": m.packet.gmm_k, "vae_epochs_run": m.training.vae_loss.train.len(),
        "lstm_step_pps": {"batch_10000": batched, "batch_1": single},
        "goal_total_s": 600, "goal_met": total <= 600.0,
    });
    println!("{json}");
    let _ = std::fs::write(dir.join("model.json"), json.to_string());
}
