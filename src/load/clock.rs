//! Scheduled starts that land on time: [`sleep_until`] wakes within tens of microseconds of its
//! deadline, where tokio's timer (whole milliseconds, and an `epoll_wait` timeout rounded up to
//! the next millisecond) lands 1 to 1.2 ms late. Used only for the schedule's own instants (a
//! session's connect and a message's send); every other deadline keeps the cheap coarse timer.
//!
//! How: the wait runs on tokio's timer until `COARSE_MARGIN` (2 ms) before the deadline, so idle
//! sessions cost nothing more than before. The last stretch is handed to one process-wide clock
//! thread, which keeps the few deadlines that close in order, sleeps on a futex until a little
//! before the earliest (the kernel's timer slack makes that sleep some 50-150 µs late on its
//! own, and the thread learns by how much), spins for the rest, and wakes the task when its
//! instant has come. The spinning is bounded by `SPIN_MAX` (300 µs) per deadline and is
//! shared by deadlines that fall together; `benches/schedule.rs` measures its precision and CPU
//! cost.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::time::Instant;

/// How long before a deadline the coarse timer hands over: its lateness (up to ~1.2 ms on an
/// idle machine) plus room, so the hand-over comes before the deadline.
const COARSE_MARGIN: Duration = Duration::from_millis(2);

/// How long before a deadline the clock thread first stops sleeping and starts spinning; from
/// then on it adapts: the futex sleep's own lateness (timer slack, 50 µs by default,
/// plus the wake-up; 80-110 µs on this project's VMs), averaged, plus a quarter and
/// [`SPIN_ROOM`], within [`SPIN_MIN`, `SPIN_MAX`].
const SPIN: Duration = Duration::from_micros(200);
const SPIN_ROOM: Duration = Duration::from_micros(20);
const SPIN_MIN: Duration = Duration::from_micros(40);
const SPIN_MAX: Duration = Duration::from_micros(300);

/// Waits until `deadline`, landing within tens of microseconds of it on an idle machine.
/// Cancel-safe: dropping the future forgets the deadline.
pub async fn sleep_until(deadline: Instant) {
    let Some(clock) = Clock::get() else {
        // No clock thread (it could not be spawned): the coarse timer alone.
        return tokio::time::sleep_until(deadline).await;
    };
    if let Some(early) = deadline.checked_sub(COARSE_MARGIN) {
        if Instant::now() < early {
            tokio::time::sleep_until(early).await;
        }
    }
    Precise {
        clock,
        deadline,
        key: None,
    }
    .await;
}

/// The last stretch of a wait, on the clock thread.
struct Precise {
    clock: &'static Clock,
    deadline: Instant,
    /// The entry in the clock's table, once registered.
    key: Option<(Instant, u64)>,
}

impl Future for Precise {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            if let Some(key) = self.key.take() {
                self.clock.forget(key);
            }
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(key) => key,
            None => {
                let key = (
                    self.deadline,
                    self.clock.next_id.fetch_add(1, Ordering::Relaxed),
                );
                self.key = Some(key);
                key
            }
        };
        self.clock.register(key, cx.waker());
        Poll::Pending
    }
}

impl Drop for Precise {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.clock.forget(key);
        }
    }
}

/// The process-wide clock thread's table of deadlines due soon.
struct Clock {
    due: Mutex<BTreeMap<(Instant, u64), Waker>>,
    changed: Condvar,
    next_id: AtomicU64,
}

impl Clock {
    /// The clock, its thread started on first use; `None` if the thread cannot be spawned.
    fn get() -> Option<&'static Self> {
        static CLOCK: OnceLock<Option<Arc<Clock>>> = OnceLock::new();
        CLOCK
            .get_or_init(|| {
                let clock = Arc::new(Self {
                    due: Mutex::new(BTreeMap::new()),
                    changed: Condvar::new(),
                    next_id: AtomicU64::new(0),
                });
                let run = clock.clone();
                std::thread::Builder::new()
                    .name("fleetbench-clock".into())
                    .spawn(move || run.run())
                    .ok()
                    .map(|_| clock)
            })
            .as_deref()
    }

    fn register(&self, key: (Instant, u64), waker: &Waker) {
        let mut due = self.due.lock();
        let earliest = due.keys().next().is_none_or(|first| key < *first);
        match due.get_mut(&key) {
            Some(w) if w.will_wake(waker) => {}
            Some(w) => w.clone_from(waker),
            None => {
                due.insert(key, waker.clone());
            }
        }
        drop(due);
        if earliest {
            self.changed.notify_one();
        }
    }

    fn forget(&self, key: (Instant, u64)) {
        self.due.lock().remove(&key);
    }

    /// The clock thread: wakes each task at its deadline, for the life of the process.
    fn run(&self) {
        let mut woken = Vec::new();
        // The futex sleep's average lateness, and so how early to stop sleeping.
        let (mut late, mut spin) = (SPIN / 2, SPIN);
        loop {
            let mut due = self.due.lock();
            let Some(&(first, _)) = due.keys().next() else {
                self.changed.wait(&mut due);
                continue;
            };
            let now = Instant::now();
            if first > now + spin {
                let until = first - spin;
                if self
                    .changed
                    .wait_until(&mut due, until.into_std())
                    .timed_out()
                {
                    let woke = Instant::now().saturating_duration_since(until);
                    late = (late * 7 + woke) / 8;
                    spin = (late + late / 4 + SPIN_ROOM).clamp(SPIN_MIN, SPIN_MAX);
                }
                continue;
            }
            if first > now {
                // The last stretch, a few tens of µs: busy. Yielding instead would hand a busy
                // machine's core to another process for a whole time slice, milliseconds.
                drop(due);
                while Instant::now() < first {
                    std::hint::spin_loop();
                }
                continue;
            }
            while let Some(entry) = due.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                woken.push(entry.remove());
            }
            drop(due);
            for w in woken.drain(..) {
                w.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sleeps_end_at_or_after_their_deadline() {
        for us in [0u64, 50, 500, 1500, 4000] {
            let deadline = Instant::now() + Duration::from_micros(us);
            sleep_until(deadline).await;
            assert!(Instant::now() >= deadline, "{us} µs");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_wait_leaves_nothing_in_the_clock() {
        let deadline = Instant::now() + Duration::from_millis(1500);
        let clock = Clock::get().unwrap();
        let mut wait = Box::pin(Precise {
            clock,
            deadline,
            key: None,
        });
        assert!(futures::poll!(wait.as_mut()).is_pending());
        assert!(clock.due.lock().keys().any(|(d, _)| *d == deadline));
        drop(wait);
        assert!(clock.due.lock().keys().all(|(d, _)| *d != deadline));
    }
}
