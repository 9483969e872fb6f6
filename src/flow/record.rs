//! One flow: its endpoints, counters, TCP lifecycle and how it ended.
//!
//! The record is updated in place by [`super::FlowTable`] for each packet; `X` is a per-flow
//! extension slot owned by a later stage (the feature extractor keeps its rolling windows
//! there), so one hash lookup serves both stages.

use crate::capture::{Packet, TcpFlags};

use super::key::{FlowKey, FlowKind};

/// Direction of a packet relative to its flow's client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Client → server (0 in feature tables).
    Forward = 0,
    /// Server → client (1 in feature tables).
    Backward = 1,
}

/// One side of a flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: [u8; 16],
    pub port: u16,
    pub mac: [u8; 6],
}

/// Why a flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// FIN from both sides.
    Fin,
    /// A reset.
    Rst,
    /// No packet for the idle timeout of its kind.
    Idle,
    /// The capture file ended while the flow was open.
    EndOfCapture,
    /// Evicted to keep the table under its size cap.
    Evicted,
}

impl EndReason {
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Fin => "fin",
            EndReason::Rst => "rst",
            EndReason::Idle => "idle",
            EndReason::EndOfCapture => "end_of_capture",
            EndReason::Evicted => "evicted",
        }
    }
}

/// TCP lifecycle as seen by a passive observer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpState {
    /// The capture started after the SYN.
    pub mid_stream: bool,
    pub syn: bool,
    pub syn_ack: bool,
    /// SYN, SYN-ACK and the client's ACK were all seen.
    pub established: bool,
    pub fin: [bool; 2],
    pub rst: bool,
}

impl TcpState {
    /// Both FINs or a RST: later packets only linger.
    pub fn closed(&self) -> bool {
        self.rst || (self.fin[0] && self.fin[1])
    }
}

/// A bidirectional flow.
///
/// The layout is fixed (`repr(C)`, cache-line aligned) so that everything a packet reads or
/// writes lies in the first two cache lines: the flow table prefetches just those. The
/// endpoints and the rest are read when the flow starts and ends.
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub struct Flow<X = ()> {
    // --- hot: the first 128 bytes ---
    pub key: FlowKey,
    pub kind: FlowKind,
    pub tcp: TcpState,
    /// Whether the client is the key's `hi` side (decides a packet's direction).
    pub(super) client_is_hi: bool,
    /// IP fragments attached to this flow (first fragments included).
    pub fragments: u32,
    /// Unique within one ingestion run, in order of creation.
    pub id: u64,
    pub last_ns: i64,
    /// Capture time at which the flow closed (both FINs, or RST); `OPEN` until then.
    pub(super) closed_ns: i64,
    /// Packets, bytes (IP total length) and payload bytes, by [`Direction`].
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub payload: [u64; 2],
    // --- cold ---
    pub ip_proto: u8,
    /// 0 (non-IP), 4 or 6.
    pub ip_version: u8,
    /// EtherType of the first packet (tells ARP/EAPOL/LLDP apart in no-flow traffic).
    pub ethertype: u16,
    pub client: Endpoint,
    pub server: Endpoint,
    pub first_ns: i64,
    /// Time since the previous flow start in the same capture (`None` for the first flow).
    pub gap_ns: Option<i64>,
    /// Set when the flow ended (FIN/RST flows get it when they leave the table).
    pub end: Option<EndReason>,
    pub ext: X,
}

/// `closed_ns` of a flow that has not closed.
pub(super) const OPEN: i64 = i64::MIN;

/// Bytes of a [`Flow`] that every packet touches (the table prefetches these).
pub(super) const HOT_BYTES: usize = std::mem::offset_of!(Flow<()>, ip_proto);
const _: () = assert!(HOT_BYTES <= 128, "the hot part of a flow must fit two cache lines");

impl<X> Flow<X> {
    pub fn total_packets(&self) -> u64 {
        self.packets[0] + self.packets[1]
    }
    pub fn total_bytes(&self) -> u64 {
        self.bytes[0] + self.bytes[1]
    }
    pub fn duration_ns(&self) -> i64 {
        self.last_ns - self.first_ns
    }
    /// The server's port (0 for no-flow traffic).
    pub fn server_port(&self) -> u16 {
        self.server.port
    }

    /// Capture time at which the flow closed (both FINs, or RST).
    pub fn closed_ns(&self) -> Option<i64> {
        (self.closed_ns != OPEN).then_some(self.closed_ns)
    }

    /// Direction of a packet of this flow whose source is the key's `hi` side when
    /// `sender_is_hi` (from [`FlowKey::of`]; the hot path: no endpoint is read).
    #[inline]
    pub fn direction_by_key(&self, sender_is_hi: bool) -> Direction {
        // both ends equal (a host talking to itself on one port): every packet is the client's
        let same_ends = self.key.lo == self.key.hi && self.key.lo_port == self.key.hi_port;
        if same_ends || sender_is_hi == self.client_is_hi { Direction::Forward } else { Direction::Backward }
    }

    /// Direction of a packet with the given source, judged by the endpoints (for packets
    /// whose own key differs from the flow's: later IP fragments).
    pub fn direction_of(&self, p: &Packet) -> Direction {
        let same_as_client = if self.kind == FlowKind::NoFlow && p.link.has_mac {
            p.link.src_mac == self.client.mac
        } else {
            match p.ports() {
                Some((src_port, _)) => p.src_ip == self.client.ip && src_port == self.client.port,
                // a later fragment has no ports: the addresses decide
                None => p.src_ip == self.client.ip,
            }
        };
        if same_as_client { Direction::Forward } else { Direction::Backward }
    }

    /// Counts one packet and advances the TCP lifecycle.
    pub fn add(&mut self, p: &Packet, dir: Direction, now_ns: i64) {
        let d = dir as usize;
        self.packets[d] += 1;
        self.bytes[d] += u64::from(p.size());
        self.payload[d] += u64::from(p.payload_len());
        self.last_ns = self.last_ns.max(now_ns);
        if p.fragment.is_some() {
            self.fragments += 1;
        }
        if let Some(t) = p.tcp() {
            let f = t.flags;
            let s = &mut self.tcp;
            if f.has(TcpFlags::SYN) && !f.has(TcpFlags::ACK) && dir == Direction::Forward {
                s.syn = true;
            }
            if f.has(TcpFlags::SYN) && f.has(TcpFlags::ACK) && dir == Direction::Backward && s.syn {
                s.syn_ack = true;
            }
            if !f.has(TcpFlags::SYN) && f.has(TcpFlags::ACK) && dir == Direction::Forward && s.syn_ack {
                s.established = true;
            }
            if f.has(TcpFlags::FIN) {
                s.fin[d] = true;
            }
            if f.has(TcpFlags::RST) {
                s.rst = true;
            }
            if s.closed() && self.closed_ns == OPEN {
                self.closed_ns = now_ns;
            }
        }
    }
}
