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
//! is (kind, service, hosts) and its packet rate; generation runs each of them for the whole
//! stream, paced to that rate ([`crate::synth`]). With several training captures, a
//! standing flow is in a generated stream with the probability of its capture's share of the
//! training time (one draw per stream).

use tch::{Kind, Tensor};

use super::dataset::FlowRow;
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
#[derive(Clone, Copy, Debug, PartialEq)]
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
}

/// Number of values per flow in the stored tensor.
const FIELDS: usize = 10;

/// Whether `r` is a standing flow of its capture.
pub fn is_standing(r: &FlowRow) -> bool {
    let span = r.capture_span_s;
    if !(span >= MIN_SPAN_S) || r.packets < 3 || r.duration_s < MIN_SHARE_OF_SPAN * span {
        return false;
    }
    let mean_gap = r.duration_s / (r.packets - 1) as f64;
    r.until_capture_end_s <= (END_GAPS * mean_gap).clamp(0.05 * span, 0.25 * span)
}

/// The standing flows among `rows`; `ranks` gives a row's (client, server) host ranks.
pub fn fit(rows: &[FlowRow], ranks: impl Fn(&FlowRow) -> (u32, u32)) -> Vec<StandingFlow> {
    // training time: the spans of the captures, each once
    let mut spans: rustc_hash::FxHashMap<u32, f64> = Default::default();
    for r in rows {
        spans.insert(r.capture, r.capture_span_s);
    }
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
                share: (r.capture_span_s / total).clamp(0.0, 1.0),
            }
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
            since_capture_start_s: since,
            until_capture_end_s: (span - since - duration).max(0.0),
            capture_span_s: span,
            capture: 0,
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
