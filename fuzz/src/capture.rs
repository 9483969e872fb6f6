//! The `capture` and `pcap_differential` targets: input layout, the run, and their seeds.
//!
//! `capture` input: byte 0 chooses the mode and the options, the rest is the payload.
//!
//! | byte 0 bits | meaning |
//! |---|---|
//! | 0–1 | 0 raw file bytes, 1 raw bytes gzip-compressed by the harness, 2 frames in a classic pcap, 3 frames in a pcapng |
//! | 2 | `skip_bad` |
//! | 3–5 | flow-table preset ([`flow_config`]): timeouts and `max_flows` small enough to sweep and evict |
//!
//! In the frame modes, bytes 1–3 are the container ([`FrameContainer`]) and the rest is a
//! list of records `[caplen: u16 LE][dt: i8 ms, negative goes back in time][orig_len − caplen: u8][caplen bytes]`
//! (the last record takes what is left; `dt` = −128 flips every bit of the time, a jump to the
//! far side of the epoch). The harness wraps them in a valid file, so the
//! fuzzer spends its time in decode → flow → features, not in fighting the container; the
//! raw modes fight the container (pcap, pcapng, gzip, libpcap).

use std::path::Path;

use trafgen::capture::{CaptureError, FileFormat, LinkType, Packet};
use trafgen::features::{FlowFeatures, PacketFeatures, Rolling};
use trafgen::flow::{Assignment, Flow, FlowConfig};
use trafgen::ingest::{ingest, IngestError, IngestOptions, Observer};
use trafgen::inspect::Summary;

use crate::support::{self, Link, Rec, T0};

/// Link types the frame modes can declare: every supported one, and one that is not (802.11).
pub const LINKTYPES: [u32; 11] = [1, 101, 12, 14, 228, 229, 0, 108, 113, 276, 105];

/// Snapshot lengths the frame modes can declare: 0 means 262,144 to libpcap; 96 cuts most frames.
const SNAPLENS: [u32; 4] = [65535, 0, 96, 262_144];

pub const MODE_RAW: u8 = 0;
pub const MODE_RAW_GZIP: u8 = 1;
pub const MODE_PCAP: u8 = 2;
pub const MODE_PCAPNG: u8 = 3;
pub const SKIP_BAD: u8 = 1 << 2;

/// Flow-table settings by preset (bits 3–5 of byte 0). `max_flows` is always small: the table
/// reserves address space for that many flows on every run.
pub fn flow_config(preset: u8) -> FlowConfig {
    let small = FlowConfig { max_flows: 4096, ..FlowConfig::default() };
    match preset & 7 {
        1 => FlowConfig { tcp_idle_s: 1.0, udp_idle_s: 1.0, noflow_idle_s: 1.0, ..small },
        2 => FlowConfig { max_flows: 2, ..small },
        3 => FlowConfig {
            tcp_idle_s: 0.001,
            udp_idle_s: 0.001,
            noflow_idle_s: 0.001,
            tcp_close_linger_s: 0.0,
            fragment_timeout_s: 0.0,
            max_flows: 3,
        },
        _ => small,
    }
}

/// How the frame modes wrap their records (bytes 1–3 of the input).
#[derive(Clone, Copy, Debug)]
pub struct FrameContainer {
    /// Index into [`LINKTYPES`] of interface 0 (and of the pcap file).
    pub link0: u8,
    /// pcap: bit 0 ns timestamps, bit 1 big endian; pcapng: bit 0 a second interface, bit 1
    /// an unknown block, bits 4–5 the timestamp resolution (ns, µs, s, 2^-1 s); both: bits
    /// 2–3 index into the snapshot lengths.
    pub flags: u8,
    /// pcapng: index into [`LINKTYPES`] of interface 1.
    pub link1: u8,
}

/// One record of the frame modes.
#[derive(Clone, Debug)]
pub struct FrameRecord {
    pub dt_ms: i8,
    /// orig_len − caplen.
    pub extra: u8,
    pub data: Vec<u8>,
}

/// The input bytes for a frame-mode run.
pub fn encode_frames(mode_byte: u8, c: FrameContainer, records: &[FrameRecord]) -> Vec<u8> {
    let mut out = vec![mode_byte, c.link0, c.flags, c.link1];
    for r in records {
        let len = r.data.len().min(u16::MAX as usize);
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.push(r.dt_ms as u8);
        out.push(r.extra);
        out.extend_from_slice(&r.data[..len]);
    }
    out
}

fn decode_records(mut b: &[u8]) -> Vec<(u32, Rec)> {
    let mut out = Vec::new();
    let mut t = T0;
    while b.len() >= 4 {
        let len = (u16::from_le_bytes([b[0], b[1]]) as usize).min(b.len() - 4);
        t = match b[2] as i8 {
            i8::MIN => !t,
            dt => t.wrapping_add(i64::from(dt) * 1_000_000),
        };
        let extra = u32::from(b[3]);
        let data = b[4..4 + len].to_vec();
        // the low bit of the length picks the interface of a two-interface pcapng
        let iface = (len & 1) as u32;
        out.push((iface, Rec { ts_ns: t, orig_len: len as u32 + extra, data }));
        b = &b[4 + len..];
    }
    out
}

/// The capture file an input stands for (`None`: too short to choose a mode).
pub fn file_bytes(data: &[u8]) -> Option<Vec<u8>> {
    let (&head, rest) = data.split_first()?;
    Some(match head & 3 {
        MODE_RAW => rest.to_vec(),
        MODE_RAW_GZIP => support::gzip(rest),
        mode => {
            if rest.len() < 3 {
                return None;
            }
            let c = FrameContainer { link0: rest[0], flags: rest[1], link1: rest[2] };
            let records = decode_records(&rest[3..]);
            let snaplen = SNAPLENS[usize::from(c.flags >> 2) & 3];
            let lt = |i: u8| LINKTYPES[usize::from(i) % LINKTYPES.len()];
            if mode == MODE_PCAP {
                let recs: Vec<Rec> = records.into_iter().map(|(_, r)| r).collect();
                support::pcap_bytes(lt(c.link0), c.flags & 1 != 0, c.flags & 2 != 0, snaplen, &recs)
            } else {
                let mut ifaces = vec![(lt(c.link0) as u16, snaplen)];
                if c.flags & 1 != 0 {
                    ifaces.push((lt(c.link1) as u16, snaplen));
                }
                let n = ifaces.len() as u32;
                let recs: Vec<(u32, Rec)> = records.into_iter().map(|(i, r)| (i % n, r)).collect();
                let mut file = support::pcapng_bytes(&ifaces, &recs, c.flags & 2 != 0);
                support::pcapng_tsresol(&mut file, [9, 6, 0, 0x81][usize::from(c.flags >> 4) & 3]);
                file
            }
        }
    })
}

/// Checks what can be checked of any run, on top of not panicking.
#[derive(Default)]
struct Checked {
    summary: Summary,
    next_index: u64,
    packets: u64,
}

impl Observer for Checked {
    fn file_start(&mut self, path: &Path, format: FileFormat, link: LinkType) {
        self.summary.file_start(path, format, link);
    }
    fn packet(&mut self, p: &Packet, a: Option<&Assignment>, f: Option<&PacketFeatures>) {
        // records come in order and none is lost between the reader and the observer
        assert!(p.index >= self.next_index, "packet #{} after #{}", p.index, self.next_index);
        self.next_index = p.index + 1;
        self.packets += 1;
        assert!(p.payload_len() <= p.size());
        if let Some(f) = f {
            assert!(f.time_diff_s >= 0.0 && f.time_diff_s.is_finite(), "{f:?}");
            assert!(f.log_time_diff.is_finite(), "{f:?}");
        }
        self.summary.packet(p, a, f);
    }
    fn flow(&mut self, fl: &Flow<Rolling>, ff: &FlowFeatures) {
        assert!(ff.packets_fwd + ff.packets_bwd >= 1, "{ff:?}");
        assert!(ff.duration_s >= 0.0 && ff.duration_s.is_finite(), "{ff:?}");
        self.summary.flow(fl, ff);
    }
}

/// The `capture` target: the whole data path (capture → packets → flows → features →
/// inspect summary) over one input.
pub fn run(file: &crate::MemFile, data: &[u8]) {
    let Some(bytes) = file_bytes(data) else { return };
    file.set(&bytes);
    let opts = IngestOptions {
        flow: flow_config(data[0] >> 3),
        skip_bad: data[0] & SKIP_BAD != 0,
        packet_features: true,
        max_packets: None,
    };
    let path = file.path().to_path_buf();
    let mut obs = Checked::default();
    match ingest(std::slice::from_ref(&path), &opts, &mut obs) {
        Ok(report) => {
            assert_eq!(report.packets, obs.packets);
            let summary = obs.summary.report(&report);
            let _ = summary.to_text();
            let _ = serde_json::to_string(&summary).expect("the report serialises");
        }
        Err(IngestError::Capture(e)) => {
            assert!(!opts.skip_bad || !e.is_record_level(), "--skip-bad stopped on a record error: {e}");
            let msg = e.to_string();
            assert!(msg.contains(&*path.to_string_lossy()), "error without its file: {msg}");
            if let CaptureError::CorruptRecord { index, packets_read, .. } = e {
                assert_eq!((index, packets_read), (obs.packets, obs.packets), "{msg}");
            }
        }
    }
}

/// The `pcap_differential` target: the native classic-pcap parser and libpcap must read
/// every file alike (records, offsets, errors). Byte 0 bit 0 set: bytes 1–4 choose a valid
/// file header (magic, version, snaplen, link type) that is put before bytes 5…; clear: the
/// rest is the whole file.
pub fn run_differential(file: &crate::MemFile, data: &[u8]) {
    let Some((&head, rest)) = data.split_first() else { return };
    let bytes = if head & 1 == 0 {
        rest.to_vec()
    } else {
        if rest.len() < 4 {
            return;
        }
        let versions = [(2u16, 4u16), (2, 3), (2, 2), (2, 0), (1, 0), (2, 5), (3, 0), (543, 0)];
        let (maj, min) = versions[usize::from(rest[0] >> 2) % versions.len()];
        let (nanos, big_endian) = (rest[0] & 1 != 0, rest[0] & 2 != 0);
        let snaplen = [65535, 0, 64, 262_144, 262_145, 16][usize::from(rest[1]) % 6];
        let linktype = u32::from(rest[2]) | if rest[3] & 1 != 0 { 0x1000_0000 } else { 0 };
        let mut b = support::pcap_bytes(linktype, nanos, big_endian, snaplen, &[]);
        let w16 = |v: u16| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        b[4..6].copy_from_slice(&w16(maj));
        b[6..8].copy_from_slice(&w16(min));
        b.extend_from_slice(&rest[4..]);
        b
    };
    file.set(&bytes);
    support::assert_parsers_agree(file.path());
}

// ---------------------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------------------

fn frame_records(frames: &[support::Frame], link: Link) -> Vec<FrameRecord> {
    let mut prev = frames.first().map_or(T0, |f| f.0);
    frames
        .iter()
        .map(|(t, f)| {
            let dt_ms = ((t - prev) / 1_000_000).clamp(-128, 127) as i8;
            prev = *t;
            FrameRecord { dt_ms, extra: 0, data: link.wrap(f) }
        })
        .collect()
}

fn link_index(dlt: u32) -> u8 {
    LINKTYPES.iter().position(|&l| l == dlt).expect("a listed link type") as u8
}

/// The unusual frames of the bad-input corpus, as Ethernet frames.
pub fn unusual_frames() -> Vec<support::Frame> {
    let t = T0;
    let mut v: Vec<support::Frame> = Vec::new();
    v.extend(support::ipv4_fragments(42, 1400, t));
    v.extend(support::ipv6_fragments(7, 600, t + 1_000_000));
    v.push((t + 2_000_000, support::udp4_with_options(&[1, 1, 1, 0, 7, 7, 4, 0, 0, 0, 0, 0], 40)));
    v.push((t + 3_000_000, support::udp6_behind_extensions(&[0, 43, 60], 40)));
    v.push((t + 4_000_000, support::vlan_stacked(2, 30)));
    v.push((t + 5_000_000, support::vlan_stacked(9, 30)));
    v.push((t + 6_000_000, support::gre_over_ipv4(30)));
    v.push((t + 7_000_000, support::jumbo_udp4(9000)));
    v.extend(support::arp_exchange([10, 0, 0, 1], [10, 0, 0, 2], t + 8_000_000));
    v
}

/// Seeds of the `capture` target: (name, input).
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mix = support::standard_mix();
    let recs = support::recs(&mix);
    // raw files: pcap in both byte orders and precisions, pcapng, gzip of each
    let pcap = support::pcap_bytes(1, false, false, 65535, &recs);
    let pcap_ns_be = support::pcap_bytes(1, true, true, 65535, &recs);
    let ng_recs: Vec<(u32, Rec)> = recs.iter().enumerate().map(|(i, r)| ((i % 2) as u32, r.clone())).collect();
    let pcapng = support::pcapng_bytes(&[(1, 0), (1, 0)], &ng_recs, true);
    for (name, file) in [("pcap", &pcap), ("pcap-ns-be", &pcap_ns_be), ("pcapng", &pcapng)] {
        let mut raw = vec![MODE_RAW];
        raw.extend_from_slice(file);
        out.push((format!("raw-{name}"), raw));
        // the harness compresses: the fuzzer mutates the uncompressed bytes
        let mut gz = vec![MODE_RAW_GZIP];
        gz.extend_from_slice(file);
        out.push((format!("gzip-{name}"), gz));
    }
    // frame modes: the standard mix over every link type, and the unusual frames
    let links = [
        Link::Ethernet, Link::Vlan, Link::QinQ, Link::Raw(101), Link::Raw(12), Link::Raw(228), Link::Sll, Link::Sll2,
        Link::NullLe, Link::NullBe, Link::Loop,
    ];
    for link in links {
        let c = FrameContainer { link0: link_index(link.dlt()), flags: 0, link1: 0 };
        out.push((format!("pcap-{link:?}").replace(['(', ')'], ""), encode_frames(MODE_PCAP, c, &frame_records(&mix, link))));
    }
    let unusual = unusual_frames();
    let eth = FrameContainer { link0: 0, flags: 0, link1: 0 };
    out.push(("pcap-unusual".into(), encode_frames(MODE_PCAP, eth, &frame_records(&unusual, Link::Ethernet))));
    out.push(("pcap-unusual-idle".into(), encode_frames(MODE_PCAP | 1 << 3, eth, &frame_records(&unusual, Link::Ethernet))));
    let ng = FrameContainer { link0: 0, flags: 1 | 2, link1: 0 };
    out.push(("pcapng-unusual".into(), encode_frames(MODE_PCAPNG, ng, &frame_records(&unusual, Link::Ethernet))));
    // timestamps going backwards, frames cut by a small snaplen
    let mut back = frame_records(&mix, Link::Ethernet);
    back[4].dt_ms = -100;
    out.push(("pcap-backwards".into(), encode_frames(MODE_PCAP | SKIP_BAD, eth, &back)));
    let mut wild = frame_records(&mix, Link::Ethernet);
    wild[1].dt_ms = i8::MIN;
    wild[2].dt_ms = i8::MIN;
    let seconds = FrameContainer { link0: 0, flags: 2 << 4, link1: 0 };
    out.push(("pcapng-seconds-wild-times".into(), encode_frames(MODE_PCAPNG, seconds, &wild)));
    let cut = FrameContainer { link0: 0, flags: 2 << 2, link1: 0 };
    out.push(("pcap-snaplen96".into(), encode_frames(MODE_PCAP | SKIP_BAD, cut, &frame_records(&mix, Link::Ethernet))));
    out
}

/// Seeds of the `pcap_differential` target.
pub fn differential_seeds() -> Vec<(String, Vec<u8>)> {
    let recs = support::recs(&support::standard_mix());
    let mut out = Vec::new();
    for (name, nanos, be) in [("us-le", false, false), ("ns-be", true, true)] {
        let file = support::pcap_bytes(1, nanos, be, 65535, &recs);
        let mut raw = vec![0];
        raw.extend_from_slice(&file);
        out.push((format!("raw-{name}"), raw));
        // header chosen by the harness, records as they are
        let mut synth = vec![1, u8::from(nanos) | u8::from(be) << 1, 0, 1, 0];
        synth.extend_from_slice(&file[24..]);
        out.push((format!("hdr-{name}"), synth));
    }
    out
}
