//! Standing flows: the streams a capture is never without.
//!
//! A flow that runs through most of its capture and is still going when the capture ends (a
//! media stream, a tunnel, a chatty keep-alive) is not an arrival like the others: its start
//! was seen, or not, by chance of when the capture began, and its end not at all. Drawn from
//! the arrival process like any flow, it appears in a synthetic window at random, once,
//! twice or not at all; a capture where it carries 80 % of the packets then has every
//! packet-weighted distribution (hosts, ports, protocol, sizes) swing with that draw.
//!
//! So training takes such flows out of the arrival model and keeps each here with what it
//! is (kind, service, hosts), its packet rate and its own sequence model: a first-order
//! Markov chain over its packets' states — the packet component and which side sent it, so
//! that request/response alternation and each side's sizes stay — and per state the
//! quantiles of its gaps. The kind's LSTM learnt from every flow of the kind, and starts like
//! most of them: a stream among DNS lookups came out with lookup-sized packets and gaps.
//! Generation runs each standing flow for the whole stream on its chain (sizes from the
//! component's decoded packets, direction and gap from the state), paced to its rate
//! ([`crate::synth`]). With several training captures, a
//! standing flow is in a generated stream with the probability of its capture's share of the
//! training time (one draw per stream).

use tch::{Kind, Tensor};

use super::aggregate::MAX_GAP_S;
use super::dataset::{col, Dataset, FlowRow};
use crate::flow::FlowKind;

/// Captures shorter than this have no standing flows (whether a flow outlasts the capture
/// cannot be told from a few milliseconds of a backbone link).
pub const MIN_SPAN_S: f64 = 1.0;
/// A standing flow lasts at least this share of its capture…
pub const MIN_SHARE_OF_SPAN: f64 = 0.5;
/// …and its last packet is at most two of its own mean gaps (at least 5 %, at most 25 % of
/// the capture) before the capture's end.
pub const END_GAPS: f64 = 2.0;

/// One standing flow.
#[derive(Clone, Debug, PartialEq)]
pub struct StandingFlow {
    pub kind: FlowKind,
    /// Its packets per second in training.
    pub pps: f64,
    pub server_port: u16,
    /// Its client's port: a stream keeps both of its ports.
    pub client_port: u16,
    pub ip_proto: u8,
    pub v6: bool,
    /// Its hosts' ranks in the aggregate model's rank tables.
    pub client_rank: u32,
    pub server_rank: u32,
    /// TCP: seen without its handshake (opened before the capture).
    pub mid_stream: bool,
    /// Probability that a generated stream has it: its capture's share of the training time.
    pub share: f64,
    /// Its packets as a Markov chain over states `2 c + d` (component `c`, `d` 1 when the
    /// server sent it): `(2k + 1) × 2k` transition weights, row `s` from state `s`, row `2k`
    /// the states' frequencies (where it is entered, as a stream seen from its middle).
    /// Empty: the kind's LSTM writes it (no packet rows).
    pub chain: Vec<f64>,
    /// Per state, [`GAP_QUANTILES`] quantiles of log10 seconds since the flow's previous
    /// packet, for its packets in that state (NaN: none there).
    pub gaps: Vec<f64>,
}

/// Quantiles kept of a standing flow's gaps per state (0 %, 3.125 %, …, 100 %).
pub const GAP_QUANTILES: usize = 33;

/// States of a chain over `k` packet components: each component from either side.
pub fn states(k: usize) -> usize {
    2 * k
}

impl StandingFlow {
    /// Whether its chain and gap tables are laid out for `k` packet components (a flow
    /// without them has none: the kind's LSTM writes it).
    pub fn chain_fits(&self, k: usize) -> bool {
        let n = states(k);
        self.chain.len() == (n + 1) * n && self.gaps.len() == n * GAP_QUANTILES
    }

    /// The next state after `from` (`states(k)` or more: entering the chain), `u` uniform
    /// in [0, 1).
    pub fn next_state(&self, k: usize, from: usize, u: f64) -> usize {
        let n = states(k);
        let row = |r: usize| &self.chain[r * n..(r + 1) * n];
        let mut w = row(from.min(n));
        let mut total: f64 = w.iter().sum();
        if total <= 0.0 {
            // a state the flow never left in training: enter afresh
            w = row(n);
            total = w.iter().sum();
        }
        let mut x = u * total;
        for (c, &p) in w.iter().enumerate() {
            x -= p;
            if x < 0.0 {
                return c;
            }
        }
        w.iter().rposition(|&p| p > 0.0).unwrap_or(0)
    }

    /// A gap (seconds) for a packet in `state`, drawn between the flow's quantiles there
    /// (log-linear), `u` uniform in [0, 1); `None` when it had no packet there.
    pub fn gap_s(&self, k: usize, state: usize, u: f64) -> Option<f64> {
        let q = self.gaps.get(state * GAP_QUANTILES..(state + 1) * GAP_QUANTILES).filter(|_| self.gaps.len() == states(k) * GAP_QUANTILES)?;
        if q[0].is_nan() {
            return None;
        }
        Some(super::component_gaps::log_quantile_at(q, u))
    }
}

/// Learns each standing flow's chain and gaps from its packets (`ds`) and their components
/// (`components[row]`); `flows` came from `ds.flow_rows` ([`fit`]).
pub fn learn_sequences(flows: &mut [StandingFlow], ds: &Dataset, components: &[i64], k: usize) {
    let n = states(k);
    for (s, r) in flows.iter_mut().zip(ds.flow_rows.iter().filter(|r| is_standing(r))) {
        let Some(q) = r.seq.and_then(|i| ds.flows.get(i)) else { continue };
        let rows = q.start..(q.start + q.len).min(components.len());
        let state_of = |row: usize| {
            let c = components[row] as usize;
            (c < k).then(|| 2 * c + usize::from(ds.row(row)[col::DIRECTION] > 0.5))
        };
        let mut chain = vec![0.0; (n + 1) * n];
        let mut gaps: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut prev = None;
        for (i, row) in rows.enumerate() {
            let Some(st) = state_of(row) else {
                prev = None;
                continue;
            };
            if let Some(a) = prev {
                chain[a * n + st] += 1.0;
            }
            chain[n * n + st] += 1.0;
            if i > 0 {
                // the first packet's gap is no gap
                gaps[st].push(f64::from(ds.row(row)[col::LOG_DT]));
            }
            prev = Some(st);
        }
        s.chain = chain;
        s.gaps = gaps
            .iter_mut()
            .flat_map(|g| {
                g.sort_by(f64::total_cmp);
                (0..GAP_QUANTILES).map(|j| if g.is_empty() { f64::NAN } else { g[(j * (g.len() - 1)).div_ceil(GAP_QUANTILES - 1).min(g.len() - 1)] }).collect::<Vec<_>>()
            })
            .collect();
    }
}

/// Number of values per flow in the stored tensor.
const FIELDS: usize = 10;

/// Whether `r` is a standing flow of its capture.
pub fn is_standing(r: &FlowRow) -> bool {
    let span = r.capture_span_s;
    if span.is_nan() || span < MIN_SPAN_S || r.packets < 3 || r.duration_s < MIN_SHARE_OF_SPAN * span {
        return false;
    }
    let mean_gap = r.duration_s / (r.packets - 1) as f64;
    r.until_capture_end_s <= (END_GAPS * mean_gap).clamp(0.05 * span, 0.25 * span)
}

/// The standing flows among `rows`; `ranks` gives a row's (client, server) host ranks.
pub fn fit(rows: &[FlowRow], ranks: impl Fn(&FlowRow) -> (u32, u32)) -> Vec<StandingFlow> {
    let spans = active_spans(rows);
    let total: f64 = spans.values().sum();
    rows.iter()
        .filter(|r| is_standing(r))
        .map(|r| {
            let (client_rank, server_rank) = ranks(r);
            StandingFlow {
                kind: r.kind,
                pps: r.packets as f64 / r.duration_s,
                server_port: r.server_port,
                client_port: r.client_port,
                ip_proto: r.ip_proto,
                v6: r.ip_version == 6,
                client_rank,
                server_rank,
                mid_stream: r.mid_stream,
                share: (spans.get(&r.capture).copied().unwrap_or(0.0) / total).clamp(0.0, 1.0),
                chain: Vec::new(),
                gaps: Vec::new(),
            }
        })
        .collect()
}

/// Training time per capture: its span less the breaks in it (no flow for more than
/// [`MAX_GAP_S`]: traces recorded years apart, joined into one file).
fn active_spans(rows: &[FlowRow]) -> rustc_hash::FxHashMap<u32, f64> {
    // per capture: its span and its flows' (start, end)
    let mut by: rustc_hash::FxHashMap<u32, (f64, Vec<(f64, f64)>)> = Default::default();
    for r in rows {
        by.entry(r.capture).or_insert_with(|| (r.capture_span_s, Vec::new())).1.push((r.since_capture_start_s, r.since_capture_start_s + r.duration_s));
    }
    by.into_iter()
        .map(|(c, (span, mut v))| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut covered = v[0].1;
            let mut breaks = 0.0;
            for &(a, b) in &v[1..] {
                if a - covered > MAX_GAP_S {
                    breaks += a - covered;
                }
                covered = covered.max(b);
            }
            (c, (span - breaks).max(0.0))
        })
        .collect()
}

/// The flows as one `[n, FIELDS]` tensor (f64).
pub fn to_tensor(flows: &[StandingFlow]) -> Tensor {
    let v: Vec<f64> = flows
        .iter()
        .flat_map(|s| {
            [
                s.kind.index() as f64,
                s.pps,
                f64::from(s.server_port),
                f64::from(s.ip_proto),
                f64::from(u8::from(s.v6)),
                f64::from(s.client_rank),
                f64::from(s.server_rank),
                f64::from(u8::from(s.mid_stream)),
                s.share,
                f64::from(s.client_port),
            ]
        })
        .collect();
    Tensor::from_slice(&v).view([-1, FIELDS as i64])
}

/// Reads [`to_tensor`]'s layout back; the error names the row and field that is out of range.
pub fn from_tensor(t: &Tensor, name: &str) -> Result<Vec<StandingFlow>, String> {
    let v = Vec::<f64>::try_from(t.to_kind(Kind::Double).view([-1])).map_err(|e| format!("tensor `{name}`: {e}"))?;
    if v.len() % FIELDS != 0 {
        return Err(format!("tensor `{name}` must have {FIELDS} values per flow, has {}", v.len()));
    }
    v.chunks(FIELDS)
        .enumerate()
        .map(|(i, c)| {
            let bad = |field: &str| format!("tensor `{name}`, flow {i}: {field} is out of range");
            let int = |x: f64, max: f64, field: &str| if x.fract() == 0.0 && (0.0..=max).contains(&x) { Ok(x) } else { Err(bad(field)) };
            let kind = FlowKind::ALL[int(c[0], 2.0, "kind")? as usize];
            if !(c[1].is_finite() && c[1] > 0.0) {
                return Err(bad("pps"));
            }
            if !(0.0..=1.0).contains(&c[8]) {
                return Err(bad("share"));
            }
            Ok(StandingFlow {
                kind,
                pps: c[1],
                server_port: int(c[2], 65535.0, "server_port")? as u16,
                ip_proto: int(c[3], 255.0, "ip_proto")? as u8,
                v6: int(c[4], 1.0, "v6")? == 1.0,
                client_rank: int(c[5], f64::from(u32::MAX), "client_rank")? as u32,
                server_rank: int(c[6], f64::from(u32::MAX), "server_rank")? as u32,
                mid_stream: int(c[7], 1.0, "mid_stream")? == 1.0,
                share: c[8],
                client_port: int(c[9], 65535.0, "client_port")? as u16,
                chain: Vec::new(),
                gaps: Vec::new(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn row(packets: u64, since: f64, duration: f64, span: f64) -> FlowRow {
        FlowRow {
            kind: FlowKind::Unconnected,
            gap_s: Some(1.0),
            packets,
            bytes: packets * 100,
            duration_s: duration,
            server_port: 26454,
            client_port: 18826,
            ip_proto: 17,
            ip_version: 4,
            client_host: 0,
            server_host: 1,
            mid_stream: false,
            unanswered: false,
            one_side: None,
            timestamps: None,
            since_capture_start_s: since,
            until_capture_end_s: (span - since - duration).max(0.0),
            capture_span_s: span,
            capture: 0,
            seq: None,
        }
    }

    #[test]
    fn a_flow_running_to_its_captures_end_stands_and_others_do_not() {
        // a stream from 16 s to the end of a 48 s capture, 80 packets/s
        assert!(is_standing(&row(2600, 16.0, 32.0, 48.0)));
        // the same stream ending 10 s before the capture did: it ended
        assert!(!is_standing(&row(1800, 16.0, 22.0, 48.0)));
        // a short flow at the end; a long one in a capture of milliseconds
        assert!(!is_standing(&row(50, 40.0, 8.0, 48.0)));
        assert!(!is_standing(&row(50, 0.0, 0.002, 0.0026)));
        // a keep-alive every 15 s from the start: its last packet 10 s before the end is
        // within two of its gaps (and a quarter of the capture)
        assert!(is_standing(&row(3, 8.0, 30.0, 48.0)));
        assert!(!is_standing(&row(2, 8.0, 30.0, 48.0)), "two packets give no rate");
    }

    #[test]
    fn ingestion_marks_the_stream_that_runs_to_the_end_of_each_capture() {
        use crate::fixture::{udp_exchange, write_pcap};
        const MS: i64 = 1_000_000;
        let dir = tempfile::tempdir().unwrap();
        // capture 1, 10 s: a stream every 50 ms from 2 s to the end, and two lookups
        let mut a: Vec<_> = (0..160).flat_map(|i| udp_exchange([10, 0, 0, 1], [10, 0, 0, 2], 18826, 26454, 2000 * MS + i * 50 * MS, 100, 100)).collect();
        a.extend(udp_exchange([10, 0, 0, 3], [10, 0, 0, 4], 40000, 53, 1, 30, 90));
        a.extend(udp_exchange([10, 0, 0, 3], [10, 0, 0, 4], 40001, 53, 5000 * MS, 30, 90));
        a.sort_by_key(|f| f.0);
        // capture 2, 30 s: lookups only
        let b: Vec<_> = (0..4).flat_map(|i| udp_exchange([10, 0, 0, 3], [10, 0, 0, 4], 41000 + i as u16, 53, i * 10_000 * MS, 30, 90)).collect();
        let (pa, pb) = (dir.path().join("a.pcap"), dir.path().join("b.pcap"));
        write_pcap(&pa, a).unwrap();
        write_pcap(&pb, b).unwrap();
        let ds = crate::model::dataset::collect(&[pa, pb], &crate::ingest::IngestOptions::default()).unwrap();
        let stream = ds.flow_rows.iter().find(|r| r.server_port == 26454).unwrap();
        assert_eq!((stream.capture, stream.client_port), (0, 18826));
        assert!((stream.capture_span_s - 9.952).abs() < 1e-6 && stream.until_capture_end_s < 1e-6, "{stream:?}");
        assert!(is_standing(stream));
        let lookups: Vec<&FlowRow> = ds.flow_rows.iter().filter(|r| r.server_port == 53).collect();
        assert_eq!(lookups.len(), 6);
        assert!(lookups.iter().all(|r| !is_standing(r)));
        assert!(lookups.iter().filter(|r| r.capture == 1).all(|r| (r.capture_span_s - 30.002).abs() < 1e-6));
        let s = fit(&ds.flow_rows, |_| (0, 0));
        assert_eq!(s.len(), 1);
        assert!((s[0].share - 9.952 / (9.952 + 30.002)).abs() < 1e-6, "{:?}", s[0]);
        assert!((s[0].pps - 320.0 / 7.952).abs() < 1e-6, "{:?}", s[0]);
    }

    #[test]
    fn a_standing_flow_learns_its_own_chain_gaps_and_directions() {
        use crate::model::dataset::{FlowSeq, PACKET_DIM};
        // a stream alternating requests (component 0, from the client, 10 ms after the
        // previous packet) and answers (component 0 too, from the server, 1 ms after) with,
        // every tenth packet, a component-1 request; 2 components: states 0, 1 (c0 each way), 2
        let (k, n) = (2usize, 100usize);
        let mut ds = Dataset::default();
        let mut components = Vec::new();
        for i in 0..n {
            let mut v = [0f32; PACKET_DIM];
            let (c, back) = if i % 2 == 1 { (0, true) } else if i % 10 == 0 { (1, false) } else { (0, false) };
            v[col::DIRECTION] = f32::from(u8::from(back));
            v[col::LOG_DT] = if i == 0 { -7.0 } else if back { -3.0 } else { -2.0 };
            ds.packets.extend_from_slice(&v);
            components.push(c);
        }
        ds.flows.push(FlowSeq { kind: FlowKind::Unconnected, start: 0, len: n });
        ds.flow_rows.push(FlowRow { seq: Some(0), ..row(n as u64, 16.0, 32.0, 48.0) });
        let mut flows = fit(&ds.flow_rows, |_| (0, 1));
        learn_sequences(&mut flows, &ds, &components, k);
        let s = &flows[0];
        let m = states(k);
        assert_eq!(s.chain.len(), (m + 1) * m);
        // after a request (state 0 or 2) always an answer (1); after an answer a request
        assert_eq!(&s.chain[..m], &[0.0, 40.0, 0.0, 0.0]);
        assert_eq!(&s.chain[m..2 * m], &[40.0, 0.0, 9.0, 0.0]);
        assert_eq!(&s.chain[2 * m..3 * m], &[0.0, 10.0, 0.0, 0.0]);
        assert_eq!(&s.chain[m * m..], &[40.0, 50.0, 10.0, 0.0], "entered by the states' frequencies");
        assert!((0..10).all(|i| s.next_state(k, 0, i as f64 / 10.0) == 1 && s.next_state(k, 2, i as f64 / 10.0) == 1));
        let after_answer: Vec<usize> = (0..49).map(|i| s.next_state(k, 1, i as f64 / 49.0)).collect();
        assert_eq!((after_answer.iter().filter(|&&x| x == 0).count(), after_answer.iter().filter(|&&x| x == 2).count()), (40, 9));
        // a state never left (3) is entered afresh
        assert_ne!(s.next_state(k, 3, 0.5), 3);
        // each state's own gaps; the first packet's gap is no gap
        assert!((s.gap_s(k, 0, 0.3).unwrap() - 1e-2).abs() < 1e-12 && (s.gap_s(k, 1, 0.9).unwrap() - 1e-3).abs() < 1e-12);
        assert_eq!(s.gap_s(k, 3, 0.5), None, "no packet there: the bank's draw stands");
        // stored with the aggregate model and read back
        let mut agg = crate::model::aggregate::Aggregate::fit(&ds.flow_rows, 4, 1).unwrap();
        assert_eq!(agg.standing.len(), 1, "kept apart from the arrivals");
        assert_eq!(agg.kind_p, [0.0; 3]);
        agg.standing = flows.clone();
        let named: std::collections::HashMap<String, Tensor> = agg.named_tensors().into_iter().collect();
        let back = crate::model::aggregate::Aggregate::from_named(&|n| named.get(n).map(|t| t.shallow_clone())).unwrap();
        assert_eq!(back.standing[0].chain, flows[0].chain);
        let bits = |g: &[f64]| g.iter().map(|x| x.to_bits()).collect::<Vec<u64>>();
        assert_eq!(bits(&back.standing[0].gaps), bits(&flows[0].gaps));
    }

    #[test]
    fn standing_flows_keep_their_rate_and_share_and_survive_the_round_trip() {
        let mut rows = vec![row(2600, 16.0, 32.0, 48.0), row(10, 1.0, 2.0, 48.0)];
        let mut other = row(300, 0.0, 150.0, 152.0);
        other.capture = 1;
        (other.kind, other.ip_version, other.mid_stream, other.server_port, other.ip_proto) = (FlowKind::Connected, 6, true, 22, 6);
        rows.push(other);
        let s = fit(&rows, |r| (r.client_host + 7, r.server_host + 7));
        assert_eq!(s.len(), 2);
        assert!((s[0].pps - 2600.0 / 32.0).abs() < 1e-9);
        assert!((s[0].share - 48.0 / 200.0).abs() < 1e-9 && (s[1].share - 152.0 / 200.0).abs() < 1e-9);
        // a third capture of two sessions a year apart counts their 20 s, not the year
        let mut far = vec![row(10, 0.0, 10.0, 3.2e7), row(10, 3.2e7 - 10.0, 10.0, 3.2e7)];
        far.iter_mut().for_each(|r| r.capture = 2);
        rows.extend(far);
        let broken = fit(&rows, |_| (0, 0));
        assert!((broken[0].share - 48.0 / 220.0).abs() < 1e-9, "{}", broken[0].share);
        assert_eq!((s[0].client_rank, s[0].server_rank, s[0].client_port), (7, 8, 18826));
        assert_eq!((s[1].kind, s[1].v6, s[1].mid_stream, s[1].server_port), (FlowKind::Connected, true, true, 22));
        assert_eq!(from_tensor(&to_tensor(&s), "standing").unwrap(), s);
        assert_eq!(from_tensor(&to_tensor(&[]), "standing").unwrap(), vec![]);
        let mut bad = s.clone();
        bad[1].pps = -1.0;
        let e = from_tensor(&to_tensor(&bad), "standing").unwrap_err();
        assert!(e.contains("flow 1") && e.contains("pps"), "{e}");
        let e = from_tensor(&Tensor::from_slice(&[0.0f64, 1.0, 53.0]), "standing").unwrap_err();
        assert!(e.contains("10 values per flow"), "{e}");
    }
}
