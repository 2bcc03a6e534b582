//! Recognising a throttling hub from the generator's side: acknowledgement latency that grows
//! several-fold while the generator itself is healthy, and throttling refusals. A capacity test
//! that mistakes throttling for capacity misleads its user, so the report says when it began.

use serde::{Deserialize, Serialize};

use super::TimelineRow;

/// Evidence of throttling in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throttling {
    /// Seconds into the run when it began.
    pub began_at_secs: u64,
    /// Acknowledgements per second before it began (median of the seconds before).
    pub acks_per_sec_before: f64,
    /// Acknowledgements per second after it began (median of the seconds after).
    pub acks_per_sec_after: f64,
    /// Mean acknowledgement latency before, µs (median of the per-second means).
    pub ack_latency_before_us: u64,
    /// Mean acknowledgement latency after, µs (median of the per-second means).
    pub ack_latency_after_us: u64,
    /// Sessions or messages the hub refused as throttled (AMQP condition), if any.
    pub throttled_refusals: u64,
}

/// Acknowledgement latency this many times the early baseline (and at least `FLOOR_US` more)
/// counts as a hub slowing down on purpose when the generator is not the one saturated.
const GROWTH: u64 = 5;
const FLOOR_US: u64 = 5_000;
/// Seconds at the start that set the baseline.
const BASELINE_ROWS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Looks for throttling in a timeline. `cpu_ceiling` is the per-row CPU (fraction of one core)
/// above which the generator, not the hub, may be the cause; `throttled` counts refusals whose
/// condition named throttling.
pub fn detect(rows: &[TimelineRow], cpu_ceiling: f64, throttled: u64) -> Option<Throttling> {
    let acked: Vec<&TimelineRow> = rows.iter().filter(|r| r.acks > 0).collect();
    let baseline = median(
        acked
            .iter()
            .take(BASELINE_ROWS)
            .map(|r| r.ack_mean_us as f64)
            .collect(),
    ) as u64;
    let slow = |r: &&&TimelineRow| {
        r.ack_mean_us > baseline.max(1) * GROWTH
            && r.ack_mean_us > baseline + FLOOR_US
            && r.cpu < cpu_ceiling
    };
    let onset = acked
        .iter()
        .skip(BASELINE_ROWS)
        .find(slow)
        .map(|r| r.t)
        .or_else(|| {
            // No slowdown seen, but the hub said "throttled": it began at the first error.
            (throttled > 0).then(|| rows.iter().find(|r| r.errors > 0).map_or(0, |r| r.t))
        })?;
    let (before, after): (Vec<&TimelineRow>, Vec<&TimelineRow>) =
        acked.iter().partition(|r| r.t < onset);
    Some(Throttling {
        began_at_secs: onset,
        acks_per_sec_before: median(before.iter().map(|r| r.acks as f64).collect()),
        acks_per_sec_after: median(after.iter().map(|r| r.acks as f64).collect()),
        ack_latency_before_us: median(before.iter().map(|r| r.ack_mean_us as f64).collect()) as u64,
        ack_latency_after_us: median(after.iter().map(|r| r.ack_mean_us as f64).collect()) as u64,
        throttled_refusals: throttled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: u64, acks: u64, ack_mean_us: u64, cpu: f64) -> TimelineRow {
        TimelineRow {
            t,
            acks,
            ack_mean_us,
            cpu,
            ..TimelineRow::default()
        }
    }

    #[test]
    fn growing_latency_with_a_healthy_generator_is_throttling() {
        let rows: Vec<_> = (1..=10)
            .map(|t| {
                if t <= 5 {
                    row(t, 200, 800, 0.2)
                } else {
                    row(t, 100, 900_000, 0.2)
                }
            })
            .collect();
        let th = detect(&rows, 0.9, 0).unwrap();
        assert_eq!(th.began_at_secs, 6);
        assert_eq!(th.acks_per_sec_before, 200.0);
        assert_eq!(th.acks_per_sec_after, 100.0);
        assert!(th.ack_latency_after_us > 100 * th.ack_latency_before_us);
    }

    #[test]
    fn a_saturated_generator_or_a_steady_hub_is_not_throttling() {
        let busy: Vec<_> = (1..=10)
            .map(|t| {
                if t <= 5 {
                    row(t, 200, 800, 0.2)
                } else {
                    row(t, 100, 900_000, 0.99)
                }
            })
            .collect();
        assert!(detect(&busy, 0.9, 0).is_none());
        let steady: Vec<_> = (1..=10).map(|t| row(t, 200, 800, 0.2)).collect();
        assert!(detect(&steady, 0.9, 0).is_none());
    }
}
