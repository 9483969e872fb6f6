//! Flow keys and flow kinds.
//!
//! A key is direction-free: both directions of a conversation map to the same key. IP
//! traffic with ports (TCP, UDP, SCTP/DCCP/UDP-Lite, ICMP echo id) is keyed by the 5-tuple;
//! traffic without ports (ARP, EAPOL, LLDP, ICMP errors, GRE, OSPF…) is "no-flow" traffic and
//! is keyed by its MAC pair, as NeCSTGen does (by its IP pair on links without MACs).

use crate::capture::{NetLayer, Packet, Transport};

/// NeCSTGen's three kinds of traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    /// TCP: handshake, data, teardown.
    Connected,
    /// UDP and other port-based protocols (SCTP, DCCP, UDP-Lite, ICMP echo).
    Unconnected,
    /// No ports: grouped by MAC pair.
    NoFlow,
}

impl FlowKind {
    pub const ALL: [FlowKind; 3] = [FlowKind::Connected, FlowKind::Unconnected, FlowKind::NoFlow];

    pub fn name(self) -> &'static str {
        match self {
            FlowKind::Connected => "connected",
            FlowKind::Unconnected => "unconnected",
            FlowKind::NoFlow => "noflow",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a key groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyScope {
    /// IP 5-tuple.
    FiveTuple,
    /// MAC pair (no-flow traffic on links with MACs).
    MacPair,
    /// IP address pair + protocol (no-flow IP traffic on links without MACs).
    IpPair,
}

/// Direction-free flow key. `lo`/`hi` are ordered so both directions give the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub scope: KeyScope,
    pub proto: u8,
    pub lo: [u8; 16],
    pub hi: [u8; 16],
    pub lo_port: u16,
    pub hi_port: u16,
}

impl FlowKey {
    /// Key of a packet, and whether the packet's source is the `hi` side.
    pub fn of(p: &Packet) -> (FlowKey, bool) {
        if p.is_ip() {
            if let Some((sp, dp)) = p.ports() {
                return Self::ordered(KeyScope::FiveTuple, p.ip_proto, p.src_ip, sp, p.dst_ip, dp);
            }
        }
        Self::noflow(p)
    }

    /// The no-flow key of a packet (also used for fragments whose first fragment is unknown).
    pub fn noflow(p: &Packet) -> (FlowKey, bool) {
        if p.link.has_mac {
            let mut a = [0u8; 16];
            let mut b = [0u8; 16];
            a[..6].copy_from_slice(&p.link.src_mac);
            b[..6].copy_from_slice(&p.link.dst_mac);
            Self::ordered(KeyScope::MacPair, 0, a, 0, b, 0)
        } else {
            Self::ordered(KeyScope::IpPair, p.ip_proto, p.src_ip, 0, p.dst_ip, 0)
        }
    }

    fn ordered(scope: KeyScope, proto: u8, a: [u8; 16], ap: u16, b: [u8; 16], bp: u16) -> (FlowKey, bool) {
        if (a, ap) <= (b, bp) {
            (FlowKey { scope, proto, lo: a, hi: b, lo_port: ap, hi_port: bp }, false)
        } else {
            (FlowKey { scope, proto, lo: b, hi: a, lo_port: bp, hi_port: ap }, true)
        }
    }

    /// A well-mixed 64-bit hash of the key (folded multiplies over its words): the flow
    /// index uses its upper half both to place the key and as a tag.
    #[inline]
    pub fn hash(&self) -> u64 {
        #[inline]
        fn fold(a: u64, b: u64) -> u64 {
            let r = u128::from(a) * u128::from(b);
            (r as u64) ^ ((r >> 64) as u64)
        }
        #[inline]
        fn word(b: &[u8; 16], i: usize) -> u64 {
            u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
        }
        const K: [u64; 4] = [0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344, 0xa409_3822_299f_31d0, 0x082e_fa98_ec4e_6c89];
        let rest = u64::from(self.lo_port)
            | u64::from(self.hi_port) << 16
            | u64::from(self.proto) << 32
            | (self.scope as u64) << 40;
        let h = fold(word(&self.lo, 0) ^ K[0], word(&self.lo, 1) ^ K[1]);
        let h = fold(h ^ word(&self.hi, 0), word(&self.hi, 1) ^ K[2]);
        fold(h ^ rest, K[3])
    }

    /// The kind of flow a key belongs to.
    pub fn kind(&self) -> FlowKind {
        match (self.scope, self.proto) {
            (KeyScope::FiveTuple, 6) => FlowKind::Connected,
            (KeyScope::FiveTuple, _) => FlowKind::Unconnected,
            _ => FlowKind::NoFlow,
        }
    }
}

/// IP version of a packet as a small number (0 for non-IP).
pub fn ip_version(p: &Packet) -> u8 {
    match p.net {
        NetLayer::NonIp => 0,
        NetLayer::Ipv4 => 4,
        NetLayer::Ipv6 => 6,
    }
}

/// How likely a port is to be a server's: known service > privileged > registered > ephemeral.
pub fn service_rank(port: u16) -> u8 {
    if crate::features::app::by_port(port).is_some() {
        3
    } else if port < 1024 {
        2
    } else if port < 49152 {
        1
    } else {
        0
    }
}

/// Whether the packet's sender is the client of a new flow started by this packet.
pub fn sender_is_client(p: &Packet) -> bool {
    match p.transport {
        Transport::Tcp(t) => {
            if t.flags.has(crate::capture::TcpFlags::SYN) {
                return !t.flags.has(crate::capture::TcpFlags::ACK);
            }
            service_rank(t.dst_port) >= service_rank(t.src_port)
        }
        Transport::Udp { src_port, dst_port } | Transport::Ported { src_port, dst_port } => {
            service_rank(dst_port) >= service_rank(src_port)
        }
        // echo reply first: the sender is the server
        Transport::Icmp(i) => !(i.kind == 0 || i.kind == 129),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_share_a_key() {
        let mut p = Packet { net: NetLayer::Ipv4, ip_proto: 17, ..Default::default() };
        p.src_ip[..4].copy_from_slice(&[10, 0, 0, 9]);
        p.dst_ip[..4].copy_from_slice(&[10, 0, 0, 1]);
        p.transport = Transport::Udp { src_port: 5000, dst_port: 53 };
        let (k1, s1) = FlowKey::of(&p);
        std::mem::swap(&mut p.src_ip, &mut p.dst_ip);
        p.transport = Transport::Udp { src_port: 53, dst_port: 5000 };
        let (k2, s2) = FlowKey::of(&p);
        assert_eq!(k1, k2);
        assert_ne!(s1, s2);
        assert_eq!(k1.kind(), FlowKind::Unconnected);
    }

    #[test]
    fn server_side_by_port_rank() {
        assert!(service_rank(443) > service_rank(51000));
        assert!(service_rank(1023) > service_rank(20000));
        let p = Packet { transport: Transport::Udp { src_port: 53, dst_port: 40000 }, ..Default::default() };
        assert!(!sender_is_client(&p));
    }
}
