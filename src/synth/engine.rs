//! The generation engine: a trained model in, one time-ordered stream of [`SynthPacket`]s out.
//!
//! Top to bottom:
//! 1. the aggregate model draws the next flow (gap since the previous start, kind, server port,
//!    protocol, IP version, host ranks) — flow starts form a schedule over time; kinds
//!    and size components are drawn through low-discrepancy sequences, so the model's mix
//!    holds in every stretch of flows;
//! 2. each live flow steps its kind's flow LSTM ([`LeanLstm`]) token by token; a token is a
//!    packet-GMM component, decoded into a packet through the [`PacketBank`]; TCP flows open
//!    with a handshake and close with a teardown drawn from the [`TcpHeads`];
//! 3. flows are advanced in rounds: whenever a flow runs out of look-ahead, every flow short of
//!    it is stepped in one pass (the LSTM weights stay in cache), each by a few packets;
//! 4. a heap keyed by (next departure time, flow id) merges the flows into one stream.
//!
//! Memory is bounded by `max_live_flows × lookahead` packets whatever the length of the run.
//! Every flow draws from its own random stream (seed, flow id), so the output does not depend
//! on how rounds happen to batch flows: same model + seed + config = same stream.
//! This module does not build frames (that is [`crate::wire`]) or pace them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::steer::{sample_towards, Choices};
use super::{Proto, Side, SynthPacket};
use crate::capture::TcpFlags;
use crate::flow::{Direction, FlowKind};
use crate::model::aggregate::{FlowDraw, Strata, FRESH_HOSTS};
use crate::model::lean_lstm::{draw_weighted, exp_approx, sample_logits, LeanError, LeanLstm};
use crate::model::packet_bank::{PacketBank, BINS, DEFAULT_PER_COMPONENT};
use crate::model::tcp_heads::{Close, Role, TcpHeads, CLOSES, MAX_CLOSE_ACKS, QUANTILES};
use crate::model::standing::StandingFlow;
use crate::model::Model;
use crate::rng::SplitMix64;
use crate::wire::emit::{syn_options, ARP_LEN};

const NS: f64 = 1e9;
/// Packets generated ahead per flow in a round.
const LOOKAHEAD: usize = 12;
/// A flow with this few packets ahead joins the next round. Rounds run when a flow is about to
/// run dry; listing flows earlier than that makes rounds fewer and their LSTM batches larger.
const LOW_WATER: usize = 4;
/// Flows started ahead of their start time, so that new flows (most flows are short) reach
/// the LSTM in batches rather than one per round.
const START_AHEAD: usize = 64;
/// Handshake tokens tolerated from a TCP flow's LSTM before the flow is closed.
const MAX_SKIPPED: u32 = 16;
/// Seeds (xor the run's) the per-flow streams of client-port draws.
const CLIENT_PORT_STREAM: u64 = 0x636c_6965_6e74_706f;
/// Gaps over which a standing flow's drawn gaps are averaged to pace it.
const PACE_WINDOW: u32 = 1000;

/// What the engine may do (shared by `trafgen generate` and the daemon).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    pub seed: u64,
    /// Time scale as tcpreplay's: 2.0 plays the modelled traffic twice as fast (every gap
    /// halved), 0.5 half as fast.
    pub multiplier: f64,
    /// Scales the rate of flow starts only (per-flow timing is kept): the knob that `--pps`
    /// and `--mbps` targets resolve to.
    pub arrival_scale: f64,
    /// Flow kinds to generate ("connected", "unconnected", "noflow"); empty = all the model has.
    pub flow_kinds: Vec<FlowKind>,
    /// Cap on flows alive at once; a flow start due while at the cap waits for a flow to end.
    pub max_live_flows: usize,
    /// Cap on packets per flow (longer flows are closed there).
    pub max_flow_packets: u32,
    /// Decoded packets kept per GMM component (see [`PacketBank`]).
    pub bank_per_component: usize,
    /// What decides how many packets a flow has.
    pub flow_lengths: FlowLengths,
    /// What sets the pace of a flow's packets.
    pub flow_timing: FlowTiming,
    /// What sets the sizes of a flow's packets.
    pub flow_bytes: FlowBytes,
    /// Seconds of traffic generated before the stream's start and left out: the stream then
    /// begins like a capture cut from ongoing traffic, at its steady rate, with the flows in
    /// progress at its start seen mid-way (TCP flows without their handshake). 0 = a cold
    /// start: every flow is seen from its first packet, and the rate ramps up while the first
    /// flows' lifetimes overlap.
    pub warm_up_s: f64,
    /// Every TCP flow with both its sides, whatever the model learnt: a model of a capture
    /// point that saw one side of its flows (one direction of a backbone link) otherwise
    /// generates flows seen from one side as often, the other side's packets hidden, and
    /// such output is not one a validator of whole conversations passes.
    pub both_sides: bool,
}

/// What decides a flow's length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowLengths {
    /// The aggregate model's per-kind joint draw of (packets, bytes, duration) sets the flow's
    /// packet count; the LSTM writes the sequence: its END is not taken before the count, and
    /// the flow is closed (TCP: with its teardown) when the count is reached. Flow sizes then
    /// follow the training flows' distribution, heavy tail included.
    #[default]
    Aggregate,
    /// The LSTM alone: the flow ends when it samples END (or a FIN/RST exchange). Sizes come
    /// out geometric-like: the LSTM's state carries little of how long a flow has run.
    Lstm,
}

/// What sets the pace of a flow's data packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowTiming {
    /// The aggregate model's draw of the flow's duration (drawn with its size): the gaps the
    /// LSTM writes are stretched so that their running mean is the drawn duration over the
    /// flow's data gaps (the handshake and teardown keep the TCP heads' timing). Short flows
    /// of long duration and long flows of short duration come out as in training, where the
    /// LSTM alone gives every flow its kind's typical gaps.
    #[default]
    Aggregate,
    /// The LSTM's gaps as drawn.
    Lstm,
}

/// What sets the sizes of a flow's data packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowBytes {
    /// The aggregate model's draw of the flow's bytes (drawn with its size and duration):
    /// each LSTM token choice is tilted towards the components whose payload brings the
    /// flow to its drawn bytes ([`super::steer`]), so a flow's packet sizes go with its
    /// length as in training (a bulk transfer's full segments, a lone ACK's bare header).
    /// Needs [`FlowLengths::Aggregate`].
    #[default]
    Aggregate,
    /// The LSTM's tokens as drawn: every flow's sizes are its kind's typical ones.
    Lstm,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            seed: 1,
            multiplier: 1.0,
            arrival_scale: 1.0,
            flow_kinds: Vec::new(),
            max_live_flows: 100_000,
            max_flow_packets: 100_000,
            bank_per_component: DEFAULT_PER_COMPONENT,
            flow_lengths: FlowLengths::default(),
            flow_timing: FlowTiming::default(),
            flow_bytes: FlowBytes::default(),
            warm_up_s: 0.0,
            both_sides: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Lean(#[from] LeanError),
    #[error("the model has no flow LSTM for any of the requested flow kinds ({0})")]
    NoKinds(String),
    #[error("{0} must be a finite number > 0, not {1}")]
    Scale(&'static str, f64),
    #[error("warm_up_s must be a finite number of seconds >= 0, not {0}")]
    WarmUp(f64),
}

/// Counters of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    /// Flows started, by kind.
    pub flows: [u64; 3],
    /// Packets emitted, by kind.
    pub packets: [u64; 3],
    /// LSTM steps taken (one per data packet, plus END and skipped tokens).
    pub lstm_steps: u64,
    /// Rounds of stepping (each advances every flow short of look-ahead).
    pub rounds: u64,
    /// Handshake tokens the LSTM produced inside a TCP flow (the heads own the handshake).
    pub skipped_tokens: u64,
    /// Flows closed at `max_flow_packets`.
    pub truncated_flows: u64,
    /// Flow starts that waited for a free slot (`max_live_flows`).
    pub delayed_starts: u64,
    /// Largest number of flows alive at once.
    pub peak_live: usize,
    /// Packets generated during the warm-up and left out (not in `packets`).
    pub warm_up_packets: u64,
    /// Records of the side a one-sided flow's capture point does not see: handed on for the
    /// wire stage's connection state, with no frame (not in `packets`).
    pub hidden_packets: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// TCP: handshake packet `n` (0 SYN, 1 SYN-ACK, 2 ACK) comes next.
    Handshake(u8),
    Data,
    Done,
}

struct LiveFlow {
    id: u64,
    kind: FlowKind,
    proto: Proto,
    v6: bool,
    server_port: u16,
    /// A fixed client port (a standing flow's own, or a service's); 0: the address plan picks.
    client_port: u16,
    client_rank: u32,
    server_rank: u32,
    sides: [Side; 2],
    rng: SplitMix64,
    phase: Phase,
    /// Time of the last packet generated (ns from stream start).
    t_ns: i64,
    token: usize,
    /// Packets generated so far.
    packets: u32,
    /// LSTM tokens skipped in this flow (bounded, so a flow always ends).
    skipped: u32,
    /// Handshake tokens of the LSTM still to replay: the LSTM learnt whole flows, so a flow
    /// the heads opened has its LSTM replay the handshake first (SYN, SYN-ACK, ACK), each
    /// token drawn among the components that carry that packet
    /// ([`crate::model::packet_bank::PacketBank::opening_shares`]); those tokens move its
    /// state on and send nothing. 0: done, or a flow without a handshake.
    opening: u8,
    /// TCP: nobody answers it: its SYN is sent again, `pace_ns` apart, up to its length.
    unanswered: bool,
    /// TCP: the one side whose packets the capture point sees (`Forward`: the client's);
    /// `None`: both. The other side's packets are generated as usual, for the connection's
    /// state, and marked hidden; its data packets all come from the seen side.
    seen: Option<Direction>,
    /// Hidden packets generated so far (among `packets`).
    unseen: u32,
    /// Packets the flow is to have in all (handshake and teardown included; a one-sided
    /// flow's seen ones); `u32::MAX` when the LSTM decides ([`FlowLengths::Lstm`]).
    target: u32,
    /// TCP: how the flow will close and whether the client's FIN comes first, drawn at its
    /// start so that the length rule knows how many packets the teardown adds.
    close: (Close, bool),
    /// TCP, a four-way close seen from both sides: the other side's extra ACKs between its
    /// ACK of the first FIN and its own FIN ([`TcpHeads::sample_close_acks`]).
    close_acks: u8,
    /// Listed in `Engine::short` (waiting for the next round).
    listed: bool,
    /// Its first packet has left.
    begun: bool,
    /// Bytes of IP header, and of transport header on data packets (TCP: 32 once the SYN's
    /// options turned timestamps on); a packet's size is these plus the model's payload.
    ip_hdr: u32,
    l4_hdr: u32,
    queue: Ahead,
    /// Runs for the whole stream, outside the arrivals ([`StandingFlow`]).
    standing: bool,
    /// Target mean of the flow's data gaps, ns: a standing flow's rate, an arrival's drawn
    /// duration over its data gaps ([`FlowTiming::Aggregate`]); 0 = the gaps as drawn.
    pace_ns: f64,
    /// Running mean of the data gaps drawn so far, ns, and how many ([`LiveFlow::paced`]).
    drawn_gap_ns: f64,
    drawn_gaps: u32,
    /// Bytes (IP total lengths) the aggregate model drew for the flow ([`FlowBytes::Aggregate`]):
    /// what its token choices steer towards; NaN = no steering, the LSTM's sizes as drawn.
    bytes_goal: f64,
    /// Bytes of the packets generated so far.
    bytes: u64,
    /// A steered flow closing with FINs: the payload its first and second FIN are to carry,
    /// planned at its start ([`fin_plan`]) so that its data packets leave them that.
    fin_plan: [u32; 2],
    /// The last token choice was steered, to this payload bin of its component, and sent by
    /// this side (`true`: the server's).
    size_bin: Option<u8>,
    size_side: Option<bool>,
    /// A standing flow's index in the aggregate model, when its own chain writes it instead
    /// of the kind's LSTM ([`StandingFlow::next_state`]; `token` is then its state);
    /// `NO_CHAIN` otherwise.
    chain: u32,
}

const NO_CHAIN: u32 = u32::MAX;
/// Bytes of a TCP header with the timestamp option (NOP, NOP, timestamps).
const TS_HDR: u32 = 32;
/// IP total length of the largest frame on Ethernet.
const ETHERNET_MTU: u32 = 1500;
/// Bytes of payload above a full-size segment's that are still a full-size segment (decoding
/// spread), not an offloaded one ([`Engine::consume`]).
const FULL_SIZE_SLACK: u32 = 64;

/// What varies between a flow's packets (the rest is the flow's).
#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    ts_ns: i64,
    size: u32,
    tcp_flags: u16,
    backward: bool,
    last: bool,
    hidden: bool,
}

/// A flow's look-ahead: a ring of 16 inline in the flow (no allocation, one cache region).
#[derive(Clone, Debug, Default)]
struct Ahead {
    buf: [Pending; AHEAD_CAP],
    head: u8,
    len: u8,
}

/// LOOKAHEAD packets, plus a teardown (4 and its extra ACKs) pushed when the look-ahead was
/// one short.
const AHEAD_CAP: usize = 16;
const _: () = assert!(LOOKAHEAD - 1 + 4 + MAX_CLOSE_ACKS <= AHEAD_CAP);

impl Ahead {
    fn len(&self) -> usize {
        self.len as usize
    }
    fn slot(&self, i: usize) -> usize {
        (self.head as usize + i) % AHEAD_CAP
    }
    fn push_back(&mut self, p: Pending) {
        debug_assert!(self.len() < AHEAD_CAP);
        let i = self.slot(self.len());
        self.buf[i] = p;
        self.len += 1;
    }
    fn pop_front(&mut self) -> Option<Pending> {
        if self.len == 0 {
            return None;
        }
        let p = self.buf[self.head as usize];
        self.head = ((self.head as usize + 1) % AHEAD_CAP) as u8;
        self.len -= 1;
        Some(p)
    }
    fn push_front(&mut self, p: Pending) {
        self.head = ((self.head as usize + AHEAD_CAP - 1) % AHEAD_CAP) as u8;
        self.buf[self.head as usize] = p;
        self.len += 1;
    }
    fn front(&self) -> Option<&Pending> {
        (self.len > 0).then(|| &self.buf[self.head as usize])
    }
    fn back_mut(&mut self) -> Option<&mut Pending> {
        let i = self.slot(self.len().checked_sub(1)?);
        Some(&mut self.buf[i])
    }
}

impl LiveFlow {
    /// Packets generated that the capture point sees (a one-sided flow's other side's are not).
    fn seen_packets(&self) -> u32 {
        self.packets - self.unseen
    }

    /// Packets the flow's close is to add (the TCP teardown, as seen).
    fn teardown(&self) -> u32 {
        if self.proto != Proto::Tcp {
            return 0;
        }
        seen_of_close(self.close.0, self.seen, self.close_acks)
    }

    /// Packets the flow's close adds after its last data packet: its teardown, once it has begun.
    fn tail(&self) -> u32 {
        if self.packets == 0 {
            return 0;
        }
        self.teardown()
    }

    /// Whether the flow is short of its drawn length ([`FlowLengths::Aggregate`]): its LSTM's
    /// END is not taken then.
    fn wants_more(&self) -> bool {
        self.target != u32::MAX && self.seen_packets().saturating_add(self.tail()) < self.target
    }

    /// Whether a FIN or RST from the LSTM that adds `then` more seen packets may end the flow
    /// now: always when the LSTM decides lengths, else only when it lands exactly at the drawn
    /// length (one that comes later would overshoot it: it is a data segment then).
    fn may_end_with(&self, then: u32) -> bool {
        self.target == u32::MAX || self.seen_packets().saturating_add(then) == self.target
    }

    /// A drawn data gap, stretched so that the flow's gaps average its pace: the LSTM's gaps
    /// are those of its kind, while a standing flow keeps its own rate and an arrival its
    /// drawn duration. The running mean spans up to [`PACE_WINDOW`] gaps, so bursts and
    /// pauses keep their shape.
    fn paced(&mut self, dt_ns: f64) -> f64 {
        if self.pace_ns <= 0.0 {
            return dt_ns;
        }
        self.drawn_gaps = self.drawn_gaps.saturating_add(1);
        let w = f64::from(self.drawn_gaps.min(PACE_WINDOW));
        self.drawn_gap_ns += (dt_ns - self.drawn_gap_ns) / w;
        dt_ns * self.pace_ns / self.drawn_gap_ns.max(1.0)
    }

    /// The payload the next data packet should carry, and what the flow's data packets to
    /// come have left to carry in all: the drawn bytes less those sent, less the headers of
    /// every packet to come and what the teardown's FINs are to carry (`fin_plan`), over
    /// the data packets to come. `None` when not steered.
    fn payload_aim(&self) -> Option<(f32, f32, f32)> {
        // (the handshake the LSTM replays first is not steered: its tokens send nothing)
        if !self.bytes_goal.is_finite() || self.opening > 0 {
            return None;
        }
        let tail = self.teardown();
        let fins = f64::from(self.fin_plan[0] + self.fin_plan[1]);
        let left = self.target.saturating_sub(self.seen_packets().saturating_add(tail)).max(1);
        let headers = f64::from(self.ip_hdr + self.l4_hdr);
        let budget = self.bytes_goal - self.bytes as f64 - f64::from(left + tail) * headers - fins;
        Some(((budget / f64::from(left)) as f32, budget as f32, left as f32))
    }

    fn record(&self, p: &Pending) -> SynthPacket {
        SynthPacket {
            flow_id: self.id,
            proto: self.proto,
            ip_version: if self.v6 { 6 } else { 4 },
            direction: if p.backward { Direction::Backward } else { Direction::Forward },
            ts_ns: p.ts_ns,
            size: p.size,
            tcp_flags: p.tcp_flags,
            server_port: self.server_port,
            client_port: self.client_port,
            client_rank: self.client_rank,
            server_rank: self.server_rank,
            sides: self.sides,
            last: p.last,
            hidden: p.hidden,
            tcp_timestamps: self.proto == Proto::Tcp && self.l4_hdr == TS_HDR,
        }
    }
}

/// The engine. Iterate it for packets in departure order.
pub struct Engine<'m> {
    model: &'m Model,
    cfg: EngineConfig,
    lstm: [Option<LeanLstm>; 3],
    allowed: [bool; 3],
    bank: PacketBank,
    heads: TcpHeads,
    /// What the heads' handshake and close typically take ([`data_pace_ns`]).
    head_spans: HeadSpans,
    hidden: usize,
    /// Per slot: LSTM state h and c (H floats each).
    h: Vec<f32>,
    c: Vec<f32>,
    flows: Vec<Option<LiveFlow>>,
    free: Vec<u32>,
    live: usize,
    heap: BinaryHeap<Reverse<(i64, u64, u32)>>,
    /// Slots of flows whose look-ahead ran short since the last round.
    short: Vec<u32>,
    /// Flows started whose first packet has not left yet.
    unbegun: usize,
    rng: SplitMix64,
    /// The kinds' and size components' draws: a few UDP flows among a hundred TCP ones come
    /// up as often as the model has them in every stretch of flows, not 0 or 10 by the luck
    /// of the draw; so do a kind's rare large flows.
    strata: Strata,
    next_id: u64,
    next_start_ns: f64,
    /// Time of the last packet emitted.
    clock: i64,
    starts_left: Option<u64>,
    /// Hosts of their own given so far, client and server side ([`crate::model::aggregate::Aggregate::fresh_rank`]).
    fresh_hosts: [u32; 2],
    /// Flows of the arrivals alive now (the others are standing flows).
    arrivals_live: usize,
    /// Packets per second of the standing flows this stream has (at `arrival_scale` 1).
    standing_pps: f64,
    /// Stream end, on the engine's clock (which runs from the warm-up's start).
    end_ns: Option<i64>,
    /// Warm-up length: packets before it are left out, the rest are shifted back by it.
    warm_ns: i64,
    /// The first packet after the warm-up, when [`Engine::warm_up`] found it.
    pending: Option<SynthPacket>,
    batch: Batch,
    stats: EngineStats,
}

/// Buffers of a round's batched LSTM steps, kept between rounds.
#[derive(Default)]
struct Batch {
    /// Per kind: the slots stepped in this pass and their input tokens.
    slots: [Vec<usize>; 3],
    tokens: [Vec<usize>; 3],
    logits: Vec<f32>,
    weights: Vec<f32>,
    choices: Choices,
}

impl<'m> Engine<'m> {
    /// Prepares an engine on `model` (builds the lean LSTMs and the packet bank: ~0.1 s).
    pub fn new(model: &'m Model, cfg: EngineConfig) -> Result<Engine<'m>, EngineError> {
        for (name, v) in [("multiplier", cfg.multiplier), ("arrival_scale", cfg.arrival_scale)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(EngineError::Scale(name, v));
            }
        }
        if !(cfg.warm_up_s.is_finite() && cfg.warm_up_s >= 0.0 && cfg.warm_up_s < 1e9) {
            return Err(EngineError::WarmUp(cfg.warm_up_s));
        }
        let mut lstm: [Option<LeanLstm>; 3] = [None, None, None];
        let mut allowed = [false; 3];
        for kind in FlowKind::ALL {
            let wanted = cfg.flow_kinds.is_empty() || cfg.flow_kinds.contains(&kind);
            if let (true, Some(m)) = (wanted, &model.lstm[kind.index()]) {
                lstm[kind.index()] = Some(LeanLstm::from_tch(m)?);
                allowed[kind.index()] = model.aggregate.kind_p[kind.index()] > 0.0;
            }
        }
        // standing flows of the kinds wanted, each in the stream with its share's probability
        let mut pick = SplitMix64::for_item(cfg.seed, u64::MAX - 2);
        let standing: Vec<usize> = (0..model.aggregate.standing.len())
            .filter(|&i| {
                let s = &model.aggregate.standing[i];
                lstm[s.kind.index()].is_some() && pick.next_f64() < s.share
            })
            .collect();
        if !allowed.iter().any(|&a| a) && standing.is_empty() {
            let names: Vec<&str> = FlowKind::ALL.iter().filter(|k| cfg.flow_kinds.is_empty() || cfg.flow_kinds.contains(k)).map(|k| k.name()).collect();
            return Err(EngineError::NoKinds(names.join(", ")));
        }
        let hidden = model.manifest.flow.lstm.hidden as usize;
        let outputs = model.manifest.flow.lstm.k as usize + 1;
        let mut bank_rng = SplitMix64::for_item(cfg.seed, u64::MAX);
        let bank = PacketBank::build(model, cfg.bank_per_component, &mut bank_rng);
        let mut e = Engine {
            model,
            lstm,
            allowed,
            bank,
            heads: model.tcp.clone(),
            head_spans: head_spans(&model.tcp),
            hidden,
            h: Vec::new(),
            c: Vec::new(),
            flows: Vec::new(),
            free: Vec::new(),
            live: 0,
            heap: BinaryHeap::new(),
            short: Vec::new(),
            unbegun: 0,
            rng: SplitMix64::new(cfg.seed),
            strata: Strata::new(&mut SplitMix64::for_item(cfg.seed, u64::MAX - 3)),
            next_id: 0,
            next_start_ns: 0.0,
            clock: 0,
            starts_left: None,
            fresh_hosts: [0; 2],
            arrivals_live: 0,
            standing_pps: standing.iter().map(|&i| model.aggregate.standing[i].pps * cfg.multiplier).sum(),
            end_ns: None,
            warm_ns: (cfg.warm_up_s * NS).round() as i64,
            pending: None,
            batch: Batch { weights: vec![0.0; outputs], ..Batch::default() },
            stats: EngineStats::default(),
            cfg,
        };
        for i in standing {
            e.start_standing(i);
        }
        Ok(e)
    }

    /// Stop starting flows after `n` of them (the stream ends when they are done).
    pub fn limit_flows(&mut self, n: u64) {
        self.starts_left = Some(n);
    }

    /// End the stream at `ns` from its start: no flow starts and no packet leaves at or after it.
    pub fn limit_duration(&mut self, ns: i64) {
        self.end_ns = Some(ns.saturating_add(self.warm_ns));
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Flows alive now.
    pub fn live_flows(&self) -> usize {
        self.live
    }

    /// Packets generated but not yet emitted (bounded by live flows × look-ahead).
    pub fn buffered_packets(&self) -> usize {
        self.flows.iter().flatten().map(|f| f.queue.len()).sum()
    }

    fn start_due(&self) -> Option<i64> {
        if self.starts_left == Some(0) || self.live >= self.cfg.max_live_flows || !self.allowed.iter().any(|&a| a) {
            return None;
        }
        let t = (self.next_start_ns.round() as i64).max(self.clock);
        if self.end_ns.is_some_and(|e| t >= e) {
            return None;
        }
        Some(t)
    }

    /// Starts the next flow at `t` and draws the start after it.
    fn start_flow(&mut self, t: i64) {
        let mut d = loop {
            let d = self.model.aggregate.sample_flow_with(Some(&mut self.strata), &mut self.rng);
            self.next_start_ns += d.gap_s * NS / (self.cfg.multiplier * self.cfg.arrival_scale);
            if self.allowed[d.kind.index()] {
                break d;
            }
        };
        if t > self.next_start_ns.round() as i64 {
            self.stats.delayed_starts += 1;
        }
        // a fixed client port where the service has one, drawn on a stream of its own so that
        // the table changes no other draw
        if d.kind != FlowKind::NoFlow {
            let mut port_rng = SplitMix64::for_item(self.cfg.seed ^ CLIENT_PORT_STREAM, self.next_id);
            d.client_port = self.model.aggregate.client_ports.draw(d.server_port, d.ip_proto, &mut port_rng);
        }
        // a host seen in one training flow stands for hosts that come and go: one of its own
        // (unless the host is one of the other side's too)
        let fresh = self.model.aggregate.fresh_rank;
        let shared = &self.model.aggregate.shared_hosts;
        for ((side, rank), side_is) in [&mut d.client_rank, &mut d.server_rank].into_iter().enumerate().zip([Side::Client, Side::Server]) {
            if *rank >= fresh[side] && !shared.moves(side_is, *rank) {
                // (wrapping well below PLAN_CHOOSES, which is u32::MAX)
                *rank = FRESH_HOSTS.saturating_add(self.fresh_hosts[side] % (u32::MAX / 2));
                self.fresh_hosts[side] = self.fresh_hosts[side].wrapping_add(1);
            }
        }
        if let Some(n) = &mut self.starts_left {
            *n -= 1;
        }
        let id = self.next_id;
        let mut rng = SplitMix64::for_item(self.cfg.seed, id);
        let close = self.heads.sample_close(&mut rng);
        // a TCP flow seen from the middle (no handshake), as often as in training
        let mid_stream = d.kind == FlowKind::Connected && rng.next_f64() >= d.open_p;
        let target = match self.cfg.flow_lengths {
            FlowLengths::Aggregate => d.packets.round().clamp(1.0, f64::from(u32::MAX - 1)) as u32,
            FlowLengths::Lstm => u32::MAX,
        };
        // an attempt nobody answers, as often as its kind of flow in training (no draw when
        // never: streams of models without such flows stay as they were)
        let unanswered = d.kind == FlowKind::Connected && !mid_stream && target != u32::MAX && d.unanswered_p > 0.0 && rng.next_f64() < d.unanswered_p;
        // an answered flow seen from one side only, as often as in training (no draw when never);
        // its close starts on the seen side
        let seen = match d.one_sided_p {
            [c, s] if d.kind == FlowKind::Connected && !unanswered && !self.cfg.both_sides && c + s > 0.0 => {
                let u = rng.next_f64();
                if u < c {
                    Some(Direction::Forward)
                } else if u < c + s {
                    Some(Direction::Backward)
                } else {
                    None
                }
            }
            _ => None,
        };
        let close = match seen {
            Some(side) => (close.0, side == Direction::Forward),
            None => close,
        };
        let close = if d.kind == FlowKind::Connected { fit_short(target, close, mid_stream, seen) } else { close };
        // a four-way close seen from both sides: its extra ACKs, as flows of this length had
        // them (no draw for a model without them), leaving the flow a data packet
        let close_acks = if close.0 == Close::FourWay && seen.is_none() && !unanswered && target != u32::MAX {
            let room = target.saturating_sub(seen_of_heads(close.0, mid_stream, None, 0) + 1);
            self.heads.sample_close_acks(target, &mut rng).min(room) as u8
        } else {
            0
        };
        let (close, pace_ns) = if unanswered {
            ((Close::None, close.1), retry_gap_s(&d, target) * NS / self.cfg.multiplier)
        } else {
            let pace_ns = match self.cfg.flow_timing {
                FlowTiming::Aggregate if target != u32::MAX => data_pace_ns(&d, target, &self.head_spans, (close.0, close_acks), mid_stream, seen) / self.cfg.multiplier,
                _ => 0.0,
            };
            (close, pace_ns)
        };
        self.arrivals_live += 1;
        let slot = self.launch(&d, t, rng, close, mid_stream, target, pace_ns);
        if let Some(f) = self.flows[slot as usize].as_mut() {
            f.unanswered = unanswered;
            f.seen = seen;
            f.close_acks = close_acks;
            if f.bytes_goal.is_finite() && f.proto == Proto::Tcp {
                f.fin_plan = fin_plan(&self.heads, close.0, d.bytes_level, seen.is_some());
            }
        }
    }

    /// Starts a standing flow, its first packet within one of its gaps of the stream's start
    /// (so that standing flows do not all begin together). It has no length: it runs until
    /// the stream ends.
    fn start_standing(&mut self, i: usize) {
        let model = self.model;
        let s = &model.aggregate.standing[i];
        let mut rng = SplitMix64::for_item(self.cfg.seed, self.next_id);
        let pace_ns = NS / (s.pps * self.cfg.multiplier * self.cfg.arrival_scale);
        let t = (rng.next_f64() * pace_ns.min(NS)) as i64;
        let d = FlowDraw {
            gap_s: 0.0,
            kind: s.kind,
            open_p: if s.mid_stream { 0.0 } else { 1.0 },
            unanswered_p: 0.0,
            one_sided_p: [0.0; 2],
            timestamps_p: 0.0,
            packets: f64::from(u32::MAX - 1),
            bytes: 0.0,
            bytes_level: 0.5,
            duration_s: 0.0,
            server_port: s.server_port,
            client_port: s.client_port,
            ip_proto: s.ip_proto,
            v6: s.v6,
            client_rank: s.client_rank,
            server_rank: s.server_rank,
        };
        let close = self.heads.sample_close(&mut rng);
        let slot = self.launch(&d, t, rng, close, s.mid_stream, u32::MAX - 1, pace_ns);
        if let Some(f) = self.flows[slot as usize].as_mut() {
            f.standing = true;
            let k = self.bank.components();
            if s.chain_fits(k) {
                f.chain = i as u32;
                // entering the chain
                f.token = crate::model::standing::states(k);
            }
        }
    }

    /// Puts a flow in the schedule, its first packet at `t`; returns its slot.
    #[allow(clippy::too_many_arguments)]
    fn launch(&mut self, d: &FlowDraw, t: i64, mut rng: SplitMix64, close: (Close, bool), mid_stream: bool, target: u32, pace_ns: f64) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        let proto = match d.kind {
            FlowKind::Connected => Proto::Tcp,
            FlowKind::Unconnected if d.ip_proto == 1 || d.ip_proto == 58 => Proto::IcmpEcho,
            // UDP, and other port-based protocols (SCTP, DCCP, UDP-Lite) sent as UDP
            FlowKind::Unconnected => Proto::Udp,
            FlowKind::NoFlow => Proto::Arp,
        };
        // a TCP flow seen from the middle: timestamps as its size component's flows had them
        // (drawn only where the model has such flows, so a model without them draws as before)
        let timestamps = proto == Proto::Tcp && mid_stream && d.timestamps_p > 0.0 && rng.next_f64() < d.timestamps_p;
        // a host seen on both sides in training: at its one address whichever side it is on
        let [(client_side, client_rank), (server_side, server_rank)] = self.model.aggregate.shared_hosts.place(d.client_rank, d.server_rank);
        let flow = LiveFlow {
            id,
            kind: d.kind,
            proto,
            v6: d.v6,
            server_port: d.server_port,
            client_port: d.client_port,
            client_rank,
            server_rank,
            sides: [client_side, server_side],
            rng,
            phase: if proto == Proto::Tcp && !mid_stream { Phase::Handshake(0) } else { Phase::Data },
            opening: if proto == Proto::Tcp && !mid_stream { 3 } else { 0 },
            unanswered: false,
            seen: None,
            unseen: 0,
            t_ns: t,
            token: self.lstm[d.kind.index()].as_ref().map_or(0, LeanLstm::start_token),
            packets: 0,
            skipped: 0,
            target,
            close,
            close_acks: 0,
            listed: true,
            begun: false,
            ip_hdr: if d.v6 { 40 } else { 20 },
            l4_hdr: match proto {
                Proto::Tcp if timestamps => TS_HDR,
                Proto::Tcp => 20,
                _ => 8,
            },
            queue: Ahead::default(),
            standing: false,
            pace_ns,
            drawn_gap_ns: 0.0,
            drawn_gaps: 0,
            // (ARP's size is fixed: nothing to steer)
            bytes_goal: match self.cfg.flow_bytes {
                FlowBytes::Aggregate if target != u32::MAX && d.bytes > 0.0 && proto != Proto::Arp => d.bytes,
                _ => f64::NAN,
            },
            bytes: 0,
            fin_plan: [0; 2],
            size_bin: None,
            size_side: None,
            chain: NO_CHAIN,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.flows[s as usize] = Some(flow);
                s
            }
            None => {
                self.flows.push(Some(flow));
                self.h.resize(self.flows.len() * self.hidden, 0.0);
                self.c.resize(self.flows.len() * self.hidden, 0.0);
                (self.flows.len() - 1) as u32
            }
        };
        let range = slot as usize * self.hidden..(slot as usize + 1) * self.hidden;
        self.h[range.clone()].fill(0.0);
        self.c[range].fill(0.0);
        self.live += 1;
        self.stats.peak_live = self.stats.peak_live.max(self.live);
        self.stats.flows[d.kind.index()] += 1;
        // its first packet leaves at t; the round that fills it runs when it is popped
        self.heap.push(Reverse((t, id, slot)));
        self.short.push(slot);
        self.unbegun += 1;
        slot
    }

    /// Fills every flow whose look-ahead ran short (at most one packet) since the last round
    /// up to `LOOKAHEAD` packets (or its end). The flows advance in lock-step passes: each
    /// pass does their handshake/teardown work one by one, then steps all that need their
    /// LSTM in one batched call per kind ([`LeanLstm::step_many`]).
    fn round(&mut self) {
        self.stats.rounds += 1;
        let mut active = std::mem::take(&mut self.short);
        let b = &mut self.batch;
        // flows are worked on in place (a flow is a few hundred bytes: moving it out and back
        // cost more than its LSTM step at small hidden sizes)
        let mut rules = Rules { cfg: &self.cfg, standing: &self.model.aggregate.standing, lstm: &self.lstm, bank: &self.bank, heads: &self.heads, stats: &mut self.stats };
        loop {
            for k in 0..3 {
                b.slots[k].clear();
                b.tokens[k].clear();
            }
            for &s in &active {
                let Some(f) = self.flows[s as usize].as_mut() else { continue };
                f.listed = false;
                if rules.direct(f) {
                    b.slots[f.kind.index()].push(s as usize);
                    b.tokens[f.kind.index()].push(f.token);
                }
            }
            if b.slots.iter().all(Vec::is_empty) {
                break;
            }
            active.clear();
            for k in 0..3 {
                let n = b.slots[k].len();
                let Some(lstm) = rules.lstm[k].as_ref().filter(|_| n > 0) else { continue };
                let out = lstm.outputs();
                b.logits.resize(n * out, 0.0);
                lstm.step_many(&b.tokens[k], &b.slots[k], &mut self.h, &mut self.c, &mut b.logits);
                rules.stats.lstm_steps += n as u64;
                for (i, &s) in b.slots[k].iter().enumerate() {
                    let Some(f) = self.flows[s].as_mut() else { continue };
                    // END is the last output: left out while the flow is short of its length
                    let logits = &b.logits[i * out..(i + 1) * out - usize::from(f.wants_more())];
                    if f.opening > 0 {
                        // the LSTM replays the handshake the heads sent: its token for the step
                        // is drawn among the components that carry the step's packet, with the
                        // LSTM's odds, and sends nothing (a model whose packets hold no
                        // handshake has nothing to replay: its tokens are packets at once)
                        let shares = rules.bank.opening_shares(3 - usize::from(f.opening));
                        match draw_among(logits, shares, &mut b.weights, &mut f.rng) {
                            Some(token) => {
                                f.opening -= 1;
                                f.token = token;
                                rules.stats.skipped_tokens += 1;
                                active.push(s as u32);
                                continue;
                            }
                            None => f.opening = 0,
                        }
                    }
                    let bins = rules.bank.bin_payloads();
                    let token = match f.payload_aim() {
                        Some((aim, budget, left)) if logits.len() * BINS == bins.len() => {
                            // a flow seen from both sides: the side that sends is the LSTM's (a
                            // one-sided flow's seen side sends all its data anyway)
                            let back = if f.seen.is_none() { rules.bank.back_shares() } else { &[] };
                            let s = sample_towards(logits, bins, back, aim, budget, left, &mut b.choices, &mut f.rng);
                            f.size_bin = Some(s.bin as u8);
                            f.size_side = s.backward;
                            s.component
                        }
                        _ => {
                            f.size_bin = None;
                            f.size_side = None;
                            sample_logits(logits, &mut b.weights, &mut f.rng)
                        }
                    };
                    rules.consume(f, token);
                    active.push(s as u32);
                }
            }
        }
        active.clear();
        self.short = active;
    }

    fn release(&mut self, slot: u32) {
        if self.flows[slot as usize].as_ref().is_some_and(|f| !f.standing) {
            self.arrivals_live -= 1;
        }
        self.flows[slot as usize] = None;
        self.free.push(slot);
        self.live -= 1;
    }
}

/// What a round needs to advance one flow: the model's parts and the run's counters,
/// borrowed apart from the flows so that each flow is worked on where it lives.
struct Rules<'e> {
    cfg: &'e EngineConfig,
    standing: &'e [StandingFlow],
    lstm: &'e [Option<LeanLstm>; 3],
    bank: &'e PacketBank,
    heads: &'e TcpHeads,
    stats: &'e mut EngineStats,
}

impl Rules<'_> {
    /// Does a flow's work that needs no LSTM (handshake, closing at the length cap) until it
    /// is full, done, or needs an LSTM step (then true).
    fn direct(&mut self, f: &mut LiveFlow) -> bool {
        let mult = self.cfg.multiplier;
        while f.queue.len() < LOOKAHEAD {
            match f.phase {
                Phase::Done => return false,
                Phase::Handshake(_) if f.target != u32::MAX && f.seen_packets() >= f.target => {
                    // a handshake cut at the drawn length ([`fit_short`])
                    self.close(f);
                }
                Phase::Handshake(n) => {
                    let role = [Role::Syn, Role::SynAck, Role::Ack][n as usize];
                    let (dt, head_size) = self.heads.sample(role, &mut f.rng);
                    let dt_ns = match n {
                        // an unanswered SYN sent again
                        0 if f.packets > 0 => f.pace_ns,
                        0 => 0.0,
                        _ => dt * NS / mult,
                    };
                    if n == 0 && f.packets == 0 {
                        // the SYN's options as the wire stage will lay them out for this size
                        // (head sizes are IPv4 lengths); timestamps come with the 20-byte layout
                        let want = head_size.saturating_sub(40) as usize;
                        let opts = syn_options::LENGTHS.iter().copied().filter(|&l| l <= want).max().unwrap_or(0) as u32;
                        f.l4_hdr = 20 + opts;
                    }
                    let (dir, flags, size) = match n {
                        0 => (Direction::Forward, TcpFlags::SYN, f.ip_hdr + f.l4_hdr),
                        1 => (Direction::Backward, TcpFlags::SYN | TcpFlags::ACK, f.ip_hdr + f.l4_hdr),
                        _ => {
                            // from here on: data-segment options (timestamps or none)
                            f.l4_hdr = if f.l4_hdr == 40 { TS_HDR } else { 20 };
                            (Direction::Forward, TcpFlags::ACK, f.ip_hdr + f.l4_hdr)
                        }
                    };
                    push(f, dt_ns, dir, size, flags);
                    f.phase = match n {
                        _ if f.unanswered => Phase::Handshake(0),
                        2 => Phase::Data,
                        _ => Phase::Handshake(n + 1),
                    };
                }
                Phase::Data => {
                    if f.packets >= self.cfg.max_flow_packets && !f.standing {
                        self.stats.truncated_flows += 1;
                        self.close(f);
                    } else if f.target != u32::MAX && !f.wants_more() {
                        // the drawn length is reached (with the teardown to come)
                        self.close(f);
                    } else if let Some(s) = self.standing.get(f.chain as usize) {
                        let k = self.bank.components();
                        let u = f.rng.next_f64();
                        let state = s.next_state(k, f.token, u);
                        self.consume(f, state);
                    } else if self.lstm[f.kind.index()].is_none() {
                        self.close(f);
                    } else {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Acts on the token a flow's LSTM produced (a packet, the flow's end, or a skipped
    /// handshake token), or on the state a standing flow's chain produced (a packet).
    fn consume(&mut self, f: &mut LiveFlow, token: usize) {
        f.token = token;
        let standing = self.standing;
        let chain = standing.get(f.chain as usize);
        let component = match chain {
            // a state: the component and the side that sends
            Some(_) => token / 2,
            None if self.lstm[f.kind.index()].as_ref().is_none_or(|l| token == l.end_token()) => {
                self.close(f);
                return;
            }
            None => token,
        };
        let mut p = match f.size_bin.take() {
            Some(bin) if chain.is_none() => self.bank.draw_in_bin(component, usize::from(bin), &mut f.rng),
            _ => self.bank.draw(component, &mut f.rng),
        };
        // a steered choice: the side drawn with it sends (of a component both sides send)
        if let Some(backward) = f.size_side.take().filter(|_| chain.is_none()) {
            p.direction = if backward { Direction::Backward } else { Direction::Forward };
        }
        if let Some(s) = chain {
            // a standing flow's own gaps in this state
            let u = f.rng.next_f64();
            p.time_diff_s = s.gap_s(self.bank.components(), token, u).unwrap_or(p.time_diff_s);
            p.direction = if token % 2 == 1 { Direction::Backward } else { Direction::Forward };
        }
        // a flow's first packet has no gap (push leaves it at the flow's start): not paced
        let dt_ns = if f.packets == 0 { 0.0 } else { f.paced(p.time_diff_s * NS / self.cfg.multiplier) };
        let mut payload = p.size.saturating_sub(p.header_len);
        // a segment as big as an Ethernet MTU allows without options stays as big as it allows
        // with them (1,460 bytes of payload become 1,448 with timestamps, as a stack's MSS does),
        // and so does one a few bytes over it: the decoded payload spreads around the full size
        // (the payload column's range is every protocol's: netshare_caida's largest UDP payload,
        // 1,463 bytes, is its TCP components' upper edge too). Further above the MTU, a capture
        // host's offloaded segment stays whole (zeek's ssh.pcap: 2,896 bytes 155 times, 1,456
        // once in 238) and the wire stage cuts it as the NIC did.
        let room = ETHERNET_MTU.saturating_sub(f.ip_hdr + f.l4_hdr);
        if f.proto == Proto::Tcp && payload > room && payload <= ETHERNET_MTU.saturating_sub(f.ip_hdr + 20) + FULL_SIZE_SLACK {
            payload = room;
        }
        let size = f.ip_hdr + f.l4_hdr + payload;
        if f.proto != Proto::Tcp {
            // no-flow traffic goes out as ARP, whose size is the protocol's (the drawn one is
            // a captured frame's: padding to Ethernet's 60 bytes, other EtherTypes)
            let size = if f.proto == Proto::Arp { ARP_LEN as u32 } else { size };
            push(f, dt_ns, p.direction, size, 0);
            return;
        }
        let fl = TcpFlags(p.tcp_flags);
        // a one-sided flow's data all comes from the side that is seen
        let dir = f.seen.unwrap_or(p.direction);
        if fl.has(TcpFlags::SYN) && f.target == u32::MAX {
            // the handshake came from the heads already (with drawn lengths, a SYN token is
            // a data segment like an early FIN: skipping it would cut long flows short at
            // MAX_SKIPPED, and the length bounds the flow anyway)
            self.stats.skipped_tokens += 1;
            f.skipped += 1;
            if f.skipped > MAX_SKIPPED {
                self.close(f);
            }
        } else if fl.has(TcpFlags::RST) && f.may_end_with(1) {
            // the LSTM resets the flow here
            push(f, dt_ns, dir, f.ip_hdr + f.l4_hdr, TcpFlags::RST | TcpFlags::ACK);
            f.phase = Phase::Done;
            if let Some(l) = f.queue.back_mut() {
                l.last = true;
            }
        } else if fl.has(TcpFlags::FIN) && f.may_end_with(seen_of_close(fin_close(self.heads, f.close.0), f.seen, f.close_acks)) {
            // the LSTM's FIN (at the flow's end), with its data (a server often sends its last bytes with FIN);
            // the heads finish the exchange
            push(f, dt_ns, dir, size, (p.tcp_flags & TcpFlags::PSH) | TcpFlags::FIN | TcpFlags::ACK);
            self.close_after(f, Some(dir));
        } else {
            // data; also a SYN, FIN or RST drawn before the flow's length is reached: its bytes
            // and timing, as a data segment (the close comes at the length)
            push(f, dt_ns, dir, size, (p.tcp_flags & TcpFlags::PSH) | TcpFlags::ACK);
        }
    }

    /// Ends a flow: the TCP teardown from the heads, then `last` on its final packet.
    fn close(&mut self, f: &mut LiveFlow) {
        self.close_after(f, None);
    }

    /// Ends a flow whose LSTM produced its first FIN (already queued, sent from `fin_from`):
    /// the rest of a FIN exchange comes from the heads. With `None`, the whole teardown does.
    fn close_after(&mut self, f: &mut LiveFlow, fin_from: Option<Direction>) {
        if f.proto == Proto::Tcp && f.packets > 0 {
            let (mut close, client_first) = f.close;
            let first = fin_from.unwrap_or(if client_first { Direction::Forward } else { Direction::Backward });
            let (a, b) = (first, if first == Direction::Forward { Direction::Backward } else { Direction::Forward });
            if fin_from.is_some() {
                close = fin_close(self.heads, close);
            }
            const FA: u16 = TcpFlags::FIN | TcpFlags::ACK;
            const ACK: u16 = TcpFlags::ACK;
            let mut all = [(Role::FinFirst, a, FA); 4 + MAX_CLOSE_ACKS];
            let n = match close {
                Close::FourWay => {
                    // the other side ACKs the first FIN (and, as drawn, again) before its own
                    let acks = usize::from(f.close_acks).min(MAX_CLOSE_ACKS);
                    all[1] = (Role::FinAck, b, ACK);
                    all[2..2 + acks].fill((Role::CloseAck, b, ACK));
                    all[2 + acks] = (Role::FinSecond, b, FA);
                    all[3 + acks] = (Role::LastAck, a, ACK);
                    4 + acks
                }
                Close::ThreeWay => {
                    all[1] = (Role::FinSecond, b, FA);
                    all[2] = (Role::LastAck, a, ACK);
                    3
                }
                Close::Rst => {
                    all[0] = (Role::Rst, a, TcpFlags::RST | ACK);
                    1
                }
                Close::None => 0,
            };
            let steps = &all[..n];
            let skip = usize::from(fin_from.is_some());
            let rest = &steps[skip.min(steps.len())..];
            for (i, &(role, dir, flags)) in rest.iter().enumerate() {
                let (dt, _) = self.heads.sample(role, &mut f.rng);
                let (size, flags) = if flags & TcpFlags::FIN != 0 {
                    // a FIN may carry the sender's last data, pushed, as in training; a steered
                    // flow's FIN carries what its drawn bytes have left ([`fin_payload`])
                    let payload = if f.bytes_goal.is_finite() {
                        let second = usize::from(role == Role::FinSecond);
                        let after = if second == 0 { f.fin_plan[1] } else { 0 };
                        fin_payload(f, f.fin_plan[second], after, rest.len() - i, self.heads.payload[role as usize][QUANTILES - 1])
                    } else {
                        self.heads.sample_payload(role, &mut f.rng)
                    };
                    (f.ip_hdr + f.l4_hdr + payload, if payload > 0 { flags | TcpFlags::PSH } else { flags })
                } else {
                    // ACKs and RSTs carry no payload (and the connection's options, as the
                    // wire stage lays out every segment after the handshake)
                    (f.ip_hdr + f.l4_hdr, flags)
                };
                push(f, dt * NS / self.cfg.multiplier, dir, size, flags);
            }
        }
        if let Some(l) = f.queue.back_mut() {
            l.last = true;
        }
        f.phase = Phase::Done;
    }

}

/// A component drawn with the LSTM's odds (`logits`, END left out when there) times each
/// component's `shares` of the packet wanted; `None` when no component the LSTM allows has any.
fn draw_among(logits: &[f32], shares: &[f32], weights: &mut [f32], rng: &mut SplitMix64) -> Option<usize> {
    let n = shares.len().min(logits.len());
    let max = logits[..n].iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights = &mut weights[..n];
    for ((w, &l), &s) in weights.iter_mut().zip(logits).zip(shares) {
        *w = exp_approx(l - max) * s;
    }
    (weights.iter().any(|&w| w > 0.0)).then(|| draw_weighted(weights, rng))
}

/// How a flow whose LSTM sent the first FIN closes: its drawn way if that is a FIN exchange,
/// else the way most flows complete one.
fn fin_close(heads: &TcpHeads, drawn: Close) -> Close {
    match drawn {
        Close::FourWay | Close::ThreeWay => drawn,
        _ if heads.close_p[Close::ThreeWay as usize] > heads.close_p[Close::FourWay as usize] => Close::ThreeWay,
        _ => Close::FourWay,
    }
}

/// A TCP flow drawn too short for its handshake, a data packet and its close is a part of a
/// conversation that the capture cut (a lone SYN of a scan, a stray ACK after a close): it
/// has no close, and an opening flow of fewer than 3 packets sends the first of its handshake
/// only. Returns the close.
fn fit_short(target: u32, close: (Close, bool), mid_stream: bool, seen: Option<Direction>) -> (Close, bool) {
    if target == u32::MAX || target > seen_of_heads(close.0, mid_stream, seen, 0) {
        return close;
    }
    (Close::None, close.1)
}

/// Seconds between the SYNs of an attempt nobody answers: its drawn duration spread over them,
/// or TCP's initial retransmission timeout (1 s, RFC 6298) without one.
fn retry_gap_s(d: &FlowDraw, target: u32) -> f64 {
    if target >= 2 && d.duration_s.is_finite() && d.duration_s > crate::model::aggregate::MIN_DURATION_S {
        d.duration_s / f64::from(target - 1)
    } else {
        1.0
    }
}

/// The TCP heads' typical seconds, worked out once per engine: per [opens with a
/// handshake][`Close`], and of one extra ACK of a close.
struct HeadSpans {
    heads: [[f64; 4]; 2],
    close_ack: f64,
}

fn head_spans(heads: &TcpHeads) -> HeadSpans {
    HeadSpans {
        heads: [false, true].map(|opens| CLOSES.map(|close| heads.typical_span_s(opens, close))),
        close_ack: heads.median_dt(Role::CloseAck),
    }
}

/// The mean data gap (ns) that spreads a drawn flow over its drawn duration: the gaps between
/// packets other than the TCP heads' own (the handshake's two, one per teardown packet) share
/// what the duration leaves after the heads' typical time (at least a quarter of it); 0 when
/// the flow has no data gap or no duration to spread.
fn data_pace_ns(d: &FlowDraw, target: u32, head_span_s: &HeadSpans, (close, acks): (Close, u8), mid_stream: bool, seen: Option<Direction>) -> f64 {
    let tcp = d.kind == FlowKind::Connected;
    // (the gaps between the seen packets: a one-sided flow shows fewer of the heads'; the
    // handshake's first packet follows no gap)
    let head_gaps = if tcp { seen_of_heads(close, mid_stream, seen, acks) - u32::from(!mid_stream) } else { 0 };
    let gaps = target.saturating_sub(1 + head_gaps);
    if gaps == 0 || !(d.duration_s.is_finite() && d.duration_s > crate::model::aggregate::MIN_DURATION_S) {
        return 0.0;
    }
    let head_s = if tcp { head_span_s.heads[usize::from(!mid_stream)][close as usize] + f64::from(acks) * head_span_s.close_ack } else { 0.0 };
    (d.duration_s - head_s).max(0.25 * d.duration_s) * NS / f64::from(gaps)
}

/// The payload a steered TCP flow's first and second FIN are to carry (a server's last data
/// often rides on its FIN): the heads' payload quantiles read at the flow's bytes level
/// within its size component, so a flow with more bytes than its like carries its kind's
/// bigger FIN (an IoT hub's 854-byte status report and not its 452-byte one), as in
/// training, where the report is the bulk of the flow. Nothing without a FIN exchange; no
/// second FIN payload for a one-sided flow (its close starts on the seen side, so the second
/// FIN is the other side's, unseen).
fn fin_plan(heads: &TcpHeads, close: Close, bytes_level: f64, one_sided: bool) -> [u32; 2] {
    match close {
        Close::FourWay | Close::ThreeWay => {
            let second = if one_sided { 0 } else { heads.payload_at(Role::FinSecond, bytes_level) };
            [heads.payload_at(Role::FinFirst, bytes_level), second]
        }
        Close::Rst | Close::None => [0; 2],
    }
}

/// A steered flow's FIN payload: none when its plan has none (so FINs carry data as often as
/// in training), else what the flow's drawn bytes have left after the headers of the `steps`
/// teardown packets to come (this one's among them) and the `after` bytes a later FIN is to
/// carry (at most the most the role carried in training).
fn fin_payload(f: &LiveFlow, planned: u32, after: u32, steps: usize, most: f64) -> u32 {
    if planned == 0 {
        return 0;
    }
    let headers = f64::from(f.ip_hdr + f.l4_hdr) * steps as f64;
    (f.bytes_goal - f.bytes as f64 - headers - f64::from(after)).clamp(0.0, most.max(0.0)) as u32
}

/// The packets of a TCP flow's heads that a capture point sees: of the handshake (unless seen
/// from the middle) all three, or SYN and ACK on the client's side, the SYN-ACK on the
/// server's; and of the close ([`seen_of_close`]).
fn seen_of_heads(close: Close, mid_stream: bool, seen: Option<Direction>, acks: u8) -> u32 {
    let opening = match (mid_stream, seen) {
        (true, _) => 0,
        (false, None) => 3,
        (false, Some(Direction::Forward)) => 2,
        (false, Some(Direction::Backward)) => 1,
    };
    opening + seen_of_close(close, seen, acks)
}

/// The packets of a close that a capture point sees: all of them (a four-way close's `acks`
/// extra ACKs too), or on one side (where the close starts) the first FIN and the last ACK,
/// or the RST.
fn seen_of_close(close: Close, seen: Option<Direction>, acks: u8) -> u32 {
    match (seen, close) {
        (None, Close::FourWay) => close.packets() + u32::from(acks),
        (None, _) => close.packets(),
        (Some(_), Close::FourWay | Close::ThreeWay) => 2,
        (Some(_), Close::Rst) => 1,
        (Some(_), Close::None) => 0,
    }
}

/// Appends a packet `dt_ns` after the flow's previous one (hidden when a one-sided flow's
/// other side sends it: it counts among neither the flow's seen packets nor its bytes).
fn push(f: &mut LiveFlow, dt_ns: f64, direction: Direction, size: u32, tcp_flags: u16) {
    if f.packets > 0 {
        f.t_ns += dt_ns.max(0.0).round() as i64;
    }
    let hidden = f.seen.is_some_and(|s| s != direction);
    f.packets = f.packets.saturating_add(1);
    if hidden {
        f.unseen += 1;
    } else {
        f.bytes = f.bytes.saturating_add(u64::from(size));
    }
    f.queue.push_back(Pending { ts_ns: f.t_ns, size, tcp_flags, backward: direction == Direction::Backward, last: false, hidden });
}

impl Iterator for Engine<'_> {
    type Item = SynthPacket;

    fn next(&mut self) -> Option<SynthPacket> {
        let p = match self.pending.take() {
            Some(p) => p,
            None => loop {
                let p = self.depart()?;
                if p.ts_ns >= self.warm_ns {
                    break p;
                }
                self.stats.warm_up_packets += 1;
            },
        };
        if p.hidden {
            self.stats.hidden_packets += 1;
        } else {
            self.stats.packets[p.kind().index()] += 1;
        }
        Some(SynthPacket { ts_ns: p.ts_ns - self.warm_ns, ..p })
    }
}

impl Engine<'_> {
    /// Runs the warm-up now (otherwise the first [`Iterator::next`] does): generates the
    /// packets before it and leaves them out, calling `keep_going` with the count so far every
    /// `step` packets; a producer shows its progress that way and stops when it returns false.
    /// Returns true once the warm-up is over (the next packet is the output's first), false
    /// when `keep_going` stopped it. Calling it again goes on where it stopped.
    pub fn warm_up(&mut self, step: u64, mut keep_going: impl FnMut(u64) -> bool) -> bool {
        let mut done = 0;
        while self.pending.is_none() {
            let Some(p) = self.depart() else { return true };
            if p.ts_ns >= self.warm_ns {
                self.pending = Some(p);
                break;
            }
            self.stats.warm_up_packets += 1;
            done += 1;
            if done >= step {
                done = 0;
                if !keep_going(self.stats.warm_up_packets) {
                    return false;
                }
            }
        }
        true
    }

    /// The next packet to leave on the engine's own clock (warm-up included).
    fn depart(&mut self) -> Option<SynthPacket> {
        loop {
            let top = self.heap.peek().map(|Reverse((t, _, _))| *t);
            // start every flow due before the next packet, and a few beyond (see START_AHEAD)
            if let Some(t) = self.start_due().filter(|&t| top.is_none_or(|top| t <= top) || self.unbegun < START_AHEAD) {
                self.start_flow(t);
                continue;
            }
            if self.starts_left == Some(0) && self.arrivals_live == 0 && self.live > 0 {
                // the last flow of a stream limited to so many flows has ended: the standing
                // flows end with it
                self.heap.clear();
                return None;
            }
            // The top entry stays in the heap while it is served: most of the time it is
            // re-keyed in place (one sift instead of a pop and a push).
            let Reverse((t, _, slot)) = *self.heap.peek()?;
            // The next packet comes from this flow again or from one of the root's two
            // children: their flows (thousands of them live, megabytes in all) are loaded now,
            // while this packet is served, instead of stalling the next call.
            for Reverse((_, _, next)) in self.heap.as_slice().iter().skip(1).take(2) {
                if let Some(f) = self.flows.get(*next as usize) {
                    crate::prefetch::prefetch_bytes((f as *const Option<LiveFlow>).cast(), std::mem::size_of::<Option<LiveFlow>>());
                }
            }
            if self.end_ns.is_some_and(|e| t >= e) {
                // every later packet is past the end too
                self.heap.clear();
                return None;
            }
            let s = slot as usize;
            let (ready, done) = self.flows[s].as_ref().map_or((0, true), |f| (f.queue.len(), f.phase == Phase::Done));
            if !done && ready <= 1 {
                // keep one packet of look-ahead so the last packet of a flow is known as such;
                // this flow is listed as short, with every other flow that ran short since
                // (a round fills flows; it does not touch the heap)
                self.round();
            }
            let Some(f) = self.flows[s].as_mut() else {
                self.heap.pop();
                continue;
            };
            let rekey = |heap: &mut BinaryHeap<Reverse<(i64, u64, u32)>>, key: (i64, u64, u32)| {
                if let Some(mut top) = heap.peek_mut() {
                    *top = Reverse(key);
                }
            };
            let Some(p) = f.queue.pop_front() else {
                // ended without (more) packets
                let begun = f.begun;
                if !begun {
                    self.unbegun -= 1;
                }
                self.heap.pop();
                self.release(slot);
                continue;
            };
            if p.ts_ns > t {
                // the key was a lower bound (a new flow or an empty look-ahead)
                f.queue.push_front(p);
                rekey(&mut self.heap, (p.ts_ns, f.id, slot));
                continue;
            }
            if !f.begun {
                f.begun = true;
                self.unbegun -= 1;
            }
            let p = f.record(&p);
            if f.queue.len() <= LOW_WATER && f.phase != Phase::Done && !f.listed {
                f.listed = true;
                self.short.push(slot);
            }
            match f.queue.front() {
                Some(n) => rekey(&mut self.heap, (n.ts_ns, f.id, slot)),
                None if f.phase == Phase::Done => {
                    self.heap.pop();
                    self.release(slot);
                }
                None => rekey(&mut self.heap, (p.ts_ns, f.id, slot)),
            }
            self.clock = p.ts_ns;
            return Some(p);
        }
    }
}

/// Aggregate draws behind [`Engine::pilot_rate`]'s packet rate.
pub const STEADY_DRAWS: usize = 200_000;

/// Packet and bit rate of a model's traffic at `arrival_scale` 1 (measured, not assumed).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Rate {
    pub pps: f64,
    /// Bits per second on the wire (Ethernet header included, no preamble/FCS).
    pub bps: f64,
}

impl Engine<'_> {
    /// The rate of the model's traffic with this config at `arrival_scale` 1, in its steady
    /// state: what `--pps`/`--mbps` targets divide by to get `arrival_scale`.
    ///
    /// Packets per second: with [`FlowLengths::Aggregate`], the mean packets per flow over
    /// [`STEADY_DRAWS`] draws of the aggregate model (with the engine's rules: handshake and
    /// teardown, kinds, the length cap) divided by the mean gap between flow starts. Flow
    /// sizes are heavy-tailed: the mean over the few thousand flows of a pilot run is off by
    /// ±15 % (a 15-minute soak at "100 kpps" ran at 114 kpps), over 200k draws by ~1 %. With
    /// [`FlowLengths::Lstm`], flow sizes are the LSTM's, so a pilot run measures them.
    /// Bytes per packet come from a pilot run of `sample_packets` packets (same seed, so
    /// deterministic), where the mean converges fast.
    pub fn pilot_rate(model: &Model, cfg: &EngineConfig, sample_packets: usize) -> Result<Rate, EngineError> {
        let cfg = EngineConfig { arrival_scale: 1.0, ..cfg.clone() };
        let mut e = Engine::new(model, cfg.clone())?;
        let (mut n, mut bits, mut last) = (0u64, 0f64, 0i64);
        for p in e.by_ref().filter(|p| !p.hidden).take(sample_packets.max(2)) {
            n += 1;
            bits += f64::from(p.size + 14) * 8.0;
            last = p.ts_ns;
        }
        let span = (last as f64 / NS).max(1e-9);
        let pps = match cfg.flow_lengths {
            FlowLengths::Aggregate => e.steady_pps(STEADY_DRAWS).unwrap_or(n as f64 / span),
            FlowLengths::Lstm => n as f64 / span,
        };
        Ok(Rate { pps, bps: pps * bits / n.max(1) as f64 })
    }

    /// Mean packets per flow over mean gap between flow starts, over `draws` aggregate draws,
    /// plus the standing flows' rates (`None` when no time passes: a model without gaps).
    fn steady_pps(&self, draws: usize) -> Option<f64> {
        let mut rng = SplitMix64::for_item(self.cfg.seed, u64::MAX - 1);
        let agg = &self.model.aggregate;
        let (mut t, mut packets) = (0f64, 0f64);
        for _ in 0..draws {
            let d = agg.sample_flow(&mut rng);
            t += d.gap_s / self.cfg.multiplier;
            if !self.allowed[d.kind.index()] {
                continue;
            }
            // every flow lands on its drawn length ([`fit_short`])
            packets += d.packets.round().clamp(1.0, f64::from(self.cfg.max_flow_packets));
        }
        // the standing flows run beside the arrivals
        let arrivals = (t > 0.0).then(|| packets / t);
        if self.standing_pps > 0.0 {
            return Some(arrivals.unwrap_or(0.0) + self.standing_pps);
        }
        arrivals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_replay_draws_among_the_components_that_carry_the_step() {
        // the LSTM prefers component 0, which is never the step's packet; 2 and 3 carry it
        // in a quarter and three quarters of their packets, and the LSTM likes them alike
        let (logits, shares) = ([3.0f32, 0.0, 0.0, 0.0, 5.0], [0.0f32, 0.0, 0.25, 0.75]);
        let mut w = vec![0.0; 5];
        let mut rng = SplitMix64::new(1);
        let mut n = [0usize; 4];
        for _ in 0..4000 {
            n[draw_among(&logits, &shares, &mut w, &mut rng).unwrap()] += 1;
        }
        assert_eq!((n[0], n[1]), (0, 0), "{n:?}");
        assert!((n[3] as f64 / 4000.0 - 0.75).abs() < 0.03, "{n:?}");
        // a model whose packets hold no handshake: nothing to replay
        assert_eq!(draw_among(&logits, &[0.0; 4], &mut w, &mut rng), None);
    }

    #[test]
    fn a_flows_fins_carry_the_payload_at_its_bytes_level() {
        let mut heads = TcpHeads::default();
        // first FINs: none in the lowest eighth of flows, then 100 bytes a step up to 3,200
        heads.payload[Role::FinFirst as usize] = std::array::from_fn(|i| if i < 4 { 0.0 } else { 100.0 * i as f64 });
        heads.payload[Role::FinSecond as usize] = [7.0; QUANTILES];
        assert_eq!(fin_plan(&heads, Close::FourWay, 1.0, false), [3200, 7]);
        assert_eq!(fin_plan(&heads, Close::ThreeWay, 0.5, false), [1600, 7]);
        assert_eq!(fin_plan(&heads, Close::FourWay, 0.05, false), [0, 7], "a small flow's FIN carries nothing");
        assert_eq!(fin_plan(&heads, Close::Rst, 1.0, false), [0, 0]);
        assert_eq!(fin_plan(&heads, Close::None, 1.0, false), [0, 0]);
        // one-sided: the second FIN is the unseen side's
        assert_eq!(fin_plan(&heads, Close::FourWay, 1.0, true), [3200, 0]);
    }

    #[test]
    fn a_one_sided_flow_is_as_short_as_its_seen_packets_allow() {
        let (c, s) = (Some(Direction::Forward), Some(Direction::Backward));
        // a whole opening flow needs its handshake (3), a data packet and a close (4) to close
        assert_eq!(fit_short(7, (Close::FourWay, true), false, None).0, Close::None);
        assert_eq!(fit_short(8, (Close::FourWay, true), false, None).0, Close::FourWay);
        // seen from the server: the SYN-ACK, and the first FIN and last ACK of its close
        assert_eq!(fit_short(3, (Close::FourWay, false), false, s).0, Close::None);
        assert_eq!(fit_short(4, (Close::FourWay, false), false, s).0, Close::FourWay);
        // seen from the client: SYN and ACK; from the middle: only the close
        assert_eq!(fit_short(5, (Close::ThreeWay, true), false, c).0, Close::ThreeWay);
        assert_eq!(fit_short(2, (Close::Rst, true), true, c).0, Close::Rst);
        // the data gaps of a drawn duration: the heads' seen gaps are left out
        let d = FlowDraw {
            gap_s: 0.0,
            kind: FlowKind::Connected,
            open_p: 1.0,
            unanswered_p: 0.0,
            one_sided_p: [0.0; 2],
            timestamps_p: 0.0,
            packets: 10.0,
            bytes: 1000.0,
            bytes_level: 0.5,
            duration_s: 1.0,
            server_port: 443,
            client_port: 0,
            ip_proto: 6,
            v6: false,
            client_rank: 0,
            server_rank: 0,
        };
        let spans = HeadSpans { heads: [[0.0; 4]; 2], close_ack: 0.0 };
        // 10 packets: 9 gaps, of which the handshake's 2 and the close's 4 (whole), the
        // handshake's 0 and the close's 2 (seen from the server)
        assert_eq!(data_pace_ns(&d, 10, &spans, (Close::FourWay, 0), false, None), NS / 3.0);
        assert_eq!(data_pace_ns(&d, 10, &spans, (Close::FourWay, 0), false, s), NS / 7.0);
        // a close with an extra ACK takes one more gap, and its typical time
        let spans = HeadSpans { heads: [[0.0; 4]; 2], close_ack: 0.25 };
        assert_eq!(data_pace_ns(&d, 10, &spans, (Close::FourWay, 1), false, None), 0.75 * NS / 2.0);
    }
}
