//! Synthetic traffic records: the meeting point of the model stage and the wire stage.
//!
//! This module owns [`SynthPacket`], the record the generation engine hands over for every
//! packet it decides to send, and the engine itself ([`engine`]: aggregate model → flow LSTMs
//! → packet decoder → k-way merge). [`script`] produces records from simple scripted
//! conversations for tests, the demo and benchmarks. This module does not build frames (that
//! is [`crate::wire`]).

pub mod engine;
pub mod script;
pub mod steer;

pub use engine::{Engine, EngineConfig, EngineError, EngineStats, FlowBytes, FlowLengths, FlowTiming};

use crate::flow::{Direction, FlowKind};

/// What a record carries above IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP echo (ICMPv6 echo on IPv6): request client→server, reply server→client.
    IcmpEcho,
    /// No-flow traffic between a MAC pair: ARP request/reply.
    Arp,
}

impl Proto {
    /// The flow kind a protocol belongs to.
    pub fn kind(self) -> FlowKind {
        match self {
            Proto::Tcp => FlowKind::Connected,
            Proto::Udp | Proto::IcmpEcho => FlowKind::Unconnected,
            Proto::Arp => FlowKind::NoFlow,
        }
    }
}

pub use crate::model::shared_hosts::Side;

/// Each end's rank is of its own side: the client's of the clients, the server's of the servers.
pub const OWN_SIDES: [Side; 2] = [Side::Client, Side::Server];

/// "Let the address plan choose" for host ranks and the server port.
pub const PLAN_CHOOSES: u32 = u32::MAX;

/// One packet the generator wants sent.
///
/// Sizes are IP total lengths (the `size` feature of [`crate::features`]); the wire stage adds
/// the 14-byte Ethernet header. For ARP the size is ignored (ARP frames have one size).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SynthPacket {
    /// Unique per flow within one generated stream.
    pub flow_id: u64,
    pub proto: Proto,
    /// 4 or 6 (ignored for ARP).
    pub ip_version: u8,
    pub direction: Direction,
    /// Departure time, ns from the start of the stream. Non-decreasing across records.
    pub ts_ns: i64,
    /// IP total length in bytes.
    pub size: u32,
    /// TCP flags wanted (wire bits, as [`crate::capture::TcpFlags`]); 0 for other protocols.
    pub tcp_flags: u16,
    /// Server port; 0 lets the address plan choose.
    pub server_port: u16,
    /// Client port; 0 lets the address plan choose (an ephemeral port). A standing flow keeps
    /// the one it had in training; a flow of a service whose clients send from a fixed port
    /// (DHCP's 68, NTP's 123, a reused socket) gets one from the model's client-port table.
    pub client_port: u16,
    /// Popularity rank of the client and server hosts (0 = most popular), or [`PLAN_CHOOSES`].
    pub client_rank: u32,
    pub server_rank: u32,
    /// Whose prefix and rank table each end's rank is of (client end, server end): [`OWN_SIDES`]
    /// but for a host the training capture saw on both sides, which keeps one address
    /// ([`crate::model::shared_hosts`]).
    pub sides: [Side; 2],
    /// The last record of its flow: the wire stage releases the flow's state and port.
    pub last: bool,
    /// Sent by the side a one-sided flow's capture point does not see: the wire stage moves
    /// the connection's state on (sequence and acknowledgement numbers stay a real
    /// conversation's) and makes no frame ([`crate::model::aggregate`]'s one-sided shares).
    pub hidden: bool,
    /// TCP: the segment carries the timestamp option (12 bytes of its header), as its flow's
    /// SYN negotiated or, for a flow seen from the middle, as the model drew for it. The wire
    /// stage reads it from a connection's first record when that is not a SYN (no SYN tells
    /// it then); `size` counts the option either way.
    pub tcp_timestamps: bool,
}

impl SynthPacket {
    pub fn kind(&self) -> FlowKind {
        self.proto.kind()
    }
}
