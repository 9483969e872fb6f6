//! Features: the third stage of the data path.
//!
//! This module owns turning packets-in-flows into the tables the models learn from:
//! NeCSTGen's per-packet features ([`PacketFeatures`]: sizes, direction, TCP flags, time since
//! the previous packet of the flow and its log10, rolling byte/packet counts over the last
//! second and minute) and per-flow features ([`FlowFeatures`]: packets/bytes per direction,
//! duration, gap since the previous flow start, ports, protocol, application guess), plus
//! their CSV form ([`csv`]). Scaling for the models is fitted later, in the model stage.

pub mod app;
pub mod csv;
pub mod extract;

pub use app::App;
pub use extract::{flow_features, packet_features, FlowFeatures, PacketFeatures, Rolling, MIN_TIME_DIFF_S};
