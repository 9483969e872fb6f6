//! systemd's notification protocol (`sd_notify(3)`): telling the service manager that the
//! daemon is ready, reloading, stopping, alive (watchdog) and what it is doing (STATUS=).
//!
//! Owns: the message format ([`message`]), the socket named by `$NOTIFY_SOCKET` (a unix
//! datagram socket; a leading `@` means the abstract namespace) and the watchdog period read
//! from `$WATCHDOG_USEC`/`$WATCHDOG_PID` ([`watchdog_period`]).
//! Does not decide when to send what (the daemon's control plane does), nor depend on
//! libsystemd: the protocol is one datagram of `KEY=VALUE` lines.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// One assignment of a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// `READY=1`: start-up (or a reload) is finished.
    Ready,
    /// `RELOADING=1`: a reload began (followed by `READY=1` when it is done).
    Reloading,
    /// `STOPPING=1`: shutting down.
    Stopping,
    /// `WATCHDOG=1`: still alive.
    Watchdog,
    /// `STATUS=…`: one line of free text shown by `systemctl status`.
    Status(String),
    /// `MONOTONIC_USEC=…`: CLOCK_MONOTONIC when a reload began (sent with `RELOADING=1`).
    MonotonicUsec(u64),
}

/// The datagram for `states`: one `KEY=VALUE` line each. Newlines in a status text would start
/// a new assignment, so they are replaced by spaces.
pub fn message(states: &[State]) -> String {
    let mut out = String::new();
    for s in states {
        match s {
            State::Ready => out.push_str("READY=1"),
            State::Reloading => out.push_str("RELOADING=1"),
            State::Stopping => out.push_str("STOPPING=1"),
            State::Watchdog => out.push_str("WATCHDOG=1"),
            State::Status(text) => {
                out.push_str("STATUS=");
                out.extend(text.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }));
            }
            State::MonotonicUsec(us) => out.push_str(&format!("MONOTONIC_USEC={us}")),
        }
        out.push('\n');
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET={path:?}: not an absolute path nor an abstract name (@name)")]
    BadAddress { path: String },
    #[error("NOTIFY_SOCKET={path:?}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl NotifyError {
    /// The manager is not reading its socket (its queue is full): this notification was
    /// dropped rather than stalling the control plane.
    pub fn is_congested(&self) -> bool {
        matches!(self, NotifyError::Io { source, .. } if source.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// Where notifications go; inert when the daemon was not started by systemd (no
/// `$NOTIFY_SOCKET`), so callers never need to check.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr, String)>,
}

impl Notifier {
    /// A notifier for `$NOTIFY_SOCKET`, or an inert one when it is unset or empty.
    pub fn from_env() -> Result<Notifier, NotifyError> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(path) if !path.is_empty() => Notifier::to(&path),
            _ => Ok(Notifier { target: None }),
        }
    }

    /// A notifier for the socket at `path` (`/run/…` or `@abstract`).
    pub fn to(path: &str) -> Result<Notifier, NotifyError> {
        let addr = if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())
        } else if path.starts_with('/') {
            SocketAddr::from_pathname(path)
        } else {
            return Err(NotifyError::BadAddress { path: path.into() });
        }
        .map_err(|source| NotifyError::Io { path: path.into(), source })?;
        let socket = UnixDatagram::unbound().map_err(|source| NotifyError::Io { path: path.into(), source })?;
        // never block the control plane (metrics, reloads, signals) on a manager that does
        // not read: a full queue drops that notification (see `NotifyError::is_congested`)
        socket.set_nonblocking(true).map_err(|source| NotifyError::Io { path: path.into(), source })?;
        Ok(Notifier { target: Some((socket, addr, path.into())) })
    }

    /// True when notifications go somewhere.
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `states` in one datagram (nothing when inert).
    pub fn notify(&self, states: &[State]) -> Result<(), NotifyError> {
        let Some((socket, addr, path)) = &self.target else { return Ok(()) };
        socket
            .send_to_addr(message(states).as_bytes(), addr)
            .map(|_| ())
            .map_err(|source| NotifyError::Io { path: path.clone(), source })
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when it is set and
/// `$WATCHDOG_PID` (if set) is this process.
pub fn watchdog_period() -> Option<Duration> {
    watchdog_period_from(std::env::var("WATCHDOG_USEC").ok().as_deref(), std::env::var("WATCHDOG_PID").ok().as_deref(), std::process::id())
}

fn watchdog_period_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(me) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2))
}

/// CLOCK_MONOTONIC in µs (for [`State::MonotonicUsec`]).
pub fn monotonic_usec() -> u64 {
    (crate::emit::pacer::now_ns() / 1000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_key_value_lines() {
        assert_eq!(message(&[State::Ready]), "READY=1\n");
        assert_eq!(
            message(&[State::Reloading, State::MonotonicUsec(42), State::Status("reloading /etc/x".into())]),
            "RELOADING=1\nMONOTONIC_USEC=42\nSTATUS=reloading /etc/x\n"
        );
        assert_eq!(message(&[State::Stopping, State::Watchdog]), "STOPPING=1\nWATCHDOG=1\n");
        // a status cannot inject another assignment
        assert_eq!(message(&[State::Status("a\nREADY=1\r".into())]), "STATUS=a READY=1 \n");
    }

    #[test]
    fn watchdog_period_is_half_the_timeout_for_this_process() {
        assert_eq!(watchdog_period_from(Some("30000000"), None, 7), Some(Duration::from_secs(15)));
        assert_eq!(watchdog_period_from(Some("30000000"), Some("7"), 7), Some(Duration::from_secs(15)));
        assert_eq!(watchdog_period_from(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_period_from(None, Some("7"), 7), None);
        assert_eq!(watchdog_period_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_period_from(Some("x"), None, 7), None);
    }

    #[test]
    fn a_manager_that_does_not_read_never_blocks_the_sender() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.sock");
        let _rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to(path.to_str().unwrap()).unwrap();
        let t0 = std::time::Instant::now();
        let mut congested = 0;
        for _ in 0..1000 {
            if let Err(e) = n.notify(&[State::Watchdog]) {
                assert!(e.is_congested(), "{e}");
                congested += 1;
            }
        }
        assert!(congested > 0 && t0.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn sends_to_a_path_and_an_abstract_socket() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to(path.to_str().unwrap()).unwrap();
        assert!(n.is_active());
        n.notify(&[State::Ready, State::Status("2 streams".into())]).unwrap();
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=2 streams\n");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("trafgen-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        Notifier::to(&format!("@{name}")).unwrap().notify(&[State::Stopping]).unwrap();
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1\n");

        assert!(matches!(Notifier::to("relative/path"), Err(NotifyError::BadAddress { .. })));
        assert!(!Notifier { target: None }.is_active());
        Notifier { target: None }.notify(&[State::Ready]).unwrap();
    }
}
