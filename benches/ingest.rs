//! Ingestion throughput benchmark (issue 2): packets/s for read-only, parse-only,
//! parse+flows and parse+flows+features on a large capture made by the project itself,
//! side by side with `tcpdump -r FILE -w /dev/null` on the same file in the same run.
//!
//! Run with `bench/ingest.sh` or `cargo bench --bench ingest`. Environment:
//! - `TRAFGEN_BENCH_PACKETS` (default 5 000 000): packets in the capture;
//! - `TRAFGEN_BENCH_RUNS` (default 3): runs per stage, the best is reported;
//! - `TRAFGEN_BENCH_CPU` (default 0): the core the measured part is pinned to.
//!
//! Arguments after `--` name the stages to run (default all): `tcpdump`, `read`, `parse`,
//! `parse+flows`, `parse+flows+features`.
//!
//! The capture `target/bench/ingest-N.pcap` is generated once with `trafgen::fixture`
//! (streaming: conversations are generated in start order and merged by timestamp through a
//! small heap, so memory is bounded by the frames of the live conversations) and reused while
//! its `.meta` file matches. Results go to stdout (a table, then one JSON line) and to
//! `target/bench/ingest.json`.
//!
//! Ingestion is single-threaded and libpcap reads in the same thread, so a stage's packets/s
//! with the thread pinned to one core is its packets/s per core. tcpdump is pinned to the
//! same core with `taskset` (when available).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use trafgen::capture::{self, CaptureReader};
use trafgen::features::{FlowFeatures, PacketFeatures, Rolling};
use trafgen::fixture::{self, Frame, PcapWriter};
use trafgen::flow::{Assignment, Flow};
use trafgen::ingest::{self, IngestOptions, Observer};

/// Bump when the generated traffic changes, so old captures are regenerated.
const GENERATOR: u32 = 1;
const NS: i64 = 1_000_000_000;
/// Mean gap between conversation starts: ≈ 170 kpps of capture time (≈ 29 s for 5 M packets),
/// ≈ 270 k flows live at the end (UDP flows stay for their 60 s idle timeout).
const MEAN_GAP_NS: f64 = 70_000.0;
/// Goal of issue 2 for parse+flows, packets/s per core.
const GOAL_PPS: f64 = 5e6;

// ---------------------------------------------------------------------------------------
// Capture generation
// ---------------------------------------------------------------------------------------

/// SplitMix64: small, deterministic, good enough for a traffic mix.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn usize(&mut self, lo: usize, hi: usize) -> usize {
        self.range(lo as u64, hi as u64) as usize
    }
}

/// Streams the conversations of the mix, merged by timestamp, into a pcap.
struct Generator {
    rng: Rng,
    /// Frames of the conversations started so far that are not written yet.
    pending: BinaryHeap<Reverse<(i64, u64, u8, Vec<u8>)>>,
    seq: u64,
    now: i64,
    next_port: u32,
    peak_pending: usize,
    conversations: [u64; 6],
}

const KIND_NAMES: [&str; 6] = ["tcp", "dns", "udp_session", "icmp", "arp", "udp6"];

impl Generator {
    fn new(t0: i64) -> Self {
        Generator {
            rng: Rng(0x7472_6166_6765_6e21),
            pending: BinaryHeap::new(),
            seq: 0,
            now: t0,
            next_port: 0,
            peak_pending: 0,
            conversations: [0; 6],
        }
    }

    fn port(&mut self) -> u16 {
        self.next_port = (self.next_port + 1) % 64_000;
        (1024 + self.next_port) as u16
    }

    fn client(&mut self) -> [u8; 4] {
        // ~20 000 client hosts
        [10, 1, self.rng.range(0, 79) as u8, self.rng.range(1, 250) as u8]
    }

    fn server(&mut self) -> [u8; 4] {
        // ~500 servers
        [10, 2, self.rng.range(0, 1) as u8, self.rng.range(1, 250) as u8]
    }

    fn push(&mut self, kind: u8, frames: Vec<Frame>) {
        for (t, f) in frames {
            self.pending.push(Reverse((t, self.seq, kind, f)));
            self.seq += 1;
        }
        self.peak_pending = self.peak_pending.max(self.pending.len());
    }

    /// Starts the next conversation at the next arrival time and queues its frames.
    /// Packet shares (approximately): TCP 80 %, UDP 15 % (DNS and longer UDP sessions),
    /// ICMP 2 %, ARP 1 %, IPv6 UDP 2 %.
    fn next_conversation(&mut self) {
        // exponential inter-arrival
        let gap = -MEAN_GAP_NS * (1.0 - self.rng.unit()).ln();
        self.now += gap as i64;
        let t0 = self.now;
        // Conversation weights ∝ packet share / mean packets per conversation:
        // TCP 0.80/29, DNS 0.07/2, UDP session 0.08/60, ICMP 0.02/6, ARP 0.01/2, UDP6 0.02/2.
        const W: [f64; 6] = [0.80 / 29.0, 0.07 / 2.0, 0.08 / 60.0, 0.02 / 6.0, 0.01 / 2.0, 0.02 / 2.0];
        let total: f64 = W.iter().sum();
        let mut x = self.rng.unit() * total;
        let mut kind = 0;
        while kind < W.len() - 1 && x >= W[kind] {
            x -= W[kind];
            kind += 1;
        }
        self.conversations[kind] += 1;
        let frames = match kind {
            0 => self.tcp(t0),
            1 => {
                let (c, s, sport) = (self.client(), [10, 2, 0, 53], self.port());
                let (req, resp) = (self.rng.usize(28, 80), self.rng.usize(60, 480));
                fixture::udp_exchange(c, s, sport, 53, t0, req, resp)
            }
            2 => {
                // QUIC/RTP-like: many exchanges on one 5-tuple
                let (c, s, sport) = (self.client(), self.server(), self.port());
                let dport = [443, 443, 5004, 123][self.rng.usize(0, 3)];
                let n = self.rng.usize(10, 50);
                let mut out = Vec::with_capacity(2 * n);
                let mut t = t0;
                for _ in 0..n {
                    let (req, resp) = (self.rng.usize(40, 300), self.rng.usize(100, 1200));
                    out.extend(fixture::udp_exchange(c, s, sport, dport, t, req, resp));
                    t += self.rng.range(3_000_000, 40_000_000) as i64;
                }
                out
            }
            3 => {
                // a ping session: a few echoes with one id (one flow)
                let (c, s, id) = (self.client(), self.server(), self.port());
                let mut out = Vec::new();
                for k in 0..self.rng.range(1, 5) as i64 {
                    out.extend(fixture::icmp_echo(c, s, id, t0 + k * NS));
                }
                out
            }
            4 => {
                let (a, b) = (self.client(), self.server());
                fixture::arp_exchange(a, b, t0)
            }
            _ => {
                let mut c6 = [0u8; 16];
                c6[0] = 0xfd;
                c6[13] = self.rng.range(0, 255) as u8;
                c6[14] = self.rng.range(0, 255) as u8;
                c6[15] = self.rng.range(1, 250) as u8;
                let mut s6 = [0u8; 16];
                s6[0] = 0xfd;
                s6[15] = self.rng.range(1, 20) as u8;
                let dport = [53, 443, 5353][self.rng.usize(0, 2)];
                let (sport, len) = (self.port(), self.rng.usize(40, 600));
                fixture::udp6_exchange(c6, s6, sport, dport, t0, len)
            }
        };
        self.push(kind as u8, frames);
    }

    /// A TCP connection of varied length and sizes, its fixed in-connection gaps stretched
    /// ×1–60 so connections last from milliseconds to several seconds.
    fn tcp(&mut self, t0: i64) -> Vec<Frame> {
        let (c, s, sport) = (self.client(), self.server(), self.port());
        let dport = [443, 443, 443, 80, 80, 22, 25, 8080][self.rng.usize(0, 7)];
        let rounds = match self.rng.range(0, 99) {
            0..50 => self.rng.usize(1, 3),
            50..85 => self.rng.usize(4, 10),
            _ => self.rng.usize(11, 40),
        };
        let req = self.rng.usize(40, 600);
        let resp = match self.rng.range(0, 9) {
            0..4 => self.rng.usize(50, 400),
            4..8 => self.rng.usize(400, 1460),
            _ => 1460,
        };
        let stretch = self.rng.range(1, 60) as i64;
        let mut frames = fixture::tcp_connection(c, s, sport, dport, t0, rounds, req, resp);
        for f in &mut frames {
            f.0 = t0 + (f.0 - t0) * stretch;
        }
        frames
    }
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct Meta {
    generator: u32,
    packets: u64,
    bytes: u64,
}

/// Makes (or reuses) the capture of `n` packets; returns its path.
fn capture_file(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join(format!("ingest-{n}.pcap"));
    let meta_path = dir.join(format!("ingest-{n}.pcap.meta"));
    if let (Ok(m), Ok(md)) = (std::fs::read_to_string(&meta_path), std::fs::metadata(&path)) {
        if let Ok(meta) = serde_json::from_str::<Meta>(&m) {
            if meta == (Meta { generator: GENERATOR, packets: n, bytes: md.len() }) {
                println!("reusing {} ({} packets, {:.2} GB)", path.display(), n, md.len() as f64 / 1e9);
                return path;
            }
        }
        println!("{} does not match its .meta: regenerating", path.display());
    }
    std::fs::create_dir_all(dir).expect("create target/bench");
    let _ = std::fs::remove_file(&meta_path);
    let tmp = dir.join(format!("ingest-{n}.pcap.tmp"));
    println!("generating {} with {} packets…", path.display(), n);
    let start = Instant::now();
    let mut w = PcapWriter::create(&tmp).expect("create capture");
    let t0 = 1_700_000_000 * NS;
    let mut g = Generator::new(t0);
    let mut written = 0u64;
    let mut packets = [0u64; 6];
    while written < n {
        // Conversations start in time order and never send before they start, so every
        // queued frame older than the next start can be written.
        if (written + g.pending.len() as u64) < n {
            g.next_conversation();
        }
        let horizon = if (written + g.pending.len() as u64) < n { g.now } else { i64::MAX };
        while written < n {
            match g.pending.peek() {
                Some(Reverse((t, _, _, _))) if *t <= horizon => {}
                _ => break,
            }
            let Reverse((t, _, kind, f)) = g.pending.pop().expect("peeked");
            w.write(t, &f);
            written += 1;
            packets[kind as usize] += 1;
        }
    }
    let span_s = g.now.saturating_sub(t0) as f64 / 1e9;
    assert_eq!(w.finish().expect("flush capture"), n);
    let bytes = std::fs::metadata(&tmp).expect("stat capture").len();
    std::fs::rename(&tmp, &path).expect("rename capture");
    let meta = Meta { generator: GENERATOR, packets: n, bytes };
    std::fs::write(&meta_path, serde_json::to_string(&meta).expect("json")).expect("write .meta");
    let mix: Vec<String> = KIND_NAMES
        .iter()
        .zip(g.conversations.iter().zip(packets))
        .map(|(k, (c, p))| format!("{k} {c} ({:.1} % of packets)", 100.0 * p as f64 / n as f64))
        .collect();
    println!(
        "generated in {:.1} s: {:.2} GB, ~{:.0} s of traffic, peak {} frames queued; conversations: {}",
        start.elapsed().as_secs_f64(),
        bytes as f64 / 1e9,
        span_s,
        g.peak_pending,
        mix.join(", ")
    );
    path
}

// ---------------------------------------------------------------------------------------
// Stages
// ---------------------------------------------------------------------------------------

/// Wall-clock and CPU seconds of one run, and the packets it saw.
struct Run {
    wall: f64,
    cpu: f64,
    packets: u64,
}

/// CPU time of the calling thread (user + system), seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// CPU time (user + system) of the waited-for children, seconds.
fn children_cpu() -> f64 {
    // SAFETY: a zeroed rusage is valid for getrusage to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Times `f` (which returns the packets it saw) in wall-clock and thread CPU time.
fn timed(f: impl FnOnce() -> u64) -> Run {
    let (start, cpu0) = (Instant::now(), thread_cpu());
    let packets = f();
    Run { wall: start.elapsed().as_secs_f64(), cpu: thread_cpu() - cpu0, packets }
}

fn read_only(path: &Path) -> Run {
    timed(|| {
        let mut r = CaptureReader::open(path).expect("open");
        let mut bytes = 0u64;
        while let Some(rec) = r.next_record().expect("read") {
            bytes += rec.data.len() as u64;
        }
        black_box(bytes);
        r.records_read()
    })
}

fn parse_only(path: &Path) -> Run {
    timed(|| {
        let mut r = CaptureReader::open(path).expect("open");
        let link = r.link_type();
        while let Some(rec) = r.next_record().expect("read") {
            let p = capture::decode(link, rec.index, rec.ts_ns, rec.wire_len, rec.data);
            // the whole Packet is materialised, as the ingest loop uses it
            black_box(&p);
        }
        r.records_read()
    })
}

struct Nothing;
impl Observer for Nothing {}

/// Sums a field of every output so that nothing is optimised away.
#[derive(Default)]
struct Sum(u64);
impl Observer for Sum {
    fn packet(&mut self, _p: &capture::Packet, _a: Option<&Assignment>, f: Option<&PacketFeatures>) {
        if let Some(f) = f {
            self.0 = self.0.wrapping_add(f.rate_bytes_1s);
        }
    }
    fn flow(&mut self, _flow: &Flow<Rolling>, f: &FlowFeatures) {
        self.0 = self.0.wrapping_add(f.packets_fwd);
    }
}

fn run_ingest(path: &Path, features: bool, stats: &mut Option<serde_json::Value>) -> Run {
    let opts = IngestOptions { packet_features: features, ..Default::default() };
    let paths = [path.to_path_buf()];
    timed(|| {
        let report = if features {
            let mut obs = Sum::default();
            let r = ingest::ingest(&paths, &opts, &mut obs).expect("ingest");
            black_box(obs.0);
            r
        } else {
            ingest::ingest(&paths, &opts, &mut Nothing).expect("ingest")
        };
        *stats = Some(serde_json::to_value(&report.flow_stats).expect("json"));
        report.packets
    })
}

/// `tcpdump -r FILE -w /dev/null`, pinned to `cpu` with taskset when there is one.
/// Its CPU time is the children's rusage (taskset execs tcpdump: one process).
fn tcpdump(path: &Path, cpu: usize, taskset: bool, n: u64) -> Option<Run> {
    let mut cmd = if taskset {
        let mut c = Command::new("taskset");
        c.args(["-c", &cpu.to_string(), "tcpdump"]);
        c
    } else {
        Command::new("tcpdump")
    };
    cmd.arg("-r").arg(path).args(["-w", "/dev/null"]).stdout(Stdio::null()).stderr(Stdio::piped());
    let (start, cpu0) = (Instant::now(), children_cpu());
    let out = cmd.output().ok()?;
    let (wall, cpu) = (start.elapsed().as_secs_f64(), children_cpu() - cpu0);
    if !out.status.success() {
        eprintln!("tcpdump failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    Some(Run { wall, cpu, packets: n })
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.trim().replace('_', "").parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

struct Stage {
    name: &'static str,
    what: &'static str,
    runs: Vec<Run>,
}

impl Stage {
    /// Best wall-clock seconds.
    fn best(&self) -> Option<f64> {
        self.runs.iter().map(|r| r.wall).reduce(f64::min)
    }
    /// Best CPU seconds.
    fn best_cpu(&self) -> Option<f64> {
        self.runs.iter().map(|r| r.cpu).reduce(f64::min)
    }
}

fn main() {
    let n = env_u64("TRAFGEN_BENCH_PACKETS", 5_000_000);
    let runs = env_u64("TRAFGEN_BENCH_RUNS", 3).max(1) as usize;
    let cpu = env_u64("TRAFGEN_BENCH_CPU", 0) as usize;
    assert!(n > 0, "TRAFGEN_BENCH_PACKETS must be > 0");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("bench");
    let path = capture_file(&dir, n);
    let file_bytes = std::fs::metadata(&path).expect("stat").len();

    let taskset = have("taskset", "--version");
    let tcpdump_ok = have("tcpdump", "--version");
    let online = std::thread::available_parallelism().map_or(0, |n| n.get());
    let pinned = pin(cpu);
    println!(
        "cpu: {} ({} online); measured thread {} core {cpu}; tcpdump {}; load average before: {}",
        cpu_model(),
        online,
        if pinned { "pinned to" } else { "NOT pinned (sched_setaffinity failed) to" },
        if !tcpdump_ok { "missing".to_string() } else if taskset { format!("pinned with taskset -c {cpu}") } else { "not pinned (no taskset)".into() },
        loadavg()
    );
    // warm the page cache so the first measured run does not pay for the disk
    let _ = read_only(&path);

    let mut stages = vec![
        Stage { name: "tcpdump", what: "tcpdump -r FILE -w /dev/null", runs: vec![] },
        Stage { name: "read", what: "CaptureReader::next_record", runs: vec![] },
        Stage { name: "parse", what: "read + capture::decode", runs: vec![] },
        Stage { name: "parse+flows", what: "ingest, packet_features: false", runs: vec![] },
        Stage { name: "parse+flows+features", what: "ingest, packet_features: true", runs: vec![] },
    ];
    let mut flow_stats = None;
    if !tcpdump_ok {
        println!("SKIP tcpdump: `tcpdump` is not installed (no ratio to tcpdump)");
    }
    // `cargo bench --bench ingest -- parse+flows read`: only the named stages.
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    for name in &only {
        assert!(stages.iter().any(|s| s.name == name), "unknown stage {name:?}");
    }
    for (i, st) in stages.iter_mut().enumerate() {
        if !only.is_empty() && !only.iter().any(|o| o == st.name) {
            continue;
        }
        for r in 0..runs {
            let run = match i {
                0 => match tcpdump_ok.then(|| tcpdump(&path, cpu, taskset, n)).flatten() {
                    Some(r) => r,
                    None => break,
                },
                1 => read_only(&path),
                2 => parse_only(&path),
                3 => run_ingest(&path, false, &mut flow_stats),
                _ => run_ingest(&path, true, &mut flow_stats),
            };
            assert_eq!(run.packets, n, "{} saw {} packets, the file has {n}", st.name, run.packets);
            println!(
                "  {:<22} run {}: {:>7.3} s wall {:>6.2} Mpps   {:>7.3} s cpu {:>6.2} Mpps",
                st.name,
                r + 1,
                run.wall,
                n as f64 / run.wall / 1e6,
                run.cpu,
                n as f64 / run.cpu / 1e6
            );
            st.runs.push(run);
        }
    }
    let load_after = loadavg();

    let tcpdump_pps = stages[0].best().map(|s| n as f64 / s);
    let tcpdump_pps_cpu = stages[0].best_cpu().map(|s| n as f64 / s);
    println!();
    println!(
        "ingest benchmark: {n} packets, {:.2} GB ({:.0} B/record), best of {runs}, one core \
         (wall: elapsed time; cpu: CPU time of the measured thread / of tcpdump)",
        file_bytes as f64 / 1e9,
        (file_bytes - 24) as f64 / n as f64
    );
    println!(
        "{:<22} {:>8} {:>7} {:>7} {:>8} {:>7} {:>9} {:>9}  {}",
        "stage", "wall s", "Mpps", "ns/pkt", "cpu s", "Mpps", "x tcpdump", "(cpu)", "what"
    );
    let mut json_stages = serde_json::Map::new();
    for st in &stages {
        let (Some(best), Some(best_cpu)) = (st.best(), st.best_cpu()) else {
            println!("{:<22} {:>8}  {}", st.name, "skipped", st.what);
            json_stages.insert(st.name.into(), serde_json::json!({ "skipped": true }));
            continue;
        };
        let (pps, pps_cpu) = (n as f64 / best, n as f64 / best_cpu);
        let ratio = tcpdump_pps.map(|t| pps / t);
        let ratio_cpu = tcpdump_pps_cpu.map(|t| pps_cpu / t);
        let x = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.2}x"));
        println!(
            "{:<22} {:>8.3} {:>7.2} {:>7.1} {:>8.3} {:>7.2} {:>9} {:>9}  {}",
            st.name,
            best,
            pps / 1e6,
            best * 1e9 / n as f64,
            best_cpu,
            pps_cpu / 1e6,
            x(ratio),
            x(ratio_cpu),
            st.what
        );
        json_stages.insert(
            st.name.into(),
            serde_json::json!({
                "runs_wall_s": st.runs.iter().map(|r| r.wall).collect::<Vec<_>>(),
                "runs_cpu_s": st.runs.iter().map(|r| r.cpu).collect::<Vec<_>>(),
                "best_wall_s": best,
                "best_cpu_s": best_cpu,
                "pps": pps,
                "pps_cpu": pps_cpu,
                "ratio_to_tcpdump": ratio,
                "ratio_to_tcpdump_cpu": ratio_cpu,
            }),
        );
    }
    let flows_pps = stages[3].best().map(|s| n as f64 / s);
    println!(
        "goal (issue 2): parse+flows >= {:.0} Mpps per core: {}; x tcpdump = stage packets/s / tcpdump packets/s",
        GOAL_PPS / 1e6,
        match flows_pps {
            Some(p) => format!("{} ({:.2} Mpps wall)", if p >= GOAL_PPS { "MET" } else { "NOT MET" }, p / 1e6),
            None => "not measured".into(),
        }
    );
    println!("load average after: {load_after}");
    let json = serde_json::json!({
        "bench": "ingest",
        "packets": n,
        "file": path.display().to_string(),
        "file_bytes": file_bytes,
        "runs": runs,
        "cpu": cpu,
        "pinned": pinned,
        "cpu_model": cpu_model(),
        "load_avg_after": load_after,
        "stages": json_stages,
        "flow_stats": flow_stats,
        "goal_parse_flows_pps": GOAL_PPS,
        "goal_met": flows_pps.map(|p| p >= GOAL_PPS),
    });
    let line = serde_json::to_string(&json).expect("json");
    std::fs::write(dir.join("ingest.json"), format!("{line}\n")).expect("write ingest.json");
    println!("{line}");
}
