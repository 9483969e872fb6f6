//! Frame decoding: one captured frame → one [`Packet`].
//!
//! This module owns the per-packet view the rest of the data path uses: addresses, IP
//! lengths, fragment info and the transport header fields (TCP flags/seq/ack/window/options,
//! UDP/SCTP/DCCP ports, ICMP type/code/echo id). Network headers are sliced with etherparse's
//! lax IP slicer, so frames cut short by a snaplen still decode from their declared lengths.
//! Decoding never allocates and never panics; a frame it cannot make sense of is returned
//! with [`Packet::malformed`] set so the caller can count it.

use etherparse::{IpNumber, LaxIpSlice, TcpHeaderSlice, UdpHeaderSlice};

use super::link::{self, ethertype, LinkType};

/// TCP flag bits as on the wire (byte 13), plus NS in bit 8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    pub const FIN: u16 = 0x01;
    pub const SYN: u16 = 0x02;
    pub const RST: u16 = 0x04;
    pub const PSH: u16 = 0x08;
    pub const ACK: u16 = 0x10;
    pub const URG: u16 = 0x20;
    pub const ECE: u16 = 0x40;
    pub const CWR: u16 = 0x80;
    pub const NS: u16 = 0x100;

    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
    /// "SA", "FA", "PA" … in tcpdump's letter order (F S R P A U E C N).
    pub fn letters(self) -> String {
        const L: [(u16, char); 9] = [
            (TcpFlags::FIN, 'F'), (TcpFlags::SYN, 'S'), (TcpFlags::RST, 'R'), (TcpFlags::PSH, 'P'),
            (TcpFlags::ACK, 'A'), (TcpFlags::URG, 'U'), (TcpFlags::ECE, 'E'), (TcpFlags::CWR, 'C'),
            (TcpFlags::NS, 'N'),
        ];
        L.iter().filter(|(b, _)| self.has(*b)).map(|(_, c)| *c).collect()
    }
}

/// Bits of [`TcpInfo::option_kinds`].
pub mod tcp_option {
    pub const MSS: u8 = 0x01;
    pub const WINDOW_SCALE: u8 = 0x02;
    pub const SACK_PERMITTED: u8 = 0x04;
    pub const SACK: u8 = 0x08;
    pub const TIMESTAMP: u8 = 0x10;
    pub const OTHER: u8 = 0x80;
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    /// Bytes of TCP options (header length − 20).
    pub options_len: u8,
    /// Which options are present ([`tcp_option`] bits), when the options were captured.
    pub option_kinds: u8,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IcmpInfo {
    pub v6: bool,
    pub kind: u8,
    pub code: u8,
    /// Identifier of an echo request/reply: it plays the role of a port for flow keys.
    pub echo_id: Option<u16>,
}

/// Transport layer of a packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// Non-IP frame, non-first fragment, or a transport header that was not captured.
    #[default]
    None,
    Tcp(TcpInfo),
    Udp { src_port: u16, dst_port: u16 },
    /// SCTP, DCCP, UDP-Lite: port-based protocols whose ports are the first 4 payload bytes.
    Ported { src_port: u16, dst_port: u16 },
    Icmp(IcmpInfo),
    /// Any other IP protocol (GRE, ESP, OSPF, IGMP…): no ports.
    Other,
}

/// IPv4/IPv6 fragment information.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fragment {
    pub id: u32,
    /// Offset in bytes.
    pub offset: u32,
    pub more: bool,
}

/// The network layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NetLayer {
    #[default]
    NonIp,
    Ipv4,
    Ipv6,
}

/// Why a frame could not be fully decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Malformed {
    /// Shorter than its link-layer header.
    ShortLink,
    /// The IP header is invalid or cut short.
    BadIpHeader,
    /// Link says IP but the version nibble disagrees.
    BadIpVersion,
    /// The transport header is cut short or invalid (the packet is kept without ports).
    BadTransport,
}

/// One decoded frame. `Copy`, fixed size, no heap: the hot path passes it by reference.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Packet {
    /// 0-based record number in its file.
    pub index: u64,
    /// Capture timestamp in ns since the Unix epoch.
    pub ts_ns: i64,
    /// Original frame length on the wire and the captured length.
    pub wire_len: u32,
    pub cap_len: u32,
    pub link: link::LinkInfo,
    pub net: NetLayer,
    /// Addresses; IPv4 uses the first 4 bytes, the rest are zero.
    pub src_ip: [u8; 16],
    pub dst_ip: [u8; 16],
    /// IP protocol number (after IPv6 extension headers); 0 for non-IP.
    pub ip_proto: u8,
    pub ttl: u8,
    /// Declared IP total length (header + extensions + payload) in bytes.
    pub ip_len: u32,
    /// IP header length including IPv4 options / IPv6 extension headers.
    pub ip_header_len: u32,
    pub fragment: Option<Fragment>,
    pub transport: Transport,
    /// Transport header length (TCP incl. options, UDP 8, ICMP 8); 0 when absent.
    pub l4_header_len: u32,
    pub malformed: Option<Malformed>,
}

impl Packet {
    /// Ports of a port-based transport: TCP, UDP, SCTP/DCCP/UDP-Lite, ICMP echo (id, id).
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.transport {
            Transport::Tcp(t) => Some((t.src_port, t.dst_port)),
            Transport::Udp { src_port, dst_port } | Transport::Ported { src_port, dst_port } => {
                Some((src_port, dst_port))
            }
            Transport::Icmp(IcmpInfo { echo_id: Some(id), .. }) => Some((id, id)),
            _ => None,
        }
    }

    pub fn is_ip(&self) -> bool {
        self.net != NetLayer::NonIp
    }

    /// Link-independent packet size: the IP total length for IP packets, the frame length
    /// after the link header otherwise. This is the "total length" feature.
    pub fn size(&self) -> u32 {
        if self.is_ip() {
            self.ip_len
        } else {
            self.wire_len.saturating_sub(self.link.l3_offset as u32)
        }
    }

    /// IP + transport header bytes (non-IP: 0).
    pub fn header_len(&self) -> u32 {
        if self.is_ip() {
            self.ip_header_len + self.l4_header_len
        } else {
            0
        }
    }

    /// Transport payload bytes, from declared lengths (so snaplen truncation does not matter).
    pub fn payload_len(&self) -> u32 {
        self.size().saturating_sub(self.header_len())
    }

    pub fn tcp(&self) -> Option<&TcpInfo> {
        match &self.transport {
            Transport::Tcp(t) => Some(t),
            _ => None,
        }
    }

    /// A non-first fragment: it has no transport header and must be matched by IP id.
    pub fn is_later_fragment(&self) -> bool {
        matches!(self.fragment, Some(f) if f.offset > 0)
    }
}

/// Decodes one frame of link type `link`.
pub fn decode(link: LinkType, index: u64, ts_ns: i64, wire_len: u32, frame: &[u8]) -> Packet {
    let mut p = Packet { index, ts_ns, wire_len, cap_len: frame.len() as u32, ..Packet::default() };
    let Some(li) = link::strip(link, frame) else {
        p.malformed = Some(Malformed::ShortLink);
        return p;
    };
    p.link = li;
    let l3 = &frame[li.l3_offset.min(frame.len())..];
    let want_ip = match li.ethertype {
        ethertype::IPV4 => Some(4),
        ethertype::IPV6 => Some(6),
        ethertype::RAW_IP => l3.first().map(|b| b >> 4),
        _ => None,
    };
    let Some(version) = want_ip else { return p };
    if version != 4 && version != 6 {
        p.malformed = Some(Malformed::BadIpVersion);
        return p;
    }
    if l3.first().map(|b| b >> 4) != Some(version) {
        p.malformed = Some(Malformed::BadIpVersion);
        return p;
    }
    let ip = match LaxIpSlice::from_slice(l3) {
        Ok((ip, _err)) => ip,
        Err(_) => {
            p.malformed = Some(Malformed::BadIpHeader);
            return p;
        }
    };
    let payload = match &ip {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            p.net = NetLayer::Ipv4;
            p.src_ip[..4].copy_from_slice(&h.source());
            p.dst_ip[..4].copy_from_slice(&h.destination());
            p.ttl = h.ttl();
            p.ip_len = u32::from(h.total_len());
            p.ip_header_len = u32::from(h.ihl()) * 4 + v4.extensions().auth.map_or(0, |a| a.slice().len() as u32);
            let off = u32::from(h.fragments_offset().value()) * 8;
            if off > 0 || h.more_fragments() {
                p.fragment = Some(Fragment { id: u32::from(h.identification()), offset: off, more: h.more_fragments() });
            }
            if p.ip_len < p.ip_header_len {
                // total_len smaller than the header (some TSO captures write 0): trust the frame
                p.ip_len = (l3.len() as u32).max(p.ip_header_len);
            }
            v4.payload()
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            p.net = NetLayer::Ipv6;
            p.src_ip.copy_from_slice(&h.source());
            p.dst_ip.copy_from_slice(&h.destination());
            p.ttl = h.hop_limit();
            let exts = v6.extensions();
            p.ip_header_len = 40 + exts.slice().len() as u32;
            let plen = u32::from(h.payload_length());
            p.ip_len = if plen == 0 { l3.len() as u32 } else { 40 + plen };
            if let Some(first) = exts.first_header() {
                p.fragment = ipv6_fragment(first.0, exts.slice());
            }
            v6.payload()
        }
    };
    p.ip_proto = payload.ip_number.0;
    if p.is_later_fragment() {
        return p; // no transport header in this fragment
    }
    decode_transport(&mut p, payload.ip_number, payload.payload);
    p
}

fn decode_transport(p: &mut Packet, proto: IpNumber, l4: &[u8]) {
    match proto {
        IpNumber::TCP => match TcpHeaderSlice::from_slice(l4) {
            Ok(t) => {
                let mut info = TcpInfo {
                    src_port: t.source_port(),
                    dst_port: t.destination_port(),
                    seq: t.sequence_number(),
                    ack: t.acknowledgment_number(),
                    flags: TcpFlags(u16::from(l4[13]) | if t.ns() { TcpFlags::NS } else { 0 }),
                    window: t.window_size(),
                    options_len: (t.slice().len() - 20) as u8,
                    option_kinds: 0,
                };
                info.option_kinds = option_kinds(t.options());
                p.l4_header_len = t.slice().len() as u32;
                p.transport = Transport::Tcp(info);
            }
            Err(_) => p.malformed = Some(Malformed::BadTransport),
        },
        IpNumber::UDP => match UdpHeaderSlice::from_slice(l4) {
            Ok(u) => {
                p.l4_header_len = 8;
                p.transport = Transport::Udp { src_port: u.source_port(), dst_port: u.destination_port() };
            }
            Err(_) => p.malformed = Some(Malformed::BadTransport),
        },
        IpNumber::ICMP | IpNumber::IPV6_ICMP => {
            if l4.len() < 8 {
                p.malformed = Some(Malformed::BadTransport);
                return;
            }
            let v6 = proto == IpNumber::IPV6_ICMP;
            let (kind, code) = (l4[0], l4[1]);
            let is_echo = if v6 { kind == 128 || kind == 129 } else { kind == 8 || kind == 0 };
            p.l4_header_len = 8;
            p.transport = Transport::Icmp(IcmpInfo {
                v6,
                kind,
                code,
                echo_id: is_echo.then(|| u16::from_be_bytes([l4[4], l4[5]])),
            });
        }
        // SCTP, DCCP, UDP-Lite: ports in the first four bytes
        IpNumber(132) | IpNumber(33) | IpNumber(136) => {
            if l4.len() < 4 {
                p.malformed = Some(Malformed::BadTransport);
                return;
            }
            p.transport = Transport::Ported {
                src_port: u16::from_be_bytes([l4[0], l4[1]]),
                dst_port: u16::from_be_bytes([l4[2], l4[3]]),
            };
        }
        _ => p.transport = Transport::Other,
    }
}

/// The fragment information in the IPv6 extension headers `exts` (the bytes etherparse
/// sliced; the first header is of type `first`); the last fragmenting header wins. Walked here
/// with bounds checks: etherparse's own iterator over these headers reads past the end of the
/// slice when its lax parse stopped early (a hop-by-hop header that is not first, a header cut
/// short by the snapshot length), which is undefined behaviour.
fn ipv6_fragment(first: u8, mut exts: &[u8]) -> Option<Fragment> {
    let mut kind = first;
    let mut found = None;
    while let [next, len, ..] = *exts {
        let len = match kind {
            // hop-by-hop, routing, destination options: 8-byte units after the first 8
            0 | 43 | 60 => (usize::from(len) + 1) * 8,
            44 => 8,
            // authentication header: 4-byte units after the first 8
            51 => (usize::from(len) + 2) * 4,
            _ => break,
        };
        let Some(header) = exts.get(..len) else { break };
        if kind == 44 {
            let field = u16::from_be_bytes([header[2], header[3]]);
            let (offset, more) = (u32::from(field >> 3) * 8, field & 1 != 0);
            if offset > 0 || more {
                let id = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                found = Some(Fragment { id, offset, more });
            }
        }
        kind = next;
        exts = &exts[len..];
    }
    found
}

fn option_kinds(mut opts: &[u8]) -> u8 {
    let mut kinds = 0;
    while let Some(&kind) = opts.first() {
        match kind {
            0 => break,
            1 => {
                opts = &opts[1..];
                continue;
            }
            2 => kinds |= tcp_option::MSS,
            3 => kinds |= tcp_option::WINDOW_SCALE,
            4 => kinds |= tcp_option::SACK_PERMITTED,
            5 => kinds |= tcp_option::SACK,
            8 => kinds |= tcp_option::TIMESTAMP,
            _ => kinds |= tcp_option::OTHER,
        }
        let len = opts.get(1).copied().unwrap_or(0) as usize;
        if len < 2 || len > opts.len() {
            break;
        }
        opts = &opts[len..];
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_frame(flags_syn: bool, payload: &[u8]) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 443, 1000, 65535);
        if flags_syn {
            b = b.syn();
        }
        let b = b.ack(7);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn tcp_over_ethernet() {
        let f = tcp_frame(true, b"hello");
        let p = decode(LinkType::Ethernet, 3, 42, f.len() as u32, &f);
        assert_eq!(p.malformed, None);
        assert_eq!(p.net, NetLayer::Ipv4);
        let t = p.tcp().unwrap();
        assert_eq!((t.src_port, t.dst_port, t.seq, t.ack), (40000, 443, 1000, 7));
        assert_eq!(t.flags.letters(), "SA");
        assert_eq!((p.size(), p.header_len(), p.payload_len()), (45, 40, 5));
        assert_eq!(p.ports(), Some((40000, 443)));
    }

    #[test]
    fn snaplen_truncated_frame_keeps_declared_lengths() {
        let f = tcp_frame(false, &[0u8; 1000]);
        let p = decode(LinkType::Ethernet, 0, 0, f.len() as u32, &f[..60]);
        assert_eq!(p.malformed, None);
        assert_eq!(p.size(), 1040);
        assert_eq!(p.payload_len(), 1000);
    }

    #[test]
    fn every_prefix_of_a_frame_decodes_without_panic() {
        let f = tcp_frame(true, b"abc");
        for n in 0..f.len() {
            let _ = decode(LinkType::Ethernet, 0, 0, f.len() as u32, &f[..n]);
            let _ = decode(LinkType::RawIp, 0, 0, f.len() as u32, &f[14..14 + n.min(f.len() - 14)]);
        }
    }

    #[test]
    fn icmp_echo_id_acts_as_port() {
        let mut out = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).icmpv4_echo_request(77, 1).write(&mut out, b"ping").unwrap();
        let p = decode(LinkType::RawIp, 0, 0, out.len() as u32, &out);
        assert_eq!(p.ports(), Some((77, 77)));
        assert_eq!(p.ip_proto, 1);
    }

    #[test]
    fn ipv6_fragment_headers_are_found_and_bad_chains_stop_safely() {
        // destination options, then a fragment header (offset 1448, more fragments, id 9)
        let mut exts = vec![44, 0, 1, 4, 0, 0, 0, 0];
        exts.extend_from_slice(&[17, 0, 0x05, 0xa9, 0, 0, 0, 9]);
        assert_eq!(ipv6_fragment(60, &exts), Some(Fragment { id: 9, offset: 1448, more: true }));
        // every prefix (a chain cut short) and a chain that runs on past its bytes: no panic
        for n in 0..exts.len() {
            assert_eq!(ipv6_fragment(60, &exts[..n]), None);
        }
        assert_eq!(ipv6_fragment(60, &[0, 0, 1, 4, 0, 0, 0, 0]), None);
        assert_eq!(ipv6_fragment(51, &[44, 200, 0, 0]), None);
    }

    #[test]
    fn ipv6_extension_chain_cut_or_out_of_order_decodes_without_reading_past_the_frame() {
        // IPv6 with destination options whose next header is hop-by-hop (only allowed first):
        // etherparse's lax parse stops there, and its iterator would read past the slice
        let mut f = vec![0x60, 0, 0, 0, 0, 16, 60, 64];
        f.extend_from_slice(&[0xfd; 32]);
        f.extend_from_slice(&[0, 0, 1, 4, 0, 0, 0, 0]);
        f.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        let p = decode(LinkType::RawIp, 0, 0, f.len() as u32, &f);
        assert_eq!((p.net, p.fragment), (NetLayer::Ipv6, None));
        for n in 40..f.len() {
            let _ = decode(LinkType::RawIp, 0, 0, f.len() as u32, &f[..n]);
        }
    }

    #[test]
    fn option_kinds_parse_and_stop_on_garbage() {
        let opts = [2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0];
        let k = option_kinds(&opts);
        assert_eq!(k, tcp_option::MSS | tcp_option::WINDOW_SCALE | tcp_option::SACK_PERMITTED | tcp_option::TIMESTAMP);
        assert_eq!(option_kinds(&[2, 0, 9, 9]), tcp_option::MSS); // len 0: stop
        assert_eq!(option_kinds(&[2, 40]), tcp_option::MSS); // len past end: stop
    }
}
