//! `trafgen inspect`: a summary of captures as the data path sees them.
//!
//! This module owns the [`Summary`] observer (counts, protocol mix, flows per kind, top
//! server ports, applications, size and inter-arrival quantiles) and its text and JSON
//! renderings. Memory is constant: quantiles come from log histograms.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::capture::link::ethertype;
use crate::capture::{FileFormat, LinkType, NetLayer, Packet, Transport};
use crate::features::{FlowFeatures, PacketFeatures, Rolling};
use crate::flow::{Assignment, Flow, FlowKind};
use crate::hist::LogHistogram;
use crate::ingest::{FileReport, IngestReport, Observer};

/// Streaming summary of everything ingested.
#[derive(Default)]
pub struct Summary {
    packets: u64,
    wire_bytes: u64,
    first_ns: Option<i64>,
    last_ns: Option<i64>,
    proto: BTreeMap<&'static str, u64>,
    ipv4: u64,
    ipv6: u64,
    vlan: u64,
    fragments: u64,
    links: BTreeMap<&'static str, u64>,
    flows: [u64; 3],
    server_ports: BTreeMap<(u8, u16), u64>,
    apps: BTreeMap<&'static str, u64>,
    size: LogHistogram,
    /// Between consecutive packets of the capture (ns).
    iat: LogHistogram,
    /// Between consecutive packets of the same flow (ns).
    flow_iat: LogHistogram,
    flow_packets: LogHistogram,
    flow_duration: LogHistogram,
    prev_ns: Option<i64>,
}

impl Observer for Summary {
    fn file_start(&mut self, _path: &Path, _format: FileFormat, link: LinkType) {
        *self.links.entry(link.name()).or_default() += 1;
        self.prev_ns = None;
    }

    fn packet(&mut self, p: &Packet, a: Option<&Assignment>, _f: Option<&PacketFeatures>) {
        self.packets += 1;
        self.wire_bytes += u64::from(p.wire_len);
        self.first_ns = Some(self.first_ns.map_or(p.ts_ns, |t| t.min(p.ts_ns)));
        self.last_ns = Some(self.last_ns.map_or(p.ts_ns, |t| t.max(p.ts_ns)));
        if let Some(prev) = self.prev_ns {
            self.iat.record((p.ts_ns - prev).max(0) as u64);
        }
        self.prev_ns = Some(p.ts_ns);
        *self.proto.entry(proto_name(p)).or_default() += 1;
        match p.net {
            NetLayer::Ipv4 => self.ipv4 += 1,
            NetLayer::Ipv6 => self.ipv6 += 1,
            NetLayer::NonIp => {}
        }
        if p.link.vlan_depth > 0 {
            self.vlan += 1;
        }
        if p.fragment.is_some() {
            self.fragments += 1;
        }
        self.size.record(u64::from(p.size()));
        if let Some(prev) = a.and_then(|a| a.prev_ns) {
            self.flow_iat.record((p.ts_ns.max(prev) - prev) as u64);
        }
    }

    fn flow(&mut self, f: &Flow<Rolling>, ff: &FlowFeatures) {
        self.flows[f.kind.index()] += 1;
        // ports of port-based protocols only (not ICMP echo identifiers)
        if f.kind != FlowKind::NoFlow && !matches!(f.ip_proto, 1 | 58) {
            *self.server_ports.entry((f.ip_proto, f.server.port)).or_default() += 1;
        }
        *self.apps.entry(ff.app.name()).or_default() += 1;
        self.flow_packets.record(f.total_packets());
        self.flow_duration.record(f.duration_ns().max(0) as u64);
    }
}

fn proto_name(p: &Packet) -> &'static str {
    match (p.net, p.transport) {
        (NetLayer::NonIp, _) => match p.link.ethertype {
            ethertype::ARP => "arp",
            ethertype::EAPOL => "eapol",
            ethertype::LLDP => "lldp",
            _ if p.malformed.is_some() => "malformed",
            _ => "other_l2",
        },
        (_, Transport::Tcp(_)) => "tcp",
        (_, Transport::Udp { .. }) => "udp",
        (_, Transport::Icmp(i)) if i.v6 => "icmpv6",
        (_, Transport::Icmp(_)) => "icmp",
        (_, Transport::Ported { .. }) => "sctp_dccp",
        _ => match p.ip_proto {
            6 => "tcp",
            17 => "udp",
            1 => "icmp",
            58 => "icmpv6",
            47 => "gre",
            50 => "esp",
            2 => "igmp",
            89 => "ospf",
            _ => "other_ip",
        },
    }
}

/// Quantiles reported for distributions.
const QUANTILES: [(&str, f64); 7] =
    [("min", 0.0), ("p5", 0.05), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p95", 0.95), ("max", 1.0)];

/// The JSON document of `trafgen inspect --json`.
#[derive(Debug, serde::Serialize)]
pub struct InspectReport {
    pub packets: u64,
    pub bytes: u64,
    pub files: Vec<FileReport>,
    pub link_types: BTreeMap<&'static str, u64>,
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
    pub span_s: f64,
    pub protocols: BTreeMap<&'static str, u64>,
    pub ipv4_packets: u64,
    pub ipv6_packets: u64,
    pub vlan_packets: u64,
    pub fragments: u64,
    pub flows: FlowCounts,
    pub top_server_ports: Vec<PortCount>,
    pub apps: BTreeMap<&'static str, u64>,
    pub size_bytes: BTreeMap<&'static str, u64>,
    pub iat_s: BTreeMap<&'static str, f64>,
    pub flow_iat_s: BTreeMap<&'static str, f64>,
    pub flow_packets: BTreeMap<&'static str, u64>,
    pub flow_duration_s: BTreeMap<&'static str, f64>,
    pub malformed: u64,
    pub ts_backwards: u64,
    pub bad_records: u64,
    pub fragments_orphan: u64,
    pub flows_evicted: u64,
    pub peak_live_flows: usize,
}

#[derive(Debug, serde::Serialize)]
pub struct FlowCounts {
    pub connected: u64,
    pub unconnected: u64,
    pub noflow: u64,
    pub total: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct PortCount {
    pub proto: &'static str,
    pub port: u16,
    pub flows: u64,
}

fn quantiles_u(h: &LogHistogram) -> BTreeMap<&'static str, u64> {
    QUANTILES.iter().filter_map(|(n, q)| h.quantile(*q).map(|v| (*n, v))).collect()
}

fn quantiles_s(h: &LogHistogram) -> BTreeMap<&'static str, f64> {
    QUANTILES.iter().filter_map(|(n, q)| h.quantile(*q).map(|v| (*n, v as f64 / 1e9))).collect()
}

impl Summary {
    /// Combines the streaming summary with the ingestion report.
    pub fn report(&self, ingest: &IngestReport) -> InspectReport {
        let mut ports: Vec<_> = self.server_ports.iter().map(|(&(proto, port), &n)| (n, proto, port)).collect();
        ports.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let top_server_ports = ports
            .into_iter()
            .take(10)
            .map(|(flows, proto, port)| PortCount {
                proto: match proto {
                    6 => "tcp",
                    17 => "udp",
                    _ => "other",
                },
                port,
                flows,
            })
            .collect();
        let malformed = ingest.files.iter().flat_map(|f| f.malformed.iter().map(|(_, n)| n)).sum();
        InspectReport {
            packets: self.packets,
            bytes: self.wire_bytes,
            files: ingest.files.clone(),
            link_types: self.links.clone(),
            first_ts: self.first_ns.map(|t| t as f64 / 1e9),
            last_ts: self.last_ns.map(|t| t as f64 / 1e9),
            span_s: match (self.first_ns, self.last_ns) {
                (Some(a), Some(b)) => (b - a) as f64 / 1e9,
                _ => 0.0,
            },
            protocols: self.proto.clone(),
            ipv4_packets: self.ipv4,
            ipv6_packets: self.ipv6,
            vlan_packets: self.vlan,
            fragments: self.fragments,
            flows: FlowCounts {
                connected: self.flows[0],
                unconnected: self.flows[1],
                noflow: self.flows[2],
                total: self.flows.iter().sum(),
            },
            top_server_ports,
            apps: self.apps.clone(),
            size_bytes: quantiles_u(&self.size),
            iat_s: quantiles_s(&self.iat),
            flow_iat_s: quantiles_s(&self.flow_iat),
            flow_packets: quantiles_u(&self.flow_packets),
            flow_duration_s: quantiles_s(&self.flow_duration),
            malformed,
            ts_backwards: ingest.files.iter().map(|f| f.ts_backwards).sum(),
            bad_records: ingest.bad_records,
            fragments_orphan: ingest.flow_stats.fragments_orphan,
            flows_evicted: ingest.flow_stats.evicted,
            peak_live_flows: ingest.flow_stats.peak_live,
        }
    }
}

impl InspectReport {
    /// Human-readable table.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        for f in &self.files {
            let _ = writeln!(
                w,
                "file      {}  ({}{}, {}, {} packets){}",
                f.path.display(),
                f.format.map_or("unreadable", |x| x.name()),
                if f.gzip { "+gzip" } else { "" },
                f.link.map_or("-", |l| l.name()),
                f.packets,
                f.bad.as_ref().map(|b| format!("  BAD: {b}")).unwrap_or_default()
            );
        }
        let _ = writeln!(w, "packets   {}  ({} bytes on the wire)", self.packets, self.bytes);
        let _ = writeln!(
            w,
            "time      first {}  last {}  span {:.6} s",
            self.first_ts.map_or("-".into(), |t| format!("{t:.6}")),
            self.last_ts.map_or("-".into(), |t| format!("{t:.6}")),
            self.span_s
        );
        let _ = writeln!(w, "protocols {}", join_counts(self.protocols.iter().map(|(k, v)| (*k, *v))));
        let _ = writeln!(
            w,
            "ip        v4 {}  v6 {}  vlan-tagged {}  fragments {} (orphan {})",
            self.ipv4_packets, self.ipv6_packets, self.vlan_packets, self.fragments, self.fragments_orphan
        );
        let _ = writeln!(
            w,
            "flows     {} total: connected {}  unconnected {}  noflow {}  (peak live {}, evicted {})",
            self.flows.total, self.flows.connected, self.flows.unconnected, self.flows.noflow, self.peak_live_flows,
            self.flows_evicted
        );
        let ports: Vec<String> = self.top_server_ports.iter().map(|p| format!("{}/{}:{}", p.proto, p.port, p.flows)).collect();
        let _ = writeln!(w, "top ports {}", ports.join("  "));
        let _ = writeln!(w, "apps      {}", join_counts(self.apps.iter().map(|(k, v)| (*k, *v))));
        let _ = writeln!(w, "size B    {}", join_q(&self.size_bytes));
        let _ = writeln!(w, "iat s     {}", join_qf(&self.iat_s));
        let _ = writeln!(w, "flow iat  {}", join_qf(&self.flow_iat_s));
        let _ = writeln!(w, "flow pkts {}", join_q(&self.flow_packets));
        let _ = writeln!(w, "flow dur  {}", join_qf(&self.flow_duration_s));
        let _ = writeln!(
            w,
            "problems  malformed {}  timestamps backwards {}  bad records skipped {}",
            self.malformed, self.ts_backwards, self.bad_records
        );
        s
    }
}

fn join_counts<'a>(it: impl Iterator<Item = (&'a str, u64)>) -> String {
    it.map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join("  ")
}

fn join_q(m: &BTreeMap<&'static str, u64>) -> String {
    QUANTILES.iter().filter_map(|(n, _)| m.get(n).map(|v| format!("{n} {v}"))).collect::<Vec<_>>().join("  ")
}

fn join_qf(m: &BTreeMap<&'static str, f64>) -> String {
    QUANTILES.iter().filter_map(|(n, _)| m.get(n).map(|v| format!("{n} {v:.6}"))).collect::<Vec<_>>().join("  ")
}
