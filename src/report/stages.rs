//! Stages planned against held, in the text report and report.html alike: for each
//! `[[stages]]` entry of a staged run, the sessions it targeted and the sessions open at its end,
//! and the message rate it planned against the rates sent and acknowledged over the whole
//! seconds of the timeline inside it, with words when it fell short and what limited it.

use std::io::{self, Write};
use std::time::Duration;

use serde_json::Value;

use super::format::{count, rate};
use super::html::esc;
use super::verdict;
use crate::metrics::{Summary, TimelineRow};

/// The label column of the text report.
const LABEL: usize = 12;
/// A figure below this share of its target fell short (as for the run's rates).
const SHORT: f64 = 0.98;
/// A run that ended this close to a stage's end ran the stage (the last session's departure
/// and the run's end are one instant).
const EDGE_SECS: f64 = 0.5;

/// One stage of a run, planned against held.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StageRow {
    /// 1-based, as in the scenario file.
    pub(super) index: usize,
    /// When the stage began and ended, seconds since the run's start.
    pub(super) from_secs: f64,
    pub(super) to_secs: f64,
    /// Open sessions the schedule moves from and to over the stage.
    pub(super) sessions_from: u64,
    pub(super) sessions_to: u64,
    /// Sessions open at the stage's end (see [`held`]).
    pub(super) held: Option<u64>,
    /// Messages per second the open model planned over the stage's whole seconds.
    pub(super) planned_per_sec: Option<f64>,
    /// Messages written and acknowledged per second over the stage's whole seconds.
    pub(super) sent_per_sec: Option<f64>,
    pub(super) acked_per_sec: Option<f64>,
    /// Whole seconds of the timeline inside the stage.
    pub(super) seconds_inside: usize,
}

impl StageRow {
    /// `0-3 s`
    fn seconds(&self) -> String {
        let s = |v: f64| {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        };
        format!("{}-{} s", s(self.from_secs), s(self.to_secs))
    }

    /// `0 → 10`, or `10` for a hold.
    fn target(&self) -> String {
        if self.sessions_from == self.sessions_to {
            count(self.sessions_to)
        } else {
            format!(
                "{} → {}",
                count(self.sessions_from),
                count(self.sessions_to)
            )
        }
    }

    /// Words when the run ended before the stage did (Ctrl-C, max-duration, a failed run).
    fn cut(&self, s: &Summary) -> Option<String> {
        let ended = s.duration_secs;
        if ended >= self.to_secs - EDGE_SECS {
            return None;
        }
        Some(if ended <= self.from_secs {
            format!("stage {} never began: the run ended first", self.index)
        } else {
            format!(
                "stage {} did not finish: the run ended {:.1} s into it (figures over the seconds it ran)",
                self.index,
                ended - self.from_secs
            )
        })
    }

    /// Words when the stage did not run to its end, or did not hold its target and what
    /// limited it.
    pub(super) fn shortfall(&self, s: &Summary) -> Option<String> {
        if let Some(cut) = self.cut(s) {
            return Some(cut);
        }
        let mut short = Vec::new();
        if let Some(held) = self
            .held
            .filter(|h| (*h as f64) < self.sessions_to as f64 * SHORT)
        {
            short.push(format!(
                "{} of {} sessions open at its end",
                count(held),
                count(self.sessions_to)
            ));
        }
        if let (Some(planned), Some(acked)) = (self.planned_per_sec, self.acked_per_sec) {
            // Each session's message due at a second's edge may fall either side of it: that
            // much is noise, not a shortfall.
            let edge = self.sessions_from.max(self.sessions_to) as f64;
            let slack = edge / self.seconds_inside.max(1) as f64;
            if acked + slack < planned * SHORT {
                short.push(format!(
                    "acknowledged {} of {} planned ({:.0}%)",
                    rate(acked),
                    rate(planned),
                    100.0 * acked / planned
                ));
            }
        }
        if short.is_empty() {
            return None;
        }
        let throttled = s
            .throttling
            .as_ref()
            .is_some_and(|t| (t.began_at_secs as f64) <= self.to_secs.ceil());
        Some(format!(
            "stage {} fell short: {}; {}",
            self.index,
            short.join(", "),
            verdict::limit_of(throttled, s.generator.saturated)
        ))
    }
}

/// One stage's open-session target over time: linear from `from` at `start` to `to` after
/// `secs` seconds.
struct Ramp {
    start: f64,
    secs: f64,
    from: u64,
    to: u64,
}

impl Ramp {
    /// The target at `t` seconds since the run's start.
    fn at(&self, t: f64) -> f64 {
        let k = if self.secs > 0.0 {
            ((t - self.start) / self.secs).clamp(0.0, 1.0)
        } else {
            1.0
        };
        self.from as f64 + (self.to as f64 - self.from as f64) * k
    }

    /// The mean target from `a` to `b` inside the stage: the open model plans target / interval
    /// messages per second, and a linear target's mean is the mean of its two ends.
    fn mean(&self, a: f64, b: f64) -> f64 {
        (self.at(a) + self.at(b)) / 2.0
    }
}

/// A humantime duration from the scenario as the summary holds it (`"3s"`, `"1m 30s"`).
fn duration(v: &Value) -> Option<Duration> {
    humantime::parse_duration(v.as_str()?).ok()
}

/// The stages of a staged run's scenario, if it was staged.
fn stages(s: &Summary) -> Option<&Vec<Value>> {
    s.scenario["connect"]["schedule"]["stages"].as_array()
}

/// The sessions a stage's target of `total` asks of this run: all of them, or a shard's part
/// (the scenario a shard records is the fleet's, and a merge's timeline is the fleet's again).
fn part(s: &Summary, total: u64) -> u64 {
    match &s.shard {
        Some(i) if s.shards.is_empty() && i.count > 0 => {
            total / i.count + u64::from(i.index < total % i.count)
        }
        _ => total,
    }
}

/// The stages of `s`, planned against held; empty when the run was not staged.
pub(super) fn rows(s: &Summary) -> Vec<StageRow> {
    let Some(stages) = stages(s) else {
        return Vec::new();
    };
    let model = &s.scenario["messages"]["model"];
    let interval = (model["model"] == "open")
        .then(|| duration(&model["interval"]))
        .flatten()
        .filter(|d| !d.is_zero());
    let (mut start, mut level) = (0.0f64, 0u64);
    let mut out = Vec::new();
    for (n, stage) in stages.iter().enumerate() {
        let (Some(d), Some(to)) = (duration(&stage["duration"]), stage["sessions"].as_u64()) else {
            continue;
        };
        let to = part(s, to);
        let end = start + d.as_secs_f64();
        // The whole seconds of the timeline inside the stage: row t covers (t - 1, t].
        let inside: Vec<&TimelineRow> = s
            .timeline
            .iter()
            .filter(|r| (r.t as f64 - 1.0) >= start - 1e-9 && (r.t as f64) <= end + 1e-9)
            .collect();
        let per_sec = |f: fn(&TimelineRow) -> u64| {
            (!inside.is_empty())
                .then(|| inside.iter().map(|r| f(r)).sum::<u64>() as f64 / inside.len() as f64)
        };
        let planned = match (interval, inside.first(), inside.last()) {
            (Some(i), Some(a), Some(b)) => {
                let ramp = Ramp {
                    start,
                    secs: d.as_secs_f64(),
                    from: level,
                    to,
                };
                Some(ramp.mean(a.t as f64 - 1.0, b.t as f64) / i.as_secs_f64())
            }
            _ => None,
        };
        out.push(StageRow {
            index: n + 1,
            from_secs: start,
            to_secs: end,
            sessions_from: level,
            sessions_to: to,
            held: held(s, start, end, level == to, n + 1 == stages.len()),
            planned_per_sec: planned,
            sent_per_sec: per_sec(|r| r.sends),
            acked_per_sec: per_sec(|r| r.acks),
            seconds_inside: inside.len(),
        });
        start = end;
        level = to;
    }
    out
}

/// Sessions open at the end of the stage from `start` to `end`: the first second at or after
/// its end. The schedule closes every session at the end of its last stage, the instant that
/// second is sampled: there a hold takes the second before, and a ramp has no figure; nor has a
/// stage the run did not reach the end of.
fn held(s: &Summary, start: f64, end: f64, hold: bool, last: bool) -> Option<u64> {
    if s.duration_secs < end - EDGE_SECS {
        return None;
    }
    let rows = &s.timeline;
    let i = rows.iter().position(|r| r.t as f64 >= end - 1e-9)?;
    if !last {
        return Some(rows[i].active);
    }
    let before = rows.get(i.checked_sub(1)?)?;
    (hold && before.t as f64 > start).then_some(before.active)
}

fn opt_rate(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), rate)
}

/// Writes the text table (nothing when the run was not staged).
pub(super) fn write_text(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let rows = rows(s);
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(w)?;
    writeln!(
        w,
        "{:<LABEL$}{:<7}{:<12}{:<14}{:>7}{:>16}{:>12}{:>12}",
        "Stages", "stage", "time", "sessions", "held", "msgs/s planned", "sent", "acked"
    )?;
    for r in &rows {
        writeln!(
            w,
            "{:<LABEL$}{:<7}{:<12}{:<14}{:>7}{:>16}{:>12}{:>12}",
            "",
            r.index,
            r.seconds(),
            r.target(),
            r.held.map_or_else(|| "-".to_owned(), count),
            opt_rate(r.planned_per_sec),
            opt_rate(r.sent_per_sec),
            opt_rate(r.acked_per_sec)
        )?;
    }
    for short in rows.iter().filter_map(|r| r.shortfall(s)) {
        for line in super::text::wrap(&short, 100 - LABEL) {
            writeln!(w, "{:<LABEL$}{line}", "")?;
        }
    }
    Ok(())
}

/// Writes the HTML table (nothing when the run was not staged).
pub(super) fn write_html(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let rows = rows(s);
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(
        w,
        "<h2>Stages</h2><table><tr><th>stage</th><th>time</th><th>sessions</th><th>held</th>\
         <th>messages/s planned</th><th>sent</th><th>acknowledged</th></tr>"
    )?;
    for r in &rows {
        let short = r.shortfall(s);
        writeln!(
            w,
            "<tr data-stage=\"{}\"{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            r.index,
            if short.is_some() {
                " class=\"fail\""
            } else {
                ""
            },
            r.index,
            r.seconds(),
            r.target(),
            r.held.map_or_else(|| "-".to_owned(), count),
            opt_rate(r.planned_per_sec),
            opt_rate(r.sent_per_sec),
            opt_rate(r.acked_per_sec)
        )?;
    }
    writeln!(w, "</table>")?;
    for short in rows.iter().filter_map(|r| r.shortfall(s)) {
        writeln!(w, "<p class=\"note\" data-stage-short>{}</p>", esc(&short))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Ramp;

    #[test]
    fn a_ramp_plans_its_mean_target_over_the_seconds_asked() {
        let up = Ramp {
            start: 4.0,
            secs: 1.0,
            from: 10,
            to: 40,
        };
        assert_eq!(up.mean(4.0, 5.0), 25.0);
        assert_eq!(up.at(4.5), 25.0);
        // Clamped to the stage: before it the start, after it the end.
        assert_eq!((up.at(0.0), up.at(9.0)), (10.0, 40.0));
        let hold = Ramp {
            start: 0.0,
            secs: 3.0,
            from: 40,
            to: 40,
        };
        assert_eq!(hold.mean(1.0, 3.0), 40.0);
        let jump = Ramp {
            start: 2.0,
            secs: 0.0,
            from: 0,
            to: 7,
        };
        assert_eq!(jump.at(2.0), 7.0);
    }
}
