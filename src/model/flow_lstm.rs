//! Flow level: an LSTM per flow kind over the sequence of a flow's packet components.
//!
//! A flow is the sequence of the packet-GMM components of its packets (each component stands
//! for a kind of packet: direction, flags, size, timing). The LSTM reads `START, c0, c1, …` and
//! predicts `c0, c1, …, END`, so it learns request/response alternation, bursts, handshakes and
//! teardowns, and where flows end (long-tailed lengths). Training uses windows of `window`
//! steps (truncated back-propagation) with padded positions masked out; generation steps many
//! flows at once ([`FlowLstm::step`]) with one forward pass per step.

use tch::nn::{self, Module, OptimizerConfig, RNN};
use tch::{Device, Reduction, Tensor};

use super::vae::{dim, epoch_batches, seeded_init, EarlyStopping, LossCurve, TrainSettings};
use crate::rng::SplitMix64;

/// Shape of one flow LSTM (stored in the manifest).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LstmShape {
    /// Packet components (tokens 0..k); END = k, START = k + 1.
    pub k: i64,
    pub embed: i64,
    pub hidden: i64,
    pub layers: i64,
    pub window: i64,
}

impl LstmShape {
    /// Number of weights and biases of an LSTM of this shape with its embedding and output
    /// head (`None` when a dimension is below 1 or the count overflows): what
    /// [`FlowLstm::new`] allocates, known before it does.
    pub fn parameters(&self) -> Option<u64> {
        let (k, e, h, layers) = (dim(self.k)?, dim(self.embed)?, dim(self.hidden)?, dim(self.layers)?);
        let tokens = k.checked_add(2)?;
        // per layer: W_ih [4h, in], W_hh [4h, h], b_ih and b_hh [4h]; the first layer's input
        // is the embedding, the others' the layer below
        let gates = h.checked_mul(4)?;
        let layer = |input: u64| gates.checked_mul(input.checked_add(h)?.checked_add(2)?);
        let rest = layer(h)?.checked_mul(layers - 1)?;
        let head = h.checked_add(1)?.checked_mul(k.checked_add(1)?)?;
        [tokens.checked_mul(e)?, layer(e)?, rest, head].into_iter().try_fold(0u64, u64::checked_add)
    }

    pub fn end_token(&self) -> i64 {
        self.k
    }
    pub fn start_token(&self) -> i64 {
        self.k + 1
    }
}

const IGNORE: i64 = -100;

pub struct FlowLstm {
    pub vs: nn::VarStore,
    pub shape: LstmShape,
    embed: nn::Embedding,
    lstm: nn::LSTM,
    head: nn::Linear,
}

impl FlowLstm {
    pub fn new(shape: LstmShape, device: Device) -> FlowLstm {
        let vs = nn::VarStore::new(device);
        let p = vs.root();
        let embed = nn::embedding(&p / "embed", shape.k + 2, shape.embed, Default::default());
        let cfg = nn::RNNConfig { num_layers: shape.layers, batch_first: true, ..Default::default() };
        let lstm = nn::lstm(&p / "lstm", shape.embed, shape.hidden, cfg);
        let head = nn::linear(&p / "head", shape.hidden, shape.k + 1, Default::default());
        FlowLstm { vs, shape, embed, lstm, head }
    }

    /// Logits [B, T, k+1] for input tokens [B, T].
    fn forward(&self, tokens: &Tensor) -> Tensor {
        let (out, _) = self.lstm.seq(&self.embed.forward(tokens));
        self.head.forward(&out)
    }

    pub fn zero_state(&self, batch: i64) -> nn::LSTMState {
        self.lstm.zero_state(batch)
    }

    /// One step for a batch of flows: input tokens [B] → logits [B, k+1] and the new state.
    pub fn step(&self, tokens: &Tensor, state: &nn::LSTMState) -> (Tensor, nn::LSTMState) {
        tch::no_grad(|| {
            let st = self.lstm.step(&self.embed.forward(tokens), state);
            let logits = self.head.forward(&st.h().select(0, self.shape.layers - 1));
            (logits, st)
        })
    }

    /// Mean cross-entropy over the non-padded positions of windows (inputs, targets) [N, W].
    fn loss(&self, inputs: &Tensor, targets: &Tensor) -> Tensor {
        let logits = self.forward(inputs);
        logits.view([-1, self.shape.k + 1]).cross_entropy_loss::<Tensor>(&targets.view([-1]), None, Reduction::Mean, IGNORE, 0.0)
    }

    /// Trains on flows given as component sequences.
    pub fn train(&mut self, train: &[Vec<i64>], val: &[Vec<i64>], s: &TrainSettings, max_windows: usize, mut on_epoch: impl FnMut(usize, f64, f64)) -> LossCurve {
        seeded_init(&mut self.vs, s.seed);
        let device = self.vs.device();
        let (ti, tt) = windows(train, &self.shape, max_windows, s.seed, device);
        let (vi, vt) = windows(val, &self.shape, max_windows / 4 + 1, s.seed ^ 1, device);
        let mut opt = nn::Adam::default().build(&self.vs, s.lr).expect("Adam over a VarStore");
        let n = ti.size()[0];
        let mut rng = SplitMix64::new(s.seed ^ 0x6c73_746d);
        let mut curve = LossCurve::default();
        let mut stop = EarlyStopping::new(s.patience);
        for epoch in 0..s.epochs {
            let tl = epoch_batches(n, s, &mut rng, device, |idx| {
                let loss = self.loss(&ti.index_select(0, idx), &tt.index_select(0, idx));
                opt.backward_step_clip_norm(&loss, 5.0);
                loss.double_value(&[])
            });
            let vl = if vi.size()[0] > 0 { tch::no_grad(|| self.loss(&vi, &vt).double_value(&[])) } else { tl };
            on_epoch(epoch, tl, vl);
            if stop.record(epoch, tl, vl, &self.vs, &mut curve) {
                break;
            }
        }
        stop.restore_best(&mut self.vs);
        curve
    }
}

/// Cuts flows into aligned (input, target) windows of `shape.window` steps; at most
/// `max_windows`, chosen by a seeded draw of flows when there are more.
pub fn windows(flows: &[Vec<i64>], shape: &LstmShape, max_windows: usize, seed: u64, device: Device) -> (Tensor, Tensor) {
    let w = shape.window as usize;
    let mut order: Vec<usize> = (0..flows.len()).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let (mut inp, mut tgt) = (Vec::new(), Vec::new());
    let mut count = 0;
    'flows: for &f in &order {
        let comps = &flows[f];
        let input: Vec<i64> = std::iter::once(shape.start_token()).chain(comps.iter().copied()).collect();
        let target: Vec<i64> = comps.iter().copied().chain(std::iter::once(shape.end_token())).collect();
        for s in (0..input.len()).step_by(w) {
            if count >= max_windows {
                break 'flows;
            }
            let e = (s + w).min(input.len());
            inp.extend_from_slice(&input[s..e]);
            tgt.extend_from_slice(&target[s..e]);
            for _ in e..s + w {
                inp.push(shape.end_token());
                tgt.push(IGNORE);
            }
            count += 1;
        }
    }
    let n = count as i64;
    (
        Tensor::from_slice(&inp).view([n, shape.window]).to_device(device),
        Tensor::from_slice(&tgt).view([n, shape.window]).to_device(device),
    )
}

/// Samples a token from logits [k+1] (temperature 1) with the project's RNG.
pub fn sample_token(logits: &[f32], rng: &mut SplitMix64) -> i64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let w: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let total: f64 = w.iter().sum();
    let mut u = rng.next_f64() * total;
    for (i, x) in w.iter().enumerate() {
        u -= x;
        if u <= 0.0 {
            return i as i64;
        }
    }
    (w.len() - 1) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_inputs_and_targets_and_mask_padding() {
        let shape = LstmShape { k: 3, embed: 4, hidden: 8, layers: 1, window: 4 };
        let (i, t) = windows(&[vec![0, 1, 2, 0, 1]], &shape, 10, 0, Device::Cpu);
        assert_eq!(i.size(), [2, 4]);
        let iv: Vec<i64> = Vec::try_from(i.view([-1])).unwrap();
        let tv: Vec<i64> = Vec::try_from(t.view([-1])).unwrap();
        assert_eq!(iv, [4, 0, 1, 2, 0, 1, 3, 3]);
        assert_eq!(tv, [0, 1, 2, 0, 1, 3, IGNORE, IGNORE]);
    }

    #[test]
    fn learns_strict_alternation() {
        // flows alternate 0,1,0,1,… and end after 6 packets
        let flows: Vec<Vec<i64>> = (0..200).map(|_| vec![0, 1, 0, 1, 0, 1]).collect();
        let shape = LstmShape { k: 2, embed: 8, hidden: 16, layers: 1, window: 8 };
        let mut m = FlowLstm::new(shape, Device::Cpu);
        let s = TrainSettings { epochs: 60, batch: 32, lr: 0.02, patience: 100, seed: 1, max_per_epoch: usize::MAX, min_batches: 0 };
        let curve = m.train(&flows, &flows[..20], &s, 10_000, |_, _, _| {});
        assert!(curve.train.last().unwrap() < &(curve.train[0] * 0.3), "{:?}", curve.train);
        // generate greedily: must alternate and end after 6
        let mut st = m.zero_state(1);
        let mut tok = Tensor::from_slice(&[shape.start_token()]);
        let mut out = Vec::new();
        for _ in 0..10 {
            let (logits, s2) = m.step(&tok, &st);
            st = s2;
            let next = logits.argmax(-1, false).int64_value(&[0]);
            if next == shape.end_token() {
                break;
            }
            out.push(next);
            tok = Tensor::from_slice(&[next]);
        }
        assert_eq!(out, [0, 1, 0, 1, 0, 1]);
    }
}
