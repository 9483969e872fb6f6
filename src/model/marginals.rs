//! The training data's own marginals inside each component of a flow-size GMM.
//!
//! A Gaussian component smooths what it claims. IoT keep-alive flows that are 11 packets long
//! in 9 cases out of 10 come out 9 to 14 packets long; backbone 1-packet flows whose bytes have
//! two modes (ACKs near 40 B, full segments near 1,500 B) come out as one log-normal between
//! the two. So each component keeps, per dimension, the quantiles of the training rows it
//! claims, and a point drawn from the component is mapped through them:
//! `x_d → F_d⁻¹(Φ((x_d − μ_d) / σ_d))`. The point keeps the component's dependence between
//! its dimensions (a Gaussian copula) and takes the training rows' marginals. A discrete
//! dimension (packets) steps between the values seen; a continuous one interpolates between
//! quantiles. Beyond the outermost quantiles nothing is extrapolated.
//!
//! Components that claim fewer than [`MIN_ROWS`] rows keep their Gaussian marginals. This
//! module does not fit or draw from the GMM (that is [`super::gmm`]).

use tch::Tensor;

use super::gmm::{to_vec, Gmm};

/// Quantile levels kept per component and dimension: `(i + 0.5) / LEVELS`.
pub const LEVELS: usize = 64;
/// Fewest claimed rows for a component to take their marginals.
pub const MIN_ROWS: usize = 5;

/// Per component and dimension: the quantiles a draw is mapped through.
#[derive(Clone, Debug)]
pub struct Marginals {
    k: usize,
    d: usize,
    levels: usize,
    /// Per dimension: whether it is discrete (a draw takes the nearest level's value).
    steps: Vec<bool>,
    /// `K × D × levels`, row-major; a component's rows are NaN where it has no marginals.
    quantiles: Vec<f64>,
    /// The GMM's means and marginal standard deviations, `K × D`.
    means: Vec<f64>,
    sds: Vec<f64>,
}

/// Equal when every value is (NaN rows included: a component without marginals).
impl PartialEq for Marginals {
    fn eq(&self, o: &Marginals) -> bool {
        let same = |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.total_cmp(y).is_eq());
        (self.k, self.d, self.levels, &self.steps) == (o.k, o.d, o.levels, &o.steps) && same(&self.quantiles, &o.quantiles) && same(&self.means, &o.means) && same(&self.sds, &o.sds)
    }
}

/// The GMM's means and the square roots of its covariance diagonals, `K × D` each.
fn moments(gmm: &Gmm) -> (Vec<f64>, Vec<f64>) {
    let (k, d) = (gmm.k(), gmm.dim());
    let covs = to_vec(&gmm.covs);
    let sds = (0..k * d).map(|i| covs[(i / d) * d * d + (i % d) * (d + 1)].max(0.0).sqrt()).collect();
    (to_vec(&gmm.means), sds)
}

/// The value at quantile level `(i + 0.5) / levels` of `sorted` (ascending, not empty): the
/// order statistic below it for a discrete dimension, interpolated for a continuous one.
fn quantile(sorted: &[f64], level: f64, step: bool) -> f64 {
    let n = sorted.len();
    if step {
        return sorted[((level * n as f64) as usize).min(n - 1)];
    }
    let pos = (level * n as f64 - 0.5).clamp(0.0, (n - 1) as f64);
    let (i, frac) = (pos.floor() as usize, pos.fract());
    let j = (i + 1).min(n - 1);
    sorted[i] + frac * (sorted[j] - sorted[i])
}

/// The standard normal CDF, from the complementary error function (Numerical Recipes' `erfcc`,
/// fractional error below 1.2e-7 everywhere).
pub fn normal_cdf(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96 + t * (0.096_784_18 + t * (-0.186_288_06 + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    // Φ(z) = erfc(−z/√2) / 2
    0.5 * if x >= 0.0 { erfc } else { 2.0 - erfc }
}

impl Marginals {
    /// Fits on the GMM's training rows: `rows` is `N × D` row-major, `claimed[i]` the component
    /// row `i` belongs to (the GMM's `predict`), `steps[d]` whether dimension `d` is discrete.
    pub fn fit(gmm: &Gmm, rows: &[f64], claimed: &[i64], steps: &[bool]) -> Marginals {
        let (k, d) = (gmm.k(), gmm.dim());
        assert!(steps.len() == d && rows.len() == claimed.len() * d, "Marginals::fit: {} rows of {d} values, {} claims, {} step flags", rows.len() / d.max(1), claimed.len(), steps.len());
        let mut quantiles = vec![f64::NAN; k * d * LEVELS];
        for c in 0..k {
            let mine: Vec<&[f64]> = rows.chunks_exact(d).zip(claimed).filter(|(_, &w)| w == c as i64).map(|(r, _)| r).collect();
            if mine.len() < MIN_ROWS {
                continue;
            }
            for dim in 0..d {
                let mut col: Vec<f64> = mine.iter().map(|r| r[dim]).collect();
                col.sort_by(f64::total_cmp);
                let out = &mut quantiles[(c * d + dim) * LEVELS..(c * d + dim + 1) * LEVELS];
                for (i, q) in out.iter_mut().enumerate() {
                    *q = quantile(&col, (i as f64 + 0.5) / LEVELS as f64, steps[dim]);
                }
            }
        }
        let (means, sds) = moments(gmm);
        Marginals { k, d, levels: LEVELS, steps: steps.to_vec(), quantiles, means, sds }
    }

    /// Maps a point drawn from component `c` (`x`, length D) through the component's
    /// marginals, in place; a component without marginals leaves it as drawn.
    pub fn map(&self, c: usize, x: &mut [f64]) {
        let (d, levels) = (self.d, self.levels);
        if c >= self.k || x.len() != d || self.quantiles[c * d * levels].is_nan() {
            return;
        }
        for (dim, v) in x.iter_mut().enumerate() {
            let sd = self.sds[c * d + dim];
            let u = if sd > 0.0 { normal_cdf((*v - self.means[c * d + dim]) / sd) } else { 0.5 };
            let q = &self.quantiles[(c * d + dim) * levels..(c * d + dim + 1) * levels];
            *v = if self.steps[dim] {
                q[((u * levels as f64) as usize).min(levels - 1)]
            } else {
                let pos = (u * levels as f64 - 0.5).clamp(0.0, (levels - 1) as f64);
                let (i, frac) = (pos.floor() as usize, pos.fract());
                q[i] + frac * (q[(i + 1).min(levels - 1)] - q[i])
            };
        }
    }

    /// Where a point drawn from component `c` (before [`Marginals::map`]) lies in each
    /// dimension: `Φ((x − μ)/σ)`, the probability level [`Marginals::map`] reads its
    /// quantiles at (0.5 where the component has no spread).
    pub fn levels_of(&self, c: usize, x: &[f64]) -> Vec<f64> {
        x.iter()
            .enumerate()
            .map(|(dim, &v)| match (self.sds.get(c * self.d + dim), self.means.get(c * self.d + dim)) {
                (Some(&sd), Some(&m)) if sd > 0.0 && dim < self.d => normal_cdf((v - m) / sd),
                _ => 0.5,
            })
            .collect()
    }

    /// The quantiles as a `[K, D, levels]` tensor (NaN rows: components without marginals).
    pub fn to_tensor(&self) -> Tensor {
        Tensor::from_slice(&self.quantiles).view([self.k as i64, self.d as i64, self.levels as i64])
    }

    /// Rebuilds from the tensor `name` for `gmm`, with `steps` as at the fit.
    pub fn from_tensor(t: &Tensor, name: &str, gmm: &Gmm, steps: &[bool]) -> Result<Marginals, String> {
        let (k, d) = (gmm.k(), gmm.dim());
        let size = t.size();
        let levels = match size.as_slice() {
            &[tk, td, l] if tk == k as i64 && td == d as i64 && l >= 2 => l as usize,
            _ => return Err(format!("tensor `{name}` must be [{k}, {d}, levels ≥ 2], got {size:?}")),
        };
        if steps.len() != d {
            return Err(format!("tensor `{name}`: {d} dimensions, {} step flags", steps.len()));
        }
        let quantiles = to_vec(t);
        for (row, q) in quantiles.chunks_exact(levels).enumerate() {
            let fine = q.iter().all(|v| v.is_finite()) && q.windows(2).all(|w| w[0] <= w[1]);
            let c = row / d;
            let unmapped = q.iter().all(|v| v.is_nan()) && quantiles[c * d * levels..(c + 1) * d * levels].iter().all(|v| v.is_nan());
            if !(fine || unmapped) {
                return Err(format!("tensor `{name}`: component {c}, dimension {}: quantiles must be finite and ascending (or all NaN)", row % d));
            }
        }
        let (means, sds) = moments(gmm);
        Ok(Marginals { k, d, levels, steps: steps.to_vec(), quantiles, means, sds })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gmm::GmmFitOptions;
    use crate::rng::SplitMix64;

    #[test]
    fn normal_cdf_matches_reference_values() {
        // scipy.stats.norm.cdf
        for (z, p) in [(0.0, 0.5), (1.0, 0.841_344_746_068_542_9), (-1.96, 0.024_997_895_148_220_435), (3.0, 0.998_650_101_968_369_9), (-5.0, 2.866_515_718_791_939e-7)] {
            let got = normal_cdf(z);
            assert!((got - p).abs() <= 1.2e-7 * p.max(1e-3), "Φ({z}) = {got}, want {p}");
        }
    }

    /// One component over (packets, bytes): packets mostly 11, bytes two modes far apart.
    fn bimodal() -> (Gmm, Vec<f64>, Vec<i64>) {
        let mut rng = SplitMix64::new(3);
        let mut rows = Vec::new();
        for i in 0..400 {
            let packets: f64 = if i % 10 == 0 { 14.0 } else { 11.0 };
            let bytes = if rng.next_f64() < 0.5 { 40.0 + 10.0 * rng.next_f64() } else { 1400.0 + 100.0 * rng.next_f64() };
            rows.extend([packets.log10(), f64::log10(bytes)]);
        }
        let x = Tensor::from_slice(&rows).view([-1, 2]);
        let gmm = Gmm::fit(&x, &GmmFitOptions { k_min: 1, k_max: 1, seed: 1, ..GmmFitOptions::default() }).unwrap().gmm;
        let claimed = vec![0; 400];
        (gmm, rows, claimed)
    }

    #[test]
    fn draws_take_the_claimed_rows_marginals() {
        let (gmm, rows, claimed) = bimodal();
        let m = Marginals::fit(&gmm, &rows, &claimed, &[true, false]);
        let mut rng = SplitMix64::new(9);
        let (mut eleven, mut between, mut plain_between) = (0, 0, 0);
        let n = 4000;
        for _ in 0..n {
            let mut x = gmm.sample_component(0, &mut rng);
            let b = 10f64.powf(x[1]);
            plain_between += usize::from((100.0..1000.0).contains(&b));
            m.map(0, &mut x);
            let p = 10f64.powf(x[0]).round();
            assert!(p == 11.0 || p == 14.0, "packets {p}: only values seen are drawn");
            eleven += usize::from(p == 11.0);
            between += usize::from((100.0..1000.0).contains(&10f64.powf(x[1])));
        }
        let share = eleven as f64 / n as f64;
        assert!((share - 0.9).abs() < 0.03, "share of 11-packet draws {share}");
        // the Gaussian puts most of its mass between the modes; the mapped draws almost none
        assert!(plain_between > n / 3, "{plain_between}");
        assert!(between < n / 50, "{between} draws between the modes");
    }

    #[test]
    fn a_draws_level_orders_its_mapped_value() {
        let (gmm, rows, claimed) = bimodal();
        let m = Marginals::fit(&gmm, &rows, &claimed, &[true, false]);
        let mut rng = SplitMix64::new(4);
        let mut drawn: Vec<(f64, f64)> = (0..500)
            .map(|_| {
                let mut x = gmm.sample_component(0, &mut rng);
                let level = m.levels_of(0, &x)[1];
                m.map(0, &mut x);
                (level, x[1])
            })
            .collect();
        // the level is where the mapped value lies: higher levels, more bytes
        drawn.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(drawn.iter().all(|&(l, _)| (0.0..=1.0).contains(&l)));
        assert!(drawn.windows(2).all(|w| w[0].1 <= w[1].1 + 1e-12), "mapped bytes fall as the level rises");
        assert!(drawn[0].0 < 0.05 && drawn[499].0 > 0.95, "levels span 0..1");
        // the mean of a dimension is level 0.5; a component without marginals is 0.5 anywhere
        let mean = Vec::<f64>::try_from(gmm.means.get(0)).unwrap();
        assert!((m.levels_of(0, &mean)[1] - 0.5).abs() < 1e-6);
        assert_eq!(m.levels_of(7, &mean), vec![0.5, 0.5]);
    }

    #[test]
    fn round_trip_and_small_components_stay_gaussian() {
        let (gmm, rows, mut claimed) = bimodal();
        let m = Marginals::fit(&gmm, &rows, &claimed, &[true, false]);
        let back = Marginals::from_tensor(&m.to_tensor(), "q", &gmm, &[true, false]).unwrap();
        assert_eq!(back, m);
        // a component claiming too few rows has no marginals: its draws stay as drawn
        claimed.iter_mut().skip(MIN_ROWS - 1).for_each(|c| *c = 1);
        let few = Marginals::fit(&gmm, &rows, &claimed, &[true, false]);
        let mut x = vec![1.2345, 2.5];
        few.map(0, &mut x);
        assert_eq!(x, vec![1.2345, 2.5]);
        // malformed tensors are refused with their name
        let bad = Tensor::from_slice(&[1.0, 0.0, 2.0, 3.0]).view([1, 2, 2]);
        let err = Marginals::from_tensor(&bad, "flow_x.marginals", &gmm, &[true, false]).unwrap_err();
        assert!(err.contains("flow_x.marginals") && err.contains("ascending"), "{err}");
        let err = Marginals::from_tensor(&Tensor::from_slice(&[1.0]), "q", &gmm, &[true, false]).unwrap_err();
        assert!(err.contains("must be [1, 2"), "{err}");
    }
}
