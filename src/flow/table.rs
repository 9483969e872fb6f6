//! The flow table: creates, updates and expires flows as capture time advances.
//!
//! Rules (all times are capture time):
//! - a TCP flow starts at a SYN, or mid-stream at its first packet when the capture started
//!   late; it ends `tcp_close_linger_s` (2 s) after both FINs or a RST were seen (collecting the last
//!   ACK and stray ACKs, RSTs and retransmitted FINs until then), or when idle for `tcp_idle`.
//!   A new SYN on a closed key starts a new flow.
//! - UDP/other port-based flows and no-flow (MAC-pair) groups end when idle for their timeout.
//! - IP fragments: the first carries the ports and is counted in its flow; later fragments
//!   are attached to the same flow through (src, dst, proto, IP id). Fragments whose first
//!   fragment was never seen are counted as orphans and grouped as no-flow traffic.
//! - Memory is bounded: closed flows leave the table once their linger passed (checked at
//!   every packet, in order of their close), idle ones at each sweep, and
//!   past `max_flows` the least recently active tenth is evicted. Sweeps run every quarter of
//!   the shortest idle timeout of capture time (15 s by default).
//!
//! Layout: flows live in a slab (`Vec<Flow<X>>`, slots reused once their flow was drained)
//! found through [`FlowIndex`], 8 bytes per flow. A packet's flow can be prefetched a batch
//! ahead ([`FlowTable::prepare`], [`FlowTable::prefetch_flow`]): on captures with hundreds of
//! thousands of live flows the lookup is bound by cache misses, and overlapping them is what
//! makes the table fast.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::capture::{Packet, TcpFlags};

use super::index::{FlowIndex, Probe};
use super::key::{self, FlowKey, FlowKind};
use super::key::KeyScope;
use super::record::{Direction, EndReason, Endpoint, Flow, HOT_BYTES, OPEN, TcpState};

const NS: i64 = 1_000_000_000;
/// Slab slots reserved (address space only) when a table is made; see [`FlowTable::new`].
const RESERVED_SLOTS: usize = 1 << 20;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// In the index, receiving packets.
    Live,
    /// Ended, waiting for [`FlowTable::drain_finished`].
    Finished,
    /// Drained: may be overwritten by a new flow.
    Free,
}

/// A packet's flow key and its hash, computed once per packet (see [`FlowTable::prepare`]).
#[derive(Clone, Copy, Debug)]
pub struct Prepared {
    key: FlowKey,
    hash: u64,
    /// The packet's source is the key's `hi` side.
    sender_is_hi: bool,
}

/// Bidirectional flow table with a per-flow extension slot `X`.
pub struct FlowTable<X = ()> {
    index: FlowIndex,
    slots: Vec<Flow<X>>,
    state: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    frags: FxHashMap<FragKey, (FlowKey, i64)>,
    t: Timeouts,
    max_flows: usize,
    counters: Counters,
    last_sweep_ns: Option<i64>,
    /// Slots of ended flows, in order of their end.
    finished: Vec<u32>,
    /// Closed TCP flows still lingering, in order of their close. An entry whose slot holds
    /// another flow by then (it ended otherwise) is passed over.
    closing: VecDeque<Closing>,
}

/// A closed TCP flow waiting out its linger.
#[derive(Clone, Copy, Debug)]
struct Closing {
    end_ns: i64,
    id: u64,
    slot: u32,
    /// Its key's hash: the index entry to prefetch and remove.
    hash: u64,
}

/// What new flows need besides the table.
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
        let max_flows = cfg.max_flows.clamp(1, u32::MAX as usize / 2);
        // Address space for the slab up front: pages are committed only when flows use them
        // (RSS follows the live flows), and the slab never moves as it fills (growing by
        // doubling cost ~5 % of ingestion in copies). Past the reservation it grows as usual.
        let slots = Vec::with_capacity(max_flows.min(RESERVED_SLOTS));
        super::huge_pages::advise(&slots);
        FlowTable {
            index: FlowIndex::default(),
            slots,
            state: Vec::new(),
            free: Vec::new(),
            live: 0,
            frags: FxHashMap::default(),
            t: Timeouts {
                idle,
                linger: secs(cfg.tcp_close_linger_s),
                fragment: secs(cfg.fragment_timeout_s),
                // a quarter of the shortest idle timeout: each sweep walks every live flow, so
                // sweeping every second would cost more than the lookups on long captures
                sweep_every: (min_idle / 4).max(1),
            },
            // slot numbers are u32 (the index packs them with a hash tag)
            max_flows,
            counters: Counters::default(),
            last_sweep_ns: None,
            finished: Vec::new(),
            closing: VecDeque::new(),
        }
    }

    pub fn stats(&self) -> &FlowStats {
        &self.counters.stats
    }
    pub fn live(&self) -> usize {
        self.live
    }

    /// Computes a packet's flow key and hash and prefetches its index entry. Call it for a
    /// batch of packets, then [`FlowTable::prefetch_flow`] for each, then
    /// [`FlowTable::observe_prepared`] for each in order: the cache misses of the batch
    /// overlap instead of being paid one after another.
    #[inline]
    pub fn prepare(&self, p: &Packet) -> Prepared {
        let (key, sender_is_hi) = FlowKey::of(p);
        let hash = key.hash();
        self.index.prefetch(hash);
        Prepared { key, hash, sender_is_hi }
    }

    /// Prefetches the flow record a prepared packet most likely belongs to (a hint: the
    /// lookup in [`FlowTable::observe_prepared`] decides).
    #[inline]
    pub fn prefetch_flow(&self, prep: &Prepared) {
        if let Some(flow) = self.index.likely_slot(prep.hash).and_then(|s| self.slots.get(s as usize)) {
            crate::prefetch::prefetch_bytes((flow as *const Flow<X>).cast(), HOT_BYTES);
            if std::mem::size_of::<X>() > 0 {
                crate::prefetch::prefetch(&flow.ext);
            }
        }
    }

    /// Accounts one packet at capture time `now_ns` (non-decreasing; the caller clamps
    /// timestamps that go backwards). Returns where it went and the flow's record.
    pub fn observe(&mut self, p: &Packet, now_ns: i64) -> (Assignment, &mut Flow<X>) {
        let (key, sender_is_hi) = FlowKey::of(p);
        self.observe_prepared(p, Prepared { key, hash: key.hash(), sender_is_hi }, now_ns)
    }

    /// [`FlowTable::observe`] with the key from [`FlowTable::prepare`].
    pub fn observe_prepared(&mut self, p: &Packet, prep: Prepared, now_ns: i64) -> (Assignment, &mut Flow<X>) {
        if self.last_sweep_ns.is_none_or(|t| now_ns - t >= self.t.sweep_every) {
            self.sweep(now_ns);
        }
        self.end_lingered(now_ns);
        let Prepared { mut key, mut hash, sender_is_hi } = prep;
        // whether the packet's own key is its flow's (not so for later fragments)
        let mut own_key = true;
        if let Some(frag) = p.fragment {
            self.counters.stats.fragments += 1;
            let fk = FragKey { src: p.src_ip, dst: p.dst_ip, proto: p.ip_proto, id: frag.id };
            if frag.offset == 0 {
                self.frags.insert(fk, (key, now_ns));
            } else if let Some((k, seen)) = self.frags.get_mut(&fk) {
                *seen = now_ns;
                key = *k;
                hash = key.hash();
                own_key = false;
                self.counters.stats.fragments_attached += 1;
            } else {
                self.counters.stats.fragments_orphan += 1;
            }
        }

        let slot = match self.find(&key, hash) {
            Probe::Found { pos, slot } => {
                let f = &self.slots[slot as usize];
                let idle = now_ns - f.last_ns > self.t.idle[f.kind.index()];
                let new_syn = f.tcp.closed()
                    && p.tcp().is_some_and(|t| t.flags.has(TcpFlags::SYN) && !t.flags.has(TcpFlags::ACK));
                // (a closed flow whose linger passed has ended already: `end_lingered`)
                if idle || new_syn {
                    let old = &mut self.slots[slot as usize];
                    old.end = Some(if old.tcp.closed() && !idle { close_reason(&old.tcp) } else { quiet_reason(old) });
                    self.state[slot as usize] = Slot::Finished;
                    self.finished.push(slot);
                    let flow = new_flow(&mut self.counters, key, p, now_ns);
                    let new = self.alloc(flow);
                    self.index.repoint(pos, new);
                    new
                } else {
                    slot
                }
            }
            Probe::Vacant { mut pos } => {
                if self.live >= self.max_flows {
                    self.evict(now_ns);
                    pos = match self.find(&key, hash) {
                        Probe::Vacant { pos } => pos,
                        Probe::Found { .. } => unreachable!("eviction only removes keys"),
                    };
                }
                let flow = new_flow(&mut self.counters, key, p, now_ns);
                let new = self.alloc(flow);
                self.index.insert_at(pos, hash, new);
                self.live += 1;
                let stats = &mut self.counters.stats;
                stats.peak_live = stats.peak_live.max(self.live);
                new
            }
        };

        let flow = &mut self.slots[slot as usize];
        let direction = if own_key { flow.direction_by_key(sender_is_hi) } else { flow.direction_of(p) };
        let position = flow.total_packets();
        let prev_ns = (position > 0).then_some(flow.last_ns);
        let was_closed = flow.closed_ns != OPEN;
        flow.add(p, direction, now_ns);
        let a = Assignment { flow_id: flow.id, kind: flow.kind, direction, position, prev_ns };
        if !was_closed && flow.closed_ns != OPEN {
            // closed now: it lingers for the last ACK and stray segments (a peer's duplicate
            // ACK of a retransmitted FIN is part of this connection, not a new one)
            let end_ns = flow.closed_ns.saturating_add(self.t.linger);
            self.closing.push_back(Closing { end_ns, id: flow.id, slot, hash: flow.key.hash() });
        }
        (a, &mut self.slots[slot as usize])
    }

    #[inline]
    fn find(&self, key: &FlowKey, hash: u64) -> Probe {
        let slots = &self.slots;
        self.index.probe(hash, |s| slots[s as usize].key == *key)
    }

    /// Puts a new flow in a free slot (or a new one) and returns its slot.
    fn alloc(&mut self, flow: Flow<X>) -> u32 {
        match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = flow;
                self.state[s as usize] = Slot::Live;
                s
            }
            None => {
                let s = u32::try_from(self.slots.len()).expect("max_flows keeps slot numbers in u32");
                let cap = self.slots.capacity();
                self.slots.push(flow);
                if self.slots.capacity() != cap {
                    super::huge_pages::advise(&self.slots);
                }
                self.state.push(Slot::Live);
                s
            }
        }
    }

    /// Takes a live flow out of the index (its record stays until drained).
    fn retire(&mut self, slot: u32) {
        self.retire_hashed(slot, self.slots[slot as usize].key.hash());
    }

    /// [`FlowTable::retire`] with the hash of the flow's key.
    fn retire_hashed(&mut self, slot: u32, hash: u64) {
        match self.index.probe(hash, |s| s == slot) {
            Probe::Found { pos, .. } => self.index.remove_at(pos),
            Probe::Vacant { .. } => unreachable!("a live flow is in the index"),
        }
        self.state[slot as usize] = Slot::Finished;
        self.live -= 1;
    }

    /// Ends the live flows for which `end` gives a reason, in order of id.
    fn end_where(&mut self, mut end: impl FnMut(&Flow<X>) -> Option<EndReason>) -> u64 {
        let mut ended: Vec<(u64, u32)> = Vec::new();
        for (s, f) in self.slots.iter_mut().enumerate() {
            if self.state[s] != Slot::Live {
                continue;
            }
            if let Some(reason) = end(f) {
                f.end = Some(reason);
                ended.push((f.id, s as u32));
            }
        }
        ended.sort_unstable(); // ids are unique
        for &(_, s) in &ended {
            self.retire(s);
            self.finished.push(s);
        }
        ended.len() as u64
    }

    /// Ends the closed flows whose linger passed by `now_ns`, in order of their close.
    /// The next to end is prefetched at every call (its record, state and index entry went cold
    /// while it lingered; once loaded, the repeated hint finds them in the cache).
    fn end_lingered(&mut self, now_ns: i64) {
        while let Some(&Closing { end_ns, id, slot, hash }) = self.closing.front() {
            // (past `max_flows` entries the oldest ends early: a capture whose clock stands
            // still would otherwise keep every closed flow queued)
            if end_ns >= now_ns && self.closing.len() <= self.max_flows {
                let s = slot as usize;
                crate::prefetch::prefetch(&self.state[s]);
                crate::prefetch::prefetch_bytes((&self.slots[s] as *const Flow<X>).cast(), HOT_BYTES);
                self.index.prefetch(hash);
                break;
            }
            self.closing.pop_front();
            let s = slot as usize;
            if self.state[s] == Slot::Live && self.slots[s].id == id {
                self.slots[s].end = Some(close_reason(&self.slots[s].tcp));
                self.retire_hashed(slot, hash);
                self.finished.push(slot);
            }
        }
    }

    /// Ends flows that went idle or finished lingering by `now_ns`, and forgets old fragment ids.
    pub fn sweep(&mut self, now_ns: i64) {
        self.last_sweep_ns = Some(now_ns);
        self.end_lingered(now_ns);
        let idle = self.t.idle;
        self.end_where(|f| (now_ns - f.last_ns > idle[f.kind.index()]).then(|| quiet_reason(f)));
        let frag_timeout = self.t.fragment;
        self.frags.retain(|_, (_, seen)| now_ns - *seen <= frag_timeout);
    }

    /// Evicts the least recently active tenth of the table.
    fn evict(&mut self, now_ns: i64) {
        self.sweep(now_ns);
        if self.live < self.max_flows {
            return;
        }
        let mut lasts: Vec<i64> =
            self.slots.iter().zip(&self.state).filter(|(_, s)| **s == Slot::Live).map(|(f, _)| f.last_ns).collect();
        let k = (lasts.len() / 10).max(1);
        let (_, cut, _) = lasts.select_nth_unstable(k - 1);
        let cut = *cut;
        let evicted = self.end_where(|f| (f.last_ns <= cut).then_some(EndReason::Evicted));
        self.counters.stats.evicted += evicted;
    }

    /// Flows that ended since the last call, in order of their end (ties by id). Their slots
    /// are reused once the iterator has passed them (or is dropped).
    pub fn drain_finished(&mut self) -> Finished<'_, X> {
        Finished { slots: &self.slots, state: &mut self.state, ids: self.finished.drain(..), free: &mut self.free }
    }

    /// Ends every live flow (end of a capture file) and forgets fragments and the last start.
    pub fn finish_all(&mut self) {
        self.end_where(|f| Some(if f.tcp.closed() { close_reason(&f.tcp) } else { EndReason::EndOfCapture }));
        debug_assert!(self.index.is_empty());
        self.closing.clear();
        self.frags.clear();
        self.counters.last_start_ns = None;
        self.last_sweep_ns = None;
    }
}

/// Iterator over ended flows ([`FlowTable::drain_finished`]).
pub struct Finished<'a, X> {
    slots: &'a [Flow<X>],
    state: &'a mut [Slot],
    ids: std::vec::Drain<'a, u32>,
    free: &'a mut Vec<u32>,
}

impl<'a, X> Iterator for Finished<'a, X> {
    type Item = &'a Flow<X>;

    fn next(&mut self) -> Option<&'a Flow<X>> {
        let s = self.ids.next()?;
        self.state[s as usize] = Slot::Free;
        self.free.push(s);
        Some(&self.slots[s as usize])
    }
}

impl<X> Drop for Finished<'_, X> {
    fn drop(&mut self) {
        for s in self.ids.by_ref() {
            self.state[s as usize] = Slot::Free;
            self.free.push(s);
        }
    }
}

fn quiet_reason<X>(f: &Flow<X>) -> EndReason {
    if f.tcp.closed() { close_reason(&f.tcp) } else { EndReason::Idle }
}

/// Whether `client` is the `hi` side of `key`: by address, and by port when the addresses
/// are equal (a flow started by a later fragment has no ports, but its addresses decide).
fn client_is_hi(key: &FlowKey, client: &Endpoint) -> bool {
    match key.scope {
        KeyScope::MacPair => {
            let mut mac = [0u8; 16];
            mac[..6].copy_from_slice(&client.mac);
            mac == key.hi && key.lo != key.hi
        }
        KeyScope::FiveTuple | KeyScope::IpPair => {
            if key.lo != key.hi { client.ip == key.hi } else { client.port == key.hi_port && key.lo_port != key.hi_port }
        }
    }
}

fn new_flow<X: Default>(c: &mut Counters, key: FlowKey, p: &Packet, now_ns: i64) -> Flow<X> {
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
    let mid_stream = kind == FlowKind::Connected && !p.tcp().is_some_and(|t| t.flags.has(TcpFlags::SYN));
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
        closed_ns: OPEN,
        client_is_hi: client_is_hi(&key, &client),
        ext: X::default(),
    }
}

fn close_reason(t: &TcpState) -> EndReason {
    if t.rst { EndReason::Rst } else { EndReason::Fin }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{NetLayer, TcpInfo, Transport};
    use crate::rng::SplitMix64;

    fn udp(src: ([u8; 4], u16), dst: ([u8; 4], u16), t: i64) -> Packet {
        let mut p = Packet { net: NetLayer::Ipv4, ip_proto: 17, ts_ns: t, ..Default::default() };
        p.src_ip[..4].copy_from_slice(&src.0);
        p.dst_ip[..4].copy_from_slice(&dst.0);
        p.transport = Transport::Udp { src_port: src.1, dst_port: dst.1 };
        p
    }

    /// The hot path's direction (from the key's order) agrees with the endpoints' verdict,
    /// including hosts talking to themselves and flows started by either side.
    #[test]
    fn direction_by_key_agrees_with_endpoints() {
        let ends = [([10, 0, 0, 1], 53), ([10, 0, 0, 2], 40000), ([10, 0, 0, 1], 40000), ([10, 0, 0, 2], 53)];
        let mut rng = SplitMix64::new(3);
        let mut table: FlowTable = FlowTable::new(&FlowConfig::default());
        for t in 0..2000 {
            let a = ends[rng.below(4) as usize];
            let b = ends[rng.below(4) as usize];
            let p = udp(a, b, t);
            let (asg, flow) = table.observe(&p, t);
            assert_eq!(asg.direction, flow.direction_of(&p), "{a:?} -> {b:?}");
        }
        assert!(table.live() > 4);
    }

    fn tcp(src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: u16, t: i64) -> Packet {
        let mut p = udp(src, dst, t);
        p.ip_proto = 6;
        p.transport = Transport::Tcp(TcpInfo { src_port: src.1, dst_port: dst.1, flags: TcpFlags(flags), ..TcpInfo::default() });
        p
    }

    /// A closed connection keeps the segments of its linger (the last ACK, a peer's duplicate
    /// ACK of a retransmitted FIN) and ends once the linger passed, in time order; a segment
    /// after the linger or a new SYN starts a new flow.
    #[test]
    fn a_closed_flow_keeps_its_stray_acks_until_its_linger_passed() {
        const S: u16 = TcpFlags::SYN;
        const A: u16 = TcpFlags::ACK;
        const F: u16 = TcpFlags::FIN | TcpFlags::ACK;
        let (c, srv) = (([10, 0, 0, 1], 40000), ([10, 0, 0, 2], 80));
        let ms = NS / 1000;
        let cfg = FlowConfig { tcp_close_linger_s: 1.0, ..FlowConfig::default() };
        let mut table: FlowTable = FlowTable::new(&cfg);
        // handshake, the server closes first, its FIN is retransmitted and ACKed twice
        let script = [(c, srv, S), (srv, c, S | A), (c, srv, A), (srv, c, F), (srv, c, F), (c, srv, A), (c, srv, F), (srv, c, A), (c, srv, A)];
        let mut ids = Vec::new();
        for (i, &(from, to, flags)) in script.iter().enumerate() {
            let t = i as i64 * ms;
            ids.push(table.observe(&tcp(from, to, flags, t), t).0.flow_id);
            assert_eq!(table.drain_finished().count(), 0, "ended at packet {i}");
        }
        assert!(ids.iter().all(|&id| id == ids[0]), "the stray ACK after the last ACK started a flow: {ids:?}");
        // the close was at packet 6 (both FINs): it ends when the linger has passed
        let closed = 6 * ms;
        table.observe(&udp(([10, 0, 0, 9], 5000), ([10, 0, 0, 8], 53), closed + NS), closed + NS);
        assert_eq!(table.drain_finished().count(), 0, "ended before its linger passed");
        table.observe(&udp(([10, 0, 0, 9], 5000), ([10, 0, 0, 8], 53), closed + NS + 1), closed + NS + 1);
        let ended: Vec<(u64, u64, Option<EndReason>)> = table.drain_finished().map(|f| (f.id, f.total_packets(), f.end)).collect();
        assert_eq!(ended, [(ids[0], 9, Some(EndReason::Fin))]);
        // a segment after the linger is a flow of its own, seen from the middle
        let t = closed + 2 * NS;
        let (asg, flow) = table.observe(&tcp(c, srv, A, t), t);
        assert!(asg.flow_id != ids[0] && flow.tcp.mid_stream);
        // a new SYN on a key just closed starts a new connection at once
        let c2 = ([10, 0, 0, 1], 40001);
        let mut t = 10 * NS;
        let mut first = None;
        for &(from, to, flags) in &[(c2, srv, S), (srv, c2, S | A), (c2, srv, F), (srv, c2, F), (c2, srv, A)] {
            first.get_or_insert(table.observe(&tcp(from, to, flags, t), t).0.flow_id);
            t += ms;
        }
        let next = table.observe(&tcp(c2, srv, S, t), t).0.flow_id;
        let ended: Vec<u64> = table.drain_finished().map(|f| f.id).collect();
        assert!(next != first.unwrap() && ended == [first.unwrap()], "{first:?} then {next}: {ended:?} ended");
    }

    /// A capture whose clock stands still keeps no more closed flows than `max_flows` waiting
    /// out their linger: the oldest end first.
    #[test]
    fn closed_flows_waiting_on_a_stopped_clock_are_bounded() {
        const S: u16 = TcpFlags::SYN;
        const A: u16 = TcpFlags::ACK;
        const R: u16 = TcpFlags::RST | TcpFlags::ACK;
        let cfg = FlowConfig { max_flows: 8, ..FlowConfig::default() };
        let mut table: FlowTable = FlowTable::new(&cfg);
        let srv = ([10, 0, 0, 2], 80);
        let mut ended = 0;
        for port in 0..100u16 {
            let c = ([10, 0, 0, 1], 40000 + port);
            for (from, to, flags) in [(c, srv, S), (srv, c, S | A), (c, srv, R)] {
                table.observe(&tcp(from, to, flags, 0), 0);
            }
            assert!(table.closing.len() <= 9 && table.live() <= 9, "{} queued, {} live", table.closing.len(), table.live());
            ended += table.drain_finished().count();
        }
        table.finish_all();
        ended += table.drain_finished().count();
        assert_eq!(ended, 100, "every flow comes out once");
    }

    /// Slots are reused after their flows were drained, and every flow comes out exactly once.
    #[test]
    fn finished_flows_come_out_once_and_slots_are_reused() {
        let cfg = FlowConfig { udp_idle_s: 1.0, ..FlowConfig::default() };
        let mut table: FlowTable = FlowTable::new(&cfg);
        let mut seen = Vec::new();
        for round in 0..50i64 {
            let t = round * 2 * NS; // every round is past the previous round's idle timeout
            for port in 0..20u16 {
                table.observe(&udp(([10, 0, 0, 1], 1000 + port), ([10, 0, 0, 2], 53), t), t);
                seen.extend(table.drain_finished().map(|f| f.id));
            }
        }
        table.finish_all();
        seen.extend(table.drain_finished().map(|f| f.id));
        assert_eq!(seen.len(), 1000);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 1000, "a flow came out twice");
        assert!(table.slots.len() <= 40, "slab grew to {} slots for 20 live flows", table.slots.len());
    }
}
