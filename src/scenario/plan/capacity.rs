//! `[capacity]`: a search for the highest offered rate whose trials hold an SLO, checked here
//! with file, line and field like every other table.
//!
//! ```toml
//! [capacity]
//! search = "connects"          # or "sends"
//! start = 25                   # first offered rate, per second
//! factor = 2                   # step up by this while the SLO holds
//! max = 2000                   # never offer more
//! hold = "3s"                  # each trial offers its rate this long
//! precision = 0.05             # bisect until the bracket is 5 % wide
//! [capacity.slo]
//! "connect_response.p99" = "< 100ms"
//! "errors.rate" = "< 0.001"
//! [capacity.verdict]
//! "capacity.connect_rate" = "> 80"
//! ```

use std::time::Duration;

use serde_json::{json, Value};

use super::super::problems::Problems;
use super::super::thresholds::conditions;
use super::super::Scenario;
use crate::metrics::{Op, Threshold};

/// What a capacity search varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKind {
    /// New sessions per second (churn: connect, send `churn.messages`, disconnect).
    Connects,
    /// Messages per second from a fleet connected once.
    Sends,
}

impl SearchKind {
    /// `connects` or `sends`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Connects => "connects",
            Self::Sends => "sends",
        }
    }

    /// The verdict's metric: `capacity.connect_rate` or `capacity.send_rate`.
    pub const fn verdict_metric(self) -> &'static str {
        match self {
            Self::Connects => "capacity.connect_rate",
            Self::Sends => "capacity.send_rate",
        }
    }
}

/// A condition on the capacity found, e.g. `capacity.connect_rate > 500`.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityCheck {
    /// The metric as written.
    pub name: String,
    /// The condition as written.
    pub condition: String,
    /// The comparison.
    pub op: Op,
    /// The limit, per second.
    pub limit: f64,
}

impl CapacityCheck {
    /// Whether `observed` (the highest rate that held; `None` when none did) meets it.
    pub fn holds(&self, observed: Option<f64>) -> bool {
        observed.is_some_and(|v| match self.op {
            Op::Above => v > self.limit,
            Op::AtLeast => v >= self.limit,
            Op::AtMost => v <= self.limit,
            Op::Below => v < self.limit,
        })
    }
}

/// A validated capacity search.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityPlan {
    /// What is varied.
    pub search: SearchKind,
    /// First offered rate.
    pub start: f64,
    /// Step-up factor (> 1).
    pub factor: f64,
    /// Highest rate offered.
    pub max: f64,
    /// Length of each trial.
    pub hold: Duration,
    /// Relative width of the final bracket.
    pub precision: f64,
    /// What every trial must meet.
    pub slo: Vec<Threshold>,
    /// What the result must meet (the exit status).
    pub verdict: Vec<CapacityCheck>,
}

impl CapacityPlan {
    /// The plan as JSON, every default filled in.
    pub fn to_json(&self) -> Value {
        json!({"search": self.search.name(), "start": self.start, "factor": self.factor,
               "max": self.max, "hold": humantime::format_duration(self.hold).to_string(),
               "precision": self.precision,
               "slo": self.slo.iter().map(|t| (t.name.clone(), json!(t.condition)))
                    .collect::<serde_json::Map<_, _>>(),
               "verdict": self.verdict.iter().map(|t| (t.name.clone(), json!(t.condition)))
                    .collect::<serde_json::Map<_, _>>()})
    }
}

/// Validates `[capacity]`, if present. `text` is the scenario's source: a `[matrix]` table
/// (a sweep) cannot be combined with a search, whichever way it is spelled.
pub(super) fn capacity(s: &Scenario, text: &str, p: &mut Problems<'_>) -> Option<CapacityPlan> {
    let c = s.capacity.as_ref()?;
    let has_matrix = toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("matrix"));
    if has_matrix {
        p.add(
            "capacity",
            "contradicts [matrix]: a sweep runs every cell, a capacity search varies the rate; \
             give one of them",
        );
    }
    if s.stages.is_some() {
        p.add(
            "capacity",
            "contradicts [[stages]]: the search sets the offered rate of each trial",
        );
    }
    if !s.thresholds.is_empty() {
        p.add(
            "thresholds",
            "contradicts [capacity]: each trial is judged on capacity.slo and the search on \
             capacity.verdict",
        );
    }
    let search = match c.search.as_deref() {
        None | Some("connects") => SearchKind::Connects,
        Some("sends") => SearchKind::Sends,
        Some(other) => {
            p.add(
                "capacity.search",
                format!("{other:?} is not valid: \"connects\" or \"sends\""),
            );
            SearchKind::Connects
        }
    };
    if search == SearchKind::Sends && s.churn.is_some() {
        p.add(
            "churn",
            "contradicts capacity.search = \"sends\": a send search keeps the fleet connected",
        );
    }
    let plan = CapacityPlan {
        search,
        start: rate(c.start, 10.0, "capacity.start", p),
        factor: c.factor.unwrap_or(2.0),
        max: rate(c.max, 10_000.0, "capacity.max", p),
        hold: c.hold.unwrap_or(Duration::from_secs(10)),
        precision: c.precision.unwrap_or(0.05),
        slo: conditions(&c.slo, "capacity.slo", p)
            .into_iter()
            .filter_map(|(name, cond)| match Threshold::parse(&name, &cond) {
                Ok(t) => Some(t),
                Err(e) => {
                    p.add(&format!("capacity.slo.{name}"), e.to_string());
                    None
                }
            })
            .collect(),
        verdict: conditions(&c.verdict, "capacity.verdict", p)
            .into_iter()
            .filter_map(|(name, cond)| verdict(search, &name, &cond, p))
            .collect(),
    };
    check_numbers(&plan, c, p);
    Some(plan)
}

fn check_numbers(plan: &CapacityPlan, c: &super::super::CapacitySection, p: &mut Problems<'_>) {
    if !(plan.factor.is_finite() && plan.factor > 1.0 && plan.factor <= 100.0) {
        p.add(
            "capacity.factor",
            format!("{} is not valid: more than 1 and at most 100", plan.factor),
        );
    }
    if plan.max < plan.start {
        p.add(
            if c.max.is_some() {
                "capacity.max"
            } else {
                "capacity.start"
            },
            format!(
                "capacity.max {} is below capacity.start {}",
                plan.max, plan.start
            ),
        );
    }
    if plan.hold < Duration::from_millis(500) {
        p.add(
            "capacity.hold",
            "is too short: a trial needs at least 500ms to give a rate and a percentile",
        );
    }
    if !(plan.precision.is_finite() && plan.precision >= 0.001 && plan.precision < 1.0) {
        p.add(
            "capacity.precision",
            format!(
                "{} is not valid: a fraction from 0.001 to below 1 (0.05 = 5 %)",
                plan.precision
            ),
        );
    }
}

fn rate(value: Option<f64>, default: f64, field: &str, p: &mut Problems<'_>) -> f64 {
    let r = value.unwrap_or(default);
    if !(r.is_finite() && r > 0.0 && r <= 1_000_000.0) {
        p.add(
            field,
            format!("{r} is not valid: a rate above 0 and at most 1,000,000 per second"),
        );
        return default;
    }
    r
}

fn verdict(
    kind: SearchKind,
    name: &str,
    cond: &str,
    p: &mut Problems<'_>,
) -> Option<CapacityCheck> {
    let field = format!("capacity.verdict.{name}");
    if name != kind.verdict_metric() {
        p.add(
            &field,
            format!(
                "{name:?} is not a capacity metric of a {} search: use {}",
                kind.name(),
                kind.verdict_metric()
            ),
        );
        return None;
    }
    // Parsed as a rate threshold: the same operators and the same "/s" suffix.
    match Threshold::parse("connect.rate", cond) {
        Ok(t) => Some(CapacityCheck {
            name: name.to_owned(),
            condition: t.condition,
            op: t.op,
            limit: t.limit,
        }),
        Err(e) => {
            p.add(&field, e.to_string().replace("connect.rate", name));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::test_plan as plan;
    use crate::scenario::SearchKind;

    const OK: &str = "[churn]\nduration = \"1s\"\n[connect]\nrate = 1.0\n[capacity]\nstart = 20.0\nhold = \"2s\"\n\
                      [capacity.slo]\n\"connect_response.p99\" = \"< 100ms\"\n\
                      [capacity.verdict]\n\"capacity.connect_rate\" = \"> 80\"\n";

    #[test]
    fn a_search_gets_its_defaults_and_conditions() {
        let p = plan(OK).unwrap();
        let c = p.capacity.unwrap();
        assert_eq!(c.search, SearchKind::Connects);
        assert_eq!(
            (c.start, c.factor, c.max, c.precision),
            (20.0, 2.0, 10_000.0, 0.05)
        );
        assert_eq!(c.slo[0].name, "connect_response.p99");
        assert!(c.verdict[0].holds(Some(81.0)) && !c.verdict[0].holds(Some(80.0)));
        assert!(!c.verdict[0].holds(None));
    }

    #[test]
    fn bad_settings_are_named_with_line_and_field() {
        let e = plan(
            "[capacity]\nfactor = 1.0\nhold = \"100ms\"\nsearch = \"bytes\"\n[capacity.slo]\n\
             \"bogus.p99\" = \"< 1ms\"\n[capacity.verdict]\n\"connect.rate\" = \"> 5\"\n",
        )
        .unwrap_err();
        let got: Vec<_> = e.0.iter().map(|e| (e.field.as_str(), e.line)).collect();
        assert_eq!(
            got,
            [
                ("capacity.factor", Some(2)),
                ("capacity.hold", Some(3)),
                ("capacity.search", Some(4)),
                ("capacity.slo.bogus.p99", Some(6)),
                ("capacity.verdict.connect.rate", Some(8)),
            ]
        );
    }

    #[test]
    fn a_search_cannot_be_combined_with_a_sweep_or_thresholds() {
        let text = format!("{OK}[thresholds]\n\"errors.rate\" = \"< 1%\"\n");
        let e = plan(&text).unwrap_err();
        assert_eq!(e.0[0].field, "thresholds", "{e}");
        // `[matrix]` belongs to the sweep; whatever its fields, the search refuses it.
        let s = crate::scenario::Scenario::parse(OK, std::path::Path::new("t.toml")).unwrap();
        let text = format!("{OK}[matrix]\n");
        let e = crate::scenario::Plan::new(
            &s,
            &text,
            std::path::Path::new("t.toml"),
            "t",
            &crate::scenario::Overrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("contradicts [matrix]"), "{e}");
    }
}
