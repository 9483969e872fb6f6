//! Log-bucketed histogram for quantiles in constant memory (≤ 0.8 % relative error;
//! values below 128 are exact). Used for size and inter-arrival summaries.

const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = (SUB as usize) * (65 - SUB_BITS as usize);

#[derive(Clone, Debug)]
pub struct LogHistogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
}

impl Default for LogHistogram {
    fn default() -> Self {
        LogHistogram { counts: vec![0; BUCKETS], total: 0, min: u64::MAX, max: 0 }
    }
}

fn bucket(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // ≥ SUB_BITS
    let shift = exp - SUB_BITS;
    let mantissa = (v >> shift) - SUB; // 0..SUB
    ((shift as u64 + 1) * SUB + mantissa) as usize
}

fn bucket_low(b: usize) -> u64 {
    let b = b as u64;
    if b < SUB {
        return b;
    }
    let shift = b / SUB - 1;
    let mantissa = b % SUB;
    (SUB + mantissa) << shift
}

impl LogHistogram {
    pub fn record(&mut self, v: u64) {
        self.counts[bucket(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
    pub fn count(&self) -> u64 {
        self.total
    }
    /// The non-empty buckets in increasing order: (lowest value, highest value, count).
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts.iter().enumerate().filter(|(_, &c)| c > 0).map(|(b, &c)| {
            (bucket_low(b), bucket_low(b + 1).saturating_sub(1), c)
        })
    }
    /// The q-quantile (0 ≤ q ≤ 1): exact min/max, bucket midpoint in between.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        if q <= 0.0 {
            return Some(self.min);
        }
        if q >= 1.0 {
            return Some(self.max);
        }
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let lo = bucket_low(b);
                let hi = bucket_low(b + 1).saturating_sub(1);
                return Some((lo + (hi - lo) / 2).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotone_and_invert() {
        let mut prev = 0;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let b = bucket(v);
            assert!(b >= prev && b < BUCKETS);
            prev = b;
            assert!(bucket_low(b) <= v);
        }
    }

    #[test]
    fn buckets_cover_the_values() {
        let mut h = LogHistogram::default();
        for v in [3u64, 3, 1000, 1001, 5_000_000] {
            h.record(v);
        }
        let b: Vec<_> = h.buckets().collect();
        assert_eq!(b.iter().map(|x| x.2).sum::<u64>(), 5);
        assert_eq!(b[0], (3, 3, 2));
        assert!(b.iter().all(|&(lo, hi, _)| lo <= hi));
        assert!(b.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(b.iter().any(|&(lo, hi, _)| lo <= 5_000_000 && 5_000_000 <= hi));
    }

    #[test]
    fn quantiles_within_one_percent() {
        let mut h = LogHistogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for q in [0.01, 0.25, 0.5, 0.9, 0.99] {
            let want = q * 100_000.0 * 1000.0;
            let got = h.quantile(q).unwrap() as f64;
            assert!((got - want).abs() / want < 0.01, "q={q} got {got} want {want}");
        }
        assert_eq!(h.quantile(0.0), Some(1000));
        assert_eq!(h.quantile(1.0), Some(100_000_000));
    }
}
