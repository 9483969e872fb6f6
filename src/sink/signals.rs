//! Ctrl-C and SIGTERM as a stop request, so a run ends with a finished file.
//!
//! This module owns one process-wide flag and the SIGINT/SIGTERM handlers that set it. The
//! handler only stores `true` into an atomic (async-signal-safe); the loop that feeds a sink
//! checks the flag between frames and calls [`super::FileSink::finish`]. The handlers are
//! installed with `SA_RESETHAND`: the first signal restores the default action, so a second
//! Ctrl-C kills a run that does not stop. It does not drain or stop anything itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

static STOP: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

/// The stop flag, with the SIGINT and SIGTERM handlers installed (once per process).
pub fn stop_flag() -> &'static AtomicBool {
    INSTALL.call_once(|| {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction is valid; the handler is an extern "C" fn that only
            // stores to a static atomic.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                    tracing::warn!("cannot install a handler for signal {sig}: {}", std::io::Error::last_os_error());
                }
            }
        }
    });
    &STOP
}

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    const CHILD_ENV: &str = "TRAFGEN_SIGNAL_CHILD";

    /// Runs in a child process (see `first_signal_sets_flag_second_kills`): the first signal
    /// must set the flag, the second must kill.
    #[test]
    #[ignore = "run by first_signal_sets_flag_second_kills in a child process"]
    fn signal_child() {
        let Ok(sig) = std::env::var(CHILD_ENV) else { return };
        let sig: libc::c_int = sig.parse().expect("signal number");
        let flag = stop_flag();
        assert!(!flag.load(Ordering::SeqCst));
        // SAFETY: raise is safe to call; our handler only stores to the flag.
        unsafe { libc::raise(sig) };
        if !flag.load(Ordering::SeqCst) {
            std::process::exit(3);
        }
        unsafe { libc::raise(sig) };
        std::process::exit(4); // still alive: the second signal did not kill
    }

    #[test]
    fn first_signal_sets_flag_second_kills() {
        let exe = std::env::current_exe().expect("test binary path");
        for sig in [libc::SIGINT, libc::SIGTERM] {
            let out = Command::new(&exe)
                .args(["--exact", "sink::signals::tests::signal_child", "--ignored", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, sig.to_string())
                .output()
                .expect("run the child");
            assert_eq!(
                out.status.signal(),
                Some(sig),
                "signal {sig}: child ended with {:?} (exit 3: flag not set, 4: not killed)\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
