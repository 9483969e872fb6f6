//! The daemon (`trafgend`) as a library: what the binary needs beyond wiring stages together.
//!
//! Owns, today: the configuration file ([`config`]: schema, parsing, validation with
//! file:line:column errors). Later (issue 6): systemd notify + watchdog, SIGHUP reload that
//! keeps the old config when the new one is bad, SIGTERM drain, metrics/status on a local port.
//! Does not own: generation, framing or sending (the synth → wire → sink stages); the daemon
//! only starts them with the settings read here, and tokio never reaches the hot path.

pub mod config;

pub use config::{
    AddressPlan, Cidr, CidrError, Config, ConfigError, DaemonConfig, Diagnostic, LogFormat, Rate,
    Source, StreamConfig, DEFAULT_CONFIG_PATH,
};
