//! The generator watches itself: a ticker that measures its own lateness (timer lag), and once
//! a second copies the counters, CPU time, RSS and each phase's cumulative histogram into the
//! timeline (which keeps the second's difference: its interval histogram). Off the hot path:
//! the device tasks only ever meet a shard's lock for the moment of a merge.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::metrics::{
    GeneratorHealth, LatencyHistogram, ProcessSample, Recorder, Timeline, TimelineRow,
};

/// How often the lag probe fires.
const TICK: Duration = Duration::from_millis(100);
/// Mean CPU above this fraction of all cores marks the generator saturated.
pub(crate) const CPU_SATURATION: f64 = 0.90;
/// Timer lag above this marks the generator late.
pub(crate) const LAG_SATURATION: Duration = Duration::from_millis(20);
/// Seconds of the timeline over a threshold that make saturation sustained.
const SUSTAINED_SECS: usize = 3;
/// Samples a p99 needs before it is more than the worst sample or two.
const MIN_SAMPLES: u64 = 300;

pub(crate) struct Watcher {
    done: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Watched>,
    before: ProcessSample,
    recorder: Arc<Recorder>,
}

struct Watched {
    timeline: Timeline,
    lag: LatencyHistogram,
    peak_sessions: u64,
    rss_at_peak: u64,
}

impl Watcher {
    pub(crate) fn start(recorder: Arc<Recorder>) -> Self {
        let before = ProcessSample::now();
        let (done, mut done_rx) = oneshot::channel();
        let counters = recorder.clone();
        let task = tokio::spawn(async move {
            let mut w = Watched {
                timeline: Timeline::default(),
                lag: crate::metrics::new_histogram(),
                peak_sessions: 0,
                rss_at_peak: before.rss_kib,
            };
            let start = Instant::now();
            let mut next = start + TICK;
            let mut last = before;
            let mut last_at = start;
            let mut second_lag = 0u64;
            // Rows are labelled by the wall clock, not by ticks counted: a starved generator
            // skips ticks, and a row then ends more than one second after the one before.
            let mut row_t = 0u64;
            loop {
                tokio::select! {
                    _ = &mut done_rx => break,
                    () = tokio::time::sleep_until(next) => {}
                }
                let now = Instant::now();
                let lag = crate::metrics::micros(now - next);
                w.lag.saturating_record(lag);
                second_lag = second_lag.max(lag);
                next += TICK;
                if next < now {
                    next = now + TICK;
                }
                let snap = recorder.snapshot();
                let elapsed = (now - start).as_secs();
                if elapsed > row_t {
                    row_t = elapsed;
                    let sample = ProcessSample::now();
                    let secs = (now - last_at).as_secs_f64().max(1e-3);
                    let cpu = sample.cpu().saturating_sub(last.cpu()).as_secs_f64() / secs;
                    if snap.sessions_active >= w.peak_sessions {
                        w.peak_sessions = snap.sessions_active;
                        w.rss_at_peak = sample.rss_kib;
                    }
                    w.timeline.push_sampled(
                        row_t,
                        snap,
                        &recorder,
                        (cpu, sample.rss_kib, second_lag),
                    );
                    second_lag = 0;
                    last = sample;
                    last_at = now;
                } else if snap.sessions_active > w.peak_sessions {
                    w.peak_sessions = snap.sessions_active;
                    w.rss_at_peak = ProcessSample::now().rss_kib;
                }
            }
            // The last, partial second, so that the rows add up to the run's totals.
            let sample = ProcessSample::now();
            let secs = (Instant::now() - last_at).as_secs_f64().max(1e-3);
            let cpu = sample.cpu().saturating_sub(last.cpu()).as_secs_f64() / secs;
            w.timeline.push_sampled(
                row_t + 1,
                recorder.snapshot(),
                &recorder,
                (cpu, sample.rss_kib, second_lag),
            );
            w
        });
        Self {
            done,
            task,
            before,
            recorder: counters,
        }
    }

    pub(crate) async fn finish(self, elapsed: Duration) -> (Vec<TimelineRow>, GeneratorHealth) {
        let _ = self.done.send(());
        let after = ProcessSample::now();
        let Ok(w) = self.task.await else {
            return (Vec::new(), GeneratorHealth::default());
        };
        let recorder_peak = self
            .recorder
            .counters
            .sessions_peak
            .load(std::sync::atomic::Ordering::Relaxed);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let user = after.user.saturating_sub(self.before.user).as_secs_f64();
        let system = after
            .system
            .saturating_sub(self.before.system)
            .as_secs_f64();
        let utilisation = if elapsed.is_zero() {
            0.0
        } else {
            (user + system) / (elapsed.as_secs_f64() * f64::from(cores))
        };
        let rows = w.timeline.into_rows();
        let reasons = saturation(&rows, cores, utilisation, elapsed, &w.lag);
        let rss_per_session = (w.peak_sessions > 0).then(|| {
            w.rss_at_peak.saturating_sub(self.before.rss_kib) as f64 / w.peak_sessions as f64
        });
        let health = GeneratorHealth {
            cpu_user_secs: user,
            cpu_system_secs: system,
            cores,
            cpu_utilisation: utilisation,
            peak_rss_kib: after.peak_rss_kib,
            // Exact: the counters keep the peak; the ticker can miss short-lived sessions.
            peak_sessions: recorder_peak.max(w.peak_sessions),
            rss_per_session_kib: rss_per_session,
            timer_lag_p99_us: (!w.lag.is_empty()).then(|| w.lag.value_at_quantile(0.99)),
            timer_lag_max_us: w.lag.max(),
            task_start_lag_p99_us: 0,
            task_start_lag_max_us: 0,
            saturated: !reasons.is_empty(),
            saturation_reasons: reasons,
            host: None,
        };
        (rows, health)
    }
}

/// Adds the task-start lag (spawn to first poll of session tasks) to the health verdict: its
/// p99 counts only over enough sessions that it is not simply the worst one.
pub(crate) fn task_start_health(health: &mut GeneratorHealth, lag: &LatencyHistogram) {
    health.task_start_lag_p99_us = lag.value_at_quantile(0.99);
    health.task_start_lag_max_us = lag.max();
    if lag.len() >= MIN_SAMPLES
        && health.task_start_lag_p99_us > crate::metrics::micros(LAG_SATURATION)
    {
        health.saturated = true;
        health.saturation_reasons.push(format!(
            "session tasks started {:.1} ms after being spawned (p99 of {} session tasks; threshold {} ms)",
            health.task_start_lag_p99_us as f64 / 1000.0,
            lag.len(),
            LAG_SATURATION.as_millis()
        ));
    }
}

/// Why the generator was saturated, from sustained evidence only: CPU averaged over the whole
/// run (of several seconds), or CPU or timer lag over its threshold in at least
/// `SUSTAINED_SECS` seconds of the timeline, or a lag p99 over enough ticks that it is not just
/// the worst one. One late tick is not saturation.
fn saturation(
    rows: &[TimelineRow],
    cores: u32,
    utilisation: f64,
    elapsed: Duration,
    lag: &LatencyHistogram,
) -> Vec<String> {
    let mut reasons = Vec::new();
    let secs = rows.len();
    if utilisation > CPU_SATURATION && elapsed >= Duration::from_secs(SUSTAINED_SECS as u64) {
        reasons.push(format!(
            "generator CPU averaged {:.0}% of {cores} cores over the run (threshold {:.0}%)",
            utilisation * 100.0,
            CPU_SATURATION * 100.0
        ));
    } else {
        let busy = rows
            .iter()
            .filter(|r| r.cpu > CPU_SATURATION * f64::from(cores.max(1)))
            .count();
        if busy >= SUSTAINED_SECS {
            reasons.push(format!(
                "generator CPU was over {:.0}% of {cores} cores in {busy} of {secs} seconds",
                CPU_SATURATION * 100.0
            ));
        }
    }
    let limit = crate::metrics::micros(LAG_SATURATION);
    let late: Vec<u64> = rows
        .iter()
        .map(|r| r.lag_us)
        .filter(|l| *l > limit)
        .collect();
    let p99 = lag.value_at_quantile(0.99);
    if late.len() >= SUSTAINED_SECS {
        reasons.push(format!(
            "timer lag was over {} ms in {} of {secs} seconds (worst {:.1} ms): tasks ran late",
            LAG_SATURATION.as_millis(),
            late.len(),
            late.iter().max().copied().unwrap_or(0) as f64 / 1000.0
        ));
    } else if lag.len() >= MIN_SAMPLES && p99 > limit {
        reasons.push(format!(
            "timer lag p99 was {:.1} ms over {} ticks (threshold {} ms): tasks ran late",
            p99 as f64 / 1000.0,
            lag.len(),
            LAG_SATURATION.as_millis()
        ));
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(cpu: f64, lag_us: &[u64]) -> Vec<TimelineRow> {
        lag_us
            .iter()
            .enumerate()
            .map(|(i, l)| TimelineRow {
                t: i as u64 + 1,
                cpu,
                lag_us: *l,
                ..TimelineRow::default()
            })
            .collect()
    }

    fn ticks(lags_us: &[u64]) -> LatencyHistogram {
        let mut h = crate::metrics::new_histogram();
        for l in lags_us {
            h.saturating_record(*l);
        }
        h
    }

    #[test]
    fn one_late_tick_at_low_cpu_is_not_saturation() {
        // ~40 s, one 29 ms tick among 400 of 1 ms: p99 of the seconds' worst is the max.
        let mut lags = vec![1_000; 40];
        lags[17] = 29_000;
        let mut all = vec![1_000; 399];
        all.push(29_000);
        let r = saturation(
            &rows(0.06, &lags),
            2,
            0.03,
            Duration::from_secs(40),
            &ticks(&all),
        );
        assert!(r.is_empty(), "{r:?}");
        // A short run: its few ticks are no evidence either way.
        let r = saturation(
            &rows(0.06, &[29_000]),
            2,
            0.03,
            Duration::from_millis(900),
            &ticks(&[29_000; 9]),
        );
        assert!(r.is_empty(), "{r:?}");
    }

    #[test]
    fn sustained_lag_or_cpu_is_saturation_and_says_which() {
        let lags = [1_000, 25_000, 40_000, 31_000, 1_000];
        let r = saturation(
            &rows(0.3, &lags),
            2,
            0.15,
            Duration::from_secs(5),
            &ticks(&[1_000; 50]),
        );
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(r[0].contains("timer lag was over 20 ms in 3 of 5 seconds (worst 40.0 ms)"));
        let busy = saturation(
            &rows(1.9, &[1_000; 4]),
            2,
            0.5,
            Duration::from_secs(4),
            &ticks(&[1_000; 40]),
        );
        assert_eq!(busy.len(), 1, "{busy:?}");
        assert!(busy[0].contains("over 90% of 2 cores in 4 of 4 seconds"));
        let mean = saturation(&[], 2, 0.97, Duration::from_secs(10), &ticks(&[]));
        assert!(mean[0].contains("averaged 97% of 2 cores"), "{mean:?}");
    }
}
