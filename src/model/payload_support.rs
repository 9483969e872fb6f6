//! The payload lengths that recur in the training data, so decoded packets keep them exact.
//!
//! Real traffic repeats exact message sizes (an IoT device's 200-byte status report, a
//! protocol's fixed-size request, empty ACKs), but the VAE decodes a continuous size: its
//! samples land near those values, not on them. This module keeps every payload length that
//! carries at least [`MIN_SHARE`] of the training packets (at most [`MAX_VALUES`]) and snaps a
//! decoded payload to the nearest of them when it is within [`SNAP_TOLERANCE`]; sizes between
//! the recurring ones stay continuous. It does not decide sizes (the packet level does).

use tch::{Kind, Tensor};

use super::dataset::{col, payload_of, Dataset};

/// Share of training packets a payload length needs to be kept.
pub const MIN_SHARE: f64 = 0.002;
/// Most payload lengths kept.
pub const MAX_VALUES: usize = 256;
/// A decoded payload within this fraction (or 8 bytes, whichever is larger) of a kept value
/// becomes that value.
pub const SNAP_TOLERANCE: f64 = 0.05;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PayloadSupport {
    /// Kept payload lengths, ascending.
    pub values: Vec<u32>,
}

/// The value of ascending `values` nearest to `x` by `dist` (`None` when empty): one of the two
/// around `x`'s place. Shared with the gap support.
pub(super) fn nearest<T: Copy + PartialOrd>(values: &[T], x: T, dist: impl Fn(T, T) -> f64) -> Option<T> {
    let i = values.partition_point(|&v| v < x);
    [i.checked_sub(1), Some(i)].into_iter().flatten().filter_map(|j| values.get(j).copied()).min_by(|&a, &b| dist(a, x).total_cmp(&dist(b, x)))
}

impl PayloadSupport {
    /// The recurring payload lengths of rows `rows` of `ds`.
    pub fn fit(ds: &Dataset, rows: impl Iterator<Item = usize>) -> PayloadSupport {
        let mut counts: rustc_hash::FxHashMap<u32, u64> = Default::default();
        let mut n = 0u64;
        for r in rows {
            let row = ds.row(r);
            let payload = payload_of(row[col::LOG_PAYLOAD]).round() as u32;
            *counts.entry(payload).or_default() += 1;
            n += 1;
        }
        let mut kept: Vec<(u32, u64)> = counts.into_iter().filter(|&(_, c)| c as f64 >= MIN_SHARE * n as f64).collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        kept.truncate(MAX_VALUES);
        let mut values: Vec<u32> = kept.into_iter().map(|(v, _)| v).collect();
        values.sort_unstable();
        PayloadSupport { values }
    }

    /// `payload`, or the nearest recurring length when it is close enough.
    pub fn snap(&self, payload: u32) -> u32 {
        match nearest(&self.values, payload, |a, b| f64::from(a.abs_diff(b))) {
            Some(v) if f64::from(v.abs_diff(payload)) <= (SNAP_TOLERANCE * f64::from(v)).max(8.0) => v,
            _ => payload,
        }
    }

    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let v: Vec<i64> = self.values.iter().map(|&x| i64::from(x)).collect();
        vec![("values".into(), Tensor::from_slice(&v))]
    }

    pub fn from_named(get: &dyn Fn(&str) -> Option<Tensor>) -> Result<PayloadSupport, String> {
        let t = get("values").ok_or("tensor `values` is missing")?;
        let v = Vec::<i64>::try_from(t.to_kind(Kind::Int64).view([-1])).map_err(|e| format!("tensor `values`: {e}"))?;
        if v.iter().any(|&x| !(0..=65_535).contains(&x)) || v.windows(2).any(|w| w[0] >= w[1]) {
            return Err("tensor `values` must hold ascending lengths 0..=65535".into());
        }
        Ok(PayloadSupport { values: v.into_iter().map(|x| x as u32).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dataset::{log_payload, FlowSeq, PACKET_DIM};
    use crate::flow::FlowKind;

    #[test]
    fn keeps_recurring_lengths_and_snaps_near_ones() {
        let mut ds = Dataset::default();
        // 900 packets: 500 empty ACKs (52 B), 300 reports of 200 B payload, 100 spread sizes
        for i in 0..900u32 {
            let (size, header) = match i {
                0..500 => (52.0f32, 52.0f32),
                500..800 => (252.0, 52.0),
                _ => (400.0 + (i - 800) as f32 * 7.0, 52.0),
            };
            let mut v = [0f32; PACKET_DIM];
            v[col::LOG_PAYLOAD] = log_payload(size - header);
            v[col::HEADER] = header;
            ds.packets.extend_from_slice(&v);
        }
        ds.flows.push(FlowSeq { kind: FlowKind::Connected, start: 0, len: 900 });
        let s = PayloadSupport::fit(&ds, 0..900);
        assert_eq!(s.values, [0, 200]);
        assert_eq!(s.snap(3), 0);
        assert_eq!(s.snap(193), 200);
        assert_eq!(s.snap(209), 200);
        assert_eq!(s.snap(230), 230, "too far: stays continuous");
        assert_eq!(s.snap(900), 900);
        let t = s.named_tensors();
        let back = PayloadSupport::from_named(&|n| t.iter().find(|(k, _)| k == n).map(|(_, v)| v.shallow_clone())).unwrap();
        assert_eq!(back, s);
        assert!(PayloadSupport::from_named(&|_| Some(Tensor::from_slice(&[5i64, 3]))).is_err());
        assert_eq!(PayloadSupport::default().snap(77), 77);
    }
}
