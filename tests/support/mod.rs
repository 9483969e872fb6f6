//! Fixture builders for the integration tests and the fuzz targets (`fuzz/` includes this
//! file): raw pcap/pcapng bytes (any link type, byte order and timestamp precision, including
//! broken ones), link-layer rewrapping of Ethernet frames, gzip, unusual frames (IPv4 options,
//! IPv6 extension chains and fragments, stacked VLAN tags, GRE, jumbo), and the check that the
//! native classic-pcap parser reads a file exactly as libpcap does. Everything is made here;
//! nothing is read from outside the repo.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use trafgen::capture::{CaptureError, CaptureReader};
pub use trafgen::fixture::{arp_exchange, icmp_echo, tcp_connection, udp6_exchange, udp_exchange, Frame};

pub const T0: i64 = 1_600_000_000 * 1_000_000_000;

/// One record: timestamp (ns), original length, captured bytes.
#[derive(Clone)]
pub struct Rec {
    pub ts_ns: i64,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

pub fn recs(frames: &[Frame]) -> Vec<Rec> {
    frames.iter().map(|(t, d)| Rec { ts_ns: *t, orig_len: d.len() as u32, data: d.clone() }).collect()
}

/// Classic pcap bytes.
pub fn pcap_bytes(linktype: u32, nanos: bool, big_endian: bool, snaplen: u32, records: &[Rec]) -> Vec<u8> {
    let u32b = |v: u32| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
    let u16b = |v: u16| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut out = Vec::new();
    out.extend_from_slice(&u32b(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    out.extend_from_slice(&u16b(2));
    out.extend_from_slice(&u16b(4));
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&u32b(snaplen));
    out.extend_from_slice(&u32b(linktype));
    for r in records {
        let sec = r.ts_ns.div_euclid(1_000_000_000) as u32;
        let frac = r.ts_ns.rem_euclid(1_000_000_000) as u32;
        out.extend_from_slice(&u32b(sec));
        out.extend_from_slice(&u32b(if nanos { frac } else { frac / 1000 }));
        out.extend_from_slice(&u32b(r.data.len() as u32));
        out.extend_from_slice(&u32b(r.orig_len));
        out.extend_from_slice(&r.data);
    }
    out
}

/// Byte offsets of each record header in a classic pcap made by [`pcap_bytes`].
pub fn record_offsets(records: &[Rec]) -> Vec<u64> {
    let mut off = 24u64;
    records
        .iter()
        .map(|r| {
            let o = off;
            off += 16 + r.data.len() as u64;
            o
        })
        .collect()
}

fn pad4(v: &mut Vec<u8>) {
    while v.len() % 4 != 0 {
        v.push(0);
    }
}

fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    pad4(&mut body);
    let len = (body.len() + 12) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&body);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

/// pcapng bytes (little endian): one SHB, the given interfaces (link type, snaplen; all with
/// ns resolution), optionally an unknown block, and EPBs for (interface, record).
pub fn pcapng_bytes(interfaces: &[(u16, u32)], records: &[(u32, Rec)], unknown_block: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    out.extend(block(0x0A0D_0D0A, &shb));
    for &(lt, snap) in interfaces {
        let mut idb = Vec::new();
        idb.extend_from_slice(&lt.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&snap.to_le_bytes());
        idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0]); // if_tsresol = 10^-9
        idb.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        out.extend(block(1, &idb));
    }
    if unknown_block {
        out.extend(block(0x0BAD_0001, b"trafgen test: an unknown block readers must skip"));
    }
    for (iface, r) in records {
        let ts = r.ts_ns as u64;
        let mut epb = Vec::new();
        epb.extend_from_slice(&iface.to_le_bytes());
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&r.orig_len.to_le_bytes());
        epb.extend_from_slice(&r.data);
        out.extend(block(6, &epb));
    }
    out
}

/// Sets the timestamp resolution (`if_tsresol`) of every interface of a pcapng file made by
/// [`pcapng_bytes`]: 9 is ns (the default), 0 whole seconds, 0x80 | n 2^-n s. A record's
/// `ts_ns` is then its count of those ticks.
pub fn pcapng_tsresol(bytes: &mut [u8], tsresol: u8) {
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let kind = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if kind == 1 && bytes.get(at + 16..at + 18) == Some(&[9, 0]) {
            bytes[at + 20] = tsresol;
        }
        at += len.max(12);
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Link types an Ethernet frame can be rewrapped into.
#[derive(Clone, Copy, Debug)]
pub enum Link {
    Ethernet,
    Vlan,
    QinQ,
    Raw(u32),
    Sll,
    Sll2,
    NullLe,
    NullBe,
    Loop,
}

impl Link {
    pub fn dlt(self) -> u32 {
        match self {
            Link::Ethernet | Link::Vlan | Link::QinQ => 1,
            Link::Raw(d) => d,
            Link::Sll => 113,
            Link::Sll2 => 276,
            Link::NullLe | Link::NullBe => 0,
            Link::Loop => 108,
        }
    }

    /// Rewraps an untagged Ethernet frame.
    pub fn wrap(self, eth: &[u8]) -> Vec<u8> {
        let (dst, src, et, l3) = (&eth[0..6], &eth[6..12], &eth[12..14], &eth[14..]);
        let ip6 = et == [0x86, 0xdd];
        let mut f = Vec::new();
        match self {
            Link::Ethernet => f.extend_from_slice(eth),
            Link::Vlan | Link::QinQ => {
                f.extend_from_slice(dst);
                f.extend_from_slice(src);
                if let Link::QinQ = self {
                    f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x0a]);
                }
                f.extend_from_slice(&[0x81, 0x00, 0x00, 0x14]);
                f.extend_from_slice(et);
                f.extend_from_slice(l3);
            }
            Link::Raw(_) => f.extend_from_slice(l3),
            Link::Sll => {
                f.extend_from_slice(&[0, 0, 0, 1, 0, 6]);
                f.extend_from_slice(src);
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(et);
                f.extend_from_slice(l3);
            }
            Link::Sll2 => {
                f.extend_from_slice(et);
                f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6]);
                f.extend_from_slice(src);
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(l3);
            }
            Link::NullLe | Link::NullBe | Link::Loop => {
                let fam: u32 = if ip6 { 10 } else { 2 };
                match self {
                    Link::NullLe => f.extend_from_slice(&fam.to_le_bytes()),
                    _ => f.extend_from_slice(&(if ip6 { 30u32 } else { 2 }).to_be_bytes()),
                }
                f.extend_from_slice(l3);
            }
        }
        f
    }
}

/// A scratch directory that lives as long as the value.
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new() -> Scratch {
        Scratch(tempfile::tempdir().unwrap())
    }
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// The standard mix used by most tests: one TCP connection (2 rounds: 3 + 6 + 4 = 13 packets),
/// one DNS exchange (2), one ICMP echo (2): 17 packets, 3 flows.
pub fn standard_mix() -> Vec<Frame> {
    let mut v = tcp_connection([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, T0, 2, 100, 1000);
    v.extend(udp_exchange([10, 0, 0, 1], [10, 0, 0, 53], 50000, 53, T0 + 3_000_000, 30, 90));
    v.extend(icmp_echo([10, 0, 0, 1], [10, 0, 0, 2], 7, T0 + 4_000_000));
    v.sort_by_key(|f| f.0);
    v
}

// ---------------------------------------------------------------- native parser vs libpcap

/// What a reader yields, record by record, until a clean end or an error reading cannot go
/// past (a resumable error is listed and reading goes on, as `--skip-bad` does).
#[derive(Debug, PartialEq)]
pub enum Item {
    Record { index: u64, offset: Option<u64>, ts_ns: i64, wire_len: u32, data: Vec<u8> },
    Error { kind: &'static str, index: u64, offset: Option<u64>, packets_read: u64 },
}

pub fn items(mut r: CaptureReader) -> Vec<Item> {
    let mut out = Vec::new();
    loop {
        match r.next_record() {
            Ok(Some(rec)) => out.push(Item::Record {
                index: rec.index,
                offset: rec.offset,
                ts_ns: rec.ts_ns,
                wire_len: rec.wire_len,
                data: rec.data.to_vec(),
            }),
            Ok(None) => return out,
            Err(e) => {
                let resumable = e.is_resumable();
                out.push(match e {
                    CaptureError::CorruptRecord { index, offset, packets_read, .. } => {
                        Item::Error { kind: "corrupt", index, offset, packets_read }
                    }
                    CaptureError::CaplenOverSnaplen { index, offset, .. } => {
                        Item::Error { kind: "over_snaplen", index, offset: Some(offset), packets_read: 0 }
                    }
                    e => panic!("unexpected record error {e}"),
                });
                if !resumable {
                    return out;
                }
            }
        }
        assert!(out.len() < 1_000_000, "reader does not end");
    }
}

/// The one known difference between the parsers: in a file of the host's byte order (little
/// endian here), libpcap reads a record's seconds and fraction as signed 32-bit numbers
/// (`struct pcap_timeval`), so from 2038-01-19 on, or with a fraction field of 2^31 or more,
/// its time is 2^32 s (or 2^32 fraction units of `unit_ns`) earlier than the native parser's,
/// which reads both unsigned as the format says (and as libpcap itself does in files of the
/// other byte order).
fn libpcap_signed_time(native: i64, libpcap: i64, unit_ns: i64) -> bool {
    let (sec, frac) = ((1i64 << 32) * 1_000_000_000, (1i64 << 32) * unit_ns);
    [sec, frac, sec + frac].contains(&native.wrapping_sub(libpcap))
}

/// Reads `path` with the native classic-pcap parser and with libpcap; both must agree (see
/// [`libpcap_signed_time`] for the one exception).
pub fn assert_parsers_agree(path: &Path) -> usize {
    let open = |libpcap: bool| {
        if libpcap { CaptureReader::open_libpcap(path) } else { CaptureReader::open(path) }
    };
    match (open(false), open(true)) {
        (Ok(native), Ok(reference)) => {
            assert_eq!((native.dlt(), native.snaplen()), (reference.dlt(), reference.snaplen()), "{}", path.display());
            let format = native.format();
            let (a, mut b) = (items(native), items(reference));
            if let trafgen::capture::FileFormat::Pcap { nanos, big_endian: false } = format {
                for (x, y) in a.iter().zip(b.iter_mut()) {
                    if let (Item::Record { ts_ns: n, .. }, Item::Record { ts_ns: l, .. }) = (x, y) {
                        if libpcap_signed_time(*n, *l, if nanos { 1 } else { 1000 }) {
                            *l = *n;
                        }
                    }
                }
            }
            assert_eq!(a, b, "{}", path.display());
            a.len()
        }
        (Err(a), Err(b)) => {
            // a header libpcap refuses is a BadHeader from the native side, with libpcap's words
            let same = std::mem::discriminant(&a) == std::mem::discriminant(&b)
                || matches!((&a, &b), (CaptureError::BadHeader { msg, .. }, CaptureError::Libpcap { msg: m, .. }) if m.contains(msg.split(' ').next().unwrap_or("")));
            assert!(same, "{a} / {b}");
            0
        }
        (a, b) => panic!("{}: native {:?} / libpcap {:?}", path.display(), a.err(), b.err()),
    }
}

// ---------------------------------------------------------------- unusual frames
// (Ethernet II, between hosts 2:0:0:0:0:1 / 10.0.0.1 and 2:0:0:0:0:2 / 10.0.0.2)

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn ethernet(ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + l3.len());
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

/// An IPv4 header from 10.0.0.1 to 10.0.0.2 carrying `payload_len` bytes of `proto`.
fn ipv4_header(proto: etherparse::IpNumber, payload_len: usize) -> etherparse::Ipv4Header {
    etherparse::Ipv4Header::new(payload_len as u16, 64, proto, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap()
}

fn udp_datagram(sport: u16, dport: u16, payload: usize, fill: u8) -> Vec<u8> {
    let mut udp = Vec::new();
    etherparse::UdpHeader::without_ipv4_checksum(sport, dport, payload).unwrap().write(&mut udp).unwrap();
    udp.extend(std::iter::repeat_n(fill, payload));
    udp
}

/// An IPv4 UDP datagram (5000 → 9000) split into fragments of 504 bytes by hand.
pub fn ipv4_fragments(id: u16, payload: usize, t0: i64) -> Vec<Frame> {
    let udp = udp_datagram(5000, 9000, payload, 7);
    let chunks: Vec<&[u8]> = udp.chunks(504).collect();
    let n = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut h = ipv4_header(etherparse::IpNumber::UDP, c.len());
            h.identification = id;
            h.more_fragments = i + 1 < n;
            h.fragment_offset = etherparse::IpFragOffset::try_new((i * 504 / 8) as u16).unwrap();
            h.header_checksum = h.calc_header_checksum();
            let mut l3 = Vec::new();
            h.write(&mut l3).unwrap();
            l3.extend_from_slice(c);
            (t0 + i as i64 * 1000, ethernet(0x0800, &l3))
        })
        .collect()
}

/// A UDP datagram (5000 → 9000, `payload` bytes) in IPv4 whose header carries `options`
/// (a multiple of 4 bytes, at most 40).
pub fn udp4_with_options(options: &[u8], payload: usize) -> Vec<u8> {
    let udp = udp_datagram(5000, 9000, payload, 5);
    let mut h = ipv4_header(etherparse::IpNumber::UDP, 0);
    h.options = etherparse::Ipv4Options::try_from(options).unwrap();
    h.set_payload_len(udp.len()).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut l3 = Vec::new();
    h.write(&mut l3).unwrap();
    l3.extend_from_slice(&udp);
    ethernet(0x0800, &l3)
}

/// Generic IPv6 extension header bytes: next header, length 0 (8 bytes), a PadN option.
fn ipv6_ext(next: u8) -> [u8; 8] {
    [next, 0, 1, 4, 0, 0, 0, 0]
}

/// An IPv6 packet fd00::1 → fd00::2 whose payload (after `exts`) starts with protocol `first`.
fn ipv6_packet(first: u8, rest: &[u8]) -> Vec<u8> {
    let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
    src[0] = 0xfd;
    dst[0] = 0xfd;
    src[15] = 1;
    dst[15] = 2;
    let h = etherparse::Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: rest.len() as u16,
        next_header: etherparse::IpNumber(first),
        hop_limit: 64,
        source: src,
        destination: dst,
    };
    let mut l3 = Vec::new();
    h.write(&mut l3).unwrap();
    l3.extend_from_slice(rest);
    ethernet(0x86dd, &l3)
}

/// A UDP datagram (5000 → 9000) in IPv6 behind the extension headers `chain` (IP protocol
/// numbers, each an 8-byte header: 0 hop-by-hop, 43 routing, 60 destination options, …).
pub fn udp6_behind_extensions(chain: &[u8], payload: usize) -> Vec<u8> {
    let mut rest = Vec::new();
    for (i, _) in chain.iter().enumerate() {
        let next = chain.get(i + 1).copied().unwrap_or(17);
        rest.extend_from_slice(&ipv6_ext(next));
    }
    rest.extend(udp_datagram(5000, 9000, payload, 6));
    ipv6_packet(chain.first().copied().unwrap_or(17), &rest)
}

/// An IPv6 UDP datagram (5000 → 9000) split in two by fragment headers (RFC 8200 §4.5).
pub fn ipv6_fragments(id: u32, payload: usize, t0: i64) -> Vec<Frame> {
    let udp = udp_datagram(5000, 9000, payload, 8);
    let cut = (udp.len() / 2) & !7;
    [(0usize, &udp[..cut], true), (cut, &udp[cut..], false)]
        .iter()
        .enumerate()
        .map(|(i, &(offset, part, more))| {
            let mut rest = vec![17, 0];
            rest.extend_from_slice(&((offset as u16) | u16::from(more)).to_be_bytes());
            rest.extend_from_slice(&id.to_be_bytes());
            rest.extend_from_slice(part);
            (t0 + i as i64 * 1000, ipv6_packet(44, &rest))
        })
        .collect()
}

/// An Ethernet frame with `tags` stacked VLAN tags (outer 802.1ad, then 802.1Q) around a UDP
/// datagram in IPv4.
pub fn vlan_stacked(tags: usize, payload: usize) -> Vec<u8> {
    let plain = udp4_with_options(&[], payload);
    let mut f = plain[..12].to_vec();
    for i in 0..tags {
        let tpid: u16 = if i == 0 && tags > 1 { 0x88a8 } else { 0x8100 };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + i as u16).to_be_bytes());
    }
    f.extend_from_slice(&plain[12..]);
    f
}

/// A GRE packet (IPv4 protocol 47) that carries an IPv4 UDP datagram.
pub fn gre_over_ipv4(payload: usize) -> Vec<u8> {
    let inner = udp4_with_options(&[], payload);
    let mut gre = vec![0, 0, 0x08, 0x00];
    gre.extend_from_slice(&inner[14..]);
    let h = {
        let mut h = ipv4_header(etherparse::IpNumber(47), gre.len());
        h.header_checksum = h.calc_header_checksum();
        h
    };
    let mut l3 = Vec::new();
    h.write(&mut l3).unwrap();
    l3.extend_from_slice(&gre);
    ethernet(0x0800, &l3)
}

/// A jumbo Ethernet frame: a UDP datagram in IPv4 of `ip_len` bytes (e.g. 9000).
pub fn jumbo_udp4(ip_len: usize) -> Vec<u8> {
    udp4_with_options(&[], ip_len - 28)
}
