//! Scripted records: known conversations as [`SynthPacket`]s, and [`ScriptedMix`], an endless,
//! seeded, time-ordered stream of many overlapping scripted flows with bounded memory.
//! They stand in for the model-driven engine in the demo, the tests and the benchmarks, so the
//! wire stage and sinks are checked against traffic whose every packet is known.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{Proto, SynthPacket, OWN_SIDES, PLAN_CHOOSES};
use crate::flow::Direction;
use crate::rng::SplitMix64;
use crate::wire::emit::ARP_LEN;

const MS: i64 = 1_000_000;

fn rec(flow_id: u64, proto: Proto, v6: bool, dir: Direction, ts_ns: i64, size: u32, flags: u16) -> SynthPacket {
    SynthPacket {
        flow_id,
        proto,
        ip_version: if v6 { 6 } else { 4 },
        direction: dir,
        ts_ns,
        size,
        tcp_flags: flags,
        server_port: 0,
                client_port: 0,
        client_rank: PLAN_CHOOSES,
        server_rank: PLAN_CHOOSES,
        sides: OWN_SIDES,
        last: false,
        hidden: false,
        tcp_timestamps: false,
    }
}

fn mark_last(mut v: Vec<SynthPacket>) -> Vec<SynthPacket> {
    if let Some(l) = v.last_mut() {
        l.last = true;
    }
    v
}

use Direction::{Backward as B, Forward as F};

/// A TCP connection as Linux would send it (timestamps on): SYN, SYN-ACK, ACK, `rounds` ×
/// (request, response, ACK), FIN/ACK, ACK, FIN/ACK, ACK. Sizes are IP total lengths.
pub fn tcp_flow(flow_id: u64, t0: i64, rounds: usize, req: u32, resp: u32, v6: bool) -> Vec<SynthPacket> {
    let ip = if v6 { 40 } else { 20 };
    let hdr = ip + 32; // TCP + timestamps
    let mut v = Vec::with_capacity(7 + 3 * rounds);
    let mut t = t0;
    let mut push = |dt: i64, dir, size, flags| {
        t += dt;
        v.push(rec(flow_id, Proto::Tcp, v6, dir, t, size, flags));
    };
    push(0, F, ip + 40, 0x02);
    push(MS / 5, B, ip + 40, 0x12);
    push(MS / 10, F, hdr, 0x10);
    for _ in 0..rounds {
        push(MS, F, hdr + req, 0x18);
        push(5 * MS, B, hdr + resp, 0x18);
        push(MS / 10, F, hdr, 0x10);
    }
    push(MS, F, hdr, 0x11);
    push(MS / 10, B, hdr, 0x10);
    push(MS / 10, B, hdr, 0x11);
    push(MS / 10, F, hdr, 0x10);
    mark_last(v)
}

/// `exchanges` UDP request/response pairs (DNS-like) to `server_port` (0: the plan chooses).
pub fn udp_flow(flow_id: u64, t0: i64, exchanges: usize, req: u32, resp: u32, v6: bool, server_port: u16) -> Vec<SynthPacket> {
    let ip = if v6 { 40 } else { 20 };
    let mut v = Vec::with_capacity(2 * exchanges);
    for i in 0..exchanges {
        let t = t0 + i as i64 * 20 * MS;
        let mut q = rec(flow_id, Proto::Udp, v6, F, t, ip + 8 + req, 0);
        q.server_port = server_port;
        let mut r = rec(flow_id, Proto::Udp, v6, B, t + 2 * MS, ip + 8 + resp, 0);
        r.server_port = server_port;
        v.push(q);
        v.push(r);
    }
    mark_last(v)
}

/// `pings` ICMP echo request/reply pairs, one per second, 64 bytes of payload.
pub fn icmp_flow(flow_id: u64, t0: i64, pings: usize, v6: bool) -> Vec<SynthPacket> {
    let ip = if v6 { 40 } else { 20 };
    let mut v = Vec::with_capacity(2 * pings);
    for i in 0..pings {
        let t = t0 + i as i64 * 1000 * MS;
        v.push(rec(flow_id, Proto::IcmpEcho, v6, F, t, ip + 8 + 56, 0));
        v.push(rec(flow_id, Proto::IcmpEcho, v6, B, t + MS / 2, ip + 8 + 56, 0));
    }
    mark_last(v)
}

/// An ARP request and its reply.
pub fn arp_flow(flow_id: u64, t0: i64) -> Vec<SynthPacket> {
    mark_last(vec![rec(flow_id, Proto::Arp, false, F, t0, ARP_LEN as u32, 0), rec(flow_id, Proto::Arp, false, B, t0 + MS / 10, ARP_LEN as u32, 0)])
}

/// An endless, seeded mix of overlapping scripted flows, in departure order: 70 % TCP
/// connections (1–8 rounds, web-like sizes), 20 % UDP exchanges (DNS-like, port 53), 5 % ICMP
/// echo, 5 % ARP;
/// 10 % of IP flows on IPv6. Flows start as a Poisson process of `flows_per_s`.
pub struct ScriptedMix {
    rng: SplitMix64,
    flows_per_s: f64,
    next_start: i64,
    next_id: u64,
    heap: BinaryHeap<Reverse<(i64, u64, u32)>>,
    pending: rustc_hash::FxHashMap<u64, (Vec<SynthPacket>, u32)>,
}

impl ScriptedMix {
    pub fn new(seed: u64, flows_per_s: f64) -> ScriptedMix {
        ScriptedMix {
            rng: SplitMix64::new(seed),
            flows_per_s: flows_per_s.max(1e-3),
            next_start: 0,
            next_id: 0,
            heap: BinaryHeap::new(),
            pending: Default::default(),
        }
    }

    fn start_flow(&mut self) {
        let id = self.next_id;
        self.next_id += 1;
        let t0 = self.next_start;
        let gap = -(1.0 - self.rng.next_f64()).ln() / self.flows_per_s;
        self.next_start += (gap * 1e9) as i64 + 1;
        let r = &mut self.rng;
        let v6 = r.below(10) == 0;
        let kind = r.below(100);
        let flow = if kind < 70 {
            let rounds = 1 + r.below(8) as usize;
            let req = 40 + r.below(460) as u32;
            let resp = 100 + r.below(1300) as u32;
            tcp_flow(id, t0, rounds, req, resp, v6)
        } else if kind < 90 {
            udp_flow(id, t0, 1 + r.below(3) as usize, 20 + r.below(60) as u32, 40 + r.below(400) as u32, v6, 53)
        } else if kind < 95 {
            icmp_flow(id, t0, 1 + r.below(3) as usize, v6)
        } else {
            arp_flow(id, t0)
        };
        self.heap.push(Reverse((flow[0].ts_ns, id, 0)));
        self.pending.insert(id, (flow, 0));
    }
}

impl Iterator for ScriptedMix {
    type Item = SynthPacket;

    fn next(&mut self) -> Option<SynthPacket> {
        // every flow starting before the earliest pending packet must be in the heap first
        while self.heap.peek().is_none_or(|Reverse((t, _, _))| self.next_start <= *t) {
            self.start_flow();
        }
        let Reverse((_, id, pos)) = self.heap.pop()?;
        let (flow, _) = self.pending.get_mut(&id)?;
        let p = flow[pos as usize];
        if let Some(n) = flow.get(pos as usize + 1) {
            self.heap.push(Reverse((n.ts_ns, id, pos + 1)));
        } else {
            self.pending.remove(&id);
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_is_ordered_seeded_and_bounded() {
        let a: Vec<SynthPacket> = ScriptedMix::new(5, 2000.0).take(20_000).collect();
        let b: Vec<SynthPacket> = ScriptedMix::new(5, 2000.0).take(20_000).collect();
        let c: Vec<SynthPacket> = ScriptedMix::new(6, 2000.0).take(100).collect();
        assert_eq!(a, b);
        assert_ne!(a[..100], c[..]);
        assert!(a.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
        let mut m = ScriptedMix::new(1, 2000.0);
        for _ in 0..50_000 {
            m.next();
        }
        assert!(m.pending.len() < 500, "live flows {}", m.pending.len());
    }

    #[test]
    fn scripted_flows_end_with_last() {
        let t = tcp_flow(1, 0, 2, 10, 20, false);
        assert_eq!(t.len(), 13);
        assert!(t.last().unwrap().last && !t[0].last);
        assert_eq!(udp_flow(2, 0, 3, 1, 1, true, 53).len(), 6);
    }
}
