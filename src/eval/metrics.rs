//! The distance functions of the evaluation, as pure functions over plain numbers.
//!
//! This module owns the definitions (each matches a named reference implementation, so a
//! number in our report means what it means in NetShare's paper and in scipy):
//! - [`jsd`]: Jensen–Shannon divergence in nats, `scipy.spatial.distance.jensenshannon(p, q)**2`
//!   (natural log), over two histograms normalised to probabilities; 0 for equal histograms,
//!   ln 2 ≈ 0.693 for disjoint supports. This is NetShare's JSD.
//! - [`emd`]: the 1-D Wasserstein-1 distance between the empirical distributions of two raw
//!   samples, `scipy.stats.wasserstein_distance(u, v)` (unweighted): ∫ |F_u(x) − F_v(x)| dx,
//!   exact for samples of different sizes (no resampling). This is NetShare's EMD.
//! - [`ks`]: the two-sample Kolmogorov–Smirnov statistic, `scipy.stats.ks_2samp(u, v).statistic`:
//!   max over x of |F_u(x) − F_v(x)|.
//! - [`rate_autocorrelation`]: the sample autocorrelation at a lag of a packet-count series in
//!   fixed-width time bins (`statsmodels.tsa.stattools.acf`, `adjusted=False`).
//!
//! A distance that is undefined for its inputs (an empty sample, a histogram with no mass, a
//! constant series) is `None`, never NaN. Inputs must be finite. It does not know what the
//! numbers are (packet sizes, times, ports): that is [`super::compare`].

/// Jensen–Shannon divergence (nats) between histograms `p` and `q` of non-negative counts,
/// each normalised to sum 1 first. A histogram shorter than the other is padded with zero
/// bins (so bins missing on one side count as zero mass there). Exactly
/// `scipy.spatial.distance.jensenshannon(p, q) ** 2`:
/// `JSD = ½ Σ p_i ln(p_i / m_i) + ½ Σ q_i ln(q_i / m_i)` with `m = (p + q) / 2` and `0 ln 0 = 0`.
/// Bounded by ln 2. `None` when either histogram has no mass or holds a negative count.
pub fn jsd(p: &[f64], q: &[f64]) -> Option<f64> {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if !(sp > 0.0 && sq > 0.0) || p.iter().chain(q).any(|&x| x < 0.0 || !x.is_finite()) {
        return None;
    }
    let mut acc = 0.0;
    for i in 0..p.len().max(q.len()) {
        let a = p.get(i).copied().unwrap_or(0.0) / sp;
        let b = q.get(i).copied().unwrap_or(0.0) / sq;
        let m = (a + b) / 2.0;
        acc += rel_entr(a, m) + rel_entr(b, m);
    }
    // Rounding can leave a tiny negative where the true value is 0.
    Some((acc / 2.0).max(0.0))
}

/// `scipy.special.rel_entr` for m > 0 whenever x > 0 (always so here: m ≥ x / 2).
fn rel_entr(x: f64, m: f64) -> f64 {
    if x > 0.0 {
        x * (x / m).ln()
    } else {
        0.0
    }
}

/// Wasserstein-1 distance between the empirical distributions of `u` and `v`
/// (`scipy.stats.wasserstein_distance(u, v)`): with `x_0 ≤ … ≤ x_{N−1}` all values of both
/// samples sorted together, `Σ_k |F_u(x_k) − F_v(x_k)| (x_{k+1} − x_k)` where `F` is the
/// right-continuous empirical CDF. In the units of the values. `None` when a sample is empty.
pub fn emd(u: &[f64], v: &[f64]) -> Option<f64> {
    let (u, v) = (sorted(u), sorted(v));
    let mut acc = 0.0;
    walk_cdfs(&u, &v, |fu, fv, x, next| {
        if let Some(next) = next {
            acc += (fu - fv).abs() * (next - x);
        }
    })?;
    Some(acc)
}

/// Two-sample Kolmogorov–Smirnov statistic (`scipy.stats.ks_2samp(u, v).statistic`):
/// `max_x |F_u(x) − F_v(x)|`, evaluated at every value of either sample. In [0, 1].
/// `None` when a sample is empty.
pub fn ks(u: &[f64], v: &[f64]) -> Option<f64> {
    let (u, v) = (sorted(u), sorted(v));
    let mut d: f64 = 0.0;
    walk_cdfs(&u, &v, |fu, fv, _, _| d = d.max((fu - fv).abs()))?;
    Some(d)
}

fn sorted(x: &[f64]) -> Vec<f64> {
    let mut v = x.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// Calls `f(F_u(x), F_v(x), x, next distinct value)` for every distinct value `x` of the two
/// sorted samples, in increasing order. `None` when a sample is empty.
fn walk_cdfs(u: &[f64], v: &[f64], mut f: impl FnMut(f64, f64, f64, Option<f64>)) -> Option<()> {
    if u.is_empty() || v.is_empty() {
        return None;
    }
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0, 0);
    while i < u.len() || j < v.len() {
        let x = match (u.get(i), v.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        while i < u.len() && u[i] <= x {
            i += 1;
        }
        while j < v.len() && v[j] <= x {
            j += 1;
        }
        let next = match (u.get(i), v.get(j)) {
            (Some(&a), Some(&b)) => Some(a.min(b)),
            (Some(&a), None) => Some(a),
            (None, Some(&b)) => Some(b),
            (None, None) => None,
        };
        f(i as f64 / nu, j as f64 / nv, x, next);
    }
    Some(())
}

/// Sample autocorrelation at `lag` (≥ 1) of the packet-count series of `times_s` (seconds, any
/// order) in bins of `bin_s` seconds. The series runs from the bin of the earliest time to the
/// bin of the latest, empty bins included (as zeros). With `x̄` its mean over `n` bins:
/// `r_k = Σ_{t<n−k} (x_t − x̄)(x_{t+k} − x̄) / Σ_t (x_t − x̄)²` (statsmodels' `acf`, not
/// adjusted). `None` when the series has no more than `lag` bins or no variance (a constant
/// count in every bin, e.g. a single bin). Cost: O(packets) after sorting; empty bins are
/// accounted in closed form, so long captures with fine bins cost no memory per bin.
pub fn rate_autocorrelation(times_s: &[f64], bin_s: f64, lag: u64) -> Option<f64> {
    if times_s.is_empty() || !(bin_s > 0.0) || lag == 0 {
        return None;
    }
    let mut bins: Vec<i64> = times_s.iter().map(|t| (t / bin_s).floor() as i64).collect();
    bins.sort_unstable();
    let first = bins[0];
    // Run-length: (bin index from 0, packets in it), increasing.
    let mut series: Vec<(u64, f64)> = Vec::new();
    for b in bins {
        let t = (b - first) as u64;
        match series.last_mut() {
            Some((last, n)) if *last == t => *n += 1.0,
            _ => series.push((t, 1.0)),
        }
    }
    let n = series.last().map_or(0, |s| s.0) + 1;
    if n <= lag {
        return None;
    }
    let mean = times_s.len() as f64 / n as f64;
    let empty = (n - series.len() as u64) as f64;
    let den = series.iter().map(|(_, x)| (x - mean) * (x - mean)).sum::<f64>() + empty * mean * mean;
    if den <= 0.0 {
        return None;
    }
    // Pairs (t, t + lag), t < n − lag, where either end is a non-empty bin: merge the
    // candidate starts t = b (b < n − lag) and t = b − lag (b ≥ lag) over non-empty bins b.
    let lookup = |idx: &mut usize, t: u64| -> f64 {
        while *idx < series.len() && series[*idx].0 < t {
            *idx += 1;
        }
        match series.get(*idx) {
            Some(&(b, x)) if b == t => x,
            _ => 0.0,
        }
    };
    let lefts = series.iter().map(|s| s.0).filter(|&b| b < n - lag);
    let rights = series.iter().map(|s| s.0).filter(|&b| b >= lag).map(|b| b - lag);
    let mut starts: Vec<u64> = lefts.chain(rights).collect();
    starts.sort_unstable();
    starts.dedup();
    let (mut li, mut ri) = (0, 0);
    let mut num = 0.0;
    for &t in &starts {
        let a = lookup(&mut li, t);
        let b = lookup(&mut ri, t + lag);
        num += (a - mean) * (b - mean);
    }
    // the other pairs have both ends empty: (0 − x̄)² each
    num += (n - lag - starts.len() as u64) as f64 * mean * mean;
    Some(num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LN2: f64 = std::f64::consts::LN_2;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + b.abs())
    }

    #[test]
    fn jsd_identical_is_zero_and_disjoint_is_ln2() {
        assert_eq!(jsd(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), Some(0.0));
        // scale does not matter: histograms are normalised
        assert_eq!(jsd(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), Some(0.0));
        assert!(close(jsd(&[1.0, 0.0], &[0.0, 5.0]).unwrap(), LN2));
        // padding: [3] against [0, 0, 7] is disjoint too
        assert!(close(jsd(&[3.0], &[0.0, 0.0, 7.0]).unwrap(), LN2));
    }

    #[test]
    fn jsd_by_hand() {
        // p = (1, 0), q = (½, ½): m = (¾, ¼);
        // ½ [1·ln(1/¾)] + ½ [½ ln(½/¾) + ½ ln(½/¼)] = ½ ln(4/3) + ¼ ln(2/3) + ¼ ln 2
        let want = 0.5 * (4.0f64 / 3.0).ln() + 0.25 * (2.0f64 / 3.0).ln() + 0.25 * LN2;
        assert!(close(jsd(&[2.0, 0.0], &[1.0, 1.0]).unwrap(), want));
        // scipy: jensenshannon([2, 0], [1, 1])**2 = 0.21576155433883568
        assert!(close(want, 0.215_761_554_338_835_68));
    }

    #[test]
    fn jsd_undefined_inputs() {
        assert_eq!(jsd(&[], &[1.0]), None);
        assert_eq!(jsd(&[0.0, 0.0], &[1.0]), None);
        assert_eq!(jsd(&[1.0, -1.0, 2.0], &[1.0]), None);
    }

    #[test]
    fn emd_and_ks_by_hand() {
        let a = [0.0, 1.0, 3.0];
        assert_eq!(emd(&a, &a), Some(0.0));
        assert_eq!(ks(&a, &a), Some(0.0));
        // a shift by 5 moves all mass by 5
        assert_eq!(emd(&a, &[5.0, 6.0, 8.0]), Some(5.0));
        assert_eq!(ks(&a, &[5.0, 6.0, 8.0]), Some(1.0));
        // {0} vs {0, 2}: F differs by ½ on [0, 2) → ½·2 = 1; D = ½
        assert_eq!(emd(&[0.0], &[0.0, 2.0]), Some(1.0));
        assert_eq!(ks(&[0.0], &[0.0, 2.0]), Some(0.5));
        // order of the inputs does not matter
        assert_eq!(emd(&[3.0, 0.0, 1.0], &[8.0, 5.0, 6.0]), Some(5.0));
        assert_eq!(emd(&[], &[1.0]), None);
        assert_eq!(ks(&[1.0], &[]), None);
    }

    /// Reference values computed once with scipy 1.x in a throwaway venv
    /// (`scipy.spatial.distance.jensenshannon(p, q)**2`, `scipy.stats.wasserstein_distance`,
    /// `scipy.stats.ks_2samp(u, v).statistic`); inputs and outputs are literals here.
    #[test]
    fn matches_scipy_reference_values() {
        // scipy's own documentation example: wasserstein_distance([3.4, 3.9, 7.5, 7.8], [4.5, 1.4]) = 2.7
        assert!(close(emd(&[3.4, 3.9, 7.5, 7.8], &[4.5, 1.4]).unwrap(), 2.7));
        let p = [1.0, 2.0, 3.0, 4.0];
        let q = [4.0, 3.0, 2.0, 1.0, 0.0];
        assert!(close(jsd(&p, &q).unwrap(), SCIPY_JSD_PQ), "{:?}", jsd(&p, &q));
        let r = [10.0, 0.0, 5.0, 0.0, 1.0, 7.0];
        let s = [0.0, 3.0, 5.0, 9.0, 1.0];
        assert!(close(jsd(&r, &s).unwrap(), SCIPY_JSD_RS), "{:?}", jsd(&r, &s));
        let u = [0.5, 1.5, 1.5, 2.0, 7.25, 9.0, 9.0, 11.0];
        let v = [1.0, 1.5, 3.0, 4.5, 8.0];
        assert!(close(emd(&u, &v).unwrap(), SCIPY_EMD_UV), "{:?}", emd(&u, &v));
        assert!(close(ks(&u, &v).unwrap(), SCIPY_KS_UV), "{:?}", ks(&u, &v));
    }

    // scipy 1.17.1: jensenshannon([1,2,3,4,0], [4,3,2,1,0])**2 (q's trailing 0 pads p)
    const SCIPY_JSD_PQ: f64 = 0.106_440_135_286_223_18;
    // jensenshannon([10,0,5,0,1,7], [0,3,5,9,1,0])**2
    const SCIPY_JSD_RS: f64 = 0.489_426_918_774_617_64;
    const SCIPY_EMD_UV: f64 = 1.943_75;
    const SCIPY_KS_UV: f64 = 0.375;

    #[test]
    fn autocorrelation_by_hand() {
        // counts per 1 s bin: [2, 0, 2] (the series ends at the latest packet's bin), mean 4/3
        let t = [0.1, 0.2, 2.5, 2.6];
        let r1 = rate_autocorrelation(&t, 1.0, 1).unwrap();
        // deviations (2/3, −4/3, 2/3): den = 4/9 + 16/9 + 4/9 = 24/9;
        // lag 1: (2/3)(−4/3) + (−4/3)(2/3) = −16/9 → −16/24 = −2/3
        assert!(close(r1, -2.0 / 3.0), "{r1}");
        // lag 2: (2/3)(2/3) = 4/9 → 4/24 = 1/6
        assert!(close(rate_autocorrelation(&t, 1.0, 2).unwrap(), 1.0 / 6.0));
        // no pair at lag 3 in 3 bins; a single bin has no variance
        assert_eq!(rate_autocorrelation(&t, 1.0, 3), None);
        assert_eq!(rate_autocorrelation(&[0.1, 0.2], 1.0, 1), None);
        // a constant series (one packet per bin) has no variance either
        assert_eq!(rate_autocorrelation(&[0.5, 1.5, 2.5, 3.5], 1.0, 1), None);
    }

    #[test]
    fn autocorrelation_of_long_sparse_series_matches_the_dense_sum() {
        // bursts of packets with long gaps at 1 ms bins: the closed form for empty bins must
        // agree with the plain dense formula
        let mut t = Vec::new();
        let mut rng = crate::rng::SplitMix64::new(3);
        for burst in 0..40 {
            let start = burst as f64 * 0.75 + rng.next_f64() * 0.1;
            for _ in 0..(1 + rng.below(30)) {
                t.push(start + rng.next_f64() * 0.004);
            }
        }
        for (bin, lag) in [(0.001, 1), (0.001, 3), (0.01, 1), (0.1, 2)] {
            let got = rate_autocorrelation(&t, bin, lag).unwrap();
            let want = dense_acf(&t, bin, lag as usize);
            assert!((got - want).abs() < 1e-9, "bin {bin} lag {lag}: {got} vs {want}");
        }
    }

    fn dense_acf(t: &[f64], bin: f64, lag: usize) -> f64 {
        let idx: Vec<i64> = t.iter().map(|x| (x / bin).floor() as i64).collect();
        let lo = *idx.iter().min().unwrap();
        let hi = *idx.iter().max().unwrap();
        let mut x = vec![0.0; (hi - lo + 1) as usize];
        for i in idx {
            x[(i - lo) as usize] += 1.0;
        }
        let m = x.iter().sum::<f64>() / x.len() as f64;
        let den: f64 = x.iter().map(|v| (v - m) * (v - m)).sum();
        let num: f64 = (0..x.len() - lag).map(|i| (x[i] - m) * (x[i + lag] - m)).sum();
        num / den
    }
}
