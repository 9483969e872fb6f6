//! Checks of one frame on its own: decodability, lengths and checksums.
//!
//! This module owns the per-frame rules: frames `capture::decode` marked malformed, Ethernet
//! frames over 1514 bytes (+4 per VLAN tag), IP lengths that disagree with the frame, and the
//! IPv4 header, TCP, UDP, ICMPv4 and ICMPv6 checksums, summed over the raw captured bytes.
//! A check that needs bytes the capture does not hold (snaplen) is not made and the packet is
//! marked truncated instead; transport checksums of IP fragments are not made either (they
//! cover the reassembled datagram). It keeps no state between frames (TCP flows: [`super::tcp`]).

use crate::capture::{LinkType, Malformed, NetLayer, Packet, Transport};

use super::checksum::{pseudo_header, verifies};
use super::report::{Check, Findings};

/// Longest untagged Ethernet frame without FCS: 14-byte header + 1500-byte MTU.
pub const MAX_ETHERNET_FRAME: u32 = 1514;

/// Checks frame `frame` of link type `link`, decoded as `p`.
pub fn check_frame(link: LinkType, p: &Packet, frame: &[u8]) -> Findings {
    let mut f = Findings::default();
    let cut_by_snaplen = p.cap_len < p.wire_len;
    if link == LinkType::Ethernet && p.wire_len > MAX_ETHERNET_FRAME + 4 * u32::from(p.link.vlan_depth) {
        f.flag(Check::OversizeFrame);
    }
    if let Some(m) = p.malformed {
        // A frame cut by the snaplen may be undecodable only because bytes are missing.
        if cut_by_snaplen {
            f.truncated = true;
        } else {
            f.flag(Check::malformed(m));
        }
        // the IP header of a frame whose transport is bad was decoded: go on checking it
        if m != Malformed::BadTransport {
            return f;
        }
    }
    if !p.is_ip() {
        return f;
    }
    let l3_offset = p.link.l3_offset;
    let l3 = frame.get(l3_offset..).unwrap_or(&[]);
    let v6 = p.net == NetLayer::Ipv6;
    if p.net == NetLayer::Ipv4 {
        let ihl = usize::from(l3.first().map_or(0, |b| b & 0x0f)) * 4;
        if let Some(h) = l3.get(..ihl) {
            if !verifies(0, h) {
                f.flag(Check::Ipv4HeaderChecksum);
            }
        }
        if let Some(t) = l3.get(2..4) {
            if usize::from(u16::from_be_bytes([t[0], t[1]])) < ihl {
                f.flag(Check::IpLengthBelowHeader);
            }
        }
    }
    if p.ip_len > p.wire_len.saturating_sub(l3_offset as u32) {
        f.flag(Check::IpLengthExceedsFrame);
        return f;
    }
    if p.malformed.is_some() {
        return f;
    }
    let checksummed = matches!(p.transport, Transport::Tcp(_) | Transport::Udp { .. } | Transport::Icmp(_));
    if !checksummed {
        return f;
    }
    if p.fragment.is_some() {
        f.fragment = true;
        return f;
    }
    let (start, end) = (p.ip_header_len as usize, p.ip_len as usize);
    let Some(seg) = l3.get(start..end) else {
        // the IP packet fits the wire frame but not the captured bytes
        f.truncated = true;
        return f;
    };
    let pseudo = |proto: u8, len: usize| pseudo_header(v6, &p.src_ip, &p.dst_ip, proto, len as u32);
    let broken = match p.transport {
        Transport::Tcp(_) => (!verifies(pseudo(6, seg.len()), seg)).then_some(Check::TcpChecksum),
        Transport::Udp { .. } => {
            let field = |i: usize| seg.get(i..i + 2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
            if field(6) == 0 {
                // IPv4: "no checksum" (RFC 768); IPv6: forbidden (RFC 8200 §8.1)
                v6.then_some(Check::UdpZeroChecksumIpv6)
            } else {
                // the checksum covers the UDP length, which may be shorter than the IP payload
                let ulen = usize::from(field(4));
                let body = if (8..=seg.len()).contains(&ulen) { &seg[..ulen] } else { seg };
                (!verifies(pseudo(17, body.len()), body)).then_some(Check::UdpChecksum)
            }
        }
        Transport::Icmp(i) if i.v6 => (!verifies(pseudo(58, seg.len()), seg)).then_some(Check::Icmpv6Checksum),
        Transport::Icmp(_) => (!verifies(0, seg)).then_some(Check::Icmpv4Checksum),
        _ => None,
    };
    if let Some(c) = broken {
        f.flag(c);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::decode;
    use etherparse::PacketBuilder;

    fn check(frame: &[u8]) -> Findings {
        check_cut(frame, frame.len(), frame.len())
    }

    /// Checks the first `cap` bytes of `frame` as captured from a frame of `wire` bytes.
    fn check_cut(frame: &[u8], cap: usize, wire: usize) -> Findings {
        let p = decode(LinkType::Ethernet, 0, 0, wire as u32, &frame[..cap]);
        check_frame(LinkType::Ethernet, &p, &frame[..cap])
    }

    fn names(f: Findings) -> Vec<&'static str> {
        f.iter().map(|c| c.name()).collect()
    }

    fn tcp(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1, 1000)
            .ack(1)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    fn udp(v6: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let b = PacketBuilder::ethernet2([2; 6], [4; 6]);
        let b = if v6 { b.ipv6([0xfd; 16], [0xfe; 16], 64) } else { b.ipv4([10, 0, 0, 1], [10, 0, 0, 53], 64) };
        b.udp(5000, 53).write(&mut out, payload).unwrap();
        out
    }

    const L4_V4: usize = 14 + 20;
    const L4_V6: usize = 14 + 40;

    #[test]
    fn good_frames_of_every_protocol_pass() {
        let mut icmp4 = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4([1, 2, 3, 4], [5, 6, 7, 8], 9).icmpv4_echo_request(1, 2).write(&mut icmp4, b"odd").unwrap();
        let mut icmp6 = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6]).ipv6([1; 16], [2; 16], 9).icmpv6_echo_request(1, 2).write(&mut icmp6, b"ping6").unwrap();
        let mut tcp6 = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6]).ipv6([1; 16], [2; 16], 9).tcp(1, 2, 3, 4).write(&mut tcp6, b"x").unwrap();
        for f in [tcp(b""), tcp(b"hello"), udp(false, b"q"), udp(true, b"query"), icmp4, icmp6, tcp6] {
            assert_eq!(names(check(&f)), Vec::<&str>::new());
        }
    }

    #[test]
    fn a_flipped_byte_breaks_exactly_its_checksum() {
        let mut f = tcp(b"hello");
        f[L4_V4 + 20 + 1] ^= 0x20;
        assert_eq!(names(check(&f)), ["tcp_checksum"]);
        let mut f = tcp(b"hello");
        f[14 + 8] -= 1; // TTL: only the IPv4 header checksum covers it
        assert_eq!(names(check(&f)), ["ipv4_header_checksum"]);
        let mut f = udp(false, b"abc");
        f[L4_V4 + 8] ^= 1;
        assert_eq!(names(check(&f)), ["udp_checksum"]);
        let mut f = udp(true, b"abc");
        f[14 + 8] ^= 1; // source address: in the pseudo-header
        assert_eq!(names(check(&f)), ["udp_checksum"]);
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6]).ipv6([1; 16], [2; 16], 9).icmpv6_echo_reply(1, 2).write(&mut f, b"pong").unwrap();
        f[L4_V6 + 9] ^= 1;
        assert_eq!(names(check(&f)), ["icmpv6_checksum"]);
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4([1, 2, 3, 4], [5, 6, 7, 8], 9).icmpv4_echo_reply(1, 2).write(&mut f, b"pong").unwrap();
        f[L4_V4 + 9] ^= 1;
        assert_eq!(names(check(&f)), ["icmpv4_checksum"]);
    }

    #[test]
    fn udp_zero_checksum_is_none_over_ipv4_and_a_violation_over_ipv6() {
        let mut f = udp(false, b"abc");
        f[L4_V4 + 6..L4_V4 + 8].fill(0);
        assert!(check(&f).is_clean());
        let mut f = udp(true, b"abc");
        f[L4_V6 + 6..L4_V6 + 8].fill(0);
        assert_eq!(names(check(&f)), ["udp_zero_checksum_ipv6"]);
    }

    #[test]
    fn snaplen_cut_is_unverifiable_not_a_violation() {
        let f = tcp(&[7; 500]);
        for cap in [14 + 20 + 20, 100, f.len() - 1] {
            let r = check_cut(&f, cap, f.len());
            assert!(r.is_clean() && r.truncated, "{cap}: {r:?}");
        }
        // cut inside the TCP header: undecodable only because of the snaplen
        let r = check_cut(&f, 14 + 20 + 10, f.len());
        assert!(r.is_clean() && r.truncated, "{r:?}");
        // the IPv4 header is still checked when it was captured
        let mut g = f.clone();
        g[14 + 8] -= 1;
        assert_eq!(names(check_cut(&g, 80, g.len())), ["ipv4_header_checksum"]);
        assert!(!check(&f).truncated);
    }

    #[test]
    fn ip_length_beyond_the_wire_frame() {
        let f = tcp(&[7; 100]);
        let cut = &f[..f.len() - 10];
        assert_eq!(names(check(cut)), ["ip_length_exceeds_frame"]);
        // a longer frame (Ethernet padding) is fine
        let mut padded = tcp(b"");
        padded.resize(60, 0);
        assert!(check(&padded).is_clean());
    }

    #[test]
    fn ipv4_total_length_below_header() {
        let mut f = tcp(b"abcd");
        f[14 + 2..14 + 4].fill(0);
        // fix the header checksum so only the length is wrong
        f[14 + 10..14 + 12].fill(0);
        let c = !super::super::checksum::fold(super::super::checksum::sum(&f[14..34], 0));
        f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(names(check(&f)), ["ip_length_below_header"]);
    }

    #[test]
    fn oversize_frames_allow_four_bytes_per_vlan_tag() {
        let f = tcp(&[0; 1460]);
        assert_eq!(f.len(), 1514);
        assert!(check(&f).is_clean());
        let big = tcp(&[0; 1461]);
        assert_eq!(names(check(&big)), ["oversize_frame"]);
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        tagged.extend_from_slice(&f[12..]);
        assert_eq!(tagged.len(), 1518);
        assert!(check(&tagged).is_clean(), "{:?}", names(check(&tagged)));
        tagged.push(0);
        assert_eq!(names(check(&tagged)), ["oversize_frame"]);
    }

    #[test]
    fn malformed_frames_are_counted_by_reason() {
        assert_eq!(names(check(&[0u8; 10])), ["malformed_short_link"]);
        let mut f = tcp(b"");
        f[14] = 0x65; // ethertype IPv4, version 6
        assert_eq!(names(check(&f)), ["malformed_bad_ip_version"]);
        // a short frame cut by the snaplen is not malformed
        let r = check_cut(&tcp(b"xyz"), 10, 57);
        assert!(r.is_clean() && r.truncated);
    }

    #[test]
    fn fragments_skip_transport_checksums() {
        let mut f = tcp(b"0123456789");
        f[14 + 6] |= 0x20; // more fragments
        // fix the header checksum
        f[14 + 10..14 + 12].fill(0);
        let c = !super::super::checksum::fold(super::super::checksum::sum(&f[14..34], 0));
        f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
        f[L4_V4 + 25] ^= 1;
        let r = check(&f);
        assert!(r.is_clean() && r.fragment && !r.truncated, "{r:?}");
    }

    #[test]
    fn every_prefix_of_a_frame_checks_without_panic() {
        let f = udp(true, b"some payload");
        for n in 0..=f.len() {
            let _ = check_cut(&f, n, f.len());
            let _ = check_cut(&f, n, n);
        }
    }
}
