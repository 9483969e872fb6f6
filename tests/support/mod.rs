//! Fixture builders for the integration tests: raw pcap/pcapng bytes (any link type, byte
//! order and timestamp precision, including broken ones), link-layer rewrapping of Ethernet
//! frames, and gzip. Everything is made here; nothing is read from outside the repo.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

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
