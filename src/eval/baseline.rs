//! The "independent marginals" baseline: what a generator gets right by sampling each field
//! on its own.
//!
//! This module owns [`independent_marginals`]: from a real [`TrafficSummary`] it draws a
//! synthetic one in which every field of every IP packet — relative timestamp, IP total
//! length, source address, destination address, source port, destination port, IP protocol
//! and (for TCP) the flag combination — is drawn independently from that field's empirical
//! marginal in the real summary, with no dependence between fields or between packets.
//! Flows are then re-formed from the drawn packets by our own flow table, exactly as for a
//! capture, so the result is the same summary type and [`super::compare`] treats it like any
//! other. Single-field metrics of the baseline are close to the floor (it reproduces every
//! marginal); structure metrics are not (its flows are whatever random 5-tuple collisions
//! make). A generator that does no better than this on the structure metrics has learnt no
//! structure. Draws come from [`SplitMix64`] seeded by the caller: same summary + seed =
//! same baseline.
//!
//! It does not sample non-IP frames (the summary keeps no per-frame fields for them) and
//! writes no packets: the baseline never exists as a capture, so it has no validity counts.

use std::collections::BTreeMap;

use crate::capture::{NetLayer, Packet, TcpFlags, TcpInfo, Transport};
use crate::features::{self, Rolling};
use crate::flow::{FlowConfig, FlowTable};
use crate::rng::SplitMix64;

use super::traffic::{Address, TrafficSummary};

/// Draws from a histogram with probability proportional to each count.
struct Marginal<T> {
    values: Vec<T>,
    /// Cumulative counts (the last one is the total).
    cumulative: Vec<u64>,
}

impl<T: Copy> Marginal<T> {
    fn new(counts: impl IntoIterator<Item = (T, u64)>) -> Marginal<T> {
        let mut values = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for (v, n) in counts {
            if n > 0 {
                total += n;
                values.push(v);
                cumulative.push(total);
            }
        }
        Marginal { values, cumulative }
    }

    fn draw(&self, rng: &mut SplitMix64) -> Option<T> {
        let total = *self.cumulative.last()?;
        let r = rng.below(total);
        // first cumulative count above r
        let i = self.cumulative.partition_point(|&c| c <= r);
        self.values.get(i).copied()
    }
}

/// A summary of `packets` IP packets whose fields are drawn independently from the marginals
/// of `real` (see the module doc); its flows come from a flow table with `flow`'s timeouts.
/// `label` names it in reports.
pub fn independent_marginals(real: &TrafficSummary, packets: usize, seed: u64, flow: &FlowConfig, label: &str) -> TrafficSummary {
    let mut out = TrafficSummary::new(label);
    if real.ip_packets() == 0 || packets == 0 {
        return out;
    }
    // Each field has its own stream, so the draws of one field do not shift another's.
    let stream = |field: u64| SplitMix64::for_item(seed, field);
    let (mut r_time, mut r_size, mut r_src, mut r_dst) = (stream(1), stream(2), stream(3), stream(4));
    let (mut r_sport, mut r_dport, mut r_proto, mut r_flags) = (stream(5), stream(6), stream(7), stream(8));

    // Sorted keys, so that the draws do not depend on hash-map order.
    let sorted = |m: &rustc_hash::FxHashMap<Address, u64>| m.iter().map(|(a, n)| (*a, *n)).collect::<BTreeMap<_, _>>();
    let src = Marginal::new(sorted(&real.src_ip));
    let dst = Marginal::new(sorted(&real.dst_ip));
    let sport = Marginal::new(real.src_port.iter().map(|(k, n)| (*k, *n)));
    let dport = Marginal::new(real.dst_port.iter().map(|(k, n)| (*k, *n)));
    let proto = Marginal::new(real.proto.iter().map(|(k, n)| (*k, *n)));
    let flags = Marginal::new(real.tcp_flags.iter().map(|(k, n)| (*k, *n)));

    // Times first, sorted: packets enter the flow table in time order. The other fields are
    // independent of time, so drawing them afterwards, in time order, changes nothing.
    let n_real = real.times.len() as u64;
    let mut times_ns: Vec<i64> = (0..packets)
        .map(|_| (real.times[r_time.below(n_real) as usize] * 1e9).round() as i64)
        .collect();
    times_ns.sort_unstable();

    let mut table: FlowTable<Rolling> = FlowTable::new(flow);
    for &t in &times_ns {
        let size = real.sizes[r_size.below(n_real) as usize];
        let (Some(s), Some(d), Some(sp), Some(dp), Some(pr)) = (
            src.draw(&mut r_src),
            dst.draw(&mut r_dst),
            sport.draw(&mut r_sport),
            dport.draw(&mut r_dport),
            proto.draw(&mut r_proto),
        ) else {
            // never taken: every one of these marginals holds one count per IP packet
            continue;
        };
        let p = packet(t, size, s, d, sp, dp, pr, || flags.draw(&mut r_flags).unwrap_or(0));
        let (a, _) = table.observe(&p, t);
        out.synthetic_packet(&p, &a, t);
        for f in table.drain_finished() {
            out.flow_row(f, &features::flow_features(f));
        }
    }
    table.finish_all();
    for f in table.drain_finished() {
        out.flow_row(f, &features::flow_features(f));
    }
    out
}

/// A raw-IP packet (no MACs) with the drawn fields.
#[allow(clippy::too_many_arguments)]
fn packet(ts_ns: i64, size: u16, src: Address, dst: Address, sport: u16, dport: u16, proto: u8, flags: impl FnOnce() -> u16) -> Packet {
    let v6 = src.version == 6;
    let ip_header_len = if v6 { 40 } else { 20 };
    let (transport, l4) = match proto {
        6 => (
            Transport::Tcp(TcpInfo { src_port: sport, dst_port: dport, flags: TcpFlags(flags()), ..TcpInfo::default() }),
            20,
        ),
        17 => (Transport::Udp { src_port: sport, dst_port: dport }, 8),
        33 | 132 | 136 => (Transport::Ported { src_port: sport, dst_port: dport }, 8),
        _ => (Transport::Other, 0),
    };
    Packet {
        ts_ns,
        wire_len: u32::from(size),
        cap_len: u32::from(size),
        net: if v6 { NetLayer::Ipv6 } else { NetLayer::Ipv4 },
        src_ip: src.bytes,
        dst_ip: dst.bytes,
        ip_proto: proto,
        ip_len: u32::from(size),
        ip_header_len,
        transport,
        l4_header_len: l4,
        ..Packet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::compare::{self, METRICS};
    use crate::eval::traffic::{Categorical, Continuous};
    use crate::fixture;

    const T0: i64 = 1_700_000_000 * 1_000_000_000;

    fn real() -> TrafficSummary {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.pcap");
        fixture::write_pcap(&path, fixture::demo_mix(150, T0)).unwrap();
        TrafficSummary::from_capture(&path, "real", &FlowConfig::default()).unwrap()
    }

    #[test]
    fn draws_follow_the_counts() {
        let m = Marginal::new([(7u8, 1), (8, 0), (9, 3)]);
        let mut rng = SplitMix64::new(5);
        let draws: Vec<u8> = (0..4000).map(|_| m.draw(&mut rng).unwrap()).collect();
        let sevens = draws.iter().filter(|&&d| d == 7).count();
        assert!(!draws.contains(&8));
        assert!((900..1100).contains(&sevens), "{sevens}");
        assert!(Marginal::<u8>::new([]).draw(&mut rng).is_none());
    }

    #[test]
    fn keeps_the_marginals_but_destroys_flow_structure() {
        let real = real();
        let n = real.ip_packets();
        let base = independent_marginals(&real, n, 1, &FlowConfig::default(), "baseline");
        assert_eq!(base.ip_packets(), n);
        let m: std::collections::HashMap<&str, Option<f64>> =
            compare::compare(&real, &base).into_iter().map(|m| (m.name, m.value)).collect();
        let v = |name: &str| m[name].unwrap();
        // single fields: close to the real capture (sampling noise only)
        for name in ["jsd_src_port", "jsd_dst_port", "jsd_ip_proto", "jsd_tcp_flags", "jsd_src_ip_rank"] {
            assert!(v(name) < 0.05, "{name} = {}", v(name));
        }
        let mean_len = real.continuous(Continuous::PacketLength).iter().sum::<f64>() / n as f64;
        assert!(v("emd_pkt_len") < 0.05 * mean_len, "{}", v("emd_pkt_len"));
        // structure: real TCP connections have 10–22 packets; random 5-tuples almost never
        // repeat (ephemeral source ports × servers), so flows collapse to a packet or two
        let real_conn = real.continuous(Continuous::FlowPackets(crate::flow::FlowKind::Connected));
        let base_conn = base.continuous(Continuous::FlowPackets(crate::flow::FlowKind::Connected));
        let avg = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
        assert!(avg(&real_conn) >= 10.0 && avg(&base_conn) < 2.0, "{} vs {}", avg(&real_conn), avg(&base_conn));
        assert!(base.flows.len() > 3 * real.flows.len(), "{} vs {}", base.flows.len(), real.flows.len());
        assert!(v("ks_flow_bytes") > 0.5 && v("ks_within_flow_iat") > 0.3, "{m:?}");
        let sizes = real.continuous(Continuous::FlowSize);
        assert!(v("emd_flow_size") > 0.5 * avg(&sizes), "{} vs mean {}", v("emd_flow_size"), avg(&sizes));
        // every metric is defined except those on kinds the baseline cannot have
        for d in METRICS {
            let undefined_ok = d.name.ends_with("_noflow");
            assert!(m[d.name].is_some() || undefined_ok, "{}", d.name);
        }
        // same seed, same baseline; another seed, another one
        let again = independent_marginals(&real, n, 1, &FlowConfig::default(), "b");
        assert_eq!(again.times, base.times);
        assert_eq!(again.categorical(Categorical::SrcPort), base.categorical(Categorical::SrcPort));
        let other = independent_marginals(&real, n, 2, &FlowConfig::default(), "b");
        assert_ne!(other.sizes, base.sizes);
    }

    #[test]
    fn an_empty_summary_gives_an_empty_baseline() {
        let b = independent_marginals(&TrafficSummary::new("e"), 100, 1, &FlowConfig::default(), "b");
        assert_eq!(b.ip_packets(), 0);
    }
}
