//! TCP handshake and teardown heads: the first and last packets of connected flows, modelled
//! apart from the flow LSTM (as NeCSTGen does).
//!
//! A handshake (SYN, SYN-ACK, ACK) and a teardown (FIN/ACK exchanges or a RST) follow a fixed
//! grammar; what varies is their timing (the round-trip time shows in the SYN-ACK's delay) and
//! their sizes (the SYN's options). Per role this module keeps the empirical quantiles of
//! log10 time-since-previous-packet and of the IP total length, plus how flows close (four-way
//! FIN, three-way FIN with FIN+ACK, RST, or no close seen) and which side closes first. The
//! generation engine emits these roles around the LSTM's data packets, so every generated TCP
//! flow opens and closes like a real one. This module does not build frames (seq/ack are the
//! wire stage's).

use tch::{Kind, Tensor};

use super::dataset::{col, payload_of, Dataset};
use crate::flow::FlowKind;
use crate::rng::SplitMix64;

/// The roles, in the order of the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Syn,
    SynAck,
    Ack,
    /// The first FIN (either side).
    FinFirst,
    /// The other side's pure ACK of it (four-way close).
    FinAck,
    /// The other side's FIN (FIN+ACK in a three-way close).
    FinSecond,
    /// The closing side's ACK of the second FIN.
    LastAck,
    Rst,
}

pub const ROLES: [Role; 8] =
    [Role::Syn, Role::SynAck, Role::Ack, Role::FinFirst, Role::FinAck, Role::FinSecond, Role::LastAck, Role::Rst];

/// How flows end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// FIN, ACK, FIN, ACK.
    FourWay,
    /// FIN, FIN+ACK, ACK.
    ThreeWay,
    Rst,
    /// No FIN or RST seen (idle, or the capture ended).
    None,
}

impl Close {
    /// Packets this way of closing sends.
    pub fn packets(self) -> u32 {
        match self {
            Close::FourWay => 4,
            Close::ThreeWay => 3,
            Close::Rst => 1,
            Close::None => 0,
        }
    }
}

pub const CLOSES: [Close; 4] = [Close::FourWay, Close::ThreeWay, Close::Rst, Close::None];

/// Quantiles kept per role and quantity (0, 1/32, …, 1).
pub const QUANTILES: usize = 33;

/// Used for roles never seen in training: 100 µs, a bare header with the usual options.
const DEFAULT_LOG_DT: f64 = -4.0;
const DEFAULT_SIZE: [f64; 8] = [60.0, 60.0, 52.0, 52.0, 52.0, 52.0, 52.0, 40.0];

/// The fitted heads.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpHeads {
    /// Per role: quantiles of log10 seconds since the flow's previous packet.
    pub log_dt: [[f64; QUANTILES]; 8],
    /// Per role: quantiles of the IP total length.
    pub size: [[f64; QUANTILES]; 8],
    /// Per role: quantiles of the payload length (a server's last data often rides on its FIN).
    pub payload: [[f64; QUANTILES]; 8],
    /// Training examples per role (0: the defaults are used).
    pub seen: [u64; 8],
    /// Probability of each [`Close`], in [`CLOSES`] order.
    pub close_p: [f64; 4],
    /// Probability that the client sends the first FIN.
    pub client_closes: f64,
}

impl Default for TcpHeads {
    fn default() -> Self {
        TcpHeads {
            log_dt: [[DEFAULT_LOG_DT; QUANTILES]; 8],
            size: std::array::from_fn(|r| [DEFAULT_SIZE[r]; QUANTILES]),
            payload: [[0.0; QUANTILES]; 8],
            seen: [0; 8],
            close_p: [1.0, 0.0, 0.0, 0.0],
            client_closes: 1.0,
        }
    }
}

/// One packet as the heads see it.
#[derive(Clone, Copy, Debug)]
struct Pkt {
    log_dt: f64,
    size: f64,
    payload_len: f64,
    payload: bool,
    backward: bool,
    fin: bool,
    syn: bool,
    rst: bool,
    ack: bool,
}

fn pkt(row: &[f32]) -> Pkt {
    let payload_len = payload_of(row[col::LOG_PAYLOAD]).round();
    let size = f64::from(row[col::HEADER]).round() + payload_len;
    Pkt {
        log_dt: f64::from(row[col::LOG_DT]),
        size,
        payload_len,
        payload: payload_len > 0.0,
        backward: row[col::DIRECTION] > 0.5,
        fin: row[col::FLAGS] > 0.5,
        syn: row[col::FLAGS + 1] > 0.5,
        rst: row[col::FLAGS + 2] > 0.5,
        ack: row[col::FLAGS + 4] > 0.5,
    }
}

fn quantiles(mut v: Vec<f64>, default: f64) -> [f64; QUANTILES] {
    if v.is_empty() {
        return [default; QUANTILES];
    }
    v.sort_by(f64::total_cmp);
    std::array::from_fn(|i| {
        let pos = i as f64 / (QUANTILES - 1) as f64 * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    })
}

/// A draw from a quantile table (linear between quantiles).
fn draw(q: &[f64; QUANTILES], rng: &mut SplitMix64) -> f64 {
    let pos = rng.next_f64() * (QUANTILES - 1) as f64;
    let lo = (pos.floor() as usize).min(QUANTILES - 2);
    q[lo] + (q[lo + 1] - q[lo]) * (pos - lo as f64)
}

impl TcpHeads {
    /// Fits the heads on the connected flows of `ds` (flows listed in `flows`, e.g. the
    /// training split).
    pub fn fit(ds: &Dataset, flows: impl Iterator<Item = usize>) -> TcpHeads {
        let mut dt: [Vec<f64>; 8] = Default::default();
        let mut size: [Vec<f64>; 8] = Default::default();
        let mut payload: [Vec<f64>; 8] = Default::default();
        let mut closes = [0u64; 4];
        let (mut client_first, mut fins) = (0u64, 0u64);
        let mut push = |r: Role, p: &Pkt| {
            dt[r as usize].push(p.log_dt);
            size[r as usize].push(p.size);
            payload[r as usize].push(p.payload_len);
        };
        for f in flows.filter_map(|i| ds.flows.get(i)).filter(|f| f.kind == FlowKind::Connected) {
            let ps: Vec<Pkt> = (f.start..f.start + f.len).map(|r| pkt(ds.row(r))).collect();
            // handshake: only flows seen from their SYN
            if let [syn, rest @ ..] = ps.as_slice() {
                if syn.syn && !syn.ack && !syn.backward {
                    push(Role::Syn, syn);
                    if let Some(sa) = rest.first().filter(|p| p.syn && p.ack && p.backward) {
                        push(Role::SynAck, sa);
                        if let Some(a) = rest.get(1).filter(|p| !p.syn && p.ack && !p.backward && !p.payload) {
                            push(Role::Ack, a);
                        }
                    }
                }
            }
            // teardown: from the first FIN or RST
            let Some(i) = ps.iter().position(|p| p.fin || p.rst) else {
                closes[Close::None as usize] += 1;
                continue;
            };
            let first = ps[i];
            if first.rst {
                push(Role::Rst, &first);
                closes[Close::Rst as usize] += 1;
                continue;
            }
            push(Role::FinFirst, &first);
            fins += 1;
            // the client is the forward side
            client_first += u64::from(!first.backward);
            let other = |p: &&Pkt| p.backward != first.backward;
            let mut tail = ps[i + 1..].iter();
            match tail.find(other) {
                Some(p) if p.fin => {
                    push(Role::FinSecond, p);
                    closes[Close::ThreeWay as usize] += 1;
                }
                Some(p) if p.rst => {
                    push(Role::Rst, p);
                    closes[Close::Rst as usize] += 1;
                    continue;
                }
                Some(p) => {
                    if !p.payload {
                        push(Role::FinAck, p);
                    }
                    match tail.find(|p| p.backward != first.backward && p.fin) {
                        Some(p2) => push(Role::FinSecond, p2),
                        None => {
                            closes[Close::None as usize] += 1;
                            continue;
                        }
                    }
                    closes[Close::FourWay as usize] += 1;
                }
                None => {
                    closes[Close::None as usize] += 1;
                    continue;
                }
            }
            if let Some(p) = tail.find(|p| p.backward == first.backward && p.ack && !p.fin && !p.payload) {
                push(Role::LastAck, p);
            }
        }
        let total = closes.iter().sum::<u64>();
        let mut h = TcpHeads::default();
        for r in ROLES {
            let i = r as usize;
            h.seen[i] = dt[i].len() as u64;
            h.log_dt[i] = quantiles(std::mem::take(&mut dt[i]), DEFAULT_LOG_DT);
            h.size[i] = quantiles(std::mem::take(&mut size[i]), DEFAULT_SIZE[i]);
            h.payload[i] = quantiles(std::mem::take(&mut payload[i]), 0.0);
        }
        if total > 0 {
            h.close_p = closes.map(|c| c as f64 / total as f64);
        }
        if fins > 0 {
            h.client_closes = client_first as f64 / fins as f64;
        }
        h
    }

    /// A role's packet: (seconds since the flow's previous packet, IP total length).
    pub fn sample(&self, role: Role, rng: &mut SplitMix64) -> (f64, u32) {
        let r = role as usize;
        let dt = 10f64.powf(draw(&self.log_dt[r], rng).clamp(-9.0, 4.0));
        let size = draw(&self.size[r], rng).round().clamp(20.0, 65_535.0) as u32;
        (dt, size)
    }

    /// A role's typical gap: the median seconds since the flow's previous packet.
    pub fn median_dt(&self, role: Role) -> f64 {
        10f64.powf(self.log_dt[role as usize][QUANTILES / 2].clamp(-9.0, 4.0))
    }

    /// Typical seconds a flow's handshake (when it opens with one) and its close take: the
    /// median gaps of their roles, summed.
    pub fn typical_span_s(&self, opens: bool, close: Close) -> f64 {
        let open: &[Role] = if opens { &[Role::SynAck, Role::Ack] } else { &[] };
        let shut: &[Role] = match close {
            Close::FourWay => &[Role::FinFirst, Role::FinAck, Role::FinSecond, Role::LastAck],
            Close::ThreeWay => &[Role::FinFirst, Role::FinSecond, Role::LastAck],
            Close::Rst => &[Role::Rst],
            Close::None => &[],
        };
        open.iter().chain(shut).map(|&r| self.median_dt(r)).sum()
    }

    /// A role's payload length (drawn apart from its size: the headers are the flow's).
    /// The payload of `role` at probability level `level` (0..=1) of its training quantiles.
    pub fn payload_at(&self, role: Role, level: f64) -> u32 {
        let q = &self.payload[role as usize];
        let pos = level.clamp(0.0, 1.0) * (QUANTILES - 1) as f64;
        let lo = (pos.floor() as usize).min(QUANTILES - 2);
        (q[lo] + (q[lo + 1] - q[lo]) * (pos - lo as f64)).round().clamp(0.0, 65_535.0) as u32
    }

    pub fn sample_payload(&self, role: Role, rng: &mut SplitMix64) -> u32 {
        draw(&self.payload[role as usize], rng).round().clamp(0.0, 65_535.0) as u32
    }

    /// How a flow closes and whether the client closes first.
    pub fn sample_close(&self, rng: &mut SplitMix64) -> (Close, bool) {
        let mut u = rng.next_f64();
        let mut close = Close::None;
        for (c, p) in CLOSES.iter().zip(self.close_p) {
            u -= p;
            if u < 0.0 {
                close = *c;
                break;
            }
        }
        (close, rng.next_f64() < self.client_closes)
    }

    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let flat = |t: &[[f64; QUANTILES]; 8]| Tensor::from_slice(t.as_flattened()).view([8, QUANTILES as i64]);
        let seen: Vec<i64> = self.seen.iter().map(|&s| s as i64).collect();
        vec![
            ("log_dt".into(), flat(&self.log_dt)),
            ("size".into(), flat(&self.size)),
            ("payload".into(), flat(&self.payload)),
            ("seen".into(), Tensor::from_slice(&seen)),
            ("close_p".into(), Tensor::from_slice(&self.close_p)),
            ("client_closes".into(), Tensor::from_slice(&[self.client_closes])),
        ]
    }

    pub fn from_named(get: &dyn Fn(&str) -> Option<Tensor>) -> Result<TcpHeads, String> {
        let f64s = |name: &str, n: usize| -> Result<Vec<f64>, String> {
            let t = get(name).ok_or_else(|| format!("tensor `{name}` is missing"))?;
            let v = Vec::<f64>::try_from(t.to_kind(Kind::Double).view([-1])).map_err(|e| format!("tensor `{name}`: {e}"))?;
            if v.len() != n {
                return Err(format!("tensor `{name}` has {} values, expected {n}", v.len()));
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(format!("tensor `{name}` has a value that is not finite"));
            }
            Ok(v)
        };
        let table = |name: &str| -> Result<[[f64; QUANTILES]; 8], String> {
            let v = f64s(name, 8 * QUANTILES)?;
            Ok(std::array::from_fn(|r| std::array::from_fn(|q| v[r * QUANTILES + q])))
        };
        let seen = f64s("seen", 8)?;
        let close_p = f64s("close_p", 4)?;
        Ok(TcpHeads {
            log_dt: table("log_dt")?,
            size: table("size")?,
            payload: table("payload")?,
            seen: std::array::from_fn(|i| seen[i].max(0.0) as u64),
            close_p: [close_p[0], close_p[1], close_p[2], close_p[3]],
            client_closes: f64s("client_closes", 1)?[0],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dataset::{log_payload, FlowSeq, PACKET_DIM};

    /// A packet row: size, header, direction (1 = backward), flags FIN SYN RST PSH ACK, log dt.
    fn row(size: f32, header: f32, back: bool, flags: [bool; 5], log_dt: f32) -> [f32; PACKET_DIM] {
        let mut v = [0f32; PACKET_DIM];
        v[col::LOG_PAYLOAD] = log_payload(size - header);
        v[col::HEADER] = header;
        v[col::DIRECTION] = f32::from(u8::from(back));
        for (i, f) in flags.iter().enumerate() {
            v[col::FLAGS + i] = f32::from(u8::from(*f));
        }
        v[col::LOG_DT] = log_dt;
        v
    }

    #[test]
    fn learns_handshake_timing_and_close_styles() {
        let syn = [false, true, false, false, false];
        let synack = [false, true, false, false, true];
        let ack = [false, false, false, false, true];
        let fin = [true, false, false, false, true];
        let rst = [false, false, true, false, true];
        let mut ds = Dataset::default();
        let mut add = |rows: &[[f32; PACKET_DIM]]| {
            let start = ds.n_packets();
            rows.iter().for_each(|r| ds.packets.extend_from_slice(r));
            ds.flows.push(FlowSeq { kind: FlowKind::Connected, start, len: rows.len() });
        };
        for i in 0..30 {
            // RTT 10 ms: the SYN-ACK comes 10^-2 s after the SYN
            let mut f = vec![
                row(60.0, 60.0, false, syn, -7.0),
                row(60.0, 60.0, true, synack, -2.0),
                row(52.0, 52.0, false, ack, -4.0),
                row(552.0, 52.0, false, [false, false, false, true, true], -3.0),
            ];
            if i % 3 == 0 {
                f.push(row(40.0, 40.0, true, rst, -1.0));
            } else {
                // the client closes, four-way
                f.extend([
                    row(52.0, 52.0, false, fin, -1.0),
                    row(52.0, 52.0, true, ack, -3.5),
                    row(52.0, 52.0, true, fin, -3.0),
                    row(52.0, 52.0, false, ack, -3.5),
                ]);
            }
            add(&f);
        }
        add(&[row(552.0, 52.0, false, [false, false, false, true, true], -3.0), row(52.0, 52.0, true, ack, -3.0)]);
        let h = TcpHeads::fit(&ds, 0..ds.flows.len());
        assert_eq!(h.seen[Role::Syn as usize], 30);
        assert_eq!(h.seen[Role::SynAck as usize], 30);
        assert_eq!(h.seen[Role::Ack as usize], 30);
        assert_eq!(h.seen[Role::Rst as usize], 10);
        assert_eq!(h.seen[Role::FinAck as usize], 20);
        assert_eq!(h.seen[Role::LastAck as usize], 20);
        let close: Vec<f64> = h.close_p.iter().map(|p| (p * 31.0).round()).collect();
        assert_eq!(close, [20.0, 0.0, 10.0, 1.0]);
        assert_eq!(h.client_closes, 1.0);
        let mut rng = SplitMix64::new(1);
        for _ in 0..100 {
            let (dt, size) = h.sample(Role::SynAck, &mut rng);
            assert!((dt - 0.01).abs() < 1e-6, "{dt}");
            assert_eq!(size, 60);
        }
        // payload rides on no handshake packet here; the data packet is not a head
        assert_eq!(h.sample_payload(Role::Syn, &mut rng), 0);
        assert_eq!(h.sample_payload(Role::FinFirst, &mut rng), 0);
        // a payload at a level of its quantiles: the lowest, the middle, the highest
        let mut spread = h.clone();
        spread.payload[Role::FinFirst as usize] = std::array::from_fn(|i| 100.0 * i as f64);
        assert_eq!([0.0, 0.5, 1.0, 2.0].map(|l| spread.payload_at(Role::FinFirst, l)), [0, 1600, 3200, 3200]);
        // unseen role: defaults
        let (dt, size) = TcpHeads::default().sample(Role::Syn, &mut rng);
        assert!((dt - 1e-4).abs() < 1e-9 && size == 60);
        // round trip through tensors
        let t = h.named_tensors();
        let back = TcpHeads::from_named(&|n| t.iter().find(|(k, _)| k == n).map(|(_, v)| v.shallow_clone())).unwrap();
        assert_eq!(back, h);
        assert!(TcpHeads::from_named(&|_| None).unwrap_err().contains("missing"));
    }
}
