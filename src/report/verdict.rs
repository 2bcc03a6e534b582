//! The verdict and the rates, worded once for the text and HTML reports: what the exit status
//! says and why, and each planned rate next to what was achieved.

use super::format::{count, rate};
use crate::metrics::{Rate, RunStatus, Summary, ThresholdResult, Verdict};

/// `PASSED`, `FAILED` or `PARTIAL (why)`: the first word of a report.
pub(super) fn word(s: &Summary) -> String {
    match s.judge() {
        Verdict::Passed => "PASSED".to_owned(),
        Verdict::Failed { .. } => "FAILED".to_owned(),
        Verdict::Partial { reason, .. } => format!("PARTIAL ({reason})"),
    }
}

/// The checks that failed, worded: `errors.rate <= 0 (default): observed 12.000%`.
pub(super) fn failed_checks(s: &Summary) -> Vec<String> {
    let mut out: Vec<String> = s
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| {
            let seen = t.observed.map_or_else(
                || "no data".to_owned(),
                |v| super::format::observed(t.unit, v),
            );
            format!("{}: observed {seen}", check_name(t))
        })
        .collect();
    if let Some(hub) = s.hub.as_ref().filter(|h| h.lost > 0) {
        out.push(format!(
            "{} acknowledged messages lost (the hub did not receive them)",
            count(hub.lost)
        ));
    }
    out.extend(
        s.delivery
            .iter()
            .flat_map(crate::metrics::Delivery::failures),
    );
    out
}

/// A threshold as written, marked when it is a default check.
pub(super) fn check_name(t: &ThresholdResult) -> String {
    let default = if t.default { " (default)" } else { "" };
    format!("{} {}{default}", t.metric, t.condition)
}

/// Whether the schedule ran to its end, apart from the checks.
pub(super) fn schedule(s: &Summary) -> String {
    match &s.status {
        RunStatus::Complete => "complete: every session ran its schedule".to_owned(),
        RunStatus::Partial { reason } => format!("stopped early: {reason}"),
    }
}

/// One line of the rates table.
pub(super) struct RateRow<'a> {
    /// `connects`, `sends`, `acks`.
    pub(super) label: &'static str,
    pub(super) rate: &'a Rate,
}

impl RateRow<'_> {
    /// `planned 200.0/s` or an empty string when the plan set no rate.
    pub(super) fn planned(&self) -> String {
        self.rate
            .planned_per_sec
            .map_or_else(String::new, |p| format!("planned {}", rate(p)))
    }

    /// `achieved 198.8/s`, or why there is no figure.
    pub(super) fn achieved(&self) -> String {
        match self.rate.per_sec {
            Some(a) => format!("achieved {}", rate(a)),
            None if self.rate.count == 0 => "none".to_owned(),
            None => format!("{} (too few for a rate)", count(self.rate.count)),
        }
    }

    /// `(500 over 4.50 s)`: what the achieved figure is made of.
    pub(super) fn basis(&self) -> String {
        match (self.rate.from_secs, self.rate.to_secs, self.rate.per_sec) {
            (Some(from), Some(to), Some(_)) => {
                format!("{} over {:.2} s", count(self.rate.count), to - from)
            }
            _ => String::new(),
        }
    }

    /// Words when the achieved rate fell short of the plan by more than 2 %, and what limited
    /// it on the evidence of `s`.
    pub(super) fn shortfall(&self, s: &Summary) -> Option<String> {
        let (planned, achieved) = (self.rate.planned_per_sec?, self.rate.per_sec?);
        // A run stopped early ran only part of the schedule its planned rate spans.
        let why = match &s.status {
            RunStatus::Partial { reason } => format!("the run stopped early ({reason})"),
            RunStatus::Complete => limit(s).to_owned(),
        };
        (achieved < planned * 0.98).then(|| {
            format!(
                "{} fell short: {:.0}% of planned; {why}",
                self.label,
                100.0 * achieved / planned
            )
        })
    }
}

/// What limited a run that fell short of its plan, on the evidence the summary holds.
pub(super) fn limit(s: &Summary) -> &'static str {
    limit_of(s.throttling.is_some(), s.generator.saturated)
}

/// What limited a rate, given whether the hub throttled it and whether the generator saturated.
pub(super) fn limit_of(throttled: bool, saturated: bool) -> &'static str {
    // Throttling is judged on seconds in which the generator was healthy, or on the hub's own
    // throttling codes, so it names the limit even when the generator was busy too.
    match (throttled, saturated) {
        (true, true) => "the hub throttled it; the generator SATURATED too",
        (true, false) => "the hub throttled it (Throttling)",
        (false, true) => "the generator limited it (SATURATED)",
        (false, false) => "the generator was healthy: the hub or the network",
    }
}

/// For a churn run (the handshake benchmark): handshakes per second, full and resumed apart,
/// over the connects' span, and per CPU-second of the generator process (which, against the
/// embedded hub, includes the hub's handshakes too, and says so).
pub(super) fn handshakes(s: &Summary) -> Option<String> {
    if s.scenario["session"]["lifetime"] != "churn" {
        return None;
    }
    let n = |phase: &str| s.phase(phase).map_or(0, |p| p.count);
    let (full, resumed) = (n("tls_handshake"), n("tls_resumed"));
    let span = match (s.rates.connects.from_secs, s.rates.connects.to_secs) {
        (Some(from), Some(to)) if to > from => to - from,
        _ => return None,
    };
    let cpu = s.generator.cpu_user_secs + s.generator.cpu_system_secs;
    let per_cpu = if cpu > 0.0 {
        let whose = if s.scenario["target"]["hub"] == "embedded" {
            "generator and embedded hub"
        } else {
            "generator"
        };
        format!(
            "   {} per {whose} CPU-second",
            rate((full + resumed) as f64 / cpu).trim_end_matches("/s")
        )
    } else {
        String::new()
    };
    Some(format!(
        "full {} ({})   resumed {} ({}){per_cpu}{}",
        count(full),
        rate(full as f64 / span),
        count(resumed),
        rate(resumed as f64 / span),
        cpu_per_handshake(s).map_or(String::new(), |c| format!("\n{:<12}{c}", ""))
    ))
}

/// "client 412 µs / server 380 µs CPU per handshake" (the server's only when it was read).
fn cpu_per_handshake(s: &Summary) -> Option<String> {
    let cpu = s.cpu.as_ref()?;
    let client = cpu.client_us_per_handshake?;
    let server = cpu
        .server_us_per_handshake
        .map_or(String::new(), |us| format!(" / server {us:.0} µs"));
    Some(format!("client {client:.0} µs{server} CPU per handshake"))
}

/// The rates of a run, in report order.
pub(super) fn rate_rows(s: &Summary) -> [RateRow<'_>; 3] {
    [
        RateRow {
            label: "connects",
            rate: &s.rates.connects,
        },
        RateRow {
            label: "sends",
            rate: &s.rates.sends,
        },
        RateRow {
            label: "acks",
            rate: &s.rates.acks,
        },
    ]
}
