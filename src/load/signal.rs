//! A one-shot signal that many sessions wait on cheaply: the run's abort, as every session's
//! connect phases, its task and its sender see it.
//!
//! A `CancellationToken`'s `cancelled()` takes two locks each time it is polled (the token's
//! node, to ask whether it is cancelled, and its `Notify`'s waiter list), and a session's task
//! polls it at every wake-up of the session: each TLS record, each acknowledgement. Here a
//! waiter registers its waker once, and a poll after that is one atomic load as long as the
//! task's waker stays the same (a tokio task's does).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// A signal fired at most once; every waiter, present or future, sees it.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    fired: AtomicBool,
    waiters: Mutex<Waiters>,
}

/// Registered wakers in reusable slots.
#[derive(Debug, Default)]
struct Waiters {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Signal {
    /// Fires the signal: wakes every waiter; later waits end at once.
    pub(crate) fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        let wakers: Vec<Waker> = {
            let mut w = self.waiters.lock();
            w.free.clear();
            w.slots.drain(..).flatten().collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// Whether the signal has fired.
    fn is_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// Ready once the signal has fired, without waiting for it: pending until then, and no
    /// waker is registered. Only for a task that waits on the signal elsewhere ([`Self::fired`])
    /// and polls this again when woken.
    pub(crate) fn looked_at(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |_| {
            if self.is_fired() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Waits until the signal fires. Cancel-safe: dropping the wait forgets its waker.
    pub(crate) fn fired(&self) -> Fired<'_> {
        Fired {
            signal: self,
            slot: None,
        }
    }
}

/// A wait for a [`Signal`].
#[derive(Debug)]
pub(crate) struct Fired<'a> {
    signal: &'a Signal,
    /// The waker's slot and a copy of the waker registered there.
    slot: Option<(usize, Waker)>,
}

impl Future for Fired<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_fired() {
            return Poll::Ready(());
        }
        if let Some((_, waker)) = &self.slot {
            if waker.will_wake(cx.waker()) {
                return Poll::Pending;
            }
        }
        let signal = self.signal;
        let mut w = signal.waiters.lock();
        // Checked again under the lock: `fire` sets the flag before it takes the wakers, so a
        // waker registered after that would never be woken.
        if signal.is_fired() {
            return Poll::Ready(());
        }
        let waker = cx.waker().clone();
        let index = match &self.slot {
            Some((i, _)) => *i,
            None => match w.free.pop() {
                Some(i) => i,
                None => {
                    w.slots.push(None);
                    w.slots.len() - 1
                }
            },
        };
        w.slots[index] = Some(waker.clone());
        drop(w);
        self.slot = Some((index, waker));
        Poll::Pending
    }
}

impl Drop for Fired<'_> {
    fn drop(&mut self) {
        let Some((index, _)) = self.slot.take() else {
            return;
        };
        if self.signal.is_fired() {
            // `fire` took every waker and emptied the slots.
            return;
        }
        let mut w = self.signal.waiters.lock();
        if let Some(slot) = w.slots.get_mut(index) {
            if slot.take().is_some() {
                w.free.push(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn waiters_before_and_after_the_fire_all_end() {
        let signal = Arc::new(Signal::default());
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let s = signal.clone();
                tokio::spawn(async move { s.fired().await })
            })
            .collect();
        // Every waiter has registered before the fire: each task is parked in its wait.
        tokio::task::yield_now().await;
        signal.fire();
        for w in waiting {
            tokio::time::timeout(std::time::Duration::from_secs(5), w)
                .await
                .expect("a waiter registered before the fire was not woken")
                .unwrap();
        }
        signal.fired().await;
        assert!(signal.is_fired());
    }

    #[test]
    fn a_look_registers_no_waker_and_sees_the_fire() {
        let signal = Signal::default();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut look = Box::pin(signal.looked_at());
        assert!(look.as_mut().poll(&mut cx).is_pending());
        assert!(signal.waiters.lock().slots.is_empty());
        signal.fire();
        assert!(look.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_dropped_wait_frees_its_slot_for_the_next() {
        let signal = Signal::default();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut first = Box::pin(signal.fired());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert_eq!(signal.waiters.lock().slots.len(), 1);
        drop(first);
        assert_eq!(signal.waiters.lock().free, vec![0]);
        let mut second = Box::pin(signal.fired());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        assert_eq!(signal.waiters.lock().slots.len(), 1, "the slot is reused");
        signal.fire();
        assert!(second.as_mut().poll(&mut cx).is_ready());
    }
}
