//! One shard of a fleet: which slice of the devices a generator runs, and its share of the
//! scenario's load. N shards of a plan together are the plan: their devices are disjoint and
//! cover the fleet (`DeviceIds` deals them round-robin), their constant-rate arrivals interleave
//! into the fleet's sequence, their Poisson processes (independent seeds) superpose into one of
//! the fleet's rate, and their stage targets sum to the fleet's.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::schedule::{Arrival, ConnectSchedule, Stage};
use super::Plan;

/// Shard `index` of `count` (0-based index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, from 0.
    pub index: u64,
    /// How many shards the fleet is split into.
    pub count: u64,
}

/// Why a shard specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a shard: {why}")]
pub struct ShardError {
    /// What was given.
    pub value: String,
    /// What is wrong with it.
    pub why: String,
}

impl Shard {
    /// The whole fleet: shard 0 of 1.
    pub const WHOLE: Self = Self { index: 0, count: 1 };

    /// Shard `index` of `count`, checked.
    pub fn new(index: u64, count: u64) -> Result<Self, ShardError> {
        let err = |why: &str| ShardError {
            value: format!("{index}/{count}"),
            why: why.to_owned(),
        };
        if count == 0 {
            return Err(err("the shard count N must be at least 1"));
        }
        if index >= count {
            return Err(err("K counts from 0 and must be less than N"));
        }
        Ok(Self { index, count })
    }

    /// Whether this is one of several shards.
    pub fn is_split(self) -> bool {
        self.count > 1
    }

    /// This shard's part of `total`: `total / N`, plus one for the first `total % N` shards, so
    /// that the shards' parts sum to `total`.
    pub fn part(self, total: u64) -> u64 {
        total / self.count + u64::from(self.index < total % self.count)
    }

    /// This shard's connect schedule and the offset added to its arrivals.
    pub fn schedule(self, fleet: &ConnectSchedule) -> (ConnectSchedule, Duration) {
        let n = self.count as f64;
        match fleet {
            ConnectSchedule::Burst => (ConnectSchedule::Burst, Duration::ZERO),
            ConnectSchedule::Rate {
                rate,
                arrival: Arrival::Constant,
            } => (
                ConnectSchedule::Rate {
                    rate: rate / n,
                    arrival: Arrival::Constant,
                },
                // The fleet's k-th arrival is at k / rate and device k + 1 belongs to shard
                // k mod N: shard K's i-th arrival is the fleet's (K + iN)-th.
                Duration::from_secs_f64(self.index as f64 / rate),
            ),
            ConnectSchedule::Rate {
                rate,
                arrival: Arrival::Poisson { seed },
            } => (
                ConnectSchedule::Rate {
                    rate: rate / n,
                    arrival: Arrival::Poisson {
                        seed: seed.wrapping_add(self.index),
                    },
                },
                Duration::ZERO,
            ),
            ConnectSchedule::Stages(stages) => (
                ConnectSchedule::Stages(
                    stages
                        .iter()
                        .map(|s| Stage {
                            duration: s.duration,
                            sessions: self.part(s.sessions),
                        })
                        .collect(),
                ),
                Duration::ZERO,
            ),
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    /// `K/N`, e.g. `2/8` (K from 0).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: &str| ShardError {
            value: s.to_owned(),
            why: why.to_owned(),
        };
        let (k, n) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| err("expected K/N, e.g. 0/4 (K from 0)"))?;
        let k = k
            .trim()
            .parse::<u64>()
            .map_err(|_| err("K is not a whole number"))?;
        let n = n
            .trim()
            .parse::<u64>()
            .map_err(|_| err("N is not a whole number"))?;
        Self::new(k, n).map_err(|e| err(&e.why))
    }
}

impl Plan {
    /// The plan one shard runs: the same scenario with this shard's share of the connect
    /// schedule. The fleet size stays the whole fleet's (device ids are chosen from it); the
    /// handshake cap stays per generator.
    pub fn for_shard(&self, shard: Shard) -> Self {
        let mut plan = self.clone();
        let (schedule, offset) = shard.schedule(&self.connect.schedule);
        plan.connect.schedule = schedule;
        plan.connect.offset += offset;
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(n: u64) -> Vec<Shard> {
        (0..n).map(|k| Shard::new(k, n).unwrap()).collect()
    }

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        assert_eq!("2/8".parse::<Shard>().unwrap(), Shard::new(2, 8).unwrap());
        let e = |s: &str| s.parse::<Shard>().unwrap_err().to_string();
        assert!(e("4/4").contains("less than N"), "{}", e("4/4"));
        assert!(e("0/0").contains("at least 1"));
        assert!(e("3").contains("expected K/N"));
        assert!(e("a/2").contains("K is not"));
    }

    #[test]
    fn parts_sum_to_the_whole_and_differ_by_at_most_one() {
        for total in [0, 1, 3, 7, 100, 101] {
            let parts: Vec<_> = all(4).iter().map(|s| s.part(total)).collect();
            assert_eq!(parts.iter().sum::<u64>(), total, "{parts:?}");
            assert!(parts.iter().max().unwrap() - parts.iter().min().unwrap() <= 1);
        }
        assert_eq!(Shard::new(0, 4).unwrap().part(7), 2);
        assert_eq!(Shard::new(3, 4).unwrap().part(7), 1);
    }

    #[test]
    fn constant_rate_shards_interleave_into_the_fleets_arrivals() {
        let fleet = ConnectSchedule::Rate {
            rate: 100.0,
            arrival: Arrival::Constant,
        };
        let whole: Vec<_> = fleet.arrivals().take(40).collect();
        let mut merged: Vec<Duration> = all(4)
            .iter()
            .flat_map(|s| {
                let (sched, offset) = s.schedule(&fleet);
                assert_eq!(
                    sched,
                    ConnectSchedule::Rate {
                        rate: 25.0,
                        arrival: Arrival::Constant
                    }
                );
                sched.arrivals().take(10).map(move |t| t + offset)
            })
            .collect();
        merged.sort();
        for (a, b) in merged.iter().zip(&whole) {
            assert!(a.abs_diff(*b) < Duration::from_micros(1), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn poisson_shards_split_the_rate_with_distinct_seeds() {
        let fleet = ConnectSchedule::Rate {
            rate: 90.0,
            arrival: Arrival::Poisson { seed: 7 },
        };
        let seeds: Vec<_> = all(3)
            .iter()
            .map(|s| match s.schedule(&fleet) {
                (
                    ConnectSchedule::Rate {
                        rate,
                        arrival: Arrival::Poisson { seed },
                    },
                    offset,
                ) => {
                    assert_eq!((rate, offset), (30.0, Duration::ZERO));
                    seed
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seeds, [7, 8, 9]);
    }

    #[test]
    fn stage_targets_split_with_remainders_to_the_first_shards() {
        let stage = |secs, sessions| Stage {
            duration: Duration::from_secs(secs),
            sessions,
        };
        let fleet = ConnectSchedule::Stages(vec![stage(10, 10), stage(5, 3), stage(5, 0)]);
        let shards: Vec<_> = all(4).iter().map(|s| s.schedule(&fleet).0).collect();
        assert_eq!(
            shards[0],
            ConnectSchedule::Stages(vec![stage(10, 3), stage(5, 1), stage(5, 0)])
        );
        assert_eq!(
            shards[3],
            ConnectSchedule::Stages(vec![stage(10, 2), stage(5, 0), stage(5, 0)])
        );
        let peaks: u64 = shards.iter().filter_map(|s| s.peak_sessions()).sum();
        assert_eq!(peaks, 10);
        let arrivals: usize = shards.iter().map(|s| s.arrivals().count()).sum();
        assert_eq!(arrivals, fleet.arrivals().count());
        assert!(shards.iter().all(|s| s.stages_end() == fleet.stages_end()));
    }

    #[test]
    fn a_burst_stays_a_burst() {
        let (s, offset) = Shard::new(1, 2).unwrap().schedule(&ConnectSchedule::Burst);
        assert_eq!((s, offset), (ConnectSchedule::Burst, Duration::ZERO));
    }
}
