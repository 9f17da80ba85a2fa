//! SIGINT (Ctrl-C), SIGTERM (a cancelled CI job, `docker stop`) and SIGHUP
//! (a closed terminal) all mean the same to a run that changes the cluster:
//! stop, restore what it changed, record the revision, release the lock, and
//! exit with the documented code.
//!
//! A run marks itself [`protect`]ed while it holds the deploy lock (the lock
//! does it, see `lock::acquire`). From the first protection on, the three
//! signals are caught by one listener task: while a run is protected, the
//! first signal wakes [`received`] (which the run `select!`s on next to its
//! work) and later signals only print that the restore is in progress and
//! will not stop half way; with no protected run they end the process at
//! once with 128+N, as the default action would. Before any protection the
//! default actions apply (nothing has changed yet).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

/// A signal that stops a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
    Hangup,
}

impl Signal {
    /// How the signal is named in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT (Ctrl-C)",
            Signal::Terminate => "SIGTERM",
            Signal::Hangup => "SIGHUP",
        }
    }
    /// The signal number (exit code 128+N when it ends the process).
    pub fn number(self) -> i32 {
        match self {
            Signal::Interrupt => 2,
            Signal::Terminate => 15,
            Signal::Hangup => 1,
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

struct State {
    first: watch::Sender<Option<Signal>>,
    count: AtomicUsize,
    protected: AtomicUsize,
}

static STATE: OnceLock<State> = OnceLock::new();

fn state() -> &'static State {
    STATE.get_or_init(|| State {
        first: watch::channel(None).0,
        count: AtomicUsize::new(0),
        protected: AtomicUsize::new(0),
    })
}

static LISTENER: OnceLock<()> = OnceLock::new();

/// While alive, signals are delivered to [`received`] instead of ending the process.
#[must_use = "the run is protected only while this value lives"]
pub struct Protected(());

impl Drop for Protected {
    fn drop(&mut self) {
        state().protected.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Protect the current run (must be called inside the tokio runtime).
pub fn protect() -> Protected {
    state().protected.fetch_add(1, Ordering::SeqCst);
    LISTENER.get_or_init(install);
    Protected(())
}

/// The first signal received, if any.
pub fn pending() -> Option<Signal> {
    *state().first.borrow()
}

/// Resolves at the first signal (at once if one was already received).
pub async fn received() -> Signal {
    let mut rx = state().first.subscribe();
    loop {
        if let Some(s) = *rx.borrow_and_update() {
            return s;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Record a signal and say what happens (the listener's body; pure enough to test).
fn on_signal(s: Signal) -> Option<i32> {
    let st = state();
    if st.protected.load(Ordering::SeqCst) == 0 {
        return Some(128 + s.number());
    }
    let n = st.count.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 {
        st.first.send_replace(Some(s));
        crate::output::err_line(format!(
            "pake: {s} received: stopping; whatever this run changed is restored and recorded before pake exits"
        ));
    } else {
        crate::output::err_line(format!(
            "pake: {s} received again: the restore is in progress and will not stop half way; wait for it to finish (kill -9 abandons it: the next run then reports what it left)"
        ));
    }
    None
}

#[cfg(unix)]
fn install() {
    use tokio::signal::unix::{SignalKind, signal};
    let kinds = [
        (SignalKind::interrupt(), Signal::Interrupt),
        (SignalKind::terminate(), Signal::Terminate),
        (SignalKind::hangup(), Signal::Hangup),
    ];
    for (kind, s) in kinds {
        match signal(kind) {
            Ok(mut stream) => {
                tokio::spawn(async move {
                    while stream.recv().await.is_some() {
                        if let Some(code) = on_signal(s) {
                            std::process::exit(code);
                        }
                    }
                });
            }
            Err(e) => tracing::warn!("cannot handle {s}: {e}"),
        }
    }
}

#[cfg(not(unix))]
fn install() {
    tokio::spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            if let Some(code) = on_signal(Signal::Interrupt) {
                std::process::exit(code);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_signal_wakes_the_run_later_ones_do_not_end_it() {
        // Unprotected: the default action (exit 128+N).
        assert_eq!(on_signal(Signal::Terminate), Some(143));
        let p = protect();
        assert_eq!(pending(), None);
        assert_eq!(on_signal(Signal::Hangup), None);
        assert_eq!(received().await, Signal::Hangup);
        // A second signal during the restore changes nothing.
        assert_eq!(on_signal(Signal::Interrupt), None);
        assert_eq!(pending(), Some(Signal::Hangup));
        drop(p);
        assert_eq!(on_signal(Signal::Interrupt), Some(130));
    }
}
