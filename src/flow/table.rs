//! The flow table: creates, updates and expires flows as capture time advances.
//!
//! Rules (all times are capture time):
//! - a TCP flow starts at a SYN, or mid-stream at its first packet when the capture started
//!   late; it ends when both FINs or a RST were seen and either the last ACK arrived or the
//!   close linger passed, or when idle for `tcp_idle`. A new SYN on a closed key starts a new flow.
//! - UDP/other port-based flows and no-flow (MAC-pair) groups end when idle for their timeout.
//! - IP fragments: the first carries the ports and is counted in its flow; later fragments
//!   are attached to the same flow through (src, dst, proto, IP id). Fragments whose first
//!   fragment was never seen are counted as orphans and grouped as no-flow traffic.
//! - Memory is bounded: finished flows leave the table at once, idle ones at each sweep, and
//!   past `max_flows` the least recently active tenth is evicted. Sweeps run every quarter of
//!   the shortest idle timeout of capture time (15 s by default).

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use crate::capture::{Packet, TcpFlags};

use super::key::{self, FlowKey, FlowKind};
use super::record::{Direction, EndReason, Endpoint, Flow, TcpState};

const NS: i64 = 1_000_000_000;

/// Timeouts and limits of the flow table (shared with the CLI flags).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    /// Idle timeout of TCP flows, seconds.
    pub tcp_idle_s: f64,
    /// Idle timeout of UDP/other port-based flows, seconds.
    pub udp_idle_s: f64,
    /// Idle timeout of no-flow (MAC-pair) groups, seconds.
    pub noflow_idle_s: f64,
    /// How long a closed TCP flow keeps collecting stray ACKs/RSTs, seconds.
    pub tcp_close_linger_s: f64,
    /// How long a first fragment's id stays matchable, seconds.
    pub fragment_timeout_s: f64,
    /// Cap on live flows; beyond it the least recently active are evicted.
    pub max_flows: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            tcp_idle_s: 300.0,
            udp_idle_s: 60.0,
            noflow_idle_s: 60.0,
            tcp_close_linger_s: 2.0,
            fragment_timeout_s: 30.0,
            max_flows: 1_000_000,
        }
    }
}

fn secs(s: f64) -> i64 {
    (s * NS as f64) as i64
}

/// Counters of the flow table.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowStats {
    /// Flows created, by kind.
    pub created: [u64; 3],
    pub fragments: u64,
    pub fragments_attached: u64,
    pub fragments_orphan: u64,
    pub evicted: u64,
    /// Largest number of live flows seen at once.
    pub peak_live: usize,
}

/// Where a packet went.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Assignment {
    pub flow_id: u64,
    pub kind: FlowKind,
    pub direction: Direction,
    /// 0-based position of the packet in its flow.
    pub position: u64,
    /// Capture time of the previous packet of the flow (`None` for its first packet).
    pub prev_ns: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FragKey {
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
    id: u32,
}

struct Timeouts {
    idle: [i64; 3],
    linger: i64,
    fragment: i64,
    sweep_every: i64,
}

/// Bidirectional flow table with a per-flow extension slot `X`.
pub struct FlowTable<X = ()> {
    /// Flows are boxed: the map's entries stay small (key + pointer), so the index of a large
    /// table stays in cache and growing it moves 48-byte entries, not whole flows.
    flows: FxHashMap<FlowKey, Box<Flow<X>>>,
    frags: FxHashMap<FragKey, (FlowKey, i64)>,
    t: Timeouts,
    max_flows: usize,
    counters: Counters,
    last_sweep_ns: Option<i64>,
    finished: Vec<Flow<X>>,
}

/// What new flows need besides the table (kept apart so a map entry can be held meanwhile).
#[derive(Default)]
struct Counters {
    next_id: u64,
    last_start_ns: Option<i64>,
    stats: FlowStats,
}

impl<X: Default> FlowTable<X> {
    pub fn new(cfg: &FlowConfig) -> Self {
        let idle = [secs(cfg.tcp_idle_s), secs(cfg.udp_idle_s), secs(cfg.noflow_idle_s)];
        let min_idle = idle.iter().copied().min().unwrap_or(NS).max(1);
        FlowTable {
            flows: FxHashMap::default(),
            frags: FxHashMap::default(),
            t: Timeouts {
                idle,
                linger: secs(cfg.tcp_close_linger_s),
                fragment: secs(cfg.fragment_timeout_s),
                // a quarter of the shortest idle timeout: each sweep walks every live flow, so
                // sweeping every second would cost more than the lookups on long captures
                sweep_every: (min_idle / 4).max(1),
            },
            max_flows: cfg.max_flows.max(1),
            counters: Counters::default(),
            last_sweep_ns: None,
            finished: Vec::new(),
        }
    }

    pub fn stats(&self) -> &FlowStats {
        &self.counters.stats
    }
    pub fn live(&self) -> usize {
        self.flows.len()
    }

    /// Accounts one packet at capture time `now_ns` (non-decreasing; the caller clamps
    /// timestamps that go backwards). Returns where it went and the flow's extension slot.
    pub fn observe(&mut self, p: &Packet, now_ns: i64) -> (Assignment, &mut Flow<X>) {
        if self.last_sweep_ns.is_none_or(|t| now_ns - t >= self.t.sweep_every) {
            self.sweep(now_ns);
        }
        let mut key = FlowKey::of(p).0;
        if let Some(frag) = p.fragment {
            self.counters.stats.fragments += 1;
            let fk = FragKey { src: p.src_ip, dst: p.dst_ip, proto: p.ip_proto, id: frag.id };
            if frag.offset == 0 {
                self.frags.insert(fk, (key, now_ns));
            } else if let Some((k, seen)) = self.frags.get_mut(&fk) {
                *seen = now_ns;
                key = *k;
                self.counters.stats.fragments_attached += 1;
            } else {
                self.counters.stats.fragments_orphan += 1;
            }
        }

        // One hash lookup on the common path: the entry decides continue / restart / new.
        if self.flows.len() >= self.max_flows && !self.flows.contains_key(&key) {
            self.evict(now_ns);
        }
        let t = &self.t;
        let live_before = self.flows.len();
        let mut entry = match self.flows.entry(key) {
            Entry::Occupied(mut o) => {
                let f = o.get();
                let idle = now_ns - f.last_ns > t.idle[f.kind.index()];
                let new_syn = f.tcp.closed()
                    && p.tcp().is_some_and(|t| t.flags.has(TcpFlags::SYN) && !t.flags.has(TcpFlags::ACK));
                let lingered = f.closed_ns.is_some_and(|c| now_ns - c > t.linger);
                if idle || new_syn || lingered {
                    let mut old = *o.insert(Box::new(Self::new_flow(&mut self.counters, key, p, now_ns)));
                    old.end = Some(if old.tcp.closed() && !idle { close_reason(&old.tcp) } else { Self::quiet_reason(&old) });
                    self.finished.push(old);
                }
                o
            }
            Entry::Vacant(v) => {
                self.counters.stats.peak_live = self.counters.stats.peak_live.max(live_before + 1);
                v.insert_entry(Box::new(Self::new_flow(&mut self.counters, key, p, now_ns)))
            }
        };
        let flow = entry.get_mut();
        let direction = flow.direction_of(p);
        let position = flow.total_packets();
        let prev_ns = (position > 0).then_some(flow.last_ns);
        flow.add(p, direction, now_ns);
        // After both FINs, the first pure ACK (no payload) is the last packet of the flow.
        let done = flow.tcp.fin[0]
            && flow.tcp.fin[1]
            && !flow.tcp.rst
            && p.payload_len() == 0
            && p.tcp().is_some_and(|t| {
                t.flags.0 & (TcpFlags::FIN | TcpFlags::SYN | TcpFlags::RST) == 0 && t.flags.has(TcpFlags::ACK)
            });
        let a = Assignment { flow_id: flow.id, kind: flow.kind, direction, position, prev_ns };
        if done {
            let mut f = *entry.remove();
            f.end = Some(EndReason::Fin);
            self.finished.push(f);
            let f = self.finished.last_mut().expect("just pushed");
            return (a, f);
        }
        (a, entry.into_mut().as_mut())
    }

    fn quiet_reason(f: &Flow<X>) -> EndReason {
        if f.tcp.closed() { close_reason(&f.tcp) } else { EndReason::Idle }
    }

    fn new_flow(c: &mut Counters, key: FlowKey, p: &Packet, now_ns: i64) -> Flow<X> {
        let kind = key.kind();
        let (sp, dp) = p.ports().unwrap_or((0, 0));
        let src = Endpoint { ip: p.src_ip, port: sp, mac: p.link.src_mac };
        let dst = Endpoint { ip: p.dst_ip, port: dp, mac: p.link.dst_mac };
        // A later fragment or no-flow traffic has no ports to judge by: the sender is the client.
        let sender_client = kind == FlowKind::NoFlow || p.is_later_fragment() || key::sender_is_client(p);
        let (client, server) = if sender_client { (src, dst) } else { (dst, src) };
        let gap_ns = c.last_start_ns.map(|t| now_ns - t);
        c.last_start_ns = Some(now_ns);
        c.stats.created[kind.index()] += 1;
        let id = c.next_id;
        c.next_id += 1;
        let mid_stream = kind == FlowKind::Connected
            && !p.tcp().is_some_and(|t| t.flags.has(TcpFlags::SYN));
        Flow {
            id,
            key,
            kind,
            ip_proto: p.ip_proto,
            ethertype: p.link.ethertype,
            ip_version: key::ip_version(p),
            client,
            server,
            first_ns: now_ns,
            last_ns: now_ns,
            gap_ns,
            packets: [0; 2],
            bytes: [0; 2],
            payload: [0; 2],
            fragments: 0,
            tcp: TcpState { mid_stream, ..TcpState::default() },
            end: None,
            closed_ns: None,
            ext: X::default(),
        }
    }

    /// Ends flows that went idle or finished lingering by `now_ns`, and forgets old fragment ids.
    pub fn sweep(&mut self, now_ns: i64) {
        self.last_sweep_ns = Some(now_ns);
        let t = &self.t;
        let finished = &mut self.finished;
        let start = finished.len();
        self.flows.retain(|_, f| {
            let idle = now_ns - f.last_ns > t.idle[f.kind.index()];
            let lingered = f.closed_ns.is_some_and(|c| now_ns - c > t.linger);
            if idle || lingered {
                let stand_in = placeholder(f);
                let mut g = std::mem::replace(f.as_mut(), stand_in);
                g.end = Some(if lingered && !idle { close_reason(&g.tcp) } else { Self::quiet_reason(&g) });
                finished.push(g);
                false
            } else {
                true
            }
        });
        finished[start..].sort_unstable_by_key(|f| f.id); // ids are unique
        let frag_timeout = t.fragment;
        self.frags.retain(|_, (_, seen)| now_ns - *seen <= frag_timeout);
    }

    /// Evicts the least recently active tenth of the table.
    fn evict(&mut self, now_ns: i64) {
        self.sweep(now_ns);
        if self.flows.len() < self.max_flows {
            return;
        }
        let mut lasts: Vec<i64> = self.flows.values().map(|f| f.last_ns).collect();
        let k = (lasts.len() / 10).max(1);
        let (_, cut, _) = lasts.select_nth_unstable(k - 1);
        let cut = *cut;
        let finished = &mut self.finished;
        let start = finished.len();
        let mut evicted = 0u64;
        self.flows.retain(|_, f| {
            if f.last_ns <= cut {
                let stand_in = placeholder(f);
                let mut g = std::mem::replace(f.as_mut(), stand_in);
                g.end = Some(EndReason::Evicted);
                finished.push(g);
                evicted += 1;
                false
            } else {
                true
            }
        });
        finished[start..].sort_unstable_by_key(|f| f.id); // ids are unique
        self.counters.stats.evicted += evicted;
    }

    /// Flows that ended since the last call, in order of their end (ties by id).
    pub fn drain_finished(&mut self) -> std::vec::Drain<'_, Flow<X>> {
        self.finished.drain(..)
    }

    /// Ends every live flow (end of a capture file) and forgets fragments and the last start.
    pub fn finish_all(&mut self) {
        let mut rest: Vec<Flow<X>> = self.flows.drain().map(|(_, f)| *f).collect();
        rest.sort_unstable_by_key(|f| f.id); // ids are unique
        for mut f in rest {
            f.end = Some(if f.tcp.closed() { close_reason(&f.tcp) } else { EndReason::EndOfCapture });
            self.finished.push(f);
        }
        self.frags.clear();
        self.counters.last_start_ns = None;
        self.last_sweep_ns = None;
    }
}

fn close_reason(t: &TcpState) -> EndReason {
    if t.rst { EndReason::Rst } else { EndReason::Fin }
}

/// A cheap stand-in left in a slot that `retain` is about to drop.
fn placeholder<X: Default>(f: &Flow<X>) -> Flow<X> {
    Flow {
        id: f.id,
        key: f.key,
        kind: f.kind,
        ip_proto: 0,
        ethertype: 0,
        ip_version: 0,
        client: Endpoint::default(),
        server: Endpoint::default(),
        first_ns: 0,
        last_ns: 0,
        gap_ns: None,
        packets: [0; 2],
        bytes: [0; 2],
        payload: [0; 2],
        fragments: 0,
        tcp: TcpState::default(),
        end: None,
        closed_ns: None,
        ext: X::default(),
    }
}

