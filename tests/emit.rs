//! `trafgen send` on a real (virtual) wire: two network namespaces created by the test, joined
//! by a veth pair with 10.x addresses; the sender runs in one (`ip netns exec`), tcpdump
//! captures on the peer. Counts match, frames pass our validator, the allowlist is enforced,
//! `--pps`/`--duration` are honoured and a capture replayed at `--multiplier 1` keeps its
//! schedule. Faults: the link set down and up mid-run pauses the stream, which resumes where
//! it left off with no frame lost; a deleted interface stops it with an error naming it; as
//! an unprivileged user it sends with only CAP_NET_RAW and fails naming CAP_NET_RAW without.
//! Bounds are loose (shared CI cores); tight figures are `bench/emit.sh`'s.
//!
//! Needs root, `ip` and `tcpdump` (and `setpriv` for the privilege test); otherwise every
//! test says why it skips and passes.
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
        self.send_command(&[env!("CARGO_BIN_EXE_trafgen")], args).output().expect("run trafgen send")
    }

    /// `ip netns exec TX PREFIX... send -i vtx -q ARGS` (PREFIX: the binary, possibly behind
    /// a wrapper such as setpriv), stdout and stderr piped.
    fn send_command(&self, prefix: &[&str], args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.veth.tx]).args(prefix).args(["send", "-q"]);
        if !args.contains(&"-i") {
            c.args(["-i", "vtx"]);
        }
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    /// Runs `ip -n NS ARGS...` in the sending (`tx`) or receiving namespace.
    fn ip(&self, tx: bool, args: &[&str]) {
        let ns = if tx { &self.veth.tx } else { &self.veth.rx };
        let mut all = vec!["ip", "-n", ns.as_str()];
        all.extend_from_slice(args);
        netns::sh(&all);
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

/// A scratch directory holding `in.pcap`: 100 UDP frames 1 ms apart (loop it for longer runs).
fn udp_pcap_1ms() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("in.pcap");
    udp_capture(&p, &[1000; 99]);
    (d, p)
}

/// A wire, a scratch directory, and a capture on the peer into its `rx.pcap`.
fn capturing() -> (Wire, tempfile::TempDir, Capture) {
    let w = Wire::new();
    let d = tempfile::tempdir().unwrap();
    let cap = w.capture(&d.path().join("rx.pcap"));
    (w, d, cap)
}

fn default_model() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/default").to_string_lossy().into_owned()
}

#[test]
fn model_stream_arrives_whole_and_valid() {
    skip_unless_able!();
    let (w, d, cap) = capturing();
    let model = default_model();
    let o = w.send(&["-m", &model, "--pps", "3000", "--limit", "3000", "--allow", "10.0.0.0/8,fd00::/8", "--json"]);
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

#[test]
fn a_warm_start_begins_its_schedule_at_its_first_frame() {
    skip_unless_able!();
    let (w, _d, cap) = capturing();
    let model = default_model();
    // 100 s of warm-up at 3000 pps: ~300k packets generated and left out first, which takes
    // a debug build ~15 s, far more than the 5 s the clock would wait for a source that
    // showed no progress (before the fix, the first frames went out 11 s late)
    let t0 = Instant::now();
    let o = w.send(&["-m", &model, "--pps", "3000", "--warm-up", "100", "--duration", "1", "--allow", "10.0.0.0/8,fd00::/8", "--json"]);
    let report = ok(&o);
    let got = cap.finish();
    eprintln!("send took {:.1} s", t0.elapsed().as_secs_f64());
    // (the generator itself stops at the duration)
    assert!(report["pacer"]["end"] == "duration" || report["pacer"]["end"] == "source_done", "{report}");
    assert_eq!(got.len() as u64, report["pacer"]["frames"].as_u64().unwrap());
    // steady from the first instant: every frame on time (had the clock started before the
    // warm-up was over, the first frames would have been seconds late) and a full second's
    // worth of frames
    let p99 = report["pacer"]["lateness"]["p99_ns"].as_u64().unwrap();
    assert!(p99 < 50_000_000, "lateness p99 {p99} ns: {report}");
    assert!((1000..=9000).contains(&got.len()), "{} frames in 1 s at 3000 pps", got.len());
}

fn cap_path(d: &tempfile::TempDir) -> PathBuf {
    d.path().join("rx.pcap")
}

#[test]
fn a_plan_outside_the_allowlist_does_not_start() {
    skip_unless_able!();
    let (w, d, cap) = capturing();
    let model = default_model();
    // the default plan's servers are 10.2.0.0/16
    let o = w.send(&["-m", &model, "--limit", "100", "--allow", "10.1.0.0/16,fd00::/8"]);
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
    let (d, p) = udp_pcap_1ms();
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
    let report = ok(&o);
    let got = cap.finish();
    assert_eq!(got.len(), orig.len());
    // frames arrive in order, byte for byte
    assert!(got.iter().zip(&orig).all(|(a, b)| a.1 == b.1), "frames differ or reordered");
    // schedule error: captured offset − recorded offset, around the best constant offset
    let mut err: Vec<i64> = got.iter().zip(&orig).map(|(g, o)| (g.0 - got[0].0) - (o.0 - orig[0].0)).collect();
    // drift: the median error of the last 100 frames, so that one frame the 2-core VM
    // happened to send late does not read as a clock running off
    let mut tail = err[err.len() - 100..].to_vec();
    tail.sort();
    let drift = tail[tail.len() / 2];
    err.sort();
    let med = err[err.len() / 2];
    let mut dev: Vec<i64> = err.iter().map(|e| (e - med).abs()).collect();
    dev.sort();
    assert!(dev[dev.len() / 2] < 100_000, "median schedule error {} ns: {report}", dev[dev.len() / 2]);
    // no drift: the last 100 frames within 2 ms of the schedule over 1.5 s
    assert!((drift - med).abs() < 2_000_000, "drift {} ns at the last 100 frames", drift - med);
}

#[test]
fn a_link_set_down_and_up_pauses_send_which_resumes_where_it_left_off() {
    skip_unless_able!();
    let w = Wire::new();
    let (d, p) = udp_pcap_1ms();
    let cap = w.capture(&d.path().join("rx.pcap"));
    // 2000 pps for 3 s of schedule: 6001 frames; the link is down for ~1 s in the middle
    let child = w.send_command(&[env!("CARGO_BIN_EXE_trafgen")], &["--pcap", p.to_str().unwrap(), "--loop", "1000", "--pps", "2000", "--duration", "3", "--json"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    w.ip(true, &["link", "set", "vtx", "down"]);
    std::thread::sleep(Duration::from_millis(1000));
    w.ip(true, &["link", "set", "vtx", "up"]);
    let o = child.wait_with_output().unwrap();
    let report = ok(&o);
    let got = cap.finish();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("link down (administratively down)") && err.contains("link back after"), "{err}");
    let pacer = &report["pacer"];
    assert_eq!((pacer["end"].as_str(), pacer["frames"].as_u64(), pacer["link_downs"].as_u64()), (Some("duration"), Some(6001), Some(1)), "{pacer}");
    let down = pacer["link_down_s"].as_f64().unwrap();
    assert!((0.8..3.0).contains(&down), "down {down} s");
    // nothing lost: every frame reached the peer, in order
    assert_eq!(got.len(), 6001, "captured {} of 6001 frames", got.len());
    // one pause, and the frames after it keep their 500 µs spacing (no catch-up burst)
    let gaps: Vec<i64> = got.windows(2).map(|w| w[1].0 - w[0].0).collect();
    let (at, longest) = gaps.iter().enumerate().max_by_key(|(_, g)| **g).unwrap();
    assert!(*longest as f64 / 1e9 >= 0.8 * down, "longest gap {longest} ns, link down {down} s");
    let after = (got.len() - 1 - (at + 1)) as f64;
    let span = (got[got.len() - 1].0 - got[at + 1].0) as f64;
    assert!(after > 1000.0 && (span / after / 500_000.0 - 1.0).abs() < 0.05, "{after} gaps after the outage over {span} ns");
}

#[test]
fn a_deleted_interface_stops_send_with_an_error_naming_it() {
    skip_unless_able!();
    let w = Wire::new();
    let (_d, p) = udp_pcap_1ms();
    // a veth pair with both ends in the sending namespace
    w.ip(true, &["link", "add", "tgdel0", "type", "veth", "peer", "name", "tgdel1"]);
    w.ip(true, &["link", "set", "tgdel0", "up"]);
    w.ip(true, &["link", "set", "tgdel1", "up"]);
    let child = w.send_command(&[env!("CARGO_BIN_EXE_trafgen")], &["-i", "tgdel0", "--pcap", p.to_str().unwrap(), "--loop", "100000", "--pps", "2000"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    w.ip(true, &["link", "del", "tgdel0"]);
    let t0 = Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "send took {:?} to notice", t0.elapsed());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("interface \"tgdel0\"") && err.contains("no longer exists"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// `trafgen send` as user nobody: with only CAP_NET_RAW (ambient) it sends; without it, or as
/// root with CAP_NET_RAW dropped from the bounding set, it fails with an error naming
/// CAP_NET_RAW and sends nothing.
#[test]
fn send_needs_only_cap_net_raw_and_says_so_without_it() {
    if let Some(why) = netns::skip_reason(&["ip", "tcpdump", "setpriv"]) {
        return eprintln!("skipping: {why}");
    }
    let d = tempfile::tempdir().unwrap();
    // nobody reads the capture and, when it cannot run the binary where it was built, a copy
    let dir = d.path();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let p = dir.join("in.pcap");
    udp_capture(&p, &[100_000; 99]);
    let nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"];
    let runs_as_nobody = |bin: &str| {
        Command::new(nobody[0]).args(&nobody[1..]).args([bin, "version"]).output().is_ok_and(|o| o.status.success())
    };
    let mut bin = env!("CARGO_BIN_EXE_trafgen").to_string();
    if !runs_as_nobody(&bin) {
        let copy = dir.join("trafgen");
        std::fs::copy(&bin, &copy).unwrap();
        bin = copy.to_str().unwrap().to_string();
        if !runs_as_nobody(&bin) {
            // e.g. a checkout under /root: libtorch is found through the binary's RUNPATH
            // (.venv/torch/lib), which user nobody cannot reach
            return eprintln!("skipping: user nobody cannot run trafgen (is the libtorch in .venv readable by all users?)");
        }
    }
    let w = Wire::new();
    let cap = w.capture(&dir.join("rx.pcap"));
    let with_cap: Vec<&str> = nobody.iter().copied().chain(["--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw", bin.as_str()]).collect();
    let o = w.send_command(&with_cap, &["--pcap", p.to_str().unwrap(), "--pps", "1000", "--json"]).output().unwrap();
    let report = ok(&o);
    assert_eq!(report["pacer"]["frames"], 100);
    assert_eq!(cap.finish().len(), 100);

    let cap = w.capture(&dir.join("rx2.pcap"));
    let without: Vec<&str> = nobody.iter().copied().chain(["--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", bin.as_str()]).collect();
    let root_without = ["setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw", bin.as_str()];
    for wrapper in [&without[..], &root_without[..]] {
        let o = w.send_command(wrapper, &["--pcap", p.to_str().unwrap(), "--pps", "1000"]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{wrapper:?}: {err}");
        assert!(err.contains("needs the CAP_NET_RAW capability") && err.contains("interface \"vtx\""), "{wrapper:?}: {err}");
    }
    assert_eq!(cap.finish().len(), 0, "frames were sent without CAP_NET_RAW");
}
