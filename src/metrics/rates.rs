//! Rates, defined once: connects, sends and acknowledgements per second over the span in which
//! they happened, for `run`, `merge`, thresholds and every report alike.
//!
//! A rate of N events is (N - 1) intervals over the time from the first *scheduled* event to the
//! last *completed* one: 100 connects scheduled at 200/s (0 to 0.495 s) that complete by 0.498 s
//! achieved 198.8/s. Counting from the schedule's first instant charges a late or slow start to
//! the rate; ending at the last completion charges a slow hub. The planned rate is the same
//! formula over the schedule's own instants, so the two compare like for like.
//!
//! On the hot path, [`Spans`] keeps the first and last instants in relaxed atomics (µs since the
//! run's origin). Frozen, a [`Rate`] keeps them in seconds since the run's `started_at`, so that
//! [`Rates::merge`] can put shards that started apart on one clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// An unset minimum.
const UNSET: u64 = u64::MAX;

/// One span of instants: the first scheduled, the last scheduled and the last completed.
#[derive(Debug)]
struct Span {
    first_planned: AtomicU64,
    last_planned: AtomicU64,
    last_done: AtomicU64,
}

impl Default for Span {
    fn default() -> Self {
        Self {
            first_planned: AtomicU64::new(UNSET),
            last_planned: AtomicU64::new(0),
            last_done: AtomicU64::new(0),
        }
    }
}

impl Span {
    fn mark(&self, planned: Option<u64>, done: Option<u64>) {
        if let Some(p) = planned {
            self.first_planned.fetch_min(p, Ordering::Relaxed);
            self.last_planned.fetch_max(p, Ordering::Relaxed);
        }
        if let Some(d) = done {
            self.last_done.fetch_max(d, Ordering::Relaxed);
        }
    }

    fn frozen(&self, count: u64) -> Rate {
        let secs = |us: u64| us as f64 / 1e6;
        let first = self.first_planned.load(Ordering::Relaxed);
        let (from, planned_to) = if first == UNSET {
            (None, None)
        } else {
            (
                Some(secs(first)),
                Some(secs(self.last_planned.load(Ordering::Relaxed))),
            )
        };
        let last = self.last_done.load(Ordering::Relaxed);
        let to = (from.is_some() && last > 0).then(|| secs(last));
        Rate::new(count, from, planned_to, to, None)
    }
}

/// The hot-path record of when a run's connects, sends and acknowledgements were due and done.
#[derive(Debug, Default)]
pub struct Spans {
    origin: OnceLock<Instant>,
    connects: Span,
    sends: Span,
    acks: Span,
}

impl Spans {
    /// Sets the instant that offsets count from (the run's start); later calls are ignored.
    pub fn begin(&self, origin: Instant) {
        let _ = self.origin.set(origin);
    }

    fn offset(&self, at: Instant) -> Option<u64> {
        let origin = self.origin.get()?;
        Some(u64::try_from(at.saturating_duration_since(*origin).as_micros()).unwrap_or(UNSET - 1))
    }

    /// A session scheduled at `intended` connected at `done`.
    pub fn connected(&self, intended: Instant, done: Instant) {
        self.connects.mark(self.offset(intended), self.offset(done));
    }

    /// A message due at `due` was written at `sent`.
    pub fn sent(&self, due: Instant, sent: Instant) {
        self.sends.mark(self.offset(due), self.offset(sent));
    }

    /// A message due at `due` was acknowledged at `done`.
    pub fn acked(&self, due: Instant, done: Instant) {
        self.acks.mark(self.offset(due), self.offset(done));
    }

    /// The rates of `connects`, `sends` and `acks` events, with instants in seconds since the
    /// origin.
    pub fn rates(&self, connects: u64, sends: u64, acks: u64) -> Rates {
        Rates {
            connects: self.connects.frozen(connects),
            sends: self.sends.frozen(sends),
            acks: self.acks.frozen(acks),
        }
    }
}

/// One achieved rate and the plan it answers to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Events counted.
    pub count: u64,
    /// The first event's scheduled instant, seconds since the run's start.
    pub from_secs: Option<f64>,
    /// The last event's scheduled instant, seconds since the run's start.
    pub planned_to_secs: Option<f64>,
    /// The last event's completion, seconds since the run's start.
    pub to_secs: Option<f64>,
    /// Events per second achieved: (count - 1) over `from_secs` to `to_secs`; absent with
    /// fewer than two events.
    pub per_sec: Option<f64>,
    /// Events per second the plan asked for, when it asked for a rate.
    pub planned_per_sec: Option<f64>,
}

impl Rate {
    /// A rate from its instants; `planned` overrides the rate of the scheduled instants (the
    /// scenario's own figure, when the events that happened are fewer than were planned).
    pub fn new(
        count: u64,
        from: Option<f64>,
        planned_to: Option<f64>,
        to: Option<f64>,
        planned: Option<f64>,
    ) -> Self {
        let round = |v: f64| (v * 1e6).round() / 1e6;
        Self {
            count,
            from_secs: from.map(round),
            planned_to_secs: planned_to.map(round),
            to_secs: to.map(round),
            per_sec: per_sec(count, from, to),
            planned_per_sec: planned.or_else(|| per_sec(count, from, planned_to)),
        }
    }

    /// This rate with its instants moved by `secs` (onto another run's clock).
    fn shifted(&self, secs: f64) -> Self {
        Self {
            from_secs: self.from_secs.map(|v| v + secs),
            planned_to_secs: self.planned_to_secs.map(|v| v + secs),
            to_secs: self.to_secs.map(|v| v + secs),
            ..self.clone()
        }
    }
}

/// The one definition: `count` events from `from` to `to` (seconds) happened at (count - 1) /
/// (to - from) per second. Fewer than two events, or no time between them, have no rate.
pub fn per_sec(count: u64, from: Option<f64>, to: Option<f64>) -> Option<f64> {
    let span = to? - from?;
    (count >= 2 && span > 0.0).then(|| (count - 1) as f64 / span)
}

/// A run's rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Sessions connected (reconnects included).
    pub connects: Rate,
    /// Messages written.
    pub sends: Rate,
    /// Messages acknowledged.
    pub acks: Rate,
}

impl Rates {
    /// The rates of runs that ran together (the shards of one fleet), each given with its start
    /// in seconds after the earliest start: counts add, spans join, planned rates of the
    /// scenario add (each shard planned its share).
    pub fn merge<'a>(parts: impl IntoIterator<Item = (f64, &'a Self)>) -> Self {
        let parts: Vec<(f64, &Self)> = parts.into_iter().collect();
        let join = |pick: fn(&Self) -> &Rate| {
            let rates: Vec<Rate> = parts.iter().map(|(at, r)| pick(r).shifted(*at)).collect();
            let min = |f: fn(&Rate) -> Option<f64>| rates.iter().filter_map(f).reduce(f64::min);
            let max = |f: fn(&Rate) -> Option<f64>| rates.iter().filter_map(f).reduce(f64::max);
            let count = rates.iter().map(|r| r.count).sum();
            Rate::new(
                count,
                min(|r| r.from_secs),
                max(|r| r.planned_to_secs),
                max(|r| r.to_secs),
                None,
            )
        };
        let mut merged = Self {
            connects: join(|r| &r.connects),
            sends: join(|r| &r.sends),
            acks: join(|r| &r.acks),
        };
        // A scenario's connect rate is split between shards: the fleet's is their sum.
        let planned: Vec<f64> = parts
            .iter()
            .filter_map(|(_, r)| r.connects.planned_per_sec)
            .collect();
        if planned.len() == parts.len() && !planned.is_empty() {
            merged.connects.planned_per_sec = Some(planned.iter().sum());
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_rate_counts_intervals_from_first_scheduled_to_last_done() {
        // 100 connects at 200/s: scheduled 0..0.495 s, the last done at 0.498 s.
        let r = Rate::new(100, Some(0.0), Some(0.495), Some(0.498), None);
        assert!((r.per_sec.unwrap() - 198.8).abs() < 0.1, "{r:?}");
        assert!((r.planned_per_sec.unwrap() - 200.0).abs() < 1e-9, "{r:?}");
        assert_eq!(per_sec(1, Some(0.0), Some(1.0)), None);
        assert_eq!(per_sec(5, Some(1.0), Some(1.0)), None);
    }

    #[test]
    fn spans_keep_first_and_last() {
        let s = Spans::default();
        let t0 = Instant::now();
        s.begin(t0);
        for k in 0..10u64 {
            let due = t0 + Duration::from_millis(100 * k);
            s.connected(due, due + Duration::from_millis(3));
        }
        let r = s.rates(10, 0, 0);
        assert_eq!(r.connects.from_secs, Some(0.0));
        assert_eq!(r.connects.planned_to_secs, Some(0.9));
        assert_eq!(r.connects.to_secs, Some(0.903));
        assert!((r.connects.planned_per_sec.unwrap() - 10.0).abs() < 1e-9);
        assert!((r.connects.per_sec.unwrap() - 9.0 / 0.903).abs() < 1e-9);
        assert_eq!(r.sends.per_sec, None);
    }

    #[test]
    fn merged_shards_join_their_spans_on_one_clock() {
        // Two shards of 50 at 100/s each, interleaved, the second started 2 ms later.
        let a = Rates {
            connects: Rate::new(50, Some(0.0), Some(0.49), Some(0.492), Some(100.0)),
            ..Rates::default()
        };
        let b = Rates {
            connects: Rate::new(50, Some(0.003), Some(0.493), Some(0.495), Some(100.0)),
            ..Rates::default()
        };
        let m = Rates::merge([(0.0, &a), (0.002, &b)]);
        assert_eq!(m.connects.count, 100);
        assert_eq!(m.connects.planned_per_sec, Some(200.0));
        assert!(
            (m.connects.per_sec.unwrap() - 99.0 / 0.497).abs() < 1e-6,
            "{m:?}"
        );
    }
}
