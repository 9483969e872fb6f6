//! The daemon's control plane: starts the configured streams, serves metrics, and reacts to
//! signals (SIGHUP reload, SIGTERM/SIGINT drain) while telling systemd what it does.
//!
//! Owns: the set of running streams ([`Daemon`]), the reload rule (a new file is parsed and
//! validated first; on error it is logged and the old streams keep running; on success
//! streams whose settings changed or vanished are stopped and new or changed ones started,
//! unchanged ones keep running untouched), the order of start-up and shutdown notifications
//! (READY=1 after the streams were started, RELOADING=1/READY=1 around a reload, STOPPING=1
//! before the drain, STATUS= lines) and the watchdog rule (WATCHDOG=1 only while no stream's
//! pacer is stuck). Runs on a current-thread tokio runtime; the streams' hot paths are plain
//! threads ([`super::streams`]) that tokio never touches.
//! Does not parse the file ([`super::config`]), render metrics ([`super::metrics`]) nor
//! speak HTTP ([`super::endpoint`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use super::config::{Config, ConfigError};
use super::endpoint::{self, Page};
use super::metrics::{render_prometheus, Phase, Status};
use super::notify::{monotonic_usec, watchdog_period, Notifier, State};
use super::streams::RunningStream;

/// How often streams are sampled (rates, lateness) and STATUS= refreshed.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("metrics endpoint: cannot listen on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot install the {what} handler: {source}")]
    Signal { what: &'static str, source: std::io::Error },
}

/// The running configuration and its streams.
pub struct Daemon {
    path: PathBuf,
    config: Config,
    streams: Vec<RunningStream>,
    started: Instant,
    reloads: u64,
    reload_failures: u64,
    last_reload_error: Option<String>,
}

impl Daemon {
    /// Starts every stream of `config`. A stream that cannot even be set up (unreadable
    /// `wire_config`, no thread) is logged and left out; the others run.
    pub fn start(path: &Path, config: Config) -> Daemon {
        let mut d = Daemon { path: path.to_owned(), config, streams: Vec::new(), started: Instant::now(), reloads: 0, reload_failures: 0, last_reload_error: None };
        let configs = d.config.streams.clone();
        for cfg in configs {
            d.start_stream(cfg);
        }
        d
    }

    fn start_stream(&mut self, cfg: super::config::StreamConfig) {
        tracing::info!(stream = %cfg.name, interface = %cfg.interface, source = cfg.source.kind(), path = %cfg.source.path().display(), rate = %cfg.rate, "starting stream");
        match RunningStream::start(cfg) {
            Ok(s) => self.streams.push(s),
            Err(e) => tracing::error!("stream does not start: {e}"),
        }
    }

    /// Re-reads the file. On error nothing changes (the error is logged, counted and
    /// returned); on success changed and removed streams are stopped, new and changed ones
    /// started, unchanged running ones left alone.
    pub fn reload(&mut self) -> Result<(), ConfigError> {
        let new = match Config::load(&self.path) {
            Ok(c) => c,
            Err(e) => {
                self.reload_failures += 1;
                self.last_reload_error = Some(e.to_string());
                tracing::error!("reload rejected, the running configuration stays: {e}");
                return Err(e);
            }
        };
        if new.daemon != self.config.daemon {
            tracing::warn!("reload: [daemon] settings (metrics_listen, log_format) take effect at the next restart");
        }
        let (mut kept, mut stopped) = (0, 0);
        let old = std::mem::take(&mut self.streams);
        let mut keep = Vec::new();
        for s in old {
            let same = new.streams.iter().any(|c| *c == s.config);
            if same && matches!(s.phase(), Phase::Starting | Phase::Running) {
                kept += 1;
                keep.push(s);
            } else {
                stopped += 1;
                tracing::info!(stream = %s.name(), "stopping stream (changed, removed or no longer running)");
                s.stop();
            }
        }
        self.streams = keep;
        let mut started = 0;
        for cfg in &new.streams {
            if !self.streams.iter().any(|s| s.config == *cfg) {
                started += 1;
                self.start_stream(cfg.clone());
            }
        }
        // keep the file's order
        self.streams.sort_by_key(|s| new.streams.iter().position(|c| c.name == s.config.name));
        let daemon = self.config.daemon.clone();
        self.config = Config { daemon, streams: new.streams };
        self.reloads += 1;
        self.last_reload_error = None;
        tracing::info!(kept, stopped, started, "configuration reloaded");
        Ok(())
    }

    pub fn sample(&mut self) {
        for s in &mut self.streams {
            s.sample();
        }
    }

    /// False when a stream's pacer is stuck (then the watchdog is not pinged).
    pub fn healthy(&self) -> bool {
        let stuck: Vec<&str> = self.streams.iter().filter(|s| s.is_stuck()).map(|s| s.name()).collect();
        if !stuck.is_empty() {
            tracing::error!(streams = %stuck.join(","), "stream pacer stuck: not pinging the watchdog");
        }
        stuck.is_empty()
    }

    pub fn status(&self) -> Status {
        Status {
            version: env!("CARGO_PKG_VERSION").into(),
            config: self.path.display().to_string(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            reloads: self.reloads,
            reload_failures: self.reload_failures,
            last_reload_error: self.last_reload_error.clone(),
            streams: self.streams.iter().map(RunningStream::metrics).collect(),
        }
    }

    /// One line for systemd's STATUS=.
    pub fn status_line(&self) -> String {
        let running = self.streams.iter().filter(|s| s.phase() == Phase::Running).count();
        let frames: u64 = self.streams.iter().map(|s| s.metrics().frames_sent).sum();
        format!("{running} of {} streams sending; {frames} frames sent", self.config.streams.len())
    }

    /// Stops every stream (drain); each logs its totals.
    pub fn shutdown(&mut self) {
        let mut total = 0;
        for s in std::mem::take(&mut self.streams) {
            total += s.stop();
        }
        tracing::info!(frames = total, "all streams stopped");
    }
}

fn lock(d: &Mutex<Daemon>) -> std::sync::MutexGuard<'_, Daemon> {
    d.lock().unwrap_or_else(|p| p.into_inner())
}

fn note(notifier: &Notifier, states: &[State]) {
    match notifier.notify(states) {
        Ok(()) => {}
        Err(e) if e.is_congested() => tracing::debug!("sd_notify: the manager's queue is full; dropped: {e}"),
        Err(e) => tracing::warn!("sd_notify: {e}"),
    }
}

/// Runs the daemon until SIGTERM or SIGINT: streams, metrics endpoint, reload, watchdog.
/// Returns once every stream has been stopped and its totals logged.
pub async fn run(path: &Path, config: Config, notifier: Notifier) -> Result<(), DaemonError> {
    let sig = |kind: SignalKind, what: &'static str| signal(kind).map_err(|source| DaemonError::Signal { what, source });
    let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;
    let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
    let addr = config.daemon.metrics_listen;
    let listener = TcpListener::bind(addr).await.map_err(|source| DaemonError::Listen { addr, source })?;
    tracing::info!(config = %path.display(), streams = config.streams.len(), metrics = %addr, "trafgend starting");

    let daemon = Arc::new(Mutex::new(Daemon::start(path, config)));
    let render_from = daemon.clone();
    let render = Arc::new(move |page: Page| {
        let d = lock(&render_from);
        match page {
            Page::Metrics => render_prometheus(&d.status()),
            Page::Status => serde_json::to_string_pretty(&d.status()).unwrap_or_default(),
        }
    });
    let server = tokio::spawn(endpoint::serve(listener, render));

    note(&notifier, &[State::Ready, State::Status(lock(&daemon).status_line())]);
    let mut sample = tokio::time::interval(SAMPLE_PERIOD);
    sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let period = watchdog_period();
    if let Some(p) = period {
        tracing::info!(period_ms = p.as_millis() as u64, "watchdog enabled");
    }
    let mut watchdog = tokio::time::interval(period.unwrap_or(Duration::from_secs(3600)));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status_tick = 0u32;

    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!(config = %path.display(), "SIGHUP: reloading");
                note(&notifier, &[State::Reloading, State::MonotonicUsec(monotonic_usec()), State::Status("reloading".into())]);
                let mut d = lock(&daemon);
                let status = match d.reload() {
                    Ok(()) => d.status_line(),
                    Err(e) => format!("reload rejected ({}); {}", e.diagnostic().map_or_else(|| e.to_string(), |x| format!("line {} column {}", x.line, x.column)), d.status_line()),
                };
                note(&notifier, &[State::Ready, State::Status(status)]);
            }
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = sample.tick() => {
                let mut d = lock(&daemon);
                d.sample();
                status_tick += 1;
                if status_tick % 5 == 0 {
                    note(&notifier, &[State::Status(d.status_line())]);
                }
            }
            _ = watchdog.tick(), if period.is_some() => {
                if lock(&daemon).healthy() {
                    note(&notifier, &[State::Watchdog]);
                }
            }
        }
    }
    note(&notifier, &[State::Stopping, State::Status("stopping: draining streams".into())]);
    server.abort();
    lock(&daemon).shutdown();
    Ok(())
}
