//! Training data: ingestion output turned into the compact tables the models learn from.
//!
//! This module owns the packet feature vector ([`PACKET_FEATURES`]), collecting it for every
//! packet (f32, one flat buffer) grouped by flow, and the per-flow rows of the aggregate model
//! (kind, gap, size, duration, ports, protocol, host identities for popularity ranks). Memory is
//! `packets × PACKET_DIM × 4` bytes plus a few words per flow; `--max-packets` bounds it.

use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use crate::capture::decode::tcp_option;
use crate::capture::{FileFormat, LinkType, Packet, TcpFlags, TcpInfo};
use crate::features::{FlowFeatures, PacketFeatures, Rolling};
use crate::flow::{Assignment, Direction, Flow, FlowKind};
use crate::ingest::{self, IngestError, IngestOptions, IngestReport, Observer};

/// Names of the packet feature vector, in order.
pub const PACKET_FEATURES: [&str; PACKET_DIM] = [
    "log_payload",
    "header_len",
    "direction",
    "flag_fin",
    "flag_syn",
    "flag_rst",
    "flag_psh",
    "flag_ack",
    "log_time_diff",
    "log_rate_pkts_1s",
    "log_rate_bytes_1s",
    "kind_connected",
    "kind_unconnected",
    "kind_noflow",
];
pub const PACKET_DIM: usize = 14;

/// Column indices used when decoding generated vectors.
pub mod col {
    pub const LOG_PAYLOAD: usize = 0;
    pub const HEADER: usize = 1;
    pub const DIRECTION: usize = 2;
    pub const FLAGS: usize = 3; // FIN SYN RST PSH ACK
    pub const LOG_DT: usize = 8;
}

/// The `log_payload` feature of a payload of `payload` bytes: log10(1 + payload).
pub fn log_payload(payload: f32) -> f32 {
    (1.0 + payload).log10()
}

/// The payload, bytes (not rounded), that a `log_payload` feature value encodes.
pub fn payload_of(log_payload: f32) -> f64 {
    (10f64.powf(f64::from(log_payload)) - 1.0).max(0.0)
}

/// The packet feature vector of one packet.
pub fn packet_vector(pf: &PacketFeatures) -> [f32; PACKET_DIM] {
    let f = TcpFlags(pf.tcp_flags);
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    let mut v = [0f32; PACKET_DIM];
    // log10: the packet-size modes (40–120 B control/requests vs ~1500 B data) stay apart
    v[0] = log_payload(pf.payload_len as f32);
    v[1] = pf.header_len as f32;
    v[2] = f32::from(pf.direction);
    v[3] = b(f.has(TcpFlags::FIN));
    v[4] = b(f.has(TcpFlags::SYN));
    v[5] = b(f.has(TcpFlags::RST));
    v[6] = b(f.has(TcpFlags::PSH));
    v[7] = b(f.has(TcpFlags::ACK));
    v[8] = pf.log_time_diff as f32;
    v[9] = (1.0 + pf.rate_pkts_1s as f64).log10() as f32;
    v[10] = (1.0 + pf.rate_bytes_1s as f64).log10() as f32;
    v[11 + pf.kind.index()] = 1.0;
    v
}

/// One flow's packets: rows `start..start+len` of [`Dataset::packets`].
#[derive(Clone, Copy, Debug)]
pub struct FlowSeq {
    pub kind: FlowKind,
    pub start: usize,
    pub len: usize,
}

/// One flow of the aggregate table.
#[derive(Clone, Copy, Debug)]
pub struct FlowRow {
    pub kind: FlowKind,
    pub gap_s: Option<f64>,
    pub packets: u64,
    pub bytes: u64,
    pub duration_s: f64,
    pub server_port: u16,
    pub client_port: u16,
    pub ip_proto: u8,
    pub ip_version: u8,
    /// Index of the client / server host in order of first appearance.
    pub client_host: u32,
    pub server_host: u32,
    /// Its first packet is not the opening one (a TCP flow seen without its SYN).
    pub mid_stream: bool,
    /// TCP: it opened and nothing came back (SYNs of an attempt that no server answered).
    pub unanswered: bool,
    /// Only one side's packets were seen (`Forward`: the client's), as a capture point on one
    /// direction of a link sees every flow; `None` when both sides were.
    pub one_side: Option<Direction>,
    /// TCP: whether its first segment after the handshake (its first, for a flow seen from
    /// the middle) carries the timestamp option; `None` for other protocols and flows of
    /// handshake packets only.
    pub timestamps: Option<bool>,
    /// Seconds from its capture's first packet to its own first packet.
    pub since_capture_start_s: f64,
    /// Seconds from its own last packet to its capture's last packet (0: the capture ended
    /// with the flow still going, as far as can be told).
    pub until_capture_end_s: f64,
    /// Seconds from its capture's first packet to its last.
    pub capture_span_s: f64,
    /// Which training capture it is from (0, 1, … in input order).
    pub capture: u32,
    /// Its packets: index into [`Dataset::flows`] (`None`: no packet rows).
    pub seq: Option<usize>,
}

#[cfg(test)]
impl FlowRow {
    /// A two-packet UDP flow between two hosts, one second into a five-second capture (tests
    /// set the fields they are about).
    pub(crate) fn example(client_host: u32, server_host: u32) -> FlowRow {
        FlowRow {
            kind: FlowKind::Unconnected,
            gap_s: Some(0.02),
            packets: 2,
            bytes: 547,
            duration_s: 0.01,
            server_port: 53,
            client_port: 40000,
            ip_proto: 17,
            ip_version: 4,
            client_host,
            server_host,
            mid_stream: false,
            unanswered: false,
            one_side: None,
            timestamps: None,
            since_capture_start_s: 1.0,
            until_capture_end_s: 1.0,
            capture_span_s: 5.0,
            capture: 0,
            seq: None,
        }
    }
}

/// One training input.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct InputFile {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub packets: u64,
    pub licence: String,
}

/// Everything the three levels train on.
#[derive(Default)]
pub struct Dataset {
    /// `n × PACKET_DIM` packet vectors, grouped by flow (see `flows`).
    pub packets: Vec<f32>,
    pub flows: Vec<FlowSeq>,
    pub flow_rows: Vec<FlowRow>,
    pub report: IngestReport,
}

impl Dataset {
    pub fn n_packets(&self) -> usize {
        self.packets.len() / PACKET_DIM
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.packets[i * PACKET_DIM..(i + 1) * PACKET_DIM]
    }
}

/// Collects packet vectors tagged with their flow, then groups them when the run ends.
#[derive(Default)]
struct Collector {
    /// (flow id, position) of each row in arrival order.
    keys: Vec<(u64, u32)>,
    rows: Vec<f32>,
    flow_kind: FxHashMap<u64, FlowKind>,
    /// Per TCP flow: whether its first segment without SYN carried timestamps.
    timestamps: FxHashMap<u64, bool>,
    flow_rows: Vec<(u64, FlowRow)>,
    hosts: FxHashMap<[u8; 16], u32>,
    /// First packet time of the current capture.
    file_first_ns: Option<i64>,
    /// Index into `flow_rows` of the current capture's first flow.
    file_rows_from: usize,
    /// Captures started so far.
    files: u32,
}

impl Collector {
    fn host(&mut self, ip: [u8; 16]) -> u32 {
        let n = self.hosts.len() as u32;
        *self.hosts.entry(ip).or_insert(n)
    }
}

impl Observer for Collector {
    fn file_start(&mut self, _p: &Path, _f: FileFormat, _l: LinkType) {
        // flow ids keep counting across files; host identities are per capture
        self.hosts.clear();
        self.file_first_ns = None;
        self.file_rows_from = self.flow_rows.len();
        self.files += 1;
    }
    fn file_end(&mut self, report: &ingest::FileReport) {
        // every flow of the capture has ended by now (the table is flushed at its end)
        let span_s = match (report.first_ns, report.last_ns) {
            (Some(a), Some(b)) => (b - a).max(0) as f64 / 1e9,
            _ => 0.0,
        };
        for (_, r) in &mut self.flow_rows[self.file_rows_from..] {
            r.capture_span_s = span_s;
            r.until_capture_end_s = (span_s - r.since_capture_start_s - r.duration_s).max(0.0);
        }
    }
    fn packet(&mut self, p: &Packet, a: Option<&Assignment>, f: Option<&PacketFeatures>) {
        self.file_first_ns.get_or_insert(p.ts_ns);
        if let (Some(a), Some(t)) = (a, p.tcp()) {
            if !t.flags.has(TcpFlags::SYN) {
                self.timestamps.entry(a.flow_id).or_insert_with(|| has_timestamps(t));
            }
        }
        if let (Some(a), Some(f)) = (a, f) {
            self.keys.push((a.flow_id, a.position.min(u64::from(u32::MAX)) as u32));
            self.rows.extend_from_slice(&packet_vector(f));
        }
    }
    fn flow(&mut self, fl: &Flow<Rolling>, ff: &FlowFeatures) {
        self.flow_kind.insert(ff.flow_id, ff.kind);
        let client_host = self.host(fl.client.ip);
        let server_host = self.host(fl.server.ip);
        self.flow_rows.push((
            ff.flow_id,
            FlowRow {
                kind: ff.kind,
                gap_s: ff.gap_s,
                packets: ff.packets_fwd + ff.packets_bwd,
                bytes: ff.bytes_fwd + ff.bytes_bwd,
                duration_s: ff.duration_s,
                server_port: ff.server_port,
                client_port: ff.client_port,
                ip_proto: ff.ip_proto,
                ip_version: ff.ip_version,
                client_host,
                server_host,
                mid_stream: ff.mid_stream,
                unanswered: ff.kind == FlowKind::Connected && !ff.mid_stream && ff.packets_bwd == 0,
                timestamps: self.timestamps.remove(&ff.flow_id),
                one_side: match (ff.packets_fwd, ff.packets_bwd) {
                    (_, 0) => Some(Direction::Forward),
                    (0, _) => Some(Direction::Backward),
                    _ => None,
                },
                since_capture_start_s: self.file_first_ns.map_or(0.0, |t| (ff.start_ns - t).max(0) as f64 / 1e9),
                // filled in when the capture ends
                until_capture_end_s: 0.0,
                capture_span_s: 0.0,
                capture: self.files.saturating_sub(1),
                seq: None,
            },
        ));
    }
}

/// Whether a TCP segment carries the timestamp option: seen among its options, or, where the
/// capture cut the options off, told by their length (12 bytes: NOP, NOP, timestamps — the
/// only data-segment option a stack sends on every segment).
fn has_timestamps(t: &TcpInfo) -> bool {
    t.option_kinds & tcp_option::TIMESTAMP != 0 || (t.option_kinds == 0 && t.options_len == 12)
}

/// Ingests `paths` with per-packet features and builds the dataset.
pub fn collect(paths: &[PathBuf], opts: &IngestOptions) -> Result<Dataset, IngestError> {
    let mut c = Collector::default();
    let opts = IngestOptions { packet_features: true, ..opts.clone() };
    let report = ingest::ingest(paths, &opts, &mut c)?;
    // group rows by flow (stable: flow id, then position)
    let mut order: Vec<u32> = (0..c.keys.len() as u32).collect();
    order.sort_by_key(|&i| c.keys[i as usize]);
    let mut packets = Vec::with_capacity(c.rows.len());
    let mut flows = Vec::new();
    let mut seq_of: FxHashMap<u64, usize> = FxHashMap::default();
    let mut i = 0;
    while i < order.len() {
        let id = c.keys[order[i] as usize].0;
        let start = i;
        while i < order.len() && c.keys[order[i] as usize].0 == id {
            let r = order[i] as usize;
            packets.extend_from_slice(&c.rows[r * PACKET_DIM..(r + 1) * PACKET_DIM]);
            i += 1;
        }
        let kind = c.flow_kind.get(&id).copied().unwrap_or(FlowKind::NoFlow);
        seq_of.insert(id, flows.len());
        flows.push(FlowSeq { kind, start, len: i - start });
    }
    c.flow_rows.sort_by_key(|(id, _)| *id);
    let flow_rows = c.flow_rows.into_iter().map(|(id, r)| FlowRow { seq: seq_of.get(&id).copied(), ..r }).collect();
    Ok(Dataset { packets, flows, flow_rows, report })
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h)?;
    Ok((format!("{:x}", h.finalize()), n))
}
