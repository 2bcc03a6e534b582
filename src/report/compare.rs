//! `fleetbench compare BASE NEW`: per phase the percentiles side by side with the change in
//! percent, then throughput and error rate, and which settings differ. [`compare`] judges,
//! [`write_comparison`] prints text and [`write_comparison_json`] JSON.
//!
//! A latency regressed when it rose by more than the tolerance *and* by more than the absolute
//! noise floor (two runs of one build on one machine move a sub-millisecond p50 by tens of
//! microseconds). Throughput regressed when it fell by more than the tolerance; an error rate
//! that was zero regresses on any error. Not judged, but shown: maxima (one sample decides
//! them), a percentile that too few samples support (pQ needs 10 / (1 - Q) samples in both runs,
//! so that ten samples lie above it: p90 100, p99 1,000, p99.9 10,000), and the generator's own `*_start_lag` phases, which measure the load
//! generator rather than the hub.

use serde::Serialize;
use serde_json::Value;

use super::format::{micros, relative_change};
use crate::metrics::{
    decode_histogram, LatencyHistogram, Metric, PhaseSummary, RunStatus, Summary, Unit,
};

/// The absolute noise floor of latency changes unless the command line says otherwise, µs.
pub const DEFAULT_FLOOR_US: u64 = 100;

/// A percentile's value in a phase summary, µs.
type StatOf = fn(&PhaseSummary) -> u64;

/// Percentiles compared per phase: label, quantile (`None` for the maximum), value.
const STATS: [(&str, Option<f64>, StatOf); 5] = [
    ("p50", Some(0.50), |p| p.p50_us),
    ("p90", Some(0.90), |p| p.p90_us),
    ("p99", Some(0.99), |p| p.p99_us),
    ("p99.9", Some(0.999), |p| p.p999_us),
    ("max", None, |p| p.max_us),
];

/// Phases measuring the generator, not the hub: shown, never judged.
const GENERATOR_SUFFIX: &str = "_start_lag";

/// How far NEW may be worse than BASE before it counts as a regression.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tolerance {
    /// Allowed relative worsening, a fraction (0.1 = 10%).
    pub relative: f64,
    /// Latency changes at or below this many microseconds are noise whatever their relative
    /// size.
    pub floor_us: u64,
}

/// One value in both runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delta {
    /// Section: a phase name, `throughput` or `errors`.
    pub group: String,
    /// What is compared, e.g. `p99` or `connects`.
    pub label: String,
    /// Unit of both values.
    pub unit: Unit,
    /// The value in BASE, if it has one.
    pub base: Option<f64>,
    /// The value in NEW, if it has one.
    pub new: Option<f64>,
    /// `(new - base) / base`, when both exist and BASE is not zero.
    pub change: Option<f64>,
    /// Why the value is shown but not judged (`max`, generator-side, too few samples).
    pub not_judged: Option<String>,
    /// Whether NEW is worse than BASE beyond the tolerance and beyond sampling noise.
    pub regressed: bool,
    /// Whether NEW moved beyond the tolerance but not beyond what the runs' sample counts
    /// explain (NEW's lower bound of the percentile is not above BASE's upper bound).
    pub within_noise: bool,
}

/// A setting of the resolved scenario that differs between the runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettingDifference {
    /// Dotted key, e.g. `fleet.devices`.
    pub key: String,
    /// The value in BASE (`null` when absent).
    pub base: Value,
    /// The value in NEW (`null` when absent).
    pub new: Value,
}

/// BASE against NEW.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// What counted as worse.
    pub tolerance: Tolerance,
    /// Every value compared, phases first.
    pub deltas: Vec<Delta>,
    /// Settings of the resolved scenarios (`summary.json` `scenario`) that differ.
    pub settings_differ: Vec<SettingDifference>,
    /// Notes for the reader (partial runs).
    pub notes: Vec<String>,
}

impl Comparison {
    /// The values that regressed.
    pub fn regressions(&self) -> impl Iterator<Item = &Delta> {
        self.deltas.iter().filter(|d| d.regressed)
    }
}

/// Compares NEW with BASE under `tolerance`.
pub fn compare(base: &Summary, new: &Summary, tolerance: Tolerance) -> Comparison {
    let mut names: Vec<&str> = base.phases.iter().map(|p| p.name.as_str()).collect();
    for p in &new.phases {
        if !names.contains(&p.name.as_str()) {
            names.push(&p.name);
        }
    }
    let mut deltas: Vec<Delta> = names
        .into_iter()
        .flat_map(|name| phase_deltas(name, base, new, tolerance))
        .collect();
    for (label, metric, unit) in [
        ("connects", Metric::ConnectRate, Unit::PerSecond),
        ("acks", Metric::AckRate, Unit::PerSecond),
        ("error rate", Metric::ErrorRate, Unit::Ratio),
    ] {
        let (b, n) = (metric.observe(base), metric.observe(new));
        let regressed = match (b, n) {
            (Some(b), Some(n)) if unit == Unit::Ratio => n > b * (1.0 + tolerance.relative),
            (Some(b), Some(n)) => n < b * (1.0 - tolerance.relative),
            _ => false,
        };
        let group = if unit == Unit::Ratio {
            "errors"
        } else {
            "throughput"
        };
        deltas.push(Delta {
            regressed,
            ..Delta::shown(group, label, unit, b, n)
        });
    }
    let mut notes = Vec::new();
    for (which, s) in [("BASE", base), ("NEW", new)] {
        if let RunStatus::Partial { reason } = &s.status {
            notes.push(format!("{which} is a partial run ({reason})"));
        }
    }
    notes.extend(generator_notes(&deltas, tolerance));
    let mut settings_differ = Vec::new();
    differences("", &base.scenario, &new.scenario, &mut settings_differ);
    Comparison {
        tolerance,
        deltas,
        settings_differ,
        notes,
    }
}

impl Delta {
    fn shown(group: &str, label: &str, unit: Unit, base: Option<f64>, new: Option<f64>) -> Self {
        Self {
            group: group.to_owned(),
            label: label.to_owned(),
            unit,
            base,
            new,
            change: base.zip(new).and_then(|(b, n)| relative_change(b, n)),
            not_judged: None,
            regressed: false,
            within_noise: false,
        }
    }
}

/// The percentiles of one phase, judged where the samples support them.
fn phase_deltas(name: &str, base: &Summary, new: &Summary, tol: Tolerance) -> Vec<Delta> {
    let (b, n) = (
        base.phase(name).filter(|p| p.count > 0),
        new.phase(name).filter(|p| p.count > 0),
    );
    let histogram = |p: Option<&PhaseSummary>| p.and_then(|p| decode_histogram(&p.histogram).ok());
    let (hb, hn) = (histogram(b), histogram(n));
    let samples = b.map_or(0, |p| p.count).min(n.map_or(0, |p| p.count));
    STATS
        .iter()
        .map(|(label, quantile, value)| {
            let (bv, nv) = (b.map(|p| value(p) as f64), n.map(|p| value(p) as f64));
            let mut d = Delta::shown(name, label, Unit::Microseconds, bv, nv);
            d.not_judged = if name.ends_with(GENERATOR_SUFFIX) {
                Some("generator-side".to_owned())
            } else {
                match quantile {
                    None => Some("max".to_owned()),
                    Some(_) if bv.is_none() || nv.is_none() => Some("not in both".to_owned()),
                    Some(q) if samples < samples_needed(*q) => Some(format!("{samples} samples")),
                    Some(_) => None,
                }
            };
            let beyond_tolerance = match (d.not_judged.is_none(), bv, nv) {
                (true, Some(bv), Some(nv)) => {
                    nv - bv > (bv * tol.relative).max(tol.floor_us as f64)
                }
                _ => false,
            };
            let beyond_noise = match (quantile, &hb, &hn) {
                (Some(q), Some(hb), Some(hn)) => {
                    let (base_high, _) = bounds(hb, *q);
                    let (_, new_low) = bounds(hn, *q);
                    new_low > base_high
                }
                // Histograms that do not decode: the percentiles alone decide.
                _ => true,
            };
            d.regressed = beyond_tolerance && beyond_noise;
            d.within_noise = beyond_tolerance && !beyond_noise;
            d
        })
        .collect()
}

/// How many standard errors wide the bounds of a percentile are: 3 keeps the chance that any
/// one of a comparison's some twenty judged values of two runs of one build falls outside at a
/// few in a thousand.
const STANDARD_ERRORS: f64 = 3.0;

/// The upper and lower bound of the `q` quantile of `h` that its sample count supports: the
/// values at ranks `q ± 3 sqrt(q (1 - q) / n)` (the order-statistic bounds of a quantile, which
/// need no assumption about the distribution).
fn bounds(h: &LatencyHistogram, q: f64) -> (f64, f64) {
    let n = h.len().max(1) as f64;
    let half = STANDARD_ERRORS * (q * (1.0 - q) / n).sqrt();
    (
        h.value_at_quantile((q + half).min(1.0)) as f64,
        h.value_at_quantile((q - half).max(0.0)) as f64,
    )
}

/// A note for each generator-side phase whose median rose beyond the tolerance: the generator
/// itself fell further behind in NEW, so the machine, not only the hub, changed.
fn generator_notes(deltas: &[Delta], tol: Tolerance) -> Vec<String> {
    deltas
        .iter()
        .filter(|d| d.group.ends_with(GENERATOR_SUFFIX) && d.label == "p50")
        .filter_map(|d| {
            let (b, n) = (d.base?, d.new?);
            (n - b > (b * tol.relative).max(tol.floor_us as f64)).then(|| {
                format!(
                    "NEW's generator fell further behind its schedule ({} p50 {} -> {}): the \
                     machine was busier, which slows every phase",
                    d.group,
                    micros(b.round() as u64),
                    micros(n.round() as u64)
                )
            })
        })
        .collect()
}

/// Samples a percentile needs in each run to be judged: 10 / (1 - q), so that ten samples lie
/// above it (p90: 100, p99: 1,000, p99.9: 10,000). With fewer, the percentile is one or two
/// samples of the tail, and a busy moment on a shared machine moves it several-fold.
fn samples_needed(q: f64) -> u64 {
    (10.0 / (1.0 - q)).round() as u64
}

/// Appends the dotted keys whose values differ between `base` and `new` (objects recurse,
/// anything else compares whole).
fn differences(prefix: &str, base: &Value, new: &Value, out: &mut Vec<SettingDifference>) {
    if let (Value::Object(b), Value::Object(n)) = (base, new) {
        let mut keys: Vec<&String> = b.keys().chain(n.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            let (bv, nv) = (
                b.get(k).unwrap_or(&Value::Null),
                n.get(k).unwrap_or(&Value::Null),
            );
            differences(&key, bv, nv, out);
        }
    } else if base != new {
        out.push(SettingDifference {
            key: prefix.to_owned(),
            base: base.clone(),
            new: new.clone(),
        });
    }
}

mod print;

pub use print::{write_comparison, write_comparison_json};

#[cfg(test)]
mod tests;
