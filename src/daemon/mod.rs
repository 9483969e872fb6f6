//! The daemon (`trafgend`) as a library: what the binary needs beyond wiring stages together.
//!
//! Owns: the configuration file ([`config`]: schema, parsing, validation with
//! file:line:column errors), the running streams ([`streams`]: one emitter thread each), the
//! control plane ([`control`]: SIGHUP reload that keeps the old config when the new one is
//! bad, SIGTERM drain, watchdog), systemd notifications ([`notify`]), metrics and status
//! ([`metrics`]) and their local HTTP endpoint and client ([`endpoint`]).
//! Does not own: generation, framing or sending (the synth → wire → emit stages); the daemon
//! only starts them with the settings read here, and tokio never reaches the hot path.

pub mod config;
pub mod control;
pub mod endpoint;
pub mod metrics;
pub mod notify;
pub mod streams;

pub use config::{
    AddressPlan, Cidr, CidrError, Config, ConfigError, Controls, DaemonConfig, Diagnostic,
    LogFormat, Rate, Source, StreamConfig, DEFAULT_CONFIG_PATH,
};
