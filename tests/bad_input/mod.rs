//! The bad-input corpus: every odd or broken capture trafgen is expected to meet, made here by
//! code, each with its documented behaviour, in one table ([`corpus`]). The test reads every
//! case twice (default and `--skip-bad`), each under a deadline, and checks the outcome
//! exactly: packets, malformed frames and flows per kind for a file that reads; the error and
//! how many packets `--skip-bad` keeps for one that does not. Every error names its file;
//! nothing panics or loops.
//!
//! Some cases have a focused test of their own above (offsets in error messages, flow
//! features of fragments, …); this table is the place to see them all. Inputs that once
//! crashed a fuzz target are at the end ([`fuzz_regressions`]).

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use trafgen::capture::CaptureError;
use trafgen::ingest::{IngestError, IngestOptions};

use super::support::*;
use super::{kinds, run_opts};

/// What reading a case gives.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// Read to the end: packets, malformed frames (kept out of flows), and flows
    /// (connected, unconnected, noflow).
    Read { packets: u64, malformed: u64, flows: (u64, u64, u64) },
    /// Reading stops with this [`CaptureError`] variant, at record `at` (record-level errors);
    /// `--skip-bad` then keeps `kept` packets (`None`: some, where that depends on the gzip
    /// compressor) and counts `bad` bad records (file-level errors: 0 packets, the file
    /// counted as 1 bad record).
    Error { kind: &'static str, at: Option<u64>, kept: Option<u64>, bad: u64 },
}

/// One case: a name (also the file name), the file, and what trafgen does with it.
pub struct Case {
    pub name: String,
    pub bytes: Vec<u8>,
    pub expect: Expect,
}

fn read(packets: u64, malformed: u64, flows: (u64, u64, u64)) -> Expect {
    Expect::Read { packets, malformed, flows }
}

fn error(kind: &'static str, at: u64, kept: u64, bad: u64) -> Expect {
    Expect::Error { kind, at: Some(at), kept: Some(kept), bad }
}

/// A file-level error: nothing is read, `--skip-bad` skips the file.
fn refused(kind: &'static str) -> Expect {
    Expect::Error { kind, at: None, kept: Some(0), bad: 1 }
}

fn variant(e: &CaptureError) -> &'static str {
    match e {
        CaptureError::Open { .. } => "Open",
        CaptureError::Empty { .. } => "Empty",
        CaptureError::BadMagic { .. } => "BadMagic",
        CaptureError::TruncatedHeader { .. } => "TruncatedHeader",
        CaptureError::BadHeader { .. } => "BadHeader",
        CaptureError::Gzip { .. } => "Gzip",
        CaptureError::Libpcap { .. } => "Libpcap",
        CaptureError::UnsupportedLinkType { .. } => "UnsupportedLinkType",
        CaptureError::CorruptRecord { .. } => "CorruptRecord",
        CaptureError::CaplenOverSnaplen { .. } => "CaplenOverSnaplen",
    }
}

/// Byte offsets where the blocks of a little-endian pcapng file start (and its end).
fn pcapng_block_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut out = vec![];
    while at + 8 <= bytes.len() {
        out.push(at);
        at += u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
    }
    out.push(at);
    out
}

fn one_iface(recs: &[Rec]) -> Vec<(u32, Rec)> {
    recs.iter().map(|r| (0, r.clone())).collect()
}

fn pcap(frames: &[Frame]) -> Vec<u8> {
    pcap_bytes(1, true, false, 65535, &recs(frames))
}

/// Every case, with its documented behaviour.
pub fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut case = |name: &str, bytes: Vec<u8>, expect: Expect| cases.push(Case { name: name.into(), bytes, expect });
    let mix = standard_mix(); // 17 packets: one TCP connection (13), DNS (2), ICMP echo (2)
    let mix_recs = recs(&mix);
    let mix_flows = (1, 2, 0);
    let good = pcap(&mix);

    // ---- the container: empty, wrong magic, short headers
    case("empty.pcap", vec![], refused("Empty"));
    case("empty.pcap.gz", gzip(&[]), refused("Empty"));
    case("three-bytes.pcap", b"\xd4\xc3\xb2".to_vec(), refused("BadMagic"));
    case("jpeg.pcap", b"\xff\xd8\xff\xe0 JFIF, not a capture".to_vec(), refused("BadMagic"));
    case("text.pcap", b"# a text file that someone named .pcap\n".to_vec(), refused("BadMagic"));
    case("short-header.pcap", good[..10].to_vec(), refused("TruncatedHeader"));
    let ng = pcapng_bytes(&[(1, 0)], &one_iface(&mix_recs), false);
    case("short-header.pcapng", ng[..20].to_vec(), refused("TruncatedHeader"));
    let mut archaic = good.clone();
    archaic[4..6].copy_from_slice(&1u16.to_le_bytes());
    case("version-1.0.pcap", archaic, refused("BadHeader"));
    let mut future = good.clone();
    future[4..8].copy_from_slice(&[2, 0, 5, 0]);
    case("version-2.5.pcap", future, refused("BadHeader"));
    case("wifi-linktype.pcap", pcap_bytes(105, false, false, 65535, &mix_recs), refused("UnsupportedLinkType"));
    case("wifi-linktype.pcapng", pcapng_bytes(&[(105, 0)], &one_iface(&mix_recs), false), refused("UnsupportedLinkType"));

    // ---- empty captures and a capture of one packet
    case("header-only.pcap", pcap(&[]), read(0, 0, (0, 0, 0)));
    case("header-only.pcap.gz", gzip(&pcap(&[])), read(0, 0, (0, 0, 0)));
    case("no-packets.pcapng", pcapng_bytes(&[(1, 0)], &[], true), read(0, 0, (0, 0, 0)));
    // libpcap needs an interface description before it can say what the link type is
    case("no-interfaces.pcapng", pcapng_bytes(&[], &[], false), refused("Libpcap"));
    case("single-packet.pcap", pcap(&mix[..1]), read(1, 0, (1, 0, 0)));
    case("single-packet.pcapng", pcapng_bytes(&[(1, 0)], &one_iface(&mix_recs[..1]), false), read(1, 0, (1, 0, 0)));

    // ---- truncation: at every record boundary (a shorter valid capture) and inside every
    // record, in its header and in its data (an error at that record; --skip-bad keeps the
    // records before it)
    let offsets = record_offsets(&mix_recs);
    let flows_before = |k: usize| {
        let mut seen = std::collections::BTreeSet::new();
        for (_, f) in &mix[..k] {
            seen.insert(f[23]); // the IPv4 protocol byte: one flow per protocol in the mix
        }
        (u64::from(seen.contains(&6)), seen.iter().filter(|&&p| p != 6).count() as u64, 0)
    };
    for (k, &off) in offsets.iter().enumerate() {
        let off = off as usize;
        case(&format!("cut-at-record-{k}.pcap"), good[..off].to_vec(), read(k as u64, 0, flows_before(k)));
        case(&format!("cut-in-header-{k}.pcap"), good[..off + 7].to_vec(), error("CorruptRecord", k as u64, k as u64, 1));
        case(&format!("cut-in-data-{k}.pcap"), good[..off + 16 + 3].to_vec(), error("CorruptRecord", k as u64, k as u64, 1));
    }
    let ng = pcapng_bytes(&[(1, 0)], &one_iface(&mix_recs), true);
    let blocks = pcapng_block_offsets(&ng);
    assert_eq!(blocks.len(), 3 + 17 + 1, "SHB, IDB, unknown block, 17 EPBs, end");
    for (b, &off) in blocks.iter().enumerate().skip(1) {
        let k = b.saturating_sub(3) as u64; // packets in the blocks before this one
        let name = format!("cut-at-block-{b}.pcapng");
        if b < 2 {
            // an SHB without an interface: no link type to read packets with
            case(&name, ng[..off].to_vec(), refused("Libpcap"));
        } else {
            case(&name, ng[..off].to_vec(), read(k, 0, flows_before(k as usize)));
        }
        if b < blocks.len() - 1 {
            let inside = off + 10;
            let name = format!("cut-in-block-{b}.pcapng");
            if b < 2 {
                case(&name, ng[..inside].to_vec(), refused("Libpcap"));
            } else {
                case(&name, ng[..inside].to_vec(), error("CorruptRecord", k, k, 1));
            }
        }
    }
    let gz = gzip(&good);
    case("cut-in-gzip-stream.pcap.gz", gz[..gz.len() * 2 / 3].to_vec(), Expect::Error { kind: "CorruptRecord", at: None, kept: None, bad: 1 });

    // ---- record lengths: snaplen 0 (libpcap: 262,144), caplen over the snaplen, over
    // 256 KiB, past the end of the file
    case("snaplen-0.pcap", pcap_bytes(1, true, false, 0, &mix_recs), read(17, 0, mix_flows));
    let long = mix_recs.iter().filter(|r| r.data.len() > 100).count() as u64;
    let first_long = mix_recs.iter().position(|r| r.data.len() > 100).unwrap() as u64;
    case("caplen-over-snaplen.pcap", pcap_bytes(1, true, false, 100, &mix_recs), error("CaplenOverSnaplen", first_long, 17 - long, long));
    let mut huge = mix_recs.clone();
    huge[5].data = vec![0; 300_000];
    huge[5].orig_len = 300_000;
    case("caplen-over-256KiB.pcap", pcap_bytes(1, true, false, 65535, &huge), error("CorruptRecord", 5, 5, 1));
    let mut past_end = good.clone();
    past_end[offsets[16] as usize + 8..offsets[16] as usize + 12].copy_from_slice(&5000u32.to_le_bytes());
    case("caplen-past-end.pcap", past_end, error("CorruptRecord", 16, 16, 1));

    // ---- pcapng blocks and interfaces
    case("unknown-block.pcapng", pcapng_bytes(&[(1, 0)], &one_iface(&mix_recs), true), read(17, 0, mix_flows));
    let alternate: Vec<(u32, Rec)> = mix_recs.iter().enumerate().map(|(i, r)| ((i % 2) as u32, r.clone())).collect();
    case("two-interfaces.pcapng", pcapng_bytes(&[(1, 0), (1, 0)], &alternate, true), read(17, 0, mix_flows));
    // libpcap presents one link type per file: the second interface's description is an
    // error at the first packet after it (here, the first packet)
    case("two-link-types.pcapng", pcapng_bytes(&[(1, 0), (101, 0)], &alternate, false), error("CorruptRecord", 0, 0, 1));
    case("snaplen-0.pcapng", pcapng_bytes(&[(1, 0)], &one_iface(&mix_recs), false), read(17, 0, mix_flows));

    // ---- frames: jumbo, IPv4 options, IPv6 extension chains, fragments, VLAN in VLAN, GRE
    let t = T0;
    case("jumbo-9000.pcap", pcap(&[(t, jumbo_udp4(9000)), (t + 1000, jumbo_udp4(9000))]), read(2, 0, (0, 1, 0)));
    case("jumbo-9000-snaplen-0.pcap", pcap_bytes(1, false, false, 0, &recs(&[(t, jumbo_udp4(9000))])), read(1, 0, (0, 1, 0)));
    let rr = [7, 7, 4, 0, 0, 0, 0, 1]; // record route with room for one address
    case("ipv4-options.pcap", pcap(&[(t, udp4_with_options(&[1, 1, 1, 0], 20)), (t + 1000, udp4_with_options(&rr, 20))]), read(2, 0, (0, 1, 0)));
    case("ipv4-options-40-bytes.pcap", pcap(&[(t, udp4_with_options(&[1; 40], 20))]), read(1, 0, (0, 1, 0)));
    case("ipv6-extension-chain.pcap", pcap(&[(t, udp6_behind_extensions(&[0, 43, 60], 20))]), read(1, 0, (0, 1, 0)));
    // hop-by-hop anywhere but first, or a long chain of one kind, is past what etherparse
    // walks: the packet is kept as IPv6 without ports (no-flow traffic), not dropped
    case("ipv6-hop-by-hop-not-first.pcap", pcap(&[(t, udp6_behind_extensions(&[60, 0], 20))]), read(1, 0, (0, 0, 1)));
    case("ipv6-extension-chain-of-12.pcap", pcap(&[(t, udp6_behind_extensions(&[60; 12], 20))]), read(1, 0, (0, 1, 0)));
    let mut frags = ipv4_fragments(42, 1400, t);
    let mut orphans = ipv4_fragments(43, 1400, t + 1_000_000);
    orphans.remove(0);
    frags.extend(orphans);
    case("ipv4-fragments.pcap", pcap(&frags), read(5, 0, (0, 1, 1)));
    case("ipv6-fragments.pcap", pcap(&ipv6_fragments(7, 600, t)), read(2, 0, (0, 1, 0)));
    case("ipv6-fragment-orphan.pcap", pcap(&ipv6_fragments(7, 600, t)[1..]), read(1, 0, (0, 0, 1)));
    case("vlan-in-vlan.pcap", pcap(&[(t, vlan_stacked(2, 20)), (t + 1000, vlan_stacked(3, 20))]), read(2, 0, (0, 1, 0)));
    // more than 8 tags is taken for garbage: a malformed frame, kept out of flows
    case("vlan-9-deep.pcap", pcap(&[(t, vlan_stacked(9, 20))]), read(1, 1, (0, 0, 0)));
    // GRE has no ports: no-flow traffic of its MAC pair; the inner packet is not decapsulated
    case("gre.pcap", pcap(&[(t, gre_over_ipv4(20)), (t + 1000, gre_over_ipv4(30))]), read(2, 0, (0, 0, 1)));

    // ---- non-IP only, malformed frames, timestamps going backwards
    let mut l2 = arp_exchange([10, 0, 0, 1], [10, 0, 0, 2], t);
    let mut lldp = vec![0x01, 0x80, 0xc2, 0, 0, 0x0e, 2, 0, 0, 0, 0, 1, 0x88, 0xcc];
    lldp.resize(60, 0);
    l2.push((t + 1_000_000, lldp));
    case("non-ip-only.pcap", pcap(&l2), read(3, 0, (0, 0, 3)));
    let mut bad = vec![(t, vec![1u8, 2, 3, 4, 5, 6, 7, 8])]; // shorter than Ethernet
    let mut cut_ip = mix[0].1[..14].to_vec();
    cut_ip.extend_from_slice(&[0x45, 0, 0]);
    bad.push((t + 1000, cut_ip));
    let mut v6_in_v4 = mix[0].1.clone();
    v6_in_v4[14] = 0x65;
    bad.push((t + 2000, v6_in_v4));
    bad.push((t + 3000, Vec::new())); // an empty record
    case("malformed-frames.pcap", pcap(&bad), read(4, 4, (0, 0, 0)));
    let mut back = mix_recs.clone();
    back[4].ts_ns -= 2_000_000_000;
    back[9].ts_ns -= 1_000_000;
    case("timestamps-backwards.pcap", pcap_bytes(1, true, false, 65535, &back), read(17, 0, mix_flows));
    // pcapng timestamps are 64 bits of ticks: past the year 2116 (i64::MAX / 2 ns) they are
    // held there
    let mut far = mix_recs.clone();
    far.iter_mut().enumerate().for_each(|(i, r)| r.ts_ns = i64::MIN + i as i64 * 1000); // as u64: 2^63 ns + …
    case("timestamps-past-2262.pcapng", pcapng_bytes(&[(1, 0)], &one_iface(&far), false), read(17, 0, mix_flows));
    // ticks of whole seconds: 2^63 s reads as the earliest time, 2^63 − 1 s as the latest, 5 s
    // as 1970, going backwards (the gap between the first two overflowed in the flow table).
    // The handshake's SYN and SYN-ACK lie 292 years apart: two connections, the second
    // mid-stream
    let mut ends = mix_recs[..3].to_vec();
    for (r, ticks) in ends.iter_mut().zip([1u64 << 63, (1 << 63) - 1, 5]) {
        r.ts_ns = ticks as i64;
    }
    let mut ends = pcapng_bytes(&[(1, 0)], &one_iface(&ends), false);
    pcapng_tsresol(&mut ends, 0);
    case("timestamps-at-both-ends.pcapng", ends, read(3, 0, (2, 0, 0)));

    cases.extend(fuzz_regressions());
    cases
}

/// Inputs that made a fuzz target fail (see `fuzz/README.md`), with the behaviour they must
/// have now.
pub fn fuzz_regressions() -> Vec<Case> {
    let mut cases = Vec::new();
    let mix = recs(&standard_mix());
    // pcap_differential: version 2.1278 was read by the native parser, refused by libpcap
    let mut v = pcap_bytes(1, false, false, 65535, &mix);
    v[6..8].copy_from_slice(&1278u16.to_le_bytes());
    cases.push(Case { name: "fuzz-version-2.1278.pcap".into(), bytes: v, expect: refused("BadHeader") });
    // pcap_differential: DG/UX tcpdump's version 543.0 has caplen and len in the pre-2.3 order
    // (len first); the native parser read them the other way round
    let mut cut = mix.clone();
    cut.iter_mut().for_each(|r| r.orig_len = r.data.len() as u32 + 100);
    let mut dgux = pcap_bytes(1, false, true, 65535, &cut);
    dgux[4..8].copy_from_slice(&[0x02, 0x1f, 0, 0]);
    for off in record_offsets(&cut) {
        let o = off as usize;
        let (caplen, len) = (dgux[o + 8..o + 12].to_vec(), dgux[o + 12..o + 16].to_vec());
        dgux[o + 8..o + 12].copy_from_slice(&len);
        dgux[o + 12..o + 16].copy_from_slice(&caplen);
    }
    cases.push(Case { name: "fuzz-dgux-543.0.pcap".into(), bytes: dgux, expect: read(17, 0, (1, 2, 0)) });
    cases
}

/// Reads `path` with `opts` on another thread: an endless loop fails the test instead of
/// hanging it.
fn read_with_deadline(path: &Path, opts: IngestOptions) -> Result<super::Run, IngestError> {
    let (tx, rx) = mpsc::channel();
    let path = path.to_path_buf();
    let path_name = path.display().to_string();
    std::thread::spawn(move || {
        let _ = tx.send(run_opts(&[path], &opts));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{}: no result within 60 s: an endless loop?", path_name),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{}: reading it panicked (above)", path_name),
    }
}

fn check(case: &Case, dir: &Path) -> Result<(), String> {
    let path = dir.join(&case.name);
    std::fs::write(&path, &case.bytes).unwrap();
    let strict = read_with_deadline(&path, IngestOptions { packet_features: true, ..Default::default() });
    let lenient = read_with_deadline(&path, IngestOptions { packet_features: true, skip_bad: true, ..Default::default() })
        .map_err(|e| format!("--skip-bad must not fail, got {e}"))?;
    let lenient = &lenient.report;
    let got = match (&case.expect, strict) {
        (Expect::Read { .. }, Ok(r)) => {
            let got = read(r.report.packets, r.report.malformed, kinds(&r.report));
            if (lenient.packets, lenient.bad_records) != (r.report.packets, 0) {
                return Err(format!("--skip-bad read {} packets and {} bad records", lenient.packets, lenient.bad_records));
            }
            got
        }
        (_, Ok(r)) => read(r.report.packets, r.report.malformed, kinds(&r.report)),
        (_, Err(IngestError::Capture(e))) => {
            let msg = e.to_string();
            if !msg.contains(&case.name) {
                return Err(format!("the error does not name the file: {msg}"));
            }
            let at = match &e {
                CaptureError::CorruptRecord { index, .. } | CaptureError::CaplenOverSnaplen { index, .. } => Some(*index),
                _ => None,
            };
            match case.expect {
                // where a cut gzip stream breaks depends on the compressor: "some packets,
                // then a clear error" is what is checked
                Expect::Error { at: None, kept: None, .. } => {
                    Expect::Error { kind: variant(&e), at: None, kept: None, bad: lenient.bad_records }
                }
                _ => Expect::Error { kind: variant(&e), at, kept: Some(lenient.packets), bad: lenient.bad_records },
            }
        }
    };
    if got == case.expect {
        Ok(())
    } else {
        Err(format!("expected {:?}, got {got:?}", case.expect))
    }
}

#[test]
fn every_bad_input_gives_its_documented_behaviour() {
    let s = Scratch::new();
    let cases = corpus();
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(why) = check(case, s.path()) {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases:\n{}", failures.len(), cases.len(), failures.join("\n"));
    // the table covers every kind of input the issue lists
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    for must in [
        "cut-at-record", "cut-in-header", "cut-in-data", "cut-at-block", "cut-in-block", "jpeg", "unknown-block",
        "two-link-types", "snaplen-0", "caplen-over-256KiB", "jumbo", "ipv4-options", "ipv6-extension-chain",
        "fragments", "vlan-in-vlan", "gre", "non-ip-only", "timestamps-backwards", "single-packet", "empty",
    ] {
        assert!(names.iter().any(|n| n.contains(must)), "no case for {must}");
    }
}
