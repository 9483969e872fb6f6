//! Frames: the stage that turns [`SynthPacket`] records into protocol-valid Ethernet frames.
//!
//! This module owns the [`FrameBuilder`]: per flow it keeps stable endpoints from the
//! [`address::AddressPlan`], TCP state ([`tcp::TcpConn`]), IPv4 ids, IPv6 flow labels and the
//! ICMP echo sequence; for each record it emits the headers with correct checksums
//! ([`emit`], [`checksum`]) and points at payload bytes from a fixed fill, so a frame is handed
//! on as two slices (headers, payload) with no copy and no allocation in steady state. A TCP
//! record above the MTU (a capture host's segmentation offload) becomes the pieces the NIC
//! would have sent ([`Frames`]). Records
//! that conflict with the protocols are repaired deterministically and counted. It does not
//! decide what to send (the `synth` engine) nor write or send frames (the `sink`).

pub mod address;
pub mod checksum;
pub mod cidr;
pub mod emit;
pub mod tcp;

use rustc_hash::FxHashMap;

use crate::capture::TcpFlags;
use crate::flow::Direction;
use crate::rng::SplitMix64;
use crate::synth::{Proto, SynthPacket, PLAN_CHOOSES};

pub use address::{AddressPlan, Endpoints, WireConfig, WireConfigError, WireConfigFileError};
pub use cidr::Cidr;
pub use tcp::Repairs;

use checksum::PayloadFill;
use emit::Ip;

/// One frame: headers then payload, to be written or sent back to back.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub ts_ns: i64,
    pub header: &'a [u8],
    pub payload: &'a [u8],
}

impl Frame<'_> {
    pub fn len(&self) -> usize {
        self.header.len() + self.payload.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Both parts, for scatter-gather writers.
    pub fn parts(&self) -> [&[u8]; 2] {
        [self.header, self.payload]
    }
}

/// The frames of one record: one, none (a record dropped or hidden) or, for a TCP segment
/// above the MTU, its pieces back to back with the record's timestamp.
pub struct Frames<'a> {
    ts_ns: i64,
    headers: &'a [u8],
    spans: std::iter::Enumerate<std::slice::Iter<'a, (usize, usize)>>,
    fill: &'a PayloadFill,
    counted: &'a mut u64,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        let (i, &(hlen, plen)) = self.spans.next()?;
        *self.counted += 1;
        let at = i * emit::MAX_HEADER;
        Some(Frame { ts_ns: self.ts_ns, header: &self.headers[at..at + hlen], payload: self.fill.bytes(plen) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl ExactSizeIterator for Frames<'_> {}

/// Counters of the wire stage.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WireStats {
    pub frames: u64,
    pub flows_started: u64,
    pub flows_ended: u64,
    /// Flows forgotten after `flow_idle_s` without a record.
    pub flows_expired: u64,
    pub repairs: Repairs,
    /// TCP records above the MTU, sent as several segments (a host's segmentation offload:
    /// a capture taken on the sending host shows the 5,844-byte segment its NIC cut in four).
    pub segmented: u64,
    pub ports_exhausted: u64,
    /// Records of the side a one-sided flow's capture point does not see
    /// ([`SynthPacket::hidden`]): the flow's state moved on, no frame was made.
    pub hidden: u64,
    /// UDP flows from a fixed client port moved to another client host, their 4-tuple having
    /// carried a flow less than `udp_idle_s` before ([`WireConfig::udp_idle_s`]).
    pub moved: u64,
}

struct WireFlow {
    proto: Proto,
    v6: bool,
    ends: Endpoints,
    ip_id: [u16; 2],
    flow_label: [u32; 2],
    last_ns: i64,
    tcp: Option<tcp::TcpConn>,
    icmp_seq: u16,
}

/// Turns records into frames. Deterministic: the same config, seed and records give the same
/// bytes.
pub struct FrameBuilder {
    plan: AddressPlan,
    seed: u64,
    fill: PayloadFill,
    mtu: usize,
    ttl: u8,
    idle_ns: i64,
    flows: FxHashMap<u64, WireFlow>,
    /// TCP connections from a fixed client port whose flow ended open (no FIN, no RST), by
    /// 4-tuple, with the time of their last record: a later flow on the same 4-tuple seen from
    /// the middle continues one, in its sequence space, as the same connection resumed
    /// after a pause would; a fresh one would jump its sequence numbers. Forgotten after
    /// `flow_idle_s`, or when a flow opens the 4-tuple with a SYN.
    dormant: FxHashMap<Tuple, (tcp::TcpConn, i64)>,
    /// The 4-tuples (either way round) of UDP flows from a fixed client port, with the time of
    /// their last record (`i64::MAX` while live): a new such flow on one of them within
    /// `quiet_ns` would merge with it in a flow table, so it goes to another client host
    /// ([`WireConfig::udp_idle_s`]).
    quiet: FxHashMap<Pair, i64>,
    quiet_ns: i64,
    /// Headers of the current record's frames, [`emit::MAX_HEADER`] bytes apart (one per
    /// piece of a segment above the MTU), and each frame's (header, payload) lengths.
    headers: Vec<u8>,
    spans: Vec<(usize, usize)>,
    stats: WireStats,
    since_sweep: u32,
}

const SWEEP_EVERY: u32 = 1 << 16;

/// Client and server address and port.
type Tuple = ([u8; 16], [u8; 16], u16, u16);

fn tuple(e: &Endpoints) -> Tuple {
    (e.client.ip, e.server.ip, e.client_port, e.server_port)
}

/// Both ends (address, port), lower first: a flow table's key of a flow either way round.
type Pair = ([u8; 16], u16, [u8; 16], u16);

/// The key a flow table files a UDP flow between `e` under, if it can bring a later flow back
/// to it: a flow from a fixed client port (an ephemeral one is handed out in turn). `None`
/// for the rest: a TCP flow on a fixed port resumes its connection
/// ([`FrameBuilder::dormant`]); an ARP conversation's requests (to the broadcast address) and
/// replies fall in two no-flow flows of a flow table, whatever the plan does.
fn quiet_key(proto: Proto, fixed_client_port: bool, e: &Endpoints) -> Option<Pair> {
    if proto != Proto::Udp || !fixed_client_port {
        return None;
    }
    let (a, b) = ((e.client.ip, e.client_port), (e.server.ip, e.server_port));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    Some((lo.0, lo.1, hi.0, hi.1))
}

/// Client hosts tried after the drawn one for a flow whose 4-tuple is not quiet.
const MOVE_TRIES: u32 = 64;

impl FrameBuilder {
    /// A builder for `cfg` (validated here) whose per-flow numbers derive from `seed`.
    pub fn new(cfg: WireConfig, seed: u64) -> Result<FrameBuilder, WireConfigError> {
        cfg.validate()?;
        let mtu = cfg.mtu as usize;
        Ok(FrameBuilder {
            fill: PayloadFill::new(cfg.payload_pattern.as_bytes(), mtu),
            mtu,
            ttl: cfg.ttl,
            idle_ns: (cfg.flow_idle_s * 1e9) as i64,
            quiet_ns: (cfg.udp_idle_s * 1e9) as i64,
            quiet: FxHashMap::default(),
            plan: AddressPlan::new(cfg),
            seed,
            flows: FxHashMap::default(),
            dormant: FxHashMap::default(),
            // the most pieces a segment of IP's largest size is cut into at this MTU
            headers: vec![0; emit::MAX_HEADER * tcp::MAX_IP_SIZE.div_ceil(mtu - emit::MAX_HEADER)],
            spans: Vec::new(),
            stats: WireStats::default(),
            since_sweep: 0,
        })
    }

    pub fn stats(&self) -> WireStats {
        let mut s = self.stats.clone();
        s.ports_exhausted = self.plan.ports_exhausted;
        s
    }

    /// Flows with state held.
    pub fn live_flows(&self) -> usize {
        self.flows.len()
    }

    /// Open connections of ended flows kept for their 4-tuple ([`FrameBuilder::dormant`]).
    pub fn kept_connections(&self) -> usize {
        self.dormant.len()
    }

    /// The frames for `rec`: one; none when the record had to be dropped (after a RST) or is
    /// hidden; for a TCP segment above the MTU, the pieces a NIC's segmentation offload
    /// would send (each as big as the MTU allows, sequence numbers running on, PSH and FIN
    /// on the last, the same timestamp). A frame is counted in [`WireStats::frames`] when
    /// the iterator yields it.
    pub fn build(&mut self, rec: &SynthPacket) -> Frames<'_> {
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.sweep(rec.ts_ns);
        }
        if !self.flows.contains_key(&rec.flow_id) {
            let flow = self.start_flow(rec);
            self.flows.insert(rec.flow_id, flow);
        }
        let flow = self.flows.get_mut(&rec.flow_id).expect("inserted above");
        flow.last_ns = rec.ts_ns;
        self.spans.clear();
        let built = emit_frames(flow, rec, &mut self.headers, &mut self.spans, &self.fill, self.mtu, self.ttl, &mut self.stats.repairs);
        let ended = rec.last || flow.tcp.as_ref().is_some_and(|t| t.is_reset());
        if ended {
            if let Some(f) = self.flows.remove(&rec.flow_id) {
                self.plan.release(f.proto, &f.ends);
                self.stats.flows_ended += 1;
                if let Some(k) = quiet_key(f.proto, rec.client_port != 0, &f.ends) {
                    self.quiet.insert(k, rec.ts_ns);
                }
                // only a fixed client port brings a flow back to its 4-tuple (the plan hands
                // out ephemeral ones in turn): the map stays as small as the services that fix
                // them, not one entry per flow that ended open within `flow_idle_s`
                if let Some(conn) = f.tcp.filter(tcp::TcpConn::is_open).filter(|_| rec.client_port != 0) {
                    self.dormant.insert(tuple(&f.ends), (conn, rec.ts_ns));
                }
            }
        }
        if built && rec.hidden {
            self.stats.hidden += 1;
            self.spans.clear();
        }
        if self.spans.len() > 1 {
            self.stats.segmented += 1;
        }
        Frames { ts_ns: rec.ts_ns, headers: &self.headers, spans: self.spans.iter().enumerate(), fill: &self.fill, counted: &mut self.stats.frames }
    }

    fn start_flow(&mut self, rec: &SynthPacket) -> WireFlow {
        let mut rng = SplitMix64::for_item(self.seed, rec.flow_id);
        let v6 = rec.ip_version == 6 && rec.proto != Proto::Arp;
        let hosts = |client_rank: u32| [(rec.sides[0], client_rank), (rec.sides[1], rec.server_rank)];
        let mut ends = self.plan.allocate(rec.proto, v6, hosts(rec.client_rank), [rec.client_port, rec.server_port], &mut rng);
        // a flow a flow table would merge with one on its 4-tuple: the next client host
        // whose 4-tuple is quiet (the drawn one when none of MOVE_TRIES is)
        let quiet_ns = self.quiet_ns;
        let busy = |q: &FxHashMap<Pair, i64>, e: &Endpoints| quiet_key(rec.proto, rec.client_port != 0, e).and_then(|k| q.get(&k)).is_some_and(|&last| last == i64::MAX || rec.ts_ns - last < quiet_ns);
        if quiet_ns > 0 && rec.client_rank != PLAN_CHOOSES && busy(&self.quiet, &ends) {
            for step in 1..=MOVE_TRIES {
                let other = self.plan.allocate(rec.proto, v6, hosts(rec.client_rank.wrapping_add(step)), [rec.client_port, rec.server_port], &mut rng);
                if !busy(&self.quiet, &other) {
                    self.plan.release(rec.proto, &ends);
                    ends = other;
                    self.stats.moved += 1;
                    break;
                }
                self.plan.release(rec.proto, &other);
            }
        }
        if let Some(k) = quiet_key(rec.proto, rec.client_port != 0, &ends) {
            self.quiet.insert(k, i64::MAX);
        }
        let ip_hdr = if v6 { 40 } else { 20 };
        let mss = (self.mtu - ip_hdr - 20) as u16;
        self.stats.flows_started += 1;
        // a SYN opens a new connection; a record without one continues or starts one seen from the middle
        let syn = rec.tcp_flags & TcpFlags::SYN != 0;
        let resumed = match rec.proto {
            Proto::Tcp => self.dormant.remove(&tuple(&ends)).filter(|_| !syn).map(|(conn, _)| conn),
            _ => None,
        };
        WireFlow {
            proto: rec.proto,
            v6,
            ends,
            ip_id: [rng.next_u32() as u16, rng.next_u32() as u16],
            flow_label: [rng.next_u32() & 0xf_ffff, rng.next_u32() & 0xf_ffff],
            last_ns: rec.ts_ns,
            tcp: (rec.proto == Proto::Tcp).then(|| {
                resumed.unwrap_or_else(|| {
                    let conn = tcp::TcpConn::new(rec.ts_ns, mss, &mut rng);
                    // seen from the middle: no SYN says whether timestamps were negotiated
                    if rec.tcp_timestamps && !syn { conn.with_timestamps() } else { conn }
                })
            }),
            icmp_seq: 0,
        }
    }

    /// Forgets flows idle for longer than `flow_idle_s` (bounded memory when the generator
    /// never marks a flow's last record).
    fn sweep(&mut self, now_ns: i64) {
        self.since_sweep = 0;
        let idle = self.idle_ns;
        let mut gone = Vec::new();
        self.flows.retain(|_, f| {
            let keep = now_ns - f.last_ns <= idle;
            if !keep {
                gone.push((f.proto, f.ends, f.last_ns));
            }
            keep
        });
        for (proto, ends, last_ns) in &gone {
            self.plan.release(*proto, ends);
            if let Some(k) = quiet_key(*proto, true, ends).filter(|k| self.quiet.get(k) == Some(&i64::MAX)) {
                self.quiet.insert(k, *last_ns);
            }
        }
        let quiet = self.quiet_ns;
        self.quiet.retain(|_, last| *last == i64::MAX || now_ns - *last < quiet);
        self.dormant.retain(|_, (_, last)| now_ns - *last <= idle);
        self.stats.flows_expired += gone.len() as u64;
    }
}

/// Writes the headers of `rec`'s frames into `headers` ([`emit::MAX_HEADER`] bytes apart) and
/// their (header length, payload length) into `spans`; false when the record was dropped.
#[allow(clippy::too_many_arguments)]
fn emit_frames(f: &mut WireFlow, rec: &SynthPacket, headers: &mut [u8], spans: &mut Vec<(usize, usize)>, fill: &PayloadFill, mtu: usize, ttl: u8, rep: &mut Repairs) -> bool {
    let e = f.ends;
    if f.proto == Proto::Arp {
        spans.push(emit_arp(rec, &e, headers, rep));
        return true;
    }
    let ip_hdr = if f.v6 { 40 } else { 20 };
    let size = rec.size as usize;
    match f.proto {
        Proto::Tcp => {
            let conn = f.tcp.as_mut().expect("TCP flows have TCP state");
            let Some(seg) = conn.next(rec.direction == Direction::Forward, rec.tcp_flags, size, ip_hdr, rec.ts_ns, rep) else {
                return false;
            };
            let (src, dst, sp, dp) = ends(&e, seg.from_client);
            let hlen = 14 + ip_hdr + 20 + seg.options_len;
            // above the MTU: cut as a segmentation offload does, PSH and FIN on the last piece
            let room = mtu - (ip_hdr + 20 + seg.options_len);
            let pieces = seg.payload_len.div_ceil(room).max(1);
            debug_assert!(pieces * emit::MAX_HEADER <= headers.len(), "{pieces} pieces");
            for (i, hdr) in headers.chunks_exact_mut(emit::MAX_HEADER).take(pieces).enumerate() {
                let last = i + 1 == pieces;
                let payload = if last { seg.payload_len - i * room } else { room };
                let flags = if last { seg.flags } else { seg.flags & !((TcpFlags::FIN | TcpFlags::PSH) as u8) };
                let ip = ip_layer(f, seg.from_client, src, dst, ttl, true);
                emit::ethernet(hdr, mac(&e, !seg.from_client), mac(&e, seg.from_client), ethertype(f.v6));
                emit::ip(&mut hdr[14..], &ip, 6, hlen - 14 + payload);
                let seq = seg.seq.wrapping_add((i * room) as u32);
                let t = emit::Tcp { src_port: sp, dst_port: dp, seq, ack: seg.ack, flags, window: seg.window, options: &seg.options[..seg.options_len] };
                emit::tcp(&mut hdr[14 + ip_hdr..], &ip, &t, fill, payload);
                spans.push((hlen, payload));
            }
            true
        }
        Proto::Udp | Proto::IcmpEcho => {
            let mut from_client = rec.direction == Direction::Forward;
            let size = if size > mtu {
                rep.size_clamped_mtu += 1;
                mtu
            } else {
                size
            };
            let payload = match size.checked_sub(ip_hdr + 8) {
                Some(p) => p,
                None => {
                    rep.size_raised += 1;
                    0
                }
            };
            if f.proto == Proto::IcmpEcho {
                if from_client {
                    f.icmp_seq = f.icmp_seq.wrapping_add(1);
                } else if f.icmp_seq == 0 {
                    rep.reply_before_request += 1;
                    from_client = true;
                    f.icmp_seq = 1;
                }
            }
            let (src, dst, sp, dp) = ends(&e, from_client);
            let ip = ip_layer(f, from_client, src, dst, ttl, false);
            let hdr = &mut headers[..emit::MAX_HEADER];
            let proto = match (f.proto, f.v6) {
                (Proto::Udp, _) => 17,
                (_, false) => 1,
                (_, true) => 58,
            };
            emit::ethernet(hdr, mac(&e, !from_client), mac(&e, from_client), ethertype(f.v6));
            emit::ip(&mut hdr[14..], &ip, proto, ip_hdr + 8 + payload);
            let l4 = &mut hdr[14 + ip_hdr..];
            if f.proto == Proto::Udp {
                emit::udp(l4, &ip, sp, dp, fill, payload);
            } else {
                emit::icmp_echo(l4, &ip, from_client, e.client_port, f.icmp_seq, fill, payload);
            }
            spans.push((14 + ip_hdr + 8, payload));
            true
        }
        Proto::Arp => unreachable!("handled above"),
    }
}

fn emit_arp(rec: &SynthPacket, e: &Endpoints, hdr: &mut [u8], rep: &mut Repairs) -> (usize, usize) {
    let hdr = &mut hdr[..emit::MAX_HEADER];
    if rec.size != 0 && rec.size as usize != emit::ARP_LEN {
        rep.size_fixed_by_protocol += 1;
    }
    let (c, s) = (e.client, e.server);
    let v4 = |h: &address::Host| [h.ip[0], h.ip[1], h.ip[2], h.ip[3]];
    if rec.direction == Direction::Forward {
        emit::ethernet(hdr, [0xff; 6], c.mac, emit::ETHERTYPE_ARP);
        emit::arp(&mut hdr[14..], true, c.mac, v4(&c), [0; 6], v4(&s));
    } else {
        emit::ethernet(hdr, c.mac, s.mac, emit::ETHERTYPE_ARP);
        emit::arp(&mut hdr[14..], false, s.mac, v4(&s), c.mac, v4(&c));
    }
    (14 + emit::ARP_LEN, 0)
}

fn ethertype(v6: bool) -> u16 {
    if v6 { emit::ETHERTYPE_IPV6 } else { emit::ETHERTYPE_IPV4 }
}

fn mac(e: &Endpoints, client: bool) -> [u8; 6] {
    if client { e.client.mac } else { e.server.mac }
}

/// (source address, destination address, source port, destination port) for a direction.
fn ends(e: &Endpoints, from_client: bool) -> ([u8; 16], [u8; 16], u16, u16) {
    if from_client {
        (e.client.ip, e.server.ip, e.client_port, e.server_port)
    } else {
        (e.server.ip, e.client.ip, e.server_port, e.client_port)
    }
}

fn ip_layer(f: &mut WireFlow, from_client: bool, src: [u8; 16], dst: [u8; 16], ttl: u8, dont_fragment: bool) -> Ip {
    let d = usize::from(!from_client);
    if f.v6 {
        Ip::V6 { src, dst, flow_label: f.flow_label[d], hop_limit: ttl }
    } else {
        let id = f.ip_id[d];
        f.ip_id[d] = id.wrapping_add(1);
        let v4 = |a: [u8; 16]| [a[0], a[1], a[2], a[3]];
        Ip::V4 { src: v4(src), dst: v4(dst), id, ttl, dont_fragment }
    }
}
