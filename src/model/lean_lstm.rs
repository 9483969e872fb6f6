//! A lean Rust kernel for stepping a trained flow LSTM: generation without libtorch calls.
//!
//! One tch call costs ~200 µs of dispatch at batch 1, so generation runs the trained weights
//! here instead (training stays in tch). What makes it cheap:
//! - the input side of the LSTM only ever sees one of `k + 2` tokens, so `W_ih · embed(t) +
//!   b_ih + b_hh` is a table computed once per token at load;
//! - the recurrent side is one `4H × H` matrix-vector product per flow and step, written as
//!   8-lane dot products the compiler vectorises;
//! - sigmoid and tanh use a polynomial `exp` (relative error < 3e-7) instead of libm.
//!
//! The arithmetic is the same sequence of IEEE operations on every x86-64 (no FMA, fixed
//! reduction order), so a seed gives the same traffic on any machine. It matches tch's
//! `FlowLstm::step` to ~1e-5 (checked by a test). This module does not choose flows or
//! decode packets (that is the engine's and [`super::packet_bank`]'s).

use tch::{Kind, Tensor};

use super::flow_lstm::FlowLstm;
use crate::rng::SplitMix64;

/// Why trained weights cannot be run by the lean kernel.
#[derive(Debug, thiserror::Error)]
pub enum LeanError {
    #[error("the lean LSTM kernel runs one-layer LSTMs; this model has {0} layers")]
    Layers(i64),
    #[error("LSTM weight `{0}` is missing or has the wrong shape")]
    Weight(String),
}

/// The weights of one flow LSTM, laid out for stepping.
#[derive(Clone, Debug)]
pub struct LeanLstm {
    /// Tokens 0..k are components, k is END, k + 1 is START.
    k: usize,
    h: usize,
    /// `(k + 2) × 4H`: input projection of each token with both biases.
    xproj: Vec<f32>,
    /// `4H × H`, row-major (gate order i, f, g, o as in PyTorch).
    w_hh: Vec<f32>,
    /// `(k + 1) × H` and `k + 1`.
    head_w: Vec<f32>,
    head_b: Vec<f32>,
}

fn floats(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_device(tch::Device::Cpu).to_kind(Kind::Float).contiguous().view([-1])).unwrap_or_default()
}

impl LeanLstm {
    /// Copies the weights of a trained LSTM.
    pub fn from_tch(m: &FlowLstm) -> Result<LeanLstm, LeanError> {
        let s = m.shape;
        if s.layers != 1 {
            return Err(LeanError::Layers(s.layers));
        }
        let (k, e, h) = (s.k as usize, s.embed as usize, s.hidden as usize);
        let vars = m.vs.variables();
        let get = |name: &str, len: usize| -> Result<Vec<f32>, LeanError> {
            let v = vars.get(name).map(floats).ok_or_else(|| LeanError::Weight(name.into()))?;
            if v.len() == len { Ok(v) } else { Err(LeanError::Weight(name.into())) }
        };
        let embed = get("embed.weight", (k + 2) * e)?;
        let w_ih = get("lstm.weight_ih_l0", 4 * h * e)?;
        let b_ih = get("lstm.bias_ih_l0", 4 * h)?;
        let b_hh = get("lstm.bias_hh_l0", 4 * h)?;
        let mut xproj = vec![0f32; (k + 2) * 4 * h];
        for t in 0..k + 2 {
            let x = &embed[t * e..(t + 1) * e];
            for j in 0..4 * h {
                xproj[t * 4 * h + j] = dot(&w_ih[j * e..(j + 1) * e], x) + b_ih[j] + b_hh[j];
            }
        }
        Ok(LeanLstm {
            k,
            h,
            xproj,
            w_hh: get("lstm.weight_hh_l0", 4 * h * h)?,
            head_w: get("head.weight", (k + 1) * h)?,
            head_b: get("head.bias", k + 1)?,
        })
    }

    pub fn hidden(&self) -> usize {
        self.h
    }
    /// Number of logits of a step (components + END).
    pub fn outputs(&self) -> usize {
        self.k + 1
    }
    pub fn end_token(&self) -> usize {
        self.k
    }
    pub fn start_token(&self) -> usize {
        self.k + 1
    }

    /// One step of one flow: reads `token`, updates its state `h`, `c` (length H each) and
    /// writes the next token's logits (length k + 1). `gates` is scratch of length 4H.
    pub fn step(&self, token: usize, h: &mut [f32], c: &mut [f32], gates: &mut [f32], logits: &mut [f32]) {
        let hd = self.h;
        let x = &self.xproj[token * 4 * hd..(token + 1) * 4 * hd];
        for (j, g) in gates.iter_mut().enumerate().take(4 * hd) {
            *g = x[j] + dot(&self.w_hh[j * hd..(j + 1) * hd], h);
        }
        let (i, rest) = gates.split_at_mut(hd);
        let (f, rest) = rest.split_at_mut(hd);
        let (g, o) = rest.split_at_mut(hd);
        for n in 0..hd {
            let c_new = sigmoid(f[n]) * c[n] + sigmoid(i[n]) * tanh(g[n]);
            c[n] = c_new;
            h[n] = sigmoid(o[n]) * tanh(c_new);
        }
        for (m, l) in logits.iter_mut().enumerate().take(self.k + 1) {
            *l = self.head_b[m] + dot(&self.head_w[m * hd..(m + 1) * hd], h);
        }
    }
}

/// Dot product with 8 independent accumulators, summed in a fixed order.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    for r in chunks * 8..n {
        acc[r % 8] += a[r] * b[r];
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// e^x by range reduction (x = n ln 2 + r, |r| ≤ ln 2 / 2) and a degree-6 polynomial;
/// relative error < 3e-7 over the clamped range. Plain arithmetic, so it vectorises.
#[inline]
pub fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_approx(-x))
}

#[inline]
fn tanh(x: f32) -> f32 {
    2.0 / (1.0 + exp_approx(-2.0 * x)) - 1.0
}

/// Samples a token from logits (temperature 1). `weights` is scratch of the same length.
pub fn sample_logits(logits: &[f32], weights: &mut [f32], rng: &mut SplitMix64) -> usize {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0f32;
    for (w, &l) in weights.iter_mut().zip(logits) {
        *w = exp_approx(l - max);
        total += *w;
    }
    let mut u = rng.next_f64() as f32 * total;
    for (i, w) in weights.iter().enumerate().take(logits.len()) {
        u -= w;
        if u <= 0.0 {
            return i;
        }
    }
    logits.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::flow_lstm::LstmShape;
    use crate::model::vae::seeded_init;
    use tch::Device;

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let rel = ((f64::from(exp_approx(x)) - f64::from(x).exp()) / f64::from(x).exp()).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_approx(0.0), 1.0);
    }

    /// Same logits as tch's step, token after token, for a randomly initialised LSTM.
    #[test]
    fn matches_tch_step() {
        let shape = LstmShape { k: 9, embed: 16, hidden: 64, layers: 1, window: 8 };
        let mut m = FlowLstm::new(shape, Device::Cpu);
        seeded_init(&mut m.vs, 5);
        // larger weights than the init, so the gates leave the linear region
        tch::no_grad(|| {
            for (_, mut v) in m.vs.variables() {
                let _ = v.f_mul_(&Tensor::from(3.0)).unwrap();
            }
        });
        let lean = LeanLstm::from_tch(&m).unwrap();
        let (h_len, out) = (lean.hidden(), lean.outputs());
        let (mut h, mut c, mut gates, mut logits) = (vec![0f32; h_len], vec![0f32; h_len], vec![0f32; 4 * h_len], vec![0f32; out]);
        let mut state = m.zero_state(1);
        let mut rng = SplitMix64::new(9);
        let mut token = lean.start_token();
        let mut worst = 0f32;
        for _ in 0..50 {
            let (tl, next) = m.step(&Tensor::from_slice(&[token as i64]), &state);
            state = next;
            let tl: Vec<f32> = Vec::try_from(tl.view([-1])).unwrap();
            lean.step(token, &mut h, &mut c, &mut gates, &mut logits);
            for (a, b) in tl.iter().zip(&logits) {
                worst = worst.max((a - b).abs());
            }
            token = rng.below(out as u64) as usize;
        }
        assert!(worst < 1e-4, "largest logit difference {worst}");
    }

    #[test]
    fn sampling_follows_the_softmax() {
        let logits = [0.0f32, (3.0f32).ln(), f32::NEG_INFINITY];
        let mut w = [0f32; 3];
        let mut rng = SplitMix64::new(1);
        let mut n = [0u32; 3];
        for _ in 0..40_000 {
            n[sample_logits(&logits, &mut w, &mut rng)] += 1;
        }
        assert_eq!(n[2], 0);
        let share = f64::from(n[1]) / 40_000.0;
        assert!((share - 0.75).abs() < 0.01, "{share}");
    }
}
