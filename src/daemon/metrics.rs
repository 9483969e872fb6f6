//! What the daemon exposes about its streams: the Prometheus text format (`/metrics`) and the
//! `/status` JSON document, both rendered from one [`StreamMetrics`] per stream.
//!
//! Owns: metric names, help texts and label escaping ([`render_prometheus`]), the fixed
//! lateness buckets ([`LatenessBuckets`], filled from the pacer's log histogram) and the
//! status document's shape ([`Status`], read back by `trafgen status`).
//! Does not: sample the streams (the [`super::streams`] supervisor does), nor serve HTTP
//! (the [`super::endpoint`]).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::hist::LogHistogram;

/// Upper bounds (seconds, inclusive) of the lateness histogram's buckets; `+Inf` follows.
pub const LATENESS_BOUNDS_S: [f64; 14] =
    [1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 5e-3, 1e-2, 1e-1, 1.0];

/// A cumulative histogram of lateness with the fixed bounds [`LATENESS_BOUNDS_S`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatenessBuckets {
    /// Frames at or below each bound (not cumulative across bounds: one count per bucket).
    pub counts: [u64; LATENESS_BOUNDS_S.len()],
    /// Frames above the last bound.
    pub over: u64,
    /// Sum of lateness in seconds (from the log histogram's bucket midpoints: ≤ 1 % off).
    pub sum_s: f64,
}

impl LatenessBuckets {
    /// Adds the frames of `h`. A log-histogram bucket goes where its midpoint falls (the log
    /// buckets are < 1 % wide, so at most the frames within 1 % of a bound can land one
    /// bucket off).
    pub fn add(&mut self, h: &LogHistogram) {
        for (lo, hi, count) in h.buckets() {
            let mid_s = (lo as f64 + hi as f64) / 2.0 / 1e9;
            self.sum_s += mid_s * count as f64;
            match LATENESS_BOUNDS_S.iter().position(|&b| mid_s <= b) {
                Some(i) => self.counts[i] += count,
                None => self.over += count,
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.over
    }
}

/// A stream's lifecycle as the daemon sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Checks and source start-up (interface, allowlist, model pilot run, pcap preload).
    Starting,
    /// Sending.
    Running,
    /// Ended on its own (duration, limit, source done) or was stopped.
    Ended,
    /// Did not start or stopped on an error (see `error`).
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Ended => "ended",
            Phase::Failed => "failed",
        }
    }
}

/// Everything exposed about one stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamMetrics {
    pub name: String,
    pub interface: String,
    /// `model` or `pcap`.
    pub source: String,
    pub phase: Phase,
    /// Why it failed, or how it ended.
    pub detail: Option<String>,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    /// sendmmsg failures that were not ENOBUFS/EAGAIN or a link going down, and interfaces
    /// that disappeared (each ends the stream).
    pub send_errors: u64,
    /// sendmmsg calls retried after ENOBUFS/EAGAIN.
    pub retries: u64,
    pub stalls: u64,
    /// Frames generated ahead of the pacer.
    pub backlog: u64,
    /// Over the last sampling interval.
    pub rate_pps: f64,
    pub rate_bps: f64,
    /// Lateness p50/p99 of the last interval that sent frames, seconds.
    pub lateness_p50_s: Option<f64>,
    pub lateness_p99_s: Option<f64>,
    pub lateness: LatenessBuckets,
    /// Seconds since the stream was (re)started.
    pub uptime_s: f64,
    /// False while the stream waits for its link to come back.
    #[serde(default = "yes")]
    pub link_up: bool,
    /// Times the link went down, and the seconds it was down in all.
    #[serde(default)]
    pub link_downs: u64,
    #[serde(default)]
    pub link_down_s: f64,
}

fn yes() -> bool {
    true
}

impl StreamMetrics {
    /// The state as `trafgen status` shows it: the phase, or `link-down` while a running
    /// stream waits for its link.
    pub fn state(&self) -> &'static str {
        if self.phase == Phase::Running && !self.link_up {
            "link-down"
        } else {
            self.phase.as_str()
        }
    }
}

/// The `/status` document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub config: String,
    pub uptime_s: f64,
    /// Successful reloads; failed ones.
    pub reloads: u64,
    pub reload_failures: u64,
    /// The last failed reload's error, until a reload succeeds.
    pub last_reload_error: Option<String>,
    pub streams: Vec<StreamMetrics>,
}

/// `s` as a Prometheus label value (backslash, double quote and newline escaped).
fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A float the way Prometheus reads it.
fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

/// The Prometheus text exposition format (version 0.0.4) for `status`.
pub fn render_prometheus(status: &Status) -> String {
    let mut out = String::new();
    let streams = &status.streams;
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&StreamMetrics) -> String| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in streams {
            let _ = writeln!(out, "{name}{{stream=\"{}\"}} {}", label(&s.name), value(s));
        }
    };
    family("trafgend_frames_sent_total", "counter", "Frames the kernel accepted for sending.", &|s| s.frames_sent.to_string());
    family("trafgend_bytes_sent_total", "counter", "Bytes of those frames (Ethernet header included, no FCS).", &|s| s.bytes_sent.to_string());
    family("trafgend_send_errors_total", "counter", "sendmmsg failures other than ENOBUFS/EAGAIN or a link down, and interfaces that disappeared (each ends the stream).", &|s| s.send_errors.to_string());
    family("trafgend_retries_total", "counter", "sendmmsg calls retried after ENOBUFS/EAGAIN.", &|s| s.retries.to_string());
    family("trafgend_stalls_total", "counter", "Frames later than the stall threshold.", &|s| s.stalls.to_string());
    family("trafgend_generator_backlog_frames", "gauge", "Frames generated ahead of the pacer.", &|s| s.backlog.to_string());
    family("trafgend_rate_pps", "gauge", "Frames per second over the last sampling interval.", &|s| num(s.rate_pps));
    family("trafgend_rate_bits_per_second", "gauge", "Bits per second over the last sampling interval.", &|s| num(s.rate_bps));
    family("trafgend_stream_uptime_seconds", "gauge", "Seconds since the stream was (re)started.", &|s| num(s.uptime_s));
    family("trafgend_link_up", "gauge", "0 while the stream waits for its interface's link to come back, else 1.", &|s| (s.link_up as u8).to_string());
    family("trafgend_link_down_total", "counter", "Times the stream's link went down (the stream paused until it was back).", &|s| s.link_downs.to_string());
    family("trafgend_link_down_seconds_total", "counter", "Seconds the stream waited for its link.", &|s| num(s.link_down_s));

    let _ = writeln!(out, "# HELP trafgend_stream_up 1 when the stream is starting or sending, 0 when it ended or failed.");
    let _ = writeln!(out, "# TYPE trafgend_stream_up gauge");
    for s in streams {
        let up = matches!(s.phase, Phase::Starting | Phase::Running) as u8;
        let _ = writeln!(out, "trafgend_stream_up{{stream=\"{}\",interface=\"{}\",source=\"{}\",phase=\"{}\"}} {up}", label(&s.name), label(&s.interface), label(&s.source), s.phase.as_str());
    }

    let name = "trafgend_lateness_seconds";
    let _ = writeln!(out, "# HELP {name} How late frames left after their deadline (send time - deadline).");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for s in streams {
        let l = label(&s.name);
        let mut cumulative = 0;
        for (bound, count) in LATENESS_BOUNDS_S.iter().zip(s.lateness.counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{stream=\"{l}\",le=\"{}\"}} {cumulative}", num(*bound));
        }
        let _ = writeln!(out, "{name}_bucket{{stream=\"{l}\",le=\"+Inf\"}} {}", s.lateness.count());
        let _ = writeln!(out, "{name}_sum{{stream=\"{l}\"}} {}", num(s.lateness.sum_s));
        let _ = writeln!(out, "{name}_count{{stream=\"{l}\"}} {}", s.lateness.count());
    }

    let _ = writeln!(out, "# HELP trafgend_reloads_total Configuration reloads (SIGHUP), by result.");
    let _ = writeln!(out, "# TYPE trafgend_reloads_total counter");
    let _ = writeln!(out, "trafgend_reloads_total{{result=\"ok\"}} {}", status.reloads);
    let _ = writeln!(out, "trafgend_reloads_total{{result=\"error\"}} {}", status.reload_failures);
    let _ = writeln!(out, "# HELP trafgend_uptime_seconds Seconds since the daemon started.");
    let _ = writeln!(out, "# TYPE trafgend_uptime_seconds gauge");
    let _ = writeln!(out, "trafgend_uptime_seconds {}", num(status.uptime_s));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(name: &str) -> StreamMetrics {
        StreamMetrics {
            name: name.into(),
            interface: "veth0".into(),
            source: "pcap".into(),
            phase: Phase::Running,
            detail: None,
            frames_sent: 1234,
            bytes_sent: 98765,
            send_errors: 0,
            retries: 3,
            stalls: 1,
            backlog: 512,
            rate_pps: 1000.5,
            rate_bps: 8e6,
            lateness_p50_s: Some(2e-6),
            lateness_p99_s: Some(4e-5),
            lateness: LatenessBuckets::default(),
            uptime_s: 12.0,
            link_up: true,
            link_downs: 2,
            link_down_s: 3.5,
        }
    }

    fn status(streams: Vec<StreamMetrics>) -> Status {
        Status { version: "0".into(), config: "c.toml".into(), uptime_s: 20.0, reloads: 2, reload_failures: 1, last_reload_error: None, streams }
    }

    #[test]
    fn lateness_buckets_from_a_log_histogram() {
        let mut h = LogHistogram::default();
        for v in [100u64, 900, 1500, 3_000_000, 2_000_000_000] {
            h.record(v);
        }
        let mut b = LatenessBuckets::default();
        b.add(&h);
        assert_eq!(b.counts[0], 2); // 100 ns, 900 ns ≤ 1 µs
        assert_eq!(b.counts[1], 1); // 1.5 µs ≤ 2 µs
        assert_eq!(b.counts[10], 1); // 3 ms ≤ 5 ms
        assert_eq!(b.over, 1); // 2 s
        assert_eq!(b.count(), 5);
        let exact = (100 + 900 + 1500 + 3_000_000 + 2_000_000_000) as f64 / 1e9;
        assert!((b.sum_s - exact).abs() / exact < 0.01, "{} vs {exact}", b.sum_s);
        b.add(&h);
        assert_eq!(b.count(), 10);
    }

    #[test]
    fn prometheus_text() {
        let mut a = stream("web");
        a.lateness.counts[0] = 5;
        a.lateness.counts[3] = 2;
        a.lateness.over = 1;
        a.lateness.sum_s = 1.5;
        let mut b = stream("we\"ird\\");
        b.phase = Phase::Failed;
        let text = render_prometheus(&status(vec![a, b]));
        for line in [
            "# TYPE trafgend_frames_sent_total counter",
            "trafgend_frames_sent_total{stream=\"web\"} 1234",
            "trafgend_bytes_sent_total{stream=\"web\"} 98765",
            "trafgend_send_errors_total{stream=\"web\"} 0",
            "trafgend_retries_total{stream=\"web\"} 3",
            "trafgend_generator_backlog_frames{stream=\"web\"} 512",
            "trafgend_rate_pps{stream=\"web\"} 1000.5",
            "trafgend_rate_bits_per_second{stream=\"web\"} 8000000",
            "trafgend_link_up{stream=\"web\"} 1",
            "trafgend_link_down_total{stream=\"web\"} 2",
            "trafgend_link_down_seconds_total{stream=\"web\"} 3.5",
            "trafgend_stream_up{stream=\"web\",interface=\"veth0\",source=\"pcap\",phase=\"running\"} 1",
            "trafgend_stream_up{stream=\"we\\\"ird\\\\\",interface=\"veth0\",source=\"pcap\",phase=\"failed\"} 0",
            "# TYPE trafgend_lateness_seconds histogram",
            "trafgend_lateness_seconds_bucket{stream=\"web\",le=\"0.000001\"} 5",
            "trafgend_lateness_seconds_bucket{stream=\"web\",le=\"0.000005\"} 5",
            "trafgend_lateness_seconds_bucket{stream=\"web\",le=\"0.00001\"} 7",
            "trafgend_lateness_seconds_bucket{stream=\"web\",le=\"1\"} 7",
            "trafgend_lateness_seconds_bucket{stream=\"web\",le=\"+Inf\"} 8",
            "trafgend_lateness_seconds_sum{stream=\"web\"} 1.5",
            "trafgend_lateness_seconds_count{stream=\"web\"} 8",
            "trafgend_reloads_total{result=\"ok\"} 2",
            "trafgend_reloads_total{result=\"error\"} 1",
            "trafgend_uptime_seconds 20",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // every sample line is `name{labels} value` or `name value`, and every family is typed
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = l.rsplit_once(' ').unwrap();
            assert!(value == "+Inf" || value.parse::<f64>().is_ok(), "{l}");
            let family = series.split('{').next().unwrap();
            let base = family.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {base} ")) || text.contains(&format!("# TYPE {family} ")), "{l}");
        }
        assert_eq!(num(f64::INFINITY), "+Inf");
    }

    #[test]
    fn status_round_trips_through_json() {
        let s = status(vec![stream("web")]);
        let back: Status = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
