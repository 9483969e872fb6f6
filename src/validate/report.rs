//! The checks `trafgen validate` makes, and the report that counts them.
//!
//! This module owns the list of checks ([`Check`], in the order reports show them), the
//! per-packet result of checking one frame ([`Findings`]: a bit set, no allocation) and the
//! [`ValidationReport`] that totals findings over files, keeps the first few examples and
//! renders itself as a text table or JSON. It does not look at packets (see [`super::packet`]
//! and [`super::tcp`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::ser::{SerializeMap, Serializer};

/// How many violations the report keeps as examples.
pub const MAX_EXAMPLES: usize = 10;

/// Exit status of `trafgen validate` when at least one violation was found.
pub const EXIT_VIOLATIONS: u8 = 3;

macro_rules! checks {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// One rule a captured frame or TCP flow can break. Names are stable: they are the
        /// JSON keys and the rows of the text table.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Check {
            $(#[doc = $doc] $variant,)*
        }

        impl Check {
            /// Every check, in report order.
            pub const ALL: &'static [Check] = &[$(Check::$variant,)*];

            /// The check's name (snake_case; the JSON key).
            pub fn name(self) -> &'static str {
                match self {
                    $(Check::$variant => $name,)*
                }
            }

            /// One line saying what the check flags.
            pub fn describe(self) -> &'static str {
                match self {
                    $(Check::$variant => $doc,)*
                }
            }
        }
    };
}

checks! {
    Ipv4HeaderChecksum => "ipv4_header_checksum", "IPv4 header checksum is wrong";
    TcpChecksum => "tcp_checksum", "TCP checksum (with the IPv4/IPv6 pseudo-header) is wrong";
    UdpChecksum => "udp_checksum", "UDP checksum is wrong (0 over IPv4 means none and is allowed)";
    UdpZeroChecksumIpv6 => "udp_zero_checksum_ipv6", "UDP over IPv6 with checksum 0 (mandatory in IPv6)";
    Icmpv4Checksum => "icmpv4_checksum", "ICMPv4 checksum is wrong";
    Icmpv6Checksum => "icmpv6_checksum", "ICMPv6 checksum (with the IPv6 pseudo-header) is wrong";
    IpLengthExceedsFrame => "ip_length_exceeds_frame", "IP total length is larger than the frame on the wire";
    IpLengthBelowHeader => "ip_length_below_header", "IPv4 total length is smaller than its own header (TSO captures write 0)";
    OversizeFrame => "oversize_frame", "Ethernet frame longer than 1514 bytes (+4 per VLAN tag)";
    MalformedShortLink => "malformed_short_link", "frame shorter than its link-layer header";
    MalformedBadIpHeader => "malformed_bad_ip_header", "IP header invalid or cut short";
    MalformedBadIpVersion => "malformed_bad_ip_version", "link layer says IP but the version nibble disagrees";
    MalformedBadTransport => "malformed_bad_transport", "TCP/UDP/ICMP header invalid or cut short";
    DataBeforeHandshake => "data_before_handshake", "payload after the SYN but before the handshake completed";
    SynAckWithoutSyn => "syn_ack_without_syn", "SYN-ACK with no SYN from the other side in the flow";
    BadSynAckAck => "bad_syn_ack_ack", "SYN-ACK whose ack is not the SYN's seq + 1";
    SeqGap => "seq_gap", "segment starts beyond the next expected seq: bytes missing";
    SeqRetransmissionOrOverlap => "seq_retransmission_or_overlap", "payload starting before the next expected seq";
    AckBeyondSent => "ack_beyond_sent", "ack covers bytes the other side never sent";
    DataAfterFin => "data_after_fin", "payload beyond this direction's FIN";
    PacketAfterRst => "packet_after_rst", "packet (other than a RST) after a RST in the flow";
    MissingAckFlag => "missing_ack_flag", "non-SYN, non-RST segment without ACK after the handshake";
}

impl Check {
    /// The check of a frame that `capture::decode` could not decode.
    pub fn malformed(m: crate::capture::Malformed) -> Check {
        use crate::capture::Malformed;
        match m {
            Malformed::ShortLink => Check::MalformedShortLink,
            Malformed::BadIpHeader => Check::MalformedBadIpHeader,
            Malformed::BadIpVersion => Check::MalformedBadIpVersion,
            Malformed::BadTransport => Check::MalformedBadTransport,
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

const _: () = assert!(Check::ALL.len() <= 32, "Findings is a u32 bit set");

/// What checking one packet found: the checks it broke (each at most once) and whether some
/// checks could not be made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    violations: u32,
    /// The IP packet was not captured whole (snaplen): its transport checksum was not verified.
    pub truncated: bool,
    /// An IP fragment: transport checksums cover the reassembled datagram, so not verified here.
    pub fragment: bool,
}

impl Findings {
    pub fn flag(&mut self, c: Check) {
        self.violations |= c.bit();
    }
    pub fn has(&self, c: Check) -> bool {
        self.violations & c.bit() != 0
    }
    pub fn is_clean(&self) -> bool {
        self.violations == 0
    }
    /// The checks broken, in report order.
    pub fn iter(&self) -> impl Iterator<Item = Check> + '_ {
        Check::ALL.iter().copied().filter(|c| self.has(*c))
    }
    /// Adds the findings of another pass over the same packet.
    pub fn merge(&mut self, other: Findings) {
        self.violations |= other.violations;
        self.truncated |= other.truncated;
        self.fragment |= other.fragment;
    }
}

/// One count per check, serialised as a JSON object keyed by check name in report order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckCounts([u64; 32]);

impl CheckCounts {
    pub fn get(&self, c: Check) -> u64 {
        self.0[c as usize]
    }
    /// The count of the check named `name` (`None` for an unknown name).
    pub fn by_name(&self, name: &str) -> Option<u64> {
        Check::ALL.iter().find(|c| c.name() == name).map(|c| self.get(*c))
    }
    /// (check, count) for every check, zeros included, in report order.
    pub fn iter(&self) -> impl Iterator<Item = (Check, u64)> + '_ {
        Check::ALL.iter().map(|c| (*c, self.get(*c)))
    }
    pub fn total(&self) -> u64 {
        self.iter().map(|(_, n)| n).sum()
    }
    fn add(&mut self, c: Check) {
        self.0[c as usize] += 1;
    }
}

impl serde::Serialize for CheckCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(Check::ALL.len()))?;
        for (c, n) in self.iter() {
            m.serialize_entry(c.name(), &n)?;
        }
        m.end()
    }
}

/// A violation, located for the user: which check, which file, which record (0-based:
/// packet #N is Wireshark's frame N+1).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Example {
    pub check: &'static str,
    pub file: PathBuf,
    pub packet: u64,
}

/// Totals of one file.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileValidation {
    pub path: PathBuf,
    pub packets: u64,
    /// Packets with at least one violation.
    pub packets_with_violations: u64,
    pub violations: u64,
}

/// The result of validating a list of captures.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ValidationReport {
    pub files: Vec<FileValidation>,
    /// Records checked.
    pub packets: u64,
    /// Flows (all kinds) and TCP flows the packets formed.
    pub flows: u64,
    pub tcp_flows: u64,
    /// Packets whose IP packet was not captured whole (snaplen), so their transport checksum
    /// was not verified, and truncated frames too short to decode. Not violations.
    pub unverifiable_truncated: u64,
    /// IP fragments, whose transport checksum was not verified. Not violations.
    pub unverifiable_fragment: u64,
    /// Every check, zeros included.
    pub checks: CheckCounts,
    pub violations_total: u64,
    /// The first [`MAX_EXAMPLES`] violations.
    pub first_examples: Vec<Example>,
}

impl ValidationReport {
    /// Counts the findings of packet `index` of `file` (the file last started).
    pub fn record(&mut self, file: &Path, index: u64, f: Findings) {
        self.packets += 1;
        self.unverifiable_truncated += u64::from(f.truncated);
        self.unverifiable_fragment += u64::from(f.fragment);
        let cur = self.files.last_mut();
        let mut n = 0;
        for c in f.iter() {
            self.checks.add(c);
            n += 1;
            if self.first_examples.len() < MAX_EXAMPLES {
                self.first_examples.push(Example { check: c.name(), file: file.to_path_buf(), packet: index });
            }
        }
        self.violations_total += n;
        if let Some(cur) = cur {
            cur.packets += 1;
            cur.violations += n;
            cur.packets_with_violations += u64::from(n > 0);
        }
    }

    pub fn start_file(&mut self, path: &Path) {
        self.files.push(FileValidation { path: path.to_path_buf(), ..FileValidation::default() });
    }

    /// 0 when clean, [`EXIT_VIOLATIONS`] when any check was broken.
    pub fn exit_code(&self) -> u8 {
        if self.violations_total == 0 { 0 } else { EXIT_VIOLATIONS }
    }

    /// The report as a table: files, totals, every check with its count, examples.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        for f in &self.files {
            let _ = writeln!(
                w,
                "file      {}  ({} packets, {} with violations)",
                f.path.display(),
                f.packets,
                f.packets_with_violations
            );
        }
        let _ = writeln!(w, "packets   {}", self.packets);
        let _ = writeln!(w, "flows     {}  (tcp {})", self.flows, self.tcp_flows);
        let _ = writeln!(
            w,
            "not verified (not violations): unverifiable_truncated {}  unverifiable_fragment {}",
            self.unverifiable_truncated, self.unverifiable_fragment
        );
        let width = Check::ALL.iter().map(|c| c.name().len()).max().unwrap_or(0).max("violations_total".len());
        let _ = writeln!(w, "\n{:<width$}  {:>10}", "check", "count");
        for (c, n) in self.checks.iter() {
            let _ = writeln!(w, "{:<width$}  {:>10}", c.name(), n);
        }
        let _ = writeln!(w, "{:<width$}  {:>10}", "violations_total", self.violations_total);
        if !self.first_examples.is_empty() {
            let _ = writeln!(w, "\nfirst violations (packet # is 0-based):");
            for e in &self.first_examples {
                let _ = writeln!(w, "  {:<width$}  {}  packet #{}", e.check, e.file.display(), e.packet);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_counts_serialise_in_order() {
        let mut names: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
        assert!(names.iter().all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')));
        let json = serde_json::to_string(&CheckCounts::default()).unwrap();
        let keys: Vec<&str> = json.trim_matches(|c| c == '{' || c == '}').split(',').map(|kv| kv.split(':').next().unwrap().trim_matches('"')).collect();
        assert_eq!(keys, names);
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Check::ALL.len());
    }

    #[test]
    fn record_counts_violations_and_keeps_ten_examples() {
        let mut r = ValidationReport::default();
        let p = Path::new("a.pcap");
        r.start_file(p);
        for i in 0..12 {
            let mut f = Findings::default();
            f.flag(Check::TcpChecksum);
            if i == 0 {
                f.flag(Check::SeqGap);
            }
            f.truncated = i == 3;
            r.record(p, i, f);
        }
        r.record(p, 12, Findings::default());
        assert_eq!((r.packets, r.violations_total, r.unverifiable_truncated), (13, 13, 1));
        assert_eq!(r.checks.get(Check::TcpChecksum), 12);
        assert_eq!(r.checks.by_name("seq_gap"), Some(1));
        assert_eq!(r.first_examples.len(), MAX_EXAMPLES);
        assert_eq!(r.first_examples[1], Example { check: "seq_gap", file: p.into(), packet: 0 });
        assert_eq!((r.files[0].packets, r.files[0].packets_with_violations, r.files[0].violations), (13, 12, 13));
        assert_eq!(r.exit_code(), EXIT_VIOLATIONS);
        let text = r.to_text();
        assert!(text.contains("ipv4_header_checksum") && text.contains("missing_ack_flag"), "{text}");
    }
}
