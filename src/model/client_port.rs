//! Client ports that are part of a service: which flows keep a fixed client port, and which.
//!
//! Most clients send from an ephemeral port the operating system picks, and the address plan
//! picks one for a generated flow. Some services fix the client's port too: DHCP clients send
//! from 68, NTP, NetBIOS and mDNS peers from the service port itself, and a long-lived sender
//! (a syslog forwarder, a polling master) keeps one socket for every flow it opens. Those ports
//! are a large part of a LAN capture's source- and destination-port mix.
//!
//! This module owns the rule that tells a fixed client port from an ephemeral one, the table
//! learnt from training flows (per server port and IP protocol, the share of flows that use
//! each fixed client port) and its tensor form. It does not choose ephemeral ports (the address
//! plan does) and does not know about flow sizes or hosts.

use rustc_hash::FxHashMap;
use tch::{Kind, Tensor};

use super::dataset::FlowRow;
use crate::flow::FlowKind;
use crate::rng::SplitMix64;

/// Client ports below this are service ports (the privileged range), never ephemeral.
const SERVICE_PORTS: u16 = 1024;
/// Largest number of (server port, protocol, client port) rows kept, by share of flows.
pub const MAX_ROWS: usize = 256;
/// Name of the tensor in `aggregate_gmm.safetensors`: rows of (server port, IP protocol,
/// client port, share of the server port's flows).
pub const TENSOR: &str = "client_ports";

/// One fixed client port of a service.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FixedPort {
    pub server_port: u16,
    pub ip_proto: u8,
    pub client_port: u16,
    /// Share of the flows to (server port, protocol) that send from this client port.
    pub p: f64,
}

/// The learnt table: fixed client ports per service.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientPorts {
    pub rows: Vec<FixedPort>,
}

/// Whether a flow's client port is part of its service rather than an ephemeral pick: a
/// privileged port, the server's own port, or a port its client host sends from in another
/// flow too (`reused`).
pub fn is_fixed(client_port: u16, server_port: u16, reused: bool) -> bool {
    client_port != 0 && (client_port < SERVICE_PORTS || client_port == server_port || reused)
}

impl ClientPorts {
    /// Learns the table from the port-carrying flows of `rows` (no-flow traffic has no ports).
    pub fn fit<'a>(rows: impl Iterator<Item = &'a FlowRow> + Clone) -> ClientPorts {
        let ported = |r: &&FlowRow| r.kind != FlowKind::NoFlow && r.client_port != 0 && r.server_port != 0;
        let mut uses: FxHashMap<(u32, u16, u8), u32> = FxHashMap::default();
        for r in rows.clone().filter(ported) {
            *uses.entry((r.client_host, r.client_port, r.ip_proto)).or_default() += 1;
        }
        let mut flows: FxHashMap<(u16, u8), f64> = FxHashMap::default();
        let mut fixed: FxHashMap<(u16, u8, u16), f64> = FxHashMap::default();
        for r in rows.filter(ported) {
            *flows.entry((r.server_port, r.ip_proto)).or_default() += 1.0;
            let reused = uses.get(&(r.client_host, r.client_port, r.ip_proto)).is_some_and(|&n| n >= 2);
            if is_fixed(r.client_port, r.server_port, reused) {
                *fixed.entry((r.server_port, r.ip_proto, r.client_port)).or_default() += 1.0;
            }
        }
        let mut out: Vec<(f64, FixedPort)> = fixed
            .into_iter()
            .map(|((server_port, ip_proto, client_port), n)| {
                (n, FixedPort { server_port, ip_proto, client_port, p: n / flows[&(server_port, ip_proto)] })
            })
            .collect();
        // most flows first; ties in port order, so that a fit is the same run to run
        out.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1.server_port, a.1.ip_proto, a.1.client_port).cmp(&(b.1.server_port, b.1.ip_proto, b.1.client_port))));
        out.truncate(MAX_ROWS);
        let mut rows: Vec<FixedPort> = out.into_iter().map(|x| x.1).collect();
        rows.sort_by_key(|r| (r.server_port, r.ip_proto, r.client_port));
        ClientPorts { rows }
    }

    /// The client port of a new flow to (server port, protocol): a fixed one with its share of
    /// that service's flows, else 0 (the address plan picks an ephemeral port). Draws one
    /// number from `rng` whatever the outcome, so that streams stay aligned.
    pub fn draw(&self, server_port: u16, ip_proto: u8, rng: &mut SplitMix64) -> u16 {
        let mut u = rng.next_f64();
        let start = self.rows.partition_point(|r| (r.server_port, r.ip_proto) < (server_port, ip_proto));
        for r in self.rows[start..].iter().take_while(|r| (r.server_port, r.ip_proto) == (server_port, ip_proto)) {
            u -= r.p;
            if u < 0.0 {
                return r.client_port;
            }
        }
        0
    }

    /// The table as one `[rows, 4]` tensor (see [`TENSOR`]).
    pub fn to_tensor(&self) -> Tensor {
        let v: Vec<f64> = self.rows.iter().flat_map(|r| [f64::from(r.server_port), f64::from(r.ip_proto), f64::from(r.client_port), r.p]).collect();
        Tensor::from_slice(&v).view([-1, 4])
    }

    /// Reads the table back, checking every field; the error names the tensor, row and field.
    pub fn from_tensor(t: &Tensor) -> Result<ClientPorts, String> {
        let size = t.size();
        if size.len() != 2 || size[1] != 4 {
            return Err(format!("tensor `{TENSOR}`: expected shape [rows, 4], got {size:?}"));
        }
        let v = Vec::<f64>::try_from(t.to_kind(Kind::Double).view([-1])).map_err(|e| format!("tensor `{TENSOR}`: {e}"))?;
        let port = |x: f64, i: usize, field: &str, max: f64| -> Result<f64, String> {
            if x.fract() == 0.0 && (0.0..=max).contains(&x) {
                Ok(x)
            } else {
                Err(format!("tensor `{TENSOR}` row {i}: {field} {x} is not an integer in 0..={max}"))
            }
        };
        let mut rows = Vec::with_capacity(v.len() / 4);
        let mut sums: FxHashMap<(u16, u8), f64> = FxHashMap::default();
        for (i, c) in v.chunks_exact(4).enumerate() {
            let r = FixedPort {
                server_port: port(c[0], i, "server port", 65_535.0)? as u16,
                ip_proto: port(c[1], i, "IP protocol", 255.0)? as u8,
                client_port: port(c[2], i, "client port", 65_535.0)? as u16,
                p: c[3],
            };
            if !(r.p.is_finite() && r.p > 0.0 && r.p <= 1.0) {
                return Err(format!("tensor `{TENSOR}` row {i}: share {} is not in (0, 1]", r.p));
            }
            let s = sums.entry((r.server_port, r.ip_proto)).or_default();
            *s += r.p;
            if *s > 1.0 + 1e-9 {
                return Err(format!("tensor `{TENSOR}` row {i}: shares of server port {} sum past 1", r.server_port));
            }
            rows.push(r);
        }
        rows.sort_by_key(|r| (r.server_port, r.ip_proto, r.client_port));
        Ok(ClientPorts { rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(client_host: u32, client_port: u16, server_port: u16, ip_proto: u8) -> FlowRow {
        FlowRow {
            kind: FlowKind::Unconnected,
            gap_s: None,
            packets: 2,
            bytes: 200,
            duration_s: 0.01,
            server_port,
            client_port,
            ip_proto,
            ip_version: 4,
            client_host,
            server_host: 0,
            mid_stream: false,
            unanswered: false,
            one_side: None,
            timestamps: None,
            since_capture_start_s: 0.0,
            until_capture_end_s: 0.0,
            capture_span_s: 1.0,
            capture: 0,
            seq: None,
        }
    }

    #[test]
    fn service_ports_and_reused_sockets_are_fixed_and_ephemeral_ports_are_not() {
        let mut rows = Vec::new();
        // DHCP: every client from 68; NTP peers from 123 half the time
        rows.extend((0..10).map(|h| flow(h, 68, 67, 17)));
        rows.extend((0..4).map(|h| flow(h, 123, 123, 17)));
        rows.extend((0..4).map(|h| flow(h, 40_000 + h as u16, 123, 17)));
        // a syslog forwarder: one host, one socket, many flows
        rows.extend((0..5).map(|_| flow(7, 63_926, 514, 17)));
        // DNS lookups from ephemeral ports, none reused
        rows.extend((0..20).map(|h| flow(h % 3, 50_000 + h as u16, 53, 17)));
        let t = ClientPorts::fit(rows.iter());
        let get = |s: u16, c: u16| t.rows.iter().find(|r| r.server_port == s && r.client_port == c).map(|r| r.p);
        assert_eq!(get(67, 68), Some(1.0));
        assert_eq!(get(123, 123), Some(0.5));
        assert_eq!(get(514, 63_926), Some(1.0));
        assert!(t.rows.iter().all(|r| r.server_port != 53), "{t:?}");
        assert_eq!(t.rows.len(), 3);

        // draws follow the shares; a service without fixed ports gets 0 (the plan picks)
        let mut rng = SplitMix64::new(3);
        assert!((0..100).all(|_| t.draw(67, 17, &mut rng) == 68));
        assert!((0..100).all(|_| t.draw(53, 17, &mut rng) == 0));
        assert!((0..100).all(|_| t.draw(67, 6, &mut rng) == 0), "another protocol on the port");
        let ntp = (0..10_000).filter(|_| t.draw(123, 17, &mut rng) == 123).count();
        assert!((4_700..5_300).contains(&ntp), "{ntp}");
    }

    #[test]
    fn the_table_round_trips_and_bad_tensors_name_row_and_field() {
        let rows: Vec<FlowRow> = (0..3).map(|h| flow(h, 68, 67, 17)).chain((0..2).map(|h| flow(h, 137, 137, 17))).collect();
        let t = ClientPorts::fit(rows.iter());
        assert_eq!(ClientPorts::from_tensor(&t.to_tensor()).unwrap(), t);

        let bad = |v: &[f64]| ClientPorts::from_tensor(&Tensor::from_slice(v).view([-1, 4])).unwrap_err();
        assert!(bad(&[67.0, 17.0, 70_000.0, 0.5]).contains("row 0: client port 70000"), "{}", bad(&[67.0, 17.0, 70_000.0, 0.5]));
        assert!(bad(&[67.0, 17.0, 68.0, 0.0]).contains("share 0"));
        assert!(bad(&[67.0, 17.0, 68.0, 0.7, 67.0, 17.0, 69.0, 0.7]).contains("row 1: shares of server port 67 sum past 1"));
        assert!(bad(&[67.5, 17.0, 68.0, 0.5]).contains("server port 67.5"));
        let e = ClientPorts::from_tensor(&Tensor::from_slice(&[1.0, 2.0, 3.0]).view([1, 3])).unwrap_err();
        assert!(e.contains("expected shape [rows, 4]"), "{e}");
    }
}
