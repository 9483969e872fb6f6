//! Per-packet and per-flow feature rows.
//!
//! Definitions (the model stage and `--features-csv` use exactly these):
//! - `size`: IP total length (link-independent); non-IP: frame length after the link header.
//! - `header_len`: IP header (with options/extensions) + transport header; `payload_len` the rest.
//! - `direction`: 0 client→server, 1 server→client.
//! - `time_diff_s`: seconds since the previous packet of the same flow (0 for the first);
//!   `log_time_diff = log10(max(time_diff_s, MIN_TIME_DIFF_S))`.
//! - `rate_{bytes,pkts}_{1s,60s}`: sum of `size` / count of the flow's packets in the trailing
//!   window (now − W, now], this packet included (NeCSTGen's rolling sums per second/minute).

use std::collections::VecDeque;

use crate::capture::{Packet, TcpFlags};
use crate::flow::{Assignment, EndReason, Flow, FlowKind};

use super::app::{self, App};

/// Floor of `time_diff_s` before log10 (0.1 µs), so the first packet's feature is −7.
pub const MIN_TIME_DIFF_S: f64 = 1e-7;

const NS: i64 = 1_000_000_000;
const WIN_SHORT: i64 = NS;
const WIN_LONG: i64 = 60 * NS;

/// Trailing 1 s and 60 s windows of one flow's packets. The 1 s window is a suffix of the
/// 60 s one, so one deque serves both; memory is the flow's packets of the last minute.
#[derive(Clone, Debug, Default)]
pub struct Rolling {
    win: VecDeque<(i64, u32)>,
    /// Index in `win` of the first packet inside the 1 s window.
    short_start: usize,
    short: (u64, u64),
    long: (u64, u64),
}

impl Rolling {
    /// Adds a packet and returns (bytes 1 s, packets 1 s, bytes 60 s, packets 60 s).
    pub fn push(&mut self, now_ns: i64, size: u32) -> (u64, u64, u64, u64) {
        self.win.push_back((now_ns, size));
        self.short.0 += u64::from(size);
        self.short.1 += 1;
        self.long.0 += u64::from(size);
        self.long.1 += 1;
        while let Some(&(t, s)) = self.win.front() {
            if t > now_ns - WIN_LONG {
                break;
            }
            self.win.pop_front();
            self.long.0 -= u64::from(s);
            self.long.1 -= 1;
            if self.short_start > 0 {
                self.short_start -= 1;
            } else {
                // only when both windows are equal; kept for safety
                self.short.0 -= u64::from(s);
                self.short.1 -= 1;
            }
        }
        while let Some(&(t, s)) = self.win.get(self.short_start) {
            if t > now_ns - WIN_SHORT {
                break;
            }
            self.short.0 -= u64::from(s);
            self.short.1 -= 1;
            self.short_start += 1;
        }
        (self.short.0, self.short.1, self.long.0, self.long.1)
    }
}

/// One row of the per-packet table.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PacketFeatures {
    pub flow_id: u64,
    pub kind: FlowKind,
    /// 0-based position in the flow.
    pub position: u64,
    pub ts_ns: i64,
    pub size: u32,
    pub header_len: u32,
    pub payload_len: u32,
    pub direction: u8,
    pub tcp_flags: u16,
    pub time_diff_s: f64,
    pub log_time_diff: f64,
    pub rate_bytes_1s: u64,
    pub rate_pkts_1s: u64,
    pub rate_bytes_60s: u64,
    pub rate_pkts_60s: u64,
}

/// Features of the packet just assigned to `flow` (call once per packet, in order).
pub fn packet_features(p: &Packet, a: &Assignment, now_ns: i64, flow: &mut Flow<Rolling>) -> PacketFeatures {
    let size = p.size();
    let time_diff_s = a.prev_ns.map_or(0.0, |prev| (now_ns - prev).max(0) as f64 / NS as f64);
    let (rb1, rp1, rb60, rp60) = flow.ext.push(now_ns, size);
    PacketFeatures {
        flow_id: a.flow_id,
        kind: a.kind,
        position: a.position,
        ts_ns: now_ns,
        size,
        header_len: p.header_len(),
        payload_len: p.payload_len(),
        direction: a.direction as u8,
        tcp_flags: p.tcp().map_or(0, |t| t.flags.0),
        time_diff_s,
        log_time_diff: time_diff_s.max(MIN_TIME_DIFF_S).log10(),
        rate_bytes_1s: rb1,
        rate_pkts_1s: rp1,
        rate_bytes_60s: rb60,
        rate_pkts_60s: rp60,
    }
}

/// One row of the per-flow table.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct FlowFeatures {
    pub flow_id: u64,
    pub kind: FlowKind,
    pub ip_version: u8,
    pub ip_proto: u8,
    pub app: App,
    pub client_port: u16,
    pub server_port: u16,
    pub start_ns: i64,
    pub duration_s: f64,
    /// Seconds since the previous flow started in the same capture (`None` for the first).
    pub gap_s: Option<f64>,
    pub packets_fwd: u64,
    pub packets_bwd: u64,
    pub bytes_fwd: u64,
    pub bytes_bwd: u64,
    pub payload_fwd: u64,
    pub payload_bwd: u64,
    pub fragments: u32,
    /// TCP: the capture started after the SYN.
    pub mid_stream: bool,
    /// TCP: SYN, SYN-ACK and ACK were seen.
    pub handshake: bool,
    pub end: EndReason,
}

/// Features of a finished flow.
pub fn flow_features<X>(f: &Flow<X>) -> FlowFeatures {
    FlowFeatures {
        flow_id: f.id,
        kind: f.kind,
        ip_version: f.ip_version,
        ip_proto: f.ip_proto,
        app: app::guess(f.ip_proto, f.ip_version, f.ethertype, f.server.port, f.client.port),
        client_port: f.client.port,
        server_port: f.server.port,
        start_ns: f.first_ns,
        duration_s: f.duration_ns() as f64 / NS as f64,
        gap_s: f.gap_ns.map(|g| g as f64 / NS as f64),
        packets_fwd: f.packets[0],
        packets_bwd: f.packets[1],
        bytes_fwd: f.bytes[0],
        bytes_bwd: f.bytes[1],
        payload_fwd: f.payload[0],
        payload_bwd: f.payload[1],
        fragments: f.fragments,
        mid_stream: f.tcp.mid_stream,
        handshake: f.tcp.established,
        end: f.end.unwrap_or(EndReason::EndOfCapture),
    }
}

/// TCP flags as letters, for tables ("" for non-TCP).
pub fn flag_letters(flags: u16) -> String {
    TcpFlags(flags).letters()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_windows_are_exact() {
        let mut r = Rolling::default();
        assert_eq!(r.push(0, 100), (100, 1, 100, 1));
        assert_eq!(r.push(NS / 2, 50), (150, 2, 150, 2));
        // at t=1 s the packet at t=0 leaves the 1 s window (now-1s, now]
        assert_eq!(r.push(NS, 10), (60, 2, 160, 3));
        assert_eq!(r.push(30 * NS, 1), (1, 1, 161, 4));
        // at t=60.5 s the packets at 0 and 0.5 s leave the minute
        assert_eq!(r.push(60 * NS + NS / 2, 2), (2, 1, 13, 3));
        assert_eq!(r.push(200 * NS, 7), (7, 1, 7, 1));
    }
}
