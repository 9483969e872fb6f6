//! `trafgend`: the traffic-generator daemon (`trafgend [--config PATH] [--check]`).
//!
//! Owns: the command line, logging set-up and the exit status (0 ok, 2 invalid or unreadable
//! configuration, 1 anything else). Everything else lives in the library
//! ([`trafgen::daemon`]); this file only wires it together.
//! Today it reads and validates the configuration and logs what it would run: the emitter
//! (generation → framing → sending, systemd notify, reload, metrics) comes with issue 6.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use trafgen::daemon::{Cidr, Config, LogFormat, StreamConfig, DEFAULT_CONFIG_PATH};

/// Exit status for a configuration that cannot be read or is invalid (systemd's unit keeps it
/// from restarting in a loop: RestartPreventExitStatus=2).
const EXIT_BAD_CONFIG: u8 = 2;

/// Generate traffic on network interfaces as configured in a TOML file.
#[derive(Debug, Parser)]
#[command(name = "trafgend", version)]
struct Args {
    /// The configuration file.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,

    /// Validate the configuration, print "config OK: N streams" and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("trafgend: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if args.check {
        println!("config OK: {} streams", config.streams.len());
        return ExitCode::SUCCESS;
    }
    match run(&args, &config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trafgend: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args, config: &Config) -> anyhow::Result<()> {
    init_logging(config.daemon.log_format)?;
    tracing::info!(
        config = %args.config.display(),
        streams = config.streams.len(),
        metrics_listen = %config.daemon.metrics_listen,
        "configuration loaded"
    );
    for stream in &config.streams {
        log_plan(stream);
    }
    tracing::warn!("the emitter is not implemented yet: nothing is sent; exiting");
    Ok(())
}

/// Logs what the daemon would start for one stream.
fn log_plan(stream: &StreamConfig) {
    let allowlist: Vec<String> = stream.allowlist.iter().map(ToString::to_string).collect();
    let a = &stream.addresses;
    let show = |c: &Option<Cidr>| c.map_or_else(|| "default".to_owned(), |c| c.to_string());
    tracing::info!(
        stream = %stream.name,
        interface = %stream.interface,
        source = %stream.source.kind(),
        path = %stream.source.path().display(),
        seed = stream.seed,
        rate = %stream.rate,
        allowlist = %allowlist.join(","),
        client_v4 = %show(&a.client_v4),
        server_v4 = %show(&a.server_v4),
        client_v6 = %show(&a.client_v6),
        server_v6 = %show(&a.server_v6),
        "would start stream"
    );
}

/// Logs to stderr (journald collects it under systemd), filtered by RUST_LOG (default `info`).
fn init_logging(format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Journald => {
            builder.without_time().with_ansi(false).with_target(false).try_init()
        }
        LogFormat::Pretty => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
    result.map_err(|e| anyhow!("cannot start logging: {e}"))
}
