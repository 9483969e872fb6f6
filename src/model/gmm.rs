//! Gaussian mixture models with full covariance: fitting (k-means++ then EM, K chosen by BIC),
//! densities, sampling, and the tensors a GMM is saved as.
//!
//! This module owns [`Gmm`] and its fit. It is used on the packet VAE's latent space and on the
//! per-flow aggregate features; it does not know what the dimensions mean, does not scale data
//! and does not read or write files (see [`Gmm::named_tensors`] / [`Gmm::from_named`]).
//!
//! All parameters are `f64` on the CPU. Every random choice (subsample, k-means++ seeds, empty
//! component re-seeding, sampling) comes from [`SplitMix64`], so a fit and a sample are the same
//! run to run for the same data and seed. Densities work in chunks of points so that memory stays
//! bounded (about 32 MB per intermediate) whatever N is.

use std::f64::consts::{PI, TAU};

use tch::{Device, Kind, Tensor};

use crate::rng::SplitMix64;

/// Upper bound on the elements of one `[chunk, K·D]` or `[chunk, D·D]` intermediate (32 MB of f64).
const CHUNK_ELEMS: i64 = 1 << 22;
/// A component with less total responsibility than this is treated as empty and re-seeded.
const MIN_COMPONENT_MASS: f64 = 1.0;
/// Weights must sum to 1 within this when a GMM is built from tensors.
const WEIGHT_SUM_TOL: f64 = 1e-6;
/// Hard-assignment (Lloyd) rounds after k-means++ seeding, before EM.
const LLOYD_ROUNDS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum GmmError {
    #[error("GMM fit needs at least {needed} points, got {points}")]
    TooFewPoints { points: usize, needed: usize },
    #[error("bad GMM fit options: {reason}")]
    InvalidOptions { reason: String },
    #[error("tensor `{name}`: expected shape {expected}, got {got:?}")]
    BadShape { name: String, expected: String, got: Vec<i64> },
    #[error("tensor `{name}` is missing")]
    Missing { name: String },
    #[error("`{name}` holds NaN or infinite values")]
    NonFinite { name: String },
    #[error("weights `{name}` must be >= 0 and sum to 1 (sum {sum})")]
    BadWeights { name: String, sum: f64 },
    #[error("covariance `{name}` of component {component} is not symmetric")]
    NotSymmetric { name: String, component: usize },
    #[error("covariance `{name}` of component {component} is not positive definite")]
    NotPositiveDefinite { name: String, component: usize },
}

/// A Gaussian mixture. The public tensors are `Kind::Double` on the CPU; treat them as read-only
/// (the Cholesky factors used by the density and the sampler are cached at construction).
#[derive(Debug)]
pub struct Gmm {
    /// `[K]`, sums to 1.
    pub weights: Tensor,
    /// `[K, D]`.
    pub means: Tensor,
    /// `[K, D, D]`, symmetric positive definite.
    pub covs: Tensor,
    dens: Density,
    /// Cumulative weights, for drawing a component.
    cum_weights: Vec<f64>,
    /// Means, `K*D` row-major.
    mean_rows: Vec<f64>,
    /// Lower Cholesky factors of the covariances, `K*D*D` row-major.
    chol: Vec<f64>,
}

#[derive(Clone, Debug)]
pub struct GmmFitOptions {
    /// Smallest K tried (>= 1).
    pub k_min: usize,
    /// Largest K tried (values above the number of points are skipped).
    pub k_max: usize,
    /// EM iterations at most, per run.
    pub max_iter: usize,
    /// EM stops when the mean log-likelihood per point changes by less than this.
    pub tol: f64,
    /// Added to every covariance diagonal.
    pub reg_covar: f64,
    pub seed: u64,
    /// The BIC search runs on a seeded subsample of at most this many points (but at least
    /// `k_min`); the chosen K is then refitted on all points, starting from the subsample's fit.
    pub max_points_for_selection: usize,
    /// EM runs from different k-means++ seeds per K in the search; the best likelihood wins.
    pub restarts: usize,
    /// The final refit runs on a seeded subsample of at most this many points (EM holds an
    /// `N × K` responsibility matrix, so this bounds its memory on large captures).
    pub max_points_for_fit: usize,
}

impl Default for GmmFitOptions {
    fn default() -> Self {
        GmmFitOptions {
            k_min: 1,
            k_max: 16,
            max_iter: 200,
            tol: 1e-4,
            reg_covar: 1e-6,
            seed: 0,
            max_points_for_selection: 50_000,
            restarts: 2,
            max_points_for_fit: 1_000_000,
        }
    }
}

#[derive(Debug)]
pub struct GmmFit {
    pub gmm: Gmm,
    pub k: usize,
    /// `(K, BIC)` for every K tried, computed on the selection subsample.
    pub bic: Vec<(usize, f64)>,
    /// Mean log-likelihood per point of the final model on all points.
    pub log_likelihood: f64,
    /// EM iterations of the final fit.
    pub iterations: usize,
}

fn cpu_f64(t: &Tensor) -> Tensor {
    t.to_device(Device::Cpu).to_kind(Kind::Double).contiguous()
}

/// A tensor's values as a flat `Vec<f64>` (on the CPU, in double precision).
pub(super) fn to_vec(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&cpu_f64(t).view([-1])).expect("flat f64 tensor converts to Vec")
}

fn all_finite(t: &Tensor) -> bool {
    t.isfinite().all().int64_value(&[]) != 0
}

/// Rows per chunk so that `[rows, K·D]` and `[rows, D·D]` intermediates stay under [`CHUNK_ELEMS`].
fn chunk_rows(k: i64, d: i64) -> i64 {
    (CHUNK_ELEMS / (k.max(d) * d).max(1)).max(1)
}

/// Per-component constants of the log density: `log w + log N(x | mu, S)` for all points at once.
#[derive(Debug)]
struct Density {
    log_w: Tensor,
    /// `[D, K·D]`: the `L_k^{-T}` side by side, so that one GEMM whitens a chunk for all components
    /// (`||L^{-1}(x - mu)||² = ||x L^{-T} - mu L^{-T}||²` for row vectors).
    whiten: Tensor,
    /// `[K·D]`: the `mu_k L_k^{-T}` side by side.
    whitened_means: Tensor,
    /// `-0.5 D ln 2π - log det L`.
    log_norm: Tensor,
    /// Lower Cholesky factors.
    chol: Tensor,
}

impl Density {
    /// Fails with the first component whose covariance has no Cholesky factor.
    fn new(weights: &Tensor, means: &Tensor, covs: &Tensor) -> Result<Density, usize> {
        let (k, d) = (covs.size()[0], covs.size()[1]);
        let (chol, info) = covs.linalg_cholesky_ex(false, false);
        if let Some(bad) = to_vec(&info).iter().position(|&i| i != 0.0) {
            return Err(bad);
        }
        let eye = Tensor::eye(d, (Kind::Double, Device::Cpu)).expand([k, d, d], false);
        let prec_t = chol.linalg_solve_triangular(&eye, false, true, false).transpose(1, 2); // [K, D, D]
        let whitened_means = means.unsqueeze(1).matmul(&prec_t).view([k * d]);
        let whiten = prec_t.permute([1, 0, 2]).reshape([d, k * d]);
        let log_det_l = chol.diagonal(0, -2, -1).log().sum_dim_intlist(-1, false, Kind::Double);
        let log_norm = -log_det_l - 0.5 * d as f64 * (2.0 * PI).ln();
        Ok(Density { log_w: weights.log(), whiten, whitened_means, log_norm, chol })
    }

    /// `[n, K]`: `log w_k + log N(x_i | mu_k, S_k)` for one chunk of points `[n, D]`.
    fn weighted_log_probs(&self, x: &Tensor) -> Tensor {
        let (n, k) = (x.size()[0], self.log_w.size()[0]);
        let y = x.matmul(&self.whiten) - &self.whitened_means; // [n, K·D]
        let maha = y.square().view([n, k, -1]).sum_dim_intlist(-1, false, Kind::Double); // [n, K]
        maha * -0.5 + &self.log_norm + &self.log_w
    }

    /// Applies `f` to `weighted_log_probs` of each chunk of `x` and concatenates the results.
    fn map_chunks(&self, x: &Tensor, f: impl Fn(Tensor) -> Tensor) -> Tensor {
        let (n, k, d) = (x.size()[0], self.log_w.size()[0], x.size()[1]);
        let step = chunk_rows(k, d);
        let parts: Vec<Tensor> = (0..n)
            .step_by(step as usize)
            .map(|s| f(self.weighted_log_probs(&x.narrow(0, s, step.min(n - s)))))
            .collect();
        if parts.is_empty() {
            return f(Tensor::zeros([0, k], (Kind::Double, Device::Cpu)));
        }
        Tensor::cat(&parts, 0)
    }
}

/// Sufficient statistics of one E-step (or one hard assignment).
struct Stats {
    nk: Tensor,
    sx: Tensor,
    sxx: Tensor,
    ll_sum: f64,
}

impl Stats {
    fn new(k: i64, d: i64) -> Stats {
        let opts = (Kind::Double, Device::Cpu);
        Stats { nk: Tensor::zeros([k], opts), sx: Tensor::zeros([k, d], opts), sxx: Tensor::zeros([k, d, d], opts), ll_sum: 0.0 }
    }

    /// Adds points `x [n, D]` with responsibilities `resp [n, K]`.
    fn add(&mut self, x: &Tensor, resp: &Tensor) {
        let (n, d) = (x.size()[0], x.size()[1]);
        let rt = resp.transpose(0, 1); // [K, n]
        self.nk += rt.sum_dim_intlist(-1, false, Kind::Double);
        self.sx += rt.matmul(x);
        let outer = (x.unsqueeze(2) * x.unsqueeze(1)).view([n, d * d]);
        self.sxx += rt.matmul(&outer).view([-1, d, d]);
    }
}

/// Working parameters during a fit, on data centred at the origin.
struct Params {
    weights: Tensor,
    means: Tensor,
    covs: Tensor,
    dens: Density,
}

/// What EM needs besides the parameters: the data and what re-seeds an empty component.
struct Data<'a> {
    x: &'a Tensor,
    n: i64,
    d: i64,
    global_cov: Tensor,
    reg: f64,
}

impl<'a> Data<'a> {
    fn new(x: &'a Tensor, reg: f64) -> Data<'a> {
        let (n, d) = (x.size()[0], x.size()[1]);
        let mean = x.mean_dim(0, true, Kind::Double);
        let xc = x - &mean;
        let eye = Tensor::eye(d, (Kind::Double, Device::Cpu));
        let global_cov = xc.transpose(0, 1).matmul(&xc) / n as f64 + eye * reg.max(1e-12);
        Data { x, n, d, global_cov, reg }
    }

    fn chunks(&self, k: i64) -> impl Iterator<Item = Tensor> + '_ {
        let step = chunk_rows(k, self.d);
        (0..self.n).step_by(step as usize).map(move |s| self.x.narrow(0, s, step.min(self.n - s)))
    }

    /// E-step: statistics under `p` and the total log-likelihood.
    fn e_step(&self, p: &Params) -> Stats {
        let k = p.weights.size()[0];
        let mut st = Stats::new(k, self.d);
        for c in self.chunks(k) {
            let wlp = p.dens.weighted_log_probs(&c);
            let lse = wlp.logsumexp([1], true);
            st.ll_sum += lse.sum(Kind::Double).double_value(&[]);
            st.add(&c, &(wlp - lse).exp());
        }
        st
    }

    /// Total log-likelihood of the data under `dens`.
    fn log_lik_sum(&self, dens: &Density) -> f64 {
        let k = dens.log_w.size()[0];
        self.chunks(k)
            .map(|c| dens.weighted_log_probs(&c).logsumexp([1], false).sum(Kind::Double).double_value(&[]))
            .sum()
    }

    /// M-step: parameters from statistics. A component that is empty, or whose covariance has no
    /// Cholesky factor, restarts at a random data point with the covariance of the whole data.
    fn m_step(&self, st: &Stats, rng: &mut SplitMix64) -> Result<Params, GmmError> {
        let (k, d) = (st.nk.size()[0], self.d);
        let nk = st.nk.clamp_min(1e-300);
        let means = &st.sx / nk.unsqueeze(1);
        let eye = Tensor::eye(d, (Kind::Double, Device::Cpu));
        let covs = &st.sxx / nk.view([k, 1, 1]) - means.unsqueeze(2) * means.unsqueeze(1) + eye * self.reg;
        let covs = (&covs + covs.transpose(1, 2)) * 0.5;
        let mut weights = &st.nk / self.n as f64;
        let mass = to_vec(&st.nk);
        let mut reseed: Vec<usize> = (0..k as usize).filter(|&c| mass[c] < MIN_COMPONENT_MASS).collect();
        for _ in 0..=k {
            if !reseed.is_empty() {
                for &c in &reseed {
                    let row = rng.below(self.n as u64) as i64;
                    means.get(c as i64).copy_(&self.x.get(row));
                    covs.get(c as i64).copy_(&self.global_cov);
                    let _ = weights.get(c as i64).fill_(1.0 / k as f64);
                }
                weights = &weights / weights.sum(Kind::Double);
                reseed.clear();
            }
            match Density::new(&weights, &means, &covs) {
                Ok(dens) => return Ok(Params { weights, means, covs, dens }),
                Err(c) => reseed.push(c),
            }
        }
        Err(GmmError::NotPositiveDefinite { name: "fitted covariance".into(), component: reseed[0] })
    }

    /// Hard-assignment statistics: every point belongs to its nearest centre.
    fn hard_stats(&self, centers: &Tensor) -> Stats {
        let k = centers.size()[0];
        let c_sq = centers.square().sum_dim_intlist(1, false, Kind::Double);
        let mut st = Stats::new(k, self.d);
        for c in self.chunks(k) {
            let dist = c.matmul(&centers.transpose(0, 1)) * -2.0 + &c_sq;
            st.add(&c, &dist.argmin(1, false).one_hot(k).to_kind(Kind::Double));
        }
        st
    }

    /// Greedy k-means++ seeding (each new seed is the best of `2 + ln K` draws by squared
    /// distance), a few Lloyd rounds, then one M-step from the hard assignment.
    fn init_kmeans(&self, k: usize, rng: &mut SplitMix64) -> Result<Params, GmmError> {
        let x = self.x;
        let sq_dist = |c: &Tensor| (x - c).square().sum_dim_intlist(1, false, Kind::Double);
        let first = x.get(rng.below(self.n as u64) as i64);
        let mut d2 = sq_dist(&first);
        let mut seeds = vec![first];
        let trials = 2 + (k as f64).ln() as usize;
        while seeds.len() < k {
            let cum = d2.cumsum(0, Kind::Double);
            let total = cum.double_value(&[self.n - 1]);
            let mut best: Option<(f64, Tensor, Tensor)> = None;
            for _ in 0..trials {
                let row = if total > 0.0 && total.is_finite() {
                    cum.lt(rng.next_f64() * total).sum(Kind::Int64).int64_value(&[]).min(self.n - 1)
                } else {
                    rng.below(self.n as u64) as i64
                };
                let c = x.get(row);
                let next = d2.minimum(&sq_dist(&c));
                let potential = next.sum(Kind::Double).double_value(&[]);
                if best.as_ref().is_none_or(|b| potential < b.0) {
                    best = Some((potential, c, next));
                }
            }
            let (_, c, next) = best.expect("at least two trials");
            d2 = next;
            seeds.push(c);
        }
        let mut centers = Tensor::stack(&seeds, 0);
        let mut st = self.hard_stats(&centers);
        for _ in 0..LLOYD_ROUNDS {
            let filled = st.nk.gt(0.0).unsqueeze(1);
            let next = (&st.sx / st.nk.clamp_min(1.0).unsqueeze(1)).where_self(&filled, &centers);
            if next.equal(&centers) {
                break;
            }
            centers = next;
            st = self.hard_stats(&centers);
        }
        self.m_step(&st, rng)
    }

    /// EM from `p` until the mean log-likelihood settles; returns the parameters, their mean
    /// log-likelihood and the number of iterations.
    fn em(&self, mut p: Params, opts: &GmmFitOptions, rng: &mut SplitMix64) -> Result<(Params, f64, usize), GmmError> {
        let mut prev = f64::NEG_INFINITY;
        let mut iterations = 0;
        for it in 1..=opts.max_iter {
            let st = self.e_step(&p);
            let ll = st.ll_sum / self.n as f64;
            if !ll.is_finite() {
                return Err(GmmError::NonFinite { name: format!("log-likelihood at EM iteration {it}") });
            }
            p = self.m_step(&st, rng)?;
            iterations = it;
            if (ll - prev).abs() < opts.tol {
                break;
            }
            prev = ll;
        }
        let ll = self.log_lik_sum(&p.dens) / self.n as f64;
        if !ll.is_finite() {
            return Err(GmmError::NonFinite { name: "log-likelihood of the fitted model".into() });
        }
        Ok((p, ll, iterations))
    }
}

/// `-2 LL + p ln N` with `p = K-1 + K·D + K·D(D+1)/2` free parameters.
fn bic(ll_total: f64, k: usize, d: usize, n: usize) -> f64 {
    let params = (k - 1) + k * d + k * d * (d + 1) / 2;
    -2.0 * ll_total + params as f64 * (n as f64).ln()
}

/// `m` distinct row indices out of `n`, seeded (partial Fisher–Yates), in increasing order.
fn subsample(n: usize, m: usize, rng: &mut SplitMix64) -> Tensor {
    let mut idx: Vec<i64> = (0..n as i64).collect();
    for i in 0..m {
        let j = i + rng.below((n - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx.truncate(m);
    idx.sort_unstable();
    Tensor::from_slice(&idx)
}

/// Fills `out` with independent standard normals (Box–Muller, two per pair of uniforms).
fn standard_normals(rng: &mut SplitMix64, out: &mut [f64]) {
    for pair in out.chunks_mut(2) {
        let r = (-2.0 * (1.0 - rng.next_f64()).ln()).sqrt();
        let (s, c) = (TAU * rng.next_f64()).sin_cos();
        pair[0] = r * c;
        if let Some(second) = pair.get_mut(1) {
            *second = r * s;
        }
    }
}

impl GmmFitOptions {
    fn check(&self) -> Result<(), GmmError> {
        let reason = if self.k_min == 0 || self.k_min > self.k_max {
            format!("need 1 <= k_min <= k_max, got {}..={}", self.k_min, self.k_max)
        } else if self.max_iter == 0 {
            "max_iter must be at least 1".into()
        } else if !(self.tol >= 0.0 && self.tol.is_finite()) {
            format!("tol must be a finite number >= 0, got {}", self.tol)
        } else if !(self.reg_covar >= 0.0 && self.reg_covar.is_finite()) {
            format!("reg_covar must be a finite number >= 0, got {}", self.reg_covar)
        } else if self.max_points_for_selection < 2 {
            "max_points_for_selection must be at least 2".into()
        } else {
            return Ok(());
        };
        Err(GmmError::InvalidOptions { reason })
    }
}

impl Gmm {
    /// Fits a GMM to the rows of `x` (`[N, D]`, any float kind): for each K in
    /// `k_min..=k_max`, k-means++ then EM (best of `restarts`) on a subsample of at most
    /// `max_points_for_selection` rows; the K with the lowest BIC is then refitted on all rows
    /// (at most `max_points_for_fit` of them, a seeded subsample).
    pub fn fit(x: &Tensor, opts: &GmmFitOptions) -> Result<GmmFit, GmmError> {
        opts.check()?;
        let size = x.size();
        if size.len() != 2 || size[1] < 1 {
            return Err(GmmError::BadShape { name: "x".into(), expected: "[N, D] with D >= 1".into(), got: size });
        }
        let (n, d) = (size[0] as usize, size[1] as usize);
        let needed = opts.k_min.max(2);
        if n < needed {
            return Err(GmmError::TooFewPoints { points: n, needed });
        }
        let x = cpu_f64(x);
        if !all_finite(&x) {
            return Err(GmmError::NonFinite { name: "x".into() });
        }
        // Fit on centred data so that second moments do not cancel badly.
        let shift = x.mean_dim(0, true, Kind::Double);
        let xc = &x - &shift;
        let mut rng = SplitMix64::new(opts.seed);
        let sel_points = opts.max_points_for_selection.max(needed);
        let sel = if n > sel_points {
            xc.index_select(0, &subsample(n, sel_points, &mut rng))
        } else {
            xc.shallow_clone()
        };
        let sel_data = Data::new(&sel, opts.reg_covar);
        let n_sel = sel_data.n as usize;

        let mut bics = Vec::new();
        let mut best: Option<(f64, usize, (Params, f64, usize))> = None;
        for k in opts.k_min..=opts.k_max.min(n_sel) {
            let mut best_run: Option<(Params, f64, usize)> = None;
            for restart in 0..opts.restarts.max(1) {
                let mut rng = SplitMix64::for_item(opts.seed, ((k as u64) << 16) | restart as u64);
                let init = sel_data.init_kmeans(k, &mut rng)?;
                let run = sel_data.em(init, opts, &mut rng)?;
                if best_run.as_ref().is_none_or(|b| run.1 > b.1) {
                    best_run = Some(run);
                }
            }
            let run = best_run.expect("at least one restart");
            let b = bic(run.1 * n_sel as f64, k, d, n_sel);
            bics.push((k, b));
            if best.as_ref().is_none_or(|(best_bic, ..)| b < *best_bic) {
                best = Some((b, k, run));
            }
        }
        let (_, k, run) = best.expect("k_min <= k_max and k_min <= N, so some K was tried");
        let (p, log_likelihood, iterations) = if n_sel < n {
            let mut rng = SplitMix64::for_item(opts.seed, u64::MAX);
            let fit_points = opts.max_points_for_fit.max(sel_points);
            let all = if n > fit_points { xc.index_select(0, &subsample(n, fit_points, &mut rng)) } else { xc.shallow_clone() };
            Data::new(&all, opts.reg_covar).em(run.0, opts, &mut rng)?
        } else {
            run
        };
        let gmm = Gmm::new(p.weights, &p.means + &shift, p.covs)?;
        Ok(GmmFit { gmm, k, bic: bics, log_likelihood, iterations })
    }

    /// A GMM from its parameters, checked as in [`Gmm::from_named`] (names `weights`, `means`,
    /// `covs`).
    pub fn new(weights: Tensor, means: Tensor, covs: Tensor) -> Result<Gmm, GmmError> {
        Gmm::checked(["weights".into(), "means".into(), "covs".into()], weights, means, covs)
    }

    /// Rebuilds a GMM saved with [`Gmm::named_tensors`]; `get` looks a tensor up by full name.
    pub fn from_named(prefix: &str, get: impl Fn(&str) -> Option<Tensor>) -> Result<Gmm, GmmError> {
        let names = ["weights", "means", "covs"].map(|s| format!("{prefix}.{s}"));
        let fetch = |name: &String| get(name).ok_or_else(|| GmmError::Missing { name: name.clone() });
        let (w, m, c) = (fetch(&names[0])?, fetch(&names[1])?, fetch(&names[2])?);
        Gmm::checked(names, w, m, c)
    }

    /// `("{prefix}.weights", [K])`, `("{prefix}.means", [K, D])`, `("{prefix}.covs", [K, D, D])`.
    pub fn named_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        vec![
            (format!("{prefix}.weights"), self.weights.shallow_clone()),
            (format!("{prefix}.means"), self.means.shallow_clone()),
            (format!("{prefix}.covs"), self.covs.shallow_clone()),
        ]
    }

    fn checked(names: [String; 3], weights: Tensor, means: Tensor, covs: Tensor) -> Result<Gmm, GmmError> {
        let [wn, mn, cn] = names;
        let bad_shape = |name: &String, expected: String, t: &Tensor| GmmError::BadShape { name: name.clone(), expected, got: t.size() };
        let k = match weights.size()[..] {
            [k] if k >= 1 => k,
            _ => return Err(bad_shape(&wn, "[K] with K >= 1".into(), &weights)),
        };
        let d = match means.size()[..] {
            [mk, d] if mk == k && d >= 1 => d,
            _ => return Err(bad_shape(&mn, format!("[{k}, D] with D >= 1"), &means)),
        };
        if covs.size() != [k, d, d] {
            return Err(bad_shape(&cn, format!("[{k}, {d}, {d}] to match `{wn}` [{k}] and `{mn}` [{k}, {d}]"), &covs));
        }
        let (weights, means, covs) = (cpu_f64(&weights), cpu_f64(&means), cpu_f64(&covs));
        for (name, t) in [(&wn, &weights), (&mn, &means), (&cn, &covs)] {
            if !all_finite(t) {
                return Err(GmmError::NonFinite { name: name.clone() });
            }
        }
        let w = to_vec(&weights);
        let sum: f64 = w.iter().sum();
        if w.iter().any(|&x| x < 0.0) || (sum - 1.0).abs() > WEIGHT_SUM_TOL {
            return Err(GmmError::BadWeights { name: wn, sum });
        }
        let asym = to_vec(&(&covs - covs.transpose(1, 2)).abs().amax([1, 2], false));
        let scale = to_vec(&covs.abs().amax([1, 2], false));
        if let Some(component) = (0..k as usize).find(|&c| asym[c] > 1e-9 * scale[c]) {
            return Err(GmmError::NotSymmetric { name: cn, component });
        }
        let dens = Density::new(&weights, &means, &covs).map_err(|component| GmmError::NotPositiveDefinite { name: cn, component })?;
        let cum_weights = w.iter().scan(0.0, |acc, &x| { *acc += x; Some(*acc) }).collect();
        let (mean_rows, chol) = (to_vec(&means), to_vec(&dens.chol));
        Ok(Gmm { weights, means, covs, dens, cum_weights, mean_rows, chol })
    }

    /// Number of components.
    pub fn k(&self) -> usize {
        self.cum_weights.len()
    }

    /// Dimension of a point.
    pub fn dim(&self) -> usize {
        self.mean_rows.len() / self.k()
    }

    /// Panics unless `x` is `[N, D]`; returns it as f64 on the CPU.
    fn points(&self, x: &Tensor, what: &str) -> Tensor {
        let size = x.size();
        assert!(size.len() == 2 && size[1] == self.dim() as i64, "Gmm::{what}: x must be [N, {}], got {size:?}", self.dim());
        cpu_f64(x)
    }

    /// `[N]`: the log density of each row of `x` (`[N, D]`). Panics on another shape.
    pub fn log_prob(&self, x: &Tensor) -> Tensor {
        self.dens.map_chunks(&self.points(x, "log_prob"), |w| w.logsumexp([1], false))
    }

    /// `[N, K]`: the posterior probability of each component for each row of `x`.
    pub fn responsibilities(&self, x: &Tensor) -> Tensor {
        self.dens.map_chunks(&self.points(x, "responsibilities"), |w| {
            let lse = w.logsumexp([1], true);
            (w - lse).exp()
        })
    }

    /// `[N]` int64: the most probable component of each row of `x`.
    pub fn predict(&self, x: &Tensor) -> Tensor {
        self.dens.map_chunks(&self.points(x, "predict"), |w| w.argmax(1, false))
    }

    /// Draws a component index by weight.
    pub fn draw_component(&self, rng: &mut SplitMix64) -> usize {
        self.component_at(rng.next_f64())
    }

    /// The component a uniform `u` in [0, 1) falls on (components by weight, in order).
    pub fn component_at(&self, u: f64) -> usize {
        let total = self.cum_weights[self.k() - 1];
        self.cum_weights.partition_point(|&c| c <= u * total).min(self.k() - 1)
    }

    /// `n` points `[n, D]` and the component each came from; the same `rng` state gives the same
    /// points. Each point draws its component, then `D` standard normals `z`; `x = mean + L z`.
    pub fn sample(&self, n: usize, rng: &mut SplitMix64) -> (Tensor, Vec<usize>) {
        let d = self.dim();
        let mut out = vec![0.0; n * d];
        let mut components = Vec::with_capacity(n);
        for row in out.chunks_exact_mut(d) {
            let k = self.draw_component(rng);
            self.sample_component_into(k, rng, row);
            components.push(k);
        }
        (Tensor::from_slice(&out).view([n as i64, d as i64]), components)
    }

    /// One point from the mixture (a component by weight, then a point from it), as `sample(1, ..)`.
    pub fn sample_one(&self, rng: &mut SplitMix64) -> Vec<f64> {
        let k = self.draw_component(rng);
        self.sample_component(k, rng)
    }

    /// One point from component `k`. Panics if `k >= K`.
    pub fn sample_component(&self, k: usize, rng: &mut SplitMix64) -> Vec<f64> {
        let mut out = vec![0.0; self.dim()];
        self.sample_component_into(k, rng, &mut out);
        out
    }

    /// One point from component `k` written into `out` (length D), without allocating.
    /// Panics if `k >= K` or `out.len() != D`.
    pub fn sample_component_into(&self, k: usize, rng: &mut SplitMix64, out: &mut [f64]) {
        let d = self.dim();
        assert!(k < self.k() && out.len() == d, "sample_component_into: component {k} of {}, out of length {} for D = {d}", self.k(), out.len());
        standard_normals(rng, out);
        let (l, mu) = (&self.chol[k * d * d..(k + 1) * d * d], &self.mean_rows[k * d..(k + 1) * d]);
        // x_i = mu_i + sum_{j <= i} L_ij z_j; going down from the last row keeps z_j (j < i) intact.
        for i in (0..d).rev() {
            let dot: f64 = (0..=i).map(|j| l[i * d + j] * out[j]).sum();
            out[i] = mu[i] + dot;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t2(rows: &[[f64; 2]]) -> Tensor {
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, 2])
    }

    fn model(weights: &[f64], means: &[[f64; 2]], covs: &[[[f64; 2]; 2]]) -> Gmm {
        let k = weights.len() as i64;
        let c: Vec<f64> = covs.iter().flatten().flatten().copied().collect();
        Gmm::new(Tensor::from_slice(weights), t2(means), Tensor::from_slice(&c).view([k, 2, 2])).unwrap()
    }

    const W3: [f64; 3] = [0.5, 0.3, 0.2];
    const M3: [[f64; 2]; 3] = [[0.0, 0.0], [6.0, 5.0], [-5.0, 5.0]];
    const C3: [[[f64; 2]; 2]; 3] = [[[1.0, 0.6], [0.6, 1.0]], [[0.5, -0.3], [-0.3, 0.4]], [[2.0, 0.5], [0.5, 0.6]]];

    /// `n` points of the 3-component mixture, drawn here by hand (not with `Gmm::sample`).
    fn three_blobs(n: usize, seed: u64) -> Tensor {
        let mut rng = SplitMix64::new(seed);
        let mut rows = Vec::with_capacity(n);
        for _ in 0..n {
            let u = rng.next_f64();
            let k = if u < 0.5 { 0 } else if u < 0.8 { 1 } else { 2 };
            let [[a, b], [_, c]] = C3[k];
            let (l11, l21) = (a.sqrt(), b / a.sqrt());
            let l22 = (c - l21 * l21).sqrt();
            let r = (-2.0 * (1.0 - rng.next_f64()).ln()).sqrt();
            let th = TAU * rng.next_f64();
            let (z1, z2) = (r * th.cos(), r * th.sin());
            rows.push([M3[k][0] + l11 * z1, M3[k][1] + l21 * z1 + l22 * z2]);
        }
        t2(&rows)
    }

    fn opts(k_min: usize, k_max: usize, seed: u64) -> GmmFitOptions {
        GmmFitOptions { k_min, k_max, seed, ..GmmFitOptions::default() }
    }

    fn rows(t: &Tensor) -> Vec<Vec<f64>> {
        let d = t.size()[1] as usize;
        to_vec(t).chunks(d).map(|r| r.to_vec()).collect()
    }

    /// Index of the fitted component nearest to each true mean.
    fn matching(fit: &Gmm, true_means: &[[f64; 2]]) -> Vec<usize> {
        let m = rows(&fit.means);
        true_means
            .iter()
            .map(|t| {
                let dist = |r: &Vec<f64>| (r[0] - t[0]).powi(2) + (r[1] - t[1]).powi(2);
                (0..m.len()).min_by(|&a, &b| dist(&m[a]).total_cmp(&dist(&m[b]))).unwrap()
            })
            .collect()
    }

    #[test]
    fn bic_picks_three_components_and_recovers_them() {
        let x = three_blobs(6000, 11).to_kind(Kind::Float);
        let fit = Gmm::fit(&x, &opts(1, 6, 3)).unwrap();
        assert_eq!(fit.bic.iter().map(|b| b.0).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(fit.k, 3, "BIC: {:?}", fit.bic);
        let g = &fit.gmm;
        assert_eq!((g.k(), g.dim()), (3, 2));
        let idx = matching(g, &M3);
        let mut sorted = idx.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2]);
        let (w, m, c) = (to_vec(&g.weights), rows(&g.means), to_vec(&g.covs));
        for (t, &f) in idx.iter().enumerate() {
            assert!((w[f] - W3[t]).abs() < 0.03, "weight {t}: {} vs {}", w[f], W3[t]);
            for i in 0..2 {
                assert!((m[f][i] - M3[t][i]).abs() < 0.1, "mean {t}[{i}]: {} vs {}", m[f][i], M3[t][i]);
                for j in 0..2 {
                    let (got, want) = (c[f * 4 + i * 2 + j], C3[t][i][j]);
                    let scale = (C3[t][i][i] * C3[t][j][j]).sqrt();
                    assert!((got - want).abs() < 0.15 * scale, "cov {t}[{i}][{j}]: {got} vs {want}");
                }
            }
        }
        let lp = g.log_prob(&x).mean(Kind::Double).double_value(&[]);
        assert!((lp - fit.log_likelihood).abs() < 1e-9, "{lp} vs {}", fit.log_likelihood);
        assert!(fit.iterations >= 2 && fit.iterations <= 200);
    }

    #[test]
    fn bimodal_packet_sizes_give_two_components() {
        let mut rng = SplitMix64::new(5);
        let mut z = [0.0];
        let sizes: Vec<f64> = (0..4000)
            .map(|_| {
                let small = rng.next_f64() < 0.6;
                standard_normals(&mut rng, &mut z);
                if small { 60.0 + 3.0 * z[0] } else { 1500.0 + 20.0 * z[0] }
            })
            .collect();
        let mean = sizes.iter().sum::<f64>() / sizes.len() as f64;
        let sd = (sizes.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / sizes.len() as f64).sqrt();
        let scaled: Vec<f64> = sizes.iter().map(|s| (s - mean) / sd).collect();
        let fit = Gmm::fit(&Tensor::from_slice(&scaled).view([-1, 1]), &opts(1, 4, 9)).unwrap();
        assert_eq!(fit.k, 2, "BIC: {:?}", fit.bic);
        let mut m: Vec<f64> = to_vec(&fit.gmm.means).iter().map(|z| z * sd + mean).collect();
        m.sort_by(f64::total_cmp);
        assert!((m[0] - 60.0).abs() < 1.0 && (m[1] - 1500.0).abs() < 3.0, "means {m:?}");
        let mut w = to_vec(&fit.gmm.weights);
        w.sort_by(f64::total_cmp);
        assert!((w[0] - 0.4).abs() < 0.03, "weights {w:?}");
    }

    /// log N(x | mu, S) for 2-D, written out with the closed-form inverse and determinant.
    fn direct_2d(x: [f64; 2], mu: [f64; 2], s: [[f64; 2]; 2]) -> f64 {
        let det = s[0][0] * s[1][1] - s[0][1] * s[1][0];
        let (a, b) = (x[0] - mu[0], x[1] - mu[1]);
        let q = (s[1][1] * a * a - 2.0 * s[0][1] * a * b + s[0][0] * b * b) / det;
        -0.5 * (2.0 * (2.0 * PI).ln() + det.ln() + q)
    }

    #[test]
    fn densities_match_the_formula() {
        let pts = [[1.0, -2.0], [0.0, 0.0], [3.5, -1.0], [-4.0, 7.0]];
        let s = [[2.0, 0.3], [0.3, 0.5]];
        let single = model(&[1.0], &[[1.0, -2.0]], &[s]);
        let lp = to_vec(&single.log_prob(&t2(&pts)));
        for (p, got) in pts.iter().zip(&lp) {
            let want = direct_2d(*p, [1.0, -2.0], s);
            assert!((got - want).abs() < 1e-10, "{got} vs {want}");
        }
        let mix = model(&W3, &M3, &C3);
        let lp = to_vec(&mix.log_prob(&t2(&pts)));
        let resp = rows(&mix.responsibilities(&t2(&pts)));
        let pred = Vec::<i64>::try_from(&mix.predict(&t2(&pts))).unwrap();
        for (i, p) in pts.iter().enumerate() {
            let parts: Vec<f64> = (0..3).map(|k| W3[k] * direct_2d(*p, M3[k], C3[k]).exp()).collect();
            let total: f64 = parts.iter().sum();
            assert!((lp[i] - total.ln()).abs() < 1e-9, "{} vs {}", lp[i], total.ln());
            assert!((resp[i].iter().sum::<f64>() - 1.0).abs() < 1e-12);
            for k in 0..3 {
                assert!((resp[i][k] - parts[k] / total).abs() < 1e-9);
            }
            let best = (0..3).max_by(|&a, &b| parts[a].total_cmp(&parts[b])).unwrap();
            assert_eq!(pred[i], best as i64);
        }
        let many = three_blobs(1000, 2);
        let sums = mix.responsibilities(&many).sum_dim_intlist(1, false, Kind::Double);
        assert!(to_vec(&sums).iter().all(|s| (s - 1.0).abs() < 1e-12));
    }

    #[test]
    fn sampling_reproduces_the_model_and_is_seeded() {
        let fit = Gmm::fit(&three_blobs(6000, 11), &opts(3, 3, 1)).unwrap().gmm;
        let (x, comps) = fit.sample(20_000, &mut SplitMix64::new(42));
        assert_eq!(x.size(), [20_000, 2]);
        let w = to_vec(&fit.weights);
        for (k, wk) in w.iter().enumerate() {
            let share = comps.iter().filter(|&&c| c == k).count() as f64 / 20_000.0;
            assert!((share - wk).abs() < 0.02, "component {k}: {share} vs {wk}");
        }
        let (y, comps2) = fit.sample(20_000, &mut SplitMix64::new(42));
        assert!(x.equal(&y) && comps == comps2);
        let (z, _) = fit.sample(20_000, &mut SplitMix64::new(43));
        assert!(!x.equal(&z));
        assert_eq!(fit.sample_one(&mut SplitMix64::new(42)), rows(&x)[0]);

        // sample_component follows the component's mean and covariance.
        let truth = model(&W3, &M3, &C3);
        let mut rng = SplitMix64::new(8);
        let pts: Vec<Vec<f64>> = (0..20_000).map(|_| truth.sample_component(1, &mut rng)).collect();
        let n = pts.len() as f64;
        let mean: Vec<f64> = (0..2).map(|i| pts.iter().map(|p| p[i]).sum::<f64>() / n).collect();
        for i in 0..2 {
            assert!((mean[i] - M3[1][i]).abs() < 0.03, "mean {mean:?}");
            for j in 0..2 {
                let cov = pts.iter().map(|p| (p[i] - mean[i]) * (p[j] - mean[j])).sum::<f64>() / n;
                assert!((cov - C3[1][i][j]).abs() < 0.03, "cov[{i}][{j}] {cov} vs {}", C3[1][i][j]);
            }
        }
    }

    #[test]
    fn saved_tensors_round_trip_and_bad_ones_are_named() {
        let g = model(&W3, &M3, &C3);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gmm.safetensors");
        Tensor::write_safetensors(&g.named_tensors("packet_gmm"), &path).unwrap();
        let saved: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&path).unwrap().into_iter().collect();
        let back = Gmm::from_named("packet_gmm", |n| saved.get(n).map(|t| t.shallow_clone())).unwrap();
        let x = three_blobs(500, 4);
        assert!(g.log_prob(&x).equal(&back.log_prob(&x)));

        let with = |name: &str, t: Tensor| {
            let mut m: std::collections::HashMap<String, Tensor> = g.named_tensors("g").into_iter().collect();
            m.insert(name.to_string(), t);
            Gmm::from_named("g", |n| m.get(n).map(|t| t.shallow_clone())).unwrap_err()
        };
        let covs = g.covs.copy();
        covs.get(1).copy_(&t2(&[[1.0, 2.0], [2.0, 1.0]]));
        assert!(matches!(with("g.covs", covs), GmmError::NotPositiveDefinite { name, component: 1 } if name == "g.covs"));
        let covs = g.covs.copy();
        covs.get(2).copy_(&t2(&[[1.0, 0.2], [0.0, 1.0]]));
        assert!(matches!(with("g.covs", covs), GmmError::NotSymmetric { name, component: 2 } if name == "g.covs"));
        let short = Tensor::zeros([2, 2], (Kind::Double, Device::Cpu));
        assert!(matches!(with("g.means", short), GmmError::BadShape { name, got, .. } if name == "g.means" && got == [2, 2]));
        let wide = Tensor::zeros([3, 3], (Kind::Double, Device::Cpu));
        let err = with("g.means", wide);
        assert!(matches!(&err, GmmError::BadShape { name, got, .. } if name == "g.covs" && *got == [3, 2, 2]));
        assert!(err.to_string().contains("[3, 3, 3] to match `g.weights` [3] and `g.means` [3, 3]"), "{err}");
        let two = Tensor::from_slice(&[0.5, 0.5]);
        assert!(matches!(with("g.weights", two), GmmError::BadShape { name, .. } if name == "g.means"));
        let light = Tensor::from_slice(&[0.5, 0.3, 0.1]);
        assert!(matches!(with("g.weights", light), GmmError::BadWeights { name, .. } if name == "g.weights"));
        let err = Gmm::from_named("h", |_| None).unwrap_err();
        assert!(matches!(err, GmmError::Missing { name } if name == "h.weights"));
    }

    #[test]
    fn fit_is_deterministic_with_and_without_subsampling() {
        let x = three_blobs(6000, 21);
        for max_sel in [50_000, 2_000] {
            let o = GmmFitOptions { max_points_for_selection: max_sel, ..opts(1, 5, 77) };
            let (a, b) = (Gmm::fit(&x, &o).unwrap(), Gmm::fit(&x, &o).unwrap());
            assert_eq!(a.k, 3, "BIC: {:?}", a.bic);
            assert_eq!((a.k, &a.bic, a.iterations), (b.k, &b.bic, b.iterations));
            assert!(a.gmm.weights.equal(&b.gmm.weights) && a.gmm.means.equal(&b.gmm.means) && a.gmm.covs.equal(&b.gmm.covs));
        }
    }

    #[test]
    fn empty_components_are_reseeded_and_bad_input_is_refused() {
        // Two distinct points repeated: K=4 must leave components empty and still fit.
        let x = t2(&[[0.0, 0.0], [1.0, 1.0]].repeat(50));
        let fit = Gmm::fit(&x, &opts(4, 4, 0)).unwrap();
        assert!(fit.log_likelihood.is_finite());
        let w = to_vec(&fit.gmm.weights);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(w.iter().all(|&w| w > 0.05), "an empty component was left empty: {w:?}");

        let tiny_selection = GmmFitOptions { max_points_for_selection: 2, ..opts(3, 3, 0) };
        assert_eq!(Gmm::fit(&three_blobs(100, 0), &tiny_selection).unwrap().k, 3);
        assert!(matches!(Gmm::fit(&t2(&[[0.0, 0.0]; 2]), &opts(3, 4, 0)), Err(GmmError::TooFewPoints { points: 2, needed: 3 })));
        let nan = t2(&[[0.0, f64::NAN], [1.0, 1.0], [2.0, 2.0]]);
        assert!(matches!(Gmm::fit(&nan, &opts(1, 2, 0)), Err(GmmError::NonFinite { name }) if name == "x"));
        assert!(matches!(Gmm::fit(&three_blobs(10, 0), &opts(3, 2, 0)), Err(GmmError::InvalidOptions { .. })));
        let flat = Tensor::zeros([10], (Kind::Double, Device::Cpu));
        assert!(matches!(Gmm::fit(&flat, &opts(1, 2, 0)), Err(GmmError::BadShape { name, .. }) if name == "x"));
    }

    /// Timing on 1 M points, D = 4, K in 2..=12:
    /// `cargo test --lib model::gmm::tests::fit_timing_one_million -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn fit_timing_one_million() {
        let (k, d) = (6i64, 4i64);
        let mut rng = SplitMix64::new(1);
        let means: Vec<f64> = (0..k * d).map(|_| 8.0 * rng.next_f64() - 4.0).collect();
        let mut covs = Vec::new();
        for _ in 0..k {
            // A = B Bᵀ / d + 0.1 I, B uniform in [-1, 1)
            let b: Vec<f64> = (0..d * d).map(|_| 2.0 * rng.next_f64() - 1.0).collect();
            for i in 0..d as usize {
                for j in 0..d as usize {
                    let dot: f64 = (0..d as usize).map(|m| b[i * d as usize + m] * b[j * d as usize + m]).sum();
                    covs.push(dot / d as f64 + if i == j { 0.1 } else { 0.0 });
                }
            }
        }
        let truth = Gmm::new(
            Tensor::from_slice(&[0.3, 0.2, 0.15, 0.15, 0.1, 0.1]),
            Tensor::from_slice(&means).view([k, d]),
            Tensor::from_slice(&covs).view([k, d, d]),
        )
        .unwrap();
        let (x, _) = truth.sample(1_000_000, &mut rng);
        let x = x.to_kind(Kind::Float);
        let t0 = std::time::Instant::now();
        let fit = Gmm::fit(&x, &opts(2, 12, 0)).unwrap();
        println!(
            "fit of 1M x 4, K 2..=12 ({} build): {:.2?}; K = {}, final EM iterations {}, mean LL {:.4}, BIC {:?}",
            if cfg!(debug_assertions) { "debug" } else { "release" },
            t0.elapsed(),
            fit.k,
            fit.iterations,
            fit.log_likelihood,
            fit.bic
        );
        assert_eq!(fit.k, 6);
    }
}
