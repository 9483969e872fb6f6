//! `trafgend` end to end, inside two network namespaces the test creates (veth pair, 10.x
//! addresses; never the root namespace): it starts its streams (one that cannot start is
//! logged and the others run), tells a fake systemd (a unix datagram socket bound by the test
//! as NOTIFY_SOCKET, with WATCHDOG_USEC) READY=1 and then WATCHDOG=1 every half period, serves
//! metrics whose frame counter grows (scraped with `trafgen status` inside the namespace), keeps running and sending when SIGHUP brings a
//! broken file (the log names the error), applies a changed file on SIGHUP, and on SIGTERM
//! says STOPPING=1, logs each stream's totals and exits 0. Faults: a stream whose link is set
//! down or loses its carrier pauses (logged, `trafgend_link_up` 0, counted) and resumes when
//! the link is back; a stream whose interface is deleted fails with an error naming it while
//! the others go on; a stream whose model is damaged fails naming the file.
//!
//! Needs root and `ip`; otherwise it says why it skips and passes. The namespaces are deleted
//! by a Drop guard, also when the test fails.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};


mod netns;
use netns::{udp_capture, Veth};

fn skip_reason() -> Option<String> {
    netns::skip_reason(&["ip"])
}

/// The daemon under test; killed on drop if the test fails before SIGTERM.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `trafgend --config CFG` in `w`'s sending namespace, logging to DIR/trafgend.log,
    /// with a fake systemd: the returned [`FakeSystemd`] receives its notifications.
    fn start(w: &Veth, dir: &Path, cfg: &Path) -> (Daemon, FakeSystemd) {
        let notify_path = dir.join("notify.sock");
        let notify = FakeSystemd::listen(&notify_path);
        let log = dir.join("trafgend.log");
        let child = Command::new("ip")
            .args(["netns", "exec", &w.tx, env!("CARGO_BIN_EXE_trafgend"), "--config"])
            .arg(cfg)
            .env("NOTIFY_SOCKET", &notify_path)
            // systemd's WatchdogSec=, short: WATCHDOG=1 every 0.3 s
            .env("WATCHDOG_USEC", "600000")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start trafgend");
        (Daemon { child, log }, notify)
    }

    /// Waits (at most 10 s, after SIGTERM) for the daemon to exit.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "trafgend did not stop within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill on the pid of our own child (`ip netns exec` execs trafgend itself).
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(pcap: &Path, pps: &str) -> String {
    format!(
        "[daemon]\nmetrics_listen = \"127.0.0.1:9177\"\nlog_format = \"journald\"\n\n\
         [[stream]]\nname = \"a\"\ninterface = \"vtx\"\npcap = \"{}\"\nseed = 1\npps = {pps}\nloop = 1000000\nallowlist = [\"10.0.0.0/8\"]\n\n\
         [[stream]]\nname = \"ghost\"\ninterface = \"tgnosuch0\"\npcap = \"{}\"\nseed = 2\nallowlist = [\"10.0.0.0/8\"]\n",
        pcap.display(),
        pcap.display()
    )
}

/// systemd's side of NOTIFY_SOCKET: a thread reads every datagram as it comes (as systemd
/// does; the daemon drops notifications rather than block when nobody reads).
struct FakeSystemd {
    msgs: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl FakeSystemd {
    fn listen(path: &Path) -> FakeSystemd {
        let sock = UnixDatagram::bind(path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let (msgs, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (m, st) = (msgs.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !st.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    m.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        });
        FakeSystemd { msgs, stop }
    }
}

impl Drop for FakeSystemd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Takes the notifications after `seen` until one has the line `want` (or panics after
/// `within`).
fn expect_notify(sd: &FakeSystemd, want: &str, within: Duration, seen: &mut Vec<String>) {
    let t0 = Instant::now();
    loop {
        {
            let all = sd.msgs.lock().unwrap();
            while seen.len() < all.len() {
                let msg = all[seen.len()].clone();
                seen.push(msg.clone());
                if msg.lines().any(|l| l == want) {
                    return;
                }
            }
        }
        assert!(t0.elapsed() < within, "no {want} within {within:?}; got {seen:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of `series` in the daemon's /metrics, scraped from inside its namespace.
fn metric(w: &Veth, series: &str) -> f64 {
    let o = Command::new("ip").args(["netns", "exec", &w.tx, env!("CARGO_BIN_EXE_trafgen"), "status", "--metrics"]).output().unwrap();
    assert!(o.status.success(), "trafgen status --metrics: {}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text.lines().find(|l| l.starts_with(&format!("{series} "))).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn daemon_runs_reloads_and_drains() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping: {why}");
        return;
    }
    let w = Veth::new(&format!("tgdmn{}", std::process::id() % 100_000), 252);
    let d = tempfile::tempdir().unwrap();
    let pcap = d.path().join("in.pcap");
    udp_capture(&pcap, &[1_000_000; 99]);
    let cfg = d.path().join("trafgend.toml");
    std::fs::write(&cfg, config(&pcap, "500")).unwrap();
    let (mut daemon, notify) = Daemon::start(&w, d.path(), &cfg);
    let mut seen = Vec::new();

    // started: READY=1; the stream whose interface does not exist is logged and the other runs
    expect_notify(&notify, "READY=1", Duration::from_secs(20), &mut seen);
    // (its "starting stream" line names the interface before the failure is logged)
    wait_for("the ghost stream's error", Duration::from_secs(10), || daemon.log().contains("stream failed"));
    assert!(daemon.log().contains("stream failed") && daemon.log().contains("no such interface"), "{}", daemon.log());
    wait_for("frames", Duration::from_secs(10), || metric(&w, "trafgend_frames_sent_total{stream=\"a\"}") > 0.0);
    let f1 = metric(&w, "trafgend_frames_sent_total{stream=\"a\"}");
    std::thread::sleep(Duration::from_millis(1500));
    let f2 = metric(&w, "trafgend_frames_sent_total{stream=\"a\"}");
    assert!(f2 > f1 + 300.0, "frames at 500 pps: {f1} then {f2} 1.5 s later");
    assert_eq!(metric(&w, "trafgend_send_errors_total{stream=\"a\"}"), 0.0);
    let st = Command::new("ip").args(["netns", "exec", &w.tx, env!("CARGO_BIN_EXE_trafgen"), "status"]).output().unwrap();
    let st = String::from_utf8_lossy(&st.stdout);
    assert!(st.contains("running") && st.contains("failed") && st.contains("tgnosuch0"), "{st}");
    // the watchdog: pinged at half of WATCHDOG_USEC while the running stream's pacer is alive
    // (a failed stream does not count as stuck)
    let before = seen.iter().filter(|m| m.lines().any(|l| l == "WATCHDOG=1")).count();
    for _ in 0..3 {
        expect_notify(&notify, "WATCHDOG=1", Duration::from_secs(2), &mut seen);
    }
    let pings = seen.iter().filter(|m| m.lines().any(|l| l == "WATCHDOG=1")).count();
    assert!(pings >= before + 3, "{seen:?}");
    assert!(daemon.log().contains("watchdog enabled"), "{}", daemon.log());

    // a broken file on SIGHUP: rejected with its position, the stream keeps sending
    std::fs::write(&cfg, config(&pcap, "0")).unwrap();
    daemon.signal(libc::SIGHUP);
    expect_notify(&notify, "RELOADING=1", Duration::from_secs(10), &mut seen);
    expect_notify(&notify, "READY=1", Duration::from_secs(10), &mut seen);
    wait_for("the reload error in the log", Duration::from_secs(5), || daemon.log().contains("reload rejected"));
    let log_text = daemon.log();
    assert!(log_text.contains("trafgend.toml:10:7") && log_text.contains("pps"), "{log_text}");
    assert!(daemon.alive(), "trafgend exited on a bad reload:\n{log_text}");
    let f3 = metric(&w, "trafgend_frames_sent_total{stream=\"a\"}");
    std::thread::sleep(Duration::from_millis(1000));
    let f4 = metric(&w, "trafgend_frames_sent_total{stream=\"a\"}");
    assert!(f3 >= f2 && f4 > f3 + 200.0, "frames after a bad reload: {f3} then {f4}");
    assert_eq!(metric(&w, "trafgend_reloads_total{result=\"error\"}"), 1.0);

    // a good, changed file: the new rate takes effect
    std::fs::write(&cfg, config(&pcap, "3000")).unwrap();
    daemon.signal(libc::SIGHUP);
    expect_notify(&notify, "RELOADING=1", Duration::from_secs(10), &mut seen);
    expect_notify(&notify, "READY=1", Duration::from_secs(10), &mut seen);
    wait_for("the reload", Duration::from_secs(5), || daemon.log().contains("configuration reloaded"));
    std::thread::sleep(Duration::from_millis(2500));
    let rate = metric(&w, "trafgend_rate_pps{stream=\"a\"}");
    assert!((2000.0..4000.0).contains(&rate), "rate after reloading to 3000 pps: {rate}");
    assert_eq!(metric(&w, "trafgend_reloads_total{result=\"ok\"}"), 1.0);

    // SIGTERM: STOPPING=1, totals logged, exit 0
    daemon.signal(libc::SIGTERM);
    expect_notify(&notify, "STOPPING=1", Duration::from_secs(10), &mut seen);
    let status = daemon.wait_exit();
    let log_text = daemon.log();
    assert!(status.success(), "exit {status:?}\n{log_text}");
    let totals = log_text.lines().filter(|l| l.contains("stream totals") && l.contains("stream=a")).last().unwrap_or_else(|| panic!("no totals for stream a:\n{log_text}"));
    assert!(totals.contains("ended=\"stopped\"") || totals.contains("ended=stopped"), "{totals}");
    assert!(log_text.contains("all streams stopped"), "{log_text}");
    // journald format: no timestamps, no colour
    assert!(!log_text.contains('\u{1b}'), "colour codes in the journald log");
    assert!(log_text.lines().all(|l| !l.starts_with("20")), "timestamps in the journald log:\n{log_text}");
}

/// `systemd-analyze verify` on the unit, with ExecStart pointed at the binary just built (the
/// verifier checks that the executable exists).
#[test]
fn the_unit_file_verifies() {
    let have = Command::new("sh").args(["-c", "command -v systemd-analyze"]).stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !have {
        eprintln!("skipping: systemd-analyze is not installed (scripts/setup.sh installs systemd)");
        return;
    }
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/trafgend.service")).unwrap();
    for line in ["Type=notify", "WatchdogSec=", "NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=CAP_NET_RAW\n", "AmbientCapabilities=CAP_NET_RAW\n"] {
        assert!(unit.contains(line), "the unit lacks {line:?}");
    }
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("trafgend.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/trafgend", env!("CARGO_BIN_EXE_trafgend"))).unwrap();
    let o = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("trafgend.service"), "systemd-analyze verify: {err}");
}

#[test]
fn streams_ride_out_link_faults_and_a_lost_interface_stops_only_its_stream() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping: {why}");
        return;
    }
    let w = Veth::new(&format!("tgdfl{}", std::process::id() % 100_000), 253);
    let d = tempfile::tempdir().unwrap();
    let pcap = d.path().join("in.pcap");
    udp_capture(&pcap, &[1_000_000; 99]);
    // stream b sends on a veth pair inside the sending namespace, deleted below
    for args in [&["link", "add", "tgdel0", "type", "veth", "peer", "name", "tgdel1"][..], &["link", "set", "tgdel0", "up"], &["link", "set", "tgdel1", "up"]] {
        let mut all = vec!["ip", "-n", w.tx.as_str()];
        all.extend_from_slice(args);
        netns::sh(&all);
    }
    // stream m's model has a truncated weight file
    let model = d.path().join("cut-model");
    std::fs::create_dir(&model).unwrap();
    for e in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/models/default")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), model.join(e.file_name())).unwrap();
    }
    let vae = model.join("packet_vae.safetensors");
    std::fs::write(&vae, &std::fs::read(&vae).unwrap()[..100]).unwrap();
    let stream = |name: &str, iface: &str| {
        format!("[[stream]]\nname = \"{name}\"\ninterface = \"{iface}\"\npcap = \"{}\"\nseed = 1\npps = 1000\nloop = 1000000\nallowlist = [\"10.0.0.0/8\"]\n\n", pcap.display())
    };
    let cfg = d.path().join("trafgend.toml");
    std::fs::write(
        &cfg,
        format!(
            "[daemon]\nlog_format = \"journald\"\n\n{}{}[[stream]]\nname = \"m\"\ninterface = \"vtx\"\nmodel = \"{}\"\nseed = 3\nallowlist = [\"10.0.0.0/8\", \"fd00::/8\"]\n",
            stream("a", "vtx"),
            stream("b", "tgdel0"),
            model.display()
        ),
    )
    .unwrap();
    let (mut daemon, notify) = Daemon::start(&w, d.path(), &cfg);
    let mut seen = Vec::new();
    expect_notify(&notify, "READY=1", Duration::from_secs(20), &mut seen);
    let frames = |s: &str| metric(&w, &format!("trafgend_frames_sent_total{{stream=\"{s}\"}}"));
    let link_up = |s: &str| metric(&w, &format!("trafgend_link_up{{stream=\"{s}\"}}"));
    let grows = |s: &str| {
        let f = frames(s);
        wait_for(&format!("stream {s} sending"), Duration::from_secs(10), || frames(s) > f + 100.0);
    };
    grows("a");
    grows("b");
    // the damaged model: its stream fails naming the file, the others run
    wait_for("stream m's error", Duration::from_secs(20), || daemon.log().contains("packet_vae.safetensors"));
    let log = daemon.log();
    let line = log.lines().find(|l| l.contains("packet_vae.safetensors")).unwrap();
    assert!(line.contains("stream failed") && line.contains(&vae.display().to_string()) && line.contains("truncated or corrupt"), "{line}");

    // the link set down, then up: stream a pauses (logged with its name, gauge 0), b goes on
    let lines_with = |what: &str| daemon.log().lines().filter(|l| l.contains(what) && l.contains("name=a")).count();
    let ip = |tx: bool, args: &[&str]| {
        let mut all = vec!["ip", "-n", if tx { w.tx.as_str() } else { w.rx.as_str() }];
        all.extend_from_slice(args);
        netns::sh(&all);
    };
    ip(true, &["link", "set", "vtx", "down"]);
    wait_for("stream a waiting for its link", Duration::from_secs(5), || link_up("a") == 0.0);
    assert_eq!(lines_with("link down (administratively down)"), 1, "{}", daemon.log());
    let st = Command::new("ip").args(["netns", "exec", &w.tx, env!("CARGO_BIN_EXE_trafgen"), "status"]).output().unwrap();
    let st = String::from_utf8_lossy(&st.stdout);
    assert!(st.lines().any(|l| l.starts_with("a ") && l.contains("link-down")), "{st}");
    let f = frames("a");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(frames("a"), f, "stream a sent while its link was down");
    grows("b");
    ip(true, &["link", "set", "vtx", "up"]);
    wait_for("stream a's link back", Duration::from_secs(5), || link_up("a") == 1.0);
    grows("a");
    assert_eq!(lines_with("link back after"), 1, "{}", daemon.log());

    // the carrier lost (the veth peer set down), then back
    ip(false, &["link", "set", "vrx", "down"]);
    wait_for("stream a to see no carrier", Duration::from_secs(5), || link_up("a") == 0.0);
    assert_eq!(lines_with("link down (no carrier)"), 1, "{}", daemon.log());
    ip(false, &["link", "set", "vrx", "up"]);
    wait_for("stream a's carrier back", Duration::from_secs(5), || link_up("a") == 1.0);
    grows("a");
    assert_eq!(metric(&w, "trafgend_link_down_total{stream=\"a\"}"), 2.0);
    assert_eq!(metric(&w, "trafgend_stream_up{stream=\"a\",interface=\"vtx\",source=\"pcap\",phase=\"running\"}"), 1.0, "stream a kept running");
    assert_eq!(metric(&w, "trafgend_send_errors_total{stream=\"a\"}"), 0.0);

    // stream b's interface deleted: b fails naming it, a goes on
    ip(true, &["link", "del", "tgdel0"]);
    wait_for("stream b's error", Duration::from_secs(5), || daemon.log().contains("no longer exists"));
    let log = daemon.log();
    let line = log.lines().find(|l| l.contains("no longer exists")).unwrap();
    assert!(line.contains("stream failed") && line.contains("interface \"tgdel0\"") && line.contains("name=b"), "{line}");
    assert_eq!(metric(&w, "trafgend_stream_up{stream=\"b\",interface=\"tgdel0\",source=\"pcap\",phase=\"failed\"}"), 0.0);
    assert_eq!(metric(&w, "trafgend_send_errors_total{stream=\"b\"}"), 1.0);
    grows("a");
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit();
    assert!(status.success(), "exit {status:?}\n{}", daemon.log());
}
