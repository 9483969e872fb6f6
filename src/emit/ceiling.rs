//! The hard rate ceiling: at most so many frames/s and bytes/s, whatever the source's schedule.
//!
//! This module owns admission through `governor` (GCRA) limiters: before a batch is sent the
//! pacer asks [`Ceiling::admit`] and waits as long as it answers. `governor` is used for this
//! cap only, never for pacing (its default burst equals the rate, and with a burst of 1 it
//! undershoots: `shared/notes/dependencies.md`); the burst here is the larger of one
//! `sendmmsg` batch and 1 ms of the rate. Periods are rounded up to whole nanoseconds, so the
//! cap is never exceeded; bytes are counted in 64-byte cells with the remainder carried over.
//! It does not sleep (the pacer waits) nor send.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

type Limiter = RateLimiter<NotKeyed, InMemoryState, MonotonicClock>;

/// Bytes per cell of the byte limiter.
const CELL: u64 = 64;

/// Limits of a ceiling; `None` = no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CeilingConfig {
    pub pps: Option<f64>,
    pub mbps: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CeilingError {
    #[error("ceiling {what} must be a finite number > 0 and at most {max}, not {value}")]
    Range { what: &'static str, value: f64, max: f64 },
}

/// Admission control for one stream.
pub struct Ceiling {
    frames: Option<Limiter>,
    cells: Option<Limiter>,
    clock: MonotonicClock,
    /// Bytes admitted so far, and cells taken for them.
    bytes: u64,
    cells_taken: u64,
    /// The frame part of a batch passed but its bytes did not yet.
    frames_passed: bool,
    /// Times a batch had to wait.
    pub waits: u64,
}

fn limiter(per_s: f64, burst_min: u64) -> Limiter {
    let period = Duration::from_nanos((1e9 / per_s).ceil().max(1.0) as u64);
    let burst = burst_min.max((per_s / 1000.0).ceil() as u64).clamp(1, u32::MAX as u64) as u32;
    let quota = Quota::with_period(period).expect("period ≥ 1 ns").allow_burst(NonZeroU32::new(burst).expect("burst ≥ 1"));
    RateLimiter::direct_with_clock(quota, MonotonicClock)
}

impl Ceiling {
    /// A ceiling for batches of at most `max_batch` frames of at most `max_frame` bytes.
    pub fn new(cfg: CeilingConfig, max_batch: usize, max_frame: usize) -> Result<Ceiling, CeilingError> {
        let check = |what, v: Option<f64>, max: f64| match v {
            Some(x) if !(x.is_finite() && x > 0.0 && x <= max) => Err(CeilingError::Range { what, value: x, max }),
            _ => Ok(v),
        };
        let pps = check("pps", cfg.pps, 1e9)?;
        let mbps = check("mbps", cfg.mbps, 1e6)?;
        let batch_cells = (max_batch * max_frame) as u64 / CELL + 2;
        Ok(Ceiling {
            frames: pps.map(|p| limiter(p, max_batch as u64)),
            cells: mbps.map(|m| limiter(m * 1e6 / 8.0 / CELL as f64, batch_cells)),
            clock: MonotonicClock,
            bytes: 0,
            cells_taken: 0,
            frames_passed: false,
            waits: 0,
        })
    }

    pub fn is_unlimited(&self) -> bool {
        self.frames.is_none() && self.cells.is_none()
    }

    /// Asks to send `frames` frames of `bytes` bytes now: `None` = go, `Some(d)` = ask again
    /// in `d` (the batch was not admitted and nothing about it is remembered except what
    /// already passed).
    pub fn admit(&mut self, frames: usize, bytes: u64) -> Option<Duration> {
        if !self.frames_passed {
            if let (Some(l), Some(n)) = (&self.frames, NonZeroU32::new(frames as u32)) {
                match l.check_n(n) {
                    Ok(Ok(())) => {}
                    Ok(Err(not_until)) => {
                        self.waits += 1;
                        return Some(not_until.wait_time_from(self.clock.now()));
                    }
                    // a batch larger than the burst is a caller error; admit it rather than
                    // stall forever (the burst is never smaller than a batch)
                    Err(_) => {}
                }
            }
            self.frames_passed = true;
        }
        if let Some(l) = &self.cells {
            let want = (self.bytes + bytes).div_ceil(CELL) - self.cells_taken;
            if let Some(n) = NonZeroU32::new(want.min(u32::MAX as u64) as u32) {
                match l.check_n(n) {
                    Ok(Ok(())) => self.cells_taken += u64::from(n.get()),
                    Ok(Err(not_until)) => {
                        self.waits += 1;
                        return Some(not_until.wait_time_from(self.clock.now()));
                    }
                    Err(_) => self.cells_taken += u64::from(n.get()),
                }
            }
        }
        self.bytes += bytes;
        self.frames_passed = false;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Admits as fast as allowed for `secs`; returns (frames, bytes) admitted and the longest
    /// wait the ceiling asked for. It waits as the pacer does, spinning (a sleep on a shared VM
    /// can end milliseconds late, more than the ceiling's burst of credit).
    fn flood(c: &mut Ceiling, secs: f64, frames: usize, bytes: u64) -> (u64, u64, Duration) {
        let t0 = Instant::now();
        let (mut f, mut b, mut longest) = (0u64, 0u64, Duration::ZERO);
        while t0.elapsed().as_secs_f64() < secs {
            match c.admit(frames, bytes) {
                None => {
                    f += frames as u64;
                    b += bytes;
                }
                Some(d) => {
                    longest = longest.max(d);
                    let until = Instant::now() + d.min(Duration::from_millis(1));
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                }
            }
        }
        (f, b, longest)
    }

    #[test]
    fn frame_ceiling_holds_under_a_flood() {
        let _timing = crate::emit::timing_lock();
        let mut c = Ceiling::new(CeilingConfig { pps: Some(20_000.0), mbps: None }, 32, 1514).unwrap();
        let (f, _, longest) = flood(&mut c, 0.5, 32, 32 * 100);
        // 0.5 s at 20 kpps = 10,000 plus at most one burst (max(32, 20) frames) and a batch
        assert!(f <= 10_000 + 64, "{f} frames admitted in 0.5 s");
        // it never asks for longer than a batch takes at the rate (32 frames: 1.6 ms); what a
        // sender gets then depends on the CPU it is given (a loaded 2-core VM took a third)
        assert!(longest <= Duration::from_micros(1_610), "asked to wait {longest:?}");
        assert!(f >= 5_000, "{f} frames: the ceiling should not starve the sender");
        assert!(c.waits > 0);
    }

    #[test]
    fn byte_ceiling_holds_under_a_flood() {
        let _timing = crate::emit::timing_lock();
        // 8 Mbit/s = 1 MB/s; 1000-byte frames, 10 per batch
        let mut c = Ceiling::new(CeilingConfig { pps: None, mbps: Some(8.0) }, 10, 1000).unwrap();
        let (_, b, longest) = flood(&mut c, 0.5, 10, 10_000);
        // 10,000 bytes take 10 ms at 1 MB/s
        assert!(longest <= Duration::from_micros(10_050), "asked to wait {longest:?}");
        assert!(b <= 500_000 + 12_000, "{b} bytes admitted in 0.5 s");
        assert!(b >= 250_000, "{b} bytes: the ceiling should not starve the sender");
    }

    #[test]
    fn no_limit_admits_everything_and_bad_values_are_refused() {
        let mut c = Ceiling::new(CeilingConfig::default(), 32, 1514).unwrap();
        assert!(c.is_unlimited());
        for _ in 0..10_000 {
            assert_eq!(c.admit(32, 48_000), None);
        }
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e9] {
            assert!(Ceiling::new(CeilingConfig { pps: Some(bad), mbps: None }, 32, 1514).is_err(), "{bad}");
        }
        assert!(Ceiling::new(CeilingConfig { pps: None, mbps: Some(0.0) }, 32, 1514).is_err());
    }
}
