//! TCP handshake and teardown heads: the first and last packets of connected flows, modelled
//! apart from the flow LSTM (as NeCSTGen does).
//!
//! A handshake (SYN, SYN-ACK, ACK) and a teardown (FIN/ACK exchanges or a RST) follow a fixed
//! grammar; what varies is their timing (the round-trip time shows in the SYN-ACK's delay) and
//! their sizes (the SYN's options). Per role this module keeps the empirical quantiles of
//! log10 time-since-previous-packet and of the IP total length, plus how flows close (four-way
//! FIN, three-way FIN with FIN+ACK, RST, or no close seen), which side closes first, and how
//! many extra pure ACKs the other side sends between its ACK of the first FIN and its own FIN
//! (by flow length: an IoT hub's 11-packet exchanges send one, its 10-packet ones none). The
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
    /// One of the other side's extra pure ACKs between [`Role::FinAck`] and
    /// [`Role::FinSecond`] (not in the per-role tables: its gaps are
    /// [`TcpHeads::close_ack_log_dt`]).
    CloseAck,
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

/// Tensors of the extra ACKs' table and gaps (optional in a model).
const CLOSE_ACKS: &str = "close_acks";
const CLOSE_ACK_LOG_DT: &str = "close_ack_log_dt";

/// Flow lengths the close's extra ACKs are counted by: 1, 2, …, and the last for longer flows.
pub const ACK_BUCKETS: usize = 32;
/// Most extra ACKs a four-way close sends (more in training count as this many: a second is
/// rare, the ACK of a retransmitted FIN).
pub const MAX_CLOSE_ACKS: usize = 1;
/// Weight, in flows, of the pooled counts in each flow length's shares (a length with few
/// flows gets about the pooled shares).
const ACK_PRIOR: f64 = 2.0;

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
    /// Four-way closes of training flows by flow length (row `min(len, ACK_BUCKETS) - 1`)
    /// and number of extra ACKs (0 to [`MAX_CLOSE_ACKS`]). Empty when no close had any: no
    /// draw is made then (a model from before the table draws as it did).
    pub close_acks: Vec<[f64; MAX_CLOSE_ACKS + 1]>,
    /// Quantiles of log10 seconds before each extra ACK ([`Role::CloseAck`]).
    pub close_ack_log_dt: [f64; QUANTILES],
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
            close_acks: Vec::new(),
            close_ack_log_dt: [DEFAULT_LOG_DT; QUANTILES],
        }
    }
}

/// A flow length's row in [`TcpHeads::close_acks`].
fn ack_bucket(packets: usize) -> usize {
    packets.clamp(1, ACK_BUCKETS) - 1
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
        let mut close_acks = vec![[0f64; MAX_CLOSE_ACKS + 1]; ACK_BUCKETS];
        let mut close_ack_dt = Vec::new();
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
                    // the other side's FIN, and its pure ACKs before it
                    let mut acks = Vec::new();
                    let second = loop {
                        match tail.next() {
                            Some(q) if q.backward != first.backward && q.fin => break Some(q),
                            Some(q) if q.backward != first.backward && q.ack && !q.payload && !q.syn && !q.rst => acks.push(q.log_dt),
                            Some(_) => {}
                            None => break None,
                        }
                    };
                    let Some(p2) = second else {
                        closes[Close::None as usize] += 1;
                        continue;
                    };
                    push(Role::FinSecond, p2);
                    closes[Close::FourWay as usize] += 1;
                    close_acks[ack_bucket(ps.len())][acks.len().min(MAX_CLOSE_ACKS)] += 1.0;
                    close_ack_dt.extend(acks);
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
        if !close_ack_dt.is_empty() {
            h.close_acks = close_acks;
            h.close_ack_log_dt = quantiles(close_ack_dt, DEFAULT_LOG_DT);
        }
        h
    }

    /// How many extra ACKs a two-sided four-way close of a flow of `packets` sends: drawn
    /// with that length's shares in training, pulled toward all lengths' shares where the
    /// length had few flows. 0 without a draw when the model has no table.
    pub fn sample_close_acks(&self, packets: u32, rng: &mut SplitMix64) -> u32 {
        let Some(row) = self.close_acks.get(ack_bucket(packets as usize)) else { return 0 };
        let mut pooled = [0f64; MAX_CLOSE_ACKS + 1];
        for r in &self.close_acks {
            pooled.iter_mut().zip(r).for_each(|(p, n)| *p += n);
        }
        let total = pooled.iter().sum::<f64>().max(1.0);
        let n = row.iter().sum::<f64>();
        let mut u = rng.next_f64();
        for (k, (&c, &all)) in row.iter().zip(&pooled).enumerate() {
            u -= (c + ACK_PRIOR * all / total) / (n + ACK_PRIOR);
            if u < 0.0 {
                return k as u32;
            }
        }
        MAX_CLOSE_ACKS as u32
    }

    /// A role's table of log10 gaps.
    fn log_dt_of(&self, role: Role) -> &[f64; QUANTILES] {
        match role {
            Role::CloseAck => &self.close_ack_log_dt,
            r => &self.log_dt[r as usize],
        }
    }

    /// A role's packet: (seconds since the flow's previous packet, IP total length).
    pub fn sample(&self, role: Role, rng: &mut SplitMix64) -> (f64, u32) {
        let dt = 10f64.powf(draw(self.log_dt_of(role), rng).clamp(-9.0, 4.0));
        // (an extra ACK is sized as the ACK of the first FIN)
        let r = if role == Role::CloseAck { Role::FinAck as usize } else { role as usize };
        let size = draw(&self.size[r], rng).round().clamp(20.0, 65_535.0) as u32;
        (dt, size)
    }

    /// A role's typical gap: the median seconds since the flow's previous packet.
    pub fn median_dt(&self, role: Role) -> f64 {
        10f64.powf(self.log_dt_of(role)[QUANTILES / 2].clamp(-9.0, 4.0))
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
        let mut out = vec![
            ("log_dt".into(), flat(&self.log_dt)),
            ("size".into(), flat(&self.size)),
            ("payload".into(), flat(&self.payload)),
            ("seen".into(), Tensor::from_slice(&seen)),
            ("close_p".into(), Tensor::from_slice(&self.close_p)),
            ("client_closes".into(), Tensor::from_slice(&[self.client_closes])),
        ];
        if !self.close_acks.is_empty() {
            out.push((CLOSE_ACKS.into(), Tensor::from_slice(self.close_acks.as_flattened()).view([ACK_BUCKETS as i64, MAX_CLOSE_ACKS as i64 + 1])));
            out.push((CLOSE_ACK_LOG_DT.into(), Tensor::from_slice(&self.close_ack_log_dt)));
        }
        out
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
            close_acks: match get(CLOSE_ACKS) {
                // (optional: models from before the table have none)
                None => Vec::new(),
                Some(_) => {
                    let v = f64s(CLOSE_ACKS, ACK_BUCKETS * (MAX_CLOSE_ACKS + 1))?;
                    if let Some(x) = v.iter().find(|x| **x < 0.0) {
                        return Err(format!("tensor `{CLOSE_ACKS}` has a negative count {x}"));
                    }
                    v.chunks_exact(MAX_CLOSE_ACKS + 1).map(|c| std::array::from_fn(|k| c[k])).collect()
                }
            },
            close_ack_log_dt: match get(CLOSE_ACK_LOG_DT) {
                None => [DEFAULT_LOG_DT; QUANTILES],
                Some(_) => f64s(CLOSE_ACK_LOG_DT, QUANTILES)?.try_into().map_err(|_| format!("tensor `{CLOSE_ACK_LOG_DT}`"))?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dataset::{log_payload, FlowSeq, PACKET_DIM};

    /// Flag columns (FIN, SYN, RST, PSH, ACK) of the packets the tests' flows are made of.
    const SYN: [bool; 5] = [false, true, false, false, false];
    const SYN_ACK: [bool; 5] = [false, true, false, false, true];
    const ACK: [bool; 5] = [false, false, false, false, true];
    const FIN: [bool; 5] = [true, false, false, false, true];
    const RST: [bool; 5] = [false, false, true, false, true];
    const DATA: [bool; 5] = [false, false, false, true, true];

    /// Appends one connected flow of these packet rows.
    fn push_flow(ds: &mut Dataset, rows: &[[f32; PACKET_DIM]]) {
        let start = ds.n_packets();
        rows.iter().for_each(|r| ds.packets.extend_from_slice(r));
        ds.flows.push(FlowSeq { kind: FlowKind::Connected, start, len: rows.len() });
    }

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

    /// A flow's handshake (RTT 10 ms: the SYN-ACK 10^-2 s after the SYN) and a 500-byte request.
    fn opening() -> Vec<[f32; PACKET_DIM]> {
        vec![
            row(60.0, 60.0, false, SYN, -7.0),
            row(60.0, 60.0, true, SYN_ACK, -2.0),
            row(52.0, 52.0, false, ACK, -4.0),
            row(552.0, 52.0, false, DATA, -3.0),
        ]
    }

    #[test]
    fn learns_handshake_timing_and_close_styles() {
        let mut ds = Dataset::default();
        for i in 0..30 {
            let mut f = opening();
            if i % 3 == 0 {
                f.push(row(40.0, 40.0, true, RST, -1.0));
            } else {
                // the client closes, four-way
                f.extend([
                    row(52.0, 52.0, false, FIN, -1.0),
                    row(52.0, 52.0, true, ACK, -3.5),
                    row(52.0, 52.0, true, FIN, -3.0),
                    row(52.0, 52.0, false, ACK, -3.5),
                ]);
            }
            push_flow(&mut ds, &f);
        }
        push_flow(&mut ds, &[row(552.0, 52.0, false, DATA, -3.0), row(52.0, 52.0, true, ACK, -3.0)]);
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
        // no close had an extra ACK: no table, and no draw
        assert!(h.close_acks.is_empty() && !t.iter().any(|(k, _)| k == CLOSE_ACKS));
        let before = rng.clone();
        assert_eq!(h.sample_close_acks(9, &mut rng), 0);
        assert_eq!(rng.next_u64(), before.clone().next_u64(), "a draw was made");
    }

    #[test]
    fn learns_how_many_extra_acks_a_close_sends_by_flow_length() {
        let mut ds = Dataset::default();
        for i in 0..40 {
            // the server closes first; the client ACKs its FIN, in half of the flows twice
            // (1 ms later) before its own FIN: those flows are one packet longer
            let mut f = opening();
            f.extend([row(852.0, 52.0, true, FIN, -2.0), row(52.0, 52.0, false, ACK, -3.5)]);
            if i % 2 == 0 {
                f.push(row(52.0, 52.0, false, ACK, -3.0));
            }
            f.extend([row(52.0, 52.0, false, FIN, -3.0), row(52.0, 52.0, true, ACK, -3.5)]);
            push_flow(&mut ds, &f);
        }
        let h = TcpHeads::fit(&ds, 0..ds.flows.len());
        assert_eq!(h.close_p[Close::FourWay as usize], 1.0);
        assert_eq!(h.seen[Role::FinAck as usize], 40, "the first ACK is the FIN's ACK");
        // (8-packet flows in row 7, 9-packet ones in row 8)
        assert_eq!((h.close_acks[7], h.close_acks[8]), ([20.0, 0.0], [0.0, 20.0]));
        assert!(h.close_acks.iter().enumerate().all(|(i, r)| i == 7 || i == 8 || r == &[0.0, 0.0]));
        assert!(h.close_ack_log_dt.iter().all(|&q| q == -3.0));
        assert!((h.sample(Role::CloseAck, &mut SplitMix64::new(2)).0 - 1e-3).abs() < 1e-12);
        // drawn by length: a 9-packet flow sends the extra ACK, an 8-packet one does not
        // (each with its own flows' share pulled a little toward the pooled half); a length
        // never seen gets the pooled share
        let mut rng = SplitMix64::new(3);
        let share = |n: u32, rng: &mut SplitMix64| (0..4000).map(|_| h.sample_close_acks(n, rng)).sum::<u32>() as f64 / 4000.0;
        let (eight, nine, other) = (share(8, &mut rng), share(9, &mut rng), share(25, &mut rng));
        assert!(eight < 0.08 && nine > 0.92 && (other - 0.5).abs() < 0.04, "{eight} {nine} {other}");
        // round trip, and a damaged table is an error naming it
        let t = h.named_tensors();
        let get = |n: &str| t.iter().find(|(k, _)| k == n).map(|(_, v)| v.shallow_clone());
        assert_eq!(TcpHeads::from_named(&get).unwrap(), h);
        let bad = |n: &str| if n == CLOSE_ACKS { Some(Tensor::from_slice(&[-1.0f64; ACK_BUCKETS * 2])) } else { get(n) };
        assert!(TcpHeads::from_named(&bad).unwrap_err().contains("close_acks"));
        let short = |n: &str| if n == CLOSE_ACKS { Some(Tensor::from_slice(&[1.0f64; 3])) } else { get(n) };
        assert!(TcpHeads::from_named(&short).unwrap_err().contains("close_acks"));
    }
}
