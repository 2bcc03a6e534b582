//! The course of a capacity search, pure (no IO), so that it can be tested without running
//! anything: step up while trials hold, bisect between the highest rate that held and the
//! lowest that failed, and confirm the knee once more before ending.
//!
//! The confirmation is there for targets with a burst allowance (a token bucket, as IoT Hub's
//! throttles are): a step that lands just above the sustained limit can hold on the burst the
//! target saved while the steps below it ran. Run again after the trials above it, which spent
//! that burst, it fails, and the search bisects below it instead.

use crate::report::capacity::Limit;
use crate::scenario::CapacityPlan;

/// Trials at most, whatever the settings: every search ends.
const MAX_TRIALS: usize = 40;

/// The state of a search.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Search {
    start: f64,
    factor: f64,
    max: f64,
    precision: f64,
    /// Every rate that held and is below every rate that failed.
    held_rates: Vec<f64>,
    /// Lowest rate that failed.
    pub(super) failed: Option<f64>,
    /// Set when the search is over for a reason other than a narrow, confirmed bracket.
    pub(super) limit: Option<Limit>,
    /// Whether the highest held rate held again when confirmed.
    confirmed: bool,
    /// Whether the trial under way is a confirmation.
    confirming: bool,
    /// Trials run.
    trials: usize,
}

impl Search {
    pub(super) fn new(c: &CapacityPlan) -> Self {
        Self {
            start: c.start,
            factor: c.factor,
            max: c.max,
            precision: c.precision,
            held_rates: Vec::new(),
            failed: None,
            limit: None,
            confirmed: false,
            confirming: false,
            trials: 0,
        }
    }

    /// The highest rate that held (and, once the search is over, held when confirmed).
    pub(super) fn held(&self) -> Option<f64> {
        self.held_rates.iter().copied().reduce(f64::max)
    }

    pub(super) fn describe(&self) -> String {
        format!(
            "from {:.1}/s x{} up to {:.1}/s, bisecting to {:.1}%",
            self.start,
            self.factor,
            self.max,
            self.precision * 100.0
        )
    }

    /// The next rate to offer and the stage (`step`, `bisect` or `confirm`), or `None` when
    /// done.
    pub(super) fn next(&mut self) -> Option<(f64, &'static str)> {
        self.confirming = false;
        if self.limit.is_some() || self.trials >= MAX_TRIALS {
            return None;
        }
        match (self.held(), self.failed) {
            (None, None) => Some((self.start, "step")),
            (Some(lo), None) => Some(((lo * self.factor).min(self.max), "step")),
            (None, Some(_)) => {
                self.limit = Some(Limit::NoneHeld);
                None
            }
            (Some(lo), Some(hi)) if (hi - lo) / lo > self.precision => {
                Some(((lo + hi) / 2.0, "bisect"))
            }
            (Some(lo), Some(_)) if !self.confirmed => {
                self.confirming = true;
                Some((lo, "confirm"))
            }
            (Some(_), Some(_)) => None,
        }
    }

    /// What the trial at `rate` showed.
    pub(super) fn record(&mut self, rate: f64, held: bool, saturated: bool) {
        self.trials += 1;
        if saturated {
            // Nothing above the knee can be judged: the generator, not the target, was the
            // limit (a trial that held while saturated may not have offered its rate).
            self.limit = Some(Limit::Generator);
        } else if held {
            self.held_rates.push(rate);
            self.confirmed = self.confirming;
            if self.failed.is_none() && rate >= self.max {
                self.limit = Some(Limit::MaxRate);
            }
        } else {
            self.failed = Some(self.failed.map_or(rate, |f| f.min(rate)));
            // A rate that failed bounds every rate that held before: none at or above it held.
            self.held_rates.retain(|h| *h < rate);
            self.confirmed = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(start: f64, factor: f64, max: f64) -> Search {
        Search {
            start,
            factor,
            max,
            precision: 0.05,
            held_rates: Vec::new(),
            failed: None,
            limit: None,
            confirmed: false,
            confirming: false,
            trials: 0,
        }
    }

    /// Runs a search against a target that holds `limit` (and, on its first trial above the
    /// limit, up to `burst` more, as a full token bucket would), and saturates at `saturates_at`.
    fn course(mut s: Search, limit: f64, burst: f64, saturates_at: f64) -> (Vec<f64>, Search) {
        let mut rates = Vec::new();
        let mut rested = true;
        while let Some((r, _)) = s.next() {
            rates.push(r);
            let held = r <= limit || (rested && r <= limit + burst);
            rested = r <= limit;
            s.record(r, held, r >= saturates_at);
        }
        (rates, s)
    }

    #[test]
    fn steps_up_then_bisects_to_the_precision_and_confirms() {
        let (rates, s) = course(search(25.0, 2.0, 1000.0), 130.0, 0.0, f64::INFINITY);
        assert_eq!(&rates[..5], [25.0, 50.0, 100.0, 200.0, 150.0]);
        let (lo, hi) = (s.held().unwrap(), s.failed.unwrap());
        assert!(lo <= 130.0 && hi > 130.0 && (hi - lo) / lo <= 0.05, "{s:?}");
        assert_eq!(rates.last(), Some(&lo), "the knee is confirmed last");
        assert_eq!(s.limit, None);
    }

    #[test]
    fn a_step_that_held_on_a_burst_fails_its_confirmation() {
        // 105 holds on the burst saved below it; 210 spends it; 105 then fails to confirm.
        let (rates, s) = course(search(52.5, 2.0, 1000.0), 100.0, 20.0, f64::INFINITY);
        assert_eq!(&rates[..3], [52.5, 105.0, 210.0]);
        let knee = s.held().unwrap();
        assert!((95.0..=100.0).contains(&knee), "{rates:?} {s:?}");
    }

    #[test]
    fn a_saturated_generator_or_the_maximum_ends_it_early() {
        let (rates, s) = course(search(25.0, 2.0, 1000.0), 500.0, 0.0, 200.0);
        assert_eq!(rates, [25.0, 50.0, 100.0, 200.0]);
        assert_eq!((s.limit, s.held()), (Some(Limit::Generator), Some(100.0)));
        let (rates, s) = course(search(25.0, 2.0, 80.0), 500.0, 0.0, f64::INFINITY);
        assert_eq!(rates, [25.0, 50.0, 80.0]);
        assert_eq!(s.limit, Some(Limit::MaxRate));
        let (rates, s) = course(search(25.0, 2.0, 80.0), 10.0, 0.0, f64::INFINITY);
        assert_eq!((rates, s.limit), (vec![25.0], Some(Limit::NoneHeld)));
    }
}
