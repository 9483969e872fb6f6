//! TCP conversation checks: what a passive observer can tell is wrong in one flow.
//!
//! This module owns [`TcpTrack`], the per-flow extension the validator keeps in
//! [`crate::flow::FlowTable`]: per direction the initial sequence number (when its SYN was
//! seen), the next expected sequence number and the FIN's sequence number; per flow the
//! handshake progress and whether a RST was seen. It flags handshake faults, sequence gaps,
//! retransmissions/overlaps, acks of bytes never sent, data after FIN, packets after RST and
//! segments missing the ACK flag. Flows first seen mid-stream are tracked from their first
//! packet, without handshake checks. Sequence arithmetic is modulo 2^32 (RFC 793 §3.3); SYN
//! and FIN each take one sequence number. It does not look at checksums or lengths
//! (see [`super::packet`]); segment lengths come from the declared IP lengths, so frames cut
//! by a snaplen are tracked like whole ones.

use crate::capture::{Packet, TcpFlags};
use crate::flow::Direction;

use super::report::{Check, Findings};

/// `a` is after `b` in sequence space.
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// One direction of a TCP flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Side {
    /// `next` is meaningful: this side's SYN or (mid-stream) first segment was seen.
    tracking: bool,
    /// Initial sequence number, when this side's SYN or SYN-ACK was seen.
    isn: Option<u32>,
    /// The sequence number after the highest byte (SYN, FIN included) this side has sent.
    next: u32,
    /// Sequence number of this side's FIN.
    fin: Option<u32>,
    /// Tracking started mid-stream on an empty segment, which may have been a keep-alive
    /// (seq = next − 1): `next` may be one short until this side sends data or a FIN.
    tentative: bool,
}

impl Side {
    fn from_syn(seq: u32, payload: u32, fin: bool) -> Side {
        let data_start = seq.wrapping_add(1);
        Side {
            tracking: true,
            isn: Some(seq),
            next: data_start.wrapping_add(payload).wrapping_add(u32::from(fin)),
            fin: fin.then(|| data_start.wrapping_add(payload)),
            tentative: false,
        }
    }
}

/// Per-flow TCP state of the validator (the flow table's extension slot).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpTrack {
    /// Indexed by [`Direction`].
    side: [Side; 2],
    started: bool,
    /// The flow's first packet was neither SYN nor SYN-ACK: no handshake checks.
    mid_stream: bool,
    /// Direction of the SYN sender (the client), once a SYN was seen.
    syn_dir: Option<usize>,
    /// Direction of the SYN-ACK sender, once one was seen.
    syn_ack_dir: Option<usize>,
    established: bool,
    rst: bool,
}

impl TcpTrack {
    /// Checks one packet of the flow, sent in direction `dir`, and advances the state.
    /// Non-TCP packets and IP fragments are not checked (a fragment's length is not its
    /// segment's: the sender's sequence tracking restarts at its next packet).
    pub fn observe(&mut self, p: &Packet, dir: Direction) -> Findings {
        let mut f = Findings::default();
        let Some(t) = p.tcp() else { return f };
        let d = dir as usize;
        let o = 1 - d;
        if p.fragment.is_some() {
            self.side[d].tracking = false;
            return f;
        }
        let flags = t.flags;
        let (syn, ack, rst, fin) =
            (flags.has(TcpFlags::SYN), flags.has(TcpFlags::ACK), flags.has(TcpFlags::RST), flags.has(TcpFlags::FIN));
        let len = p.payload_len();
        if !self.started {
            self.started = true;
            self.mid_stream = !syn;
        }
        if self.rst && !rst {
            f.flag(Check::PacketAfterRst);
            return f;
        }

        if syn && !ack {
            let s = self.side[d];
            // a SYN with a new ISN where this side was already tracked, or after a flow seen
            // from the middle (a connection left open, then the 4-tuple opened afresh): a new
            // connection
            if (s.tracking && s.isn != Some(t.seq)) || self.mid_stream {
                *self = TcpTrack { started: true, ..TcpTrack::default() };
            }
            if self.side[d].isn != Some(t.seq) {
                self.side[d] = Side::from_syn(t.seq, len, fin);
            }
            self.syn_dir = Some(d);
            return f;
        }
        if syn {
            // SYN-ACK
            match self.syn_dir {
                Some(c) if c == o => {
                    let syn_seq = self.side[o].isn.unwrap_or(t.ack.wrapping_sub(1));
                    if t.ack != syn_seq.wrapping_add(1) {
                        f.flag(Check::BadSynAckAck);
                    }
                }
                _ => f.flag(Check::SynAckWithoutSyn),
            }
            if self.side[d].isn != Some(t.seq) {
                self.side[d] = Side::from_syn(t.seq, len, fin);
            }
            self.syn_ack_dir = Some(d);
            return f;
        }

        // Handshake progress: the client's ACK after the SYN-ACK completes it; any non-SYN,
        // non-RST packet of the server shows it considers the connection open (its SYN-ACK
        // may be missing from the capture), which ends a run of data_before_handshake.
        if !self.established && !self.mid_stream {
            let client = self.syn_dir.or(self.syn_ack_dir.map(|s| 1 - s));
            let by_client = client == Some(d) && ack && self.syn_ack_dir == Some(o);
            let by_server = client == Some(o) && !rst;
            if by_client || by_server {
                self.established = true;
            }
        }
        if len > 0 && self.syn_dir.is_some() && !self.established && !rst {
            f.flag(Check::DataBeforeHandshake);
        }
        if !ack && !rst && (self.established || self.mid_stream) {
            f.flag(Check::MissingAckFlag);
        }
        if rst {
            // RFC 793: a RST is validated by its sequence number alone; its ACK is not used
            self.rst = true;
            return f;
        }

        // Acks: only against a side whose ISN is known, so every byte it sent was seen.
        let other = self.side[o];
        if ack && other.isn.is_some() && other.tracking && seq_gt(t.ack, other.next) {
            f.flag(Check::AckBeyondSent);
        }

        // Sequence numbers of this direction.
        let seg_len = len + u32::from(fin);
        let end = t.seq.wrapping_add(seg_len);
        let s = &mut self.side[d];
        if !s.tracking {
            s.tracking = true;
            s.next = end;
            s.tentative = seg_len == 0;
        } else {
            let beyond_fin = s.fin.is_some_and(|fs| len > 0 && seq_gt(t.seq.wrapping_add(len), fs));
            // the first segment seen was a keep-alive: this is the real next seq
            let after_keepalive = s.tentative && t.seq == s.next.wrapping_add(1);
            // RFC 1122 §4.2.3.6 keep-alive: seq = next − 1 with no data or one garbage byte
            let keepalive = len <= 1 && !fin && t.seq == s.next.wrapping_sub(1);
            if beyond_fin {
                f.flag(Check::DataAfterFin);
            } else if seq_gt(t.seq, s.next) && !after_keepalive {
                f.flag(Check::SeqGap);
            } else if seq_lt(t.seq, s.next) && len > 0 && !keepalive {
                f.flag(Check::SeqRetransmissionOrOverlap);
            }
            if seq_gt(end, s.next) {
                s.next = end;
            }
            if seg_len > 0 || after_keepalive {
                s.tentative = false;
            }
        }
        if fin && s.fin.is_none() {
            s.fin = Some(t.seq.wrapping_add(len));
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{decode, LinkType};
    use crate::flow::{FlowConfig, FlowTable};
    use etherparse::PacketBuilder;

    /// Scripted segments of one connection between 10.0.0.1:40000 (client) and 10.0.0.2:80.
    struct Script {
        frames: Vec<Vec<u8>>,
    }

    impl Script {
        fn new() -> Script {
            Script { frames: Vec::new() }
        }
        /// `flags` in tcpdump letters (S F R P A); payload of `len` bytes.
        fn seg(&mut self, from_client: bool, seq: u32, ack: u32, flags: &str, len: usize) -> &mut Script {
            let b = if from_client {
                PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).tcp(40000, 80, seq, 1000)
            } else {
                PacketBuilder::ethernet2([4; 6], [2; 6]).ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64).tcp(80, 40000, seq, 1000)
            };
            let mut b = b;
            for c in flags.chars() {
                b = match c {
                    'S' => b.syn(),
                    'F' => b.fin(),
                    'R' => b.rst(),
                    'P' => b.psh(),
                    _ => b,
                };
            }
            let b = if flags.contains('A') { b.ack(ack) } else { b };
            let mut out = Vec::new();
            b.write(&mut out, &vec![0x61; len]).unwrap();
            self.frames.push(out);
            self
        }
        fn c(&mut self, seq: u32, ack: u32, flags: &str, len: usize) -> &mut Script {
            self.seg(true, seq, ack, flags, len)
        }
        fn s(&mut self, seq: u32, ack: u32, flags: &str, len: usize) -> &mut Script {
            self.seg(false, seq, ack, flags, len)
        }
        /// Runs the frames through a flow table and the TCP checks; counts per check name.
        fn run(&self) -> Vec<(&'static str, usize)> {
            let mut table: FlowTable<TcpTrack> = FlowTable::new(&FlowConfig::default());
            let mut counts = std::collections::BTreeMap::new();
            for (i, fr) in self.frames.iter().enumerate() {
                let p = decode(LinkType::Ethernet, i as u64, i as i64 * 1000, fr.len() as u32, fr);
                let (a, flow) = table.observe(&p, p.ts_ns);
                for c in flow.ext.observe(&p, a.direction).iter() {
                    *counts.entry(c.name()).or_insert(0) += 1;
                }
                table.drain_finished().for_each(drop);
            }
            counts.into_iter().collect()
        }
    }

    /// Handshake, one exchange, FIN teardown, with ISNs `c` and `s`.
    fn clean(c: u32, s: u32) -> Script {
        let mut x = Script::new();
        let (c1, s1) = (c.wrapping_add(1), s.wrapping_add(1));
        x.c(c, 0, "S", 0).s(s, c1, "SA", 0).c(c1, s1, "A", 0);
        x.c(c1, s1, "PA", 100).s(s1, c1.wrapping_add(100), "PA", 300);
        let (c2, s2) = (c1.wrapping_add(100), s1.wrapping_add(300));
        x.c(c2, s2, "FA", 0).s(s2, c2.wrapping_add(1), "FA", 0).c(c2.wrapping_add(1), s2.wrapping_add(1), "A", 0);
        x
    }

    #[test]
    fn clean_connections_pass_including_across_the_sequence_wrap() {
        for (c, s) in [(1000, 5000), (u32::MAX - 50, u32::MAX - 150), (u32::MAX, 0), (0x7fff_fff0, 0x8000_0000)] {
            assert_eq!(clean(c, s).run(), [], "{c} {s}");
        }
    }

    #[test]
    fn seq_comparisons_wrap() {
        assert!(seq_gt(5, u32::MAX - 5) && seq_lt(u32::MAX - 5, 5));
        assert!(!seq_gt(7, 7) && !seq_lt(7, 7));
    }

    #[test]
    fn handshake_faults() {
        // SYN-ACK acking the wrong number
        let mut x = Script::new();
        x.c(10, 0, "S", 0).s(90, 12, "SA", 0).c(11, 91, "A", 0);
        assert_eq!(x.run(), [("bad_syn_ack_ack", 1)]);
        // SYN-ACK with no SYN seen, then a normal exchange
        let mut x = Script::new();
        x.s(90, 11, "SA", 0).c(11, 91, "A", 0).c(11, 91, "PA", 5).s(91, 16, "A", 0);
        assert_eq!(x.run(), [("syn_ack_without_syn", 1)]);
        // the client sends data before the SYN-ACK
        let mut x = Script::new();
        x.c(10, 0, "S", 0).c(11, 91, "PA", 5).s(90, 11, "SA", 0).c(16, 91, "A", 0);
        assert_eq!(x.run(), [("data_before_handshake", 1)]);
        // the SYN-ACK missing from the capture: the client's data counts until the server
        // shows it is past the handshake
        let mut x = Script::new();
        x.c(10, 0, "S", 0).c(11, 91, "A", 0).c(11, 91, "PA", 5).c(16, 91, "PA", 5).s(91, 21, "A", 0).c(21, 91, "PA", 5);
        assert_eq!(x.run(), [("data_before_handshake", 2)]);
        // data on the handshake's third segment is fine
        let mut x = Script::new();
        x.c(10, 0, "S", 0).s(90, 11, "SA", 0).c(11, 91, "PA", 5).s(91, 16, "A", 0);
        assert_eq!(x.run(), []);
        // a retransmitted SYN is fine
        let mut x = Script::new();
        x.c(10, 0, "S", 0).c(10, 0, "S", 0).s(90, 11, "SA", 0).c(11, 91, "A", 0);
        assert_eq!(x.run(), []);
        // a connection seen from the middle (one server segment), left open, then the 4-tuple
        // opened afresh: a new connection, whose server data follows its handshake
        let mut x = Script::new();
        x.s(5000, 7000, "A", 10).c(10, 0, "S", 0).s(90, 11, "SA", 0).c(11, 91, "A", 0).s(91, 11, "PA", 50).c(11, 141, "A", 0);
        assert_eq!(x.run(), []);
    }

    #[test]
    fn sequence_faults() {
        let hs = |x: &mut Script| {
            x.c(10, 0, "S", 0).s(90, 11, "SA", 0).c(11, 91, "A", 0);
        };
        // 100 bytes from the server never captured: a gap, and the client acks them
        let mut x = Script::new();
        hs(&mut x);
        x.c(11, 91, "PA", 10).s(191, 21, "PA", 50).c(21, 241, "A", 0);
        assert_eq!(x.run(), [("seq_gap", 1)]);
        let mut x = Script::new();
        hs(&mut x);
        x.c(11, 91, "PA", 10).c(21, 191, "A", 0).s(191, 21, "PA", 50);
        assert_eq!(x.run(), [("ack_beyond_sent", 1), ("seq_gap", 1)]);
        // retransmission and partial overlap
        let mut x = Script::new();
        hs(&mut x);
        x.c(11, 91, "PA", 10).c(11, 91, "PA", 10).c(15, 91, "PA", 10).s(91, 25, "A", 0);
        assert_eq!(x.run(), [("seq_retransmission_or_overlap", 2)]);
        // a pure ACK with an old seq (reordering) is not a retransmission
        let mut x = Script::new();
        hs(&mut x);
        x.c(11, 91, "PA", 10).c(11, 91, "A", 0);
        assert_eq!(x.run(), []);
        // keep-alives (seq = next − 1, no data or one byte) are neither
        let mut x = Script::new();
        hs(&mut x);
        x.c(11, 91, "PA", 10).c(20, 91, "A", 0).c(20, 91, "A", 1).s(91, 21, "A", 0).c(21, 91, "PA", 5);
        assert_eq!(x.run(), []);
    }

    #[test]
    fn teardown_faults() {
        let hs = |x: &mut Script| {
            x.c(10, 0, "S", 0).s(90, 11, "SA", 0).c(11, 91, "A", 0);
        };
        // data after the client's FIN (at the next seq, and retransmitted FIN is fine)
        let mut x = Script::new();
        hs(&mut x);
        x.c(11, 91, "FA", 0).c(11, 91, "FA", 0).c(12, 91, "PA", 10).s(91, 12, "A", 0);
        assert_eq!(x.run(), [("data_after_fin", 1)]);
        // data retransmitted after FIN but below it is a retransmission, not data after FIN
        let mut x = Script::new();
        hs(&mut x);
        x.c(11, 91, "PA", 10).c(21, 91, "FA", 0).c(11, 91, "PA", 10).s(91, 22, "A", 0);
        assert_eq!(x.run(), [("seq_retransmission_or_overlap", 1)]);
        // packets after a RST; further RSTs are fine
        let mut x = Script::new();
        hs(&mut x);
        x.c(11, 91, "RA", 0).s(91, 11, "PA", 20).c(11, 0, "R", 0);
        assert_eq!(x.run(), [("packet_after_rst", 1)]);
        // a segment without ACK after the handshake
        let mut x = Script::new();
        hs(&mut x);
        x.c(11, 91, "P", 5).s(91, 16, "A", 0);
        assert_eq!(x.run(), [("missing_ack_flag", 1)]);
    }

    #[test]
    fn mid_stream_flows_are_tracked_from_their_first_packet() {
        let mut x = Script::new();
        x.s(500, 70, "PA", 100).c(70, 600, "A", 0).c(70, 600, "PA", 10).s(600, 80, "PA", 5);
        assert_eq!(x.run(), []);
        // … and still get sequence checks
        x.s(700, 80, "PA", 5).c(80, 705, "P", 0);
        assert_eq!(x.run(), [("missing_ack_flag", 1), ("seq_gap", 1)]);
        // a flow first seen at a keep-alive: its seq is one short of the real next seq
        let mut x = Script::new();
        x.c(69, 600, "A", 0).s(600, 70, "A", 0).c(69, 600, "A", 0).s(600, 70, "PA", 31).c(70, 631, "FA", 0);
        assert_eq!(x.run(), []);
        // … but only by one
        let mut x = Script::new();
        x.c(69, 600, "A", 0).s(600, 70, "PA", 31).c(71, 631, "FA", 0);
        assert_eq!(x.run(), [("seq_gap", 1)]);
    }

    #[test]
    fn a_new_syn_in_an_open_flow_starts_over() {
        let mut x = Script::new();
        x.c(10, 0, "S", 0).s(90, 11, "SA", 0).c(11, 91, "A", 0).c(11, 91, "PA", 10);
        x.c(7000, 0, "S", 0).s(9000, 7001, "SA", 0).c(7001, 9001, "A", 0).c(7001, 9001, "PA", 10);
        assert_eq!(x.run(), []);
    }
}
