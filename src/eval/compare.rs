//! Every fidelity metric between a reference summary and a candidate summary.
//!
//! This module owns the list of metrics ([`METRICS`]: name, class, distance, the quantity it
//! is computed on, whether it is one of NetShare's) and their absolute tolerances, and
//! [`compare`], which evaluates them all for one pair of [`TrafficSummary`]s. The reference
//! is the real (or held-out real) capture; tolerances are derived from it.
//!
//! - NetShare's set: JSD of source/destination IP popularity (packets per address by rank,
//!   padded with zeros), source port, destination port (65,536 bins), IP protocol (256
//!   bins); EMD of packet length (bytes), relative timestamp and flow size (packets per
//!   directional 5-tuple). Times are **seconds** here; NetShare's CSVs hold µs, so the time
//!   EMDs it publishes are 10⁶× ours for the same traffic.
//! - Beyond NetShare: EMD and KS of within-flow inter-arrival, flow-start inter-arrival, flow
//!   duration, bytes per flow and packets per flow of each kind; JSD of TCP flag
//!   combinations, the flow-kind mix and the application mix; the absolute difference of the
//!   lag-1 autocorrelation of the packet-count series in 1 ms, 10 ms and 100 ms bins.
//!
//! Tolerances (absolute, the value must not exceed them): JSD 0.01; EMD 2 % of the
//! reference's mean of that quantity; KS 0.05; autocorrelation difference 0.05.
//!
//! It does not format anything (see [`super::report`]) and does not choose what to compare
//! with what (see [`super::evaluation`]).

use crate::flow::FlowKind;

use super::metrics;
use super::traffic::{Categorical, Continuous, TrafficSummary};

/// What kind of property a metric checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricClass {
    /// The distribution of one field taken alone (a marginal).
    SingleField,
    /// How packets group into flows and over time (flow size, bytes per flow, flow duration,
    /// within-flow and flow-start inter-arrivals, rate autocorrelation): what independent
    /// sampling of fields destroys.
    Structure,
}

impl MetricClass {
    pub fn name(self) -> &'static str {
        match self {
            MetricClass::SingleField => "single_field",
            MetricClass::Structure => "structure",
        }
    }
}

/// The distance a metric uses (see [`super::metrics`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Distance {
    Jsd,
    Emd,
    Ks,
    /// |r₁(candidate) − r₁(reference)|, r₁ the lag-1 autocorrelation of the packet-count series.
    AcfDiff,
}

/// What a metric is computed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    Continuous(Continuous),
    Categorical(Categorical),
    /// The packet-count series of IP packets in bins of this many milliseconds.
    Rate { bin_ms: u32 },
}

/// One metric's definition.
#[derive(Clone, Copy, Debug)]
pub struct MetricDef {
    pub name: &'static str,
    pub class: MetricClass,
    pub distance: Distance,
    pub quantity: Quantity,
    /// One of the metrics of NetShare's paper (same definition; times in seconds).
    pub netshare: bool,
    /// Unit of the value (EMD: the quantity's unit; others are unitless).
    pub unit: &'static str,
}

/// JSD tolerance (nats).
pub const JSD_TOLERANCE: f64 = 0.01;
/// EMD tolerance as a fraction of the reference's mean of the quantity.
pub const EMD_TOLERANCE_OF_MEAN: f64 = 0.02;
/// KS statistic tolerance.
pub const KS_TOLERANCE: f64 = 0.05;
/// Tolerance on the difference of lag-1 autocorrelations.
pub const ACF_TOLERANCE: f64 = 0.05;

/// Bin widths of the rate-autocorrelation metrics, ms.
pub const RATE_BINS_MS: [u32; 3] = [1, 10, 100];

const fn def(name: &'static str, class: MetricClass, distance: Distance, quantity: Quantity, netshare: bool, unit: &'static str) -> MetricDef {
    MetricDef { name, class, distance, quantity, netshare, unit }
}

use Categorical as Cat;
use Continuous as Con;
use Distance::{AcfDiff, Emd, Jsd, Ks};
use MetricClass::{SingleField as SF, Structure as ST};
use Quantity::{Categorical as Q_, Continuous as QC};

/// Every metric, in report order.
pub const METRICS: &[MetricDef] = &[
    def("jsd_src_ip_rank", SF, Jsd, Q_(Cat::SrcIpRank), true, ""),
    def("jsd_dst_ip_rank", SF, Jsd, Q_(Cat::DstIpRank), true, ""),
    def("jsd_src_port", SF, Jsd, Q_(Cat::SrcPort), true, ""),
    def("jsd_dst_port", SF, Jsd, Q_(Cat::DstPort), true, ""),
    def("jsd_ip_proto", SF, Jsd, Q_(Cat::IpProto), true, ""),
    def("emd_pkt_len", SF, Emd, QC(Con::PacketLength), true, "B"),
    def("emd_timestamp", SF, Emd, QC(Con::Timestamp), true, "s"),
    def("emd_flow_size", ST, Emd, QC(Con::FlowSize), true, "pkts"),
    def("emd_within_flow_iat", ST, Emd, QC(Con::WithinFlowIat), false, "s"),
    def("ks_within_flow_iat", ST, Ks, QC(Con::WithinFlowIat), false, ""),
    def("emd_flow_start_iat", ST, Emd, QC(Con::FlowStartIat), false, "s"),
    def("ks_flow_start_iat", ST, Ks, QC(Con::FlowStartIat), false, ""),
    def("emd_flow_duration", ST, Emd, QC(Con::FlowDuration), false, "s"),
    def("ks_flow_duration", ST, Ks, QC(Con::FlowDuration), false, ""),
    def("emd_flow_bytes", ST, Emd, QC(Con::FlowBytes), false, "B"),
    def("ks_flow_bytes", ST, Ks, QC(Con::FlowBytes), false, ""),
    def("emd_flow_packets_connected", ST, Emd, QC(Con::FlowPackets(FlowKind::Connected)), false, "pkts"),
    def("ks_flow_packets_connected", ST, Ks, QC(Con::FlowPackets(FlowKind::Connected)), false, ""),
    def("emd_flow_packets_unconnected", ST, Emd, QC(Con::FlowPackets(FlowKind::Unconnected)), false, "pkts"),
    def("ks_flow_packets_unconnected", ST, Ks, QC(Con::FlowPackets(FlowKind::Unconnected)), false, ""),
    def("emd_flow_packets_noflow", ST, Emd, QC(Con::FlowPackets(FlowKind::NoFlow)), false, "pkts"),
    def("ks_flow_packets_noflow", ST, Ks, QC(Con::FlowPackets(FlowKind::NoFlow)), false, ""),
    def("jsd_tcp_flags", SF, Jsd, Q_(Cat::TcpFlags), false, ""),
    def("jsd_flow_kind", SF, Jsd, Q_(Cat::FlowKind), false, ""),
    def("jsd_app", SF, Jsd, Q_(Cat::App), false, ""),
    def("acf_rate_1ms", ST, AcfDiff, Quantity::Rate { bin_ms: RATE_BINS_MS[0] }, false, ""),
    def("acf_rate_10ms", ST, AcfDiff, Quantity::Rate { bin_ms: RATE_BINS_MS[1] }, false, ""),
    def("acf_rate_100ms", ST, AcfDiff, Quantity::Rate { bin_ms: RATE_BINS_MS[2] }, false, ""),
];

/// One metric's value for one pair of summaries.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Metric {
    pub name: &'static str,
    pub class: MetricClass,
    pub distance: Distance,
    pub netshare: bool,
    pub unit: &'static str,
    /// `None` when undefined for these inputs (an empty sample on either side, e.g. no flows
    /// of a kind; a rate series without variance).
    pub value: Option<f64>,
    /// The largest acceptable value (see the module doc).
    pub tolerance: f64,
}

/// Aligns two sparse histograms on the union of their labels.
pub fn align(a: &std::collections::BTreeMap<String, u64>, b: &std::collections::BTreeMap<String, u64>) -> (Vec<f64>, Vec<f64>) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let get = |m: &std::collections::BTreeMap<String, u64>, k: &String| m.get(k).copied().unwrap_or(0) as f64;
    (keys.iter().map(|k| get(a, k)).collect(), keys.iter().map(|k| get(b, k)).collect())
}

fn mean(x: &[f64]) -> Option<f64> {
    (!x.is_empty()).then(|| x.iter().sum::<f64>() / x.len() as f64)
}

/// Lag-1 autocorrelation of the packet-count series in bins of `bin_ms`.
pub fn rate_acf(s: &TrafficSummary, bin_ms: u32) -> Option<f64> {
    metrics::rate_autocorrelation(s.times(), f64::from(bin_ms) / 1000.0, 1)
}

/// Evaluates one metric.
pub fn evaluate(d: &MetricDef, reference: &TrafficSummary, candidate: &TrafficSummary) -> Metric {
    let (value, tolerance) = match (d.distance, d.quantity) {
        (Distance::Jsd, Quantity::Categorical(c)) => {
            let (r, x) = align(&reference.categorical(c), &candidate.categorical(c));
            (metrics::jsd(&r, &x), JSD_TOLERANCE)
        }
        (Distance::Emd, Quantity::Continuous(q)) => {
            let r = reference.continuous(q);
            let tol = mean(&r).map_or(0.0, |m| EMD_TOLERANCE_OF_MEAN * m.abs());
            (metrics::emd(&r, &candidate.continuous(q)), tol)
        }
        (Distance::Ks, Quantity::Continuous(q)) => {
            (metrics::ks(&reference.continuous(q), &candidate.continuous(q)), KS_TOLERANCE)
        }
        (Distance::AcfDiff, Quantity::Rate { bin_ms }) => {
            let v = match (rate_acf(reference, bin_ms), rate_acf(candidate, bin_ms)) {
                (Some(a), Some(b)) => Some((a - b).abs()),
                _ => None,
            };
            (v, ACF_TOLERANCE)
        }
        // METRICS pairs every distance with its kind of quantity (checked by a test)
        _ => (None, 0.0),
    };
    Metric { name: d.name, class: d.class, distance: d.distance, netshare: d.netshare, unit: d.unit, value, tolerance }
}

/// Every metric of [`METRICS`] between `reference` (real or held-out) and `candidate`.
pub fn compare(reference: &TrafficSummary, candidate: &TrafficSummary) -> Vec<Metric> {
    METRICS.iter().map(|d| evaluate(d, reference, candidate)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;
    use crate::flow::FlowConfig;

    const T0: i64 = 1_700_000_000 * 1_000_000_000;

    fn summary(frames: Vec<fixture::Frame>) -> TrafficSummary {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pcap");
        fixture::write_pcap(&path, frames).unwrap();
        TrafficSummary::from_capture(&path, "c", &FlowConfig::default()).unwrap()
    }

    #[test]
    fn every_metric_pairs_its_distance_with_a_matching_quantity_and_has_a_unique_name() {
        let mut names: Vec<&str> = METRICS.iter().map(|d| d.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), METRICS.len());
        for d in METRICS {
            let ok = matches!(
                (d.distance, d.quantity),
                (Distance::Jsd, Quantity::Categorical(_))
                    | (Distance::Emd | Distance::Ks, Quantity::Continuous(_))
                    | (Distance::AcfDiff, Quantity::Rate { .. })
            );
            assert!(ok, "{}", d.name);
            assert!(d.name.starts_with(match d.distance {
                Distance::Jsd => "jsd_",
                Distance::Emd => "emd_",
                Distance::Ks => "ks_",
                Distance::AcfDiff => "acf_",
            }));
        }
        assert_eq!(METRICS.iter().filter(|d| d.netshare).count(), 8);
    }

    #[test]
    fn a_capture_against_itself_is_zero_everywhere() {
        let s = summary(fixture::demo_mix(40, T0));
        for m in compare(&s, &s) {
            assert_eq!(m.value, Some(0.0), "{}", m.name);
            assert!(m.tolerance >= 0.0);
        }
    }

    #[test]
    fn different_captures_differ_where_they_differ() {
        let a = summary(fixture::demo_mix(40, T0));
        // the same conversations with every TCP connection moved to port 8080 and larger responses
        let mut frames = Vec::new();
        for i in 0..40 {
            let c = [10, 1, 0, (i + 1) as u8];
            frames.extend(fixture::tcp_connection(c, [10, 2, 0, 9], 40000 + i, 8080, T0 + i64::from(i) * 20_000_000, 3, 200, 1400));
        }
        frames.sort_by_key(|f| f.0);
        let b = summary(frames);
        let m: std::collections::HashMap<&str, Metric> = compare(&a, &b).into_iter().map(|m| (m.name, m)).collect();
        let v = |n: &str| m[n].value.unwrap();
        assert!(v("jsd_dst_port") > 0.1);
        assert!(v("jsd_ip_proto") > 0.02, "a has UDP and ICMP, b none");
        // b has no flows of two kinds: those metrics are undefined, not zero
        assert_eq!(m["emd_flow_packets_noflow"].value, None);
        assert!(v("emd_flow_packets_connected") > 0.0);
        // tolerance of an EMD: 2 % of the reference mean packet length
        let mean_len = mean(&a.continuous(Continuous::PacketLength)).unwrap();
        assert!((m["emd_pkt_len"].tolerance - 0.02 * mean_len).abs() < 1e-9);
        assert_eq!(m["jsd_app"].tolerance, JSD_TOLERANCE);
    }

    #[test]
    fn align_pads_missing_labels_with_zero() {
        let a = [("a".to_string(), 2), ("b".to_string(), 1)].into_iter().collect();
        let b = [("c".to_string(), 5)].into_iter().collect();
        assert_eq!(align(&a, &b), (vec![2.0, 1.0, 0.0], vec![0.0, 0.0, 5.0]));
    }
}
