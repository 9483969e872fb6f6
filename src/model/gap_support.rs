//! The time gaps that recur in the training data, so decoded packets keep them exact.
//!
//! Periodic traffic repeats exact gaps between a flow's packets: a DHCP server answering 10 ms
//! after each request, a Modbus master polling every 100 ms, RTP every 20 ms. The VAE decodes a
//! continuous log gap, so its samples land a few percent off such a gap and the whole spike
//! moves (a two-sample KS of 1 against the real gaps). This module finds the spikes of the
//! training gaps — a narrow bin (0.002 decade, 0.5 %) holding at least [`MIN_SHARE`] of the
//! gaps and [`PEAK_RATIO`] times the density around it — keeps each one's median (at most
//! [`MAX_VALUES`]), and snaps a decoded gap within [`SNAP_TOLERANCE`] of a kept one to it.
//! Gaps elsewhere stay continuous; smooth modes are no spikes and are not kept. It does not
//! decide gaps (the packet level does).

use tch::{Kind, Tensor};

use super::dataset::{col, Dataset};
use super::payload_support::nearest;

/// Share of training gaps a spike needs.
pub const MIN_SHARE: f64 = 0.01;
/// A spike's bin holds this many times the mean count of the bins around it.
pub const PEAK_RATIO: f64 = 20.0;
/// Most gaps kept.
pub const MAX_VALUES: usize = 64;
/// A decoded gap within this fraction of a kept gap becomes that gap.
pub const SNAP_TOLERANCE: f64 = 0.08;
/// Bin width and neighbourhood, in decades.
const BIN: f64 = 0.002;
const AROUND: i64 = 50;
/// Log gaps at or below this are "no gap" (a flow's first packet), as in `decode_row`.
const NO_GAP_LOG: f64 = -6.9;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct GapSupport {
    /// Kept gaps in seconds, ascending.
    pub values: Vec<f64>,
}

impl GapSupport {
    /// The recurring gaps of rows `rows` of `ds`.
    pub fn fit(ds: &Dataset, rows: impl Iterator<Item = usize>) -> GapSupport {
        let mut logs: Vec<f64> = rows.map(|r| f64::from(ds.row(r)[col::LOG_DT])).filter(|&l| l > NO_GAP_LOG && l.is_finite()).collect();
        if logs.is_empty() {
            return GapSupport::default();
        }
        logs.sort_by(f64::total_cmp);
        let n = logs.len() as f64;
        let mut bins: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
        for &l in &logs {
            bins.entry((l / BIN).floor() as i64).or_default().push(l);
        }
        let count = |b: i64| bins.get(&b).map_or(0, Vec::len) as f64;
        let mut peaks: Vec<(f64, f64)> = Vec::new();
        for (&b, members) in &bins {
            let c = members.len() as f64;
            if c < MIN_SHARE * n || c < 5.0 {
                continue;
            }
            // a local maximum (ties go to the lower bin), far above the bins around it
            if count(b - 1) > c || count(b + 1) >= c {
                continue;
            }
            let around: f64 = (b - AROUND..=b + AROUND).filter(|&x| (x - b).abs() > 1).map(count).sum();
            if c < PEAK_RATIO * around / (2 * AROUND - 2) as f64 {
                continue;
            }
            // the spike's value: the median of its bin and the two beside it
            let mut v: Vec<f64> = (b - 1..=b + 1).filter_map(|x| bins.get(&x)).flatten().copied().collect();
            v.sort_by(f64::total_cmp);
            peaks.push((10f64.powf(v[v.len() / 2]), c));
        }
        peaks.sort_by(|a, b| b.1.total_cmp(&a.1));
        peaks.truncate(MAX_VALUES);
        let mut values: Vec<f64> = peaks.into_iter().map(|p| p.0).collect();
        values.sort_by(f64::total_cmp);
        GapSupport { values }
    }

    /// `gap_s`, or the nearest recurring gap when it is close enough.
    pub fn snap(&self, gap_s: f64) -> f64 {
        match nearest(&self.values, gap_s, |a, b| (a - b).abs()) {
            Some(v) if (v - gap_s).abs() <= SNAP_TOLERANCE * v => v,
            _ => gap_s,
        }
    }

    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        vec![("gaps".into(), Tensor::from_slice(&self.values))]
    }

    pub fn from_named(get: &dyn Fn(&str) -> Option<Tensor>) -> Result<GapSupport, String> {
        let t = get("gaps").ok_or("tensor `gaps` is missing")?;
        let v = Vec::<f64>::try_from(t.to_kind(Kind::Double).view([-1])).map_err(|e| format!("tensor `gaps`: {e}"))?;
        if v.iter().any(|&x| !(x.is_finite() && x > 0.0 && x < 1e7)) || v.windows(2).any(|w| w[0] >= w[1]) {
            return Err("tensor `gaps` must hold ascending gaps in seconds, > 0".into());
        }
        Ok(GapSupport { values: v })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowKind;
    use crate::model::dataset::{FlowSeq, PACKET_DIM};
    use crate::rng::SplitMix64;

    #[test]
    fn keeps_the_spikes_of_periodic_gaps_and_snaps_near_ones() {
        let mut ds = Dataset::default();
        let mut rng = SplitMix64::new(1);
        // 3000 gaps: 1000 at 10 ms (±0.05 %), 500 at 100 ms exactly, 1500 spread over 1 µs..10 s
        for i in 0..3000u32 {
            let gap: f64 = match i {
                0..1000 => 0.010 * (1.0 + 0.0005 * (rng.next_f64() - 0.5)),
                1000..1500 => 0.1,
                _ => 10f64.powf(-6.0 + 7.0 * rng.next_f64()),
            };
            let mut v = [0f32; PACKET_DIM];
            v[col::LOG_DT] = gap.log10() as f32;
            ds.packets.extend_from_slice(&v);
        }
        // first packets of flows carry no gap
        let mut v = [0f32; PACKET_DIM];
        v[col::LOG_DT] = -7.0;
        ds.packets.extend_from_slice(&v);
        ds.flows.push(FlowSeq { kind: FlowKind::Unconnected, start: 0, len: 3001 });
        let s = GapSupport::fit(&ds, 0..3001);
        assert_eq!(s.values.len(), 2, "{:?}", s.values);
        assert!((s.values[0] - 0.010).abs() < 1e-5 && (s.values[1] - 0.1).abs() < 1e-6, "{:?}", s.values);
        assert_eq!(s.snap(0.0096), s.values[0]);
        assert_eq!(s.snap(0.0105), s.values[0]);
        assert_eq!(s.snap(0.0120), 0.0120, "too far: stays continuous");
        assert_eq!(s.snap(0.093), s.values[1]);
        assert_eq!(s.snap(3.0), 3.0);
        let t = s.named_tensors();
        let back = GapSupport::from_named(&|n| t.iter().find(|(k, _)| k == n).map(|(_, v)| v.shallow_clone())).unwrap();
        assert_eq!(back, s);
        assert!(GapSupport::from_named(&|_| Some(Tensor::from_slice(&[0.5f64, 0.1]))).is_err());
        assert!(GapSupport::from_named(&|_| Some(Tensor::from_slice(&[f64::NAN]))).is_err());
        assert_eq!(GapSupport::default().snap(0.7), 0.7);
    }

    #[test]
    fn smooth_gaps_have_no_spikes() {
        let mut ds = Dataset::default();
        let mut rng = SplitMix64::new(2);
        // exponential gaps of mean 50 ms: a smooth distribution with a broad mode
        for _ in 0..20_000 {
            let mut v = [0f32; PACKET_DIM];
            v[col::LOG_DT] = (-(1.0 - rng.next_f64()).ln() * 0.05).log10() as f32;
            ds.packets.extend_from_slice(&v);
        }
        ds.flows.push(FlowSeq { kind: FlowKind::Connected, start: 0, len: 20_000 });
        assert_eq!(GapSupport::fit(&ds, 0..20_000).values, Vec::<f64>::new());
    }
}
