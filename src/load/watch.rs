//! The generator watches itself: a ticker that measures its own lateness (timer lag), and once
//! a second copies the counters, CPU time and RSS into the timeline. Off the hot path.

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
/// Timer lag p99 above this marks the generator saturated.
pub(crate) const LAG_SATURATION: Duration = Duration::from_millis(20);

pub(crate) struct Watcher {
    done: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Watched>,
    before: ProcessSample,
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
        let task = tokio::spawn(async move {
            let mut w = Watched {
                timeline: Timeline::default(),
                lag: crate::metrics::new_histogram(),
                peak_sessions: 0,
                rss_at_peak: before.rss_kib,
            };
            let start = Instant::now();
            let mut next = start + TICK;
            let mut ticks = 0u64;
            let mut last = before;
            let mut last_at = start;
            let mut second_lag = 0u64;
            loop {
                tokio::select! {
                    _ = &mut done_rx => break,
                    () = tokio::time::sleep_until(next) => {}
                }
                let now = Instant::now();
                let lag = crate::metrics::micros(now - next);
                w.lag.saturating_record(lag);
                second_lag = second_lag.max(lag);
                ticks += 1;
                next += TICK;
                if next < now {
                    next = now + TICK;
                }
                let snap = recorder.snapshot();
                if ticks.is_multiple_of(10) {
                    let sample = ProcessSample::now();
                    let cpu = (sample.cpu().saturating_sub(last.cpu())).as_secs_f64() / 1.0;
                    if snap.sessions_active >= w.peak_sessions {
                        w.peak_sessions = snap.sessions_active;
                        w.rss_at_peak = sample.rss_kib;
                    }
                    w.timeline
                        .push(ticks / 10, snap, cpu, sample.rss_kib, second_lag);
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
            w.timeline.push(
                ticks / 10 + 1,
                recorder.snapshot(),
                cpu,
                sample.rss_kib,
                second_lag,
            );
            w
        });
        Self { done, task, before }
    }

    pub(crate) async fn finish(self, elapsed: Duration) -> (Vec<TimelineRow>, GeneratorHealth) {
        let _ = self.done.send(());
        let after = ProcessSample::now();
        let Ok(w) = self.task.await else {
            return (Vec::new(), GeneratorHealth::default());
        };
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
        let lag_p99 = w.lag.value_at_quantile(0.99);
        let mut reasons = Vec::new();
        // CPU over a run of less than a second is too coarse (10 ms ticks) to judge.
        if utilisation > CPU_SATURATION && elapsed > Duration::from_secs(1) {
            reasons.push(format!(
                "generator CPU averaged {:.0}% of {cores} cores (threshold {:.0}%)",
                utilisation * 100.0,
                CPU_SATURATION * 100.0
            ));
        }
        if lag_p99 > crate::metrics::micros(LAG_SATURATION) {
            reasons.push(format!(
                "timer lag p99 was {:.1} ms (threshold {} ms): tasks ran late",
                lag_p99 as f64 / 1000.0,
                LAG_SATURATION.as_millis()
            ));
        }
        let rss_per_session = (w.peak_sessions > 0).then(|| {
            w.rss_at_peak.saturating_sub(self.before.rss_kib) as f64 / w.peak_sessions as f64
        });
        let health = GeneratorHealth {
            cpu_user_secs: user,
            cpu_system_secs: system,
            cores,
            cpu_utilisation: utilisation,
            peak_rss_kib: after.peak_rss_kib,
            peak_sessions: w.peak_sessions,
            rss_per_session_kib: rss_per_session,
            timer_lag_p99_us: lag_p99,
            timer_lag_max_us: w.lag.max(),
            task_start_lag_p99_us: 0,
            task_start_lag_max_us: 0,
            saturated: !reasons.is_empty(),
            saturation_reasons: reasons,
            host: None,
        };
        (w.timeline.into_rows(), health)
    }
}

/// Adds the task-start lag (spawn to first poll of session tasks) to the health verdict.
pub(crate) fn task_start_health(health: &mut GeneratorHealth, lag: &LatencyHistogram) {
    health.task_start_lag_p99_us = lag.value_at_quantile(0.99);
    health.task_start_lag_max_us = lag.max();
    if health.task_start_lag_p99_us > crate::metrics::micros(LAG_SATURATION) {
        health.saturated = true;
        health.saturation_reasons.push(format!(
            "session tasks started {:.1} ms after being spawned (p99; threshold {} ms)",
            health.task_start_lag_p99_us as f64 / 1000.0,
            LAG_SATURATION.as_millis()
        ));
    }
}
