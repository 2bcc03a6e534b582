//! The CPU time a future spends in its own polls: the thread's CPU clock
//! (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`) read before and after each poll, the deltas summed,
//! on whichever worker thread polled it. Around a TLS handshake this is the handshake's CPU price
//! exactly: key generation, signatures, certificate checks and record crypto all run inside the
//! handshake future's polls, and nothing else runs inside them.
//!
//! Its own cost: two clock reads per poll. On Linux a thread's CPU clock is not served by the
//! vDSO, so each read is a system call: 0.42 µs of CPU on the development machine (a shared
//! 2-core VM; `cargo test --lib cpu_clock -- --ignored --nocapture`). A handshake is polled 1-2
//! times on the client and 2-3 times on the hub (counted in a churn run), so the wrapper costs
//! about 1-2.5 µs of CPU per handshake on each side, around 1 % of a resumed handshake
//! (180-250 µs) and less of a full one; of that, about one read per poll (0.4 µs) falls between
//! the two samples and so inside the figure. The generator therefore clocks a sample of its
//! handshakes (all of the first 256, then one in 8: `load`), the hub every one.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::FutureExt as _;

/// The calling thread's CPU time so far (zero where the platform has no such clock).
pub fn thread_cpu() -> Duration {
    #[cfg(unix)]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_nsec).unwrap_or(0),
        )
    }
    #[cfg(not(unix))]
    {
        Duration::ZERO
    }
}

/// Runs `fut` and returns its output with the CPU time spent in its polls.
pub fn clocked<F: Future + Unpin>(fut: F) -> impl Future<Output = (F::Output, Duration)> {
    clocked_if(true, fut).map(|(out, cpu)| (out, cpu.unwrap_or_default()))
}

/// Runs `fut` and returns its output, with the CPU time spent in its polls when `clock`.
///
/// Not an `async fn`: that would hold `fut` twice in its state (as the argument, and pinned),
/// and a TLS handshake future is over a kilobyte, copied whole when its caller boxes it.
pub fn clocked_if<F: Future + Unpin>(
    clock: bool,
    mut fut: F,
) -> impl Future<Output = (F::Output, Option<Duration>)> + Unpin {
    let mut spent = Duration::ZERO;
    std::future::poll_fn(move |cx| {
        if !clock {
            return Pin::new(&mut fut).poll(cx).map(|out| (out, None));
        }
        let before = thread_cpu();
        let polled = Pin::new(&mut fut).poll(cx);
        spent += thread_cpu().saturating_sub(before);
        polled.map(|out| (out, Some(spent)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burns CPU for about `d` of this thread's CPU time.
    fn burn(d: Duration) -> u64 {
        let start = thread_cpu();
        let mut x = 0u64;
        while thread_cpu() - start < d {
            for i in 0..1000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
        }
        x
    }

    #[tokio::test]
    async fn counts_the_cpu_of_its_polls_and_not_the_time_it_waits() {
        let ((), cpu) = clocked(Box::pin(async {
            std::hint::black_box(burn(Duration::from_millis(20)));
            // Waiting costs no CPU of this future: a timer's wake-up is outside its polls.
            tokio::time::sleep(Duration::from_millis(30)).await;
            std::hint::black_box(burn(Duration::from_millis(20)));
        }))
        .await;
        assert!(cpu >= Duration::from_millis(40), "{cpu:?}");
        assert!(cpu < Duration::from_millis(60), "{cpu:?}");
    }

    /// The wrapper's own cost: one clock read, in CPU and wall time (run with `--ignored
    /// --nocapture`; on a busy machine the wall time includes waiting for a core).
    #[test]
    #[ignore = "a measurement, not a check"]
    fn cost_of_one_clock_read() {
        let n = 1_000_000u32;
        let (wall, cpu) = (std::time::Instant::now(), thread_cpu());
        for _ in 0..n {
            std::hint::black_box(thread_cpu());
        }
        let (wall, cpu) = (wall.elapsed() / n, (thread_cpu() - cpu) / n);
        assert!(cpu > Duration::ZERO);
        #[allow(clippy::print_stdout)]
        {
            println!("one CLOCK_THREAD_CPUTIME_ID read: {cpu:?} CPU, {wall:?} wall");
        }
    }
}
