//! Hosts seen on both sides: one address for a host that is a client in some flows and a
//! server in others.
//!
//! The aggregate model keeps host popularity per side (a client rank table, a server rank
//! table), and the address plan draws clients and servers from prefixes of their own. A LAN
//! host that browses and also answers a media stream is then two hosts in generated traffic:
//! `radionbik`'s 192.168.0.105 opens most of its flows and serves the stream that carries
//! 47 % of its packets; split in two, the top source address of the synthetic capture had
//! 44 % of the packets where the real one has 51 %, and a third host 8 %.
//!
//! This module owns the table of such hosts: per host, its rank on each side and the side
//! where it has more flows, whose prefix its address is taken from. It is learnt from the
//! training flows and stored as one tensor. Only hosts with a rank of their own on both sides
//! are in it (the rarest hosts share the rank tables' last rank). A rank of the table is a
//! host, even where a rank that far down stands for hosts that come and go and gets a fresh
//! address ([`super::aggregate::Aggregate::fresh_rank`]): the stream's server above is in one
//! flow as server, and is the capture's busiest client.

use rustc_hash::FxHashMap;
use tch::{Kind, Tensor};

use super::dataset::FlowRow;

/// Name of the tensor in `aggregate_gmm.safetensors`: rows of (client rank, server rank,
/// side kept: 0 client, 1 server).
pub const TENSOR: &str = "shared_hosts";

/// A side of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// One host seen on both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedHost {
    pub client_rank: u32,
    pub server_rank: u32,
    /// The side whose prefix gives its address: the one where it has more flows (the client
    /// side on a tie).
    pub kept: Side,
}

/// The table, and a rank's host on the other side.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SharedHosts {
    pub hosts: Vec<SharedHost>,
    /// Client rank → the host's server rank, for hosts kept on the server side.
    client_to_server: FxHashMap<u32, u32>,
    /// Server rank → the host's client rank, for hosts kept on the client side.
    server_to_client: FxHashMap<u32, u32>,
}

impl SharedHosts {
    fn new(hosts: Vec<SharedHost>) -> SharedHosts {
        let pick = |side: Side, from: fn(&SharedHost) -> u32, to: fn(&SharedHost) -> u32| hosts.iter().filter(|h| h.kept == side).map(|h| (from(h), to(h))).collect();
        SharedHosts {
            client_to_server: pick(Side::Server, |h| h.client_rank, |h| h.server_rank),
            server_to_client: pick(Side::Client, |h| h.server_rank, |h| h.client_rank),
            hosts,
        }
    }

    /// Learns the table from `rows`. `client_of` and `server_of` give each host's rank on a
    /// side; ranks from `shared_rank` on are shared by several hosts, not a host's own.
    pub fn fit(rows: &[FlowRow], client_of: &FxHashMap<u32, u32>, server_of: &FxHashMap<u32, u32>, shared_rank: u32) -> SharedHosts {
        let mut flows: FxHashMap<u32, [u64; 2]> = FxHashMap::default();
        for r in rows {
            flows.entry(r.client_host).or_default()[0] += 1;
            flows.entry(r.server_host).or_default()[1] += 1;
        }
        let mut hosts: Vec<SharedHost> = flows
            .iter()
            .filter_map(|(h, &[as_client, as_server])| {
                let (&client_rank, &server_rank) = (client_of.get(h)?, server_of.get(h)?);
                (client_rank < shared_rank && server_rank < shared_rank).then_some(SharedHost {
                    client_rank,
                    server_rank,
                    kept: if as_server > as_client { Side::Server } else { Side::Client },
                })
            })
            .collect();
        hosts.sort_by_key(|h| (h.client_rank, h.server_rank));
        SharedHosts::new(hosts)
    }

    /// Whether `rank` on `side` is a host of the table that is found at its other side's rank.
    pub fn moves(&self, side: Side, rank: u32) -> bool {
        match side {
            Side::Client => self.client_to_server.contains_key(&rank),
            Side::Server => self.server_to_client.contains_key(&rank),
        }
    }

    /// Where a flow's hosts get their addresses: for the client, then the server, the side of
    /// the plan's prefixes and the rank there. A host of the table is found at its kept
    /// side's rank whichever side it is on in the flow. A flow drawn with the same host at
    /// both ends keeps each end on its own side (two hosts, as without the table).
    pub fn place(&self, client_rank: u32, server_rank: u32) -> [(Side, u32); 2] {
        let client = match self.client_to_server.get(&client_rank) {
            Some(&s) => (Side::Server, s),
            None => (Side::Client, client_rank),
        };
        let server = match self.server_to_client.get(&server_rank) {
            Some(&c) => (Side::Client, c),
            None => (Side::Server, server_rank),
        };
        if client == server {
            [(Side::Client, client_rank), (Side::Server, server_rank)]
        } else {
            [client, server]
        }
    }

    pub fn to_tensor(&self) -> Tensor {
        let v: Vec<i64> = self.hosts.iter().flat_map(|h| [i64::from(h.client_rank), i64::from(h.server_rank), i64::from(h.kept == Side::Server)]).collect();
        Tensor::from_slice(&v).view([-1, 3])
    }

    /// Reads the table; `table_len` is the length of the client and server rank tables that
    /// its ranks index. Errors name the tensor and the row.
    pub fn from_tensor(t: &Tensor, name: &str, table_len: [usize; 2]) -> Result<SharedHosts, String> {
        if t.dim() != 2 || t.size()[1] != 3 {
            return Err(format!("tensor `{name}` must be rows of (client rank, server rank, side kept), shape [n, 3]; it has {:?}", t.size()));
        }
        let v = Vec::<i64>::try_from(t.to_kind(Kind::Int64).view([-1])).map_err(|e| format!("tensor `{name}`: {e}"))?;
        let mut seen = [rustc_hash::FxHashSet::default(), rustc_hash::FxHashSet::default()];
        let mut hosts = Vec::with_capacity(v.len() / 3);
        for (i, row) in v.chunks(3).enumerate() {
            let (c, s, kept) = (row[0], row[1], row[2]);
            let in_table = |r: i64, len: usize| (0..len as i64).contains(&r);
            if !in_table(c, table_len[0]) || !in_table(s, table_len[1]) || !(0..=1).contains(&kept) {
                return Err(format!(
                    "tensor `{name}` row {i}: ({c}, {s}, {kept}) must be a client rank < {}, a server rank < {} and a side 0 or 1",
                    table_len[0], table_len[1]
                ));
            }
            if !seen[0].insert(c) || !seen[1].insert(s) {
                return Err(format!("tensor `{name}` row {i}: client rank {c} or server rank {s} is in an earlier row too"));
            }
            hosts.push(SharedHost { client_rank: c as u32, server_rank: s as u32, kept: if kept == 1 { Side::Server } else { Side::Client } });
        }
        Ok(SharedHosts::new(hosts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(client_host: u32, server_host: u32) -> FlowRow {
        FlowRow::example(client_host, server_host)
    }

    fn ranks(pairs: &[(u32, u32)]) -> FxHashMap<u32, u32> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn a_host_on_both_sides_is_found_at_its_busier_sides_rank() {
        // host 5: client of 3 flows, server of 1; host 9: client of 1, server of 2
        let rows = [flow(5, 7), flow(5, 7), flow(5, 8), flow(1, 5), flow(9, 7), flow(6, 9), flow(6, 9)];
        let client_of = ranks(&[(5, 0), (6, 1), (9, 2), (1, 3)]);
        let server_of = ranks(&[(7, 0), (9, 1), (5, 2), (8, 3)]);
        let t = SharedHosts::fit(&rows, &client_of, &server_of, 4);
        assert_eq!(
            t.hosts,
            vec![SharedHost { client_rank: 0, server_rank: 2, kept: Side::Client }, SharedHost { client_rank: 2, server_rank: 1, kept: Side::Server }]
        );
        // host 5 as server: the client side's rank 0; host 9 as client: the server side's rank 1
        assert_eq!(t.place(3, 2), [(Side::Client, 3), (Side::Client, 0)]);
        assert_eq!(t.place(2, 0), [(Side::Server, 1), (Side::Server, 0)]);
        assert_eq!(t.place(1, 3), [(Side::Client, 1), (Side::Server, 3)]);
        assert!(t.moves(Side::Server, 2) && t.moves(Side::Client, 2) && !t.moves(Side::Client, 0) && !t.moves(Side::Server, 1));
        // host 5 (or 9) drawn at both ends: two hosts, each on its own side
        assert_eq!(t.place(0, 2), [(Side::Client, 0), (Side::Server, 2)]);
        assert_eq!(t.place(2, 1), [(Side::Client, 2), (Side::Server, 1)]);
    }

    #[test]
    fn the_shared_last_rank_is_left_out() {
        let rows = [flow(5, 7), flow(1, 5)];
        let t = SharedHosts::fit(&rows, &ranks(&[(5, 0), (1, 1)]), &ranks(&[(7, 0), (5, 1)]), 1);
        assert!(t.hosts.is_empty());
        assert_eq!(t.place(0, 1), [(Side::Client, 0), (Side::Server, 1)]);
    }

    #[test]
    fn round_trips_and_names_bad_rows() {
        let t = SharedHosts::new(vec![SharedHost { client_rank: 0, server_rank: 18, kept: Side::Client }, SharedHost { client_rank: 4, server_rank: 2, kept: Side::Server }]);
        assert_eq!(SharedHosts::from_tensor(&t.to_tensor(), TENSOR, [10, 20]).unwrap(), t);
        let e = SharedHosts::from_tensor(&t.to_tensor(), TENSOR, [10, 18]).unwrap_err();
        assert!(e.contains("`shared_hosts` row 0") && e.contains("server rank < 18"), "{e}");
        let dup = Tensor::from_slice(&[0i64, 1, 0, 0, 2, 1]).view([-1, 3]);
        assert!(SharedHosts::from_tensor(&dup, TENSOR, [10, 10]).unwrap_err().contains("row 1"));
        let side = Tensor::from_slice(&[0i64, 1, 2]).view([-1, 3]);
        assert!(SharedHosts::from_tensor(&side, TENSOR, [10, 10]).unwrap_err().contains("side 0 or 1"));
        let shape = Tensor::from_slice(&[0i64, 1]).view([-1, 2]);
        assert!(SharedHosts::from_tensor(&shape, TENSOR, [10, 10]).unwrap_err().contains("shape [n, 3]"));
    }
}
