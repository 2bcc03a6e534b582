//! `fleetbench compare BASE NEW`: per phase the percentiles side by side with the change in
//! percent, then throughput and error rate. [`compare`] judges, [`write_comparison`] prints.
//!
//! A value regressed when it moved the bad way by more than the tolerance: latencies and the
//! error rate up, throughput down. Maxima are shown but not judged (one sample decides them).
//! An error rate that was zero regresses on any error.

use std::io::{self, Write};

use super::format::{change, observed};
use crate::metrics::{Metric, RunStatus, Summary, Unit};

/// Percentiles compared per phase, with whether they are judged.
const STATS: [(&str, bool); 5] = [
    ("p50", true),
    ("p90", true),
    ("p99", true),
    ("p99.9", true),
    ("max", false),
];

/// One value in both runs.
#[derive(Debug, Clone, PartialEq)]
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
    /// Whether NEW is worse than BASE by more than the tolerance.
    pub regressed: bool,
}

/// BASE against NEW.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Allowed relative worsening, e.g. 0.1 for 10%.
    pub tolerance: f64,
    /// Every value compared, phases first.
    pub deltas: Vec<Delta>,
    /// Notes for the reader (partial runs, differing scenarios).
    pub notes: Vec<String>,
}

impl Comparison {
    /// The values that regressed.
    pub fn regressions(&self) -> impl Iterator<Item = &Delta> {
        self.deltas.iter().filter(|d| d.regressed)
    }
}

#[derive(Clone, Copy)]
enum Worse {
    Higher,
    Lower,
    Unjudged,
}

/// Compares NEW with BASE under `tolerance` (a fraction).
pub fn compare(base: &Summary, new: &Summary, tolerance: f64) -> Comparison {
    let mut deltas = Vec::new();
    let mut names: Vec<&str> = base.phases.iter().map(|p| p.name.as_str()).collect();
    for p in &new.phases {
        if !names.contains(&p.name.as_str()) {
            names.push(&p.name);
        }
    }
    for name in names {
        for (stat, judged) in STATS {
            let value = |s: &Summary| {
                Metric::parse(&format!("{name}.{stat}"))
                    .ok()
                    .and_then(|m| m.observe(s))
            };
            let worse = if judged {
                Worse::Higher
            } else {
                Worse::Unjudged
            };
            deltas.push(delta(
                name,
                stat,
                Unit::Microseconds,
                value(base),
                value(new),
                worse,
                tolerance,
            ));
        }
    }
    for (label, metric, unit, worse) in [
        (
            "connects",
            Metric::ConnectRate,
            Unit::PerSecond,
            Worse::Lower,
        ),
        ("acks", Metric::AckRate, Unit::PerSecond, Worse::Lower),
        ("error rate", Metric::ErrorRate, Unit::Ratio, Worse::Higher),
    ] {
        let group = if unit == Unit::Ratio {
            "errors"
        } else {
            "throughput"
        };
        deltas.push(delta(
            group,
            label,
            unit,
            metric.observe(base),
            metric.observe(new),
            worse,
            tolerance,
        ));
    }
    let mut notes = Vec::new();
    for (which, s) in [("BASE", base), ("NEW", new)] {
        if let RunStatus::Partial { reason } = &s.status {
            notes.push(format!("{which} is a partial run ({reason})"));
        }
    }
    if base.scenario != new.scenario {
        notes.push("the runs' resolved scenarios differ".to_owned());
    }
    Comparison {
        tolerance,
        deltas,
        notes,
    }
}

fn delta(
    group: &str,
    label: &str,
    unit: Unit,
    base: Option<f64>,
    new: Option<f64>,
    worse: Worse,
    tolerance: f64,
) -> Delta {
    let regressed = match (base, new, worse) {
        (Some(b), Some(n), Worse::Higher) => n > b * (1.0 + tolerance) && n > b,
        (Some(b), Some(n), Worse::Lower) => n < b * (1.0 - tolerance),
        _ => false,
    };
    Delta {
        group: group.to_owned(),
        label: label.to_owned(),
        unit,
        base,
        new,
        regressed,
    }
}

/// Prints a comparison: a table within 100 columns, then the verdict.
pub fn write_comparison(
    w: &mut impl Write,
    c: &Comparison,
    base: &str,
    new: &str,
) -> io::Result<()> {
    writeln!(w, "BASE  {base}")?;
    writeln!(w, "NEW   {new}")?;
    for n in &c.notes {
        writeln!(w, "note: {n}")?;
    }
    writeln!(w)?;
    writeln!(
        w,
        "{:<20}{:<12}{:>14}{:>14}{:>10}",
        "", "", "base", "new", "change"
    )?;
    let mut last = "";
    for d in &c.deltas {
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| observed(d.unit, v));
        let ch = match (d.base, d.new) {
            (Some(b), Some(n)) => change(b, n),
            _ => "-".to_owned(),
        };
        let group = if d.group == last {
            ""
        } else {
            d.group.as_str()
        };
        last = &d.group;
        writeln!(
            w,
            "{:<20}{:<12}{:>14}{:>14}{:>10}{}",
            group,
            d.label,
            show(d.base),
            show(d.new),
            ch,
            if d.regressed { "  REGRESSED" } else { "" }
        )?;
    }
    writeln!(w)?;
    let worse: Vec<_> = c
        .regressions()
        .map(|d| format!("{} {}", d.group, d.label))
        .collect();
    let tol = c.tolerance * 100.0;
    if worse.is_empty() {
        writeln!(w, "Verdict     NEW is within {tol:.1}% of BASE")
    } else {
        writeln!(
            w,
            "Verdict     NEW REGRESSED beyond {tol:.1}% in {} value(s): {}",
            worse.len(),
            worse.join(", ")
        )
    }
}
