//! Pure schedules: when sessions should connect and disconnect, and when a device's messages
//! are due, as offsets from the start of the run. No I/O and no tokio: tested with numbers.
//!
//! Every time here is an *intended* time. The generator measures response times from these,
//! so a stalled hub shows as latency of everything that was due during the stall (wrk2).

use std::time::Duration;

use rand::{Rng as _, SeedableRng as _};

/// One k6-style stage: move the number of open sessions linearly to `sessions` over `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// Length of the stage.
    pub duration: Duration,
    /// Open sessions at its end.
    pub sessions: u64,
}

/// How arrivals are spaced at a given rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Evenly: the k-th arrival at k / rate.
    Constant,
    /// A Poisson process: exponential gaps with mean 1 / rate, from a seed (reproducible).
    Poisson {
        /// RNG seed.
        seed: u64,
    },
}

/// When sessions start.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectSchedule {
    /// All at once; the handshake cap alone paces them (a connection storm).
    Burst,
    /// A fixed rate per second, whatever the hub does (open model).
    Rate {
        /// Arrivals per second.
        rate: f64,
        /// Spacing.
        arrival: Arrival,
    },
    /// Open-session targets over time (ramp up, hold, ramp down).
    Stages(Vec<Stage>),
}

impl ConnectSchedule {
    /// Intended connect offsets, in order. Finite for stages; endless otherwise (the caller
    /// takes as many as it has devices, or as fit in a churn duration).
    pub fn arrivals(&self) -> Box<dyn Iterator<Item = Duration> + Send> {
        match self {
            Self::Burst => Box::new(std::iter::repeat(Duration::ZERO)),
            Self::Rate {
                rate,
                arrival: Arrival::Constant,
            } => {
                let rate = *rate;
                // k / rate in f64 is exact enough for every k a run can reach.
                Box::new((0u64..).map(move |k| Duration::from_secs_f64(k as f64 / rate)))
            }
            Self::Rate {
                rate,
                arrival: Arrival::Poisson { seed },
            } => {
                let rate = *rate;
                let mut rng = rand::rngs::SmallRng::seed_from_u64(*seed);
                let mut t = 0.0f64;
                Box::new(std::iter::from_fn(move || {
                    let now = t;
                    // Inverse-CDF sampling of Exp(rate); 1 - u is in (0, 1].
                    let u: f64 = rng.random();
                    t += -(1.0 - u).ln() / rate;
                    Some(Duration::from_secs_f64(now))
                }))
            }
            Self::Stages(stages) => Box::new(stage_crossings(stages, true).into_iter()),
        }
    }

    /// Intended disconnect offsets (stages only): when the target falls, one per session.
    pub fn departures(&self) -> Vec<Duration> {
        match self {
            Self::Stages(stages) => stage_crossings(stages, false),
            _ => Vec::new(),
        }
    }

    /// Total length of a staged schedule.
    pub fn stages_end(&self) -> Option<Duration> {
        match self {
            Self::Stages(stages) => Some(stages.iter().map(|s| s.duration).sum()),
            _ => None,
        }
    }

    /// The fastest planned connect rate per second, if bounded (a burst is not).
    pub fn peak_connect_rate(&self) -> Option<f64> {
        match self {
            Self::Burst => None,
            Self::Rate { rate, .. } => Some(*rate),
            Self::Stages(stages) => {
                let mut level = 0u64;
                let mut peak = 0.0f64;
                for s in stages {
                    if s.sessions > level {
                        if s.duration.is_zero() {
                            return None;
                        }
                        peak = peak.max((s.sessions - level) as f64 / s.duration.as_secs_f64());
                    }
                    level = s.sessions;
                }
                Some(peak)
            }
        }
    }

    /// Largest number of sessions the schedule keeps open at once (stages), if bounded.
    pub fn peak_sessions(&self) -> Option<u64> {
        match self {
            Self::Stages(stages) => stages.iter().map(|s| s.sessions).max(),
            _ => None,
        }
    }
}

/// Times at which a piecewise-linear session target crosses whole numbers upwards (`up`) or
/// downwards. Going up by n over d, the j-th new session (j = 0..n) is due at d * j / n, so the
/// first is due at once; going down, the j-th departure (j = 1..=n) at d * j / n.
fn stage_crossings(stages: &[Stage], up: bool) -> Vec<Duration> {
    let mut out = Vec::new();
    let mut level = 0u64;
    let mut start = Duration::ZERO;
    for s in stages {
        let (from, to) = (level, s.sessions);
        let d = s.duration.as_secs_f64();
        if up && to > from {
            let n = to - from;
            out.extend((0..n).map(|j| start + Duration::from_secs_f64(d * j as f64 / n as f64)));
        } else if !up && to < from {
            let n = from - to;
            out.extend((1..=n).map(|j| start + Duration::from_secs_f64(d * j as f64 / n as f64)));
        }
        level = to;
        start += s.duration;
    }
    out
}

/// When one device's messages are due, from its first send (open model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendSchedule {
    /// Messages in all (`u32::MAX` for "until stopped").
    pub count: u32,
    /// Time between them.
    pub interval: Duration,
    /// Stop sending this long after the first send, if set.
    pub duration: Option<Duration>,
}

impl SendSchedule {
    /// Offset of message i (from 0), or `None` past the end.
    pub fn offset(self, i: u32) -> Option<Duration> {
        let at = self.interval.checked_mul(i)?;
        (i < self.count && self.duration.is_none_or(|d| at < d)).then_some(at)
    }
}

/// How late something started relative to when it was due (zero when early or on time).
pub fn lateness(due: Duration, started: Duration) -> Duration {
    started.saturating_sub(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rate_spreads_arrivals_evenly() {
        let s = ConnectSchedule::Rate {
            rate: 200.0,
            arrival: Arrival::Constant,
        };
        let a: Vec<_> = s.arrivals().take(1001).collect();
        assert_eq!(a[0], Duration::ZERO);
        assert_eq!(a[1], ms(5));
        assert_eq!(a[200], Duration::from_secs(1));
        assert_eq!(a[1000], Duration::from_secs(5));
    }

    #[test]
    fn burst_arrives_at_once() {
        assert!(ConnectSchedule::Burst
            .arrivals()
            .take(1000)
            .all(|t| t.is_zero()));
    }

    #[test]
    fn poisson_arrivals_average_the_rate_and_are_reproducible() {
        let s = ConnectSchedule::Rate {
            rate: 1000.0,
            arrival: Arrival::Poisson { seed: 7 },
        };
        let a: Vec<_> = s.arrivals().take(20_001).collect();
        let mean_gap = a[20_000].as_secs_f64() / 20_000.0;
        assert!((mean_gap - 0.001).abs() < 0.00005, "mean gap {mean_gap}");
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        let b: Vec<_> = s.arrivals().take(100).collect();
        assert_eq!(&a[..100], &b[..]);
        // Gaps vary, unlike a constant rate.
        assert_ne!(a[2] - a[1], a[3] - a[2]);
    }

    #[test]
    fn stages_ramp_up_hold_and_ramp_down() {
        let s = ConnectSchedule::Stages(vec![
            Stage {
                duration: Duration::from_secs(10),
                sessions: 100,
            },
            Stage {
                duration: Duration::from_secs(60),
                sessions: 100,
            },
            Stage {
                duration: Duration::from_secs(5),
                sessions: 0,
            },
        ]);
        let up: Vec<_> = s.arrivals().collect();
        assert_eq!(up.len(), 100);
        assert_eq!(up[0], Duration::ZERO);
        assert_eq!(up[1], ms(100));
        assert_eq!(up[99], ms(9_900));
        let down = s.departures();
        assert_eq!(down.len(), 100);
        assert_eq!(down[0], ms(70_050));
        assert_eq!(down[99], Duration::from_secs(75));
        assert_eq!(s.stages_end(), Some(Duration::from_secs(75)));
        assert_eq!(s.peak_sessions(), Some(100));
    }

    #[test]
    fn stages_that_step_up_again_add_only_the_difference() {
        let s = ConnectSchedule::Stages(vec![
            Stage {
                duration: Duration::from_secs(1),
                sessions: 10,
            },
            Stage {
                duration: Duration::from_secs(1),
                sessions: 4,
            },
            Stage {
                duration: Duration::from_secs(2),
                sessions: 8,
            },
        ]);
        let up: Vec<_> = s.arrivals().collect();
        assert_eq!(up.len(), 14);
        assert_eq!(up[10], Duration::from_secs(2));
        assert_eq!(up[13], ms(3_500));
        assert_eq!(s.departures().len(), 6);
    }

    #[test]
    fn sends_are_interval_apart_and_end_by_count_or_duration() {
        let s = SendSchedule {
            count: 3,
            interval: ms(250),
            duration: None,
        };
        assert_eq!(s.offset(0), Some(Duration::ZERO));
        assert_eq!(s.offset(2), Some(ms(500)));
        assert_eq!(s.offset(3), None);
        let d = SendSchedule {
            count: u32::MAX,
            interval: ms(250),
            duration: Some(ms(1000)),
        };
        assert_eq!(d.offset(3), Some(ms(750)));
        assert_eq!(d.offset(4), None);
    }

    #[test]
    fn a_stalled_target_shows_as_lateness_of_every_later_send() {
        // A device whose hub stalled for 2 s after message 0 sends 1..4 late: the intended-start
        // latency of each is what the stall cost it, not the short service time after it.
        let s = SendSchedule {
            count: 5,
            interval: ms(100),
            duration: None,
        };
        let resumed = ms(2000);
        let late: Vec<_> = (1..5)
            .map(|i| lateness(s.offset(i).unwrap(), resumed))
            .collect();
        assert_eq!(late[0], ms(1900));
        assert_eq!(late[3], ms(1600));
        assert_eq!(
            lateness(Duration::from_secs(1), Duration::ZERO),
            Duration::ZERO
        );
    }
}
