//! The rates a plan asks for, in the one definition of `metrics::per_sec`: (n - 1) intervals
//! over the span from the first to the last scheduled connect.

use std::time::Duration;

use super::schedule::ConnectSchedule;
use super::{Plan, SessionPlan};

/// Arrivals looked at to work out a planned rate: enough for any rate a run can hold, and a
/// bound on the work (a churn plan's arrivals are endless until its duration).
const MAX_ARRIVALS: usize = 10_000_000;

impl Plan {
    /// Connects per second that this plan schedules for `devices` devices: `None` for a burst
    /// (paced by the handshake cap alone) or fewer than two connects.
    pub fn planned_connect_rate(&self, devices: u64) -> Option<f64> {
        if self.connect.schedule == ConnectSchedule::Burst {
            return None;
        }
        let arrivals = self.connect.schedule.arrivals().take(MAX_ARRIVALS);
        let taken: Box<dyn Iterator<Item = Duration>> = match self.session {
            SessionPlan::Once { .. } => Box::new(arrivals.take(devices as usize)),
            SessionPlan::Churn { duration } => {
                Box::new(arrivals.take_while(move |t| *t < duration))
            }
            SessionPlan::Staged => Box::new(arrivals),
        };
        let (mut n, mut first, mut last) = (0u64, None, None);
        for t in taken {
            n += 1;
            first.get_or_insert(t);
            last = Some(t);
        }
        crate::metrics::per_sec(
            n,
            first.map(|t: Duration| t.as_secs_f64()),
            last.map(|t| t.as_secs_f64()),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::test_plan as plan;

    #[test]
    fn a_rate_or_a_ramp_plans_its_rate_and_a_burst_none() {
        let p = plan("[fleet]\ndevices = 153\n[connect]\nrate = 50\n").unwrap();
        assert!((p.planned_connect_rate(153).unwrap() - 50.0).abs() < 1e-9);
        let p = plan("[fleet]\ndevices = 100\n[connect]\nramp = \"10s\"\n").unwrap();
        let r = p.planned_connect_rate(100).unwrap();
        assert!((r - 10.0).abs() < 0.2, "{r}");
        let p = plan("[fleet]\ndevices = 100\n").unwrap();
        assert_eq!(p.planned_connect_rate(100), None);
        let p = plan("[fleet]\ndevices = 1\n[connect]\nrate = 50\n").unwrap();
        assert_eq!(p.planned_connect_rate(1), None);
    }
}
