//! systemd's service notifications (sd_notify(3)), so `Type=notify` units know when ferrocgi
//! is ready, reloading and stopping. Nothing is sent unless systemd set `NOTIFY_SOCKET`; only
//! the main process sends (systemd ignores the others by default).
//!
//! `sd-notify` writes the datagrams: a small, kept crate; the protocol has its corners (abstract
//! socket names, the monotonic stamp a reload carries) that it already handles.

use sd_notify::NotifyState;
use tracing::debug;

/// The socket is listening and the application loaded: `READY=1`, with a one-line status.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A graceful reload began; the program that follows says `READY=1` again (same pid).
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading, NotifyState::Status("reloading")];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

/// A stop began: `STOPPING=1`.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState<'_>]) {
    // Keep NOTIFY_SOCKET: a reload re-executes this program, which must notify again.
    if let Err(e) = sd_notify::notify(false, states) {
        debug!(error = %e, "cannot notify systemd");
    }
}
