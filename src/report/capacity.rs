//! The report of a capacity search (`[capacity]`): the knee (the highest offered rate whose
//! trial held the SLO), the curve (offered vs achieved rate vs p99, per trial, and the SLO
//! condition that failed), what limited the search, and the CI verdict. Written as text
//! (stdout and `capacity.txt`), JSON (`capacity.json`) and HTML with charts (`capacity.html`).

use std::io::{self, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::format::{micros, rate};

#[path = "capacity_html.rs"]
mod html;

pub use html::write_capacity_html;

/// One trial of the search: an ordinary run at one offered rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// 1-based, in the order run.
    pub n: usize,
    /// `step` (stepping up) or `bisect`.
    pub stage: String,
    /// The offered rate, per second.
    pub offered: f64,
    /// The rate achieved over the trial, per second (`None`: fewer than two events).
    pub achieved: Option<f64>,
    /// The latency phase judged for the curve (`connect_response` or `send_response`).
    pub latency_phase: String,
    /// Its 99th percentile, µs.
    pub p99_us: Option<u64>,
    /// Failed sessions and unacknowledged messages over attempts.
    pub error_rate: Option<f64>,
    /// Whether every SLO condition held (and the generator kept up).
    pub held: bool,
    /// The conditions that failed, worded with what was observed.
    pub failed: Vec<String>,
    /// Whether the generator saturated during the trial.
    pub saturated: bool,
    /// Whether that saturation could account for the trial's outcome (then the search stops:
    /// the generator, not the target, was the limit). A loaded host's few milliseconds of lag
    /// do not account for a p99 of seconds: such a failure is the target's.
    pub generator_limited: bool,
    /// Why, in words.
    pub saturation: Vec<String>,
    /// The trial's results directory.
    pub dir: PathBuf,
}

/// One verdict condition, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityCheckResult {
    /// The metric, e.g. `capacity.connect_rate`.
    pub metric: String,
    /// The condition, e.g. `> 500`.
    pub condition: String,
    /// The knee, per second (`None`: no trial held).
    pub observed: Option<f64>,
    /// Whether it held.
    pub passed: bool,
}

/// What ended the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Limit {
    /// The target: a trial failed the SLO and the bracket was narrowed to the precision.
    Target,
    /// The generator saturated: the target's limit is at least the knee, not known.
    Generator,
    /// Every rate up to `capacity.max` held.
    MaxRate,
    /// Even the first rate failed the SLO.
    NoneHeld,
    /// Interrupted (Ctrl-C).
    Interrupted,
}

impl Limit {
    /// What the limit means, in words.
    pub fn words(self) -> &'static str {
        match self {
            Self::Target => "the target: above the knee a trial failed the SLO",
            Self::Generator => {
                "the generator SATURATED, not the target: the target holds at least the knee; \
                 run the generator on more cores or hosts to find its limit"
            }
            Self::MaxRate => "none found: every rate up to capacity.max held",
            Self::NoneHeld => "the first rate already failed the SLO: lower capacity.start",
            Self::Interrupted => "interrupted before the search ended",
        }
    }
}

/// A whole search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// Scenario name.
    pub scenario: String,
    /// `connects` or `sends`.
    pub search: String,
    /// The validated `[capacity]` table, defaults filled in.
    pub plan: serde_json::Value,
    /// The trials, in the order run.
    pub trials: Vec<Trial>,
    /// The highest offered rate that held (and did not saturate the generator).
    pub knee: Option<f64>,
    /// The SLO's limit on the curve's latency (p99 of the trials' `latency_phase`), µs, if
    /// it states one: drawn on the p99 chart.
    #[serde(default)]
    pub latency_limit_us: Option<f64>,
    /// The lowest offered rate that failed, if any.
    pub first_failed: Option<f64>,
    /// What ended the search.
    pub limit: Limit,
    /// The verdict's conditions, judged on the knee.
    pub verdict: Vec<CapacityCheckResult>,
    /// Whether every verdict condition held.
    pub passed: bool,
    /// The directory of the search.
    pub dir: PathBuf,
}

/// One trial as a line of the curve.
pub fn write_trial_line(w: &mut impl Write, t: &Trial) -> io::Result<()> {
    let achieved = t.achieved.map_or_else(|| "-".to_owned(), rate);
    let p99 = t.p99_us.map_or_else(|| "-".to_owned(), micros);
    let errors = t
        .error_rate
        .map_or_else(|| "-".to_owned(), |e| format!("{:.2}%", e * 100.0));
    let outcome = outcome(t);
    writeln!(
        w,
        "{:>3}  {:<7}{:>12}{:>12}{:>12}{:>9}  {outcome}",
        t.n,
        t.stage,
        rate(t.offered),
        achieved,
        p99,
        errors
    )
}

/// `held`, `FAILED why`, or `SATURATED (why)` when the generator was the limit.
pub(super) fn outcome(t: &Trial) -> String {
    let busy = if t.saturated && !t.generator_limited {
        " (the generator was busy too, by too little to account for it)"
    } else {
        ""
    };
    if t.generator_limited {
        format!("SATURATED ({})", t.saturation.join("; "))
    } else if t.held {
        format!("held{busy}")
    } else {
        format!("FAILED {}{busy}", t.failed.join("; "))
    }
}

/// The text report.
pub fn write_capacity_text(w: &mut impl Write, c: &Capacity) -> io::Result<()> {
    let word = if c.passed { "PASSED" } else { "FAILED" };
    writeln!(w, "Capacity    {word}  {} ({})", c.scenario, c.search)?;
    let knee = c.knee.map_or_else(|| "none held".to_owned(), rate);
    writeln!(w, "{:<12}{knee}", "Knee")?;
    if let Some(f) = c.first_failed {
        writeln!(w, "{:<12}{}", "First fail", rate(f))?;
    }
    writeln!(w, "{:<12}{}", "Limit", c.limit.words())?;
    for v in &c.verdict {
        let seen = v.observed.map_or_else(|| "none".to_owned(), rate);
        let mark = if v.passed { "ok  " } else { "FAIL" };
        writeln!(
            w,
            "{:<12}{mark} {} {} (observed {seen})",
            "Verdict", v.metric, v.condition
        )?;
    }
    writeln!(w)?;
    let phase = c.trials.first().map_or("", |t| t.latency_phase.as_str());
    writeln!(
        w,
        "{:>3}  {:<7}{:>12}{:>12}{:>12}{:>9}  outcome",
        "#", "stage", "offered", "achieved", "p99", "errors"
    )?;
    for t in &c.trials {
        write_trial_line(w, t)?;
    }
    writeln!(
        w,
        "(p99 of {phase}; each trial's results are in its directory)"
    )?;
    writeln!(w, "{:<12}{}", "Results", c.dir.display())
}

/// The JSON report.
pub fn write_capacity_json(w: &mut impl Write, c: &Capacity) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, c)?;
    writeln!(w)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Capacity {
        let trial = |n, offered: f64, held, p99| Trial {
            n,
            stage: if n < 4 { "step" } else { "bisect" }.into(),
            offered,
            achieved: Some(offered.min(100.0)),
            latency_phase: "connect_response".into(),
            p99_us: Some(p99),
            error_rate: Some(0.0),
            held,
            failed: if held {
                vec![]
            } else {
                vec!["connect_response.p99 < 100ms: observed 1.2 s".into()]
            },
            saturated: false,
            generator_limited: false,
            saturation: vec![],
            dir: PathBuf::from(format!("trial-{n}")),
        };
        Capacity {
            scenario: "cap".into(),
            search: "connects".into(),
            plan: serde_json::json!({}),
            trials: vec![
                trial(1, 50.0, true, 3_000),
                trial(2, 100.0, true, 4_000),
                trial(3, 200.0, false, 1_200_000),
                trial(4, 150.0, false, 800_000),
            ],
            knee: Some(100.0),
            latency_limit_us: Some(100_000.0),
            first_failed: Some(150.0),
            limit: Limit::Target,
            verdict: vec![CapacityCheckResult {
                metric: "capacity.connect_rate".into(),
                condition: "> 80".into(),
                observed: Some(100.0),
                passed: true,
            }],
            passed: true,
            dir: PathBuf::from("cap-capacity"),
        }
    }

    #[test]
    fn the_text_names_the_knee_the_limit_and_each_trial() {
        let mut out = Vec::new();
        write_capacity_text(&mut out, &sample()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("Capacity    PASSED"), "{text}");
        assert!(text.contains("Knee        100.0/s"), "{text}");
        assert!(
            text.contains("FAILED connect_response.p99 < 100ms"),
            "{text}"
        );
        assert_eq!(text.matches("bisect").count(), 1, "{text}");
    }
}
