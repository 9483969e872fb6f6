//! Evaluation: how close synthetic traffic is to real traffic (`trafgen eval`).
//!
//! This module owns the fidelity stage: summarising captures into the quantities the metrics
//! need ([`traffic`]), the distance functions ([`metrics`]: JSD, EMD, KS, rate
//! autocorrelation, each as scipy/NetShare define it), the metric set and its tolerances
//! ([`compare`]), the independent-marginals baseline ([`baseline`]), splitting a capture by
//! time into training and held-out parts ([`split`]), assembling the arms of a run
//! ([`evaluation`]) and the text/JSON/HTML reports ([`report`]). It reads captures through
//! [`crate::ingest`] and [`crate::validate`]; it does not train or generate: a split
//! evaluation takes the synthetic capture from a caller-supplied callback.

pub mod baseline;
pub mod compare;
pub mod evaluation;
pub mod metrics;
pub mod report;
pub mod split;
pub mod traffic;

use std::path::PathBuf;

pub use compare::{Metric, MetricClass, METRICS};
pub use evaluation::{evaluate_pair, evaluate_split, Arm, BoxError, EvalOptions, Evaluation, SyntheticArm};
pub use report::{Report, Verdict};
pub use split::{split_capture, HeldOutSpan, Split};
pub use traffic::{CaptureInfo, TrafficSummary};

/// Errors that stop an evaluation. Every one about a file names it.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Ingest(#[from] crate::ingest::IngestError),
    #[error(transparent)]
    Validate(#[from] crate::validate::ValidateError),
    #[error(transparent)]
    Capture(#[from] crate::capture::CaptureError),
    #[error("split fraction must lie strictly between 0 and 1, got {0}")]
    Fraction(f64),
    #[error("{path}: cannot split by time: {why}")]
    NothingToSplit { path: PathBuf, why: String },
    #[error("{path}: cannot write: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path}: record #{index} has timestamp {ts_ns} ns, which classic pcap cannot hold (before 1970 or after 2106)")]
    Timestamp { path: PathBuf, index: u64, ts_ns: i64 },
    #[error("the synthetic arm failed: {0}")]
    Synthetic(BoxError),
    #[error("drawing the {what} plot: {msg}")]
    Plot { what: String, msg: String },
}
