//! `trafgen`: the command line over the library. It wires stages together and formats
//! output; all logic lives in the library.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use trafgen::features::csv::FeatureCsv;
use trafgen::features::{FlowFeatures, PacketFeatures, Rolling};
use trafgen::flow::{Assignment, Flow, FlowConfig};
use trafgen::ingest::{self, IngestOptions, Observer};
use trafgen::inspect::Summary;
use trafgen::validate::ValidateOptions;

#[derive(Parser)]
#[command(name = "trafgen", version, about = "Learn the traffic in a capture and generate traffic like it")]
struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info`, `trafgen=debug`.
    #[arg(long, global = true, default_value = "warn", env = "TRAFGEN_LOG")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Summarise captures (pcap/pcapng, gzip too): packets, protocols, flows per kind, ports,
    /// size and inter-arrival quantiles, malformed records.
    Inspect(InspectArgs),
    /// Generate a capture from scripted conversations (TCP with handshake and teardown, UDP,
    /// ICMP echo, ARP, IPv4 and IPv6) through the wire stage, then inspect and validate it.
    /// Ctrl-C/SIGTERM stop it early with a valid file.
    Demo(DemoArgs),
    /// Check every frame of captures (ours or anyone's) with trafgen's own parser: checksums
    /// (IPv4 header, TCP, UDP, ICMPv4/v6), lengths, malformed frames and per-flow TCP
    /// sequence/handshake/teardown rules; print the count of each violation.
    #[command(after_help = "Exit status: 0 when no violation was found, 3 when at least one was \
        (counts printed all the same), 1 when a capture cannot be read, 2 for usage errors.")]
    Validate(ValidateArgs),
    /// Generate synthetic traffic from a trained model into a pcap/pcapng file: the aggregate
    /// model schedules flows, flow LSTMs produce their packets, the wire stage makes
    /// protocol-valid frames. Same model + seed + options give a byte-identical file.
    /// Ctrl-C/SIGTERM stop it early with a valid file.
    Generate(GenerateArgs),
    /// Send traffic on a network interface in real time: from a model (live generation) or a
    /// capture replayed tcpreplay-style, each frame at its absolute deadline, with live stats
    /// every second and totals at the end. Needs CAP_NET_RAW. Ctrl-C stops cleanly.
    #[command(after_help = "Every frame's destination (IPv4/IPv6 destination, ARP target) must lie in the \
        allowlist (--allow; default: private and documentation prefixes only); a model whose address \
        plan leaves it, or a capture with any frame outside it, does not start.\n\
        If the interface's link goes down (set down, or no carrier) the stream pauses, says so, and \
        resumes when the link is back, where it left off (the rest of its schedule moves back by the pause); if \
        the interface is deleted it stops with an error.\n\
        Examples:\n  trafgen send -i veth0 -m models/default --pps 10000 --duration 10 --allow 10.0.0.0/8,fd00::/8\n  \
        trafgen send -i veth0 --pcap trace.pcap --multiplier 1\n  trafgen send -i veth0 --pcap trace.pcap --topspeed --loop 50")]
    Send(SendArgs),
    /// Train the NeCSTGen-style models (packet VAE + GMM, flow LSTMs per kind, aggregate GMM,
    /// TCP handshake/teardown heads) from captures and write a model directory (manifest.toml
    /// + safetensors).
    Train(TrainArgs),
    /// Measure how close synthetic traffic is to real traffic: NetShare's JSD/EMD metrics and
    /// flow-structure metrics, next to a floor (real vs real) and an independent-marginals
    /// baseline, with tolerances and verdicts.
    #[command(after_help = "Usage: `trafgen eval REAL SYNTH` compares two captures (the baseline is fitted \
        on REAL); `trafgen eval --split 0.5 CAPTURE` splits one capture by time and compares the held-out \
        part with the first part (floor) and the baseline fitted on the first part.")]
    Eval(EvalArgs),
    /// Show what a running trafgend is doing: per stream its state, frames and bytes sent,
    /// current rate, lateness, retries, send errors and generator backlog (from the daemon's
    /// /status endpoint on localhost).
    Status(StatusArgs),
    /// Print the version, the libtorch this build links and whether CUDA is usable.
    Version,
}

#[derive(Args)]
struct StatusArgs {
    /// The daemon's metrics endpoint ([daemon] metrics_listen in its config).
    #[arg(long, default_value = "http://127.0.0.1:9177")]
    url: String,
    /// Print the raw /status JSON.
    #[arg(long, conflicts_with = "metrics")]
    json: bool,
    /// Print the raw Prometheus /metrics text.
    #[arg(long)]
    metrics: bool,
}

#[derive(Args)]
struct TrainArgs {
    /// Capture files (pcap/pcapng, gzip too).
    #[arg(required = true)]
    captures: Vec<PathBuf>,
    /// Model directory to write.
    #[arg(short = 'o', long = "out", value_name = "MODEL_DIR")]
    out: PathBuf,
    /// Most epochs per level (early stopping on held-out flows may stop sooner).
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Seed of every random choice: same data + seed + device = same model on the same kind of CPU.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to train.
    #[arg(long, value_enum, default_value = "auto")]
    device: trafgen::torch::DeviceChoice,
    /// Use at most N packets (in file order).
    #[arg(long, value_name = "N")]
    max_packets: Option<u64>,
    /// Licence of an input, recorded in the manifest: PATH=LICENCE (repeatable).
    #[arg(long = "input-licence", value_name = "PATH=LICENCE")]
    licences: Vec<String>,
    /// Range of packet-GMM components searched by BIC.
    #[arg(long, default_value_t = 2)]
    k_min: usize,
    #[arg(long, default_value_t = 16)]
    k_max: usize,
    /// VAE latent dimensions.
    #[arg(long, default_value_t = 4)]
    latent: i64,
    /// Hidden units of each flow LSTM (generation cost per packet grows with its square).
    #[arg(long, default_value_t = 64)]
    lstm_hidden: i64,
    #[command(flatten)]
    flow: FlowArgs,
}

#[derive(Args)]
struct EvalArgs {
    /// REAL and SYNTH captures; with --split, the one capture to split.
    #[arg(required = true, num_args = 1..=2, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
    /// Split the capture by time at this fraction of its span (0 < F < 1): the later part is
    /// the reference, the first part the floor and what the baseline is fitted on.
    #[arg(long, value_name = "F")]
    split: Option<f64>,
    /// Keep the split parts in DIR (default: a temporary directory, removed at the end).
    #[arg(long, value_name = "DIR", requires = "split")]
    split_dir: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML report (table and CDF/bar charts as inline SVG).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Seed of the independent-marginals baseline, and of training and generation (--split).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Training epochs of the model the synthetic arm learns from the first part (--split).
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// With --split: leave out the synthetic arm (floor and baseline only).
    #[arg(long, requires = "split")]
    no_synthetic: bool,
    /// With --split: seconds of traffic the synthetic arm generates before the held-out span
    /// and leaves out (a warm start, as `generate --warm-up`); default: the held-out span's
    /// length. 0 = a cold start.
    #[arg(long, requires = "split", value_name = "SECONDS")]
    warm_up: Option<f64>,
    /// With --split: what paces the synthetic arm's flows (as `generate --flow-timing`).
    #[arg(long, requires = "split", value_enum, default_value_t = LengthsArg::Aggregate)]
    flow_timing: LengthsArg,
    /// With --split: what sizes the synthetic arm's packets (as `generate --flow-bytes`).
    #[arg(long, requires = "split", value_enum, default_value_t = LengthsArg::Aggregate)]
    flow_bytes: LengthsArg,
    #[command(flatten)]
    flow: FlowArgs,
}

#[derive(Args)]
struct DemoArgs {
    /// Directory for demo.pcap (or demo.pcapng) and the feature tables.
    #[arg(long, default_value = "target/demo")]
    out: PathBuf,
    /// Frames to write.
    #[arg(long, default_value_t = 20_000)]
    packets: u64,
    /// Seed: the same seed gives a byte-identical file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value = "pcap")]
    format: Format,
    /// New flows per second in the scripted mix.
    #[arg(long, default_value_t = 500.0)]
    flows_per_s: f64,
    /// Address plan and frame settings (TOML with any WireConfig field; see README).
    #[arg(long, value_name = "FILE")]
    wire_config: Option<PathBuf>,
}

#[derive(Args)]
struct GenerateArgs {
    /// Model directory (default: `models/default` in the current directory, else the one
    /// shipped in the source tree this binary was built from).
    #[arg(short, long, value_name = "DIR", env = "TRAFGEN_MODEL")]
    model: Option<PathBuf>,
    /// Output file; `.pcapng` writes pcapng, anything else pcap (nanosecond timestamps).
    #[arg(short, long, value_name = "FILE")]
    out: PathBuf,
    /// Stop after this many frames. With no --packets, --flows or --duration: 100000.
    #[arg(long)]
    packets: Option<u64>,
    /// Stop starting flows after this many (the file ends when they are done).
    #[arg(long)]
    flows: Option<u64>,
    /// Stop at this many seconds of traffic time.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Seed: the same model, seed and options give a byte-identical file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Time scale, as tcpreplay's: 2 plays the modelled traffic twice as fast, 0.5 half as fast.
    #[arg(long, default_value_t = 1.0)]
    multiplier: f64,
    /// Target packets/s: scales the rate of flow starts (per-flow timing kept), measured by a
    /// pilot run of the model.
    #[arg(long, conflicts_with = "mbps")]
    pps: Option<f64>,
    /// Target Mbit/s (Ethernet frames), like --pps.
    #[arg(long)]
    mbps: Option<f64>,
    /// Timestamp of the first packet, seconds since the Unix epoch.
    #[arg(long, default_value_t = 1_700_000_000.0)]
    start: f64,
    /// Flow kinds to generate (comma-separated: connected, unconnected, noflow); default all.
    #[arg(long, value_delimiter = ',', value_name = "KINDS")]
    flow_kinds: Vec<KindArg>,
    /// Address plan and frame settings (TOML with any WireConfig field: subnets, MACs, ports,
    /// MTU, payload fill; see README).
    #[arg(long, value_name = "FILE")]
    wire_config: Option<PathBuf>,
    /// Cap on flows alive at once (bounds memory; starts wait beyond it).
    #[arg(long, default_value_t = 100_000)]
    max_live_flows: usize,
    /// Cap on packets per flow.
    #[arg(long, default_value_t = 100_000)]
    max_flow_packets: u32,
    /// What sets each flow's packet count: `aggregate` (the aggregate model's draw of flow
    /// sizes; the LSTM writes the sequence) or `lstm` (the LSTM's END token alone).
    #[arg(long, value_enum, default_value_t = LengthsArg::Aggregate)]
    flow_lengths: LengthsArg,
    /// What paces each flow's data packets: `aggregate` (the gaps the LSTM writes, stretched
    /// so that the flow spans the duration the aggregate model drew with its size; needs
    /// `--flow-lengths aggregate`) or `lstm` (the LSTM's gaps as drawn).
    #[arg(long, value_enum, default_value_t = LengthsArg::Aggregate)]
    flow_timing: LengthsArg,
    /// What sizes each flow's data packets: `aggregate` (the LSTM's token choices tilted
    /// towards the bytes the aggregate model drew with the flow's size, so long flows carry
    /// full segments and lone packets bare ones as in training; needs `--flow-lengths
    /// aggregate`) or `lstm` (the LSTM's tokens as drawn).
    #[arg(long, value_enum, default_value_t = LengthsArg::Aggregate)]
    flow_bytes: LengthsArg,
    /// Start warm: generate this many seconds of traffic before the output starts and leave
    /// them out, so the output begins at the model's steady rate with flows already in
    /// progress (TCP flows then start mid-stream, without their handshake, like a capture
    /// cut from ongoing traffic). 0 = cold start: every flow from its first packet.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    warm_up: f64,
    /// Every TCP flow with both its sides, complete conversations, even where the model learnt
    /// from a capture point that saw one side of its flows (then it generates flows seen
    /// from one side as often: a SYN-ACK without its SYN, data without its ACKs).
    #[arg(long)]
    both_sides: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Which model decides a flow's length, its timing or its bytes.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LengthsArg {
    Aggregate,
    Lstm,
}

impl LengthsArg {
    fn lengths(self) -> trafgen::synth::FlowLengths {
        match self {
            LengthsArg::Aggregate => trafgen::synth::FlowLengths::Aggregate,
            LengthsArg::Lstm => trafgen::synth::FlowLengths::Lstm,
        }
    }

    fn timing(self) -> trafgen::synth::FlowTiming {
        match self {
            LengthsArg::Aggregate => trafgen::synth::FlowTiming::Aggregate,
            LengthsArg::Lstm => trafgen::synth::FlowTiming::Lstm,
        }
    }

    fn bytes(self) -> trafgen::synth::FlowBytes {
        match self {
            LengthsArg::Aggregate => trafgen::synth::FlowBytes::Aggregate,
            LengthsArg::Lstm => trafgen::synth::FlowBytes::Lstm,
        }
    }
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["model", "pcap"])))]
struct SendArgs {
    /// Interface to send on (looked up in the current network namespace).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    interface: String,
    /// Generate live from this model directory.
    #[arg(short, long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Replay this capture (Ethernet pcap/pcapng): recorded gaps, or --pps/--mbps spacing.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Target packets/s. Model: scales the rate of flow starts (pilot run; per-flow timing
    /// kept). Capture: constant spacing, as tcpreplay --pps.
    #[arg(long, conflicts_with_all = ["mbps", "topspeed"])]
    pps: Option<f64>,
    /// Target Mbit/s. Model: like --pps. Capture: each frame followed by its own size at this
    /// rate, as tcpreplay --mbps.
    #[arg(long, conflicts_with = "topspeed")]
    mbps: Option<f64>,
    /// Time scale, as tcpreplay's: 2 plays every gap twice as fast.
    #[arg(long, default_value_t = 1.0, conflicts_with = "topspeed")]
    multiplier: f64,
    /// Ignore timing: send as fast as the interface takes frames.
    #[arg(long)]
    topspeed: bool,
    /// Play the capture N times back to back.
    #[arg(long = "loop", value_name = "N", default_value_t = 1, requires = "pcap")]
    loops: u64,
    /// Stop after this many seconds (of schedule; of wall-clock time with --topspeed).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Stop after this many frames.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Destination prefixes frames may go to (repeatable or comma-separated). Default:
    /// 10/8, 172.16/12, 192.168/16, 198.18/15, the TEST-NETs, fc00::/7, 2001:db8::/32.
    #[arg(long = "allow", value_name = "CIDR", value_delimiter = ',')]
    allow: Vec<trafgen::wire::Cidr>,
    /// Seed of the model's generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Address plan and frame settings for a model (TOML with any WireConfig field).
    #[arg(long, value_name = "FILE", requires = "model")]
    wire_config: Option<PathBuf>,
    /// Model: start warm, at the steady rate, with flows in progress (as `generate --warm-up`;
    /// this many seconds of traffic are generated first, before the first frame leaves).
    #[arg(long, value_name = "SECONDS", requires = "model")]
    warm_up: Option<f64>,
    /// Model: every TCP flow with both its sides (as `generate --both-sides`).
    #[arg(long, requires = "model")]
    both_sides: bool,
    /// Model: stop starting flows after this many.
    #[arg(long, requires = "model")]
    flows: Option<u64>,
    /// Hard ceiling in packets/s (governor), whatever the schedule asks.
    #[arg(long, value_name = "PPS")]
    ceiling_pps: Option<f64>,
    /// Hard ceiling in Mbit/s (Ethernet frames), whatever the schedule asks.
    #[arg(long, value_name = "MBPS")]
    ceiling_mbps: Option<f64>,
    /// After a stall: `burst` sends what fell due at once, `shift` moves the schedule back.
    #[arg(long, default_value = "burst", value_parser = ["burst", "shift"])]
    stall: String,
    /// A frame later than this many µs counts as a stall.
    #[arg(long, value_name = "US", default_value_t = 1000)]
    stall_threshold: u64,
    /// Sleep until at least this many µs before a deadline, then spin (more when sleeps are
    /// seen to end late: the 99th percentile of recent wake-up delays + 5 µs).
    #[arg(long, value_name = "US", default_value_t = 50)]
    spin: u64,
    /// Most µs the learnt spin margin may reach.
    #[arg(long, value_name = "US", default_value_t = 500)]
    spin_max: u64,
    /// Late by less than a stall, catch up by at most this many µs per frame, or a quarter of
    /// the frame's gap when that is more (0: send everything due at once).
    #[arg(long, value_name = "US", default_value_t = 0)]
    catch_up: u64,
    /// Most frames per sendmmsg call (1..=64).
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Pin the pacer thread to this CPU.
    #[arg(long, value_name = "N")]
    cpu: Option<usize>,
    /// Run the pacer thread under SCHED_FIFO at this priority (1..=99; needs CAP_SYS_NICE).
    #[arg(long, value_name = "PRIO", value_parser = clap::value_parser!(i32).range(1..=99))]
    fifo: Option<i32>,
    /// No live stats (totals only).
    #[arg(short, long)]
    quiet: bool,
    /// Print the totals as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum KindArg {
    Connected,
    Unconnected,
    Noflow,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Pcap,
    Pcapng,
}

#[derive(Args)]
struct ValidateArgs {
    /// Capture files, read in order; each is its own capture.
    #[arg(required = true)]
    captures: Vec<PathBuf>,
    /// Print the report as JSON (check names are the keys of "checks").
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    flow: FlowArgs,
}

#[derive(Args)]
struct InspectArgs {
    /// Capture files, read in order; each is its own capture.
    #[arg(required = true)]
    captures: Vec<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Write per-packet and per-flow feature tables (packets.csv, flows.csv) into DIR.
    #[arg(long, value_name = "DIR")]
    features_csv: Option<PathBuf>,
    /// Keep going past corrupt records and unreadable files, counting them.
    #[arg(long)]
    skip_bad: bool,
    /// Stop after N packets in total.
    #[arg(long, value_name = "N")]
    max_packets: Option<u64>,
    #[command(flatten)]
    flow: FlowArgs,
}

/// Flow-table settings (the CLI face of `FlowConfig`).
#[derive(Args)]
struct FlowArgs {
    /// Idle timeout of TCP flows, seconds.
    #[arg(long, default_value_t = FlowConfig::default().tcp_idle_s)]
    tcp_idle: f64,
    /// Idle timeout of UDP and other port-based flows, seconds.
    #[arg(long, default_value_t = FlowConfig::default().udp_idle_s)]
    udp_idle: f64,
    /// Idle timeout of no-flow (MAC-pair) traffic, seconds.
    #[arg(long, default_value_t = FlowConfig::default().noflow_idle_s)]
    noflow_idle: f64,
    /// Cap on live flows; beyond it the least recently active are evicted.
    #[arg(long, default_value_t = FlowConfig::default().max_flows)]
    max_flows: usize,
}

impl Default for FlowArgs {
    fn default() -> Self {
        let d = FlowConfig::default();
        FlowArgs { tcp_idle: d.tcp_idle_s, udp_idle: d.udp_idle_s, noflow_idle: d.noflow_idle_s, max_flows: d.max_flows }
    }
}

impl FlowArgs {
    fn config(&self) -> Result<FlowConfig> {
        for (name, v) in [("--tcp-idle", self.tcp_idle), ("--udp-idle", self.udp_idle), ("--noflow-idle", self.noflow_idle)] {
            anyhow::ensure!(v.is_finite() && v > 0.0, "{name} must be a positive number of seconds, got {v}");
        }
        Ok(FlowConfig {
            tcp_idle_s: self.tcp_idle,
            udp_idle_s: self.udp_idle,
            noflow_idle_s: self.noflow_idle,
            max_flows: self.max_flows,
            ..FlowConfig::default()
        })
    }
}

/// The summary plus, when asked, the CSV tables.
struct InspectSink {
    summary: Summary,
    csv: Option<FeatureCsv>,
    csv_error: Option<anyhow::Error>,
}

impl Observer for InspectSink {
    fn file_start(&mut self, p: &std::path::Path, f: trafgen::capture::FileFormat, l: trafgen::capture::LinkType) {
        self.summary.file_start(p, f, l);
    }
    fn packet(&mut self, p: &trafgen::capture::Packet, a: Option<&Assignment>, feat: Option<&PacketFeatures>) {
        self.summary.packet(p, a, feat);
        if let (Some(csv), Some(row)) = (self.csv.as_mut(), feat) {
            if let Err(e) = csv.packet(row) {
                self.csv_error.get_or_insert(e.into());
            }
        }
    }
    fn flow(&mut self, f: &Flow<Rolling>, ff: &FlowFeatures) {
        self.summary.flow(f, ff);
        if let Some(csv) = self.csv.as_mut() {
            if let Err(e) = csv.flow(ff) {
                self.csv_error.get_or_insert(e.into());
            }
        }
    }
}

fn inspect(args: &InspectArgs) -> Result<()> {
    let opts = IngestOptions {
        flow: args.flow.config()?,
        skip_bad: args.skip_bad,
        packet_features: args.features_csv.is_some(),
        max_packets: args.max_packets,
    };
    let csv = args.features_csv.as_deref().map(FeatureCsv::create).transpose()?;
    let mut sink = InspectSink { summary: Summary::default(), csv, csv_error: None };
    let report = ingest::ingest(&args.captures, &opts, &mut sink)?;
    if let Some(e) = sink.csv_error.take() {
        return Err(e);
    }
    if let Some(csv) = sink.csv.take() {
        csv.finish()?;
    }
    let r = sink.summary.report(&report);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", r.to_text());
        if let Some(dir) = &args.features_csv {
            println!("features  {}/packets.csv, {}/flows.csv", dir.display(), dir.display());
        }
    }
    Ok(())
}

/// The model directory to use when none is named.
fn default_model() -> PathBuf {
    let local = PathBuf::from("models/default");
    if local.join("manifest.toml").exists() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/default")
}

fn generate(args: &GenerateArgs) -> Result<()> {
    use trafgen::flow::FlowKind;
    use trafgen::sink::OutputFormat;
    for (name, v) in [("--multiplier", Some(args.multiplier)), ("--pps", args.pps), ("--mbps", args.mbps), ("--duration", args.duration)] {
        if let Some(v) = v {
            anyhow::ensure!(v.is_finite() && v > 0.0, "{name} must be a number > 0, not {v}");
        }
    }
    anyhow::ensure!(args.start.is_finite() && args.start >= 0.0, "--start must be seconds since the Unix epoch");
    let dir = args.model.clone().unwrap_or_else(default_model);
    let model = trafgen::model::Model::load(&dir, tch::Device::Cpu).with_context(|| format!("loading model {}", dir.display()))?;
    let format = if args.out.extension().is_some_and(|e| e.eq_ignore_ascii_case("pcapng")) { OutputFormat::PcapNg } else { OutputFormat::Pcap };
    let wire = match &args.wire_config {
        Some(p) => trafgen::wire::WireConfig::load(p)?,
        None => trafgen::wire::WireConfig::default(),
    };
    let no_limit = args.packets.is_none() && args.flows.is_none() && args.duration.is_none();
    let opts = trafgen::generate::GenerateOptions {
        engine: trafgen::synth::EngineConfig {
            seed: args.seed,
            multiplier: args.multiplier,
            flow_kinds: args
                .flow_kinds
                .iter()
                .map(|k| match k {
                    KindArg::Connected => FlowKind::Connected,
                    KindArg::Unconnected => FlowKind::Unconnected,
                    KindArg::Noflow => FlowKind::NoFlow,
                })
                .collect(),
            max_live_flows: args.max_live_flows.max(1),
            max_flow_packets: args.max_flow_packets.max(1),
            warm_up_s: args.warm_up,
            flow_lengths: args.flow_lengths.lengths(),
            flow_timing: args.flow_timing.timing(),
            flow_bytes: args.flow_bytes.bytes(),
            both_sides: args.both_sides,
            ..Default::default()
        },
        packets: if no_limit { Some(100_000) } else { args.packets },
        flows: args.flows,
        duration_s: args.duration,
        pps: args.pps,
        mbps: args.mbps,
        start_ns: (args.start * 1e9).round() as i64,
        wire,
        format,
    };
    let bar = indicatif::ProgressBar::new(opts.packets.unwrap_or(0));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} frames, {msg} [{elapsed_precise}, {per_sec}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let stop = trafgen::sink::signals::stop_flag();
    let s = trafgen::generate::generate(&model, &opts, &args.out, stop, &mut |frames, flows| {
        bar.set_position(frames);
        bar.set_message(format!("{flows} flows"));
    })
    .with_context(|| format!("generating {} from {}", args.out.display(), dir.display()))?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    let e = &s.engine;
    println!(
        "wrote {} ({} frames, {} bytes, {:.3} s of traffic{})",
        s.write.path.display(),
        s.write.frames,
        s.write.file_bytes,
        s.span_s,
        if s.write.interrupted { "; interrupted: every whole frame kept" } else { "" }
    );
    println!(
        "flows     {} started: connected {}, unconnected {}, noflow {} (peak live {})",
        e.flows.iter().sum::<u64>(),
        e.flows[0],
        e.flows[1],
        e.flows[2],
        e.peak_live
    );
    println!("packets   connected {}, unconnected {}, noflow {}", e.packets[0], e.packets[1], e.packets[2]);
    if e.warm_up_packets > 0 {
        println!("warm-up   {} packets generated before the start, left out", e.warm_up_packets);
    }
    if e.hidden_packets > 0 {
        println!("one-sided {} packets of flows' unseen sides kept out of the file (--both-sides for whole conversations)", e.hidden_packets);
    }
    if let Some(p) = s.pilot {
        println!("rate      model at scale 1: {:.0} pps, {:.3} Mbit/s; flow-arrival scale {:.4}", p.pps, p.bps / 1e6, s.arrival_scale);
    }
    println!(
        "engine    {} LSTM steps in {} rounds; {} handshake tokens skipped, {} flows truncated, {} starts delayed",
        e.lstm_steps, e.rounds, e.skipped_tokens, e.truncated_flows, e.delayed_starts
    );
    let w = &s.write.wire;
    println!(
        "wire      {} flows, {} records above the MTU sent in pieces, {} UDP flows moved off a busy 4-tuple, {} repairs",
        w.flows_started,
        w.segmented,
        w.moved,
        w.repairs.total()
    );
    println!("time      {:.2} s ({:.0} frames/s) from {}", s.seconds, s.write.frames as f64 / s.seconds.max(1e-9), dir.display());
    Ok(())
}

fn send(args: &SendArgs) -> Result<()> {
    use std::sync::Arc;
    use trafgen::emit::{self, Allowlist, CeilingConfig, PacerConfig, PcapSchedule, SourceSpec, StreamSpec};
    for (name, v) in [("--multiplier", Some(args.multiplier)), ("--pps", args.pps), ("--mbps", args.mbps), ("--duration", args.duration)] {
        if let Some(v) = v {
            anyhow::ensure!(v.is_finite() && v > 0.0, "{name} must be a number > 0, not {v}");
        }
    }
    anyhow::ensure!((1..=64).contains(&args.batch), "--batch must be 1..=64, not {}", args.batch);
    anyhow::ensure!(args.loops >= 1, "--loop must be at least 1");
    let allowlist = if args.allow.is_empty() { Allowlist::testbed_default() } else { Allowlist::new(args.allow.clone())? };
    let source = match (&args.model, &args.pcap) {
        (Some(dir), _) => SourceSpec::Model {
            dir: dir.clone(),
            engine: trafgen::synth::EngineConfig { seed: args.seed, warm_up_s: args.warm_up.unwrap_or(0.0), both_sides: args.both_sides, ..Default::default() },
            wire: match &args.wire_config {
                Some(p) => trafgen::wire::WireConfig::load(p)?,
                None => trafgen::wire::WireConfig::default(),
            },
            pps: args.pps,
            mbps: args.mbps,
            flows: args.flows,
        },
        (None, Some(path)) => SourceSpec::Pcap {
            path: path.clone(),
            schedule: match (args.pps, args.mbps) {
                (Some(p), _) => PcapSchedule::Pps(p),
                (None, Some(m)) => PcapSchedule::Mbps(m),
                (None, None) => PcapSchedule::Recorded,
            },
            loops: args.loops,
        },
        (None, None) => anyhow::bail!("give a source: -m MODEL_DIR or --pcap FILE"),
    };
    let spec = StreamSpec {
        interface: args.interface.clone(),
        source,
        pacer: PacerConfig {
            topspeed: args.topspeed,
            multiplier: args.multiplier,
            duration_s: args.duration,
            limit: args.limit,
            stall: args.stall.parse().map_err(anyhow::Error::msg)?,
            stall_threshold_us: args.stall_threshold,
            spin_us: args.spin,
            spin_max_us: args.spin_max,
            catch_up_us: args.catch_up,
            batch: args.batch,
            ceiling: CeilingConfig { pps: args.ceiling_pps, mbps: args.ceiling_mbps },
            cpu: args.cpu,
            fifo_priority: args.fifo,
        },
        allowlist,
    };
    let stop = trafgen::sink::signals::stop_flag();
    let live = Arc::new(emit::Live::default());
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let (start_tx, start_rx) = std::sync::mpsc::channel();
    let pacer_live = live.clone();
    let pacer = std::thread::Builder::new()
        .name("trafgen-pacer".into())
        .spawn(move || {
            let r = emit::run_stream(&spec, stop, &pacer_live, &mut |s| {
                let _ = start_tx.send(s.clone());
            });
            let _ = done_tx.send(r);
        })
        .context("starting the pacer thread")?;
    let mut started: Option<(std::time::Instant, trafgen::emit::StreamStart)> = None;
    let (mut last_frames, mut last_bytes, mut last_t) = (0u64, 0u64, std::time::Instant::now());
    let result = loop {
        match done_rx.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(r) => break r,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => anyhow::bail!("the pacer thread ended without a result"),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if started.is_none() {
            if let Ok(s) = start_rx.try_recv() {
                if !args.quiet && !args.json {
                    eprintln!("{}", start_line(&s));
                }
                last_t = std::time::Instant::now();
                started = Some((last_t, s));
            }
        }
        let Some((t0, _)) = &started else { continue };
        if last_t.elapsed() >= std::time::Duration::from_secs(1) {
            let (f, b) = (live.frames.load(std::sync::atomic::Ordering::Relaxed), live.bytes.load(std::sync::atomic::Ordering::Relaxed));
            let dt = last_t.elapsed().as_secs_f64();
            let lat = emit::Lateness::of(&live.take_lateness());
            if !args.quiet && !args.json {
                eprintln!(
                    "{:>7.1} s  frames {f:>10}  {:>9.0} pps  {:>9.2} Mbit/s  lateness {}  retries {}  stalls {}  backlog {}{}",
                    t0.elapsed().as_secs_f64(),
                    (f - last_frames) as f64 / dt,
                    (b - last_bytes) as f64 * 8.0 / dt / 1e6,
                    lat.map_or_else(|| "-".to_string(), |l| format!("p50 {} p99 {}", us(l.p50_ns), us(l.p99_ns))),
                    live.retries.load(std::sync::atomic::Ordering::Relaxed),
                    live.stalls.load(std::sync::atomic::Ordering::Relaxed),
                    live.backlog.load(std::sync::atomic::Ordering::Relaxed),
                    if live.link_down.load(std::sync::atomic::Ordering::Relaxed) { "  LINK DOWN: waiting for it" } else { "" },
                );
            }
            (last_frames, last_bytes, last_t) = (f, b, std::time::Instant::now());
        }
    };
    let _ = pacer.join();
    let report = result.with_context(|| format!("sending on {}", args.interface))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let p = &report.pacer;
    println!(
        "sent      {} frames, {} bytes on {} in {:.3} s: {:.0} pps, {:.2} Mbit/s (ended: {})",
        p.frames,
        p.bytes,
        report.start.interface,
        p.seconds,
        p.pps(),
        if p.seconds > 0.0 { p.bytes as f64 * 8.0 / p.seconds / 1e6 } else { 0.0 },
        match p.end {
            emit::EndReason::SourceDone => "source done",
            emit::EndReason::Limit => "--limit",
            emit::EndReason::Duration => "--duration",
            emit::EndReason::Stopped => "stopped by a signal",
        }
    );
    match &p.lateness {
        Some(l) => println!(
            "lateness  p50 {}  p90 {}  p99 {}  p99.9 {}  max {} ({} frames)",
            us(l.p50_ns),
            us(l.p90_ns),
            us(l.p99_ns),
            us(l.p999_ns),
            us(l.max_ns),
            l.frames
        ),
        None => println!("lateness  - (topspeed: no deadlines)"),
    }
    println!("kernel    {} sendmmsg calls, {} retries (ENOBUFS/EAGAIN)", p.sendmmsg_calls, p.retries);
    if p.link_downs > 0 {
        println!("link      down {} times, {:.1} s in all (the stream paused and resumed where it left off)", p.link_downs, p.link_down_s);
    }
    println!(
        "schedule  {} stalls (policy {}), shifted {:.3} ms; {} ceiling waits",
        p.stalls,
        args.stall,
        p.shifted_ns as f64 / 1e6,
        p.ceiling_waits
    );
    Ok(())
}

fn status(args: &StatusArgs) -> Result<()> {
    use trafgen::daemon::endpoint::get;
    if args.metrics {
        print!("{}", get(&args.url, "/metrics")?);
        return Ok(());
    }
    let body = get(&args.url, "/status").context("is trafgend running? (systemctl status trafgend)")?;
    if args.json {
        println!("{body}");
        return Ok(());
    }
    let s: trafgen::daemon::metrics::Status = serde_json::from_str(&body).with_context(|| format!("{}/status: not a trafgend status document", args.url))?;
    println!("trafgend {}  config {}  up {:.0} s  reloads {} ok, {} rejected", s.version, s.config, s.uptime_s, s.reloads, s.reload_failures);
    if let Some(e) = &s.last_reload_error {
        println!("last reload rejected: {e}");
    }
    println!("{:<16} {:<10} {:<10} {:>12} {:>10} {:>10} {:>11} {:>11} {:>8} {:>7} {:>8}", "STREAM", "INTERFACE", "STATE", "FRAMES", "PPS", "MBIT/S", "LATE p50", "LATE p99", "RETRIES", "ERRORS", "BACKLOG");
    let lat = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |s| format!("{:.1} µs", s * 1e6));
    for m in &s.streams {
        println!(
            "{:<16} {:<10} {:<10} {:>12} {:>10.0} {:>10.2} {:>11} {:>11} {:>8} {:>7} {:>8}",
            m.name, m.interface, m.state(), m.frames_sent, m.rate_pps, m.rate_bps / 1e6, lat(m.lateness_p50_s), lat(m.lateness_p99_s), m.retries, m.send_errors, m.backlog
        );
        if let Some(d) = &m.detail {
            println!("  {}: {d}", m.name);
        }
    }
    Ok(())
}

/// Nanoseconds as microseconds, for stats lines.
fn us(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1e3)
}

fn start_line(s: &trafgen::emit::StreamStart) -> String {
    let mut line = format!("sending on {} (index {}, MTU {})", s.interface, s.ifindex, s.mtu);
    if let Some(p) = &s.pcap {
        line += &format!("; capture: {} frames, {} bytes, {:.3} s per pass{}", p.frames, p.bytes, p.span_ns as f64 / 1e9, if p.preloaded { ", preloaded" } else { ", streamed" });
    }
    if let (Some(r), Some(scale)) = (&s.pilot, s.arrival_scale) {
        line += &format!("; model at scale 1: {:.0} pps, {:.3} Mbit/s; flow-arrival scale {:.4}", r.pps, r.bps / 1e6, scale);
    }
    line
}

fn demo(args: &DemoArgs) -> Result<()> {
    use trafgen::sink::OutputFormat;
    anyhow::ensure!(args.flows_per_s.is_finite() && args.flows_per_s > 0.0, "--flows-per-s must be > 0");
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let (format, name) = match args.format {
        Format::Pcap => (OutputFormat::Pcap, "demo.pcap"),
        Format::Pcapng => (OutputFormat::PcapNg, "demo.pcapng"),
    };
    let path = out.join(name);
    let stop = trafgen::sink::signals::stop_flag();
    let wire = match &args.wire_config {
        Some(p) => trafgen::wire::WireConfig::load(p)?,
        None => trafgen::wire::WireConfig::default(),
    };
    let mut builder = trafgen::wire::FrameBuilder::new(wire, args.seed)?;
    let records = trafgen::synth::script::ScriptedMix::new(args.seed, args.flows_per_s);
    let start_ns = 1_700_000_000 * 1_000_000_000i64;
    let w = trafgen::generate::write_capture(records, &mut builder, &path, format, start_ns, Some(args.packets), stop)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "wrote {} ({} frames, {} bytes{}); wire: {} flows, {} repairs\n",
        path.display(),
        w.frames,
        w.file_bytes,
        if w.interrupted { ", interrupted: every whole frame kept" } else { "" },
        w.wire.flows_started,
        w.wire.repairs.total()
    );
    if w.interrupted {
        return Ok(());
    }
    inspect(&InspectArgs {
        captures: vec![path.clone()],
        json: false,
        features_csv: Some(out.join("features")),
        skip_bad: false,
        max_packets: None,
        flow: FlowArgs::default(),
    })?;
    let report = trafgen::validate::validate(&[path], &ValidateOptions::default())?;
    println!("validate  {} packets, {} flows: {} violations", report.packets, report.flows, report.violations_total);
    anyhow::ensure!(report.violations_total == 0, "generated traffic has protocol violations:\n{}", report.to_text());
    Ok(())
}

/// Exits with status 3 (after printing) when violations were found.
fn validate(args: &ValidateArgs) -> Result<()> {
    let opts = ValidateOptions { flow: args.flow.config()? };
    let report = trafgen::validate::validate(&args.captures, &opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    let code = report.exit_code();
    if code != 0 {
        std::io::Write::flush(&mut std::io::stdout())?;
        std::process::exit(i32::from(code));
    }
    Ok(())
}

fn train(args: &TrainArgs) -> Result<()> {
    use trafgen::model::train::{Progress, TrainOptions};
    let mut licences = std::collections::HashMap::new();
    for l in &args.licences {
        let (p, lic) = l.split_once('=').with_context(|| format!("--input-licence `{l}`: expected PATH=LICENCE"))?;
        licences.insert(PathBuf::from(p), lic.to_string());
    }
    anyhow::ensure!(args.k_min >= 1 && args.k_max >= args.k_min, "--k-min/--k-max: need 1 ≤ k-min ≤ k-max");
    let opts = TrainOptions {
        epochs: args.epochs,
        seed: args.seed,
        device: args.device,
        max_packets: args.max_packets,
        ingest: trafgen::ingest::IngestOptions { flow: args.flow.config()?, ..Default::default() },
        k_range: [args.k_min, args.k_max],
        latent: args.latent,
        lstm_hidden: args.lstm_hidden,
        licences,
        // argv[0] is wherever the binary lives; record the command as a user would type it
        command: std::iter::once("trafgen".to_string()).chain(std::env::args().skip(1)).collect(),
        ..TrainOptions::default()
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>18} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let mut progress = |p: Progress| match p {
        Progress::Ingested { packets, flows } => {
            bar.println(format!("ingested {packets} packets in {flows} flows"));
        }
        Progress::Epoch { level, epoch, epochs, train, validation } => {
            if bar.prefix() != level {
                bar.set_prefix(level.clone());
                bar.set_length(epochs as u64);
            }
            bar.set_position(epoch as u64 + 1);
            bar.set_message(format!("loss {train:.4} (held-out {validation:.4})"));
            tracing::info!(%level, epoch, train, validation, "epoch");
        }
        Progress::Gmm { k, bic } => {
            let b: Vec<String> = bic.iter().map(|(k, b)| format!("{k}:{b:.0}")).collect();
            bar.println(format!("packet GMM: {k} components by BIC ({})", b.join(" ")));
        }
        Progress::LevelDone { level, seconds } => bar.println(format!("{level} level trained in {seconds:.1} s")),
    };
    let model = trafgen::model::train::train(&args.captures, &opts, &mut progress)?;
    bar.finish_and_clear();
    model.save(&args.out).with_context(|| format!("saving the model to {}", args.out.display()))?;
    let m = &model.manifest;
    let last = |c: &trafgen::model::vae::LossCurve| c.validation.get(c.best_epoch).copied().unwrap_or(f64::NAN);
    println!("model     {} (format {})", args.out.display(), m.format_version);
    println!("data      {} packets; flows connected {}  unconnected {}  noflow {}", m.training.packets, m.aggregate.flows.connected, m.aggregate.flows.unconnected, m.aggregate.flows.noflow);
    println!("packet    VAE latent {} held-out loss {:.4}; GMM {} components; {:.1} s", m.packet.vae.latent, last(&m.training.vae_loss), m.packet.gmm_k, m.training.seconds_packet);
    for (kind, c) in &m.training.lstm_loss {
        println!("flow      LSTM {kind}: held-out loss {:.4} after {} epochs", last(c), c.train.len());
    }
    for s in &model.aggregate.standing {
        let ports = if s.kind == trafgen::flow::FlowKind::NoFlow { String::new() } else { format!(" to port {} from port {}", s.server_port, s.client_port) };
        println!("standing  {} flow{ports}: {:.1} packets/s, in {:.1} % of streams", s.kind.name(), s.pps, 100.0 * s.share);
    }
    let a = &model.aggregate;
    if !a.client_ports.rows.is_empty() {
        let rows: Vec<String> = a.client_ports.rows.iter().take(8).map(|r| format!("{}→{}/{} {:.0} %", r.client_port, r.server_port, r.ip_proto, 100.0 * r.p)).collect();
        let more = a.client_ports.rows.len().saturating_sub(8);
        println!("ports     fixed client ports: {}{}", rows.join(", "), if more > 0 { format!(" (+{more})") } else { String::new() });
    }
    let fresh = |r: u32| if r == u32::MAX { "none".to_string() } else { format!("from rank {r}") };
    println!("hosts     seen in one flow (a host of its own each): clients {}, servers {}", fresh(a.fresh_rank[0]), fresh(a.fresh_rank[1]));
    println!("flow      {:.1} s; aggregate {:.1} s; total {:.1} s on {}", m.training.seconds_flow, m.training.seconds_aggregate, started.elapsed().as_secs_f64(), m.device);
    Ok(())
}

fn eval(args: &EvalArgs) -> Result<()> {
    use clap::CommandFactory;
    use trafgen::eval::{self, EvalOptions, Report, SyntheticArm};
    let usage = |msg: &str| -> ! {
        Cli::command().error(clap::error::ErrorKind::WrongNumberOfValues, msg).exit();
    };
    let opts = EvalOptions { flow: args.flow.config()?, seed: args.seed };
    let evaluation = match (args.split, args.captures.as_slice()) {
        (None, [real, synth]) => eval::evaluate_pair(real, synth, &opts)?,
        (None, _) => usage("eval needs two captures, REAL and SYNTH (or --split F and one capture)"),
        (Some(f), [capture]) => {
            let (dir, temporary) = match &args.split_dir {
                Some(d) => (d.clone(), false),
                None => (std::env::temp_dir().join(format!("trafgen-eval-{}", std::process::id())), true),
            };
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            // the synthetic arm: a model trained on the first part generates the held-out span
            let out = dir.join("synthetic.pcap");
            let (seed, epochs, warm_up) = (args.seed, args.epochs, args.warm_up);
            let (flow_timing, flow_bytes) = (args.flow_timing.timing(), args.flow_bytes.bytes());
            let synthetic: Option<SyntheticArm> = (!args.no_synthetic).then(|| {
                Box::new(move |train: &std::path::Path, span: trafgen::eval::HeldOutSpan| {
                    let topts = trafgen::model::train::TrainOptions { epochs, seed, device: trafgen::torch::DeviceChoice::Cpu, ..Default::default() };
                    // a warm start: the held-out part is a window cut from ongoing traffic
                    // (long flows in progress at its start, at its steady rate); so is the
                    // synthetic arm, after as long again of generated traffic
                    let warm_up_s = warm_up.unwrap_or_else(|| span.duration_s());
                    let engine = trafgen::synth::EngineConfig { seed, warm_up_s, flow_timing, flow_bytes, ..Default::default() };
                    trafgen::generate::train_and_generate(train, &topts, &engine, span.start_ns, span.duration_ns, &out)?;
                    Ok(out)
                }) as SyntheticArm
            });
            let result = eval::evaluate_split(capture, f, &dir, &opts, synthetic);
            if temporary {
                let _ = std::fs::remove_dir_all(&dir);
            }
            result?
        }
        (Some(_), _) => usage("eval --split takes exactly one capture"),
    };
    let report = Report::new(&evaluation);
    // the file first, so that a closed stdout (`| head`) cannot lose it
    if let Some(path) = &args.html {
        let page = eval::report::html(&evaluation, &report)?;
        std::fs::write(path, page).with_context(|| format!("writing the HTML report to {}", path.display()))?;
    }
    let mut out = if args.json { serde_json::to_string_pretty(&report)? + "\n" } else { report.to_text() };
    if let (Some(path), false) = (&args.html, args.json) {
        out += &format!("html       {}\n", path.display());
    }
    match std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing the report to stdout"),
        _ => Ok(()),
    }
}

/// Prints a failed command's error once (causes not already in its message follow), without a
/// backtrace: user errors name the file and field; backtraces are for bugs.
fn main() {
    if let Err(e) = run() {
        let top = e.to_string();
        eprintln!("error: {top}");
        let mut shown = vec![top];
        for cause in e.chain().skip(1) {
            let c = cause.to_string();
            if !shown.iter().any(|s| s.contains(&c)) {
                eprintln!("  caused by: {c}");
                shown.push(c);
            }
        }
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).context("--log")?)
        .with_writer(std::io::stderr)
        .init();
    match &cli.cmd {
        Cmd::Inspect(args) => inspect(args),
        Cmd::Demo(args) => demo(args),
        Cmd::Generate(args) => generate(args),
        Cmd::Send(args) => send(args),
        Cmd::Status(args) => status(args),
        Cmd::Validate(args) => validate(args),
        Cmd::Train(args) => train(args),
        Cmd::Eval(args) => eval(args),
        Cmd::Version => {
            let info = trafgen::torch::info();
            println!("trafgen {}", env!("CARGO_PKG_VERSION"));
            println!(
                "libtorch {} (cuda available: {}, devices: {}, cudnn: {}, cpu threads: {})",
                info.libtorch, info.cuda_available, info.cuda_devices, info.cudnn_available, info.cpu_threads
            );
            Ok(())
        }
    }
}
