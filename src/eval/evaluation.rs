//! One evaluation run: which captures are compared with which.
//!
//! This module owns the arms of an evaluation and how they are made. Every arm is compared
//! with one reference capture by [`super::compare`]:
//! - **synthetic**: the generated capture;
//! - **floor**: another real sample of the same traffic (with `--split`, the first part of
//!   the capture against its held-out part): the distance no generator can be expected to
//!   beat, since real traffic differs from itself this much;
//! - **baseline**: the independent-marginals baseline ([`super::baseline`]) fitted on the
//!   real data the generator may learn from, drawn with as many IP packets as the reference.
//!
//! [`evaluate_pair`] compares a synthetic capture with a real one (no floor; the baseline is
//! fitted on the real capture itself). [`evaluate_split`] splits one capture by time
//! ([`super::split`]), uses the held-out part as the reference, and takes the synthetic arm
//! from a caller-supplied [`SyntheticArm`] (train on the first part, generate the held-out
//! period); without one the evaluation has floor and baseline only.
//!
//! It does not format reports ([`super::report`]).

use std::path::{Path, PathBuf};

use crate::flow::FlowConfig;

use super::baseline::independent_marginals;
use super::compare::{compare, Metric};
use super::split::{split_capture, HeldOutSpan, Split};
use super::traffic::TrafficSummary;
use super::EvalError;

/// What every evaluation needs.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Flow-table timeouts used for every capture (and for the baseline's flows).
    pub flow: FlowConfig,
    /// Seed of the marginals baseline.
    pub seed: u64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { flow: FlowConfig::default(), seed: 1 }
    }
}

/// The error a synthetic-arm callback may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Makes the synthetic capture of a split evaluation: given the training part of the capture
/// and the held-out period, it trains a model on the former, generates traffic for the
/// latter and returns the path of the generated capture.
pub type SyntheticArm<'a> = Box<dyn FnOnce(&Path, HeldOutSpan) -> Result<PathBuf, BoxError> + 'a>;

/// One compared capture (or baseline) and its metrics against the reference.
#[derive(Clone, Debug)]
pub struct Arm {
    pub summary: TrafficSummary,
    /// In the order of [`super::compare::METRICS`].
    pub metrics: Vec<Metric>,
}

impl Arm {
    fn new(reference: &TrafficSummary, summary: TrafficSummary) -> Arm {
        let metrics = compare(reference, &summary);
        Arm { summary, metrics }
    }
}

/// A finished evaluation.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// The real traffic every arm is compared with (the held-out part with `--split`).
    pub reference: TrafficSummary,
    pub synthetic: Option<Arm>,
    pub floor: Option<Arm>,
    pub baseline: Arm,
    /// The split, when the evaluation made one.
    pub split: Option<Split>,
    pub seed: u64,
}

/// `trafgen eval REAL SYNTH`: the synthetic capture against the real one; the baseline is
/// fitted on the real capture.
pub fn evaluate_pair(real: &Path, synthetic: &Path, opts: &EvalOptions) -> Result<Evaluation, EvalError> {
    let reference = TrafficSummary::from_capture(real, "real", &opts.flow)?;
    let synth = TrafficSummary::from_capture(synthetic, "synthetic", &opts.flow)?;
    let baseline = independent_marginals(&reference, reference.ip_packets(), opts.seed, &opts.flow, "independent marginals of real");
    Ok(Evaluation {
        synthetic: Some(Arm::new(&reference, synth)),
        floor: None,
        baseline: Arm::new(&reference, baseline),
        reference,
        split: None,
        seed: opts.seed,
    })
}

/// `trafgen eval --split F CAPTURE`: splits `capture` at fraction `fraction` of its span into
/// `work_dir` and compares, with the held-out part: the first part (floor), the marginals
/// baseline fitted on the first part, and the capture `synthetic` makes (when given).
pub fn evaluate_split(
    capture: &Path,
    fraction: f64,
    work_dir: &Path,
    opts: &EvalOptions,
    synthetic: Option<SyntheticArm<'_>>,
) -> Result<Evaluation, EvalError> {
    let split = split_capture(capture, fraction, work_dir)?;
    let reference = TrafficSummary::from_capture(&split.held_out, "held-out", &opts.flow)?;
    let train = TrafficSummary::from_capture(&split.train, "first part", &opts.flow)?;
    let baseline = independent_marginals(&train, reference.ip_packets(), opts.seed, &opts.flow, "independent marginals of first part");
    let synthetic = match synthetic {
        Some(make) => {
            let path = make(&split.train, split.held_out_span).map_err(EvalError::Synthetic)?;
            Some(Arm::new(&reference, TrafficSummary::from_capture(&path, "synthetic", &opts.flow)?))
        }
        None => None,
    };
    Ok(Evaluation {
        synthetic,
        floor: Some(Arm::new(&reference, train)),
        baseline: Arm::new(&reference, baseline),
        reference,
        split: Some(split),
        seed: opts.seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    const T0: i64 = 1_700_000_000 * 1_000_000_000;

    #[test]
    fn split_evaluation_calls_the_synthetic_arm_with_the_training_part_and_the_held_out_span() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("cap.pcap");
        fixture::write_pcap(&input, fixture::demo_mix(60, T0)).unwrap();
        let mut seen = None;
        // a stand-in generator: "generates" the held-out period by copying the held-out part
        let make: SyntheticArm = Box::new(|train: &Path, span: HeldOutSpan| {
            seen = Some((train.to_path_buf(), span));
            Ok(train.with_file_name("cap.heldout.pcap"))
        });
        let e = evaluate_split(&input, 0.5, dir.path(), &EvalOptions::default(), Some(make)).unwrap();
        let split = e.split.as_ref().unwrap();
        assert_eq!(seen, Some((split.train.clone(), split.held_out_span)));
        // the synthetic arm is the held-out part itself: zero everywhere
        let synth = e.synthetic.as_ref().unwrap();
        assert!(synth.metrics.iter().all(|m| m.value == Some(0.0)), "{:?}", synth.metrics);
        // the floor is the first half of the same mix: close on the protocol mix (not on ports:
        // each connection has its own ephemeral port, so the halves share none of those)
        let floor = e.floor.as_ref().unwrap();
        let value = |n: &str| floor.metrics.iter().find(|m| m.name == n).unwrap().value.unwrap();
        assert!(value("jsd_ip_proto") < 0.01, "{}", value("jsd_ip_proto"));
        assert!(value("jsd_dst_port") > 0.1, "{}", value("jsd_dst_port"));
        assert_eq!(e.baseline.summary.ip_packets(), e.reference.ip_packets());

        // a failing synthetic arm is an error that says so
        let fail: SyntheticArm = Box::new(|_, _| Err("model not trained".into()));
        let err = evaluate_split(&input, 0.5, dir.path(), &EvalOptions::default(), Some(fail)).unwrap_err();
        assert!(err.to_string().contains("model not trained"), "{err}");
    }
}
