//! How a run ends: the two levels of interruption a caller can ask for, and the timers that end
//! a run by themselves (the hard deadline, the end of a staged schedule). Stopping lets
//! in-flight work drain under the grace period; aborting ends every session at once, wherever
//! it waits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::scenario::Plan;

/// A caller's handle on a run: stop it gracefully, or abort it at once.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    /// Cancelled to stop the schedule and drain in-flight work for at most the grace period.
    pub stop: CancellationToken,
    /// Cancelled to end every session at once (a second Ctrl-C).
    pub abort: CancellationToken,
}

impl Interrupt {
    /// A handle that nothing has cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the caller asked the run to stop or abort.
    pub fn is_cancelled(&self) -> bool {
        self.stop.is_cancelled() || self.abort.is_cancelled()
    }
}

impl From<CancellationToken> for Interrupt {
    /// A handle whose only way to end the run early is a graceful stop.
    fn from(stop: CancellationToken) -> Self {
        Self {
            stop,
            abort: CancellationToken::new(),
        }
    }
}

/// The run's hard deadline, the end of a staged schedule, and an abort from the caller: each
/// stops the run; the deadline and the abort also end every session at once.
pub(super) struct Timers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Timers {
    /// Starts the timers of a run that began at `start`; `abort` ends every session.
    pub(super) fn start(
        plan: &Plan,
        start: Instant,
        stop: &CancellationToken,
        abort: &CancellationToken,
        deadline_hit: &Arc<AtomicBool>,
    ) -> Self {
        let mut tasks = Vec::new();
        let (stop2, abort2, hit) = (stop.clone(), abort.clone(), deadline_hit.clone());
        let deadline = start + plan.run.max_duration;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            hit.store(true, Ordering::Relaxed);
            stop2.cancel();
            abort2.cancel();
        }));
        // An abort stops the schedule too.
        let (stop2, abort2) = (stop.clone(), abort.clone());
        tasks.push(tokio::spawn(async move {
            abort2.cancelled().await;
            stop2.cancel();
        }));
        if let Some(end) = plan.connect.schedule.stages_end() {
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(start + end).await;
                stop.cancel();
            }));
        }
        Self { tasks }
    }

    /// Stops the timers.
    pub(super) fn cancel(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}
