//! `trafgen send` on a real (virtual) wire: two network namespaces created by the test, joined
//! by a veth pair with 10.x addresses; the sender runs in one (`ip netns exec`), tcpdump
//! captures on the peer. Counts match, frames pass our validator, the allowlist is enforced,
//! `--pps`/`--duration` are honoured and a capture replayed at `--multiplier 1` keeps its
//! schedule. Bounds are loose (shared CI cores); tight figures are `bench/emit.sh`'s.
//!
//! Needs root, `ip` and `tcpdump`; otherwise every test says why it skips and passes.
//! Nothing is ever sent in the root namespace, and the namespaces are deleted by a Drop guard,
//! also when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use trafgen::capture::CaptureReader;

mod netns;
use netns::{udp_capture, Veth};

/// One namespace pair at a time: timing checks share two cores.
static SERIAL: Mutex<()> = Mutex::new(());
static NEXT: AtomicU32 = AtomicU32::new(0);

fn skip_reason() -> Option<String> {
    netns::skip_reason(&["ip", "tcpdump"])
}

macro_rules! skip_unless_able {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("skipping: {why}");
            return;
        }
    };
}

/// Two namespaces `tx`/`rx` joined by veth `vtx` (10.251.0.1/24) <-> `vrx` (10.251.0.2/24),
/// one pair at a time; deleted on drop.
struct Wire {
    veth: Veth,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Wire {
    fn new() -> Wire {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let veth = Veth::new(&format!("tgemit{}x{n}", std::process::id() % 100_000), 251);
        Wire { veth, _serial: serial }
    }

    /// Starts tcpdump on `vrx` writing to `out` (ns timestamps, immediate mode); returns
    /// once it listens.
    fn capture(&self, out: &Path) -> Capture {
        let log = out.with_extension("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.veth.rx, "tcpdump", "-i", "vrx", "-nn", "-Q", "in", "--immediate-mode", "-B", "65536"])
            .args(["--time-stamp-precision=nano", "-w"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start tcpdump");
        let t0 = Instant::now();
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("listening") {
            assert!(t0.elapsed() < Duration::from_secs(10), "tcpdump did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(50));
        }
        Capture { child, path: out.to_path_buf() }
    }

    /// Runs `trafgen send -i vtx ARGS` inside the sending namespace.
    fn send(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.veth.tx, env!("CARGO_BIN_EXE_trafgen"), "send", "-i", "vtx", "-q"])
            .args(args)
            .output()
            .expect("run trafgen send")
    }
}

struct Capture {
    child: Child,
    path: PathBuf,
}

impl Capture {
    /// Stops tcpdump and returns the captured (timestamp ns, frame) pairs.
    fn finish(mut self) -> Vec<(i64, Vec<u8>)> {
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: kill on the pid of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        read(&self.path)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &Path) -> Vec<(i64, Vec<u8>)> {
    let mut r = CaptureReader::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push((rec.ts_ns, rec.data.to_vec()));
    }
    out
}

fn ok(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "trafgen send failed: {}\n{}", String::from_utf8_lossy(&o.stderr), String::from_utf8_lossy(&o.stdout));
    serde_json::from_slice(&o.stdout).expect("--json totals")
}

/// Deterministic exponential gaps with this mean.
fn exp_gaps(n: usize, mean_ns: f64) -> Vec<i64> {
    let mut rng = trafgen::rng::SplitMix64::new(42);
    (0..n).map(|_| (-(1.0 - rng.next_f64()).ln() * mean_ns) as i64).collect()
}

#[test]
fn model_stream_arrives_whole_and_valid() {
    skip_unless_able!();
    let w = Wire::new();
    let d = tempfile::tempdir().unwrap();
    let cap = w.capture(&d.path().join("rx.pcap"));
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/default");
    let o = w.send(&["-m", model.to_str().unwrap(), "--pps", "3000", "--limit", "3000", "--allow", "10.0.0.0/8,fd00::/8", "--json"]);
    let report = ok(&o);
    let got = cap.finish();
    assert_eq!(report["pacer"]["frames"], 3000);
    assert_eq!(got.len(), 3000, "captured {} of 3000 frames", got.len());
    assert_eq!(report["pacer"]["end"], "limit");
    // our validator finds every frame well-formed (checksums, lengths, TCP rules)
    let v = Command::new(env!("CARGO_BIN_EXE_trafgen")).args(["validate", "--json"]).arg(&cap_path(&d)).output().unwrap();
    let vj: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&v.stderr)));
    assert_eq!(vj["violations_total"], 0, "{vj}");
    assert_eq!(vj["packets"], 3000);
}

fn cap_path(d: &tempfile::TempDir) -> PathBuf {
    d.path().join("rx.pcap")
}

#[test]
fn a_plan_outside_the_allowlist_does_not_start() {
    skip_unless_able!();
    let w = Wire::new();
    let d = tempfile::tempdir().unwrap();
    let cap = w.capture(&d.path().join("rx.pcap"));
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/default");
    // the default plan's servers are 10.2.0.0/16
    let o = w.send(&["-m", model.to_str().unwrap(), "--limit", "100", "--allow", "10.1.0.0/16,fd00::/8"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("does not start") && err.contains("server_v4") && err.contains("10.2.0.0/16"), "{err}");
    // a capture with one frame outside the list does not start either
    let p = d.path().join("in.pcap");
    udp_capture(&p, &[1000; 50]);
    let o = w.send(&["--pcap", p.to_str().unwrap(), "--allow", "10.1.0.0/16"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    // frame #1 is the first to a server (10.2.x)
    assert!(err.contains("record #1:") && err.contains("outside the allowlist") && err.contains("does not start"), "{err}");
    assert_eq!(cap.finish().len(), 0, "a refused stream sent frames");
}

#[test]
fn pps_and_duration_are_honoured() {
    skip_unless_able!();
    let w = Wire::new();
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("in.pcap");
    udp_capture(&p, &[1000; 99]);
    let cap = w.capture(&d.path().join("rx.pcap"));
    let o = w.send(&["--pcap", p.to_str().unwrap(), "--loop", "1000", "--pps", "5000", "--duration", "1", "--json"]);
    let report = ok(&o);
    let got = cap.finish();
    assert_eq!(report["pacer"]["end"], "duration");
    // offsets 0..=1 s at 200 µs: 5001 frames
    assert_eq!(got.len() as u64, report["pacer"]["frames"].as_u64().unwrap());
    assert!((4950..=5051).contains(&got.len()), "{} frames in 1 s at 5000 pps", got.len());
    let span = (got.last().unwrap().0 - got[0].0) as f64 / 1e9;
    assert!((0.97..1.03).contains(&span), "span {span} s");
}

#[test]
fn a_capture_replayed_at_multiplier_1_keeps_its_schedule() {
    skip_unless_able!();
    let w = Wire::new();
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("in.pcap");
    udp_capture(&p, &exp_gaps(2999, 500_000.0)); // ~1.5 s, mean gap 500 µs
    let orig = read(&p);
    let cap = w.capture(&d.path().join("rx.pcap"));
    let o = w.send(&["--pcap", p.to_str().unwrap(), "--multiplier", "1", "--json"]);
    ok(&o);
    let got = cap.finish();
    assert_eq!(got.len(), orig.len());
    // frames arrive in order, byte for byte
    assert!(got.iter().zip(&orig).all(|(a, b)| a.1 == b.1), "frames differ or reordered");
    // schedule error: captured offset − recorded offset, around the best constant offset
    let mut err: Vec<i64> = got.iter().zip(&orig).map(|(g, o)| (g.0 - got[0].0) - (o.0 - orig[0].0)).collect();
    let drift = *err.last().unwrap();
    err.sort();
    let med = err[err.len() / 2];
    let mut dev: Vec<i64> = err.iter().map(|e| (e - med).abs()).collect();
    dev.sort();
    assert!(dev[dev.len() / 2] < 100_000, "median schedule error {} ns", dev[dev.len() / 2]);
    // no drift: the last frame within 2 ms of the schedule over 1.5 s
    assert!((drift - med).abs() < 2_000_000, "drift {} ns", drift - med);
}
