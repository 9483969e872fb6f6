//! The gaps each packet component's later packets had in training, which the bank's decoded
//! gaps are mapped onto.
//!
//! A flow's first packet has no gap, and the feature vector writes it as the smallest gap
//! (`log10` of 0.1 µs), as it writes a zero gap. Where most flows are a packet or two (a
//! backbone link), most rows of a component are first packets: the VAE decodes the component
//! to "no gap", smeared over 0–3 µs. A later packet drawn from it got that gap. On
//! netshare_caida 35 % of the synthetic gaps inside flows were under 1 µs, against 10 % in
//! training, and their median was 4.8 µs against 10–12 µs.
//!
//! So training keeps, per component, the share of zero gaps and [`QUANTILES`] quantiles of
//! the positive `log10` gaps of its rows that are not a flow's first ([`ComponentGaps::fit`]).
//! A component with fewer than [`MIN_ROWS`] such rows is topped up with every component's,
//! weighted to make up the difference. The packet bank then gives each component's decoded
//! packets, in order of their decoded gaps, the gaps at their ranks
//! ([`ComponentGaps::map_ranked`]): the gaps' distribution in a component is training's, and
//! which of its packets get the shorter gaps is still the VAE's. No random draw is made, so
//! the random streams of generation stay as they are. This module does not choose components
//! or pace flows.

use tch::{Kind, Tensor};

use super::dataset::{col, Dataset};

/// Quantiles of the positive log gaps kept per component.
pub const QUANTILES: usize = 33;
/// Rows a component's table rests on; fewer are topped up with every component's rows.
pub const MIN_ROWS: usize = 20;
/// A `log10` gap at or below this is a zero gap (the feature's floor is −7, 0.1 µs).
const ZERO_LOG: f64 = -6.95;
/// Values per component in the stored table: the zero share, then the quantiles.
const WIDTH: usize = QUANTILES + 1;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ComponentGaps {
    /// `k × WIDTH`: per component, its share of zero gaps and the quantiles (`log10` s,
    /// ascending) of its positive gaps; empty: decoded gaps are used as they are.
    table: Vec<f64>,
}

impl ComponentGaps {
    /// The tables of `k` components from the rows of `flows` of `ds` after each flow's first,
    /// `components[row]` the component of a row.
    pub fn fit(ds: &Dataset, flows: impl Iterator<Item = usize>, components: &[i64], k: usize) -> ComponentGaps {
        let mut logs: Vec<Vec<f64>> = vec![Vec::new(); k];
        for f in flows.filter_map(|i| ds.flows.get(i)) {
            let later = components.get(f.start + 1..(f.start + f.len).min(components.len())).unwrap_or_default();
            for (row, &c) in (f.start + 1..).zip(later) {
                let l = f64::from(ds.row(row)[col::LOG_DT]);
                if let Some(c) = usize::try_from(c).ok().filter(|&c| c < k && l.is_finite()) {
                    logs[c].push(l);
                }
            }
        }
        let pool: Vec<f64> = logs.iter().flatten().copied().collect();
        if pool.is_empty() {
            return ComponentGaps::default();
        }
        let table = logs
            .iter()
            .flat_map(|own| {
                // the component's rows weigh 1 each, the pool makes up what it lacks of MIN_ROWS
                let top_up = MIN_ROWS.saturating_sub(own.len()) as f64 / pool.len() as f64;
                let rows: Vec<(f64, f64)> = own.iter().map(|&l| (l, 1.0)).chain(pool.iter().map(|&l| (l, top_up)).filter(|r| r.1 > 0.0)).collect();
                summary(rows)
            })
            .collect();
        ComponentGaps { table }
    }

    /// Whether there is a table for `k` components.
    pub fn fits(&self, k: usize) -> bool {
        self.table.len() == k * WIDTH
    }

    /// Gives component `c`'s `gaps` (seconds, any order) the gaps of its table at their ranks:
    /// the `i`-th smallest of `n` takes the quantile at `(i + ½) / n` (ties keep their order).
    /// Leaves them as they are without a table for `c`.
    pub fn map_ranked(&self, c: usize, gaps: &mut [f32]) {
        let Some(t) = self.table.get(c * WIDTH..(c + 1) * WIDTH) else { return };
        let (zero, q) = (t[0], &t[1..]);
        let mut order: Vec<usize> = (0..gaps.len()).collect();
        order.sort_by(|&a, &b| gaps[a].total_cmp(&gaps[b]));
        let n = gaps.len() as f64;
        for (rank, &i) in order.iter().enumerate() {
            let u = (rank as f64 + 0.5) / n;
            gaps[i] = if u < zero || q[0].is_nan() {
                0.0
            } else {
                log_quantile_at(q, ((u - zero) / (1.0 - zero)).clamp(0.0, 1.0)) as f32
            };
        }
    }

    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        vec![("component_gaps".into(), Tensor::from_slice(&self.table).view([-1, WIDTH as i64]))]
    }

    /// The table of a model file; `k` components.
    pub fn from_named(get: &dyn Fn(&str) -> Option<Tensor>, k: usize) -> Result<ComponentGaps, String> {
        let t = get("component_gaps").ok_or("tensor `component_gaps` is missing")?;
        if t.size() != [k as i64, WIDTH as i64] {
            return Err(format!("tensor `component_gaps` is {:?}, expected [{k}, {WIDTH}] ({k} packet components)", t.size()));
        }
        let table = Vec::<f64>::try_from(t.to_kind(Kind::Double).view([-1])).map_err(|e| format!("tensor `component_gaps`: {e}"))?;
        for (c, row) in table.chunks(WIDTH).enumerate() {
            let (zero, q) = (row[0], &row[1..]);
            let positive_ok = if q[0].is_nan() { zero == 1.0 && q.iter().all(|x| x.is_nan()) } else { q.iter().all(|x| x.is_finite() && *x > ZERO_LOG && *x <= 7.0) && q.windows(2).all(|w| w[0] <= w[1]) };
            if !((0.0..=1.0).contains(&zero) && positive_ok) {
                return Err(format!("tensor `component_gaps`, component {c}: needs a zero share in [0, 1] and ascending log10 gaps above {ZERO_LOG}"));
            }
        }
        Ok(ComponentGaps { table })
    }
}

/// The value at level `u` in [0, 1] of a distribution given by equally spaced quantiles `q`
/// of its `log10` (at least two), log-linear between them.
pub fn log_quantile_at(q: &[f64], u: f64) -> f64 {
    let x = u * (q.len() - 1) as f64;
    let i = (x as usize).min(q.len() - 2);
    10f64.powf(q[i] + (q[i + 1] - q[i]) * (x - i as f64))
}

/// One component's row: the weighted share of zero gaps, then the quantiles of the positive
/// ones (NaN when it has none).
fn summary(mut rows: Vec<(f64, f64)>) -> Vec<f64> {
    let total: f64 = rows.iter().map(|r| r.1).sum();
    let zero: f64 = rows.iter().filter(|r| r.0 <= ZERO_LOG).map(|r| r.1).sum();
    rows.retain(|r| r.0 > ZERO_LOG);
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = vec![if total > 0.0 { zero / total } else { 1.0 }];
    if rows.is_empty() {
        out[0] = 1.0;
        out.extend([f64::NAN; QUANTILES]);
        return out;
    }
    // each row at the middle of its weight on [0, 1]; quantiles interpolate between them
    let sum: f64 = rows.iter().map(|r| r.1).sum();
    let mut mids = Vec::with_capacity(rows.len());
    let mut acc = 0.0;
    for r in &rows {
        mids.push((acc + r.1 / 2.0) / sum);
        acc += r.1;
    }
    for j in 0..QUANTILES {
        let p = j as f64 / (QUANTILES - 1) as f64;
        let i = mids.partition_point(|&m| m < p);
        out.push(match i {
            0 => rows[0].0,
            i if i == rows.len() => rows[i - 1].0,
            i => {
                let w = (p - mids[i - 1]) / (mids[i] - mids[i - 1]);
                rows[i - 1].0 + w * (rows[i].0 - rows[i - 1].0)
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowKind;
    use crate::model::dataset::{FlowSeq, PACKET_DIM};
    use crate::rng::SplitMix64;

    fn push(ds: &mut Dataset, log_dt: f64) {
        let mut v = [0f32; PACKET_DIM];
        v[col::LOG_DT] = log_dt as f32;
        ds.packets.extend_from_slice(&v);
    }

    /// 400 flows: 300 of one packet (component 0), 100 of three packets whose later two are
    /// component 1 at 10–100 µs, or component 0 with a zero gap for every tenth.
    fn backbone() -> (Dataset, Vec<i64>) {
        let mut ds = Dataset::default();
        let mut comps = Vec::new();
        let mut rng = SplitMix64::new(5);
        for f in 0..400 {
            let start = ds.packets.len() / PACKET_DIM;
            push(&mut ds, -7.0);
            comps.push(0);
            let len = if f < 300 { 1 } else { 3 };
            for i in 1..len {
                if f % 10 == 0 && i == 1 {
                    push(&mut ds, -7.0);
                    comps.push(0);
                } else {
                    push(&mut ds, -5.0 + rng.next_f64());
                    comps.push(1);
                }
            }
            ds.flows.push(FlowSeq { kind: FlowKind::Connected, start, len });
        }
        (ds, comps)
    }

    #[test]
    fn a_component_of_first_packets_takes_the_gaps_its_later_packets_had() {
        let (ds, comps) = backbone();
        let g = ComponentGaps::fit(&ds, 0..ds.flows.len(), &comps, 3);
        assert!(g.fits(3) && !g.fits(2));
        // component 0: 10 later rows, all zero gaps, topped up by 10 rows' worth of the pool
        // (200 rows, 10 of them zero): a zero share of (10 + 10·10/200) / 20
        let t0 = &g.table[..WIDTH];
        assert!((t0[0] - 10.5 / 20.0).abs() < 1e-9, "{t0:?}");
        assert!(t0[1] >= -5.0 && t0[QUANTILES] <= -4.0, "{t0:?}");
        // component 1: its own 190 gaps, uniform in log over [-5, -4]
        let t1 = &g.table[WIDTH..2 * WIDTH];
        assert_eq!(t1[0], 0.0);
        assert!((t1[1] + 5.0).abs() < 0.02 && (t1[QUANTILES] + 4.0).abs() < 0.02 && (t1[17] + 4.5).abs() < 0.05, "{t1:?}");
        // component 2 has no rows: the pool's
        assert!((g.table[2 * WIDTH] - 10.0 / 200.0).abs() < 1e-9);

        // decoded gaps of component 0 smeared around "no gap" take component 0's gaps
        let mut gaps: Vec<f32> = (0..1000).map(|i| if i % 3 == 0 { 0.0 } else { 1e-7 * (1.0 + (i % 17) as f32) }).collect();
        let before = gaps.clone();
        g.map_ranked(0, &mut gaps);
        let zeros = gaps.iter().filter(|&&x| x == 0.0).count();
        assert!((zeros as f64 - 1000.0 * t0[0]).abs() <= 1.0, "{zeros}");
        assert!(gaps.iter().filter(|&&x| x > 0.0).all(|&x| (1e-5..=1e-4).contains(&x)), "{gaps:?}");
        // the order by gap is kept: a larger decoded gap never gets a smaller one
        for (a, b) in before.iter().zip(&gaps) {
            for (c, d) in before.iter().zip(&gaps) {
                assert!(!(a < c && b > d));
            }
        }
        // without a table the decoded gaps stay
        let mut same = before.clone();
        ComponentGaps::default().map_ranked(0, &mut same);
        assert_eq!(same, before);
    }

    #[test]
    fn round_trips_and_names_a_malformed_table() {
        let (ds, comps) = backbone();
        let g = ComponentGaps::fit(&ds, 0..ds.flows.len(), &comps, 3);
        let t = g.named_tensors();
        let get = |n: &str| t.iter().find(|(k, _)| k == n).map(|(_, v)| v.shallow_clone());
        assert_eq!(ComponentGaps::from_named(&get, 3).unwrap(), g);
        let e = ComponentGaps::from_named(&get, 4).unwrap_err();
        assert!(e.contains("component_gaps") && e.contains("[4, 34]"), "{e}");
        let mut bad = g.table.clone();
        bad[WIDTH + 3] = 9.0;
        let e = ComponentGaps::from_named(&|_| Some(Tensor::from_slice(&bad).view([3, WIDTH as i64])), 3).unwrap_err();
        assert!(e.contains("component 1"), "{e}");
        assert!(ComponentGaps::from_named(&|_| None, 3).unwrap_err().contains("missing"));
        // no later packets at all: nothing to map to
        let (mut one, _) = backbone();
        one.flows.iter_mut().for_each(|f| f.len = 1);
        assert_eq!(ComponentGaps::fit(&one, 0..one.flows.len(), &comps, 3), ComponentGaps::default());
    }
}
