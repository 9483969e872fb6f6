//! Capture ingestion end to end (capture → flow → features → inspect), on fixtures made by
//! the tests: every link type, TCP/UDP/ICMP/IPv6/non-IP, fragments, pcap µs/ns, pcapng,
//! gzip, and each bad-input case (all of them in one table: `bad_input/mod.rs`). Counts are
//! exact. The `data_tier_*` test also runs over `../shared/data/pcap` when that folder exists.

mod bad_input;
mod support;

use std::path::PathBuf;

use support::*;
use trafgen::capture::{CaptureError, FileFormat, LinkType, Packet};
use trafgen::features::{App, FlowFeatures, PacketFeatures, Rolling};
use trafgen::flow::{Assignment, EndReason, Flow, FlowConfig, FlowKind};
use trafgen::ingest::{ingest, IngestError, IngestOptions, Observer};
use trafgen::inspect::{InspectReport, Summary};

#[derive(Default)]
struct Collect {
    summary: Summary,
    flows: Vec<FlowFeatures>,
    packets: Vec<PacketFeatures>,
    unassigned: u64,
}

impl Observer for Collect {
    fn file_start(&mut self, p: &std::path::Path, f: FileFormat, l: LinkType) {
        self.summary.file_start(p, f, l);
    }
    fn packet(&mut self, p: &Packet, a: Option<&Assignment>, f: Option<&PacketFeatures>) {
        self.summary.packet(p, a, f);
        if a.is_none() {
            self.unassigned += 1;
        }
        if let Some(f) = f {
            self.packets.push(*f);
        }
    }
    fn flow(&mut self, fl: &Flow<Rolling>, ff: &FlowFeatures) {
        self.summary.flow(fl, ff);
        self.flows.push(*ff);
    }
}

struct Run {
    report: InspectReport,
    flows: Vec<FlowFeatures>,
    packets: Vec<PacketFeatures>,
    unassigned: u64,
}

fn run_opts(paths: &[PathBuf], opts: &IngestOptions) -> Result<Run, IngestError> {
    let mut c = Collect::default();
    let rep = ingest(paths, opts, &mut c)?;
    Ok(Run { report: c.summary.report(&rep), flows: c.flows, packets: c.packets, unassigned: c.unassigned })
}

fn run(paths: &[PathBuf]) -> Run {
    run_opts(paths, &IngestOptions { packet_features: true, ..Default::default() }).expect("ingest")
}

fn capture_err(paths: &[PathBuf]) -> CaptureError {
    match run_opts(paths, &IngestOptions::default()) {
        Err(IngestError::Capture(e)) => e,
        Ok(_) => panic!("expected an error"),
    }
}

fn kinds(r: &InspectReport) -> (u64, u64, u64) {
    (r.flows.connected, r.flows.unconnected, r.flows.noflow)
}

// ---------------------------------------------------------------- link types and formats

#[test]
fn every_link_type_gives_the_same_packets_and_flows() {
    let s = Scratch::new();
    let frames = standard_mix();
    for link in [
        Link::Ethernet, Link::Vlan, Link::QinQ, Link::Raw(101), Link::Raw(12), Link::Raw(228), Link::Sll, Link::Sll2,
        Link::NullLe, Link::NullBe, Link::Loop,
    ] {
        let records: Vec<Rec> = frames
            .iter()
            .map(|(t, f)| {
                let d = link.wrap(f);
                Rec { ts_ns: *t, orig_len: d.len() as u32, data: d }
            })
            .collect();
        let p = s.write(&format!("{link:?}.pcap"), &pcap_bytes(link.dlt(), false, false, 65535, &records));
        let r = run(&[p]);
        assert_eq!(r.report.packets, 17, "{link:?}");
        assert_eq!(kinds(&r.report), (1, 2, 0), "{link:?}: tcp, udp + icmp echo");
        assert_eq!(r.report.malformed, 0, "{link:?}");
        let tcp = r.flows.iter().find(|f| f.kind == FlowKind::Connected).unwrap();
        assert_eq!((tcp.packets_fwd, tcp.packets_bwd), (8, 5), "{link:?}");
        assert_eq!((tcp.payload_fwd, tcp.payload_bwd), (200, 2000), "{link:?}");
        if matches!(link, Link::Vlan | Link::QinQ) {
            assert_eq!(r.report.vlan_packets, 17);
        }
    }
}

#[test]
fn ipv6_over_raw_links() {
    let s = Scratch::new();
    let mut c6 = [0u8; 16];
    c6[0] = 0xfd;
    c6[15] = 1;
    let mut s6 = c6;
    s6[15] = 2;
    let frames = udp6_exchange(c6, s6, 40000, 5353, T0, 100);
    for link in [Link::Raw(101), Link::Raw(229), Link::NullLe, Link::Loop, Link::Sll2] {
        let records: Vec<Rec> = frames.iter().map(|(t, f)| { let d = link.wrap(f); Rec { ts_ns: *t, orig_len: d.len() as u32, data: d } }).collect();
        let p = s.write("v6.pcap", &pcap_bytes(link.dlt(), true, true, 65535, &records));
        let r = run(&[p]);
        assert_eq!((r.report.packets, r.report.ipv6_packets), (2, 2), "{link:?}");
        assert_eq!(r.flows.len(), 1);
        assert_eq!((r.flows[0].ip_version, r.flows[0].app, r.flows[0].server_port), (6, App::Mdns, 5353));
    }
}

#[test]
fn unsupported_link_type_is_a_clear_error() {
    let s = Scratch::new();
    let p = s.write("wifi.pcap", &pcap_bytes(105, false, false, 65535, &recs(&standard_mix())));
    let e = capture_err(&[p.clone()]);
    assert!(matches!(e, CaptureError::UnsupportedLinkType { linktype: 105, .. }), "{e}");
    assert!(e.to_string().contains("wifi.pcap"));
}

#[test]
fn pcap_us_ns_big_endian_pcapng_and_gzip_agree() {
    let s = Scratch::new();
    let r = recs(&standard_mix());
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("us.pcap", pcap_bytes(1, false, false, 65535, &r)),
        ("ns.pcap", pcap_bytes(1, true, false, 65535, &r)),
        ("be.pcap", pcap_bytes(1, true, true, 65535, &r)),
        ("ng.pcapng", pcapng_bytes(&[(1, 0)], &r.iter().map(|x| (0, x.clone())).collect::<Vec<_>>(), true)),
        ("us.pcap.gz", gzip(&pcap_bytes(1, false, false, 65535, &r))),
        ("ng.pcapng.gz", gzip(&pcapng_bytes(&[(1, 0)], &r.iter().map(|x| (0, x.clone())).collect::<Vec<_>>(), false))),
    ];
    let mut baseline = None;
    for (name, bytes) in variants {
        let run = run(&[s.write(name, &bytes)]);
        assert_eq!(run.report.packets, 17, "{name}");
        let sig: Vec<(u64, u64, u64, u64)> = run.flows.iter().map(|f| (f.packets_fwd, f.packets_bwd, f.bytes_fwd, f.bytes_bwd)).collect();
        // ns and pcapng keep the nanoseconds; µs files are rounded to µs (all fixture times are whole µs)
        let times: Vec<i64> = run.packets.iter().map(|p| p.ts_ns).collect();
        let b = baseline.get_or_insert((sig.clone(), times.clone(), run.report.span_s));
        assert_eq!((&sig, &times), (&b.0, &b.1), "{name}");
        assert!(run.report.files[0].gzip == name.ends_with(".gz"));
    }
}

#[test]
fn pcapng_with_several_interfaces_of_one_link_type() {
    let s = Scratch::new();
    let r = recs(&standard_mix());
    let recs2: Vec<(u32, Rec)> = r.iter().enumerate().map(|(i, x)| ((i % 2) as u32, x.clone())).collect();
    let run = run(&[s.write("two.pcapng", &pcapng_bytes(&[(1, 0), (1, 0)], &recs2, true))]);
    assert_eq!(run.report.packets, 17);
    assert_eq!(kinds(&run.report), (1, 2, 0));
}

#[test]
fn pcapng_with_interfaces_of_different_link_types_is_an_error_not_a_panic() {
    // libpcap cannot present one link type for such a section; it must be a clear error.
    let s = Scratch::new();
    let r = recs(&standard_mix());
    let recs2: Vec<(u32, Rec)> = r.iter().enumerate().map(|(i, x)| ((i % 2) as u32, x.clone())).collect();
    let p = s.write("mixed.pcapng", &pcapng_bytes(&[(1, 0), (101, 0)], &recs2, false));
    match run_opts(&[p], &IngestOptions::default()) {
        Err(IngestError::Capture(e)) => assert!(e.to_string().contains("mixed.pcapng"), "{e}"),
        Ok(r) => assert!(r.report.packets <= 17),
    }
}

// ---------------------------------------------------------------- flows

#[test]
fn tcp_connection_lifecycle_and_features() {
    let s = Scratch::new();
    let p = s.write("tcp.pcap", &pcap_bytes(1, true, false, 65535, &recs(&standard_mix())));
    let r = run(&[p]);
    let tcp = r.flows.iter().find(|f| f.kind == FlowKind::Connected).unwrap();
    assert!(tcp.handshake && !tcp.mid_stream);
    assert_eq!(tcp.end, EndReason::Fin);
    assert_eq!((tcp.client_port, tcp.server_port, tcp.app), (40000, 80, App::Http));
    // S SA A | PA PA A | PA PA A | FA A FA A: client 8, server 5; sizes are IP total lengths
    assert_eq!(tcp.bytes_fwd, 8 * 40 + 200);
    assert_eq!(tcp.bytes_bwd, 5 * 40 + 2000);
    let pk: Vec<&PacketFeatures> = r.packets.iter().filter(|p| p.flow_id == tcp.flow_id).collect();
    assert_eq!(pk.len(), 13);
    let dirs: String = pk.iter().map(|p| char::from(b'0' + p.direction)).collect();
    assert_eq!(dirs, "0100100100110");
    assert_eq!(pk[0].tcp_flags, 0x02);
    assert_eq!(pk[1].tcp_flags, 0x12);
    assert_eq!(pk[0].time_diff_s, 0.0);
    assert_eq!(pk[0].log_time_diff, -7.0);
    assert!((pk[1].time_diff_s - 1e-4).abs() < 1e-12);
    assert!((pk[1].log_time_diff + 4.0).abs() < 1e-9);
    // all 13 packets fall within one second: rolling counts are the running count
    for (i, p) in pk.iter().enumerate() {
        assert_eq!(p.position, i as u64);
        assert_eq!(p.rate_pkts_1s, i as u64 + 1);
        assert_eq!(p.rate_pkts_60s, i as u64 + 1);
    }
    assert_eq!(pk.last().unwrap().rate_bytes_1s, tcp.bytes_fwd + tcp.bytes_bwd);
    // ICMP echo is port-based (id) unconnected traffic, DNS too
    let apps: Vec<App> = r.flows.iter().map(|f| f.app).collect();
    assert!(apps.contains(&App::Dns) && apps.contains(&App::Icmp));
    assert!(r.flows.windows(2).all(|w| w[0].start_ns <= w[1].start_ns || w[0].end != w[1].end));
}

#[test]
fn gap_since_previous_flow_start() {
    let s = Scratch::new();
    let r = run(&[s.write("m.pcap", &pcap_bytes(1, true, false, 65535, &recs(&standard_mix())))]);
    let mut by_start = r.flows.clone();
    by_start.sort_by_key(|f| f.start_ns);
    assert_eq!(by_start[0].gap_s, None);
    assert!((by_start[1].gap_s.unwrap() - 0.003).abs() < 1e-9, "{:?}", by_start[1]);
    assert!((by_start[2].gap_s.unwrap() - 0.001).abs() < 1e-9);
}

#[test]
fn mid_stream_tcp_and_port_reuse_after_close() {
    let s = Scratch::new();
    let conn = tcp_connection([10, 0, 0, 1], [10, 0, 0, 2], 40000, 443, T0, 3, 10, 10);
    // drop the handshake: the capture starts late
    let mut frames: Vec<Frame> = conn[3..].to_vec();
    // the same 5-tuple is reused 1 s later by a fresh connection
    frames.extend(tcp_connection([10, 0, 0, 1], [10, 0, 0, 2], 40000, 443, T0 + 1_000_000_000, 1, 10, 10));
    let r = run(&[s.write("mid.pcap", &pcap_bytes(1, true, false, 65535, &recs(&frames)))]);
    assert_eq!(r.report.flows.connected, 2);
    assert!(r.flows[0].mid_stream && !r.flows[0].handshake);
    assert_eq!(r.flows[0].server_port, 443, "server side found by port rank");
    assert!(!r.flows[1].mid_stream && r.flows[1].handshake);
    assert_eq!(r.flows[0].packets_fwd + r.flows[0].packets_bwd, conn.len() as u64 - 3);
}

#[test]
fn rst_ends_a_flow() {
    let s = Scratch::new();
    let mut f = tcp_connection([10, 0, 0, 1], [10, 0, 0, 2], 40001, 22, T0, 1, 10, 10);
    f.truncate(6);
    let mut rst = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
        .tcp(22, 40001, 9999, 0)
        .rst()
        .write(&mut rst, &[])
        .unwrap();
    f.push((T0 + 50_000_000, rst));
    let r = run(&[s.write("rst.pcap", &pcap_bytes(1, true, false, 65535, &recs(&f)))]);
    assert_eq!(r.flows.len(), 1);
    assert_eq!(r.flows[0].end, EndReason::Rst);
}

#[test]
fn udp_idle_timeout_splits_flows() {
    let s = Scratch::new();
    let mut f = udp_exchange([10, 0, 0, 1], [10, 0, 0, 53], 5000, 53, T0, 10, 10);
    f.extend(udp_exchange([10, 0, 0, 1], [10, 0, 0, 53], 5000, 53, T0 + 10_000_000_000, 10, 10));
    let p = s.write("idle.pcap", &pcap_bytes(1, true, false, 65535, &recs(&f)));
    let opts = |idle| IngestOptions { flow: FlowConfig { udp_idle_s: idle, ..Default::default() }, ..Default::default() };
    assert_eq!(run_opts(&[p.clone()], &opts(5.0)).unwrap().report.flows.unconnected, 2);
    assert_eq!(run_opts(&[p.clone()], &opts(60.0)).unwrap().report.flows.unconnected, 1);
    let r = run_opts(&[p], &opts(5.0)).unwrap();
    assert_eq!(r.flows[0].end, EndReason::Idle);
    assert_eq!(r.flows[1].end, EndReason::EndOfCapture);
}

#[test]
fn non_ip_frames_are_noflow_keyed_by_mac_pair() {
    let s = Scratch::new();
    let mut f = arp_exchange([10, 0, 0, 1], [10, 0, 0, 2], T0);
    f.extend(arp_exchange([10, 0, 0, 1], [10, 0, 0, 2], T0 + 1_000_000)); // same MAC pairs again
    let mut eapol = vec![0x01, 0x80, 0xc2, 0, 0, 3, 2, 0, 0, 0, 0, 1, 0x88, 0x8e, 1, 0, 0, 0];
    eapol.resize(60, 0);
    f.push((T0 + 2_000_000, eapol));
    let mut lldp = vec![0x01, 0x80, 0xc2, 0, 0, 0x0e, 2, 0, 0, 0, 0, 1, 0x88, 0xcc];
    lldp.resize(60, 0);
    f.push((T0 + 3_000_000, lldp));
    let r = run(&[s.write("l2.pcap", &pcap_bytes(1, true, false, 65535, &recs(&f)))]);
    assert_eq!(r.report.packets, 6);
    // (a, broadcast), (b, a), (1, eapol group), (1, lldp group)
    assert_eq!(kinds(&r.report), (0, 0, 4));
    assert_eq!(r.report.protocols.get("arp"), Some(&4));
    assert_eq!(r.report.protocols.get("eapol"), Some(&1));
    assert_eq!(r.report.protocols.get("lldp"), Some(&1));
    let apps: Vec<App> = r.flows.iter().map(|f| f.app).collect();
    assert_eq!(apps, vec![App::Arp, App::Arp, App::Eapol, App::Lldp]);
    assert_eq!(r.flows[0].packets_fwd + r.flows[0].packets_bwd, 2);
}

#[test]
fn ip_fragments_are_counted_and_attached_to_their_flow() {
    let s = Scratch::new();
    let mut f = ipv4_fragments(42, 1400, T0); // 1408 bytes of UDP → 3 fragments
    let mut orphan = ipv4_fragments(43, 1400, T0 + 1_000_000);
    orphan.remove(0); // first fragment lost: 2 orphans
    f.extend(orphan);
    let r = run(&[s.write("frag.pcap", &pcap_bytes(1, true, false, 65535, &recs(&f)))]);
    assert_eq!(r.report.packets, 5);
    assert_eq!(r.report.fragments, 5);
    assert_eq!(r.report.fragments_orphan, 2);
    let udp = r.flows.iter().find(|f| f.kind == FlowKind::Unconnected).unwrap();
    assert_eq!((udp.fragments, udp.packets_fwd, udp.server_port), (3, 3, 9000));
    assert_eq!(udp.bytes_fwd, 1408 + 3 * 20);
    assert_eq!(r.report.flows.noflow, 1, "orphans grouped by MAC pair");
}

#[test]
fn memory_stays_bounded_over_many_sequential_flows() {
    let s = Scratch::new();
    let mut f = Vec::new();
    for i in 0..3000u32 {
        let t = T0 + i64::from(i) * 10_000_000;
        f.extend(udp_exchange([10, 1, (i >> 8) as u8, i as u8], [10, 0, 0, 53], 40000, 53, t, 20, 20));
    }
    let p = s.write("many.pcap", &pcap_bytes(1, true, false, 65535, &recs(&f)));
    let opts = IngestOptions { flow: FlowConfig { udp_idle_s: 1.0, ..Default::default() }, ..Default::default() };
    let r = run_opts(&[p.clone()], &opts).unwrap();
    assert_eq!(r.report.flows.unconnected, 3000);
    assert!(r.report.peak_live_flows <= 150, "peak {}", r.report.peak_live_flows);
    // and a hard cap evicts instead of growing
    let capped = IngestOptions { flow: FlowConfig { max_flows: 100, ..Default::default() }, ..Default::default() };
    let r = run_opts(&[p], &capped).unwrap();
    assert!(r.report.peak_live_flows <= 100);
    assert!(r.report.flows_evicted > 2000);
    assert_eq!(r.report.flows.unconnected, 3000);
}

// ---------------------------------------------------------------- bad input

#[test]
fn empty_file_and_bad_magic() {
    let s = Scratch::new();
    let e = capture_err(&[s.write("empty.pcap", b"")]);
    assert!(matches!(e, CaptureError::Empty { .. }) && e.to_string().contains("empty.pcap"), "{e}");
    let e = capture_err(&[s.write("jpeg.pcap", b"\xff\xd8\xff\xe0 not a capture at all......")]);
    assert!(e.to_string().contains("magic number 0xffd8ffe0"), "{e}");
    let e = capture_err(&[s.write("short.pcap", &pcap_bytes(1, false, false, 65535, &[])[..10])]);
    assert!(matches!(e, CaptureError::TruncatedHeader { size: 10, .. }), "{e}");
    let e = capture_err(&[s.write("empty.gz", &gzip(b""))]);
    assert!(matches!(e, CaptureError::Empty { .. }), "{e}");
    let e = capture_err(&[s.write("missing-dir/none.pcap".replace('/', "_").as_str(), b"x")]);
    assert!(matches!(e, CaptureError::BadMagic { .. }), "{e}");
    let e = capture_err(&[s.path().join("does-not-exist.pcap")]);
    assert!(matches!(e, CaptureError::Open { .. }) && e.to_string().contains("does-not-exist.pcap"));
}

#[test]
fn header_only_capture_is_valid_and_empty() {
    let s = Scratch::new();
    let r = run(&[s.write("hdr.pcap", &pcap_bytes(1, false, false, 65535, &[]))]);
    assert_eq!((r.report.packets, r.report.flows.total, r.report.span_s), (0, 0, 0.0));
}

#[test]
fn truncation_at_every_record_boundary_and_inside_every_record() {
    let s = Scratch::new();
    let records = recs(&standard_mix());
    let bytes = pcap_bytes(1, true, false, 65535, &records);
    let offsets = record_offsets(&records);
    for (k, &off) in offsets.iter().enumerate() {
        // at a boundary: a valid capture of k packets
        let r = run(&[s.write("cut.pcap", &bytes[..off as usize])]);
        assert_eq!(r.report.packets, k as u64);
        // inside record k (its header, then its data): an error naming index and offset
        for cut in [off + 7, off + 16 + 3] {
            let p = s.write("cut.pcap", &bytes[..cut as usize]);
            match capture_err(&[p.clone()]) {
                CaptureError::CorruptRecord { index, offset, packets_read, ref msg, .. } => {
                    assert_eq!((index, offset, packets_read), (k as u64, Some(off), k as u64), "{msg}");
                }
                e => panic!("cut at {cut}: {e}"),
            }
            // --skip-bad keeps the k good packets and counts the bad record
            let r = run_opts(&[p], &IngestOptions { skip_bad: true, ..Default::default() }).unwrap();
            assert_eq!((r.report.packets, r.report.bad_records), (k as u64, 1));
        }
    }
}

#[test]
fn truncated_gzip_and_pcapng_are_errors_with_packet_counts() {
    let s = Scratch::new();
    let records = recs(&standard_mix());
    let gz = gzip(&pcap_bytes(1, true, false, 65535, &records));
    let e = capture_err(&[s.write("cut.pcap.gz", &gz[..gz.len() * 2 / 3])]);
    assert!(matches!(e, CaptureError::CorruptRecord { .. }), "{e}");
    assert!(e.to_string().contains("cut.pcap.gz") && e.to_string().contains("packets were read"), "{e}");
    let ng = pcapng_bytes(&[(1, 0)], &records.iter().map(|r| (0, r.clone())).collect::<Vec<_>>(), false);
    let e = capture_err(&[s.write("cut.pcapng", &ng[..ng.len() - 30])]);
    // pcapng: the position where libpcap found the damage, inside the last block
    let last_block = ng.len() as u64 - (12 + 20 + records[16].data.len().div_ceil(4) as u64 * 4);
    assert!(
        matches!(e, CaptureError::CorruptRecord { index: 16, packets_read: 16, offset: None, near: Some(n), .. } if n > last_block && n <= ng.len() as u64 - 30),
        "{e}"
    );
}

#[test]
fn caplen_beyond_snaplen_or_sane_limits() {
    let s = Scratch::new();
    let mut records = recs(&standard_mix());
    // a record longer than the file's snaplen (100): libpcap would silently cut it; we stop
    // with an error naming it, or skip just that record under --skip-bad
    let snap = s.write("snap.pcap", &pcap_bytes(1, true, false, 100, &records));
    let offsets = record_offsets(&records);
    let first_long = records.iter().position(|r| r.data.len() > 100).unwrap();
    match capture_err(&[snap.clone()]) {
        CaptureError::CaplenOverSnaplen { index, offset, caplen, snaplen, .. } => {
            assert_eq!((index, offset, caplen, snaplen), (first_long as u64, offsets[first_long], records[first_long].data.len() as u64, 100));
        }
        e => panic!("{e}"),
    }
    let long = records.iter().filter(|r| r.data.len() > 100).count() as u64;
    let r = run_opts(&[snap], &IngestOptions { skip_bad: true, ..Default::default() }).unwrap();
    assert_eq!((r.report.packets, r.report.bad_records), (17 - long, long));
    // a caplen past any sane maximum (> 256 KiB) is a corrupt record
    records[5].data = vec![0u8; 300_000];
    records[5].orig_len = 300_000;
    let e = capture_err(&[s.write("huge.pcap", &pcap_bytes(1, true, false, 65535, &records))]);
    assert!(matches!(e, CaptureError::CorruptRecord { index: 5, packets_read: 5, .. }), "{e}");
    // caplen larger than what is left in the file
    let mut bytes = pcap_bytes(1, true, false, 65535, &recs(&standard_mix()));
    let last = record_offsets(&recs(&standard_mix()))[16] as usize;
    bytes[last + 8..last + 12].copy_from_slice(&5000u32.to_le_bytes());
    let e = capture_err(&[s.write("over.pcap", &bytes)]);
    assert!(matches!(e, CaptureError::CorruptRecord { index: 16, .. }), "{e}");
}

#[test]
fn timestamps_going_backwards_are_counted_not_fatal() {
    let s = Scratch::new();
    let mut records = recs(&standard_mix());
    records[4].ts_ns -= 2_000_000_000;
    records[9].ts_ns -= 1_000_000;
    let r = run(&[s.write("back.pcap", &pcap_bytes(1, true, false, 65535, &records))]);
    assert_eq!(r.report.packets, 17);
    assert_eq!(r.report.ts_backwards, 2);
    assert_eq!(r.report.files[0].first_backwards_index, Some(4));
    // flow clocks never run backwards
    assert!(r.packets.iter().all(|p| p.time_diff_s >= 0.0));
}

#[test]
fn malformed_frames_are_counted_and_kept_out_of_flows() {
    let s = Scratch::new();
    let mut records = recs(&standard_mix());
    records.push(Rec { ts_ns: T0 + 9_000_000, orig_len: 8, data: vec![1, 2, 3, 4, 5, 6, 7, 8] }); // short link
    let mut badip = records[0].data[..14].to_vec();
    badip.extend_from_slice(&[0x45, 0, 0]); // IPv4 header cut at 3 bytes
    records.push(Rec { ts_ns: T0 + 9_500_000, orig_len: 60, data: badip });
    let mut v6as4 = records[0].data.clone();
    v6as4[14] = 0x65; // IPv4 EtherType, version 6
    records.push(Rec { ts_ns: T0 + 9_600_000, orig_len: v6as4.len() as u32, data: v6as4 });
    let r = run(&[s.write("bad.pcap", &pcap_bytes(1, true, false, 65535, &records))]);
    assert_eq!((r.report.packets, r.report.malformed, r.unassigned), (20, 3, 3));
    assert_eq!(kinds(&r.report), (1, 2, 0));
}

#[test]
fn max_packets_stops_early_across_files() {
    let s = Scratch::new();
    let p = s.write("a.pcap", &pcap_bytes(1, true, false, 65535, &recs(&standard_mix())));
    let r = run_opts(&[p.clone(), p], &IngestOptions { max_packets: Some(20), ..Default::default() }).unwrap();
    assert_eq!(r.report.packets, 20);
    assert_eq!(r.report.files.len(), 2);
}

// ---------------------------------------------------------------- the CLI

fn trafgen(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_trafgen")).args(args).output().expect("run trafgen")
}

#[test]
fn cli_inspect_json_and_features_csv() {
    let s = Scratch::new();
    let p = s.write("mix.pcap.gz", &gzip(&pcap_bytes(1, true, false, 65535, &recs(&standard_mix()))));
    let csv_dir = s.path().join("feat");
    let out = trafgen(&["inspect", "--json", "--features-csv", csv_dir.to_str().unwrap(), p.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["packets"], 17);
    assert_eq!(j["flows"]["connected"], 1);
    assert_eq!(j["flows"]["unconnected"], 2);
    assert_eq!(j["flows"]["noflow"], 0);
    // the TCP connection spans the capture: 0.2 + 2 × 6.1 + 1.3 ms
    assert!((j["span_s"].as_f64().unwrap() - 0.0137).abs() < 1e-9, "{}", j["span_s"]);
    let packets = std::fs::read_to_string(csv_dir.join("packets.csv")).unwrap();
    let flows = std::fs::read_to_string(csv_dir.join("flows.csv")).unwrap();
    assert_eq!(packets.lines().count(), 1 + 17);
    assert_eq!(flows.lines().count(), 1 + 3);
    assert!(flows.lines().any(|l| l.contains(",connected,4,6,http,40000,80,") && l.ends_with(",1,fin")), "{flows}");
}

#[test]
fn cli_bad_input_exits_nonzero_with_the_file_named_and_no_panic() {
    let s = Scratch::new();
    let records = recs(&standard_mix());
    let bytes = pcap_bytes(1, true, false, 65535, &records);
    let off = record_offsets(&records)[10];
    let cut = s.write("cut.pcap", &bytes[..off as usize + 20]);
    let out = trafgen(&["inspect", cut.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cut.pcap") && err.contains("packet #10") && err.contains(&format!("byte offset {off}")) && err.contains("10 packets were read"), "{err}");
    assert!(!err.contains("panicked"));
    let out = trafgen(&["inspect", "--skip-bad", "--json", cut.to_str().unwrap()]);
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((j["packets"].as_u64(), j["bad_records"].as_u64()), (Some(10), Some(1)));
    for (name, bytes) in [("empty.pcap", Vec::new()), ("magic.pcap", b"NOTAPCAP-----------------".to_vec())] {
        let p = s.write(name, &bytes);
        let out = trafgen(&["inspect", p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(name) && !err.contains("panicked"), "{err}");
    }
}

#[test]
fn cli_demo_generates_inspects_and_validates_its_own_capture() {
    let s = Scratch::new();
    let out = trafgen(&["demo", "--out", s.path().to_str().unwrap(), "--packets", "3000", "--seed", "5"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(3000 frames,") && text.contains("0 repairs"), "{text}");
    assert!(text.contains("packets   3000 "), "{text}");
    assert!(text.contains("validate  3000 packets") && text.contains(": 0 violations"), "{text}");
    // same seed, same bytes
    let first = std::fs::read(s.path().join("demo.pcap")).unwrap();
    let again = trafgen(&["demo", "--out", s.path().to_str().unwrap(), "--packets", "3000", "--seed", "5"]);
    assert!(again.status.success());
    assert_eq!(first, std::fs::read(s.path().join("demo.pcap")).unwrap());
}

#[test]
fn sigint_and_sigterm_during_generation_leave_a_valid_file() {
    for (sig, name) in [(libc::SIGTERM, "term"), (libc::SIGINT, "int")] {
        let s = Scratch::new();
        let dir = s.path().join(name);
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_trafgen"))
            .args(["demo", "--out", dir.to_str().unwrap(), "--packets", "100000000", "--format", "pcapng"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let file = dir.join("demo.pcapng");
        // wait until frames are being written
        let t = std::time::Instant::now();
        while std::fs::metadata(&file).map_or(0, |m| m.len()) < 4 << 20 {
            assert!(t.elapsed().as_secs() < 60, "demo never started writing");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        unsafe { libc::kill(child.id() as i32, sig) };
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{name}: {:?}", out.status);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("interrupted: every whole frame kept"), "{text}");
        let frames: u64 = text.split(" frames").next().unwrap().rsplit('(').next().unwrap().parse().unwrap();
        let r = run(&[file.clone()]);
        assert_eq!(r.report.packets, frames, "{name}");
        assert!(frames > 10_000);
        if std::process::Command::new("tshark").arg("-v").output().is_ok() {
            let t = std::process::Command::new("tshark").args(["-r", file.to_str().unwrap(), "-q"]).output().unwrap();
            let err = String::from_utf8_lossy(&t.stderr);
            assert!(t.status.success() && !err.contains("cut short") && !err.contains("rror"), "{err}");
        }
    }
}

#[test]
fn cli_train_writes_a_model_that_loads_and_a_clear_error_for_too_little_data() {
    let s = Scratch::new();
    let out = trafgen(&["demo", "--out", s.path().to_str().unwrap(), "--packets", "4000"]);
    assert!(out.status.success());
    let cap = s.path().join("demo.pcap");
    let model = s.path().join("model");
    let out = trafgen(&[
        "train", cap.to_str().unwrap(), "-o", model.to_str().unwrap(), "--epochs", "3", "--k-max", "6", "--device", "cpu",
        "--input-licence", &format!("{}=CC0-1.0", cap.display()),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("4000 packets") && text.contains("LSTM connected"), "{text}");
    let m = trafgen::model::Model::load(&model, tch::Device::Cpu).unwrap();
    assert_eq!(m.manifest.inputs[0].licence, "CC0-1.0");
    assert_eq!(m.manifest.command[0..2], ["trafgen".to_string(), "train".to_string()]);
    assert!(m.manifest.flow.kinds.contains(&"connected".to_string()));
    // a capture too small to learn from is an error, not a panic
    let tiny = s.write("tiny.pcap", &pcap_bytes(1, true, false, 65535, &recs(&standard_mix())));
    let out = trafgen(&["train", tiny.to_str().unwrap(), "-o", s.path().join("m2").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not enough data") && !err.contains("panicked"), "{err}");
}

#[test]
fn shipped_default_model_loads_and_samples_plausible_packets() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/default");
    let m = trafgen::model::Model::load(&dir, tch::Device::Cpu).expect("models/default");
    // trained only from permissively licensed captures, and says how to retrain
    assert!(m.manifest.inputs.iter().all(|i| i.licence.starts_with("BSD-3-Clause") || i.licence.starts_with("MIT")), "{:?}", m.manifest.inputs);
    assert!(m.manifest.inputs.iter().all(|i| !i.path.contains("caida") && !i.path.contains("wireshark")));
    assert_eq!(m.manifest.seed, 1);
    let size: u64 = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(size < 10 << 20, "{size} bytes");
    let mut rng = trafgen::rng::SplitMix64::new(1);
    let comps: Vec<usize> = (0..2000).map(|_| m.packet_gmm.draw_component(&mut rng)).collect();
    let pk = m.sample_packets(&comps, &mut rng);
    assert!(pk.iter().all(|p| p.size >= p.header_len && p.size <= 65_535));
    let median = { let mut s: Vec<u32> = pk.iter().map(|p| p.size).collect(); s.sort(); s[s.len() / 2] };
    assert!((40..=1500).contains(&median), "median size {median}");
    let flow = m.sample_flow_components(FlowKind::Connected, 200, &mut rng).unwrap();
    assert!(!flow.is_empty());
}

// ---------------------------------------------------------------- native parser vs libpcap

#[test]
fn native_pcap_parser_agrees_with_libpcap() {
    let s = Scratch::new();
    let records = recs(&standard_mix());
    let offsets = record_offsets(&records);
    let mut files = 0;
    for (linktype, nanos, big_endian) in
        [(1, false, false), (1, true, true), (101, false, true), (113, true, false), (276, false, false), (0, true, false), (108, false, false)]
    {
        for snaplen in [0, 65535, 100, 300_000] {
            let bytes = pcap_bytes(linktype, nanos, big_endian, snaplen, &records);
            let mut cuts = vec![bytes.len()];
            for &o in &offsets[1..] {
                cuts.extend([o as usize, o as usize + 5, o as usize + 16 + 2]);
            }
            for cut in cuts {
                let p = s.write("x.pcap", &bytes[..cut]);
                assert_parsers_agree(&p);
                files += 1;
                // Through a pipe libpcap cannot see that it cut a record to the snaplen (it
                // has no stream position to check); the native parser reports it. Compared
                // where no record is longer than the snaplen.
                if snaplen != 100 {
                    assert_parsers_agree(&s.write("x.pcap.gz", &gzip(&bytes[..cut])));
                    files += 1;
                }
            }
        }
    }
    // caplen past the 256 KiB maximum; caplen beyond the end of the file
    let mut bytes = pcap_bytes(1, false, false, 65535, &records);
    bytes[offsets[3] as usize + 8..offsets[3] as usize + 12].copy_from_slice(&300_000u32.to_le_bytes());
    assert_eq!(assert_parsers_agree(&s.write("huge.pcap", &bytes)), 4);
    let mut bytes = pcap_bytes(1, false, false, 65535, &records);
    bytes[offsets[16] as usize + 8..offsets[16] as usize + 12].copy_from_slice(&5000u32.to_le_bytes());
    assert_eq!(assert_parsers_agree(&s.write("over.pcap", &bytes)), 17);
    // format 2.2 (caplen and len swapped) and 2.3 (swapped only where caplen > len)
    for minor in [2u16, 3] {
        let mut bytes = pcap_bytes(1, false, false, 65535, &records);
        bytes[6..8].copy_from_slice(&minor.to_le_bytes());
        for &o in &offsets {
            let o = o as usize;
            let (c, l) = (bytes[o + 8..o + 12].to_vec(), bytes[o + 12..o + 16].to_vec());
            if minor == 2 || o % 3 == 0 {
                bytes[o + 8..o + 12].copy_from_slice(&l);
                bytes[o + 12..o + 16].copy_from_slice(&c);
            }
        }
        assert_parsers_agree(&s.write("old.pcap", &bytes));
    }
    // an unsupported link type and an archaic version are refused by both
    assert_parsers_agree(&s.write("dlt.pcap", &pcap_bytes(147, false, false, 65535, &records)));
    // versions past 2.4 (2.1278 came from the pcap_differential fuzz target) are refused by
    // both; DG/UX tcpdump's 543.0 (caplen and len in the pre-2.3 order, also a fuzz find) is
    // read alike by both: in order it is a file of 0-byte records, swapped the first record is
    // far too long
    for (major, minor) in [(1u16, 0u16), (2, 5), (2, 1278), (3, 0), (543, 0), (543, 1)] {
        let mut bytes = pcap_bytes(1, false, false, 65535, &records);
        bytes[4..6].copy_from_slice(&major.to_le_bytes());
        bytes[6..8].copy_from_slice(&minor.to_le_bytes());
        assert_parsers_agree(&s.write("version.pcap", &bytes));
    }
    let mut dgux = pcap_bytes(1, false, true, 65535, &[]);
    dgux[4..8].copy_from_slice(&[0x02, 0x1f, 0, 0]);
    dgux.extend_from_slice(&[0, 0, 0x10, 0x5e, 0x5f, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0]);
    assert_eq!(assert_parsers_agree(&s.write("dgux.pcap", &dgux)), 1, "one corrupt record");
    assert!(files > 400, "{files}");
}

// ---------------------------------------------------------------- data tier

/// Packet counts of `pcap/...` rows in `../shared/data/MANIFEST.md`.
fn manifest_counts(manifest: &str) -> Vec<(String, u64)> {
    manifest
        .lines()
        .filter(|l| l.starts_with("| `pcap/"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.trim_matches('`').to_string();
            // columns: file | origin | bytes | packets | ...
            let packets = cells.get(4)?.replace(',', "").parse().ok()?;
            Some((name, packets))
        })
        .collect()
}

#[test]
fn data_tier_inspect_every_shared_capture_matches_the_manifest() {
    let root = std::env::var_os("TRAFGEN_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let Ok(manifest) = std::fs::read_to_string(root.join("MANIFEST.md")) else {
        eprintln!("data tier skipped: {} not found", root.display());
        return;
    };
    let want = manifest_counts(&manifest);
    assert!(want.len() >= 15, "manifest parse found only {} rows", want.len());
    let mut checked = 0;
    for (name, packets) in want {
        let path = root.join(&name);
        if !path.exists() {
            eprintln!("data tier: {name} listed but absent");
            continue;
        }
        let r = run(&[path.clone()]);
        assert_eq!(r.report.packets, packets, "{name}");
        // the native classic-pcap parser reads every real capture exactly as libpcap does
        assert_parsers_agree(&path);
        assert_eq!(r.report.malformed + r.report.flows.total.min(1), r.report.malformed + 1, "{name}: no flows");
        assert_eq!(r.report.bad_records, 0, "{name}");
        checked += 1;
    }
    eprintln!("data tier: {checked} captures match MANIFEST.md");
    assert!(checked >= 15);
}

#[test]
fn data_tier_train_briefly_on_a_shared_capture() {
    let root = std::env::var_os("TRAFGEN_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let cap = root.join("pcap/zeek_http_bro.org_web.pcap");
    if !cap.exists() {
        eprintln!("data tier skipped: {} not found", cap.display());
        return;
    }
    let opts = trafgen::model::train::TrainOptions { epochs: 3, k_range: [2, 6], device: trafgen::torch::DeviceChoice::Cpu, ..Default::default() };
    let model = trafgen::model::train::train(&[cap.clone()], &opts, &mut |_| {}).unwrap();
    let m = &model.manifest;
    assert_eq!((m.training.packets, m.aggregate.flows.connected), (751, 13));
    let (sha, _) = trafgen::model::dataset::sha256_file(&cap).unwrap();
    assert_eq!(m.inputs[0].sha256, sha);
    assert!(m.training.vae_loss.train.last().unwrap() < &m.training.vae_loss.train[0]);
}

// ---------------------------------------------------------------- validate (CLI)

#[test]
fn cli_validate_json_clean_capture_exits_0_with_every_check_at_zero() {
    let s = Scratch::new();
    let p = s.write("clean.pcap", &pcap_bytes(1, true, false, 65535, &recs(&standard_mix())));
    let out = trafgen(&["validate", "--json", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((j["packets"].as_u64(), j["flows"].as_u64(), j["violations_total"].as_u64()), (Some(17), Some(3), Some(0)));
    let checks = j["checks"].as_object().unwrap();
    for name in ["ipv4_header_checksum", "tcp_checksum", "udp_checksum", "icmpv4_checksum", "seq_gap", "ack_beyond_sent", "packet_after_rst"] {
        assert_eq!(checks.get(name).and_then(|v| v.as_u64()), Some(0), "{name}");
    }
    assert!(checks.values().all(|v| v.as_u64() == Some(0)), "{checks:?}");
}

#[test]
fn cli_validate_corrupt_capture_exits_3_and_names_the_check_and_packet() {
    let s = Scratch::new();
    let mut frames = standard_mix();
    // packet 3 is the TCP connection's first request (100 payload bytes): flip its last byte
    assert_eq!(frames[3].1.len(), 14 + 20 + 20 + 100);
    *frames[3].1.last_mut().unwrap() ^= 0x01;
    let p = s.write("corrupt.pcap", &pcap_bytes(1, true, false, 65535, &recs(&frames)));
    let out = trafgen(&["validate", "--json", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["checks"]["tcp_checksum"], 1);
    assert_eq!(j["violations_total"], 1);
    assert_eq!(j["first_examples"][0]["check"], "tcp_checksum");
    assert_eq!(j["first_examples"][0]["packet"], 3);
    // the text table lists every check, zeros included
    let out = trafgen(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.split_whitespace().eq(["tcp_checksum", "1"])), "{text}");
    assert!(text.lines().any(|l| l.split_whitespace().eq(["seq_gap", "0"])), "{text}");
    assert!(text.lines().any(|l| l.split_whitespace().eq(["violations_total", "1"])), "{text}");
    // unreadable input: exit 1 naming the file; no file at all: usage error, exit 2
    let missing = s.path().join("missing.pcap");
    let out = trafgen(&["validate", missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("missing.pcap") && !err.contains("panicked"), "{err}");
    assert_eq!(trafgen(&["validate"]).status.code(), Some(2));
}
