//! Feature standardisation fitted on training data and stored in the manifest:
//! `z = (x − mean) / std` per column (std floored so constant columns stay finite), and the
//! range of each column in the training data: decoded samples are clamped into it, so a
//! decoder that extrapolates cannot ask for a 10⁶-second gap or a 60 kB packet nobody sent.

use tch::{Device, Kind, Tensor};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scaler {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Smallest and largest value of each column in the training data.
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

const MIN_STD: f64 = 1e-6;

impl Scaler {
    /// Fits on `rows` of `dim` columns (flat, row-major).
    pub fn fit(rows: &[f32], dim: usize) -> Scaler {
        Self::fit_by(dim, rows.len() / dim, |i| &rows[i * dim..(i + 1) * dim])
    }

    /// Fits on `n` rows of `dim` columns given by `row(i)` (no copy of the rows is made).
    pub fn fit_by<'a>(dim: usize, n_rows: usize, row: impl Fn(usize) -> &'a [f32]) -> Scaler {
        let n = n_rows.max(1) as f64;
        let mut mean = vec![0f64; dim];
        let (mut min, mut max) = (vec![f64::INFINITY; dim], vec![f64::NEG_INFINITY; dim]);
        for r in (0..n_rows).map(&row) {
            for (i, x) in r.iter().enumerate() {
                let x = f64::from(*x);
                mean[i] += x;
                min[i] = min[i].min(x);
                max[i] = max[i].max(x);
            }
        }
        for i in 0..dim {
            if min[i] > max[i] {
                (min[i], max[i]) = (0.0, 0.0);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0f64; dim];
        for r in (0..n_rows).map(&row) {
            for ((v, x), m) in var.iter_mut().zip(r).zip(&mean) {
                let d = f64::from(*x) - m;
                *v += d * d;
            }
        }
        let std = var.iter().map(|v| (v / n).sqrt().max(MIN_STD)).collect();
        Scaler { mean, std, min, max }
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Checks a scaler read from a file: `dim` columns in each of its four lists, every value
    /// finite, every std > 0, every min ≤ max. The error names the list and the column.
    pub fn check(&self, dim: usize) -> Result<(), String> {
        for (name, v) in [("mean", &self.mean), ("std", &self.std), ("min", &self.min), ("max", &self.max)] {
            if v.len() != dim {
                return Err(format!("`features.scaler.{name}` has {} values, expected {dim}", v.len()));
            }
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(format!("`features.scaler.{name}[{i}]` is {}, not a finite number", v[i]));
            }
        }
        if let Some(i) = self.std.iter().position(|&s| s <= 0.0) {
            return Err(format!("`features.scaler.std[{i}]` is {}, must be > 0", self.std[i]));
        }
        if let Some(i) = (0..dim).find(|&i| self.min[i] > self.max[i]) {
            return Err(format!("`features.scaler.min[{i}]` {} is above `max[{i}]` {}", self.min[i], self.max[i]));
        }
        Ok(())
    }

    fn tensors(&self, device: Device) -> (Tensor, Tensor) {
        let m = Tensor::from_slice(&self.mean).to_kind(Kind::Float).to_device(device);
        let s = Tensor::from_slice(&self.std).to_kind(Kind::Float).to_device(device);
        (m, s)
    }

    /// Standardises `x` ([N, dim], float).
    pub fn transform(&self, x: &Tensor) -> Tensor {
        let (m, s) = self.tensors(x.device());
        (x - m) / s
    }

    /// Back to feature units.
    pub fn inverse(&self, z: &Tensor) -> Tensor {
        let (m, s) = self.tensors(z.device());
        z * s + m
    }

    /// Back to feature units, clamped into the training range of each column.
    pub fn inverse_clamped(&self, z: &Tensor) -> Tensor {
        let d = z.device();
        let lo = Tensor::from_slice(&self.min).to_kind(Kind::Float).to_device(d);
        let hi = Tensor::from_slice(&self.max).to_kind(Kind::Float).to_device(d);
        self.inverse(z).maximum(&lo).minimum(&hi)
    }

    /// Back to feature units for one row, without tensors.
    pub fn inverse_row(&self, z: &[f32], out: &mut [f64]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = f64::from(z[i]) * self.std[i] + self.mean[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_constant_columns() {
        let rows = [1.0f32, 5.0, 3.0, 5.0, 5.0, 5.0];
        let s = Scaler::fit(&rows, 2);
        assert_eq!(s.mean, vec![3.0, 5.0]);
        assert!((s.std[0] - (8.0f64 / 3.0).sqrt()).abs() < 1e-9);
        assert_eq!(s.std[1], MIN_STD);
        let x = Tensor::from_slice(&rows).view([3, 2]);
        let back = s.inverse(&s.transform(&x));
        assert!(back.allclose(&x, 1e-5, 1e-5, false));
        assert_eq!((s.min.clone(), s.max.clone()), (vec![1.0, 5.0], vec![5.0, 5.0]));
        let far = Tensor::from_slice(&[100.0f32, -100.0]).view([1, 2]);
        let c: Vec<f32> = Vec::try_from(s.inverse_clamped(&far).view([-1])).unwrap();
        assert_eq!(c, [5.0, 5.0]);
        assert_eq!(s.check(2), Ok(()));
    }

    #[test]
    fn check_names_the_bad_list_and_column() {
        let good = Scaler { mean: vec![0.0; 2], std: vec![1.0; 2], min: vec![-1.0; 2], max: vec![1.0; 2] };
        assert!(good.check(3).unwrap_err().contains("`features.scaler.mean` has 2 values, expected 3"));
        let short = Scaler { std: vec![1.0], ..good.clone() };
        assert!(short.check(2).unwrap_err().contains("`features.scaler.std` has 1 values"));
        let nan = Scaler { min: vec![-1.0, f64::NAN], ..good.clone() };
        assert!(nan.check(2).unwrap_err().contains("`features.scaler.min[1]` is NaN"));
        let zero = Scaler { std: vec![1.0, 0.0], ..good.clone() };
        assert!(zero.check(2).unwrap_err().contains("`features.scaler.std[1]` is 0"));
        let crossed = Scaler { min: vec![2.0, -1.0], ..good };
        assert!(crossed.check(2).unwrap_err().contains("`features.scaler.min[0]` 2 is above `max[0]` 1"));
    }
}
