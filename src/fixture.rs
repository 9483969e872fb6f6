//! Hand-scripted traffic for the demo, tests and benchmarks.
//!
//! This module owns small, exactly-known conversations (a TCP connection with handshake,
//! request/response and FIN teardown; a UDP DNS exchange; an ICMP echo; ARP; IPv6 UDP) built
//! frame by frame with etherparse and written through libpcap's savefile. It is not the
//! generator (that is the model-driven `synth` stage): it exists so that every claim about
//! ingestion can be checked against traffic whose every packet we know.

use std::path::Path;

use etherparse::PacketBuilder;

const NS: i64 = 1_000_000_000;

/// A frame and its capture time.
pub type Frame = (i64, Vec<u8>);

fn mac(host: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, host]
}

/// A complete TCP connection: 3-way handshake, `rounds` request/response pairs of
/// `req`/`resp` payload bytes, then FIN/ACK teardown initiated by the client: 3 + 3·rounds + 4 packets.
pub fn tcp_connection(c: [u8; 4], s: [u8; 4], sport: u16, dport: u16, t0: i64, rounds: usize, req: usize, resp: usize) -> Vec<Frame> {
    let (cm, sm) = (mac(c[3]), mac(s[3]));
    let mut out = Vec::new();
    let mut t = t0;
    let (mut cseq, mut sseq) = (1000u32, 5000u32);
    let mut push = |t: i64, from_client: bool, seq: u32, ack: u32, flags: &str, len: usize| {
        let b = if from_client {
            PacketBuilder::ethernet2(cm, sm).ipv4(c, s, 64).tcp(sport, dport, seq, 64240)
        } else {
            PacketBuilder::ethernet2(sm, cm).ipv4(s, c, 64).tcp(dport, sport, seq, 65160)
        };
        let mut b = b;
        for f in flags.chars() {
            b = match f {
                'S' => b.syn(),
                'F' => b.fin(),
                'P' => b.psh(),
                'R' => b.rst(),
                _ => b,
            };
        }
        let b = if flags.contains('A') { b.ack(ack) } else { b };
        let mut buf = Vec::with_capacity(64 + len);
        b.write(&mut buf, &vec![0x61u8; len]).expect("writing to a Vec cannot fail");
        out.push((t, buf));
    };
    push(t, true, cseq, 0, "S", 0);
    cseq += 1;
    t += 100_000;
    push(t, false, sseq, cseq, "SA", 0);
    sseq += 1;
    t += 100_000;
    push(t, true, cseq, sseq, "A", 0);
    for _ in 0..rounds {
        t += 1_000_000;
        push(t, true, cseq, sseq, "PA", req);
        cseq += req as u32;
        t += 5_000_000;
        push(t, false, sseq, cseq, "PA", resp);
        sseq += resp as u32;
        t += 100_000;
        push(t, true, cseq, sseq, "A", 0);
    }
    t += 1_000_000;
    push(t, true, cseq, sseq, "FA", 0);
    cseq += 1;
    t += 100_000;
    push(t, false, sseq, cseq, "A", 0);
    t += 100_000;
    push(t, false, sseq, cseq, "FA", 0);
    sseq += 1;
    t += 100_000;
    push(t, true, cseq, sseq, "A", 0);
    out
}

/// A DNS-like UDP query and response (2 packets).
pub fn udp_exchange(c: [u8; 4], s: [u8; 4], sport: u16, dport: u16, t0: i64, req: usize, resp: usize) -> Vec<Frame> {
    let mut q = Vec::new();
    PacketBuilder::ethernet2(mac(c[3]), mac(s[3])).ipv4(c, s, 64).udp(sport, dport).write(&mut q, &vec![1u8; req]).expect("vec");
    let mut r = Vec::new();
    PacketBuilder::ethernet2(mac(s[3]), mac(c[3])).ipv4(s, c, 64).udp(dport, sport).write(&mut r, &vec![2u8; resp]).expect("vec");
    vec![(t0, q), (t0 + 2_000_000, r)]
}

/// An IPv6 UDP exchange (2 packets).
pub fn udp6_exchange(c: [u8; 16], s: [u8; 16], sport: u16, dport: u16, t0: i64, len: usize) -> Vec<Frame> {
    let mut q = Vec::new();
    PacketBuilder::ethernet2(mac(c[15]), mac(s[15])).ipv6(c, s, 64).udp(sport, dport).write(&mut q, &vec![3u8; len]).expect("vec");
    let mut r = Vec::new();
    PacketBuilder::ethernet2(mac(s[15]), mac(c[15])).ipv6(s, c, 64).udp(dport, sport).write(&mut r, &vec![4u8; len]).expect("vec");
    vec![(t0, q), (t0 + 1_000_000, r)]
}

/// ICMP echo request and reply (2 packets).
pub fn icmp_echo(c: [u8; 4], s: [u8; 4], id: u16, t0: i64) -> Vec<Frame> {
    let mut q = Vec::new();
    PacketBuilder::ethernet2(mac(c[3]), mac(s[3])).ipv4(c, s, 64).icmpv4_echo_request(id, 1).write(&mut q, &[0u8; 56]).expect("vec");
    let mut r = Vec::new();
    PacketBuilder::ethernet2(mac(s[3]), mac(c[3])).ipv4(s, c, 64).icmpv4_echo_reply(id, 1).write(&mut r, &[0u8; 56]).expect("vec");
    vec![(t0, q), (t0 + 300_000, r)]
}

/// An ARP request (broadcast) and its reply (2 packets, one no-flow group per MAC pair).
pub fn arp_exchange(a: [u8; 4], b: [u8; 4], t0: i64) -> Vec<Frame> {
    let arp = |src_mac: [u8; 6], dst_mac: [u8; 6], op: u16, spa: [u8; 4], tpa: [u8; 4]| {
        let mut f = Vec::with_capacity(60);
        f.extend_from_slice(&dst_mac);
        f.extend_from_slice(&src_mac);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4]);
        f.extend_from_slice(&op.to_be_bytes());
        f.extend_from_slice(&src_mac);
        f.extend_from_slice(&spa);
        f.extend_from_slice(if op == 1 { &[0; 6] } else { &dst_mac });
        f.extend_from_slice(&tpa);
        f.resize(60, 0);
        f
    };
    vec![
        (t0, arp(mac(a[3]), [0xff; 6], 1, a, b)),
        (t0 + 50_000, arp(mac(b[3]), mac(a[3]), 2, b, a)),
    ]
}

/// The demo mix: `connections` TCP connections, as many DNS exchanges, some ICMP, ARP and
/// IPv6 traffic, starting at `t0`, time-ordered.
pub fn demo_mix(connections: usize, t0: i64) -> Vec<Frame> {
    let mut frames = Vec::new();
    for i in 0..connections {
        let c = [10, 1, (i / 200) as u8, (i % 200 + 1) as u8];
        let s = [10, 2, 0, (i % 4 + 1) as u8];
        let start = t0 + i as i64 * 20_000_000;
        let port = [80, 443, 22, 25][i % 4];
        frames.extend(tcp_connection(c, s, 40000 + i as u16, port, start, 1 + i % 5, 200 + 10 * i % 300, 1400));
        frames.extend(udp_exchange(c, [10, 2, 0, 53], 50000 + i as u16, 53, start + 7_000_000, 40, 120));
        if i % 10 == 0 {
            frames.extend(icmp_echo(c, s, i as u16, start + 9_000_000));
            frames.extend(arp_exchange(c, s, start + 11_000_000));
            let mut c6 = [0u8; 16];
            c6[0] = 0xfd;
            c6[15] = (i % 250 + 1) as u8;
            let mut s6 = [0u8; 16];
            s6[0] = 0xfd;
            s6[15] = 0xfe;
            frames.extend(udp6_exchange(c6, s6, 45000, 5353, start + 13_000_000, 80));
        }
    }
    frames.sort_by_key(|f| f.0);
    frames
}

/// Writes frames as an Ethernet pcap with nanosecond timestamps, through libpcap.
pub fn write_pcap(path: &Path, frames: impl IntoIterator<Item = Frame>) -> Result<u64, pcap::Error> {
    let mut w = PcapWriter::create(path)?;
    for (t, f) in frames {
        w.write(t, &f);
    }
    w.finish()
}

/// Streaming Ethernet pcap writer (nanosecond) over libpcap's savefile.
pub struct PcapWriter {
    save: pcap::Savefile,
    n: u64,
}

impl PcapWriter {
    pub fn create(path: &Path) -> Result<PcapWriter, pcap::Error> {
        let dead = pcap::Capture::dead_with_precision(pcap::Linktype::ETHERNET, pcap::Precision::Nano)?;
        Ok(PcapWriter { save: dead.savefile(path)?, n: 0 })
    }
    pub fn write(&mut self, ts_ns: i64, frame: &[u8]) {
        let header = pcap::PacketHeader {
            ts: libc::timeval { tv_sec: ts_ns.div_euclid(NS) as _, tv_usec: ts_ns.rem_euclid(NS) as _ },
            caplen: frame.len() as u32,
            len: frame.len() as u32,
        };
        self.save.write(&pcap::Packet::new(&header, frame));
        self.n += 1;
    }
    pub fn finish(mut self) -> Result<u64, pcap::Error> {
        self.save.flush()?;
        Ok(self.n)
    }
}
