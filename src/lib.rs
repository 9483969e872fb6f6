//! trafgen: learn the traffic in a capture and generate traffic like it.
//!
//! The data path, top to bottom (see `shared/design.md`):
//! [`capture`] (files → packets) → [`flow`] (packets → flows) → [`features`] (flows → feature
//! rows); [`ingest`] wires those stages for a list of files and [`inspect`] summarises them.
//! [`torch`] reports the libtorch build and picks the device for the model stage.

pub mod capture;
pub mod features;
pub mod flow;
pub mod hist;
pub mod ingest;
pub mod inspect;
pub mod model;
pub mod prefetch;
pub mod fixture;
pub mod generate;
pub mod rng;
pub mod synth;
pub mod text_position;
pub mod torch;
pub mod wire;
pub mod daemon;
pub mod emit;
pub mod eval;
pub mod validate;
pub mod sink;
