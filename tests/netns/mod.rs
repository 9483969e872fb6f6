//! Network namespaces for the emission tests: a veth pair between two namespaces the test
//! creates (addresses in 10.x only, IPv6 off), deleted when dropped — also when the test
//! fails. Nothing is ever sent on the root namespace's interfaces. Also the UDP capture the
//! tests replay through it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

use trafgen::flow::Direction;
use trafgen::sink::{FileSink, OutputFormat, MAX_SNAPLEN};
use trafgen::synth::{Proto, SynthPacket, PLAN_CHOOSES};
use trafgen::wire::{FrameBuilder, WireConfig};

pub fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Why tests needing namespaces, AF_PACKET and `tools` cannot run here, if they cannot.
pub fn skip_reason(tools: &[&str]) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (creating network namespaces and AF_PACKET sockets needs it)".into());
    }
    tools.iter().find(|t| !have(t)).map(|t| format!("`{t}` is not installed (scripts/setup.sh installs it)"))
}

/// Runs a set-up command; panics with its stderr if it fails.
pub fn sh(args: &[&str]) {
    let o = Command::new(args[0]).args(&args[1..]).output().expect("run a set-up command");
    assert!(o.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
}

/// Namespaces `tx`/`rx` joined by veth `vtx` (10.`net`.0.1/24) <-> `vrx` (10.`net`.0.2/24).
pub struct Veth {
    pub tx: String,
    pub rx: String,
}

impl Veth {
    /// `tag` makes the namespace names unique (e.g. test name + pid).
    pub fn new(tag: &str, net: u8) -> Veth {
        let w = Veth { tx: format!("{tag}tx"), rx: format!("{tag}rx") };
        sh(&["ip", "netns", "add", &w.tx]);
        sh(&["ip", "netns", "add", &w.rx]);
        sh(&["ip", "-n", &w.tx, "link", "add", "vtx", "type", "veth", "peer", "name", "vrx", "netns", &w.rx]);
        for ns in [&w.tx, &w.rx] {
            sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&["ip", "-n", &w.tx, "addr", "add", &format!("10.{net}.0.1/24"), "dev", "vtx"]);
        sh(&["ip", "-n", &w.rx, "addr", "add", &format!("10.{net}.0.2/24"), "dev", "vrx"]);
        sh(&["ip", "-n", &w.tx, "link", "set", "vtx", "up"]);
        sh(&["ip", "-n", &w.rx, "link", "set", "vrx", "up"]);
        w
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        for ns in [&self.tx, &self.rx] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A pcap of `gaps.len() + 1` UDP frames (10.1.x -> 10.2.x, valid checksums) with these gaps.
pub fn udp_capture(path: &Path, gaps_ns: &[i64]) {
    let mut b = FrameBuilder::new(WireConfig::default(), 5).unwrap();
    let mut sink = FileSink::create(path, OutputFormat::Pcap, MAX_SNAPLEN).unwrap();
    let mut t = 1_700_000_000_000_000_000i64;
    for i in 0..=gaps_ns.len() {
        let rec = SynthPacket {
            flow_id: (i % 50) as u64,
            proto: Proto::Udp,
            ip_version: 4,
            direction: if i % 3 == 0 { Direction::Backward } else { Direction::Forward },
            ts_ns: t,
            size: 60 + (i as u32 * 37) % 1400,
            tcp_flags: 0,
            server_port: 0,
                client_port: 0,
            client_rank: PLAN_CHOOSES,
            server_rank: PLAN_CHOOSES,
            sides: trafgen::synth::OWN_SIDES,
            last: false,
            hidden: false,
            tcp_timestamps: false,
        };
        let f = b.build(&rec).next().unwrap();
        sink.write_frame(t, &f.parts()).unwrap();
        t += gaps_ns.get(i).copied().unwrap_or(0);
    }
    sink.finish().unwrap();
}
