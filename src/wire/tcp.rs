//! Per-flow TCP state for generated connections: what a real stack would send next.
//!
//! The generator says "a packet of this size, these flags, this direction"; this module turns
//! that into a segment a real TCP could have sent: the 3-way handshake first, unless the
//! flow's first record carries no SYN (a flow seen from the middle, sent without options) (SYN options
//! chosen to match the SYN's size: none, MSS, MSS+WS, Windows-style with SACK, Linux-style with
//! SACK and timestamps), then seq/ack that advance by the payload actually sent, the ACK flag on
//! everything after the SYN, timestamps with a monotonic 1 kHz TSval when negotiated, FIN or
//! RST teardown. Where the record conflicts with TCP, it is repaired deterministically and the
//! repair is counted in [`Repairs`].

use super::emit::syn_options;

/// Largest IP total length.
pub const MAX_IP_SIZE: usize = 65_535;

/// How many records had to be changed to stay valid, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Repairs {
    /// A handshake step (SYN, SYN-ACK, ACK) replaced what the record asked for.
    pub handshake_forced: u64,
    /// The SYN/SYN-ACK size did not match an option layout; the nearest was used.
    pub syn_size_adjusted: u64,
    /// Size below the headers: raised to the header size.
    pub size_raised: u64,
    /// Size above the MTU (UDP, ICMP) or above IP's 65,535 bytes (TCP): clamped. A TCP
    /// segment above the MTU is not a conflict: it is split ([`crate::wire::WireStats::segmented`]).
    pub size_clamped_mtu: u64,
    /// Payload in a direction that had sent its FIN: sent as a pure ACK.
    pub data_after_fin: u64,
    /// Flags no state allows (SYN after the handshake, URG, ECE/CWR without ECN, a second
    /// FIN, RST+FIN) were removed.
    pub flags_removed: u64,
    /// Records of a flow after its RST: dropped.
    pub dropped_after_rst: u64,
    /// ICMP echo reply before any request: sent as a request.
    pub reply_before_request: u64,
    /// Sizes that do not exist for the protocol (ARP): the protocol's size was used.
    pub size_fixed_by_protocol: u64,
}

impl Repairs {
    pub fn total(&self) -> u64 {
        self.handshake_forced
            + self.syn_size_adjusted
            + self.size_raised
            + self.size_clamped_mtu
            + self.data_after_fin
            + self.flags_removed
            + self.dropped_after_rst
            + self.reply_before_request
            + self.size_fixed_by_protocol
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    New,
    SynSent,
    SynReceived,
    Established,
    Reset,
}

/// One side's numbers. Index 0 = client, 1 = server.
#[derive(Clone, Copy, Debug, Default)]
struct Side {
    isn: u32,
    /// Next sequence number this side sends.
    nxt: u32,
    fin: bool,
    ts_base: u32,
    /// Last TSval this side sent (TSecr of the other side).
    ts_last: u32,
    window: u16,
}

/// A segment to emit.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub from_client: bool,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub options: [u8; 20],
    pub options_len: usize,
    pub payload_len: usize,
}

/// The TCP state of one generated connection.
#[derive(Clone, Debug)]
pub struct TcpConn {
    stage: Stage,
    side: [Side; 2],
    start_ns: i64,
    syn_len: usize,
    sack: bool,
    ts: bool,
    mss: u16,
    wscale: u8,
}

const WSCALE: u8 = 7;

impl TcpConn {
    /// A connection whose ISNs and timestamp bases come from `r` (the flow's seeded stream).
    pub fn new(start_ns: i64, mss: u16, r: &mut crate::rng::SplitMix64) -> TcpConn {
        let mut side = [Side::default(); 2];
        for (i, s) in side.iter_mut().enumerate() {
            s.isn = r.next_u32();
            s.nxt = s.isn;
            s.ts_base = r.next_u32() >> 1;
            // 64 KiB-ish windows, advertised scaled by 2^7 after the handshake
            s.window = if i == 0 { 64240 } else { 65160 };
        }
        TcpConn { stage: Stage::New, side, start_ns, syn_len: 0, sack: false, ts: false, mss, wscale: WSCALE }
    }

    /// This connection seen from the middle carries timestamps on its segments (negotiated in
    /// a SYN the stream does not show): each side's clock as if it had sent before. A SYN that
    /// does come first chooses its options afresh.
    pub fn with_timestamps(mut self) -> TcpConn {
        self.ts = true;
        for s in &mut self.side {
            s.ts_last = s.ts_base;
        }
        self
    }

    pub fn is_reset(&self) -> bool {
        self.stage == Stage::Reset
    }

    /// Established, and neither side closed or reset it: a later flow on the same 4-tuple seen
    /// from the middle may continue it.
    pub fn is_open(&self) -> bool {
        self.stage == Stage::Established && !self.side[0].fin && !self.side[1].fin
    }

    /// Both directions sent their FIN.
    pub fn is_closed(&self) -> bool {
        self.side[0].fin && self.side[1].fin
    }

    /// Length of the TCP options on a data segment (timestamps when negotiated).
    fn data_options_len(&self) -> usize {
        if self.ts { 12 } else { 0 }
    }

    /// The next segment for a record: `from_client`, wanted `flags`, wanted IP total length
    /// `size` with an IP header of `ip_hdr` bytes; `None` when the record must be dropped
    /// (after a RST). The segment may be above the MTU: the frame stage splits it as a NIC's
    /// segmentation offload does ([`crate::wire::FrameBuilder::build`]).
    pub fn next(&mut self, from_client: bool, flags: u16, size: usize, ip_hdr: usize, now_ns: i64, rep: &mut Repairs) -> Option<Segment> {
        let size = if size > MAX_IP_SIZE {
            rep.size_clamped_mtu += 1;
            MAX_IP_SIZE
        } else {
            size
        };
        let f = flags as u8;
        match self.stage {
            Stage::Reset => {
                rep.dropped_after_rst += 1;
                None
            }
            Stage::New if f & 0x02 == 0 => {
                // a flow seen from the middle (a TCP flow the model starts mid-stream, or one
                // in progress when a warm-started stream begins): no handshake is made up; no
                // options are known to be negotiated, so segments carry none
                self.stage = Stage::Established;
                self.next(from_client, flags, size, ip_hdr, now_ns, rep)
            }
            Stage::New => {
                if !(from_client && f & 0x12 == 0x02) {
                    rep.handshake_forced += 1;
                }
                // choose the SYN's options from the size the model asked for
                let want = size.saturating_sub(ip_hdr + 20);
                let len = syn_options::LENGTHS.iter().copied().filter(|&l| l <= want).max().unwrap_or(0);
                if len != want {
                    rep.syn_size_adjusted += 1;
                }
                self.syn_len = len;
                let (_, sack, ts) = syn_options::layout(len, self.mss, self.wscale);
                self.sack = sack;
                self.ts = ts;
                self.stage = Stage::SynSent;
                Some(self.control(true, 0x02, now_ns))
            }
            Stage::SynSent if from_client && f & 0x12 == 0x02 => {
                // the SYN again (nobody answered): the same segment, its timestamp renewed
                Some(self.control(true, 0x02, now_ns))
            }
            Stage::SynSent => {
                if !(!from_client && f & 0x12 == 0x12) {
                    rep.handshake_forced += 1;
                }
                if size != ip_hdr + 20 + self.syn_len {
                    rep.syn_size_adjusted += 1;
                }
                self.stage = Stage::SynReceived;
                Some(self.control(false, 0x12, now_ns))
            }
            Stage::SynReceived => {
                // the client's ACK; it may carry data (the third segment may)
                if !from_client || f & 0x07 != 0 {
                    rep.handshake_forced += 1;
                }
                self.stage = Stage::Established;
                let payload = if from_client { self.payload_for(size, ip_hdr, rep) } else { 0 };
                let fl = if payload > 0 { 0x18 } else { 0x10 };
                Some(self.data(true, fl, payload, now_ns))
            }
            Stage::Established => {
                let d = usize::from(!from_client);
                let mut fl = f;
                if fl & 0x02 != 0 || fl & 0x20 != 0 || fl & 0xc0 != 0 {
                    rep.flags_removed += 1;
                    fl &= !(0x02 | 0x20 | 0xc0);
                }
                if fl & 0x04 != 0 {
                    if fl & 0x01 != 0 {
                        rep.flags_removed += 1;
                    }
                    if size < ip_hdr + 20 + self.data_options_len() {
                        rep.size_raised += 1;
                    }
                    let seg = self.data(from_client, 0x14, 0, now_ns);
                    self.stage = Stage::Reset;
                    return Some(seg);
                }
                if fl & 0x01 != 0 && self.side[d].fin {
                    rep.flags_removed += 1;
                    fl &= !0x01;
                }
                let mut payload = self.payload_for(size, ip_hdr, rep);
                if self.side[d].fin && payload > 0 {
                    rep.data_after_fin += 1;
                    payload = 0;
                }
                fl |= 0x10;
                if payload == 0 {
                    fl &= !0x08;
                }
                Some(self.data(from_client, fl, payload, now_ns))
            }
        }
    }

    fn payload_for(&self, size: usize, ip_hdr: usize, rep: &mut Repairs) -> usize {
        let hdr = ip_hdr + 20 + self.data_options_len();
        if size < hdr {
            rep.size_raised += 1;
            0
        } else {
            size - hdr
        }
    }

    fn tsval(&self, side: usize, now_ns: i64) -> u32 {
        let ms = ((now_ns - self.start_ns).max(0) / 1_000_000) as u32;
        self.side[side].ts_base.wrapping_add(ms)
    }

    /// SYN or SYN-ACK.
    fn control(&mut self, from_client: bool, flags: u8, now_ns: i64) -> Segment {
        let (me, peer) = if from_client { (0, 1) } else { (1, 0) };
        let (mut options, _, _) = syn_options::layout(self.syn_len, self.mss, self.wscale);
        let tsval = self.tsval(me, now_ns);
        if self.ts {
            let o = syn_options::TS_OFFSET;
            options[o..o + 4].copy_from_slice(&tsval.to_be_bytes());
            let ecr = if from_client { 0 } else { self.side[peer].ts_last };
            options[o + 4..o + 8].copy_from_slice(&ecr.to_be_bytes());
            self.side[me].ts_last = tsval;
        }
        let seq = self.side[me].isn;
        self.side[me].nxt = seq.wrapping_add(1);
        let ack = if from_client { 0 } else { self.side[peer].nxt };
        Segment {
            from_client,
            seq,
            ack,
            flags,
            window: self.side[me].window,
            options,
            options_len: self.syn_len,
            payload_len: 0,
        }
    }

    /// A segment after the handshake.
    fn data(&mut self, from_client: bool, flags: u8, payload_len: usize, now_ns: i64) -> Segment {
        let (me, peer) = if from_client { (0, 1) } else { (1, 0) };
        let mut options = [0u8; 20];
        let mut options_len = 0;
        if self.ts {
            let tsval = self.tsval(me, now_ns);
            options[..4].copy_from_slice(&[1, 1, 8, 10]);
            options[4..8].copy_from_slice(&tsval.to_be_bytes());
            options[8..12].copy_from_slice(&self.side[peer].ts_last.to_be_bytes());
            options_len = 12;
            self.side[me].ts_last = tsval;
        }
        let seq = self.side[me].nxt;
        let ack = self.side[peer].nxt;
        let fin = flags & 0x01 != 0;
        self.side[me].nxt = seq.wrapping_add(payload_len as u32).wrapping_add(u32::from(fin));
        if fin {
            self.side[me].fin = true;
        }
        let scale = if self.syn_len >= 8 { self.wscale } else { 0 };
        Segment {
            from_client,
            seq,
            ack,
            flags,
            window: self.side[me].window >> scale,
            options,
            options_len,
            payload_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn conn() -> TcpConn {
        TcpConn::new(0, 1460, &mut SplitMix64::new(9))
    }

    #[test]
    fn handshake_then_data_then_fin() {
        let mut c = conn();
        let mut rep = Repairs::default();
        let syn = c.next(true, 0x02, 60, 20, 0, &mut rep).unwrap();
        let sa = c.next(false, 0x12, 60, 20, 1_000_000, &mut rep).unwrap();
        let ack = c.next(true, 0x10, 52, 20, 2_000_000, &mut rep).unwrap();
        let d1 = c.next(true, 0x18, 152, 20, 3_000_000, &mut rep).unwrap();
        let d2 = c.next(false, 0x18, 1052, 20, 4_000_000, &mut rep).unwrap();
        let fin = c.next(true, 0x11, 52, 20, 5_000_000, &mut rep).unwrap();
        assert_eq!(rep, Repairs::default());
        assert_eq!((syn.options_len, sa.options_len, ack.options_len), (20, 20, 12));
        assert_eq!(sa.ack, syn.seq.wrapping_add(1));
        assert_eq!((ack.seq, ack.ack), (syn.seq.wrapping_add(1), sa.seq.wrapping_add(1)));
        assert_eq!(d1.payload_len, 100);
        assert_eq!(d2.ack, d1.seq.wrapping_add(100));
        assert_eq!(d2.payload_len, 1000);
        assert_eq!(fin.seq, d1.seq.wrapping_add(100));
        assert_eq!(fin.ack, d2.seq.wrapping_add(1000));
        // TSval is monotonic, TSecr echoes the peer
        let tsval = |s: &Segment, o: usize| u32::from_be_bytes(s.options[o..o + 4].try_into().unwrap());
        assert!(tsval(&d1, 4) > tsval(&ack, 4));
        assert_eq!(tsval(&d2, 8), tsval(&d1, 4));
    }

    #[test]
    fn a_flow_seen_from_the_middle_gets_no_handshake() {
        let mut c = conn();
        let mut rep = Repairs::default();
        // the server's data first: sent as it is, with sequence numbers from the ISNs
        let a = c.next(false, 0x18, 540, 20, 0, &mut rep).unwrap();
        assert_eq!((a.from_client, a.flags, a.payload_len, a.options_len), (false, 0x18, 500, 0));
        let b = c.next(true, 0x10, 40, 20, 1, &mut rep).unwrap();
        assert_eq!((b.flags, b.payload_len), (0x10, 0));
        assert_eq!(b.ack, a.seq.wrapping_add(500), "the client acknowledges the server's bytes");
        let f = c.next(true, 0x11, 40, 20, 2, &mut rep).unwrap();
        assert_eq!((f.flags, f.seq), (0x11, b.seq));
        assert_eq!(rep, Repairs::default(), "nothing repaired");
    }

    #[test]
    fn conflicts_are_repaired_and_counted() {
        let mut c = conn();
        let mut rep = Repairs::default();
        // a SYN-ACK first: forced into SYN, SYN-ACK, ACK
        let a = c.next(false, 0x12, 500, 20, 0, &mut rep).unwrap();
        assert_eq!(a.flags, 0x02);
        assert!(a.from_client);
        let b = c.next(true, 0x18, 500, 20, 1, &mut rep).unwrap();
        assert_eq!((b.flags, b.from_client), (0x12, false));
        assert_eq!(rep.handshake_forced, 2);
        c.next(true, 0x10, 40, 20, 2, &mut rep).unwrap();
        // FIN from the client, then client data: sent as a pure ACK
        c.next(true, 0x11, 40, 20, 3, &mut rep).unwrap();
        let after = c.next(true, 0x18, 400, 20, 4, &mut rep).unwrap();
        assert_eq!((after.payload_len, after.flags), (0, 0x10));
        assert_eq!(rep.data_after_fin, 1);
        // server may still send (half close), then RST ends everything
        let s = c.next(false, 0x18, 400, 20, 5, &mut rep).unwrap();
        // the forced SYN (asked size 500) took the largest layout: timestamps on every segment
        assert_eq!(s.payload_len, 400 - 20 - 32);
        let r = c.next(false, 0x04, 40, 20, 6, &mut rep).unwrap();
        assert_eq!(r.flags, 0x14);
        assert!(c.next(true, 0x10, 40, 20, 7, &mut rep).is_none());
        assert_eq!(rep.dropped_after_rst, 1);
        assert!(c.is_reset());
    }
}
