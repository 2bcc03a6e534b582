//! Thresholds, in the spirit of k6: pass/fail conditions over a [`Summary`], such as
//! `tls_handshake.p99 < 50ms` or `errors.rate < 0.001`.
//!
//! A [`Threshold`] is parsed once (the scenario's `[thresholds]` table) and evaluated on any
//! summary, the end of one run or several runs merged, by [`evaluate`]. Evaluation reads only
//! the summary, so merged results are judged exactly like single ones.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::histogram::decode_histogram;
use super::{Phase, Summary};

/// A statistic of a latency distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// Largest sample.
    Max,
    /// Mean.
    Mean,
    /// Smallest sample.
    Min,
    /// A percentile, 0 < p <= 100.
    Percentile(f64),
}

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// Acknowledged messages per second over the run (`ack.rate`).
    AckRate,
    /// Connected sessions per second over the run (`connect.rate`).
    ConnectRate,
    /// Failures of every kind (`errors.count`).
    ErrorCount,
    /// Failed sessions and unacknowledged messages over sessions attempted and messages sent
    /// (`errors.rate`, a fraction).
    ErrorRate,
    /// A latency statistic of one phase (`tls_handshake.p99`), in microseconds.
    Latency(Phase, Stat),
    /// Sessions that reached the protocol's connected state (`sessions.connected`).
    SessionsConnected,
}

/// How the observed value must compare with the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `>`
    Above,
    /// `>=`
    AtLeast,
    /// `<=`
    AtMost,
    /// `<`
    Below,
}

impl Op {
    fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Self::Above => observed > limit,
            Self::AtLeast => observed >= limit,
            Self::AtMost => observed <= limit,
            Self::Below => observed < limit,
        }
    }
}

/// The unit of a threshold's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A plain count.
    Count,
    /// Microseconds.
    Microseconds,
    /// Per second.
    PerSecond,
    /// A fraction, 0 to 1.
    Ratio,
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The metric as written, e.g. `publish_ack.p99.9`.
    pub name: String,
    /// The condition as written, e.g. `< 200ms`.
    pub condition: String,
    /// What is measured.
    pub metric: Metric,
    /// The comparison.
    pub op: Op,
    /// The limit, in the metric's unit (µs for latencies).
    pub limit: f64,
    /// A check every run gets unless the scenario states its own (see [`DEFAULT_CHECKS`]).
    pub default: bool,
}

/// Why a threshold could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ThresholdError(String);

/// The verdict of one threshold on one summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// The metric as written.
    pub metric: String,
    /// The condition as written.
    pub condition: String,
    /// The comparison.
    pub op: Op,
    /// The limit, in `unit`.
    pub limit: f64,
    /// The observed value, in `unit`; absent when the run has no data for it (which fails).
    pub observed: Option<f64>,
    /// The unit of `limit` and `observed`.
    pub unit: Unit,
    /// Whether the condition held.
    pub passed: bool,
    /// Whether this is one of the default checks rather than the scenario's own.
    #[serde(default)]
    pub default: bool,
}

impl Metric {
    /// Parses `phase.stat`, `connect.rate`, `ack.rate`, `errors.rate` or `errors.count`.
    pub fn parse(name: &str) -> Result<Self, ThresholdError> {
        match name {
            "ack.rate" => return Ok(Self::AckRate),
            "connect.rate" => return Ok(Self::ConnectRate),
            "errors.count" => return Ok(Self::ErrorCount),
            "errors.rate" => return Ok(Self::ErrorRate),
            "sessions.connected" => return Ok(Self::SessionsConnected),
            _ => {}
        }
        let err = |why: String| ThresholdError(format!("{name:?} is not a metric: {why}"));
        let Some((phase, stat)) = name.split_once('.') else {
            return Err(err(
                "expected phase.stat (e.g. tls_handshake.p99), connect.rate, \
                            ack.rate, errors.rate, errors.count or sessions.connected"
                    .into(),
            ));
        };
        let phase = Phase::from_name(phase).ok_or_else(|| {
            let names: Vec<_> = Phase::ALL.iter().map(|p| p.name()).collect();
            err(format!(
                "unknown phase {phase:?}; phases are {}",
                names.join(", ")
            ))
        })?;
        let stat = match stat {
            "min" => Stat::Min,
            "max" => Stat::Max,
            "mean" => Stat::Mean,
            p => match p.strip_prefix('p').map(str::parse::<f64>) {
                Some(Ok(q)) if q > 0.0 && q <= 100.0 => Stat::Percentile(q),
                _ => {
                    return Err(err(format!(
                        "unknown statistic {p:?}; use min, max, mean or a percentile such as \
                         p99 or p99.9"
                    )))
                }
            },
        };
        Ok(Self::Latency(phase, stat))
    }

    /// The unit the metric is measured in.
    pub const fn unit(self) -> Unit {
        match self {
            Self::AckRate | Self::ConnectRate => Unit::PerSecond,
            Self::ErrorCount | Self::SessionsConnected => Unit::Count,
            Self::ErrorRate => Unit::Ratio,
            Self::Latency(..) => Unit::Microseconds,
        }
    }

    /// The metric's value in `s`, or `None` when `s` has no data for it.
    pub fn observe(self, s: &Summary) -> Option<f64> {
        let c = &s.counts;
        match self {
            Self::AckRate => s.rates.acks.per_sec,
            Self::ConnectRate => s.rates.connects.per_sec,
            Self::SessionsConnected => Some(c.sessions_connected as f64),
            Self::ErrorCount => Some(s.failures.iter().map(|f| f.count).sum::<u64>() as f64),
            Self::ErrorRate => {
                let attempts = c.sessions_attempted + c.messages_sent;
                let failed = c.sessions_failed + c.messages_unacked;
                (attempts > 0).then(|| failed as f64 / attempts as f64)
            }
            Self::Latency(phase, stat) => {
                let p = s.phase(phase.name()).filter(|p| p.count > 0)?;
                match stat {
                    Stat::Min => Some(p.min_us as f64),
                    Stat::Max => Some(p.max_us as f64),
                    Stat::Mean => Some(p.mean_us),
                    Stat::Percentile(q) => {
                        let h = decode_histogram(&p.histogram).ok()?;
                        Some(h.value_at_quantile(q / 100.0) as f64)
                    }
                }
            }
        }
    }
}

impl Threshold {
    /// Parses a metric name and a condition such as `< 50ms`, `>= 500`, `< 0.1%`.
    pub fn parse(name: &str, condition: &str) -> Result<Self, ThresholdError> {
        let metric = Metric::parse(name)?;
        let c = condition.trim();
        let (op, value) = [
            ("<=", Op::AtMost),
            (">=", Op::AtLeast),
            ("<", Op::Below),
            (">", Op::Above),
        ]
        .into_iter()
        .find_map(|(sym, op)| c.strip_prefix(sym).map(|rest| (op, rest.trim())))
        .ok_or_else(|| {
            ThresholdError(format!(
                "{condition:?} is not a condition: start with <, <=, > or >=, e.g. \"< 50ms\""
            ))
        })?;
        let limit = parse_limit(metric.unit(), value).map_err(|why| {
            ThresholdError(format!(
                "{condition:?} is not a valid limit for {name}: {why}"
            ))
        })?;
        Ok(Self {
            name: name.to_owned(),
            condition: c.to_owned(),
            metric,
            op,
            limit,
            default: false,
        })
    }

    /// Judges this threshold on `s`. No data fails: a threshold cannot pass vacuously.
    pub fn evaluate(&self, s: &Summary) -> ThresholdResult {
        let observed = self.metric.observe(s);
        ThresholdResult {
            metric: self.name.clone(),
            condition: self.condition.clone(),
            op: self.op,
            limit: self.limit,
            observed,
            unit: self.metric.unit(),
            passed: observed.is_some_and(|v| self.op.holds(v, self.limit)),
            default: self.default,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.condition)
    }
}

/// The checks every run gets, so that a run in which nothing connected, or something failed,
/// never passes for want of thresholds. A scenario overrides one by stating a threshold on the
/// same metric (for the errors check: `errors.rate` or `errors.count`).
pub const DEFAULT_CHECKS: [(&str, &str); 2] =
    [("sessions.connected", ">= 1"), ("errors.rate", "<= 0")];

/// The scenario's thresholds followed by the default checks it does not override.
pub fn with_defaults(thresholds: &[Threshold]) -> Vec<Threshold> {
    let states = |m: &str| {
        thresholds.iter().any(|t| match m {
            "errors.rate" => matches!(t.metric, Metric::ErrorRate | Metric::ErrorCount),
            _ => t.name == m,
        })
    };
    let defaults = DEFAULT_CHECKS
        .iter()
        .filter(|(m, _)| !states(m))
        .filter_map(|(m, c)| Threshold::parse(m, c).ok())
        .map(|t| Threshold { default: true, ..t });
    thresholds.iter().cloned().chain(defaults).collect()
}

/// Judges every threshold on `s`, in order, then the default checks not overridden.
pub fn evaluate(thresholds: &[Threshold], s: &Summary) -> Vec<ThresholdResult> {
    with_defaults(thresholds)
        .iter()
        .map(|t| t.evaluate(s))
        .collect()
}

fn parse_limit(unit: Unit, value: &str) -> Result<f64, String> {
    let number = |v: &str| {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| format!("{v:?} is not a number of at least 0"))
    };
    match unit {
        Unit::Microseconds => {
            if value.parse::<f64>().is_ok() {
                return Err(format!("{value} needs a unit, e.g. {value}ms"));
            }
            humantime::parse_duration(value)
                .map(|d| d.as_secs_f64() * 1e6)
                .map_err(|e| format!("{value:?} is not a duration such as 50ms or 2s ({e})"))
        }
        Unit::PerSecond => number(value.strip_suffix("/s").unwrap_or(value)),
        Unit::Ratio => match value.strip_suffix('%') {
            Some(pct) => number(pct).map(|n| n / 100.0),
            None => number(value),
        },
        Unit::Count => number(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_with_units() {
        let t = Threshold::parse("tls_handshake.p99", "< 50ms").unwrap();
        assert_eq!(
            t.metric,
            Metric::Latency(Phase::TlsHandshake, Stat::Percentile(99.0))
        );
        assert_eq!((t.op, t.limit), (Op::Below, 50_000.0));
        let t = Threshold::parse("publish_ack.p99.9", "<=2s").unwrap();
        assert_eq!(
            t.metric,
            Metric::Latency(Phase::PublishAck, Stat::Percentile(99.9))
        );
        assert_eq!((t.op, t.limit), (Op::AtMost, 2e6));
        let t = Threshold::parse("errors.rate", "< 0.1%").unwrap();
        assert!((t.limit - 0.001).abs() < 1e-12);
        let t = Threshold::parse("connect.rate", "> 500/s").unwrap();
        assert_eq!((t.op, t.limit), (Op::Above, 500.0));
    }

    #[test]
    fn bad_thresholds_say_what_is_wrong() {
        let e = |n, c| Threshold::parse(n, c).unwrap_err().to_string();
        assert!(e("tls.p99", "< 1ms").contains("unknown phase \"tls\""));
        assert!(e("tls_handshake.p0", "< 1ms").contains("unknown statistic"));
        assert!(e("tls_handshake.p99", "50ms").contains("start with <"));
        assert!(e("tls_handshake.p99", "< 50").contains("needs a unit"));
        assert!(e("connect.rate", "> fast").contains("not a number"));
        assert!(e("latency", "< 1ms").contains("expected phase.stat"));
    }

    #[test]
    fn default_checks_apply_unless_the_scenario_states_its_own() {
        let names = |ts: &[Threshold]| {
            with_defaults(ts)
                .iter()
                .map(|t| (t.name.clone(), t.default))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&[]),
            [
                ("sessions.connected".to_owned(), true),
                ("errors.rate".to_owned(), true)
            ]
        );
        let own = [Threshold::parse("errors.count", "< 5").unwrap()];
        assert_eq!(
            names(&own),
            [
                ("errors.count".to_owned(), false),
                ("sessions.connected".to_owned(), true)
            ]
        );
        let both = [
            Threshold::parse("sessions.connected", ">= 0").unwrap(),
            Threshold::parse("errors.rate", "< 5%").unwrap(),
        ];
        assert!(with_defaults(&both).iter().all(|t| !t.default));
    }

    #[test]
    fn ops_compare_as_written() {
        assert!(Op::Below.holds(1.0, 2.0) && !Op::Below.holds(2.0, 2.0));
        assert!(Op::AtMost.holds(2.0, 2.0) && !Op::AtMost.holds(2.1, 2.0));
        assert!(Op::Above.holds(3.0, 2.0) && !Op::Above.holds(2.0, 2.0));
        assert!(Op::AtLeast.holds(2.0, 2.0) && !Op::AtLeast.holds(1.9, 2.0));
    }
}
