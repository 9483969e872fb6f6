//! Header writers: Ethernet, IPv4, IPv6, TCP, UDP, ICMP/ICMPv6 echo and ARP, emitted into a
//! fixed buffer with their checksums. One function per header, the same shape in each. The
//! caller decides every field; these functions only lay bytes out and checksum them.

use super::checksum::{self, PayloadFill};

/// Longest header stack we build: Ethernet 14 + IPv6 40 + TCP 60.
pub const MAX_HEADER: usize = 14 + 40 + 60;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// The IP layer of one frame.
#[derive(Clone, Copy, Debug)]
pub enum Ip {
    V4 { src: [u8; 4], dst: [u8; 4], id: u16, ttl: u8, dont_fragment: bool },
    V6 { src: [u8; 16], dst: [u8; 16], flow_label: u32, hop_limit: u8 },
}

impl Ip {
    pub fn header_len(&self) -> usize {
        match self {
            Ip::V4 { .. } => 20,
            Ip::V6 { .. } => 40,
        }
    }

    /// Partial sum of the TCP/UDP/ICMPv6 pseudo-header.
    fn pseudo_sum(&self, proto: u8, l4_len: usize) -> u64 {
        let s = match self {
            Ip::V4 { src, dst, .. } => checksum::add(checksum::add(0, src), dst),
            Ip::V6 { src, dst, .. } => checksum::add(checksum::add(0, src), dst),
        };
        s + l4_len as u64 + u64::from(proto)
    }
}

/// Writes the Ethernet header at `buf[0..14]`.
pub fn ethernet(buf: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    buf[0..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src);
    buf[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// Writes the IP header at `buf[..ip.header_len()]` for a packet of `total_len` bytes (IP
/// header included) carrying protocol `proto`.
pub fn ip(buf: &mut [u8], ip: &Ip, proto: u8, total_len: usize) {
    match *ip {
        Ip::V4 { src, dst, id, ttl, dont_fragment } => {
            let h = &mut buf[..20];
            h[0] = 0x45;
            h[1] = 0;
            h[2..4].copy_from_slice(&(total_len as u16).to_be_bytes());
            h[4..6].copy_from_slice(&id.to_be_bytes());
            h[6..8].copy_from_slice(&(if dont_fragment { 0x4000u16 } else { 0 }).to_be_bytes());
            h[8] = ttl;
            h[9] = proto;
            h[10..12].copy_from_slice(&[0, 0]);
            h[12..16].copy_from_slice(&src);
            h[16..20].copy_from_slice(&dst);
            let c = checksum::finish(checksum::add(0, h));
            h[10..12].copy_from_slice(&c.to_be_bytes());
        }
        Ip::V6 { src, dst, flow_label, hop_limit } => {
            let h = &mut buf[..40];
            let first = (6u32 << 28) | (flow_label & 0x000f_ffff);
            h[0..4].copy_from_slice(&first.to_be_bytes());
            h[4..6].copy_from_slice(&((total_len - 40) as u16).to_be_bytes());
            h[6] = proto;
            h[7] = hop_limit;
            h[8..24].copy_from_slice(&src);
            h[24..40].copy_from_slice(&dst);
        }
    }
}

/// TCP header fields.
#[derive(Clone, Copy, Debug)]
pub struct Tcp<'o> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Options, already padded to a multiple of 4 bytes (≤ 40).
    pub options: &'o [u8],
}

/// Writes the TCP header at `buf[..20 + options]`, checksummed over `payload_len` fill bytes.
pub fn tcp(buf: &mut [u8], ip: &Ip, t: &Tcp<'_>, fill: &PayloadFill, payload_len: usize) {
    let hlen = 20 + t.options.len();
    let h = &mut buf[..hlen];
    h[0..2].copy_from_slice(&t.src_port.to_be_bytes());
    h[2..4].copy_from_slice(&t.dst_port.to_be_bytes());
    h[4..8].copy_from_slice(&t.seq.to_be_bytes());
    h[8..12].copy_from_slice(&t.ack.to_be_bytes());
    h[12] = ((hlen / 4) as u8) << 4;
    h[13] = t.flags;
    h[14..16].copy_from_slice(&t.window.to_be_bytes());
    h[16..20].copy_from_slice(&[0, 0, 0, 0]);
    h[20..].copy_from_slice(t.options);
    let sum = ip.pseudo_sum(6, hlen + payload_len) + checksum::add(0, h) + fill.sum(payload_len);
    h[16..18].copy_from_slice(&checksum::finish(sum).to_be_bytes());
}

/// Writes the UDP header at `buf[..8]`.
pub fn udp(buf: &mut [u8], ip: &Ip, src_port: u16, dst_port: u16, fill: &PayloadFill, payload_len: usize) {
    let len = 8 + payload_len;
    let h = &mut buf[..8];
    h[0..2].copy_from_slice(&src_port.to_be_bytes());
    h[2..4].copy_from_slice(&dst_port.to_be_bytes());
    h[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    h[6..8].copy_from_slice(&[0, 0]);
    let mut c = checksum::finish(ip.pseudo_sum(17, len) + checksum::add(0, h) + fill.sum(payload_len));
    if c == 0 {
        c = 0xffff; // 0 means "no checksum" in UDP
    }
    h[6..8].copy_from_slice(&c.to_be_bytes());
}

/// Writes an ICMP (v4) or ICMPv6 echo header at `buf[..8]`.
pub fn icmp_echo(buf: &mut [u8], ip: &Ip, request: bool, id: u16, seq: u16, fill: &PayloadFill, payload_len: usize) {
    let v6 = matches!(ip, Ip::V6 { .. });
    let h = &mut buf[..8];
    h[0] = match (v6, request) {
        (false, true) => 8,
        (false, false) => 0,
        (true, true) => 128,
        (true, false) => 129,
    };
    h[1] = 0;
    h[2..4].copy_from_slice(&[0, 0]);
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&seq.to_be_bytes());
    let pseudo = if v6 { ip.pseudo_sum(58, 8 + payload_len) } else { 0 };
    let c = checksum::finish(pseudo + checksum::add(0, h) + fill.sum(payload_len));
    h[2..4].copy_from_slice(&c.to_be_bytes());
}

/// Length of an Ethernet/IPv4 ARP body.
pub const ARP_LEN: usize = 28;

/// Writes an Ethernet/IPv4 ARP body at `buf[..ARP_LEN]` (request when `tha` is all zeros).
pub fn arp(buf: &mut [u8], request: bool, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) {
    let h = &mut buf[..ARP_LEN];
    h[0..8].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, if request { 1 } else { 2 }]);
    h[8..14].copy_from_slice(&sha);
    h[14..18].copy_from_slice(&spa);
    h[18..24].copy_from_slice(&tha);
    h[24..28].copy_from_slice(&tpa);
}

/// TCP option layouts we send in SYNs, by their length in bytes.
pub mod syn_options {
    /// The option lengths a SYN can carry, shortest first.
    pub const LENGTHS: [usize; 5] = [0, 4, 8, 12, 20];

    /// Options of the given length (one of [`LENGTHS`]) with this MSS and window scale, and
    /// whether they carry SACK-permitted and timestamps. TSval/TSecr are patched in later.
    pub fn layout(len: usize, mss: u16, wscale: u8) -> ([u8; 20], bool, bool) {
        let m = mss.to_be_bytes();
        let mut o = [0u8; 20];
        let (sack, ts) = match len {
            0 => (false, false),
            4 => {
                o[..4].copy_from_slice(&[2, 4, m[0], m[1]]);
                (false, false)
            }
            8 => {
                o[..8].copy_from_slice(&[2, 4, m[0], m[1], 1, 3, 3, wscale]);
                (false, false)
            }
            // Windows style: MSS, NOP, WS, NOP, NOP, SACK-permitted
            12 => {
                o[..12].copy_from_slice(&[2, 4, m[0], m[1], 1, 3, 3, wscale, 1, 1, 4, 2]);
                (true, false)
            }
            // Linux style: MSS, SACK-permitted, TS, NOP, WS
            _ => {
                o.copy_from_slice(&[2, 4, m[0], m[1], 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, wscale]);
                (true, true)
            }
        };
        (o, sack, ts)
    }

    /// Offset of TSval inside the 20-byte Linux layout.
    pub const TS_OFFSET: usize = 8;
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Ipv4HeaderSlice, TcpHeaderSlice};

    #[test]
    fn ipv4_and_tcp_checksums_verify_with_etherparse() {
        let fill = PayloadFill::new(b"abc", 100);
        let ipd = Ip::V4 { src: [10, 0, 0, 1], dst: [10, 0, 0, 2], id: 7, ttl: 64, dont_fragment: true };
        let (opts, _, _) = syn_options::layout(20, 1460, 7);
        let mut buf = [0u8; MAX_HEADER];
        ip(&mut buf, &ipd, 6, 20 + 40 + 33);
        let t = Tcp { src_port: 1, dst_port: 2, seq: 3, ack: 4, flags: 0x18, window: 5, options: &opts };
        tcp(&mut buf[20..], &ipd, &t, &fill, 33);
        let h = Ipv4HeaderSlice::from_slice(&buf[..20]).unwrap();
        assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
        let th = TcpHeaderSlice::from_slice(&buf[20..60]).unwrap().to_header();
        let want = th.calc_checksum_ipv4(&h.to_header(), fill.bytes(33)).unwrap();
        assert_eq!(th.checksum, want);
    }

    #[test]
    fn syn_option_layouts_parse() {
        for len in syn_options::LENGTHS {
            let (o, sack, ts) = syn_options::layout(len, 1460, 7);
            let mut h = vec![0u8, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, (((20 + len) / 4) as u8) << 4, 2, 0, 1, 0, 0, 0, 0];
            h.extend_from_slice(&o[..len]);
            let t = TcpHeaderSlice::from_slice(&h).unwrap();
            let kinds: Vec<_> = t.options_iterator().map(|x| x.unwrap()).collect();
            assert_eq!(kinds.iter().any(|k| matches!(k, etherparse::TcpOptionElement::SelectiveAcknowledgementPermitted)), sack, "{len}");
            assert_eq!(kinds.iter().any(|k| matches!(k, etherparse::TcpOptionElement::Timestamp(..))), ts, "{len}");
        }
    }
}
