//! `trafgend`: the traffic-generator daemon (`trafgend [--config PATH] [--check]`).
//!
//! Owns: the command line, logging set-up, the tokio runtime of the control plane and the
//! exit status (0 after a clean stop, 2 invalid or unreadable configuration, 1 anything
//! else). Everything else lives in the library ([`trafgen::daemon`]); this file only wires it
//! together.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::Parser;
use tracing_subscriber::EnvFilter;
use trafgen::daemon::notify::Notifier;
use trafgen::daemon::{Config, LogFormat, DEFAULT_CONFIG_PATH};

/// Exit status for a configuration that cannot be read or is invalid (systemd's unit keeps it
/// from restarting in a loop: RestartPreventExitStatus=2).
const EXIT_BAD_CONFIG: u8 = 2;

/// Generate traffic on network interfaces as configured in a TOML file: every [[stream]] runs
/// on its own threads; SIGHUP reloads the file (an invalid one is logged and the running
/// streams stay), SIGTERM/SIGINT stop every stream and log its totals. Prometheus metrics and
/// a JSON status are served on [daemon] metrics_listen (/metrics, /status; see
/// `trafgen status`). Under systemd (Type=notify) it reports READY/RELOADING/STOPPING and
/// pings the watchdog.
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
    match run(&args, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("trafgend: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args, config: Config) -> anyhow::Result<()> {
    init_logging(config.daemon.log_format)?;
    let notifier = Notifier::from_env().context("systemd notification socket")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("trafgend-control")
        .build()
        .context("starting the control-plane runtime")?;
    runtime.block_on(trafgen::daemon::control::run(&args.config, config, notifier))?;
    Ok(())
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
