//! Real-time emission: frames onto a network interface at their scheduled times.
//!
//! This module owns the hot path of `trafgen send` (and, later, of each daemon stream):
//! a source thread ([`source`]: the model engine + frame builder, or a capture replayed)
//! fills [`batch::Batch`]es on a bounded ring; the pacer thread ([`pacer`]) waits for each
//! frame's absolute deadline, checks its destination ([`allowlist`]), asks the hard ceiling
//! ([`ceiling`], governor) and hands due frames to a [`sender::FrameSender`] (AF_PACKET +
//! `sendmmsg` today, [`sender::PacketSocket`]). [`stream`] runs one stream end to end with
//! its start-up checks in the right order.
//!
//! It does not build frames (that is [`crate::wire`]), decide what traffic looks like
//! ([`crate::synth`]) nor print anything: callers read [`pacer::Live`] counters and the
//! final [`stream::StreamReport`]. tokio never runs here.

pub mod allowlist;
pub mod batch;
pub mod ceiling;
pub mod pacer;
pub mod sender;
pub mod source;
pub mod stream;

/// Serialises this crate's timing tests (the pacer's and the ceiling's): each measures time on
/// a spinning thread, and two at once on a 2-core machine take each other's CPU.
#[cfg(test)]
pub(crate) fn timing_lock() -> std::sync::MutexGuard<'static, ()> {
    static TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TIMING.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub use allowlist::{Allowlist, AllowlistError};
pub use ceiling::CeilingConfig;
pub use pacer::{EndReason, Lateness, Live, PacerConfig, PacerReport, StallPolicy};
pub use sender::{FrameSender, Interface, PacketSocket, SendError};
pub use source::PcapSchedule;
pub use stream::{run_stream, SourceSpec, StreamError, StreamReport, StreamSpec, StreamStart};
