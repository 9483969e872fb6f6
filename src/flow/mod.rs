//! Flows: the second stage of the data path.
//!
//! This module owns grouping decoded [`crate::capture::Packet`]s into bidirectional flows:
//! the flow key ([`key`]), the per-flow record and its TCP lifecycle ([`record`]), the index
//! from key to flow (`index`), and the table that creates, updates and expires flows as
//! capture time advances ([`table`]), with memory bounded by the number of live flows. It
//! does not compute features.

mod huge_pages;
mod index;
pub mod key;
pub mod record;
pub mod table;

pub use key::{FlowKey, FlowKind};
pub use record::{Direction, EndReason, Endpoint, Flow, TcpState};
pub use table::{Assignment, Finished, FlowConfig, FlowStats, FlowTable, Prepared};
