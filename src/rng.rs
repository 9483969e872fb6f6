//! Small, fast, seedable random numbers (SplitMix64) for everything that must be reproducible:
//! the same seed gives the same stream on every machine. Not for cryptography.

#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// An independent stream for item `id` of a stream seeded with `seed` (e.g. one per flow),
    /// so a flow's numbers do not depend on which flows came before it.
    pub fn for_item(seed: u64, id: u64) -> SplitMix64 {
        let mut s = SplitMix64(seed ^ id.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        s.next_u64();
        s
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n) (n > 0), without modulo bias worth caring about (Lemire's method).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// A low-discrepancy sequence in [0, 1): x, x + α, x + 2α, … mod 1, with α an irrational step
/// (by default the golden ratio's fractional part; a Weyl sequence). Used where a share must
/// hold in every stretch of draws, not just on average: a category of share p drawn through it
/// comes up within a few of n·p in any n consecutive draws (the deviation grows as log n),
/// where independent draws scatter by ±√(n·p).
#[derive(Clone, Debug)]
pub struct Weyl {
    x: f64,
    step: f64,
}

/// The golden ratio's fractional part: its multiples mod 1 spread most evenly.
pub const GOLDEN: f64 = 0.618_033_988_749_894_8;
/// √2 − 1: a second step, for a sequence drawn beside a [`GOLDEN`] one.
pub const SILVER: f64 = 0.414_213_562_373_095_1;
/// √3 − 1: a third step, for sequences drawn beside [`GOLDEN`] and [`SILVER`] ones.
pub const ROOT3: f64 = 0.732_050_807_568_877_2;
/// √7 − 2: a fourth. Sequences that move together (one point each per flow) need steps that
/// no rational combination links (√5, √2, √3, √7), or one's point would fix the other's.
pub const ROOT7: f64 = 0.645_751_311_064_590_6;

impl Weyl {
    /// A sequence of step [`GOLDEN`] starting at a point drawn from `rng`.
    pub fn new(rng: &mut SplitMix64) -> Weyl {
        Weyl::with_step(GOLDEN, rng)
    }

    /// A sequence of step `step` (irrational: [`GOLDEN`], [`SILVER`]) starting at a point
    /// drawn from `rng`.
    pub fn with_step(step: f64, rng: &mut SplitMix64) -> Weyl {
        Weyl { x: rng.next_f64(), step }
    }

    /// The next point.
    pub fn next_f64(&mut self) -> f64 {
        let x = self.x;
        self.x = (self.x + self.step).fract();
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values_and_independence() {
        // SplitMix64 reference output for seed 0
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        let a: Vec<u64> = (0..3).map(|i| SplitMix64::for_item(7, i).next_u64()).collect();
        assert!(a[0] != a[1] && a[1] != a[2]);
        let mut r = SplitMix64::new(1);
        assert!((0..1000).all(|_| r.below(10) < 10));
    }

    #[test]
    fn a_weyl_share_holds_in_every_stretch_of_draws() {
        let mut w = Weyl::new(&mut SplitMix64::new(3));
        let hits: Vec<bool> = (0..10_000).map(|_| w.next_f64() < 0.05).collect();
        // every window of 100 draws has 5 ± 2 hits; independent draws give 0 to 13
        for win in hits.windows(100).step_by(7) {
            let n = win.iter().filter(|&&h| h).count();
            assert!((3..=7).contains(&n), "{n} hits in a window of 100");
        }
        let mut r = SplitMix64::new(3);
        let spread = (0..100).map(|_| (0..100).filter(|_| r.next_f64() < 0.05).count()).collect::<Vec<_>>();
        assert!(spread.iter().any(|&n| !(3..=7).contains(&n)), "independent draws scatter more");
    }
}
