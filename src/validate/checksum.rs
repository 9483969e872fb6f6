//! The Internet checksum (RFC 1071) over raw bytes, and the IPv4/IPv6 pseudo-headers.
//!
//! This module owns the ones-complement arithmetic only: summing byte ranges, adding a
//! pseudo-header (RFC 768/793 for IPv4, RFC 8200 §8.1 for IPv6) and telling whether a header
//! or segment *including its checksum field* sums to 0xffff, which is what a correct checksum
//! gives. Which bytes to sum is decided by [`super::packet`].

/// Adds `bytes` as big-endian 16-bit words to `acc`, unfolded (the wire stage's sum).
pub fn sum(bytes: &[u8], acc: u64) -> u64 {
    crate::wire::checksum::add(acc, bytes)
}

pub use crate::wire::checksum::fold;

/// The pseudo-header sum for an upper-layer packet of `len` bytes and protocol `proto`.
/// IPv4 uses the first 4 bytes of each address.
pub fn pseudo_header(v6: bool, src: &[u8; 16], dst: &[u8; 16], proto: u8, len: u32) -> u64 {
    let n = if v6 { 16 } else { 4 };
    let acc = sum(&src[..n], 0);
    let acc = sum(&dst[..n], acc);
    acc + u64::from(proto) + u64::from(len >> 16) + u64::from(len & 0xffff)
}

/// True when `bytes` (a header or segment with its checksum field in place) plus `pseudo`
/// sums to all ones: the checksum is right.
pub fn verifies(pseudo: u64, bytes: &[u8]) -> bool {
    fold(sum(bytes, pseudo)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2
        assert_eq!(fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0)), 0xddf2);
        // odd length pads with a zero byte; word grouping does not matter
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56], 0)), 0x1234 + 0x5600);
        let v: Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        let by16 = v.chunks(2).map(|c| u64::from(c[0]) << 8 | u64::from(*c.get(1).unwrap_or(&0))).sum::<u64>();
        assert_eq!(fold(sum(&v, 0)), fold(by16));
    }

    #[test]
    fn agrees_with_etherparse() {
        use etherparse::{Ipv4Header, TcpHeader, UdpHeader};
        let ip = Ipv4Header::new(0, 64, etherparse::IpNumber::TCP, [192, 168, 1, 2], [10, 9, 8, 7]).unwrap();
        let mut ip_bytes = ip.to_bytes().to_vec();
        let c = ip.calc_header_checksum();
        ip_bytes[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(verifies(0, &ip_bytes));
        ip_bytes[8] ^= 1;
        assert!(!verifies(0, &ip_bytes));

        let payload = b"hello, odd length";
        let mut tcp = TcpHeader::new(1234, 80, 0xdead_beef, 512);
        tcp.psh = true;
        tcp.checksum = tcp.calc_checksum_ipv4_raw([192, 168, 1, 2], [10, 9, 8, 7], payload).unwrap();
        let mut seg = tcp.to_bytes().to_vec();
        seg.extend_from_slice(payload);
        let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
        s[..4].copy_from_slice(&[192, 168, 1, 2]);
        d[..4].copy_from_slice(&[10, 9, 8, 7]);
        assert!(verifies(pseudo_header(false, &s, &d, 6, seg.len() as u32), &seg));
        assert!(!verifies(pseudo_header(false, &d, &[0; 16], 6, seg.len() as u32), &seg));

        let (s6, d6) = ([0xfd; 16], [0x20; 16]);
        let udp = UdpHeader::with_ipv6_checksum(5353, 53, &etherparse::Ipv6Header { source: s6, destination: d6, ..Default::default() }, payload).unwrap();
        let mut seg = udp.to_bytes().to_vec();
        seg.extend_from_slice(payload);
        assert!(verifies(pseudo_header(true, &s6, &d6, 17, seg.len() as u32), &seg));
    }
}
