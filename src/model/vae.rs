//! Packet level, part 1: a variational autoencoder over standardised packet vectors.
//!
//! Encoder `D → H → H → (μ, log σ²)` of dimension `latent`, decoder `latent → H → H → D`,
//! ReLU between layers. Loss = mean squared reconstruction error (summed over features) +
//! β·KL(q(z|x) ‖ N(0, I)). Trained with Adam on mini-batches whose order comes from the seeded
//! RNG, with early stopping on a held-out set. The GMM over its latent means lives in
//! [`super::gmm`]; sampling a component and decoding gives a packet vector.

use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::rng::SplitMix64;

/// Shape of the VAE (stored in the manifest).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VaeShape {
    pub input: i64,
    pub hidden: i64,
    pub latent: i64,
}

impl VaeShape {
    /// Number of weights and biases of a VAE of this shape (`None` when a dimension is below 1
    /// or the count overflows): what [`Vae::new`] allocates, known before it does.
    pub fn parameters(&self) -> Option<u64> {
        let (d, h, l) = (dim(self.input)?, dim(self.hidden)?, dim(self.latent)?);
        let linear = |i: u64, o: u64| i.checked_mul(o)?.checked_add(o);
        // enc1 d→h, enc2 h→h, mu and logvar h→l, dec1 l→h, dec2 h→h, dec3 h→d
        [linear(d, h)?, linear(h, h)?, linear(h, l)?, linear(h, l)?, linear(l, h)?, linear(h, h)?, linear(h, d)?]
            .into_iter()
            .try_fold(0u64, u64::checked_add)
    }
}

/// A layer dimension as a count: `None` below 1.
pub(crate) fn dim(v: i64) -> Option<u64> {
    u64::try_from(v).ok().filter(|&v| v >= 1)
}

pub struct Vae {
    pub vs: nn::VarStore,
    pub shape: VaeShape,
    enc: nn::Sequential,
    mu: nn::Linear,
    logvar: nn::Linear,
    dec: nn::Sequential,
}

/// Training settings of one level.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    /// Stop when the validation loss has not improved for this many epochs.
    pub patience: usize,
    pub seed: u64,
    /// Rows (VAE) or windows (LSTM) visited per epoch at most: each epoch takes a fresh seeded
    /// sample of this size, so an epoch's cost does not grow with the capture.
    pub max_per_epoch: usize,
    /// Optimiser steps per epoch at least (within `max_per_epoch`): a small capture's epoch
    /// goes over its rows several times, each time in a fresh seeded order, so that a few
    /// hundred packets still get a few hundred steps in a short training.
    pub min_batches: usize,
}

/// Default of [`TrainSettings::min_batches`].
pub const MIN_BATCHES: usize = 32;

/// Loss per epoch.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct LossCurve {
    pub train: Vec<f64>,
    pub validation: Vec<f64>,
    /// Epoch whose weights were kept (lowest validation loss).
    pub best_epoch: usize,
}

/// Early stopping on a held-out loss: records each epoch in a [`LossCurve`], keeps a copy of
/// the best epoch's weights, and says when `patience` epochs have passed without improvement.
pub struct EarlyStopping {
    best: f64,
    since_best: usize,
    patience: usize,
    weights: Option<Vec<(String, Tensor)>>,
}

impl EarlyStopping {
    pub fn new(patience: usize) -> EarlyStopping {
        EarlyStopping { best: f64::INFINITY, since_best: 0, patience, weights: None }
    }

    /// Records an epoch; true when training should stop.
    pub fn record(&mut self, epoch: usize, train: f64, validation: f64, vs: &nn::VarStore, curve: &mut LossCurve) -> bool {
        curve.train.push(train);
        curve.validation.push(validation);
        if validation < self.best - 1e-6 {
            self.best = validation;
            self.since_best = 0;
            curve.best_epoch = epoch;
            self.weights = Some(snapshot(vs));
            false
        } else {
            self.since_best += 1;
            self.since_best >= self.patience
        }
    }

    /// Puts the best epoch's weights back.
    pub fn restore_best(self, vs: &mut nn::VarStore) {
        if let Some(w) = self.weights {
            restore(vs, &w);
        }
    }
}

impl Vae {
    pub fn new(shape: VaeShape, device: Device) -> Vae {
        let vs = nn::VarStore::new(device);
        let p = vs.root();
        let (d, h, l) = (shape.input, shape.hidden, shape.latent);
        let enc = nn::seq()
            .add(nn::linear(&p / "enc1", d, h, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(&p / "enc2", h, h, Default::default()))
            .add_fn(|x| x.relu());
        let mu = nn::linear(&p / "mu", h, l, Default::default());
        let logvar = nn::linear(&p / "logvar", h, l, Default::default());
        let dec = nn::seq()
            .add(nn::linear(&p / "dec1", l, h, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(&p / "dec2", h, h, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(&p / "dec3", h, d, Default::default()));
        Vae { vs, shape, enc, mu, logvar, dec }
    }

    pub fn encode(&self, x: &Tensor) -> (Tensor, Tensor) {
        let h = self.enc.forward(x);
        (self.mu.forward(&h), self.logvar.forward(&h).clamp(-12.0, 12.0))
    }

    pub fn decode(&self, z: &Tensor) -> Tensor {
        self.dec.forward(z)
    }

    /// (total, reconstruction, KL) averaged over the batch; the reparameterisation noise comes
    /// from the project RNG (not libtorch's global one), so training is reproducible.
    fn loss(&self, x: &Tensor, beta: f64, rng: &mut SplitMix64) -> (Tensor, Tensor, Tensor) {
        let (mu, logvar) = self.encode(x);
        let eps = normals(mu.size()[0] * mu.size()[1], rng).view([mu.size()[0], mu.size()[1]]).to_device(mu.device());
        let z = &mu + (&logvar * 0.5).exp() * eps;
        let recon = (self.decode(&z) - x).square().sum_dim_intlist([1i64].as_slice(), false, Kind::Float).mean(Kind::Float);
        let kl = ((&logvar.exp() + mu.square() - 1.0 - &logvar) * 0.5)
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
            .mean(Kind::Float);
        (&recon + &kl * beta, recon, kl)
    }

    /// Trains on standardised `train`/`val` rows ([N, D], float, on the VAE's device).
    pub fn train(&mut self, train: &Tensor, val: &Tensor, beta: f64, s: &TrainSettings, mut on_epoch: impl FnMut(usize, f64, f64)) -> LossCurve {
        seeded_init(&mut self.vs, s.seed);
        let mut noise = SplitMix64::new(s.seed ^ 0x6e6f_6973_65);
        let mut opt = nn::Adam::default().build(&self.vs, s.lr).expect("Adam over a VarStore");
        let n = train.size()[0];
        let mut rng = SplitMix64::new(s.seed ^ 0x7661_65);
        let mut curve = LossCurve::default();
        let mut stop = EarlyStopping::new(s.patience);
        for epoch in 0..s.epochs {
            let tl = epoch_batches(n, s, &mut rng, train.device(), |idx| {
                let (loss, _, _) = self.loss(&train.index_select(0, idx), beta, &mut noise);
                opt.backward_step(&loss);
                loss.double_value(&[])
            });
            let mut vnoise = SplitMix64::new(s.seed ^ 0x76_616c);
            let vl = tch::no_grad(|| eval_in_chunks(val, |x| self.loss(x, beta, &mut vnoise).0.double_value(&[])));
            on_epoch(epoch, tl, vl);
            if stop.record(epoch, tl, vl, &self.vs, &mut curve) {
                break;
            }
        }
        stop.restore_best(&mut self.vs);
        curve
    }

    /// Latent means of `x` (standardised rows), computed in chunks.
    pub fn latent_means(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let n = x.size()[0];
            let mut parts = Vec::new();
            let mut s = 0;
            while s < n {
                let e = (s + 65_536).min(n);
                parts.push(self.encode(&x.narrow(0, s, e - s)).0);
                s = e;
            }
            if parts.is_empty() {
                Tensor::zeros([0, self.shape.latent], (Kind::Float, x.device()))
            } else {
                Tensor::cat(&parts, 0)
            }
        })
    }
}

/// Mean of `f` over chunks of at most 65 536 rows, weighted by rows.
fn eval_in_chunks(x: &Tensor, mut f: impl FnMut(&Tensor) -> f64) -> f64 {
    let n = x.size()[0];
    if n == 0 {
        return f64::NAN;
    }
    let (mut s, mut acc) = (0, 0.0);
    while s < n {
        let e = (s + 65_536).min(n);
        acc += f(&x.narrow(0, s, e - s)) * (e - s) as f64;
        s = e;
    }
    acc / n as f64
}

/// `n` standard normal draws (Box–Muller) from the project RNG.
pub fn normals(n: i64, rng: &mut SplitMix64) -> Tensor {
    let mut v = Vec::with_capacity(n as usize);
    while (v.len() as i64) < n {
        let u1 = rng.next_f64().max(f64::MIN_POSITIVE);
        let u2 = rng.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        v.push((r * (std::f64::consts::TAU * u2).cos()) as f32);
        v.push((r * (std::f64::consts::TAU * u2).sin()) as f32);
    }
    v.truncate(n as usize);
    Tensor::from_slice(&v)
}

/// Re-initialises every variable from the project RNG (PyTorch's default scheme: weights and
/// biases uniform in ±1/√fan_in, embeddings standard normal), in name order, so a model's
/// starting point depends on the seed only, not on libtorch's global RNG or other threads.
pub fn seeded_init(vs: &mut nn::VarStore, seed: u64) {
    let mut rng = SplitMix64::new(seed ^ 0x696e_6974);
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let fan_in_of = |name: &str, vars: &[(String, Tensor)]| -> i64 {
        // a bias takes the fan-in of its layer's weight
        let w = name.replace("bias", "weight");
        vars.iter().find(|(n, _)| *n == w).and_then(|(_, t)| t.size().get(1).copied()).unwrap_or(1)
    };
    tch::no_grad(|| {
        for (name, var) in &vars {
            let n: i64 = var.size().iter().product();
            let values = if name.contains("embed") {
                normals(n, &mut rng)
            } else {
                let fan_in = if var.dim() >= 2 { var.size()[1] } else { fan_in_of(name, &vars) };
                let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                let v: Vec<f32> = (0..n).map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32).collect();
                Tensor::from_slice(&v)
            };
            let mut v = var.shallow_clone();
            v.copy_(&values.view(var.size().as_slice()).to_device(var.device()).to_kind(var.kind()));
        }
    });
}

/// One epoch of mini-batch steps over `n` rows: a fresh seeded permutation, at most
/// `s.max_per_epoch` rows, batches of `s.batch`; `step` trains on the row indices of a batch and
/// returns its loss. Returns the mean batch loss. Shared by every level's training loop.
pub fn epoch_batches(n: i64, s: &TrainSettings, rng: &mut SplitMix64, device: Device, mut step: impl FnMut(&Tensor) -> f64) -> f64 {
    let max = i64::try_from(s.max_per_epoch).unwrap_or(i64::MAX);
    let batch = s.batch.max(1) as i64;
    // rows to visit: the data once (or max_per_epoch), raised to min_batches full batches
    let want = n.min(max).max(i64::try_from(s.min_batches).unwrap_or(0).saturating_mul(batch).min(max));
    if n <= 0 {
        return 0.0;
    }
    let (mut total, mut batches, mut done) = (0.0, 0u32, 0i64);
    let mut perm = permutation(n as usize, rng, device);
    let mut start = 0i64;
    while done < want {
        if start >= n {
            // the data again, in a new order
            perm = permutation(n as usize, rng, device);
            start = 0;
        }
        let len = batch.min(want - done).min(n - start);
        total += step(&perm.narrow(0, start, len));
        batches += 1;
        start += len;
        done += len;
    }
    total / f64::from(batches.max(1))
}

/// A seeded permutation of 0..n as an int64 tensor.
pub fn permutation(n: usize, rng: &mut SplitMix64, device: Device) -> Tensor {
    let mut v: Vec<i64> = (0..n as i64).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    Tensor::from_slice(&v).to_device(device)
}

/// A copy of every variable (for keeping the best epoch).
pub fn snapshot(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    vs.variables().into_iter().map(|(k, v)| (k, v.detach().copy())).collect()
}

pub fn restore(vs: &mut nn::VarStore, w: &[(String, Tensor)]) {
    let vars = vs.variables();
    tch::no_grad(|| {
        for (k, t) in w {
            if let Some(v) = vars.get(k) {
                let mut v = v.shallow_clone();
                v.copy_(t);
            }
        }
    });
}

#[cfg(test)]
mod epoch_tests {
    use super::*;

    fn visits(n: i64, batch: usize, max_per_epoch: usize, min_batches: usize) -> (Vec<usize>, Vec<i64>) {
        let s = TrainSettings { epochs: 1, batch, lr: 0.0, patience: 1, seed: 1, max_per_epoch, min_batches };
        let mut rng = SplitMix64::new(4);
        let (mut sizes, mut seen) = (Vec::new(), vec![0i64; n as usize]);
        epoch_batches(n, &s, &mut rng, Device::Cpu, |idx| {
            let v = Vec::<i64>::try_from(idx).unwrap();
            sizes.push(v.len());
            v.iter().for_each(|&i| seen[i as usize] += 1);
            0.0
        });
        (sizes, seen)
    }

    #[test]
    fn a_small_set_is_visited_again_up_to_the_minimum_of_batches() {
        let (sizes, seen) = visits(10, 4, usize::MAX, 8);
        assert_eq!(sizes.iter().sum::<usize>(), 32, "8 full batches: {sizes:?}");
        assert!(sizes.iter().all(|&s| s <= 4));
        // every row 3 or 4 times (each pass is a full permutation)
        assert!(seen.iter().all(|&c| c == 3 || c == 4), "{seen:?}");
        // a large set: one pass, as before the minimum
        let (sizes, seen) = visits(1000, 64, usize::MAX, 8);
        assert_eq!((sizes.len(), sizes.iter().sum::<usize>()), (16, 1000));
        assert!(seen.iter().all(|&c| c == 1));
        // the per-epoch cap bounds both
        let (sizes, _) = visits(10, 4, 12, 8);
        assert_eq!(sizes.iter().sum::<usize>(), 12);
        assert_eq!(visits(0, 4, usize::MAX, 8).0.len(), 0);
    }
}
