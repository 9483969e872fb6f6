//! Validation: checks every frame of captures with our own parser and counts what is wrong.
//!
//! This module owns `trafgen validate`: it reads captures (any the [`crate::capture`] stage
//! reads, written by us or not), decodes each frame, groups frames into flows with
//! [`crate::flow::FlowTable`], and applies two kinds of checks — per frame ([`packet`]:
//! decodability, lengths, IPv4/TCP/UDP/ICMPv4/ICMPv6 checksums over the raw bytes) and per
//! TCP flow ([`tcp`]: handshake, sequence and ack numbers, FIN and RST) — totalling them in
//! a [`ValidationReport`] ([`report`]). It reports; it does not repair, and a violation never
//! stops it. Files it cannot read stop it with the capture stage's error, which names the file.
//!
//! Violations are counted per packet and check: a packet breaking two checks counts twice in
//! `violations_total`. Packets whose checks could not be made are counted apart (not as
//! violations): `unverifiable_truncated` (IP packet not captured whole) and
//! `unverifiable_fragment` (transport checksums of IP fragments).

pub mod checksum;
pub mod packet;
pub mod report;
pub mod tcp;

use std::path::{Path, PathBuf};

use crate::capture::{self, CaptureError, CaptureReader, LinkType};
use crate::flow::{FlowConfig, FlowKind, FlowTable};

pub use report::{Check, CheckCounts, Example, FileValidation, Findings, ValidationReport, EXIT_VIOLATIONS, MAX_EXAMPLES};
pub use tcp::TcpTrack;

/// What to do while validating.
#[derive(Clone, Debug, Default)]
pub struct ValidateOptions {
    /// Flow timeouts: a TCP flow idle longer than `tcp_idle_s` starts over mid-stream.
    pub flow: FlowConfig,
}

/// Errors that stop validation (violations never do).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

/// Validates `paths` in order; each file is its own capture (flows never span files).
pub fn validate(paths: &[PathBuf], opts: &ValidateOptions) -> Result<ValidationReport, ValidateError> {
    let mut v = Validator::new(opts);
    for path in paths {
        let mut reader = CaptureReader::open(path)?;
        v.start_file(path, reader.link_type());
        while let Some(rec) = reader.next_record()? {
            v.frame(rec.index, rec.ts_ns, rec.wire_len, rec.data);
        }
        v.end_file();
    }
    Ok(v.finish())
}

/// The validation loop over frames, for callers that have frames rather than files.
pub struct Validator {
    table: FlowTable<TcpTrack>,
    report: ValidationReport,
    path: PathBuf,
    link: LinkType,
    clock: i64,
}

impl Validator {
    pub fn new(opts: &ValidateOptions) -> Validator {
        Validator {
            table: FlowTable::new(&opts.flow),
            report: ValidationReport::default(),
            path: PathBuf::new(),
            link: LinkType::Ethernet,
            clock: i64::MIN,
        }
    }

    /// Starts a capture: frames that follow are of link type `link`.
    pub fn start_file(&mut self, path: &Path, link: LinkType) {
        self.path = path.to_path_buf();
        self.link = link;
        self.clock = i64::MIN;
        self.report.start_file(path);
    }

    /// Checks record `index` (`wire_len` bytes on the wire, `data` captured) and returns
    /// what it found (also counted in the report).
    pub fn frame(&mut self, index: u64, ts_ns: i64, wire_len: u32, data: &[u8]) -> Findings {
        let p = capture::decode(self.link, index, ts_ns, wire_len, data);
        let mut f = packet::check_frame(self.link, &p, data);
        // timestamps going backwards count as no time passing (as in ingestion)
        self.clock = self.clock.max(ts_ns);
        if p.malformed.is_none() {
            let (a, flow) = self.table.observe(&p, self.clock);
            if a.kind == FlowKind::Connected {
                f.merge(flow.ext.observe(&p, a.direction));
            }
            self.table.drain_finished().for_each(drop);
        }
        self.report.record(&self.path, index, f);
        f
    }

    /// Ends the current capture: its flows end with it.
    pub fn end_file(&mut self) {
        self.table.finish_all();
        self.table.drain_finished().for_each(drop);
    }

    /// The report over everything checked.
    pub fn finish(mut self) -> ValidationReport {
        self.end_file();
        let created = self.table.stats().created;
        self.report.flows = created.iter().sum();
        self.report.tcp_flows = created[FlowKind::Connected.index()];
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{self, Frame};
    use etherparse::PacketBuilder;

    const T0: i64 = 1_700_000_000 * 1_000_000_000;
    const C: [u8; 4] = [10, 0, 0, 1];
    const S: [u8; 4] = [10, 0, 0, 2];

    /// The fixture connection: 3 handshake + 3 × rounds + 4 teardown packets.
    fn conn(rounds: usize) -> Vec<Frame> {
        fixture::tcp_connection(C, S, 40000, 80, T0, rounds, 100, 1000)
    }

    /// Validates frames captured whole (caplen = wire length) or cut to `snaplen`.
    fn run_snap(frames: &[Frame], snaplen: usize) -> ValidationReport {
        let mut v = Validator::new(&ValidateOptions::default());
        v.start_file(Path::new("test.pcap"), LinkType::Ethernet);
        for (i, (t, f)) in frames.iter().enumerate() {
            v.frame(i as u64, *t, f.len() as u32, &f[..f.len().min(snaplen)]);
        }
        v.finish()
    }

    fn run(frames: &[Frame]) -> ValidationReport {
        run_snap(frames, usize::MAX)
    }

    /// Non-zero counters by name.
    fn nonzero(r: &ValidationReport) -> Vec<(&'static str, u64)> {
        r.checks.iter().filter(|(_, n)| *n > 0).map(|(c, n)| (c.name(), n)).collect()
    }

    /// A client segment of the fixture connection (same addresses), as the fixture builds them.
    fn client_segment(seq: u32, ack: u32, payload: usize, t: i64) -> Frame {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(C, S, 64)
            .tcp(40000, 80, seq, 64240)
            .psh()
            .ack(ack)
            .write(&mut out, &vec![0x62; payload])
            .unwrap();
        (t, out)
    }

    #[test]
    fn fixture_connections_and_the_demo_mix_have_no_violations() {
        for rounds in [0, 1, 2, 5] {
            let r = run(&conn(rounds));
            assert_eq!(nonzero(&r), [], "{rounds} rounds:\n{}", r.to_text());
            assert_eq!((r.packets, r.flows, r.tcp_flows), (7 + 3 * rounds as u64, 1, 1));
        }
        let mix = fixture::demo_mix(30, T0);
        let r = run(&mix);
        assert_eq!(nonzero(&r), [], "{}", r.to_text());
        assert_eq!(r.violations_total, 0);
        assert_eq!(r.exit_code(), 0);
        assert_eq!((r.packets, r.tcp_flows), (mix.len() as u64, 30));
        assert_eq!((r.unverifiable_truncated, r.unverifiable_fragment), (0, 0));
    }

    #[test]
    fn a_flipped_payload_byte_is_one_tcp_checksum_violation() {
        let mut f = conn(2);
        let last = f[3].1.len() - 1;
        f[3].1[last] ^= 0x01; // round 1, client request
        let r = run(&f);
        assert_eq!(nonzero(&r), [("tcp_checksum", 1)]);
        assert_eq!(r.first_examples, [Example { check: "tcp_checksum", file: "test.pcap".into(), packet: 3 }]);
        assert_eq!(r.exit_code(), EXIT_VIOLATIONS);
    }

    #[test]
    fn a_corrupt_ipv4_header_checksum_is_one_violation() {
        let mut f = conn(1);
        f[4].1[14 + 10] ^= 0xff;
        assert_eq!(nonzero(&run(&f)), [("ipv4_header_checksum", 1)]);
    }

    #[test]
    fn udp_without_checksum_over_ipv4_is_fine() {
        let mut f = fixture::udp_exchange(C, [10, 0, 0, 53], 50000, 53, T0, 30, 90);
        for (_, fr) in &mut f {
            fr[14 + 20 + 6..14 + 20 + 8].fill(0);
        }
        let r = run(&f);
        assert_eq!((r.violations_total, r.packets, r.flows), (0, 2, 1));
        // the same over IPv6 is a violation
        let mut f = fixture::udp6_exchange([0xfd; 16], [0xfe; 16], 5000, 53, T0, 20);
        f[0].1[14 + 40 + 6..14 + 40 + 8].fill(0);
        assert_eq!(nonzero(&run(&f)), [("udp_zero_checksum_ipv6", 1)]);
    }

    #[test]
    fn a_missing_segment_is_a_seq_gap() {
        let mut f = conn(2);
        f.remove(4); // round 1: the server's 1000-byte response
        let r = run(&f);
        assert_eq!(r.checks.get(Check::SeqGap), 1, "{}", r.to_text());
        // the client acks the missing bytes (once in round 1, once with its round-2 request)
        assert_eq!(nonzero(&r), [("seq_gap", 1), ("ack_beyond_sent", 2)]);
    }

    #[test]
    fn a_duplicated_data_segment_is_one_retransmission() {
        let mut f = conn(2);
        let dup = f[4].clone();
        f.insert(5, dup);
        assert_eq!(nonzero(&run(&f)), [("seq_retransmission_or_overlap", 1)]);
    }

    #[test]
    fn data_after_fin_is_one_violation() {
        let mut f = conn(1);
        // f[6] is the client's FIN at seq 1101 (1000 + 1 + 100): data at 1102 follows it
        let t = f[6].0 + 1;
        f.insert(7, client_segment(1102, 6001, 20, t));
        assert_eq!(nonzero(&run(&f)), [("data_after_fin", 1)]);
    }

    #[test]
    fn data_before_the_handshake_is_one_violation() {
        let mut f = conn(1);
        // the client's request moves before the server's SYN-ACK
        let req = f.remove(3);
        f.insert(1, req);
        assert_eq!(nonzero(&run(&f)), [("data_before_handshake", 1)]);
    }

    #[test]
    fn snaplen_truncation_is_unverifiable_not_a_checksum_violation() {
        let f = conn(2);
        let long = f.iter().filter(|(_, fr)| fr.len() > 96).count() as u64;
        assert_eq!(long, 4);
        let r = run_snap(&f, 96);
        assert_eq!(nonzero(&r), [], "{}", r.to_text());
        assert_eq!(r.unverifiable_truncated, long);
        // a corrupt byte beyond the snaplen cannot be seen; one inside the IP header can
        let mut g = f.clone();
        let last = g[4].1.len() - 1;
        g[4].1[last] ^= 1;
        g[3].1[14 + 8] ^= 1;
        let r = run_snap(&g, 96);
        assert_eq!(nonzero(&r), [("ipv4_header_checksum", 1)]);
    }

    #[test]
    fn captures_are_read_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.pcap");
        let bad = dir.path().join("bad.pcap");
        fixture::write_pcap(&good, conn(1)).unwrap();
        let mut f = conn(1);
        f[3].1[60] ^= 4;
        fixture::write_pcap(&bad, f).unwrap();
        let r = validate(&[good.clone(), bad.clone()], &ValidateOptions::default()).unwrap();
        assert_eq!((r.packets, r.flows, r.violations_total), (20, 2, 1));
        assert_eq!(r.files.iter().map(|f| f.violations).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(r.first_examples, [Example { check: "tcp_checksum", file: bad, packet: 3 }]);
        let missing = dir.path().join("missing.pcap");
        let e = validate(&[good, missing], &ValidateOptions::default()).unwrap_err();
        assert!(e.to_string().contains("missing.pcap"), "{e}");
    }

    /// Runs over real captures in `../shared/data/pcap` when present (or `TRAFGEN_DATA_DIR`):
    /// they must validate to the end; their counts are printed, not asserted (real traffic has
    /// retransmissions, capture loss and checksum offload).
    #[test]
    fn data_tier_validate_real_captures() {
        let root = std::env::var_os("TRAFGEN_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
        let names = ["zeek_http_bro.org_web.pcap", "tcpreplay_test_lan-2010.pcap"];
        let paths: Vec<PathBuf> = names.iter().map(|n| root.join("pcap").join(n)).filter(|p| p.exists()).collect();
        if paths.is_empty() {
            eprintln!("data tier skipped: no captures under {}", root.join("pcap").display());
            return;
        }
        let r = validate(&paths, &ValidateOptions::default()).unwrap();
        eprintln!("{}", r.to_text());
        assert_eq!(r.files.len(), paths.len());
        assert!(r.files.iter().all(|f| f.packets > 0));
        assert!(r.tcp_flows > 0);
        assert_eq!(r.violations_total, r.checks.total());
        assert_eq!(r.first_examples.len() as u64, r.violations_total.min(MAX_EXAMPLES as u64));
    }
}
