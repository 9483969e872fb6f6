//! Aggregate level: when flows start and what they are.
//!
//! This module owns the traffic-wide distributions: the gap between flow starts (a GMM over
//! log10 seconds), the flow-kind mix, per kind a GMM over (log10 packets, log10 bytes, log10
//! duration), and the categorical tables a header-level comparison needs (NetShare's metrics):
//! server ports with their protocol per kind, the IP-protocol mix and IPv6 share per kind, and
//! host popularity as rank–frequency distributions of flows per client and per server.
//!
//! Flow size and service go together (a long UDP stream to one port, short DNS lookups to
//! another), so each component of a kind's size GMM carries its own port table: the ports of
//! the training flows it claims, with its own weights in each quarter of them by bytes (a
//! component's large flows are downloads from a web server, its small ones something else).
//! A draw picks the component, then its size, then its port at its size's quarter.

use tch::{Kind, Tensor};

use super::client_port::{self, ClientPorts};
use super::dataset::FlowRow;
use super::gmm::{Gmm, GmmError, GmmFitOptions};
use super::marginals::Marginals;
use super::shared_hosts::{self, SharedHosts};
use super::standing::{self, StandingFlow};
use crate::flow::{Direction, FlowKind};
use crate::rng::{SplitMix64, Weyl, ROOT3, ROOT7, SILVER};

/// Below this many flows, a kind's size GMM has one component.
pub const FEW_FLOWS: usize = 8;

/// Which dimensions of a flow GMM (log10 packets, log10 bytes, log10 duration) are discrete.
pub const FLOW_STEPS: [bool; 3] = [true, false, false];

/// Floors before log10 (seconds; packets and bytes are ≥ 1).
pub const MIN_GAP_S: f64 = 1e-6;
pub const MIN_DURATION_S: f64 = 1e-6;
/// Gaps between flow starts longer than this are breaks in the capture (traces of sessions
/// recorded years apart, joined into one file), not arrivals: the gap model leaves them out.
pub const MAX_GAP_S: f64 = 3600.0;
/// Longest rank tables kept (rarer hosts share the last rank's weight).
pub const MAX_RANKS: usize = 1024;
/// Server ports kept per kind (the rest are "other": the address plan picks).
pub const MAX_PORTS: usize = 64;

/// Bins of a flow's bytes level (its place among its size component's flows) that each carry
/// their own weights over the component's port table (`Aggregate::port_by_bytes`).
pub const BYTES_BINS: usize = 4;

/// The first host rank given to hosts of their own (`Aggregate::fresh_rank`): past every rank of
/// the tables, so that a fresh host is none of the table's.
pub const FRESH_HOSTS: u32 = MAX_RANKS as u32;

/// The tensor of the connected flows' one-sided shares, [components, 2].
const ONE_SIDED: &str = "one_sided_connected";
/// Name of the per-component timestamp shares of flows seen from the middle.
const TIMESTAMPS: &str = "mid_stream_timestamps";

/// One row of a categorical table: a value and its probability.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weighted<T> {
    pub value: T,
    pub p: f64,
}

/// The aggregate model.
pub struct Aggregate {
    pub kind_p: [f64; 3],
    pub gap: Option<Gmm>,
    /// The training gaps' own marginal inside each component of `gap` ([`Marginals`]: a DHCP
    /// flood's clients 20.00 ± 0.01 ms apart, where a Gaussian's least spread is ± 0.05 ms);
    /// `None`: models before it.
    pub gap_marginals: Option<Marginals>,
    /// Smallest and largest log10 gap in the training data (draws are clamped into it).
    pub gap_range: [f64; 2],
    pub flow: [Option<Gmm>; 3],
    /// Per kind: the training flows' own marginals inside each component of `flow[kind]`
    /// ([`Marginals`]); `None`: models before them, the Gaussian marginals as fitted.
    pub marginals: [Option<Marginals>; 3],
    /// (port, ip protocol) per kind.
    pub ports: [Vec<Weighted<(u16, u8)>>; 3],
    /// Per kind, per component of `flow[kind]`: the (port, ip protocol) of the training flows
    /// that component claims (empty: models before this table, or a component without
    /// port-carrying flows; the kind's table is used then).
    pub component_ports: [Vec<Vec<Weighted<(u16, u8)>>>; 3],
    /// Per kind, per component of `flow[kind]`, per [`BYTES_BINS`] bin of the bytes level: the
    /// weights of the rows of the component's port table among its flows in that bin, shrunk
    /// towards the component's weights by one flow ([`port_weights_by_bytes`]). Inside a size
    /// component the service still goes with the size: netshare_caida's largest component
    /// holds web downloads of 40 packets and a 4-packet flow to port 27011, which with one
    /// table for the component got 40-packet flows too. Empty: models before it; the
    /// component's table holds at every level then.
    pub port_by_bytes: [Vec<[Vec<f64>; BYTES_BINS]>; 3],
    pub proto: [Vec<Weighted<u8>>; 3],
    pub v6_share: [f64; 3],
    pub client_rank: Vec<f64>,
    pub server_rank: Vec<f64>,
    /// Per kind, per component of `flow[kind]`: the client and the server host ranks (indexes
    /// into the global rank tables above) of the training flows that component claims, so
    /// the hosts of a capture's big flows carry its big flows' packets (empty: models before
    /// these tables; the global tables are used then).
    pub component_ranks: [Vec<[Vec<f64>; 2]>; 3],
    /// Per side (client, server): the first rank of the hosts seen in a single flow. A host
    /// seen once stands for the hosts that come and go (a DHCP flood's clients, a scan's
    /// targets): a flow drawn with such a rank gets a host of its own ([`FRESH_HOSTS`]).
    /// `u32::MAX`: none (or a model before it: every drawn rank is a table host).
    pub fresh_rank: [u32; 2],
    /// Hosts seen on both sides, found at one side's rank whichever side they are on
    /// ([`SharedHosts`]; empty: models before the table, every host one per side).
    pub shared_hosts: SharedHosts,
    /// Probability that a TCP flow is seen from its SYN (else from the middle: a capture of a
    /// backbone link for milliseconds sees almost no opening; one of a LAN for hours, most).
    pub tcp_open_p: f64,
    /// Per component of the connected flows' GMM: the same probability among the flows it
    /// claims (a lone SYN of a scan opens; a lone ACK after a close does not). Empty: models
    /// before it; `tcp_open_p` holds for every component then.
    pub component_open_p: Vec<f64>,
    /// Per component of the connected flows' GMM: the share of its opening flows that nobody
    /// answered (a scan's or a dead server's SYNs, retransmitted). Empty: models before it
    /// (every flow answered).
    pub component_unanswered_p: Vec<f64>,
    /// Per component of the connected flows' GMM: the shares of its answered flows of which
    /// only the client's packets, or only the server's, were seen (a tap on one direction of a
    /// backbone link sees a SYN-ACK and no SYN, a FIN and no reply). Empty: models before it
    /// (both sides of every flow seen).
    pub component_one_sided_p: Vec<[f64; 2]>,
    /// Per component of the connected flows' GMM, per row of its port table
    /// (`component_ports`): the same shares among the flows of that port, shrunk towards the
    /// component's by one flow ([`one_sided_by_port`]). The side a tap sees goes with the
    /// service: a backbone link's one direction carries web servers' downloads (port 80 seen
    /// from the server) and uploads to other ports (seen from the client). Empty: models
    /// before it; the component's shares hold for every port then.
    pub port_one_sided_p: Vec<Vec<[f64; 2]>>,
    /// Per component of the connected flows' GMM: the share of its flows seen from the middle
    /// whose segments carry the timestamp option (a flow with a handshake negotiates it in its
    /// SYN; one without shows it only in its segments' 12 bytes of options, which a backbone
    /// capture's flows mostly carry). Empty: models before it, or captures whose mid-stream
    /// flows never carry it (no option on such flows).
    pub component_timestamps_p: Vec<f64>,
    /// Fixed client ports per service (empty: models before the table; every client port is
    /// then the address plan's ephemeral pick).
    pub client_ports: ClientPorts,
    /// Flows that run for the whole stream, outside the arrivals above (empty: models before
    /// them, or captures without such flows).
    pub standing: Vec<StandingFlow>,
}

/// Low-discrepancy draws of a stream's flow kinds, per kind its size components, per
/// component the rows of its port table, and the components of the gaps between flow starts
/// ([`Aggregate::sample_flow_with`]): a share of p comes up within a few flows of n·p in any n
/// flows in a row, where independent draws scatter by √(n·p). A capture's mix is what a model
/// should give back; the scatter of a small sample is not.
#[derive(Clone, Debug)]
pub struct Strata {
    kind: Weyl,
    component: [Weyl; 3],
    /// Per kind, per size component: the row of the component's port table (made on first use).
    port: [Vec<Weyl>; 3],
    /// Start points of the port sequences.
    starts: SplitMix64,
    /// The component of the gap to the next flow start.
    gap: Weyl,
}

impl Strata {
    pub fn new(rng: &mut SplitMix64) -> Strata {
        Strata {
            kind: Weyl::new(rng),
            component: std::array::from_fn(|_| Weyl::with_step(SILVER, rng)),
            port: Default::default(),
            starts: SplitMix64::new(rng.next_u64()),
            gap: Weyl::with_step(ROOT7, rng),
        }
    }

    /// The next point of the port sequence of kind `k`'s size component `c`.
    fn port_u(&mut self, k: usize, c: usize) -> f64 {
        let seqs = &mut self.port[k];
        while seqs.len() <= c {
            seqs.push(Weyl::with_step(ROOT3, &mut self.starts));
        }
        seqs[c].next_f64()
    }
}

/// A flow drawn from the aggregate model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlowDraw {
    pub gap_s: f64,
    pub kind: FlowKind,
    /// A connected flow: the probability that it is seen from its SYN (its component's).
    pub open_p: f64,
    /// A connected flow that opens: the probability that nothing answers it (its component's).
    pub unanswered_p: f64,
    /// A connected flow that is answered: the probabilities that only its client's packets,
    /// or only its server's, are seen (its component's).
    pub one_sided_p: [f64; 2],
    /// A connected flow seen from the middle: the probability that its segments carry the
    /// timestamp option (its component's).
    pub timestamps_p: f64,
    pub packets: f64,
    pub bytes: f64,
    /// Where `bytes` lies among the bytes of its size component's flows (0 the fewest, 1 the
    /// most; 0.5 without a size model): what couples a flow's parts that the component's
    /// table gives apart, such as the payload its FIN carries ([`crate::synth`]).
    pub bytes_level: f64,
    pub duration_s: f64,
    pub server_port: u16,
    /// A fixed client port ([`ClientPorts::draw`], which the engine calls on a stream of its
    /// own); 0: the address plan picks an ephemeral one.
    pub client_port: u16,
    pub ip_proto: u8,
    pub v6: bool,
    pub client_rank: u32,
    pub server_rank: u32,
}

fn normalise<T: Copy>(mut v: Vec<(T, f64)>) -> Vec<Weighted<T>> {
    let total: f64 = v.iter().map(|x| x.1).sum();
    if total <= 0.0 {
        return Vec::new();
    }
    v.iter_mut().for_each(|x| x.1 /= total);
    v.into_iter().map(|(value, p)| Weighted { value, p }).collect()
}

/// Draws from a categorical table (None when empty).
pub fn draw<T: Copy>(t: &[Weighted<T>], rng: &mut SplitMix64) -> Option<T> {
    draw_index(t, rng).map(|i| t[i].value)
}

/// As [`draw`], the row's index.
fn draw_index<T>(t: &[Weighted<T>], rng: &mut SplitMix64) -> Option<usize> {
    index_at(t.iter().map(|w| w.p), rng.next_f64())
}

/// The row where `u` in 0..1 falls among weights summing to 1 (the last where rounding leaves it past them).
fn index_at(weights: impl ExactSizeIterator<Item = f64>, mut u: f64) -> Option<usize> {
    let n = weights.len();
    for (i, p) in weights.enumerate() {
        u -= p;
        if u < 0.0 {
            return Some(i);
        }
    }
    n.checked_sub(1)
}

/// Port table of flows: the MAX_PORTS most frequent (port, protocol) pairs, by share of flows.
fn port_table<'a>(rows: impl Iterator<Item = &'a FlowRow>) -> Vec<Weighted<(u16, u8)>> {
    let mut pc: rustc_hash::FxHashMap<(u16, u8), f64> = Default::default();
    for r in rows.filter(|r| r.kind != FlowKind::NoFlow) {
        *pc.entry((r.server_port, r.ip_proto)).or_default() += 1.0;
    }
    let mut pv: Vec<((u16, u8), f64)> = pc.into_iter().collect();
    pv.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    pv.truncate(MAX_PORTS);
    normalise(pv)
}

/// The typical (median) connected flow's lifetime: flows first seen within it from their
/// capture's start are mostly flows that were in progress when the capture began, not flows
/// that open without a handshake ([`open_share`]). `None`: no connected flows.
fn settle_s(rows: &[FlowRow]) -> Option<f64> {
    let mut d: Vec<f64> = rows.iter().filter(|r| r.kind == FlowKind::Connected).map(|r| r.duration_s).collect();
    d.sort_by(f64::total_cmp);
    d.get(d.len() / 2).copied()
}

/// Share of the TCP flows among `rows` seen from their SYN, leaving out those first seen
/// within `settle_s` of their capture's start when at least 8 flows remain; `None` when there
/// are no TCP flows.
fn open_share<'a>(rows: impl Iterator<Item = &'a FlowRow>, settle_s: f64) -> Option<f64> {
    let conn: Vec<&FlowRow> = rows.filter(|r| r.kind == FlowKind::Connected).collect();
    if conn.is_empty() {
        return None;
    }
    let later: Vec<&FlowRow> = conn.iter().copied().filter(|r| r.since_capture_start_s > settle_s).collect();
    let pool = if later.len() >= 8 { later } else { conn };
    Some(pool.iter().filter(|r| !r.mid_stream).count() as f64 / pool.len() as f64)
}

/// Shares of the answered TCP flows among `rows` seen from the client's side only and from the
/// server's side only (0 without any).
fn one_sided_shares<'a>(rows: impl Iterator<Item = &'a FlowRow>) -> [f64; 2] {
    let (mut answered, mut sides) = (0u64, [0u64; 2]);
    for r in rows.filter(|r| r.kind == FlowKind::Connected && !r.unanswered) {
        answered += 1;
        if let Some(d) = r.one_side {
            sides[usize::from(d == Direction::Backward)] += 1;
        }
    }
    sides.map(|n| if answered == 0 { 0.0 } else { n as f64 / answered as f64 })
}

/// [`one_sided_shares`] per row of a component's port `table`, among the component's `rows`
/// of that port, shrunk towards the component's shares `prior` by one flow: a port of one
/// flow gets half its flow's side and half the component's, a port of many its own.
fn one_sided_by_port<'a>(rows: impl Iterator<Item = &'a FlowRow> + Clone, table: &[Weighted<(u16, u8)>], prior: [f64; 2]) -> Vec<[f64; 2]> {
    table
        .iter()
        .map(|w| {
            let of_port = rows.clone().filter(|r| (r.server_port, r.ip_proto) == w.value);
            let answered = of_port.clone().filter(|r| r.kind == FlowKind::Connected && !r.unanswered).count() as f64;
            let own = one_sided_shares(of_port);
            [0, 1].map(|i| (own[i] * answered + prior[i]) / (answered + 1.0))
        })
        .collect()
}

/// The bin ([`BYTES_BINS`]) of a bytes level in 0..=1.
fn bytes_bin(level: f64) -> usize {
    ((level * BYTES_BINS as f64) as usize).min(BYTES_BINS - 1)
}

/// Per [`BYTES_BINS`] bin: the weights of the rows of a component's port `table` among the
/// component's `rows` whose bytes lie in that bin of the component's, shrunk towards the
/// table's own weights by one flow. A drawn flow's bytes level is its place among the
/// component's flows, and a level anywhere in the span of ranks that flows of equal bytes
/// share maps to those bytes; so each flow counts in every bin by the share of its ties' span
/// that lies in it (counted at the middle of the span, 10 port-23 scans among 70 ties filling
/// 70 % of the levels got 6.6 % of the draws, not 10 %; tested). Flows of ports past the table
/// count nowhere.
fn port_weights_by_bytes<'a>(rows: impl Iterator<Item = &'a FlowRow> + Clone, table: &[Weighted<(u16, u8)>]) -> [Vec<f64>; BYTES_BINS] {
    let mut bytes: Vec<u64> = rows.clone().map(|r| r.bytes).collect();
    bytes.sort_unstable();
    let n = bytes.len() as f64;
    let mut counts: [Vec<f64>; BYTES_BINS] = std::array::from_fn(|_| vec![0.0; table.len()]);
    for r in rows {
        let Some(i) = table.iter().position(|w| w.value == (r.server_port, r.ip_proto)) else { continue };
        // the levels its ties span: a drawn flow of these bytes has a level among them
        let below = bytes.partition_point(|&b| b < r.bytes) as f64;
        let equal = bytes.partition_point(|&b| b <= r.bytes) as f64 - below;
        let (lo, hi) = (below / n, (below + equal) / n);
        for (b, bin) in counts.iter_mut().enumerate() {
            let (e0, e1) = (b as f64 / BYTES_BINS as f64, (b + 1) as f64 / BYTES_BINS as f64);
            bin[i] += (hi.min(e1) - lo.max(e0)).max(0.0) / (hi - lo);
        }
    }
    counts.map(|c| {
        let total: f64 = c.iter().sum();
        c.iter().zip(table).map(|(&k, w)| (k + w.p) / (total + 1.0)).collect()
    })
}

/// Share of the TCP flows among `rows` seen from the middle whose segments carry timestamps
/// (`None` without any such flow).
fn timestamps_share<'a>(rows: impl Iterator<Item = &'a FlowRow>) -> Option<f64> {
    let (mut n, mut ts) = (0u64, 0u64);
    for r in rows.filter(|r| r.kind == FlowKind::Connected && r.mid_stream) {
        if let Some(t) = r.timestamps {
            n += 1;
            ts += u64::from(t);
        }
    }
    (n > 0).then(|| ts as f64 / n as f64)
}

/// Share of the opening TCP flows among `rows` that nobody answered (0 without any).
fn unanswered_share<'a>(rows: impl Iterator<Item = &'a FlowRow>) -> f64 {
    let (mut opened, mut unanswered) = (0u64, 0u64);
    for r in rows.filter(|r| r.kind == FlowKind::Connected && !r.mid_stream) {
        opened += 1;
        unanswered += u64::from(r.unanswered);
    }
    if opened == 0 {
        0.0
    } else {
        unanswered as f64 / opened as f64
    }
}

/// Share of TCP flows seen from their SYN ([`open_share`] of all flows; 1 without TCP flows).
fn tcp_open_share(rows: &[FlowRow]) -> f64 {
    settle_s(rows).and_then(|s| open_share(rows.iter(), s)).unwrap_or(1.0)
}

/// Flows per host.
fn host_flows(hosts: impl Iterator<Item = u32>) -> rustc_hash::FxHashMap<u32, u64> {
    let mut counts: rustc_hash::FxHashMap<u32, u64> = Default::default();
    for h in hosts {
        *counts.entry(h).or_default() += 1;
    }
    counts
}

/// Rank–frequency distribution of flows per host (most popular first), at most MAX_RANKS.
fn ranks(hosts: impl Iterator<Item = u32>) -> Vec<f64> {
    let mut c: Vec<f64> = host_flows(hosts).into_values().map(|n| n as f64).collect();
    c.sort_by(|a, b| b.total_cmp(a));
    if c.len() > MAX_RANKS {
        let rest: f64 = c[MAX_RANKS - 1..].iter().sum();
        c.truncate(MAX_RANKS - 1);
        c.push(rest);
    }
    let total: f64 = c.iter().sum();
    c.iter().map(|x| x / total.max(1.0)).collect()
}

/// The first rank in [`ranks`]' order of a host seen in one flow only (`u32::MAX`: none).
fn first_single(hosts: impl Iterator<Item = u32>) -> u32 {
    let counts = host_flows(hosts);
    let singles = counts.values().filter(|&&n| n == 1).count();
    if singles == 0 {
        return u32::MAX;
    }
    // ranks run from the most flows down, so the single-flow hosts are the last ones
    (counts.len() - singles).min(MAX_RANKS - 1) as u32
}

/// Each host's rank in [`ranks`]' order (ties broken by host number), the rarest sharing
/// rank MAX_RANKS − 1 as they share its weight there.
fn rank_of(hosts: impl Iterator<Item = u32>) -> rustc_hash::FxHashMap<u32, u32> {
    let mut c: Vec<(u32, u64)> = host_flows(hosts).into_iter().collect();
    c.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    c.into_iter().enumerate().map(|(i, (h, _))| (h, (i as u32).min(MAX_RANKS as u32 - 1))).collect()
}

/// Shares of the ranks `of` gives the hosts of `rows` (index = rank).
fn rank_shares<'a>(rows: impl Iterator<Item = &'a FlowRow>, host: impl Fn(&FlowRow) -> u32, of: &rustc_hash::FxHashMap<u32, u32>) -> Vec<f64> {
    let mut v: Vec<f64> = Vec::new();
    for r in rows {
        let i = of.get(&host(r)).copied().unwrap_or(0) as usize;
        if v.len() <= i {
            v.resize(i + 1, 0.0);
        }
        v[i] += 1.0;
    }
    let total: f64 = v.iter().sum();
    v.iter_mut().for_each(|x| *x /= total.max(1.0));
    v
}

/// One point of `g` (a component by weight, then a point of it) and its component, mapped
/// through the component's own marginals when the model has them; and the point's level in
/// each dimension within its component ([`Marginals::levels_of`]; 0.5 without marginals).
fn draw_point(g: &Gmm, marginals: Option<&Marginals>, component_u: Option<f64>, rng: &mut SplitMix64) -> (usize, Vec<f64>, Vec<f64>) {
    let c = component_u.map_or_else(|| g.draw_component(rng), |u| g.component_at(u));
    let mut v = g.sample_component(c, rng);
    let levels = marginals.map_or_else(|| vec![0.5; v.len()], |m| m.levels_of(c, &v));
    if let Some(m) = marginals {
        m.map(c, &mut v);
    }
    (c, v, levels)
}

fn draw_rank(p: &[f64], rng: &mut SplitMix64) -> u32 {
    let mut u = rng.next_f64();
    for (i, x) in p.iter().enumerate() {
        u -= x;
        if u < 0.0 {
            return i as u32;
        }
    }
    p.len().saturating_sub(1) as u32
}

impl Aggregate {
    /// Fits on the flow table. `k_max` bounds the GMM components. Standing flows
    /// ([`standing::is_standing`]) are kept apart: everything but the host ranks is fitted on
    /// the other flows, the arrivals.
    pub fn fit(all_rows: &[FlowRow], k_max: usize, seed: u64) -> Result<Aggregate, GmmError> {
        let client_of = rank_of(all_rows.iter().map(|r| r.client_host));
        let server_of = rank_of(all_rows.iter().map(|r| r.server_host));
        let standing = standing::fit(all_rows, |r| (client_of.get(&r.client_host).copied().unwrap_or(0), server_of.get(&r.server_host).copied().unwrap_or(0)));
        let rows: Vec<FlowRow> = all_rows.iter().filter(|r| !standing::is_standing(r)).copied().collect();
        let rows = rows.as_slice();
        let mut kind_n = [0f64; 3];
        rows.iter().for_each(|r| kind_n[r.kind.index()] += 1.0);
        let total = kind_n.iter().sum::<f64>().max(1.0);
        let kind_p = kind_n.map(|n| n / total);
        let opts = |k_max: usize, s: u64| GmmFitOptions { k_min: 1, k_max, seed: s, ..GmmFitOptions::default() };
        let gaps: Vec<f64> = rows.iter().filter_map(|r| r.gap_s).filter(|&g| g <= MAX_GAP_S).map(|g| g.max(MIN_GAP_S).log10()).collect();
        let gap_range = gaps.iter().fold([f64::INFINITY, f64::NEG_INFINITY], |r, &g| [r[0].min(g), r[1].max(g)]);
        let gap_range = if gap_range[0] <= gap_range[1] { gap_range } else { [0.0, 0.0] };
        let (gap, gap_marginals) = if gaps.len() >= 8 {
            let x = Tensor::from_slice(&gaps).view([-1, 1]);
            let g = Gmm::fit(&x, &opts(k_max.min(8), seed))?.gmm;
            let claimed = Vec::<i64>::try_from(g.predict(&x).to_kind(Kind::Int64)).unwrap_or_default();
            let m = Marginals::fit(&g, &gaps, &claimed, &[false]);
            (Some(g), Some(m))
        } else {
            (None, None)
        };
        let mut flow: [Option<Gmm>; 3] = [None, None, None];
        let mut marginals: [Option<Marginals>; 3] = [None, None, None];
        let mut component_open_p = Vec::new();
        let mut component_unanswered_p = Vec::new();
        let mut component_one_sided_p = Vec::new();
        let mut port_one_sided_p = Vec::new();
        let mut component_timestamps_p = Vec::new();
        let settle = settle_s(rows);
        let tcp_open_p = tcp_open_share(rows);
        let mut ports: [Vec<Weighted<(u16, u8)>>; 3] = Default::default();
        let mut component_ports: [Vec<Vec<Weighted<(u16, u8)>>>; 3] = Default::default();
        let mut port_by_bytes: [Vec<[Vec<f64>; BYTES_BINS]>; 3] = Default::default();
        let mut component_ranks: [Vec<[Vec<f64>; 2]>; 3] = Default::default();
        let mut proto: [Vec<Weighted<u8>>; 3] = Default::default();
        let mut v6_share = [0f64; 3];
        for kind in FlowKind::ALL {
            let k = kind.index();
            let of: Vec<&FlowRow> = rows.iter().filter(|r| r.kind == kind).collect();
            if of.is_empty() {
                continue;
            }
            let feats: Vec<f64> = of
                .iter()
                .flat_map(|r| [(r.packets.max(1) as f64).log10(), (r.bytes.max(1) as f64).log10(), r.duration_s.max(MIN_DURATION_S).log10()])
                .collect();
            // a kind with a handful of flows (a LAN's few NTP and SSDP exchanges) gets one
            // component, whose marginals are then its flows' own (from MIN_ROWS flows on)
            let x = Tensor::from_slice(&feats).view([-1, 3]);
            let fitted = match of.len() {
                0 | 1 => None,
                n if n < FEW_FLOWS => Gmm::fit(&x, &opts(1, seed + 1 + k as u64)).ok().map(|f| f.gmm),
                _ => Some(Gmm::fit(&x, &opts(k_max, seed + 1 + k as u64))?.gmm),
            };
            if let Some(g) = fitted {
                let claimed = Vec::<i64>::try_from(g.predict(&x).to_kind(Kind::Int64)).unwrap_or_default();
                let claimed_by = |c: i64| of.iter().zip(&claimed).filter(move |(_, &w)| w == c).map(|(r, _)| *r);
                component_ports[k] = (0..g.k() as i64).map(|c| port_table(claimed_by(c))).collect();
                port_by_bytes[k] = (0..g.k()).map(|c| port_weights_by_bytes(claimed_by(c as i64), &component_ports[k][c])).collect();
                component_ranks[k] = (0..g.k() as i64)
                    .map(|c| [rank_shares(claimed_by(c), |r| r.client_host, &client_of), rank_shares(claimed_by(c), |r| r.server_host, &server_of)])
                    .collect();
                marginals[k] = Some(Marginals::fit(&g, &feats, &claimed, &FLOW_STEPS));
                if kind == FlowKind::Connected {
                    component_open_p = (0..g.k() as i64).map(|c| settle.and_then(|s| open_share(claimed_by(c), s)).unwrap_or(tcp_open_p)).collect();
                    component_unanswered_p = (0..g.k() as i64).map(|c| unanswered_share(claimed_by(c))).collect();
                    component_one_sided_p = (0..g.k() as i64).map(|c| one_sided_shares(claimed_by(c))).collect();
                    if component_one_sided_p.iter().any(|p: &[f64; 2]| p[0] + p[1] > 0.0) {
                        port_one_sided_p = (0..g.k()).map(|c| one_sided_by_port(claimed_by(c as i64), &component_ports[k][c], component_one_sided_p[c])).collect();
                    }
                    // a component without flows seen from the middle: the kind's share
                    let all = timestamps_share(of.iter().copied()).unwrap_or(0.0);
                    component_timestamps_p = (0..g.k() as i64).map(|c| timestamps_share(claimed_by(c)).unwrap_or(all)).collect();
                    if component_timestamps_p.iter().all(|&p| p == 0.0) {
                        component_timestamps_p.clear();
                    }
                }
                flow[k] = Some(g);
            }
            let mut prc: rustc_hash::FxHashMap<u8, f64> = Default::default();
            for r in &of {
                *prc.entry(r.ip_proto).or_default() += 1.0;
                v6_share[k] += f64::from(u8::from(r.ip_version == 6));
            }
            v6_share[k] /= of.len() as f64;
            ports[k] = port_table(of.iter().copied());
            let mut prv: Vec<(u8, f64)> = prc.into_iter().collect();
            prv.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            proto[k] = normalise(prv);
        }
        Ok(Aggregate {
            kind_p,
            gap,
            gap_marginals,
            gap_range,
            flow,
            marginals,
            ports,
            component_ports,
            port_by_bytes,
            proto,
            v6_share,
            client_rank: ranks(all_rows.iter().map(|r| r.client_host)),
            server_rank: ranks(all_rows.iter().map(|r| r.server_host)),
            component_ranks,
            fresh_rank: [first_single(all_rows.iter().map(|r| r.client_host)), first_single(all_rows.iter().map(|r| r.server_host))],
            shared_hosts: SharedHosts::fit(all_rows, &client_of, &server_of, MAX_RANKS as u32 - 1),
            tcp_open_p,
            component_open_p,
            component_unanswered_p,
            component_one_sided_p,
            port_one_sided_p,
            component_timestamps_p,
            client_ports: ClientPorts::fit(rows.iter()),
            standing,
        })
    }

    /// Draws the next flow: gap since the previous start, kind, size, ports, protocol, hosts.
    pub fn sample_flow(&self, rng: &mut SplitMix64) -> FlowDraw {
        self.sample_flow_with(None, rng)
    }

    /// As [`Aggregate::sample_flow`], the gap's component, the kind, the size component and the
    /// port drawn through `strata` where given: the mix of gap components, of kinds, of each
    /// kind's size components and of each component's ports then holds in every stretch of
    /// flows.
    pub fn sample_flow_with(&self, mut strata: Option<&mut Strata>, rng: &mut SplitMix64) -> FlowDraw {
        let gap_s = self.gap.as_ref().map_or(1.0, |g| {
            // the gap's component through its own sequence where stratified: the share of long
            // gaps, and so the flows a window holds, then holds in every stretch of flows (the
            // independent draw is made either way: the stream's later draws stay where they were)
            let independent_u = rng.next_f64();
            let u = strata.as_mut().map_or(independent_u, |s| s.gap.next_f64());
            10f64.powf(draw_point(g, self.gap_marginals.as_ref(), Some(u), rng).1[0].clamp(self.gap_range[0], self.gap_range[1]))
        });
        let mut u = strata.as_mut().map_or_else(|| rng.next_f64(), |s| s.kind.next_f64());
        let mut kind = FlowKind::Connected;
        for kk in FlowKind::ALL {
            u -= self.kind_p[kk.index()];
            if u < 0.0 {
                kind = kk;
                break;
            }
        }
        let k = kind.index();
        let (packets, bytes, bytes_level, duration_s, component) = match &self.flow[k] {
            Some(g) => {
                let component_u = strata.as_mut().map(|s| s.component[k].next_f64());
                let (c, v, level) = draw_point(g, self.marginals[k].as_ref(), component_u, rng);
                (10f64.powf(v[0]).max(1.0), 10f64.powf(v[1]).max(1.0), level[1], 10f64.powf(v[2]), Some(c))
            }
            None => (2.0, 100.0, 0.5, 0.0, None),
        };
        let own_table = component.and_then(|c| self.component_ports[k].get(c)).filter(|t| !t.is_empty());
        let table = own_table.unwrap_or(&self.ports[k]);
        // the rows' weights at the flow's bytes level, where the model has them
        let at_level = component.filter(|_| own_table.is_some()).and_then(|c| self.port_by_bytes[k].get(c)).map(|bins| &bins[bytes_bin(bytes_level)]);
        // through the component's own sequence where stratified: each component's port mix then
        // holds in every stretch of its flows, as its share among flows does (the independent
        // draw is made either way: the stream's later draws stay where they were)
        let independent_u = rng.next_f64();
        let port_u = match (strata, component) {
            (Some(s), Some(c)) if own_table.is_some() => s.port_u(k, c),
            _ => independent_u,
        };
        let row = match at_level {
            Some(w) => index_at(w.iter().copied(), port_u),
            None => index_at(table.iter().map(|w| w.p), port_u),
        };
        // (the protocol's draw is made either way, as it always was: a stream's later draws stay where they were)
        let any_proto = draw(&self.proto[k], rng).unwrap_or(0);
        let (server_port, ip_proto) = row.map_or((0, any_proto), |i| table[i].value);
        // the side seen goes with the port where the model has it per port (its component's
        // table; the shares refine the component's, and without those no flow is one-sided)
        let port_one_sided = match (component, row) {
            (Some(c), Some(i)) if own_table.is_some() && kind == FlowKind::Connected && c < self.component_one_sided_p.len() => self.port_one_sided_p.get(c).and_then(|t| t.get(i)).copied(),
            _ => None,
        };
        let hosts = component.and_then(|c| self.component_ranks[k].get(c)).filter(|h| !h[0].is_empty() && !h[1].is_empty());
        let v6 = rng.next_f64() < self.v6_share[k];
        let client_rank = draw_rank(hosts.map_or(&self.client_rank, |h| &h[0]), rng);
        let server_rank = draw_rank(hosts.map_or(&self.server_rank, |h| &h[1]), rng);
        let (open_p, unanswered_p, one_sided_p, timestamps_p) = match component {
            Some(c) if kind == FlowKind::Connected => (
                self.component_open_p.get(c).copied().unwrap_or(self.tcp_open_p),
                self.component_unanswered_p.get(c).copied().unwrap_or(0.0),
                port_one_sided.or_else(|| self.component_one_sided_p.get(c).copied()).unwrap_or([0.0; 2]),
                self.component_timestamps_p.get(c).copied().unwrap_or(0.0),
            ),
            _ => (self.tcp_open_p, 0.0, [0.0; 2], 0.0),
        };
        FlowDraw {
            gap_s,
            kind,
            open_p,
            unanswered_p,
            one_sided_p,
            timestamps_p,
            packets,
            bytes,
            bytes_level,
            duration_s,
            server_port,
            client_port: 0,
            ip_proto,
            v6,
            client_rank,
            server_rank,
        }
    }

    /// The model as named tensors (safetensors).
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![
            ("kind_p".to_string(), Tensor::from_slice(&self.kind_p)),
            ("v6_share".to_string(), Tensor::from_slice(&self.v6_share)),
            ("gap_range".to_string(), Tensor::from_slice(&self.gap_range)),
            ("client_rank".to_string(), Tensor::from_slice(&self.client_rank)),
            ("server_rank".to_string(), Tensor::from_slice(&self.server_rank)),
            ("tcp_open_p".to_string(), Tensor::from_slice(&[self.tcp_open_p])),
            ("fresh_rank".to_string(), Tensor::from_slice(&self.fresh_rank.map(i64::from))),
        ];
        if !self.component_open_p.is_empty() {
            out.push(("open_connected".to_string(), Tensor::from_slice(&self.component_open_p)));
            out.push(("unanswered_connected".to_string(), Tensor::from_slice(&self.component_unanswered_p)));
        }
        if self.component_one_sided_p.iter().any(|p| p[0] + p[1] > 0.0) {
            let flat: Vec<f64> = self.component_one_sided_p.iter().flatten().copied().collect();
            out.push((ONE_SIDED.to_string(), Tensor::from_slice(&flat).view([-1, 2])));
        }
        for (c, t) in self.port_one_sided_p.iter().enumerate() {
            let flat: Vec<f64> = t.iter().flatten().copied().collect();
            out.push((format!("{ONE_SIDED}.c{c}"), Tensor::from_slice(&flat).view([-1, 2])));
        }
        if !self.component_timestamps_p.is_empty() {
            out.push((TIMESTAMPS.to_string(), Tensor::from_slice(&self.component_timestamps_p)));
        }
        if !self.shared_hosts.hosts.is_empty() {
            out.push((shared_hosts::TENSOR.to_string(), self.shared_hosts.to_tensor()));
        }
        if !self.client_ports.rows.is_empty() {
            out.push((client_port::TENSOR.to_string(), self.client_ports.to_tensor()));
        }
        if !self.standing.is_empty() {
            out.push(("standing".to_string(), standing::to_tensor(&self.standing)));
        }
        for (i, s) in self.standing.iter().enumerate().filter(|(_, s)| !s.chain.is_empty()) {
            out.push((format!("standing.c{i}.chain"), Tensor::from_slice(&s.chain)));
            out.push((format!("standing.c{i}.gaps"), Tensor::from_slice(&s.gaps)));
        }
        if let Some(g) = &self.gap {
            out.extend(g.named_tensors("gap"));
        }
        if let Some(m) = &self.gap_marginals {
            out.push(("gap.marginals".to_string(), m.to_tensor()));
        }
        for kind in FlowKind::ALL {
            let k = kind.index();
            let n = kind.name();
            if let Some(g) = &self.flow[k] {
                out.extend(g.named_tensors(&format!("flow_{n}")));
            }
            if let Some(m) = &self.marginals[k] {
                out.push((format!("flow_{n}.marginals"), m.to_tensor()));
            }
            let pv: Vec<i64> = self.ports[k].iter().flat_map(|w| [i64::from(w.value.0), i64::from(w.value.1)]).collect();
            let pp: Vec<f64> = self.ports[k].iter().map(|w| w.p).collect();
            out.push((format!("ports_{n}.values"), Tensor::from_slice(&pv).view([-1, 2])));
            out.push((format!("ports_{n}.p"), Tensor::from_slice(&pp)));
            for (c, t) in self.component_ports[k].iter().enumerate() {
                let pv: Vec<i64> = t.iter().flat_map(|w| [i64::from(w.value.0), i64::from(w.value.1)]).collect();
                let pp: Vec<f64> = t.iter().map(|w| w.p).collect();
                out.push((format!("ports_{n}.c{c}.values"), Tensor::from_slice(&pv).view([-1, 2])));
                out.push((format!("ports_{n}.c{c}.p"), Tensor::from_slice(&pp)));
            }
            for (c, bins) in self.port_by_bytes[k].iter().enumerate() {
                let flat: Vec<f64> = bins.iter().flatten().copied().collect();
                out.push((format!("ports_{n}.c{c}.by_bytes"), Tensor::from_slice(&flat).view([BYTES_BINS as i64, -1])));
            }
            for (c, [client, server]) in self.component_ranks[k].iter().enumerate() {
                out.push((format!("ranks_{n}.c{c}.client"), Tensor::from_slice(client)));
                out.push((format!("ranks_{n}.c{c}.server"), Tensor::from_slice(server)));
            }
            let rv: Vec<i64> = self.proto[k].iter().map(|w| i64::from(w.value)).collect();
            let rp: Vec<f64> = self.proto[k].iter().map(|w| w.p).collect();
            out.push((format!("proto_{n}.values"), Tensor::from_slice(&rv)));
            out.push((format!("proto_{n}.p"), Tensor::from_slice(&rp)));
        }
        out
    }

    /// Rebuilds from named tensors; `None` names the missing or malformed tensor.
    pub fn from_named(get: &dyn Fn(&str) -> Option<Tensor>) -> Result<Aggregate, String> {
        let f64s = |name: &str| -> Result<Vec<f64>, String> {
            let t = get(name).ok_or_else(|| format!("tensor `{name}` is missing"))?;
            Vec::<f64>::try_from(t.to_kind(Kind::Double).view([-1])).map_err(|e| format!("tensor `{name}`: {e}"))
        };
        let i64s = |name: &str| -> Result<Vec<i64>, String> {
            let t = get(name).ok_or_else(|| format!("tensor `{name}` is missing"))?;
            Vec::<i64>::try_from(t.to_kind(Kind::Int64).view([-1])).map_err(|e| format!("tensor `{name}`: {e}"))
        };
        let arr3 = |name: &str| -> Result<[f64; 3], String> {
            let v = f64s(name)?;
            <[f64; 3]>::try_from(v.as_slice()).map_err(|_| format!("tensor `{name}` must have 3 values"))
        };
        // a table of probabilities, empty when absent
        let probabilities = |name: &str| -> Result<Vec<f64>, String> {
            if get(name).is_none() {
                return Ok(Vec::new());
            }
            let v = f64s(name)?;
            if v.iter().any(|p| !(0.0..=1.0).contains(p)) {
                return Err(format!("tensor `{name}` must hold probabilities"));
            }
            Ok(v)
        };
        // pairs of shares (client side only, server side only), empty when absent
        let share_pairs = |name: &str| -> Result<Vec<[f64; 2]>, String> {
            let v = probabilities(name)?;
            if v.len() % 2 != 0 || v.chunks(2).any(|p| p[0] + p[1] > 1.0 + 1e-9) {
                return Err(format!("tensor `{name}` must hold pairs of shares (client side only, server side only) that sum to at most 1"));
            }
            Ok(v.chunks(2).map(|p| [p[0], p[1]]).collect())
        };
        let gmm = |prefix: &str| -> Result<Option<Gmm>, String> {
            if get(&format!("{prefix}.weights")).is_none() {
                return Ok(None);
            }
            Gmm::from_named(prefix, |n| get(n)).map(Some).map_err(|e| e.to_string())
        };
        let mut agg = Aggregate {
            kind_p: arr3("kind_p")?,
            gap: gmm("gap")?,
            gap_marginals: None,
            gap_range: {
                let v = f64s("gap_range")?;
                <[f64; 2]>::try_from(v.as_slice()).map_err(|_| "tensor `gap_range` must have 2 values".to_string())?
            },
            flow: [None, None, None],
            marginals: [None, None, None],
            ports: Default::default(),
            component_ports: Default::default(),
            port_by_bytes: Default::default(),
            proto: Default::default(),
            v6_share: arr3("v6_share")?,
            client_rank: f64s("client_rank")?,
            server_rank: f64s("server_rank")?,
            component_ranks: Default::default(),
            // absent in models made before it: every TCP flow opened
            tcp_open_p: match get("tcp_open_p") {
                None => 1.0,
                Some(_) => match f64s("tcp_open_p")?.as_slice() {
                    [p] if (0.0..=1.0).contains(p) => *p,
                    _ => return Err("tensor `tcp_open_p` must be one probability".into()),
                },
            },
            // absent in models made before it: `tcp_open_p` for every component
            component_open_p: probabilities("open_connected")?,
            // absent in models made before it: every opening flow answered
            component_unanswered_p: probabilities("unanswered_connected")?,
            // absent in models made before it, or of captures that saw both sides of every
            // flow: no flow one-sided
            component_one_sided_p: share_pairs(ONE_SIDED)?,
            port_one_sided_p: Vec::new(),
            // absent in models made before it, or of captures whose flows seen from the
            // middle never carry timestamps: no options on such flows
            component_timestamps_p: probabilities(TIMESTAMPS)?,
            // absent in models made before it: every drawn rank is a table host
            fresh_rank: match get("fresh_rank") {
                None => [u32::MAX; 2],
                Some(_) => match i64s("fresh_rank")?.as_slice() {
                    &[c, s] if [c, s].iter().all(|&r| (0..=i64::from(u32::MAX)).contains(&r)) => [c as u32, s as u32],
                    _ => return Err("tensor `fresh_rank` must be two ranks (client, server)".into()),
                },
            },
            shared_hosts: SharedHosts::default(),
            // absent in models made before it: ephemeral client ports only
            client_ports: get(client_port::TENSOR).map_or(Ok(ClientPorts::default()), |t| ClientPorts::from_tensor(&t))?,
            // absent in models made before it: no standing flows
            standing: get("standing").map_or(Ok(Vec::new()), |t| standing::from_tensor(&t, "standing"))?,
        };
        // absent in models made before it: every host one per side
        if let Some(t) = get(shared_hosts::TENSOR) {
            agg.shared_hosts = SharedHosts::from_tensor(&t, shared_hosts::TENSOR, [agg.client_rank.len(), agg.server_rank.len()])?;
        }
        if let (Some(g), Some(t)) = (&agg.gap, get("gap.marginals")) {
            agg.gap_marginals = Some(Marginals::from_tensor(&t, "gap.marginals", g, &[false])?);
        }
        for (i, s) in agg.standing.iter_mut().enumerate() {
            let name = format!("standing.c{i}.chain");
            if get(&name).is_some() {
                s.chain = f64s(&name)?;
                if s.chain.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
                    return Err(format!("tensor `{name}` must hold weights ≥ 0"));
                }
                s.gaps = f64s(&format!("standing.c{i}.gaps"))?;
                if s.gaps.iter().any(|g| g.is_infinite()) {
                    return Err(format!("tensor `standing.c{i}.gaps` must hold log10 seconds (or NaN)"));
                }
            }
        }
        for kind in FlowKind::ALL {
            let k = kind.index();
            let n = kind.name();
            agg.flow[k] = gmm(&format!("flow_{n}"))?;
            let table = |prefix: &str| -> Result<Vec<Weighted<(u16, u8)>>, String> {
                let pv = i64s(&format!("{prefix}.values"))?;
                let pp = f64s(&format!("{prefix}.p"))?;
                if pv.len() != 2 * pp.len() {
                    return Err(format!("tensors `{prefix}.values` and `{prefix}.p` disagree in length"));
                }
                Ok(pv.chunks(2).zip(&pp).map(|(v, &p)| Weighted { value: (v[0] as u16, v[1] as u8), p }).collect())
            };
            agg.ports[k] = table(&format!("ports_{n}"))?;
            // per-component tables: absent in models made before them
            if let Some(g) = &agg.flow[k] {
                let name = format!("flow_{n}.marginals");
                if let Some(t) = get(&name) {
                    agg.marginals[k] = Some(Marginals::from_tensor(&t, &name, g, &FLOW_STEPS)?);
                }
                if get(&format!("ports_{n}.c0.p")).is_some() {
                    agg.component_ports[k] = (0..g.k()).map(|c| table(&format!("ports_{n}.c{c}"))).collect::<Result<_, _>>()?;
                }
                // absent in models made before it: the component's table at every level
                if get(&format!("ports_{n}.c0.by_bytes")).is_some() {
                    agg.port_by_bytes[k] = (0..g.k())
                        .map(|c| {
                            let name = format!("ports_{n}.c{c}.by_bytes");
                            let v = probabilities(&name)?;
                            let rows = agg.component_ports[k].get(c).map_or(0, Vec::len);
                            if v.len() != BYTES_BINS * rows {
                                return Err(format!("tensor `{name}` must hold {BYTES_BINS} rows of one weight per row of `ports_{n}.c{c}`"));
                            }
                            Ok(std::array::from_fn(|b| v[b * rows..(b + 1) * rows].to_vec()))
                        })
                        .collect::<Result<_, String>>()?;
                }
                // absent in models made before it, or of captures that saw both sides of every flow
                if kind == FlowKind::Connected && get(&format!("{ONE_SIDED}.c0")).is_some() {
                    agg.port_one_sided_p = (0..g.k())
                        .map(|c| {
                            let name = format!("{ONE_SIDED}.c{c}");
                            let pairs = share_pairs(&name)?;
                            match agg.component_ports[k].get(c) {
                                Some(t) if t.len() == pairs.len() => Ok(pairs),
                                _ => Err(format!("tensor `{name}` must have one pair per row of `ports_{n}.c{c}`")),
                            }
                        })
                        .collect::<Result<_, String>>()?;
                }
                if get(&format!("ranks_{n}.c0.client")).is_some() {
                    let shares = |name: String, global: &[f64]| -> Result<Vec<f64>, String> {
                        let v = f64s(&name)?;
                        if v.len() > global.len() || v.iter().any(|x| !(0.0..=1.0).contains(x)) {
                            return Err(format!("tensor `{name}` must hold at most {} shares in 0..=1", global.len()));
                        }
                        Ok(v)
                    };
                    agg.component_ranks[k] = (0..g.k())
                        .map(|c| Ok([shares(format!("ranks_{n}.c{c}.client"), &agg.client_rank)?, shares(format!("ranks_{n}.c{c}.server"), &agg.server_rank)?]))
                        .collect::<Result<_, String>>()?;
                }
            }
            let rv = i64s(&format!("proto_{n}.values"))?;
            let rp = f64s(&format!("proto_{n}.p"))?;
            if rv.len() != rp.len() {
                return Err(format!("tensors `proto_{n}.values` and `proto_{n}.p` disagree in length"));
            }
            agg.proto[k] = rv.iter().zip(&rp).map(|(&v, &p)| Weighted { value: v as u8, p }).collect();
        }
        // per-component tables of the connected flows: one value per component, or none
        let k = agg.flow[FlowKind::Connected.index()].as_ref().map_or(0, Gmm::k);
        for (name, n) in [("open_connected", agg.component_open_p.len()), ("unanswered_connected", agg.component_unanswered_p.len()), (ONE_SIDED, agg.component_one_sided_p.len()), (TIMESTAMPS, agg.component_timestamps_p.len())] {
            if n != 0 && n != k {
                return Err(format!("tensor `{name}` has {n} values for the {k} components of `flow_connected`"));
            }
        }
        Ok(agg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long UDP streams to port 5004 and short DNS lookups to port 53.
    fn rows() -> Vec<FlowRow> {
        let mut rng = SplitMix64::new(5);
        let row = |port: u16, packets: u64, duration_s: f64, rng: &mut SplitMix64| FlowRow {
            kind: FlowKind::Unconnected,
            gap_s: Some(0.01 + rng.next_f64()),
            packets: (packets as f64 * (0.8 + 0.4 * rng.next_f64())) as u64,
            bytes: packets * 200,
            duration_s: duration_s * (0.8 + 0.4 * rng.next_f64()),
            server_port: port,
            client_port: 40000,
            ip_proto: 17,
            ip_version: 4,
            client_host: rng.below(20) as u32,
            server_host: rng.below(5) as u32,
            mid_stream: false,
            unanswered: false,
            one_side: None,
            timestamps: None,
            since_capture_start_s: 0.0,
            until_capture_end_s: 0.0,
            capture_span_s: 0.0,
            capture: 0,
            seq: None,
        };
        let mut v: Vec<FlowRow> = (0..40).map(|_| row(5004, 3000, 60.0, &mut rng)).collect();
        v.extend((0..160).map(|_| row(53, 2, 0.01, &mut rng)));
        v
    }

    /// How many of `hits` are true in each 50 draws in a row (every fifth stretch).
    fn windows(hits: Vec<bool>) -> Vec<usize> {
        hits.windows(50).step_by(5).map(|w| w.iter().filter(|&&x| x).count()).collect()
    }

    #[test]
    fn strata_keep_the_share_of_large_flows_in_every_stretch_of_draws() {
        let agg = Aggregate::fit(&rows(), 6, 1).unwrap();
        // long flows in each 50 draws in a row (1 in 5 of the training flows)
        let mut rng = SplitMix64::new(2);
        let mut strata = Strata::new(&mut SplitMix64::new(3));
        let stratified = windows((0..2000).map(|_| agg.sample_flow_with(Some(&mut strata), &mut rng).packets > 100.0).collect());
        assert!(stratified.iter().all(|n| (8..=12).contains(n)), "long flows per 50: {stratified:?}");
        let independent = windows((0..2000).map(|_| agg.sample_flow(&mut rng).packets > 100.0).collect());
        assert!(independent.iter().any(|n| !(8..=12).contains(n)), "independent draws scatter more: {independent:?}");
    }

    #[test]
    fn strata_keep_a_components_port_mix_in_every_stretch_of_its_flows() {
        // one component of 100 flows, one in five of them (at every size) to port 5004
        let rows: Vec<FlowRow> = rows()
            .into_iter()
            .take(100)
            .enumerate()
            .map(|(i, r)| FlowRow { bytes: 1000 + 10 * i as u64, server_port: if i % 5 == 0 { 5004 } else { 53 }, ..r })
            .collect();
        let agg = Aggregate::fit(&rows, 1, 1).unwrap();
        let mut rng = SplitMix64::new(2);
        let mut strata = Strata::new(&mut SplitMix64::new(3));
        let stratified = windows((0..2000).map(|_| agg.sample_flow_with(Some(&mut strata), &mut rng).server_port == 5004).collect());
        assert!(stratified.iter().all(|n| (8..=12).contains(n)), "flows to 5004 per 50: {stratified:?}");
        let independent = windows((0..2000).map(|_| agg.sample_flow(&mut rng).server_port == 5004).collect());
        assert!(independent.iter().any(|n| !(8..=12).contains(n)), "independent draws scatter more: {independent:?}");
    }

    #[test]
    fn strata_keep_the_time_a_stretch_of_flows_takes() {
        // one flow start in ten follows a quiet gap of 5-9.5 s, the others come 10-20 ms apart
        let rows: Vec<FlowRow> = rows()
            .into_iter()
            .enumerate()
            .map(|(i, r)| FlowRow { gap_s: Some(if i % 10 == 0 { 5.0 + 0.05 * (i % 100) as f64 } else { 0.01 + 0.0001 * (i % 100) as f64 }), ..r })
            .collect();
        let agg = Aggregate::fit(&rows, 6, 1).unwrap();
        // seconds that 100 flows in a row take, over 40 streams
        let span = |strata: &mut Option<Strata>, rng: &mut SplitMix64| (0..100).map(|_| agg.sample_flow_with(strata.as_mut(), rng).gap_s).sum::<f64>();
        let (stratified, independent): (Vec<f64>, Vec<f64>) = (0..40)
            .map(|seed| {
                let mut rng = SplitMix64::new(seed);
                let s = span(&mut Some(Strata::new(&mut SplitMix64::new(seed + 100))), &mut rng);
                (s, span(&mut None, &mut rng))
            })
            .unzip();
        let range = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min)..=v.iter().copied().fold(0.0, f64::max);
        let sd = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
        };
        // 10 quiet gaps of 7.25 s on average: 74 s; what still scatters is the quiet gaps' own
        // spread (measured: stratified 58-88 s, sd 7.3; independent 31-124 s, sd 20.4)
        assert!(stratified.iter().all(|s| (50.0..=100.0).contains(s)), "stratified: {:?}", range(&stratified));
        assert!(independent.iter().any(|s| !(50.0..=100.0).contains(s)), "independent draws scatter more: {:?}", range(&independent));
        assert!(sd(&stratified) < 0.5 * sd(&independent), "sd {} stratified, {} independent", sd(&stratified), sd(&independent));
    }

    /// Of 4000 draws: the long flows (> 100 packets) and those of them `long` holds for, the
    /// short ones and those of them `short` holds for.
    fn long_and_short(agg: &Aggregate, seed: u64, long: impl Fn(&FlowDraw) -> bool, short: impl Fn(&FlowDraw) -> bool) -> ([u32; 2], [u32; 2]) {
        let mut rng = SplitMix64::new(seed);
        let (mut l, mut s) = ([0u32; 2], [0u32; 2]);
        for _ in 0..4000 {
            let d = agg.sample_flow(&mut rng);
            if d.packets > 100.0 {
                l = [l[0] + 1, l[1] + u32::from(long(&d))];
            } else {
                s = [s[0] + 1, s[1] + u32::from(short(&d))];
            }
        }
        (l, s)
    }

    #[test]
    fn a_flows_size_and_its_port_are_drawn_together() {
        let agg = Aggregate::fit(&rows(), 6, 1).unwrap();
        assert!(agg.component_ports[FlowKind::Unconnected.index()].len() >= 2, "one table per component");
        let ([big, big_5004], [small, small_53]) = long_and_short(&agg, 9, |d| d.server_port == 5004, |d| d.server_port == 53);
        // the kind-wide table alone would give 20 % / 80 %
        assert!(big > 500 && big_5004 as f64 > 0.95 * big as f64, "{big_5004} of {big} long flows to 5004");
        assert!(small > 2500 && small_53 as f64 > 0.95 * small as f64, "{small_53} of {small} short flows to 53");
    }

    #[test]
    fn flows_of_equal_bytes_give_their_ports_the_share_they_had() {
        // one component of 100 flows: 70 of 400 bytes (60 to 443, 10 to 23, which fill the
        // lowest 70 % of its bytes levels) and 30 larger ones to 80
        let rows: Vec<FlowRow> = rows()
            .into_iter()
            .take(100)
            .enumerate()
            .map(|(i, r)| match i {
                0..60 => FlowRow { bytes: 400, server_port: 443, ..r },
                60..70 => FlowRow { bytes: 400, server_port: 23, ..r },
                _ => FlowRow { bytes: 1000 + 10 * i as u64, server_port: 80, ..r },
            })
            .collect();
        let agg = Aggregate::fit(&rows, 1, 1).unwrap();
        let mut rng = SplitMix64::new(6);
        let to_23 = (0..4000).filter(|_| agg.sample_flow(&mut rng).server_port == 23).count();
        // counted at the middle of their ties (one bin of four), they got 6.6 %
        assert!((340..=460).contains(&to_23), "{to_23} of 4000 flows to port 23, not 10 %");
    }

    #[test]
    fn inside_a_size_component_the_port_goes_with_the_flows_bytes() {
        // one component of 100 flows: the smaller half (bytes 1,000-1,490) DNS, the larger
        // (1,500-1,990) a stream on 5004
        let rows: Vec<FlowRow> = rows()
            .into_iter()
            .take(100)
            .enumerate()
            .map(|(i, r)| FlowRow { bytes: 1000 + 10 * i as u64, server_port: if i < 50 { 53 } else { 5004 }, ..r })
            .collect();
        let agg = Aggregate::fit(&rows, 1, 1).unwrap();
        let k = FlowKind::Unconnected.index();
        assert_eq!((agg.component_ports[k].len(), agg.port_by_bytes[k].len()), (1, 1));
        let (mut rng, mut small, mut large) = (SplitMix64::new(4), [0u32; 2], [0u32; 2]);
        for _ in 0..2000 {
            let d = agg.sample_flow(&mut rng);
            let n = if d.bytes < 1495.0 { &mut small } else { &mut large };
            *n = [n[0] + 1, n[1] + u32::from(d.server_port == 5004)];
        }
        // the component's table alone gives 5004 to half of each
        assert!(small[0] > 600 && f64::from(small[1]) < 0.1 * f64::from(small[0]), "{small:?} (flows, to 5004) below the median");
        assert!(large[0] > 600 && f64::from(large[1]) > 0.9 * f64::from(large[0]), "{large:?} (flows, to 5004) above it");
        // the weights survive the round trip; a model without them draws from the component's table
        let named: std::collections::HashMap<String, Tensor> = agg.named_tensors().into_iter().collect();
        let back = Aggregate::from_named(&|n| named.get(n).map(|t| t.shallow_clone())).unwrap();
        assert_eq!(back.port_by_bytes, agg.port_by_bytes);
        let older = Aggregate::from_named(&|n| named.get(n).filter(|_| !n.ends_with(".by_bytes")).map(|t| t.shallow_clone())).unwrap();
        assert!(older.port_by_bytes.iter().all(Vec::is_empty));
        let small_5004 = (0..2000).map(|_| older.sample_flow(&mut rng)).filter(|d| d.bytes < 1495.0 && d.server_port == 5004).count();
        assert!(small_5004 > 300, "{small_5004} small flows to 5004 without the weights");
        // weights that are not one per row of the component's table in each bin are named
        let bad = Aggregate::from_named(&|n| if n.ends_with(".by_bytes") { Some(Tensor::from_slice(&[0.5f64; 3])) } else { named.get(n).map(|t| t.shallow_clone()) });
        let e = bad.err().unwrap_or_default();
        assert!(e.contains("ports_unconnected.c0.by_bytes"), "{e}");
    }

    #[test]
    fn a_flows_size_and_its_hosts_are_drawn_together() {
        // the long streams run between one pair of hosts; the lookups go to two servers
        let mut rows = rows();
        for (i, r) in rows.iter_mut().enumerate() {
            if r.server_port == 5004 {
                (r.client_host, r.server_host) = (100, 200);
            } else {
                r.server_host = 300 + (i % 2) as u32;
            }
        }
        let agg = Aggregate::fit(&rows, 6, 1).unwrap();
        // flows per server: 80, 80 (the lookups' servers), 40 (the streams'): rank 2
        assert_eq!(agg.server_rank.len(), 3);
        let ([big, big_rank2], [small, small_rank2]) = long_and_short(&agg, 4, |d| d.server_rank == 2, |d| d.server_rank == 2);
        let mut rng = SplitMix64::new(4);
        // the global table alone would give rank 2 to 20 % of both
        assert!(big > 500 && big_rank2 as f64 > 0.95 * big as f64, "{big_rank2} of {big} long flows from the streams' server");
        assert!(small > 2500 && (small_rank2 as f64) < 0.05 * small as f64, "{small_rank2} of {small} short flows from it");
        // and the tables survive the round trip; a model without them uses the global ones
        let named: std::collections::HashMap<String, Tensor> = agg.named_tensors().into_iter().collect();
        let back = Aggregate::from_named(&|n| named.get(n).map(|t| t.shallow_clone())).unwrap();
        assert_eq!(back.component_ranks, agg.component_ranks);
        let older = Aggregate::from_named(&|n| named.get(n).filter(|_| !n.starts_with("ranks_")).map(|t| t.shallow_clone())).unwrap();
        assert!(older.component_ranks.iter().all(Vec::is_empty));
        let r2 = (0..2000).filter(|_| older.sample_flow(&mut rng).server_rank == 2).count();
        assert!((250..550).contains(&r2), "{r2} of 2000 draws at rank 2 (20 % expected)");
    }

    #[test]
    fn drawn_flows_take_the_training_flows_sizes_not_a_smoothed_one() {
        // keep-alive flows of exactly 11 packets (1 in 10 of 14), and 1-packet flows that are
        // either bare ACKs (54 B) or full segments (1,514 B)
        let mut rows = rows();
        for (i, r) in rows.iter_mut().enumerate() {
            if r.server_port == 5004 {
                r.packets = if i % 10 == 0 { 14 } else { 11 };
            } else {
                r.packets = 1;
                r.bytes = if i % 2 == 0 { 54 } else { 1514 };
            }
        }
        // two components: one for the long flows, one for the short (a Gaussian each)
        let agg = Aggregate::fit(&rows, 2, 1).unwrap();
        let mut rng = SplitMix64::new(8);
        let (mut long, mut eleven, mut single, mut between) = (0, 0, 0, 0);
        for _ in 0..4000 {
            let d = agg.sample_flow(&mut rng);
            if d.packets > 5.0 {
                long += 1;
                eleven += usize::from(d.packets.round() == 11.0);
                assert!([11.0, 14.0].contains(&d.packets.round()), "a long flow of {} packets", d.packets);
            } else {
                single += 1;
                assert_eq!(d.packets.round(), 1.0);
                between += usize::from((100.0..1400.0).contains(&d.bytes));
            }
        }
        let share = eleven as f64 / long as f64;
        assert!(long > 500 && (share - 0.9).abs() < 0.04, "{eleven} of {long} long flows of 11 packets");
        assert!(single > 2500 && between < single / 50, "{between} of {single} 1-packet flows between the two sizes");
        // the marginals survive the round trip; a model without them draws Gaussian sizes
        let named: std::collections::HashMap<String, Tensor> = agg.named_tensors().into_iter().collect();
        let back = Aggregate::from_named(&|n| named.get(n).map(|t| t.shallow_clone())).unwrap();
        assert!(back.marginals == agg.marginals, "the marginals change in the round trip");
        let older = Aggregate::from_named(&|n| named.get(n).filter(|_| !n.ends_with(".marginals")).map(|t| t.shallow_clone())).unwrap();
        assert!(older.marginals.iter().all(Option::is_none));
        let off = (0..2000).map(|_| older.sample_flow(&mut rng)).filter(|d| d.packets > 5.0 && ![11.0, 14.0].contains(&d.packets.round())).count();
        assert!(off > 0, "Gaussian draws land between the seen lengths");
    }

    #[test]
    fn component_tables_survive_the_round_trip_and_older_models_fall_back() {
        let agg = Aggregate::fit(&rows(), 6, 1).unwrap();
        let named: std::collections::HashMap<String, Tensor> = agg.named_tensors().into_iter().collect();
        let back = Aggregate::from_named(&|n| named.get(n).map(|t| t.shallow_clone())).unwrap();
        assert_eq!(back.component_ports, agg.component_ports);
        let (mut a, mut b) = (SplitMix64::new(2), SplitMix64::new(2));
        assert_eq!(agg.sample_flow(&mut a), back.sample_flow(&mut b));
        // a model saved before the per-component tables: the kind's table serves every draw
        let older = Aggregate::from_named(&|n| named.get(n).filter(|_| !(n.starts_with("ports_") && n.contains(".c"))).map(|t| t.shallow_clone())).unwrap();
        assert!(older.component_ports.iter().all(Vec::is_empty));
        let mut r = SplitMix64::new(3);
        let ports: Vec<u16> = (0..500).map(|_| older.sample_flow(&mut r).server_port).collect();
        assert!(ports.contains(&53) && ports.contains(&5004));
    }
}

#[cfg(test)]
mod open_tests {
    use super::*;

    fn tcp(mid_stream: bool, since_capture_start_s: f64, duration_s: f64) -> FlowRow {
        FlowRow {
            kind: FlowKind::Connected,
            gap_s: Some(0.1),
            packets: 10,
            bytes: 1000,
            duration_s,
            server_port: 443,
            client_port: 40000,
            ip_proto: 6,
            ip_version: 4,
            client_host: 0,
            server_host: 1,
            mid_stream,
            unanswered: false,
            one_side: None,
            timestamps: None,
            since_capture_start_s,
            until_capture_end_s: 0.0,
            capture_span_s: 0.0,
            capture: 0,
            seq: None,
        }
    }

    #[test]
    fn each_size_of_tcp_flow_keeps_its_own_open_and_unanswered_shares() {
        // 1-packet flows: lone ACKs (mid-stream) and unanswered SYNs, half each; 10-packet
        // flows: opened and answered
        let mut rows: Vec<FlowRow> = (0..60)
            .map(|i| FlowRow { packets: 1, bytes: 60, duration_s: 0.0, mid_stream: i % 2 == 0, unanswered: i % 2 == 1, ..tcp(false, 30.0 + f64::from(i), 0.0) })
            .collect();
        rows.extend((0..60).map(|i| tcp(false, 30.0 + f64::from(i), 5.0)));
        let agg = Aggregate::fit(&rows, 4, 1).unwrap();
        let mut rng = SplitMix64::new(2);
        for _ in 0..500 {
            let d = agg.sample_flow(&mut rng);
            let (open, unanswered) = if d.packets.round() == 1.0 { (0.5, 1.0) } else { (1.0, 0.0) };
            assert!((d.open_p - open).abs() < 1e-9 && (d.unanswered_p - unanswered).abs() < 1e-9, "{d:?}");
        }
        // the tables survive the round trip; a model without them answers every flow
        let named: std::collections::HashMap<String, Tensor> = agg.named_tensors().into_iter().collect();
        let back = Aggregate::from_named(&|n| named.get(n).map(|t| t.shallow_clone())).unwrap();
        assert_eq!((&back.component_open_p, &back.component_unanswered_p), (&agg.component_open_p, &agg.component_unanswered_p));
        let older = Aggregate::from_named(&|n| named.get(n).filter(|_| !n.ends_with("_connected")).map(|t| t.shallow_clone())).unwrap();
        let d = older.sample_flow(&mut rng);
        assert_eq!((d.open_p, d.unanswered_p), (agg.tcp_open_p, 0.0));
        // a table that is not one value per component is named
        let short = Aggregate::from_named(&|n| if n == "unanswered_connected" { Some(Tensor::from_slice(&[0.5f64])) } else { named.get(n).map(|t| t.shallow_clone()) });
        let e = short.err().unwrap_or_default();
        assert!(e.contains("`unanswered_connected` has 1 values") && e.contains("components of `flow_connected`"), "{e}");
    }

    #[test]
    fn each_size_of_tcp_flow_keeps_its_own_one_sided_shares() {
        // 1-packet flows: SYN-ACKs of a tap that sees servers only, and unanswered SYNs (not
        // among the answered flows the shares are of); 10-packet flows: a quarter seen from
        // the client's side only, the rest whole
        let mut rows: Vec<FlowRow> = (0..60)
            .map(|i| FlowRow {
                packets: 1,
                bytes: 60,
                unanswered: i % 2 == 1,
                one_side: Some(if i % 2 == 1 { Direction::Forward } else { Direction::Backward }),
                ..tcp(false, 30.0 + f64::from(i), 0.0)
            })
            .collect();
        rows.extend((0..60).map(|i| FlowRow { one_side: (i % 4 == 0).then_some(Direction::Forward), ..tcp(false, 30.0 + f64::from(i), 5.0) }));
        let agg = Aggregate::fit(&rows, 4, 1).unwrap();
        let mut rng = SplitMix64::new(3);
        for _ in 0..500 {
            let d = agg.sample_flow(&mut rng);
            let want = if d.packets.round() == 1.0 { [0.0, 1.0] } else { [0.25, 0.0] };
            assert!((d.one_sided_p[0] - want[0]).abs() < 1e-9 && (d.one_sided_p[1] - want[1]).abs() < 1e-9, "{d:?}");
        }
        // the table survives the round trip; a model without it sees both sides of every flow
        let named: std::collections::HashMap<String, Tensor> = agg.named_tensors().into_iter().collect();
        let back = Aggregate::from_named(&|n| named.get(n).map(|t| t.shallow_clone())).unwrap();
        assert_eq!(back.component_one_sided_p, agg.component_one_sided_p);
        let older = Aggregate::from_named(&|n| named.get(n).filter(|_| !n.starts_with(ONE_SIDED)).map(|t| t.shallow_clone())).unwrap();
        assert_eq!(older.sample_flow(&mut rng).one_sided_p, [0.0; 2]);
        // shares that are not a distribution, or not one pair per component, are named
        for bad in [vec![0.7, 0.6], vec![0.5]] {
            let t = Aggregate::from_named(&|n| if n == ONE_SIDED { Some(Tensor::from_slice(&bad)) } else { named.get(n).map(|t| t.shallow_clone()) });
            let e = t.err().unwrap_or_default();
            assert!(e.contains(ONE_SIDED), "{e}");
        }
        // captures that saw both sides of every flow leave the table out
        let whole: Vec<FlowRow> = rows.iter().map(|r| FlowRow { one_side: None, ..*r }).collect();
        assert!(Aggregate::fit(&whole, 4, 1).unwrap().named_tensors().iter().all(|(n, _)| !n.starts_with(ONE_SIDED)));
    }

    #[test]
    fn the_side_a_tap_sees_goes_with_the_port() {
        // flows of one size: web downloads seen from the server's side, uploads to 5000 from the client's
        let rows: Vec<FlowRow> = (0..80)
            .map(|i| {
                let web = i % 2 == 0;
                FlowRow { server_port: if web { 80 } else { 5000 }, one_side: Some(if web { Direction::Backward } else { Direction::Forward }), ..tcp(false, 30.0 + f64::from(i), 5.0) }
            })
            .collect();
        let agg = Aggregate::fit(&rows, 1, 1).unwrap();
        assert_eq!(agg.component_one_sided_p, vec![[0.5, 0.5]]);
        // 40 flows of each port, shrunk towards the component's halves by one flow
        let (own, other) = (40.5 / 41.0, 0.5 / 41.0);
        let mut rng = SplitMix64::new(3);
        for _ in 0..200 {
            let d = agg.sample_flow(&mut rng);
            let want = if d.server_port == 80 { [other, own] } else { [own, other] };
            assert!((d.one_sided_p[0] - want[0]).abs() < 1e-9 && (d.one_sided_p[1] - want[1]).abs() < 1e-9, "{d:?}");
        }
        // the table survives the round trip; a model without it has the component's shares for every port
        let named: std::collections::HashMap<String, Tensor> = agg.named_tensors().into_iter().collect();
        let back = Aggregate::from_named(&|n| named.get(n).map(|t| t.shallow_clone())).unwrap();
        assert_eq!(back.port_one_sided_p, agg.port_one_sided_p);
        let older = Aggregate::from_named(&|n| named.get(n).filter(|_| n != format!("{ONE_SIDED}.c0")).map(|t| t.shallow_clone())).unwrap();
        assert_eq!(older.sample_flow(&mut rng).one_sided_p, [0.5, 0.5]);
        // shares that are not one pair per row of the component's port table are named
        let bad = Aggregate::from_named(&|n| if n == format!("{ONE_SIDED}.c0") { Some(Tensor::from_slice(&[0.5f64, 0.5])) } else { named.get(n).map(|t| t.shallow_clone()) });
        let e = bad.err().unwrap_or_default();
        assert!(e.contains("one_sided_connected.c0") && e.contains("ports_connected.c0"), "{e}");
    }

    #[test]
    fn each_size_of_tcp_flow_seen_from_the_middle_keeps_its_own_timestamp_share() {
        // 1-packet flows seen from the middle: 3 in 4 carry timestamps (a backbone's Linux
        // hosts); 10-packet flows that opened (their SYN says, not this table) and a few seen
        // from the middle without timestamps
        let mut rows: Vec<FlowRow> = (0..80).map(|i| FlowRow { packets: 1, bytes: 52, timestamps: Some(i % 4 != 0), ..tcp(true, 30.0 + f64::from(i), 0.0) }).collect();
        rows.extend((0..60).map(|i| FlowRow { timestamps: Some(true), ..tcp(false, 30.0 + f64::from(i), 5.0) }));
        rows.extend((0..12).map(|i| FlowRow { timestamps: Some(false), ..tcp(true, 30.0 + f64::from(i), 5.0) }));
        let agg = Aggregate::fit(&rows, 4, 1).unwrap();
        let mut rng = SplitMix64::new(4);
        for _ in 0..500 {
            let d = agg.sample_flow(&mut rng);
            let want = if d.packets.round() == 1.0 { 0.75 } else { 0.0 };
            assert!((d.timestamps_p - want).abs() < 1e-9, "{d:?}");
        }
        // the table survives the round trip; a model without it sends no options mid-stream
        let named: std::collections::HashMap<String, Tensor> = agg.named_tensors().into_iter().collect();
        let back = Aggregate::from_named(&|n| named.get(n).map(|t| t.shallow_clone())).unwrap();
        assert_eq!(back.component_timestamps_p, agg.component_timestamps_p);
        let older = Aggregate::from_named(&|n| named.get(n).filter(|_| n != TIMESTAMPS).map(|t| t.shallow_clone())).unwrap();
        assert_eq!(older.sample_flow(&mut rng).timestamps_p, 0.0);
        // shares that are not probabilities, or not one per component, are named
        for bad in [vec![1.5; agg.component_timestamps_p.len()], vec![0.5; agg.component_timestamps_p.len() + 1]] {
            let t = Aggregate::from_named(&|n| if n == TIMESTAMPS { Some(Tensor::from_slice(&bad)) } else { named.get(n).map(|t| t.shallow_clone()) });
            let e = t.err().unwrap_or_default();
            assert!(e.contains(TIMESTAMPS), "{e}");
        }
        // a capture whose flows seen from the middle never carry timestamps leaves it out
        let none: Vec<FlowRow> = rows.iter().map(|r| FlowRow { timestamps: Some(false), ..*r }).collect();
        assert!(Aggregate::fit(&none, 4, 1).unwrap().named_tensors().iter().all(|(n, _)| n != TIMESTAMPS));
    }

    #[test]
    fn the_open_share_leaves_out_flows_in_progress_at_the_capture_start() {
        // a LAN capture: 10 flows in progress at the start (first seen in the first seconds,
        // no SYN), then 40 flows opened with SYN and 2 idle connections resuming without one
        let mut rows: Vec<FlowRow> = (0..10).map(|i| tcp(true, 0.1 * f64::from(i), 20.0)).collect();
        rows.extend((0..40).map(|i| tcp(false, 30.0 + f64::from(i), 5.0)));
        rows.extend((0..2).map(|i| tcp(true, 80.0 + f64::from(i), 5.0)));
        assert!((tcp_open_share(&rows) - 40.0 / 42.0).abs() < 1e-9);
        // a backbone capture of milliseconds: flows last longer than it, none is seen opening
        let mut rows: Vec<FlowRow> = (0..300).map(|i| tcp(true, 1e-5 * f64::from(i), 1e-6)).collect();
        rows.extend((0..3).map(|i| tcp(false, 1e-3 + 1e-5 * f64::from(i), 1e-4)));
        assert!((tcp_open_share(&rows) - 0.01).abs() < 0.005, "{}", tcp_open_share(&rows));
        assert_eq!(tcp_open_share(&[]), 1.0);
        // stored and read back; a model without the tensor opens every flow
        let agg = Aggregate::fit(&rows, 4, 1).unwrap();
        let named: std::collections::HashMap<String, Tensor> = agg.named_tensors().into_iter().collect();
        let back = Aggregate::from_named(&|n| named.get(n).map(|t| t.shallow_clone())).unwrap();
        assert_eq!(back.tcp_open_p, agg.tcp_open_p);
        let older = Aggregate::from_named(&|n| named.get(n).filter(|_| n != "tcp_open_p").map(|t| t.shallow_clone())).unwrap();
        assert_eq!(older.tcp_open_p, 1.0);
        let bad = Aggregate::from_named(&|n| if n == "tcp_open_p" { Some(Tensor::from_slice(&[1.5f64])) } else { named.get(n).map(|t| t.shallow_clone()) });
        assert!(bad.is_err());
    }
}

#[cfg(test)]
mod host_tests {
    use super::*;

    fn udp(client_host: u32, client_port: u16, server_host: u32, server_port: u16) -> FlowRow {
        FlowRow { client_port, server_port, ..FlowRow::example(client_host, server_host) }
    }

    #[test]
    fn single_flow_hosts_and_fixed_client_ports_are_learnt_and_stored() {
        // a DHCP flood: 40 clients from port 68, each seen once, to 3 servers; one of them
        // also answers 10 DNS lookups from a resolver with ephemeral ports
        let mut rows: Vec<FlowRow> = (0..40).map(|i| udp(100 + i, 68, i % 3, 67)).collect();
        rows.extend((0..10).map(|i| udp(7, 40_000 + i as u16, 0, 53)));
        // hosts by flows: clients 7 (10), then 40 single ones; servers 0, 1, 2 (24, 13, 13)
        let agg = Aggregate::fit(&rows, 4, 1).unwrap();
        assert_eq!(agg.fresh_rank, [1, u32::MAX]);
        assert_eq!(first_single([5, 5, 6, 7].into_iter()), 1);
        assert_eq!(first_single((0..5000).map(|h| h / 2)), u32::MAX);
        assert_eq!(first_single(0..5000), 0);
        assert_eq!(agg.client_ports.rows.len(), 1, "{:?}", agg.client_ports);
        let mut rng = SplitMix64::new(5);
        assert_eq!(agg.client_ports.draw(67, 17, &mut rng), 68);
        assert_eq!(agg.client_ports.draw(53, 17, &mut rng), 0);

        let named: std::collections::HashMap<String, Tensor> = agg.named_tensors().into_iter().collect();
        let back = Aggregate::from_named(&|n| named.get(n).map(|t| t.shallow_clone())).unwrap();
        assert_eq!((back.fresh_rank, &back.client_ports), (agg.fresh_rank, &agg.client_ports));
        // models before the tensors: no host of its own, no fixed client port
        let older = Aggregate::from_named(&|n| named.get(n).filter(|_| n != "fresh_rank" && n != client_port::TENSOR).map(|t| t.shallow_clone())).unwrap();
        assert_eq!(older.fresh_rank, [u32::MAX; 2]);
        assert!(older.client_ports.rows.is_empty());
        let bad = Aggregate::from_named(&|n| if n == "fresh_rank" { Some(Tensor::from_slice(&[1i64])) } else { named.get(n).map(|t| t.shallow_clone()) });
        assert!(bad.err().is_some_and(|e| e.contains("fresh_rank")));
    }

    #[test]
    fn a_host_on_both_sides_is_learnt_and_stored() {
        // a resolver (host 7) looks up 10 names at server 0 and answers 3 hosts' queries
        let mut rows: Vec<FlowRow> = (0..10).map(|i| udp(7, 40_000 + i as u16, 0, 53)).collect();
        rows.extend((0..3).map(|i| udp(50 + i, 41_000, 7, 53)));
        let agg = Aggregate::fit(&rows, 4, 1).unwrap();
        // client ranks: 7 first; server ranks: 0, then 7: kept on the client side (10 flows to 3)
        assert_eq!(agg.shared_hosts.hosts, vec![shared_hosts::SharedHost { client_rank: 0, server_rank: 1, kept: shared_hosts::Side::Client }]);
        assert_eq!(agg.shared_hosts.place(2, 1), [(shared_hosts::Side::Client, 2), (shared_hosts::Side::Client, 0)]);
        let named: std::collections::HashMap<String, Tensor> = agg.named_tensors().into_iter().collect();
        let back = Aggregate::from_named(&|n| named.get(n).map(|t| t.shallow_clone())).unwrap();
        assert_eq!(back.shared_hosts, agg.shared_hosts);
        // models before the table: every host one per side
        let older = Aggregate::from_named(&|n| named.get(n).filter(|_| n != shared_hosts::TENSOR).map(|t| t.shallow_clone())).unwrap();
        assert!(older.shared_hosts.hosts.is_empty());
        let bad = Aggregate::from_named(&|n| if n == shared_hosts::TENSOR { Some(Tensor::from_slice(&[0i64, 9, 0]).view([1, 3])) } else { named.get(n).map(|t| t.shallow_clone()) });
        assert!(bad.err().is_some_and(|e| e.contains("`shared_hosts` row 0")));
    }
}
