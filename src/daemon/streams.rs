//! The daemon's running streams: one [`emit::run_stream`] per `[[stream]]`, each on its own
//! thread, started, sampled, stopped and replaced on reload.
//!
//! Owns: turning a [`StreamConfig`] into an [`emit::StreamSpec`] ([`spec_of`]), each stream's
//! thread, stop flag and live counters ([`RunningStream`]), the per-second sampling that feeds
//! the metrics (rate, lateness buckets), the liveness test behind the watchdog
//! ([`RunningStream::is_stuck`]) and the log lines for a stream's start, failure and totals
//! (everything the emitter logs from a stream's thread, e.g. its link going down and coming
//! back, carries the stream's name: the thread runs in a `stream{name=…}` span).
//! Does not: pace or send (the [`crate::emit`] hot path, which never sees tokio), parse the
//! configuration ([`super::config`]) nor handle signals (the binary's control plane).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::{Rate, Source, StreamConfig};
use super::metrics::{LatenessBuckets, Phase, StreamMetrics};
use crate::emit::{self, Allowlist, CeilingConfig, Lateness, Live, PacerConfig, PcapSchedule, SourceSpec, StreamReport, StreamSpec};
use crate::synth::EngineConfig;
use crate::wire::WireConfig;

/// A stream whose pacer has not shown it is alive for this long is stuck (the watchdog stops).
pub const STUCK_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StreamSetupError {
    #[error("stream {stream:?}: wire_config: {source}")]
    WireConfig { stream: String, source: crate::wire::WireConfigFileError },
    #[error("stream {stream:?}: allowlist: {source}")]
    Allowlist { stream: String, source: emit::AllowlistError },
    #[error("stream {stream:?}: cannot start its thread: {source}")]
    Thread { stream: String, source: std::io::Error },
}

/// The emitter's settings for `cfg` (reads `wire_config` when one is named).
pub fn spec_of(cfg: &StreamConfig) -> Result<StreamSpec, StreamSetupError> {
    let c = &cfg.controls;
    let allowlist = Allowlist::new(cfg.allowlist.clone()).map_err(|source| StreamSetupError::Allowlist { stream: cfg.name.clone(), source })?;
    let multiplier = match cfg.rate {
        Rate::Multiplier(m) => m,
        _ => 1.0,
    };
    let source = match &cfg.source {
        Source::Model(dir) => {
            let mut wire = match &c.wire_config {
                Some(p) => WireConfig::load(p).map_err(|source| StreamSetupError::WireConfig { stream: cfg.name.clone(), source })?,
                None => WireConfig::default(),
            };
            let a = &cfg.addresses;
            for (slot, value) in [(&mut wire.client_v4, a.client_v4), (&mut wire.server_v4, a.server_v4), (&mut wire.client_v6, a.client_v6), (&mut wire.server_v6, a.server_v6)] {
                if let Some(v) = value {
                    *slot = v;
                }
            }
            let (pps, mbps) = match cfg.rate {
                Rate::Pps(v) => (Some(v), None),
                Rate::Mbps(v) => (None, Some(v)),
                _ => (None, None),
            };
            SourceSpec::Model { dir: dir.clone(), engine: EngineConfig { seed: cfg.seed, warm_up_s: cfg.controls.warm_up_s.unwrap_or(0.0), both_sides: cfg.controls.both_sides, ..Default::default() }, wire, pps, mbps, flows: None }
        }
        Source::Pcap(path) => SourceSpec::Pcap {
            path: path.clone(),
            schedule: match cfg.rate {
                Rate::Pps(v) => PcapSchedule::Pps(v),
                Rate::Mbps(v) => PcapSchedule::Mbps(v),
                Rate::Native | Rate::Multiplier(_) => PcapSchedule::Recorded,
            },
            loops: c.loops.unwrap_or(1),
        },
    };
    let pacer = PacerConfig {
        topspeed: c.topspeed,
        multiplier,
        duration_s: c.duration_s,
        limit: c.limit,
        stall: c.stall,
        ceiling: CeilingConfig { pps: c.ceiling_pps, mbps: c.ceiling_mbps },
        cpu: c.cpu,
        fifo_priority: c.fifo_priority,
        ..PacerConfig::default()
    };
    Ok(StreamSpec { interface: cfg.interface.clone(), source, pacer, allowlist })
}

/// What the stream thread reports back.
#[derive(Debug, Default)]
struct Shared {
    running: bool,
    /// Set once the thread is done.
    outcome: Option<Result<StreamReport, String>>,
    send_errors: u64,
}

/// One stream and its thread.
pub struct RunningStream {
    pub config: StreamConfig,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<()>>,
    started: Instant,
    // sampling
    lateness: LatenessBuckets,
    last_quantiles: Option<Lateness>,
    last: (Instant, u64, u64),
    rate: (f64, f64),
}

impl RunningStream {
    /// Starts `cfg` on its own thread. A stream whose start-up checks fail (interface,
    /// allowlist, model or capture) does not send; its thread logs why and ends, and the
    /// stream shows as failed.
    pub fn start(cfg: StreamConfig) -> Result<RunningStream, StreamSetupError> {
        let spec = spec_of(&cfg)?;
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Live::default());
        let shared = Arc::new(Mutex::new(Shared::default()));
        let name = cfg.name.clone();
        let (t_stop, t_live, t_shared) = (stop.clone(), live.clone(), shared.clone());
        // thread names are at most 15 bytes
        let thread_name: String = format!("tg-{name}").chars().take(15).collect();
        let thread = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                let _span = tracing::error_span!("stream", name = %name).entered();
                let result = emit::run_stream(&spec, &t_stop, &t_live, &mut |s| {
                    lock(&t_shared).running = true;
                    tracing::info!(stream = %name, interface = %s.interface, ifindex = s.ifindex, mtu = s.mtu, "stream started");
                });
                let mut sh = lock(&t_shared);
                sh.running = false;
                match result {
                    Ok(report) => {
                        log_totals(&name, &report);
                        sh.outcome = Some(Ok(report));
                    }
                    Err(e) => {
                        let send = |s: &emit::SendError| matches!(s, emit::SendError::Send { .. } | emit::SendError::Gone { .. });
                        if matches!(&e, emit::StreamError::Send(s) | emit::StreamError::Pacer(emit::pacer::PacerError::Send(s)) if send(s)) {
                            sh.send_errors += 1;
                        }
                        let sent = t_live.frames.load(Ordering::Relaxed);
                        tracing::error!(stream = %name, frames = sent, "stream failed: {e}");
                        sh.outcome = Some(Err(e.to_string()));
                    }
                }
            })
            .map_err(|source| StreamSetupError::Thread { stream: cfg.name.clone(), source })?;
        let now = Instant::now();
        Ok(RunningStream { config: cfg, stop, live, shared, thread: Some(thread), started: now, lateness: LatenessBuckets::default(), last_quantiles: None, last: (now, 0, 0), rate: (0.0, 0.0) })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn phase(&self) -> Phase {
        let sh = lock(&self.shared);
        match &sh.outcome {
            Some(Ok(_)) => Phase::Ended,
            Some(Err(_)) => Phase::Failed,
            None if sh.running => Phase::Running,
            // the thread ended without an outcome: it panicked
            None if self.thread.as_ref().is_none_or(JoinHandle::is_finished) => Phase::Failed,
            None => Phase::Starting,
        }
    }

    /// Takes the pacer's lateness since the last call and updates the rate; call about once
    /// a second.
    pub fn sample(&mut self) {
        let h = self.live.take_lateness();
        if h.count() > 0 {
            self.lateness.add(&h);
            self.last_quantiles = Lateness::of(&h);
        }
        let now = Instant::now();
        let (frames, bytes) = (self.live.frames.load(Ordering::Relaxed), self.live.bytes.load(Ordering::Relaxed));
        let dt = now.duration_since(self.last.0).as_secs_f64();
        if dt > 0.0 {
            self.rate = ((frames - self.last.1) as f64 / dt, (bytes - self.last.2) as f64 * 8.0 / dt);
        }
        self.last = (now, frames, bytes);
    }

    /// True when the stream should be sending but its pacer has shown no sign of life for
    /// [`STUCK_AFTER`] (a stream that ended or failed is not stuck: it is reported, not hung).
    pub fn is_stuck(&self) -> bool {
        if self.phase() != Phase::Running {
            return false;
        }
        let beat = self.live.heartbeat_ns.load(Ordering::Relaxed);
        beat > 0 && emit::pacer::now_ns() - beat > STUCK_AFTER.as_nanos() as i64
    }

    pub fn metrics(&self) -> StreamMetrics {
        let phase = self.phase();
        let sh = lock(&self.shared);
        let detail = match &sh.outcome {
            Some(Ok(r)) => Some(format!("ended: {}", end_reason(r.pacer.end))),
            Some(Err(e)) => Some(e.clone()),
            None if phase == Phase::Failed => Some("the stream thread panicked (see the log)".into()),
            None => None,
        };
        let running = phase == Phase::Running;
        StreamMetrics {
            name: self.config.name.clone(),
            interface: self.config.interface.clone(),
            source: self.config.source.kind().into(),
            phase,
            detail,
            frames_sent: self.live.frames.load(Ordering::Relaxed),
            bytes_sent: self.live.bytes.load(Ordering::Relaxed),
            send_errors: sh.send_errors,
            retries: self.live.retries.load(Ordering::Relaxed),
            stalls: self.live.stalls.load(Ordering::Relaxed),
            backlog: if running { self.live.backlog.load(Ordering::Relaxed) } else { 0 },
            rate_pps: if running { self.rate.0 } else { 0.0 },
            rate_bps: if running { self.rate.1 } else { 0.0 },
            lateness_p50_s: self.last_quantiles.map(|l| l.p50_ns as f64 / 1e9),
            lateness_p99_s: self.last_quantiles.map(|l| l.p99_ns as f64 / 1e9),
            lateness: self.lateness.clone(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            link_up: !self.live.link_down.load(Ordering::Relaxed),
            link_downs: self.live.link_downs.load(Ordering::Relaxed),
            link_down_s: self.live.link_down_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }

    /// Asks the stream to stop (it drains within ~100 ms: the pacer checks the flag between
    /// frames and while it waits).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops the stream, waits for its thread and returns its frame count. The thread logs
    /// the totals itself.
    pub fn stop(mut self) -> u64 {
        self.request_stop();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!(stream = %self.config.name, "the stream thread panicked");
            }
        }
        self.live.frames.load(Ordering::Relaxed)
    }
}

impl Drop for RunningStream {
    fn drop(&mut self) {
        self.request_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn end_reason(e: emit::EndReason) -> &'static str {
    match e {
        emit::EndReason::SourceDone => "source done",
        emit::EndReason::Limit => "limit",
        emit::EndReason::Duration => "duration",
        emit::EndReason::Stopped => "stopped",
    }
}

/// One log line with a stream's totals.
fn log_totals(name: &str, r: &StreamReport) {
    let p = &r.pacer;
    let (p50, p99) = p.lateness.map_or((String::from("-"), String::from("-")), |l| (format!("{:.1}us", l.p50_ns as f64 / 1e3), format!("{:.1}us", l.p99_ns as f64 / 1e3)));
    tracing::info!(
        stream = %name,
        frames = p.frames,
        bytes = p.bytes,
        seconds = format_args!("{:.3}", p.seconds),
        pps = format_args!("{:.0}", p.pps()),
        retries = p.retries,
        stalls = p.stalls,
        link_downs = p.link_downs,
        link_down_s = format_args!("{:.1}", p.link_down_s),
        lateness_p50 = %p50,
        lateness_p99 = %p99,
        ended = end_reason(p.end),
        "stream totals"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::Config;
    use std::path::Path;

    fn config(extra: &str, source: &str) -> StreamConfig {
        let text = format!("[[stream]]\nname = \"s\"\ninterface = \"lo\"\n{source}\nseed = 9\nallowlist = [\"10.0.0.0/8\", \"fd00::/8\"]\n{extra}");
        Config::from_toml_str(&text, Path::new("t.toml")).unwrap().streams.remove(0)
    }

    #[test]
    fn pcap_stream_spec() {
        let s = spec_of(&config("pps = 500\nloop = 7\nduration = 3\nceiling_pps = 900\nstall = \"shift\"", "pcap = \"x.pcap\"")).unwrap();
        match s.source {
            SourceSpec::Pcap { schedule, loops, .. } => {
                assert_eq!(schedule, PcapSchedule::Pps(500.0));
                assert_eq!(loops, 7);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.pacer.duration_s, Some(3.0));
        assert_eq!(s.pacer.ceiling.pps, Some(900.0));
        assert_eq!(s.pacer.stall, emit::StallPolicy::Shift);
        assert_eq!(s.pacer.multiplier, 1.0);
        let s = spec_of(&config("multiplier = 2", "pcap = \"x.pcap\"")).unwrap();
        assert_eq!(s.pacer.multiplier, 2.0);
        assert!(matches!(s.source, SourceSpec::Pcap { schedule: PcapSchedule::Recorded, loops: 1, .. }));
    }

    #[test]
    fn model_stream_spec_takes_the_address_plan() {
        let s = spec_of(&config("warm_up = 45\nmbps = 5\nboth_sides = true\n[stream.addresses]\nserver_v4 = \"10.9.0.0/16\"", "model = \"m\"")).unwrap();
        match s.source {
            SourceSpec::Model { engine, wire, pps, mbps, .. } => {
                assert_eq!(engine.seed, 9);
                assert_eq!((engine.warm_up_s, engine.both_sides), (45.0, true));
                assert_eq!((pps, mbps), (None, Some(5.0)));
                assert_eq!(wire.server_v4, "10.9.0.0/16".parse().unwrap());
                assert_eq!(wire.client_v4, WireConfig::default().client_v4);
            }
            other => panic!("{other:?}"),
        }
        let err = spec_of(&config("wire_config = \"/nonexistent/w.toml\"", "model = \"m\"")).err().unwrap();
        assert!(err.to_string().contains("stream \"s\": wire_config"), "{err}");
    }

    #[test]
    fn a_stream_that_cannot_start_fails_and_says_why() {
        let mut cfg = config("", "pcap = \"/nonexistent/x.pcap\"");
        cfg.interface = "tgnosuchif0".into();
        let s = RunningStream::start(cfg).unwrap();
        let t0 = Instant::now();
        while s.phase() == Phase::Starting {
            assert!(t0.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(5));
        }
        let m = s.metrics();
        assert_eq!(m.phase, Phase::Failed);
        assert!(m.detail.as_deref().unwrap_or("").contains("tgnosuchif0"), "{m:?}");
        assert!(!s.is_stuck());
        assert_eq!(s.stop(), 0);
    }
}
