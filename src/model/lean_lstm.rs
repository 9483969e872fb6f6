//! A lean Rust kernel for stepping a trained flow LSTM: generation without libtorch calls.
//!
//! One tch call costs ~200 µs of dispatch at batch 1, so generation runs the trained weights
//! here instead (training stays in tch). What makes it cheap:
//! - the input side of the LSTM only ever sees one of `k + 2` tokens, so `W_ih · embed(t) +
//!   b_ih + b_hh` is a table computed once per token at load;
//! - the recurrent side is one `4H × H` matrix-vector product per flow and step, stored
//!   transposed so that it is a sum of scaled rows: every output is its own lane, blocks of
//!   outputs stay in registers while `h` is walked, and the compiler vectorises it to the
//!   widest SIMD the CPU has (AVX-512, AVX2 or SSE2, chosen at run time);
//! - sigmoid and tanh use a polynomial `exp` (relative error < 3e-7) instead of libm.
//!
//! Every output is summed in the same order whatever the vector width, with fused
//! multiply-adds (one IEEE rounding each: the FMA instruction where the CPU has it, libm's
//! exact `fmaf` where it does not), so the numbers — and the traffic a seed gives — are the
//! same on every x86-64. They match
//! tch's `FlowLstm::step` to ~1e-5 (checked by a test). This module does not choose flows or
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
    /// `H × 4H`: the transpose of PyTorch's `W_hh` (gate order i, f, g, o).
    w_hh_t: Vec<f32>,
    /// `H × (k + 1)`: the transpose of the head's weight; and its bias (`k + 1`).
    head_w_t: Vec<f32>,
    head_b: Vec<f32>,
    simd: Simd,
}

/// The vector instructions the kernel is compiled for (same results on each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Simd {
    Avx512,
    Avx2,
    Baseline,
}

impl Simd {
    fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            let fma = std::arch::is_x86_feature_detected!("fma");
            if fma && std::arch::is_x86_feature_detected!("avx512f") {
                return Simd::Avx512;
            }
            if fma && std::arch::is_x86_feature_detected!("avx2") {
                return Simd::Avx2;
            }
        }
        Simd::Baseline
    }
}

fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
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
                let wx: f32 = w_ih[j * e..(j + 1) * e].iter().zip(x).map(|(w, x)| w * x).sum();
                xproj[t * 4 * h + j] = wx + b_ih[j] + b_hh[j];
            }
        }
        Ok(LeanLstm {
            k,
            h,
            xproj,
            w_hh_t: transpose(&get("lstm.weight_hh_l0", 4 * h * h)?, 4 * h, h),
            head_w_t: transpose(&get("head.weight", (k + 1) * h)?, k + 1, h),
            head_b: get("head.bias", k + 1)?,
            simd: Simd::detect(),
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
        match self.simd {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU was checked for the feature in `Simd::detect`.
            Simd::Avx512 => unsafe { self.step_avx512(token, h, c, gates, logits) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Simd::Avx2 => unsafe { self.step_avx2(token, h, c, gates, logits) },
            _ => self.step_portable(token, h, c, gates, logits),
        }
    }

    /// Steps many flows at once: flow `i` reads `tokens[i]` with its state in slot `slots[i]`
    /// of the `h` and `c` slabs (H floats per slot; the slots are distinct) and gets its
    /// logits at `logits[i·(k+1)..]`. Flows go through the weights in groups (4 with AVX-512,
    /// 2 otherwise), so each pass over `W_hh` (64 KB at H = 64: more than L1) serves several
    /// flows. Same numbers as [`LeanLstm::step`] on each flow.
    pub fn step_many(&self, tokens: &[usize], slots: &[usize], h: &mut [f32], c: &mut [f32], logits: &mut [f32]) {
        match self.simd {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU was checked for the feature in `Simd::detect`.
            Simd::Avx512 => unsafe { self.many_avx512(tokens, slots, h, c, logits) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Simd::Avx2 => unsafe { self.many_avx2(tokens, slots, h, c, logits) },
            _ => self.many_blocked::<2, 16, 32>(tokens, slots, h, c, logits),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn many_avx512(&self, tokens: &[usize], slots: &[usize], h: &mut [f32], c: &mut [f32], logits: &mut [f32]) {
        self.many_blocked::<4, 64, 128>(tokens, slots, h, c, logits)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn many_avx2(&self, tokens: &[usize], slots: &[usize], h: &mut [f32], c: &mut [f32], logits: &mut [f32]) {
        self.many_blocked::<2, 32, 64>(tokens, slots, h, c, logits)
    }

    /// `G` flows share a pass, outputs in blocks of `B`; a flow left over steps alone in
    /// blocks of `R` (more independent add chains for the one flow).
    #[inline(always)]
    fn many_blocked<const G: usize, const B: usize, const R: usize>(&self, tokens: &[usize], slots: &[usize], h: &mut [f32], c: &mut [f32], logits: &mut [f32]) {
        let (hd, out) = (self.h, self.k + 1);
        let w = 4 * hd;
        let mut gates = [0f32; 4 * MAX_GROUP_HIDDEN];
        let mut i = 0;
        while i < tokens.len() {
            if tokens.len() - i < G || G * w > gates.len() {
                let s = slots[i];
                let (hs, cs) = (&mut h[s * hd..(s + 1) * hd], &mut c[s * hd..(s + 1) * hd]);
                self.step_blocked::<R>(tokens[i], hs, cs, &mut gates[..w], &mut logits[i * out..(i + 1) * out]);
                i += 1;
                continue;
            }
            for g in 0..G {
                let t = tokens[i + g];
                gates[g * w..(g + 1) * w].copy_from_slice(&self.xproj[t * w..(t + 1) * w]);
            }
            {
                let xs: [&[f32]; G] = std::array::from_fn(|g| &h[slots[i + g] * hd..(slots[i + g] + 1) * hd]);
                affine_multi::<G, B>(&mut gates[..G * w], w, &self.w_hh_t, &xs);
            }
            for g in 0..G {
                let s = slots[i + g];
                cell(&gates[g * w..(g + 1) * w], &mut h[s * hd..(s + 1) * hd], &mut c[s * hd..(s + 1) * hd]);
                logits[(i + g) * out..(i + g + 1) * out].copy_from_slice(&self.head_b);
            }
            let xs: [&[f32]; G] = std::array::from_fn(|g| &h[slots[i + g] * hd..(slots[i + g] + 1) * hd]);
            affine_multi::<G, B>(&mut logits[i * out..(i + G) * out], out, &self.head_w_t, &xs);
            i += G;
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn step_avx512(&self, token: usize, h: &mut [f32], c: &mut [f32], gates: &mut [f32], logits: &mut [f32]) {
        self.step_blocked::<128>(token, h, c, gates, logits)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn step_avx2(&self, token: usize, h: &mut [f32], c: &mut [f32], gates: &mut [f32], logits: &mut [f32]) {
        self.step_blocked::<64>(token, h, c, gates, logits)
    }

    fn step_portable(&self, token: usize, h: &mut [f32], c: &mut [f32], gates: &mut [f32], logits: &mut [f32]) {
        self.step_blocked::<32>(token, h, c, gates, logits)
    }

    #[inline(always)]
    fn step_blocked<const B: usize>(&self, token: usize, h: &mut [f32], c: &mut [f32], gates: &mut [f32], logits: &mut [f32]) {
        let hd = self.h;
        let (h, c) = (&mut h[..hd], &mut c[..hd]);
        let gates = &mut gates[..4 * hd];
        gates.copy_from_slice(&self.xproj[token * 4 * hd..(token + 1) * 4 * hd]);
        affine::<B>(gates, &self.w_hh_t, h);
        cell(gates, h, c);
        let logits = &mut logits[..self.k + 1];
        logits.copy_from_slice(&self.head_b);
        affine::<B>(logits, &self.head_w_t, h);
    }
}

/// Largest hidden size the grouped kernel keeps its gates on the stack for (larger models
/// step one flow at a time).
const MAX_GROUP_HIDDEN: usize = 4 * 128;

/// The LSTM cell: new `c` and `h` from the pre-activation gates (i, f, g, o).
#[inline(always)]
fn cell(gates: &[f32], h: &mut [f32], c: &mut [f32]) {
    let hd = h.len();
    let (i, rest) = gates.split_at(hd);
    let (f, rest) = rest.split_at(hd);
    let (g, o) = rest.split_at(hd);
    for n in 0..hd {
        let c_new = sigmoid(f[n]) * c[n] + sigmoid(i[n]) * tanh(g[n]);
        c[n] = c_new;
        h[n] = sigmoid(o[n]) * tanh(c_new);
    }
}

/// [`affine`] for `G` inputs at once: `outs` holds `G` rows of `width`, row `g` gets
/// `Σ_n xs[g][n] · m[n]`; each pass over a block of `m` serves all `G`.
#[inline(always)]
fn affine_multi<const G: usize, const B: usize>(outs: &mut [f32], width: usize, m: &[f32], xs: &[&[f32]; G]) {
    let mut start = blocks_multi::<G, B>(outs, width, m, xs, 0);
    start = blocks_multi::<G, 16>(outs, width, m, xs, start);
    start = blocks_multi::<G, 8>(outs, width, m, xs, start);
    blocks_multi::<G, 1>(outs, width, m, xs, start);
}

#[inline(always)]
fn blocks_multi<const G: usize, const B: usize>(outs: &mut [f32], width: usize, m: &[f32], xs: &[&[f32]; G], mut start: usize) -> usize {
    let n_in = xs[0].len();
    while start + B <= width {
        let mut acc = [[0f32; B]; G];
        for g in 0..G {
            acc[g].copy_from_slice(&outs[g * width + start..g * width + start + B]);
        }
        for n in 0..n_in {
            let row = &m[n * width + start..n * width + start + B];
            for g in 0..G {
                let xn = xs[g][n];
                for l in 0..B {
                    acc[g][l] = xn.mul_add(row[l], acc[g][l]);
                }
            }
        }
        for g in 0..G {
            outs[g * width + start..g * width + start + B].copy_from_slice(&acc[g]);
        }
        start += B;
    }
    start
}

/// `out += Σ_n x[n] · m[n]` for the rows `m[n]` (each `out.len()` long) of a row-major
/// matrix. Outputs are taken in blocks of `B` (then 16, 8, 1) whose partial sums stay in
/// registers while `x` is walked: independent add chains hide the adds' latency. Whatever
/// the block, every output is summed in the order of `n`, so all block sizes (and vector
/// widths) give the same bits.
#[inline(always)]
fn affine<const B: usize>(out: &mut [f32], m: &[f32], x: &[f32]) {
    let mut start = blocks::<B>(out, m, x, 0);
    start = blocks::<16>(out, m, x, start);
    start = blocks::<8>(out, m, x, start);
    blocks::<1>(out, m, x, start);
}

#[inline(always)]
fn blocks<const B: usize>(out: &mut [f32], m: &[f32], x: &[f32], mut start: usize) -> usize {
    let width = out.len();
    while start + B <= width {
        let mut acc = [0f32; B];
        acc.copy_from_slice(&out[start..start + B]);
        for (n, &xn) in x.iter().enumerate() {
            let row = &m[n * width + start..n * width + start + B];
            for l in 0..B {
                acc[l] = xn.mul_add(row[l], acc[l]);
            }
        }
        out[start..start + B].copy_from_slice(&acc);
        start += B;
    }
    start
}

/// e^x by range reduction (x = n ln 2 + r, |r| ≤ ln 2 / 2) and a degree-6 polynomial;
/// relative error < 3e-7 over the clamped range. Plain arithmetic, so it vectorises.
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    // n as an integer, read from t's mantissa (no float-to-int conversion: it vectorises)
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((ni + 127) as u32) << 23)
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_approx(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    2.0 / (1.0 + exp_approx(-2.0 * x)) - 1.0
}

/// Samples a token from logits (temperature 1). `weights` is scratch of the same length.
pub fn sample_logits(logits: &[f32], weights: &mut [f32], rng: &mut SplitMix64) -> usize {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights = &mut weights[..logits.len()];
    // the exponentials apart from the sum: this loop vectorises, the sum keeps its order
    for (w, &l) in weights.iter_mut().zip(logits) {
        *w = exp_approx(l - max);
    }
    draw_weighted(weights, rng)
}

/// An index drawn in proportion to `weights` (unnormalised, not all zero).
pub fn draw_weighted(weights: &[f32], rng: &mut SplitMix64) -> usize {
    let total: f32 = weights.iter().fold(0.0, |t, &w| t + w);
    let mut u = rng.next_f64() as f32 * total;
    for (i, w) in weights.iter().enumerate() {
        u -= w;
        if u <= 0.0 {
            return i;
        }
    }
    weights.len() - 1
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

    /// Every vector width gives the same bits (so a seed gives the same traffic anywhere).
    #[test]
    fn every_simd_tier_gives_identical_bits() {
        let shape = LstmShape { k: 12, embed: 8, hidden: 40, layers: 1, window: 8 };
        let mut m = FlowLstm::new(shape, Device::Cpu);
        seeded_init(&mut m.vs, 2);
        let base = LeanLstm::from_tch(&m).unwrap();
        let run = |simd: Simd| -> Vec<u32> {
            let l = LeanLstm { simd, ..base.clone() };
            let (mut h, mut c, mut g, mut lo) = (vec![0f32; 40], vec![0f32; 40], vec![0f32; 160], vec![0f32; 13]);
            let mut bits = Vec::new();
            for t in 0..200 {
                l.step(t % 14, &mut h, &mut c, &mut g, &mut lo);
                bits.extend(lo.iter().chain(&h).map(|x| x.to_bits()));
            }
            bits
        };
        let reference = run(Simd::Baseline);
        let mut tiers = vec![];
        #[cfg(target_arch = "x86_64")]
        {
            let fma = std::arch::is_x86_feature_detected!("fma");
            if fma && std::arch::is_x86_feature_detected!("avx2") {
                tiers.push(Simd::Avx2);
            }
            if fma && std::arch::is_x86_feature_detected!("avx512f") {
                tiers.push(Simd::Avx512);
            }
        }
        for t in tiers.iter().copied() {
            assert!(run(t) == reference, "{t:?} differs from the baseline");
        }
        // and stepping 7 flows at once gives each flow the bits of stepping it alone
        for simd in std::iter::once(Simd::Baseline).chain(tiers) {
            let l = LeanLstm { simd, ..base.clone() };
            let slots = [5usize, 0, 3, 6, 1, 2, 4];
            let (mut h, mut c, mut lo) = (vec![0f32; 7 * 40], vec![0f32; 7 * 40], vec![0f32; 7 * 13]);
            let (mut h1, mut c1, mut g1, mut lo1) = (vec![vec![0f32; 40]; 7], vec![vec![0f32; 40]; 7], vec![0f32; 160], vec![0f32; 13]);
            for t in 0..30 {
                let tokens: Vec<usize> = (0..7).map(|i| (t * 3 + i) % 14).collect();
                l.step_many(&tokens, &slots, &mut h, &mut c, &mut lo);
                for i in 0..7 {
                    l.step(tokens[i], &mut h1[i], &mut c1[i], &mut g1, &mut lo1);
                    assert!(lo[i * 13..(i + 1) * 13] == lo1[..], "{simd:?}: flow {i} step {t}");
                    assert!(h[slots[i] * 40..(slots[i] + 1) * 40] == h1[i][..]);
                }
            }
        }
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
