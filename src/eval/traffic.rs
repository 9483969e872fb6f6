//! One capture reduced to what the fidelity metrics need.
//!
//! This module owns [`TrafficSummary`], an ingestion [`Observer`] that keeps, per IP packet,
//! a few compact scalars (IP total length as `u16`, seconds since the capture's first packet
//! as `f64`, within-flow inter-arrival as `f32`: 14 bytes a packet), counts of every
//! categorical field (source/destination address, source/destination port, IP protocol, TCP
//! flag combination, directional 5-tuple) and one small row per finished flow (kind,
//! packets, bytes, duration, gap since the previous flow start) with the flow-kind and
//! application mixes. It also holds the protocol-validity counts of the capture, taken from
//! [`crate::validate`] (which needs the raw frames, so it reads the file once more).
//!
//! It defines the quantities the metrics compare ([`Continuous`], [`Categorical`]) and how
//! each is read off a summary. It does not compute distances ([`super::metrics`],
//! [`super::compare`]) and keeps no packet bytes.
//!
//! Scope: the packet-level fields are those of IP packets (NetShare's input is IP traffic);
//! non-IP frames (ARP, LLDP, …) are counted, and take part in flows (no-flow groups by MAC
//! pair) and so in the flow-level quantities. Malformed frames are counted and left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use crate::capture::{Packet, TcpFlags, Transport};
use crate::features::{FlowFeatures, Rolling};
use crate::flow::{Assignment, Flow, FlowConfig, FlowKind};
use crate::ingest::{self, IngestOptions, Observer};
use crate::validate::{self, ValidateOptions};

use super::EvalError;

const NS: f64 = 1e9;

/// An IP address with its version (IPv4 uses the first 4 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    pub version: u8,
    pub bytes: [u8; 16],
}

impl Address {
    fn of(version: u8, bytes: [u8; 16]) -> Address {
        Address { version, bytes }
    }
}

/// A directional 5-tuple (NetShare's flow key): ports are 0 for protocols without ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct FiveTuple {
    src: Address,
    dst: Address,
    sport: u16,
    dport: u16,
    proto: u8,
}

/// One finished flow of our flow table.
#[derive(Clone, Copy, Debug)]
pub(super) struct FlowRow {
    pub kind: FlowKind,
    pub packets: u64,
    pub bytes: u64,
    pub duration_s: f32,
    /// Seconds since the previous flow of the capture started (`None` for the first).
    pub gap_s: Option<f32>,
}

/// Protocol validity of a capture, from `trafgen validate`'s checks.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Validity {
    pub packets: u64,
    pub violations_total: u64,
    /// Packets whose checks could not be made (cut by the snaplen, or IP fragments).
    pub unverifiable: u64,
    /// Non-zero counts by check name.
    pub checks: BTreeMap<&'static str, u64>,
}

/// Counts and span of a summarised capture (what the reports print about each input).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CaptureInfo {
    pub label: String,
    pub path: Option<PathBuf>,
    pub packets: u64,
    pub ip_packets: u64,
    pub non_ip_packets: u64,
    pub malformed: u64,
    pub span_s: f64,
    pub flows: u64,
    pub flows_connected: u64,
    pub flows_unconnected: u64,
    pub flows_noflow: u64,
    /// `None` for summaries not read from a file (the marginals baseline).
    pub validity: Option<Validity>,
}

/// A continuous quantity: one number per packet or per flow, compared by EMD (and KS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Continuous {
    /// IP total length of every IP packet, bytes (NetShare's `pkt_len`).
    PacketLength,
    /// Seconds since the capture's first packet, every IP packet (NetShare's `time`, which
    /// NetShare's CSVs hold in µs).
    Timestamp,
    /// Packets per directional 5-tuple over the whole capture (NetShare's flow size).
    FlowSize,
    /// Seconds between consecutive IP packets of the same flow of our flow table.
    WithinFlowIat,
    /// Seconds between consecutive flow starts.
    FlowStartIat,
    /// Seconds from a flow's first to its last packet.
    FlowDuration,
    /// Bytes (sum of IP total lengths; non-IP: frame length after the link header) per flow.
    FlowBytes,
    /// Packets per flow of one kind.
    FlowPackets(FlowKind),
}

/// A categorical quantity: a histogram, compared by JSD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Categorical {
    /// Packets per source address, sorted by rank (NetShare's IP popularity): category `r`
    /// is the r-th most popular address, whichever it is.
    SrcIpRank,
    DstIpRank,
    /// Packets per source port (0 for IP packets without TCP/UDP/SCTP/DCCP ports).
    SrcPort,
    DstPort,
    /// Packets per IP protocol number.
    IpProto,
    /// TCP packets per combination of flags (e.g. "SA", "PA").
    TcpFlags,
    /// Flows per kind (connected, unconnected, noflow).
    FlowKind,
    /// Flows per application guess.
    App,
}

/// The summary of one capture (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct TrafficSummary {
    pub(super) label: String,
    pub(super) path: Option<PathBuf>,
    pub(super) sizes: Vec<u16>,
    pub(super) times: Vec<f64>,
    pub(super) flow_iats: Vec<f32>,
    pub(super) src_ip: FxHashMap<Address, u64>,
    pub(super) dst_ip: FxHashMap<Address, u64>,
    pub(super) src_port: BTreeMap<u16, u64>,
    pub(super) dst_port: BTreeMap<u16, u64>,
    pub(super) proto: BTreeMap<u8, u64>,
    pub(super) tcp_flags: BTreeMap<u16, u64>,
    pub(super) tuples: FxHashMap<FiveTuple, u64>,
    pub(super) flows: Vec<FlowRow>,
    pub(super) apps: BTreeMap<&'static str, u64>,
    pub(super) packets: u64,
    pub(super) non_ip: u64,
    pub(super) malformed: u64,
    first_ns: Option<i64>,
    clock: i64,
    pub(super) validity: Option<Validity>,
}

impl TrafficSummary {
    /// An empty summary named `label` (fill it by ingesting into it).
    pub fn new(label: impl Into<String>) -> TrafficSummary {
        TrafficSummary { label: label.into(), clock: i64::MIN, ..TrafficSummary::default() }
    }

    /// Reads `path` through the data path (our flow table with `flow`'s timeouts) and
    /// validates it. Errors name the file.
    pub fn from_capture(path: &Path, label: impl Into<String>, flow: &FlowConfig) -> Result<TrafficSummary, EvalError> {
        let mut s = TrafficSummary::new(label);
        s.path = Some(path.to_path_buf());
        let opts = IngestOptions { flow: flow.clone(), ..IngestOptions::default() };
        ingest::ingest(&[path.to_path_buf()], &opts, &mut s)?;
        let v = validate::validate(&[path.to_path_buf()], &ValidateOptions { flow: flow.clone() })?;
        s.validity = Some(Validity {
            packets: v.packets,
            violations_total: v.violations_total,
            unverifiable: v.unverifiable_truncated + v.unverifiable_fragment,
            checks: v.checks.iter().filter(|(_, n)| *n > 0).map(|(c, n)| (c.name(), n)).collect(),
        });
        Ok(s)
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// IP packets summarised (the size of every per-packet sample).
    pub fn ip_packets(&self) -> usize {
        self.sizes.len()
    }

    /// Seconds since the first packet of every IP packet, in capture order.
    pub fn times(&self) -> &[f64] {
        &self.times
    }

    pub fn info(&self) -> CaptureInfo {
        let kinds = self.kind_counts();
        CaptureInfo {
            label: self.label.clone(),
            path: self.path.clone(),
            packets: self.packets,
            ip_packets: self.sizes.len() as u64,
            non_ip_packets: self.non_ip,
            malformed: self.malformed,
            span_s: match self.first_ns {
                Some(f) => (self.clock - f) as f64 / NS,
                None => 0.0,
            },
            flows: self.flows.len() as u64,
            flows_connected: kinds[0],
            flows_unconnected: kinds[1],
            flows_noflow: kinds[2],
            validity: self.validity.clone(),
        }
    }

    fn kind_counts(&self) -> [u64; 3] {
        let mut k = [0u64; 3];
        for f in &self.flows {
            k[f.kind.index()] += 1;
        }
        k
    }

    /// The sample of a continuous quantity (unsorted).
    pub fn continuous(&self, q: Continuous) -> Vec<f64> {
        let flows = self.flows.iter();
        match q {
            Continuous::PacketLength => self.sizes.iter().map(|&s| f64::from(s)).collect(),
            Continuous::Timestamp => self.times.clone(),
            Continuous::FlowSize => self.tuples.values().map(|&n| n as f64).collect(),
            Continuous::WithinFlowIat => self.flow_iats.iter().map(|&x| f64::from(x)).collect(),
            Continuous::FlowStartIat => flows.filter_map(|f| f.gap_s.map(f64::from)).collect(),
            Continuous::FlowDuration => flows.map(|f| f64::from(f.duration_s)).collect(),
            Continuous::FlowBytes => flows.map(|f| f.bytes as f64).collect(),
            Continuous::FlowPackets(kind) => flows.filter(|f| f.kind == kind).map(|f| f.packets as f64).collect(),
        }
    }

    /// The histogram of a categorical quantity: non-zero counts by category label. Bins
    /// missing from the map are zero, so JSD over the union of two maps' labels equals JSD
    /// over the full bin range (65,536 ports, 256 protocols, all ranks padded with zeros).
    pub fn categorical(&self, c: Categorical) -> BTreeMap<String, u64> {
        fn ranks(m: &FxHashMap<Address, u64>) -> BTreeMap<String, u64> {
            let mut counts: Vec<u64> = m.values().copied().collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            // zero-padded so that labels sort by rank
            counts.into_iter().enumerate().map(|(r, n)| (format!("{:06}", r + 1), n)).collect()
        }
        fn by<K: ToString>(m: &BTreeMap<K, u64>) -> BTreeMap<String, u64> {
            m.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        }
        match c {
            Categorical::SrcIpRank => ranks(&self.src_ip),
            Categorical::DstIpRank => ranks(&self.dst_ip),
            Categorical::SrcPort => by(&self.src_port),
            Categorical::DstPort => by(&self.dst_port),
            Categorical::IpProto => by(&self.proto),
            Categorical::TcpFlags => self.tcp_flags.iter().map(|(f, n)| (flag_label(*f), *n)).collect(),
            Categorical::FlowKind => FlowKind::ALL
                .iter()
                .zip(self.kind_counts())
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (k.name().to_string(), n))
                .collect(),
            Categorical::App => self.apps.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
        }
    }

    /// Accounts one IP packet's fields (the part of [`Observer::packet`] the marginals
    /// baseline shares): `now_ns` is the clamped capture clock.
    pub(super) fn ip_packet(&mut self, p: &Packet, a: &Assignment, now_ns: i64) {
        let first = *self.first_ns.get_or_insert(now_ns);
        self.sizes.push(p.size().min(u32::from(u16::MAX)) as u16);
        self.times.push((now_ns - first) as f64 / NS);
        if let Some(prev) = a.prev_ns {
            self.flow_iats.push(((now_ns - prev).max(0) as f64 / NS) as f32);
        }
        let v = if p.net == crate::capture::NetLayer::Ipv6 { 6 } else { 4 };
        let (src, dst) = (Address::of(v, p.src_ip), Address::of(v, p.dst_ip));
        *self.src_ip.entry(src).or_default() += 1;
        *self.dst_ip.entry(dst).or_default() += 1;
        let (sport, dport) = transport_ports(&p.transport);
        *self.src_port.entry(sport).or_default() += 1;
        *self.dst_port.entry(dport).or_default() += 1;
        *self.proto.entry(p.ip_proto).or_default() += 1;
        if let Some(t) = p.tcp() {
            *self.tcp_flags.entry(t.flags.0).or_default() += 1;
        }
        let tuple = FiveTuple { src, dst, sport, dport, proto: p.ip_proto };
        *self.tuples.entry(tuple).or_default() += 1;
    }
}

/// Ports of TCP, UDP and the other port-based transports (SCTP, DCCP, UDP-Lite); (0, 0) for
/// everything else (ICMP included), as in NetShare's packet tables.
fn transport_ports(t: &Transport) -> (u16, u16) {
    match *t {
        Transport::Tcp(t) => (t.src_port, t.dst_port),
        Transport::Udp { src_port, dst_port } | Transport::Ported { src_port, dst_port } => (src_port, dst_port),
        _ => (0, 0),
    }
}

/// A TCP flag combination as letters ("-" for none).
fn flag_label(flags: u16) -> String {
    let l = TcpFlags(flags).letters();
    if l.is_empty() {
        "-".to_string()
    } else {
        l
    }
}

impl Observer for TrafficSummary {
    fn packet(&mut self, p: &Packet, a: Option<&Assignment>, _f: Option<&crate::features::PacketFeatures>) {
        let Some(a) = a else {
            self.malformed += 1;
            return;
        };
        // timestamps going backwards count as no time passing (as the flow table does)
        self.clock = self.clock.max(p.ts_ns);
        self.packets += 1;
        if p.is_ip() {
            self.ip_packet(p, a, self.clock);
        } else {
            self.first_ns.get_or_insert(self.clock);
            self.non_ip += 1;
        }
    }

    fn flow(&mut self, f: &Flow<Rolling>, ff: &FlowFeatures) {
        self.flow_row(f, ff);
    }
}

impl TrafficSummary {
    pub(super) fn flow_row<X>(&mut self, f: &Flow<X>, ff: &FlowFeatures) {
        self.flows.push(FlowRow {
            kind: f.kind,
            packets: f.total_packets(),
            bytes: f.total_bytes(),
            duration_s: (f.duration_ns().max(0) as f64 / NS) as f32,
            gap_s: ff.gap_s.map(|g| g as f32),
        });
        *self.apps.entry(ff.app.name()).or_default() += 1;
    }

    /// Counts a packet of the baseline (which has no file): see [`Observer::packet`].
    pub(super) fn synthetic_packet(&mut self, p: &Packet, a: &Assignment, now_ns: i64) {
        self.clock = self.clock.max(now_ns);
        self.packets += 1;
        self.ip_packet(p, a, self.clock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    const T0: i64 = 1_700_000_000 * 1_000_000_000;

    fn summarise(frames: Vec<fixture::Frame>) -> TrafficSummary {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcap");
        fixture::write_pcap(&path, frames).unwrap();
        TrafficSummary::from_capture(&path, "t", &FlowConfig::default()).unwrap()
    }

    #[test]
    fn one_connection_and_one_exchange_are_summarised_exactly() {
        // 3 + 3·2 + 4 = 13 TCP packets, then a 2-packet UDP exchange and an ARP pair
        let mut frames = fixture::tcp_connection([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, T0, 2, 100, 1000);
        frames.extend(fixture::udp_exchange([10, 0, 0, 1], [10, 0, 0, 53], 50000, 53, T0 + 50_000_000, 40, 120));
        frames.extend(fixture::arp_exchange([10, 0, 0, 1], [10, 0, 0, 2], T0 + 60_000_000));
        let s = summarise(frames);
        let i = s.info();
        assert_eq!((i.packets, i.ip_packets, i.non_ip_packets, i.malformed), (17, 15, 2, 0));
        // the ARP request (to broadcast) and its reply are two MAC pairs: two no-flow groups
        assert_eq!((i.flows_connected, i.flows_unconnected, i.flows_noflow), (1, 1, 2));
        assert!((i.span_s - 0.06005).abs() < 1e-9, "{}", i.span_s);
        assert_eq!(i.validity.as_ref().unwrap().violations_total, 0);
        // sizes: SYN/ACK-only segments are 40 bytes of IP, data segments 40 + payload
        let sizes = s.continuous(Continuous::PacketLength);
        assert_eq!(sizes.iter().filter(|&&x| x == 40.0).count(), 9);
        assert_eq!(sizes.iter().filter(|&&x| x == 140.0).count(), 2);
        assert_eq!(sizes.iter().filter(|&&x| x == 1040.0).count(), 2);
        assert!(sizes.contains(&(20.0 + 8.0 + 40.0)) && sizes.contains(&(20.0 + 8.0 + 120.0)));
        let times = s.continuous(Continuous::Timestamp);
        assert_eq!((times[0], times[14]), (0.0, 0.052));
        // NetShare's flow size: packets per directional 5-tuple: client→server 8 (S, A, 2 × PA
        // and A, FA, A), back 5 (SA, 2 × PA, A, FA), the UDP query and response 1 each
        let mut fs = s.continuous(Continuous::FlowSize);
        fs.sort_by(f64::total_cmp);
        assert_eq!(fs, [1.0, 1.0, 5.0, 8.0]);
        assert_eq!(s.continuous(Continuous::FlowPackets(FlowKind::Connected)), [13.0]);
        // within-flow IATs: 12 in the TCP flow and 1 in the UDP flow (IP packets only)
        assert_eq!(s.continuous(Continuous::WithinFlowIat).len(), 13);
        assert_eq!(s.categorical(Categorical::DstPort).get("80"), Some(&8));
        assert_eq!(s.categorical(Categorical::IpProto), BTreeMap::from([("17".into(), 2), ("6".into(), 13)]));
        let flags = s.categorical(Categorical::TcpFlags);
        assert_eq!((flags["S"], flags["SA"], flags["A"], flags["PA"], flags["FA"]), (1, 1, 5, 4, 2), "{flags:?}");
        // 10.0.0.1 sends 8 + 1 packets, 10.0.0.2 sends 5, 10.0.0.53 one
        let ranks: Vec<u64> = s.categorical(Categorical::SrcIpRank).into_values().collect();
        assert_eq!(ranks, [9, 5, 1]);
        assert_eq!(s.categorical(Categorical::App).get("http"), Some(&1));
    }

    #[test]
    fn an_unreadable_capture_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nothing-here.pcap");
        let e = TrafficSummary::from_capture(&path, "x", &FlowConfig::default()).unwrap_err();
        assert!(e.to_string().contains("nothing-here.pcap"), "{e}");
        std::fs::write(&path, b"").unwrap();
        let e = TrafficSummary::from_capture(&path, "x", &FlowConfig::default()).unwrap_err();
        assert!(e.to_string().contains("empty file"), "{e}");
    }
}
