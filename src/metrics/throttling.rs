//! Recognising a throttling hub from the generator's side. A capacity test that mistakes a
//! quota for capacity misleads its user, and so does one that calls a stall throttling, so the
//! verdict rests on evidence that separates the cases:
//!
//! - a rate *pinned*: acknowledgements (or connects) per second flat within a few percent for
//!   several seconds while the generator was healthy, and either clearly below what was offered
//!   meanwhile (messages sent, TLS handshakes completed) or with acknowledgement latency growing.
//!   A stall is not pinned (nothing, then a burst), nor is one slow second, nor a steady run
//!   (flat, but everything offered is answered);
//! - refusals and disconnects coded as throttling: AMQP's `com.microsoft:device-container-throttled`
//!   and an MQTT 5 broker's reason codes for it ([`MQTT5_THROTTLING`]: CONNACK, PUBACK, PUBREC
//!   or DISCONNECT) as the generator saw them, and the embedded hub's own count of the sessions
//!   it disconnected or refused for throttling (over MQTT 3.1.1 IoT Hub just closes the
//!   connection, so the client alone cannot tell such a close from any other).

use serde::{Deserialize, Serialize};

use super::{FailureKind, TimelineRow};

/// MQTT 5 reason codes that mean throttling: 0x89 server busy, 0x96 message rate too high,
/// 0x97 quota exceeded, 0x9F connection rate exceeded (MQTT 5.0, 2.4).
pub const MQTT5_THROTTLING: [u8; 4] = [0x89, 0x96, 0x97, 0x9F];

/// Whether an MQTT 5 reason code means throttling.
pub fn mqtt5_throttling(code: u8) -> bool {
    MQTT5_THROTTLING.contains(&code)
}

/// A rate the hub held at one level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PinnedRate {
    /// What was held: `acknowledgements` or `connects`.
    pub what: String,
    /// Start of the window, seconds into the run.
    pub from_secs: u64,
    /// End of the window, seconds into the run.
    pub to_secs: u64,
    /// The level held, per second (mean over the window).
    pub per_sec: f64,
    /// What was offered meanwhile, per second: messages sent, or TLS handshakes completed
    /// (less the refusals that were not throttling).
    pub offered_per_sec: f64,
    /// Mean acknowledgement latency in the window's first second, µs (0 for connects).
    pub latency_first_us: u64,
    /// Mean acknowledgement latency in the window's last second, µs (0 for connects).
    pub latency_last_us: u64,
}

/// Evidence of throttling in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throttling {
    /// Seconds into the run when it began (the earliest evidence).
    pub began_at_secs: u64,
    /// Rates the hub held at one level, acknowledgements first.
    pub pinned: Vec<PinnedRate>,
    /// Sessions or messages the generator saw refused with a throttling condition (AMQP) or
    /// reason code (MQTT 5).
    pub throttled_refusals: u64,
    /// Sessions the hub disconnected or requests it refused for throttling, by its own count
    /// (the embedded hub only; `null` for a remote hub).
    pub hub_throttled: Option<u64>,
    /// Which tests fired, in words.
    pub evidence: Vec<String>,
}

/// What besides the timeline can show throttling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// Per-row CPU (fraction of one core) above which the generator, not the hub, may be the
    /// cause of a flat rate: such seconds are not judged.
    pub cpu_ceiling: f64,
    /// Failures the generator counted as [`FailureKind::Throttled`].
    pub throttled: u64,
    /// The embedded hub's count of throttling disconnects and refusals, if known.
    pub hub_throttled: Option<u64>,
}

/// Seconds a rate must stay flat to count as pinned.
const MIN_SECS: usize = 3;
/// Flat: the window's spread within this fraction of its mean (or `FLAT_ABS`, whichever is more).
const FLAT: f64 = 0.05;
const FLAT_ABS: f64 = 2.0;
/// Rates below this per second are too coarse to call flat.
const MIN_LEVEL: f64 = 10.0;
/// Below what was offered: the window answered less than this fraction of it.
const BELOW: f64 = 0.9;
/// Latency growth: the last second's mean this many times the first's, and this much more.
const GROWTH: u64 = 2;
const GROWTH_FLOOR_US: u64 = 50_000;

/// Looks for throttling in a timeline, with the refusal counts in `e`.
pub fn detect(rows: &[TimelineRow], e: &Evidence) -> Option<Throttling> {
    let not_throttling = |r: &TimelineRow| {
        r.errors_by_kind
            .get(FailureKind::Refused.name())
            .copied()
            .unwrap_or(0)
    };
    let acks = Series {
        what: "acknowledgements",
        offered_as: "were sent",
        level: |r| r.acks,
        offered: |r| r.sends,
        latency: true,
    };
    let connects = Series {
        what: "connects",
        offered_as: "completed a TLS handshake",
        level: |r| r.connects,
        offered: |r| r.handshakes,
        latency: false,
    };
    let mut pinned = Vec::new();
    let mut evidence = Vec::new();
    for series in [acks, connects] {
        if let Some((p, words)) = series.pinned(rows, e.cpu_ceiling, &not_throttling) {
            evidence.push(words);
            pinned.push(p);
        }
    }
    if e.throttled > 0 {
        evidence.push(format!(
            "{} sessions or messages were refused with a throttling condition",
            e.throttled
        ));
    }
    let hub = e.hub_throttled.unwrap_or(0);
    if hub > 0 {
        evidence.push(format!(
            "the hub counted {hub} throttling disconnects or refusals"
        ));
    }
    if evidence.is_empty() {
        return None;
    }
    let first_error = |kinds: &[FailureKind]| {
        rows.iter()
            .find(|r| {
                kinds
                    .iter()
                    .any(|k| r.errors_by_kind.contains_key(k.name()))
            })
            .map(|r| r.t.saturating_sub(1))
    };
    let onsets = [
        pinned.iter().map(|p| p.from_secs).min(),
        (e.throttled > 0)
            .then(|| first_error(&[FailureKind::Throttled]))
            .flatten(),
        (hub > 0)
            .then(|| first_error(&[FailureKind::Throttled, FailureKind::Closed]))
            .flatten(),
    ];
    Some(Throttling {
        began_at_secs: onsets.into_iter().flatten().min().unwrap_or(0),
        pinned,
        throttled_refusals: e.throttled,
        hub_throttled: e.hub_throttled,
        evidence,
    })
}

/// µs as `12.3 ms` or `4.56 s`.
fn millis(us: u64) -> String {
    if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

/// One rate of the timeline and what was offered to it.
struct Series {
    what: &'static str,
    offered_as: &'static str,
    level: fn(&TimelineRow) -> u64,
    offered: fn(&TimelineRow) -> u64,
    latency: bool,
}

impl Series {
    /// The first window of at least `MIN_SECS` seconds in which the rate was flat (and the
    /// generator healthy) and either below what was offered or answered ever later.
    fn pinned(
        &self,
        rows: &[TimelineRow],
        cpu_ceiling: f64,
        not_throttling: &dyn Fn(&TimelineRow) -> u64,
    ) -> Option<(PinnedRate, String)> {
        (0..rows.len()).find_map(|i| {
            let w = &rows[i..i + self.flat_len(&rows[i..], cpu_ceiling)];
            if w.len() < MIN_SECS {
                return None;
            }
            let level: u64 = w.iter().map(self.level).sum();
            let offered: u64 = w
                .iter()
                .map(|r| (self.offered)(r).saturating_sub(not_throttling(r)))
                .sum();
            let secs = w.len() as f64;
            let (first, last) = (&w[0], &w[w.len() - 1]);
            let (l0, l1) = if self.latency {
                (first.ack_mean_us, last.ack_mean_us)
            } else {
                (0, 0)
            };
            let below = (level as f64) < BELOW * offered as f64;
            let growing = self.latency && l1 >= GROWTH * l0.max(1) && l1 >= l0 + GROWTH_FLOOR_US;
            if !below && !growing {
                return None;
            }
            let p = PinnedRate {
                what: self.what.to_owned(),
                from_secs: first.t.saturating_sub(1),
                to_secs: last.t,
                per_sec: level as f64 / secs,
                offered_per_sec: offered as f64 / secs,
                latency_first_us: l0,
                latency_last_us: l1,
            };
            let mut words = format!(
                "{} held at {:.1}/s for {} s (seconds {}-{})",
                p.what,
                p.per_sec,
                w.len(),
                p.from_secs,
                p.to_secs
            );
            if below {
                words += &format!(" while {:.1}/s {}", p.offered_per_sec, self.offered_as);
            }
            if growing {
                words += &format!(
                    "{} latency grew from {} to {}",
                    if below { " and" } else { " while" },
                    millis(l0),
                    millis(l1)
                );
            }
            Some((p, words))
        })
    }

    /// How many rows from the start of `rows` keep the rate flat.
    fn flat_len(&self, rows: &[TimelineRow], cpu_ceiling: f64) -> usize {
        let (mut lo, mut hi, mut sum) = (u64::MAX, 0u64, 0u64);
        for (n, r) in rows.iter().enumerate() {
            let v = (self.level)(r);
            let (lo2, hi2, sum2) = (lo.min(v), hi.max(v), sum + v);
            let mean = sum2 as f64 / (n + 1) as f64;
            if r.cpu >= cpu_ceiling
                || (v as f64) < MIN_LEVEL
                || (hi2 - lo2) as f64 > (FLAT * mean).max(FLAT_ABS)
            {
                return n;
            }
            (lo, hi, sum) = (lo2, hi2, sum2);
        }
        rows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEALTHY: Evidence = Evidence {
        cpu_ceiling: 0.9,
        throttled: 0,
        hub_throttled: Some(0),
    };

    fn row(t: u64, sends: u64, acks: u64, ack_mean_us: u64) -> TimelineRow {
        TimelineRow {
            t,
            sends,
            acks,
            ack_mean_us,
            cpu: 0.05,
            ..TimelineRow::default()
        }
    }

    #[test]
    fn a_rate_pinned_from_the_first_second_is_throttling() {
        // F1: 300 messages/s offered, 100/s acknowledged from the start, latency climbing.
        let rows: Vec<_> = (1..=8).map(|t| row(t, 300, 100, 200_000 * t)).collect();
        let th = detect(&rows, &HEALTHY).unwrap();
        assert_eq!(th.began_at_secs, 0);
        let p = &th.pinned[0];
        assert_eq!((p.what.as_str(), p.per_sec), ("acknowledgements", 100.0));
        assert_eq!(p.offered_per_sec, 300.0);
        assert!(th.evidence[0].contains("held at 100.0/s for 8 s"), "{th:?}");
        assert!(th.evidence[0].contains("300.0/s were sent"), "{th:?}");
    }

    #[test]
    fn a_rate_pinned_later_gives_its_onset() {
        let rows: Vec<_> = (1..=10)
            .map(|t| {
                if t <= 4 {
                    row(t, 20 * t, 20 * t, 900)
                } else {
                    row(t, 20 * t, 100, 900 + 150_000 * (t - 4))
                }
            })
            .collect();
        let th = detect(&rows, &HEALTHY).unwrap();
        assert_eq!(th.began_at_secs, 4, "{th:?}");
        assert_eq!(th.pinned[0].per_sec, 100.0);
    }

    #[test]
    fn a_stall_is_not_throttling() {
        // 200/s, then the hub frozen for two seconds, then the backlog in one burst.
        let acks = [200, 200, 60, 0, 0, 540, 200, 200, 200, 200];
        let lat = [800, 800, 900, 0, 0, 1_400_000, 900, 800, 800, 800];
        let rows: Vec<_> = (0..10)
            .map(|i| row(i as u64 + 1, 200, acks[i], lat[i]))
            .collect();
        assert_eq!(detect(&rows, &HEALTHY), None);
    }

    #[test]
    fn a_steady_run_and_one_slow_second_are_not_throttling() {
        let steady: Vec<_> = (1..=10).map(|t| row(t, 200, 199 + t % 3, 800)).collect();
        assert_eq!(detect(&steady, &HEALTHY), None);
        let mut slow = steady;
        slow[5] = row(6, 200, 120, 400_000);
        slow[6] = row(7, 200, 280, 9_000);
        assert_eq!(detect(&slow, &HEALTHY), None);
    }

    #[test]
    fn a_busy_generator_is_not_judged() {
        let mut rows: Vec<_> = (1..=8).map(|t| row(t, 300, 100, 200_000 * t)).collect();
        for r in &mut rows {
            r.cpu = 0.99;
        }
        assert_eq!(detect(&rows, &HEALTHY), None);
    }

    #[test]
    fn connects_held_below_the_handshakes_are_throttling() {
        let rows: Vec<_> = (1..=5)
            .map(|t| TimelineRow {
                t,
                handshakes: 400,
                connects: 100,
                ..TimelineRow::default()
            })
            .collect();
        let th = detect(&rows, &HEALTHY).unwrap();
        assert_eq!(th.pinned[0].what, "connects");
        // Refusals that are not throttling (unknown devices) are not offered load.
        let refused: Vec<_> = rows
            .iter()
            .cloned()
            .map(|mut r| {
                r.errors_by_kind.insert("refused".into(), 300);
                r
            })
            .collect();
        assert_eq!(detect(&refused, &HEALTHY), None);
    }

    #[test]
    fn throttle_coded_refusals_are_evidence_on_their_own() {
        let mut rows: Vec<_> = (1..=5).map(|t| row(t, 100, 100, 800)).collect();
        rows[2].errors_by_kind.insert("closed".into(), 7);
        let e = Evidence {
            hub_throttled: Some(7),
            ..HEALTHY
        };
        let th = detect(&rows, &e).unwrap();
        assert_eq!(th.began_at_secs, 2);
        assert!(th.pinned.is_empty());
        assert_eq!(
            th.evidence,
            ["the hub counted 7 throttling disconnects or refusals"]
        );
        let amqp = Evidence {
            throttled: 3,
            hub_throttled: None,
            ..HEALTHY
        };
        assert_eq!(detect(&rows, &amqp).unwrap().throttled_refusals, 3);
    }
}
