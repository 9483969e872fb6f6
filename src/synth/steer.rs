//! Steering a flow's token choices towards the bytes the aggregate model drew for it.
//!
//! The flow LSTM writes a flow's packets without knowing how big the flow is to be, so its
//! packet sizes come out the same in a 1-packet flow as in a bulk transfer; in real traffic
//! they are not (a backbone capture's lone packets are ACKs, its long flows full-size
//! segments). The aggregate model draws each flow's (packets, bytes, duration) jointly, so
//! the engine knows the payload the flow's next packet should carry (its *aim*: what the
//! flow still lacks over its packets to come). This module makes the next token choice among
//! (component, payload bin) pairs of the packet bank (a component that is one kind of packet
//! is one choice; one that lumps several, such as DHCP and bulk UDP, is steered through its
//! bins), weighted by
//! - the LSTM's probability of the component,
//! - a preference for payloads near the aim (a Gaussian in `ln(payload + 40)`), so a flow of
//!   300-byte packets gets packets near 300 bytes rather than an even mix of 75 and 600; its
//!   width grows with the packets the aim is spread over, as the aim is then an average and
//!   not each packet's size (an IoT hub's flow sends a 200-byte request, an ACK and a
//!   17-byte one before its 854-byte report rides on its FIN: with the preference as narrow
//!   for all four, the request came out as an ACK and a 150-byte packet took the ACK's place),
//! - an exponential tilt `e^{θ x}` whose θ makes the expected payload the aim: among all
//!   distributions with that mean, the tilted one is the closest to the weights before it
//!   (least Kullback–Leibler divergence), so the sequence keeps its shape.
//!
//! The tilt is bounded per byte, so choices a few bytes apart (a DHCP request and its reply)
//! are barely told apart and the LSTM keeps its order; a choice over all the flow has left
//! is left out while a smaller one remains. A miss is made up on the packets that follow (the
//! engine's aim counts what was sent). This module does not choose aims (the engine does) or
//! decode packets.

use crate::model::lean_lstm::{draw_weighted, exp_approx};
use crate::model::packet_bank::BINS;
use crate::rng::SplitMix64;

/// Most log-odds the tilt may give one choice over another a full segment bigger or smaller
/// (e^12 ≈ 160,000): enough to pick a rare component when the goal needs it.
const MAX_TILT: f32 = 12.0;
/// The payload difference over which the full tilt acts, bytes (a TCP segment's payload at
/// a 1,500-byte MTU). Choices a few bytes apart (one kind of packet split by the clustering)
/// are barely told apart, so noise in a flow's drawn bytes does not swap them.
const TILT_SPAN: f32 = 1460.0;
/// A choice bigger than all the flow has left to carry plus this many bytes is left out,
/// unless it is the smallest the LSTM allows: one packet the size of a coalesced 64 KB
/// segment would overshoot a small flow's bytes for good, as later packets cannot carry less
/// than nothing.
const SLACK: f32 = 50.0;
/// Steps on θ at most; each costs one exponential per choice (most goals take 3–5).
const NEWTON_STEPS: usize = 6;
/// Goal met to within this many bytes: stop early.
const CLOSE_ENOUGH: f32 = 0.5;
/// Components the LSTM gives less than this (relative to its likeliest) are left out (the
/// full tilt could still make one 160 times as likely as the likeliest).
const NEGLIGIBLE: f32 = 1e-3;

/// Width of the preference for choices near the aim, for the flow's last data packet: e-folds
/// of `ln(payload + KERNEL_C)` (0.5: a choice 1.65 times the aim (plus KERNEL_C) weighs
/// e^-0.5 of one at the aim). An aim spread over `n` packets has `n` times the width.
const KERNEL_WIDTH: f32 = 0.5;
/// Bytes added to payloads before taking their logarithm, so that an empty ACK and a
/// 20-byte segment are near, as on the wire (their headers make them so).
const KERNEL_C: f32 = 40.0;

/// A component whose bins span fewer bytes than this is one choice (its bin drawn uniformly):
/// most components are one kind of packet (an ACK, a DNS query), and steering among their
/// bins would only cost time.
const FLAT: f32 = 16.0;

/// Marks a choice that is a whole (flat) component.
const WHOLE: u32 = 1 << 31;

/// Scratch of the choices a draw is made among, kept between draws, and the bins' log
/// payloads (worked out on the first draw).
#[derive(Default)]
pub struct Choices {
    /// Per component: the LSTM's weight relative to its likeliest.
    lstm: Vec<f32>,
    weight: Vec<f32>,
    payload: Vec<f32>,
    /// `component * BINS + bin`.
    id: Vec<u32>,
    /// Exponents, then their exponentials (apart from any sum, so the loop vectorises).
    factor: Vec<f32>,
    /// Worked out from the bins on the first draw: each bin's `ln(payload + KERNEL_C)`, and
    /// per component its mean payload and the log of it when it is flat (NaN otherwise).
    log_bins: Vec<f32>,
    mean: Vec<f32>,
    flat_log: Vec<f32>,
}

impl Choices {
    fn learn(&mut self, bins: &[f32]) {
        let log = |x: f32| (x.max(0.0) + KERNEL_C).ln();
        self.log_bins = bins.iter().map(|&x| log(x)).collect();
        self.mean = bins.chunks(BINS).map(|b| b.iter().sum::<f32>() / BINS as f32).collect();
        self.flat_log = bins.chunks(BINS).zip(&self.mean).map(|(b, &m)| if b[BINS - 1] - b[0] < FLAT { log(m) } else { f32::NAN }).collect();
    }
}

/// One steered choice: the component, its payload bin, and the side that sends it (`None`
/// when the caller gave no sides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Steered {
    pub component: usize,
    pub bin: usize,
    pub backward: Option<bool>,
}

/// Samples a component from `logits` (one per component, END left out) and a payload bin of
/// it ([`crate::model::packet_bank::PacketBank::bin_payloads`], `bins`), tilted so that the
/// expected payload is `goal` bytes, as near as the tilt bound allows, and choices near the
/// goal are preferred (`KERNEL_WIDTH`, times `left`: the data packets the goal is the mean
/// of); `budget` is the payload the flow has left to carry in all (`SLACK`).
///
/// `back` (one per component, or empty) is each component's share of packets sent by the
/// server ([`crate::model::packet_bank::PacketBank::back_shares`]). The side that sends is
/// drawn first, with the odds the LSTM gives it, and the sizes are steered among that side's
/// choices only: steering picks how big the next packet is, never who sends it (an IoT
/// hub's request, aimed at the flow's mean payload, once came out as the server's 854-byte
/// report in one flow in five, the conversation's first word said by the wrong side).
#[allow(clippy::too_many_arguments)]
pub fn sample_towards(logits: &[f32], bins: &[f32], back: &[f32], goal: f32, budget: f32, left: f32, c: &mut Choices, rng: &mut SplitMix64) -> Steered {
    debug_assert_eq!(logits.len() * BINS, bins.len());
    if c.log_bins.len() != bins.len() {
        c.learn(bins);
    }
    let log_goal = (goal.max(0.0) + KERNEL_C).ln();
    let width = KERNEL_WIDTH * left.max(1.0);
    let spread = 0.5 / (width * width);
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    c.lstm.clear();
    c.lstm.extend(logits.iter().map(|&l| exp_approx(l - max)));
    let backward = (back.len() == logits.len()).then(|| {
        let (mut wb, mut wt) = (0f64, 0f64);
        for (&w, &b) in c.lstm.iter().zip(back).filter(|(&w, _)| w >= NEGLIGIBLE) {
            wb += f64::from(w) * f64::from(b);
            wt += f64::from(w);
        }
        rng.next_f64() * wt < wb
    });
    c.weight.clear();
    c.payload.clear();
    c.id.clear();
    for (k, &w) in c.lstm.iter().enumerate() {
        if w < NEGLIGIBLE {
            continue;
        }
        let w = match backward {
            Some(true) => w * back[k],
            Some(false) => w * (1.0 - back[k]),
            None => w,
        };
        if w <= 0.0 {
            continue;
        }
        let first = k * BINS;
        if !c.flat_log[k].is_nan() {
            // one choice at the component's mean (a uniform bin)
            let d = c.flat_log[k] - log_goal;
            c.weight.push(w);
            c.payload.push(d * d);
            c.id.push(k as u32 | WHOLE);
            continue;
        }
        for b in 0..BINS {
            let i = first + b;
            let d = c.log_bins[i] - log_goal;
            // the squared distance for now; the preference once the nearest is known
            c.weight.push(w);
            c.payload.push(d * d);
            c.id.push(i as u32);
        }
    }
    // relative to the nearest choice, so that some weight stays however far the goal is
    let nearest = c.payload.iter().copied().fold(f32::INFINITY, f32::min);
    c.factor.clear();
    c.factor.extend(c.payload.iter().map(|&d2| -spread * (d2 - nearest)));
    exp_all(&mut c.factor);
    for (((w, x), &i), &f) in c.weight.iter_mut().zip(c.payload.iter_mut()).zip(&c.id).zip(&c.factor) {
        *w *= f;
        *x = if i & WHOLE != 0 { c.mean[(i & !WHOLE) as usize] } else { bins[i as usize] };
    }
    // the choices over budget left out (the smallest choice always stays)
    let smallest = c.payload.iter().copied().fold(f32::INFINITY, f32::min);
    let cap = (budget.max(0.0) + SLACK).max(smallest);
    if c.payload.iter().any(|&x| x > cap) {
        let mut kept = 0;
        for i in 0..c.id.len() {
            if c.payload[i] <= cap {
                c.weight[kept] = c.weight[i];
                c.payload[kept] = c.payload[i];
                c.id[kept] = c.id[i];
                kept += 1;
            }
        }
        c.weight.truncate(kept);
        c.payload.truncate(kept);
        c.id.truncate(kept);
    }
    let theta = tilt(&c.weight, &c.payload, goal, &mut c.factor);
    if theta != 0.0 {
        // relative to the payload the tilt favours most, so every factor is ≤ 1
        let base = if theta > 0.0 { c.payload.iter().copied().fold(f32::NEG_INFINITY, f32::max) } else { c.payload.iter().copied().fold(f32::INFINITY, f32::min) };
        c.factor.clear();
        c.factor.extend(c.payload.iter().map(|&x| theta * (x - base)));
        exp_all(&mut c.factor);
        for (w, &f) in c.weight.iter_mut().zip(&c.factor) {
            *w *= f;
        }
    }
    let id = c.id[draw_weighted(&c.weight, rng)];
    let (component, bin) = if id & WHOLE != 0 { ((id & !WHOLE) as usize, rng.below(BINS as u64) as usize) } else { (id as usize / BINS, id as usize % BINS) };
    Steered { component, bin, backward }
}

/// θ of the tilt of `weights` (unnormalised probabilities) whose mean of `x` is `goal`:
/// Newton's method from 0, kept inside a bracket that shrinks with every step (bisecting when
/// a step would leave it: the tilted mean is monotone in θ but S-shaped, where plain Newton
/// overshoots), bounded to ±MAX_TILT over TILT_SPAN bytes; a goal out of reach stops at the
/// bound. `factor` is scratch.
fn tilt(weights: &[f32], x: &[f32], goal: f32, factor: &mut Vec<f32>) -> f32 {
    let (lo, hi) = x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let spread = hi - lo;
    if !(spread > 0.0 && goal.is_finite()) {
        return 0.0;
    }
    let bound = MAX_TILT / TILT_SPAN;
    let (mut below, mut above) = (-bound, bound);
    let mut theta = 0.0f32;
    for _ in 0..NEWTON_STEPS {
        // moments of the tilted distribution (factors relative to the payload θ favours, so
        // none exceeds 1 and the favoured one is 1)
        let base = if theta > 0.0 { hi } else { lo };
        factor.clear();
        factor.extend(x.iter().map(|&v| theta * (v - base)));
        exp_all(factor);
        let (mut s0, mut s1, mut s2) = (0.0f32, 0.0f32, 0.0f32);
        for ((&w, &v), &f) in weights.iter().zip(x).zip(factor.iter()) {
            let d = v - lo;
            let t = w * f;
            s0 += t;
            s1 += t * d;
            s2 += t * d * d;
        }
        if s0.is_nan() || s0 <= 0.0 {
            return 0.0;
        }
        let mean = s1 / s0;
        let var = (s2 / s0 - mean * mean).max(0.0);
        let miss = goal - lo - mean;
        if miss.abs() < CLOSE_ENOUGH.max(0.02 * goal.abs()) || (theta.abs() >= bound && (miss > 0.0) == (theta > 0.0)) {
            // met, or out of reach at the bound
            break;
        }
        if miss > 0.0 {
            below = theta;
        } else {
            above = theta;
        }
        let newton = if var > 0.0 { theta + miss / var } else { f32::NAN };
        let next = if newton > below && newton < above {
            newton
        } else if newton >= above && above == bound && theta != bound {
            // a step past the bound, not yet tried: the bound itself (the goal may be out of reach)
            bound
        } else if newton <= below && below == -bound && theta != -bound {
            -bound
        } else {
            0.5 * (below + above)
        };
        if next == theta {
            break;
        }
        theta = next;
    }
    theta
}

/// e^x of every element, in place (plain arithmetic per element: the loop vectorises).
fn exp_all(v: &mut [f32]) {
    for x in v.iter_mut() {
        *x = exp_approx(*x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bins of a component whose packets all carry `x` bytes.
    fn flat(xs: &[f32]) -> Vec<f32> {
        xs.iter().flat_map(|&x| [x; BINS]).collect()
    }

    /// Mean payload of `n` draws aimed at `goal` bytes.
    fn mean_of_draws(logits: &[f32], bins: &[f32], goal: f32, n: usize) -> f64 {
        let mut rng = SplitMix64::new(7);
        let mut c = Choices::default();
        (0..n)
            .map(|_| {
                let Steered { component: k, bin: b, .. } = sample_towards(logits, bins, &[], goal, f32::INFINITY, 1.0, &mut c, &mut rng);
                f64::from(bins[k * BINS + b])
            })
            .sum::<f64>()
            / n as f64
    }

    fn own_mean(logits: &[f32], bins: &[f32]) -> f32 {
        let w: Vec<f32> = logits.iter().map(|&l| l.exp()).collect();
        let m: Vec<f32> = bins.chunks(BINS).map(|b| b.iter().sum::<f32>() / BINS as f32).collect();
        w.iter().zip(&m).map(|(a, b)| a * b).sum::<f32>() / w.iter().sum::<f32>()
    }

    #[test]
    fn the_tilted_mean_is_the_goal() {
        // an LSTM that mostly says "ACK" (0 bytes), sometimes a full segment or a small one
        let logits = [2.0f32, 0.0, -1.0];
        let bins = flat(&[0.0, 1448.0, 300.0]);
        for goal in [100.0f32, 500.0, 1000.0, 1300.0] {
            let m = mean_of_draws(&logits, &bins, goal, 40_000);
            assert!((m - f64::from(goal)).abs() < 0.03 * f64::from(goal) + 10.0, "goal {goal}: mean {m}");
        }
    }

    #[test]
    fn a_wide_component_is_steered_within_itself() {
        // one component whose packets run from 50 to 2,850 bytes (DHCP and bulk UDP lumped
        // together by the clustering): the bins carry the steering
        let bins: Vec<f32> = (0..BINS).map(|b| 50.0 + 400.0 * b as f32).collect();
        let own = own_mean(&[0.0], &bins);
        assert!((mean_of_draws(&[0.0], &bins, own, 20_000) - f64::from(own)).abs() < 20.0);
        let small = mean_of_draws(&[0.0], &bins, 300.0, 20_000);
        assert!((small - 300.0).abs() < 30.0, "{small}");
        let big = mean_of_draws(&[0.0], &bins, 2500.0, 20_000);
        assert!((big - 2500.0).abs() < 60.0, "{big}");
    }

    #[test]
    fn choices_near_the_goal_are_preferred() {
        // a component of 75 to 643 bytes (and one bin of 3,000): aimed at 273, most draws
        // fall near it rather than evenly over the bins
        let bins = [75.0f32, 127.0, 168.0, 198.0, 234.0, 280.0, 643.0, 3000.0];
        let mut rng = SplitMix64::new(3);
        let mut c = Choices::default();
        let n = 20_000;
        let near = (0..n).filter(|_| (198..=280).contains(&(bins[sample_towards(&[0.0], &bins, &[], 273.0, f32::INFINITY, 1.0, &mut c, &mut rng).bin] as i32))).count();
        assert!(near as f64 > 0.6 * n as f64, "{near} of {n} within 198-280 bytes");
        // and the LSTM's preferences still count: a component it gives e^4 more stays ahead
        let two = flat(&[260.0, 300.0]);
        let first = (0..n).filter(|_| sample_towards(&[4.0, 0.0], &two, &[], 300.0, f32::INFINITY, 1.0, &mut c, &mut rng).component == 0).count();
        assert!(first as f64 > 0.9 * n as f64, "{first} of {n}");
    }

    #[test]
    fn an_aim_over_several_packets_keeps_the_lstms_mix() {
        // the LSTM says an ACK or a 200-byte request, seldom a 100-byte packet; aimed at 100
        let logits = [0.45f32.ln(), 0.1f32.ln(), 0.45f32.ln()];
        let bins = flat(&[0.0, 100.0, 200.0]);
        let mut rng = SplitMix64::new(11);
        let mut c = Choices::default();
        let n = 20_000;
        let middle = |left: f32, c: &mut Choices, rng: &mut SplitMix64| (0..n).filter(|_| sample_towards(&logits, &bins, &[], 100.0, f32::INFINITY, left, c, rng).component == 1).count() as f64 / n as f64;
        // the last packet: near the aim; one of four: the aim is their mean, the mix stays
        let (last, one_of_four) = (middle(1.0, &mut c, &mut rng), middle(4.0, &mut c, &mut rng));
        assert!(last > 0.3, "{last} {one_of_four}");
        assert!(one_of_four < 0.15, "{last} {one_of_four}");
    }

    #[test]
    fn steering_picks_sizes_and_leaves_the_sides_to_the_lstm() {
        // the client's 200-byte request (9 in 10 by the LSTM), the server's 854-byte report,
        // and an ACK either side may send (half each); aimed at 800 bytes
        let logits = [0.6f32.ln(), 0.067f32.ln(), 0.333f32.ln()];
        let bins = flat(&[200.0, 854.0, 0.0]);
        let back = [0.0f32, 1.0, 0.5];
        let mut rng = SplitMix64::new(13);
        let mut c = Choices::default();
        let n = 20_000;
        let draws: Vec<Steered> = (0..n).map(|_| sample_towards(&logits, &bins, &back, 800.0, f32::INFINITY, 1.0, &mut c, &mut rng)).collect();
        // the server speaks as often as the LSTM says: 0.067 + 0.333 / 2 = 0.23
        let server = draws.iter().filter(|d| d.backward == Some(true)).count() as f64 / n as f64;
        assert!((server - 0.233).abs() < 0.015, "server sends {server}");
        // each side's choices only: never the report from the client, nor the request from the server
        assert!(draws.iter().all(|d| (d.component, d.backward) != (1, Some(false)) && (d.component, d.backward) != (0, Some(true))));
        // and within a side the sizes are steered: the server's turn is mostly the report
        let report = draws.iter().filter(|d| d.component == 1).count() as f64 / (server * n as f64);
        assert!(report > 0.9, "{report} of the server's turns are the report");
        // without sides, the aim takes the report from the request's turns too
        let unsided = (0..n).filter(|_| sample_towards(&logits, &bins, &[], 800.0, f32::INFINITY, 1.0, &mut c, &mut rng).component == 1).count() as f64 / n as f64;
        assert!(unsided > 0.5, "{unsided}");
    }

    #[test]
    fn near_choices_are_barely_told_apart_and_far_goals_stay_bounded() {
        let near = mean_of_draws(&[0.0, 0.0], &flat(&[300.0, 302.0]), 302.0, 20_000);
        assert!((near - 301.0).abs() < 0.1, "{near}");
        let bins = flat(&[0.0, 1448.0]);
        // a component the LSTM gives e^-30 is left out: the tilt is bounded
        assert!(mean_of_draws(&[0.0, -30.0], &bins, 5000.0, 2000) < 10.0);
        assert!(mean_of_draws(&[0.0, -5.0], &bins, 5000.0, 2000) > 1400.0);
        assert!(mean_of_draws(&[3.0, 0.0], &bins, -100.0, 2000) < 1.0);
        // a budget of 200 bytes leaves the full segments out while smaller choices remain
        let mut c = Choices::default();
        let mut rng = SplitMix64::new(5);
        let three = flat(&[0.0, 1448.0, 300.0]);
        for _ in 0..1000 {
            let k = sample_towards(&[0.0, 5.0, 0.0], &three, &[], 250.0, 200.0, 1.0, &mut c, &mut rng).component;
            assert_ne!(k, 1);
        }
        // with every choice over it, the budget leaves none out
        let k = sample_towards(&[0.0], &flat(&[1448.0]), &[], 0.0, -50.0, 1.0, &mut c, &mut rng).component;
        assert_eq!(k, 0);
        // equal payloads or a NaN goal: no tilt
        assert_eq!(tilt(&[1.0, 1.0], &[5.0, 5.0], 100.0, &mut Vec::new()), 0.0);
        assert_eq!(tilt(&[1.0, 1.0], &[5.0, 50.0], f32::NAN, &mut Vec::new()), 0.0);
    }
}
