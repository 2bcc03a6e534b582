//! What the plan asked for, second by second: the connects and sends it scheduled in each
//! second of the timeline, for the planned lines beside the achieved ones (the achieved rates
//! are counted as they happen; these come from the schedule alone, after the run).
//!
//! Connects are the schedule's arrivals in the second. Sends are an open model's rate summed
//! over the sessions the plan has open: each session sends `1 / interval` from its planned
//! connect for `count` messages (or `duration`), until its planned departure (stages take down
//! the newest session first) or the end of the stages, and never past `max-duration`. A burst
//! plans no connect rate and a closed model no send rate; a plan of more than
//! [`MAX_SESSIONS`] sessions is not worked out (the rows keep no planned figures).

use std::time::Duration;

use crate::metrics::{timeline_spans, TimelineRow};
use crate::scenario::schedule::{Arrival, ConnectSchedule};
use crate::scenario::{Plan, SendModel, SessionPlan};

/// Sessions looked at, at most: a bound on the work and memory after a run.
pub(super) const MAX_SESSIONS: usize = 2_000_000;

/// Sets each row's planned connects and sends from `plan` for a fleet of `devices`.
pub(super) fn fill(plan: &Plan, devices: usize, rows: &mut [TimelineRow]) {
    let Some(seconds) = rows.iter().map(|r| r.t).max() else {
        return;
    };
    let send_interval = match plan.messages.model {
        SendModel::Open { interval } if plan.messages.count > 0 && !interval.is_zero() => {
            Some(interval)
        }
        _ => None,
    };
    // A constant rate without planned sends needs no session list: its connects per second
    // follow from the rate (a churn at a million a second would otherwise walk millions of
    // arrivals after the run).
    if send_interval.is_none() {
        if let Some(connects) = constant_rate_connects(plan, devices, seconds) {
            set_rows(rows, Some(&connects), None);
            return;
        }
    }
    // Arrivals come in order; those after the last row fall in no row and send in none.
    let horizon = seconds as f64;
    let arrivals: Vec<f64> = super::arrivals(plan, devices)
        .map(|t| t.as_secs_f64())
        .take_while(|t| *t < horizon)
        .take(MAX_SESSIONS + 1)
        .collect();
    if arrivals.len() > MAX_SESSIONS {
        return;
    }
    let connects = (plan.connect.schedule != ConnectSchedule::Burst)
        .then(|| per_second(arrivals.iter().map(|a| (*a, 1.0)), seconds));
    let sends = send_interval.map(|interval| {
        let windows = windows(plan, &arrivals, interval);
        sending(&windows, seconds, interval.as_secs_f64())
    });
    set_rows(rows, connects.as_deref(), sends.as_deref());
}

/// Sets each row's planned rates from the per-second plans, averaged over the row's span.
fn set_rows(rows: &mut [TimelineRow], connects: Option<&[f64]>, sends: Option<&[f64]>) {
    let spans: Vec<u64> = timeline_spans(rows).collect();
    for (r, span) in rows.iter_mut().zip(spans) {
        r.planned_connects = connects.and_then(|c| over_span(c, r.t, span));
        r.planned_sends = sends.and_then(|s| over_span(s, r.t, span));
    }
}

/// The planned rate per second over a row ending at `t` that covers `span` seconds (more than
/// one when the generator was too starved to sample every second): their mean.
fn over_span(per_second: &[f64], t: u64, span: u64) -> Option<f64> {
    let end = usize::try_from(t).ok()?;
    let from = end.saturating_sub(usize::try_from(span).ok()?);
    let seconds = per_second.get(from..end.min(per_second.len()))?;
    if seconds.is_empty() {
        return None;
    }
    Some(seconds.iter().sum::<f64>() / (end - from) as f64)
}

/// Connects per second of a constant-rate schedule, worked out from the rate: arrival `k` is
/// at `k / rate`, so `ceil(x * rate)` of them come before `x` seconds, up to the sessions the
/// plan takes (its devices, or those that fit a churn). `None` for other schedules.
fn constant_rate_connects(plan: &Plan, devices: usize, seconds: u64) -> Option<Vec<f64>> {
    let ConnectSchedule::Rate {
        rate,
        arrival: Arrival::Constant,
    } = plan.connect.schedule
    else {
        return None;
    };
    let offset = plan.connect.offset.as_secs_f64();
    let total = match plan.session {
        SessionPlan::Once { .. } => devices as f64,
        SessionPlan::Churn { duration } => ((duration.as_secs_f64() - offset) * rate).ceil(),
        SessionPlan::Staged => return None,
    }
    .max(0.0);
    let before = |x: f64| ((x - offset).max(0.0) * rate).ceil().min(total);
    Some(
        (0..seconds)
            .map(|s| before((s + 1) as f64) - before(s as f64))
            .collect(),
    )
}

/// Each planned session's sending window `[from, to)` in seconds since the start.
fn windows(plan: &Plan, arrivals: &[f64], interval: Duration) -> Vec<(f64, f64)> {
    let m = &plan.messages;
    let mut span = if m.count == u32::MAX {
        f64::INFINITY
    } else {
        interval.as_secs_f64() * f64::from(m.count)
    };
    if let Some(d) = m.duration {
        span = span.min(d.as_secs_f64());
    }
    let end = plan
        .connect
        .schedule
        .stages_end()
        .map_or(f64::INFINITY, |d| d.as_secs_f64())
        .min(plan.run.max_duration.as_secs_f64());
    let mut out: Vec<(f64, f64)> = arrivals.iter().map(|a| (*a, (a + span).min(end))).collect();
    if plan.session == SessionPlan::Staged {
        // A departure takes down the newest session open at its time.
        let departures = plan.connect.schedule.departures();
        let mut open: Vec<usize> = Vec::new();
        let mut next = 0;
        for d in departures.iter().map(Duration::as_secs_f64) {
            while next < out.len() && out[next].0 <= d {
                open.push(next);
                next += 1;
            }
            if let Some(i) = open.pop() {
                out[i].1 = out[i].1.min(d);
            }
        }
    }
    out
}

/// Sends per second: the seconds each window overlaps, over the interval between sends.
fn sending(windows: &[(f64, f64)], seconds: u64, interval: f64) -> Vec<f64> {
    let mut edges: Vec<(f64, f64)> = windows
        .iter()
        .filter(|(from, to)| to > from)
        .flat_map(|(from, to)| [(*from, 1.0), (*to, -1.0)])
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut area = vec![0.0; seconds as usize];
    let (mut open, mut at) = (0.0, 0.0);
    for (t, delta) in edges {
        spread(&mut area, open, at, t);
        open += delta;
        at = t;
    }
    spread(&mut area, open, at, seconds as f64);
    area.iter().map(|a| a / interval).collect()
}

/// Adds `open` sessions' time from `from` to `to` to the seconds it covers.
fn spread(area: &mut [f64], open: f64, mut from: f64, to: f64) {
    if open == 0.0 {
        return;
    }
    while from < to {
        let second = from.floor();
        let Some(cell) = area.get_mut(second as usize) else {
            return;
        };
        let next = (second + 1.0).min(to);
        *cell += open * (next - from);
        from = next;
    }
}

/// Weighted events `(t, w)` summed by the second they fall in.
fn per_second(events: impl Iterator<Item = (f64, f64)>, seconds: u64) -> Vec<f64> {
    let mut out = vec![0.0; seconds as usize];
    for (t, w) in events {
        if let Some(cell) = out.get_mut(t.floor() as usize) {
            *cell += w;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::test_plan as plan;

    fn rows(seconds: u64) -> Vec<TimelineRow> {
        (1..=seconds)
            .map(|t| TimelineRow {
                t,
                ..TimelineRow::default()
            })
            .collect()
    }

    fn planned(toml: &str, devices: usize, seconds: u64) -> Vec<(Option<f64>, Option<f64>)> {
        let mut r = rows(seconds);
        fill(&plan(toml).unwrap(), devices, &mut r);
        r.iter()
            .map(|r| (r.planned_connects, r.planned_sends))
            .collect()
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-6)
    }

    #[test]
    fn a_rate_plans_its_connects_and_each_session_its_messages() {
        // 20 devices at 10/s, 5 messages each a second apart: device d sends from d/10 s on.
        let p = planned(
            "[fleet]\ndevices = 20\n[connect]\nrate = 10\n[messages]\ncount = 5\ninterval = \"1s\"\n",
            20,
            8,
        );
        let connects: Vec<f64> = p.iter().map(|x| x.0.unwrap()).collect();
        assert_eq!(connects, [10.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let sends: Vec<f64> = p.iter().map(|x| x.1.unwrap()).collect();
        assert!(
            (sends.iter().sum::<f64>() - 100.0).abs() < 1e-6,
            "{sends:?}"
        );
        assert!(
            close(Some(sends[0]), 5.5) && close(Some(sends[3]), 20.0),
            "{sends:?}"
        );
    }

    #[test]
    fn stages_plan_open_sessions_times_the_send_rate_until_they_are_taken_down() {
        // 0 to 10 sessions over 2 s, held 2 s, down to 0 over 2 s; 4 messages/s each.
        let p = planned(
            "[[stages]]\nduration = \"2s\"\nsessions = 10\n[[stages]]\nduration = \"2s\"\n\
             sessions = 10\n[[stages]]\nduration = \"2s\"\nsessions = 0\n\
             [messages]\ninterval = \"250ms\"\n",
            10,
            7,
        );
        let connects: Vec<f64> = p.iter().map(|x| x.0.unwrap()).collect();
        assert_eq!(connects, [5.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let sends: Vec<f64> = p.iter().map(|x| x.1.unwrap()).collect();
        // Arrivals at 0, 0.2, ... 1.8 s: 3 open on average in the first second, 8 in the
        // second, 10 while held, then fewer as departures at 4.2, 4.4, ... 6 s take them down.
        let want = [12.0, 32.0, 40.0, 40.0, 32.0, 12.0, 0.0];
        for (got, want) in sends.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{sends:?}");
        }
    }

    #[test]
    fn a_churn_at_a_million_a_second_plans_its_connects_from_the_rate() {
        // 3 million arrivals: more than a session list holds; the rate alone gives them.
        let p = planned(
            "[fleet]\ndevices = 64\n[connect]\nrate = 1000000\n[churn]\nduration = \"3s\"\n\
             messages = 0\n",
            64,
            4,
        );
        let connects: Vec<f64> = p.iter().map(|x| x.0.unwrap()).collect();
        assert_eq!(connects, [1e6, 1e6, 1e6, 0.0]);
        assert!(p.iter().all(|x| x.1.is_none()), "{p:?}");
        // The same from the rate as from walking the arrivals, where both can be done,
        // offset (a shard's place) or not.
        for (toml, devices, offset_ms) in [
            ("[fleet]\ndevices = 7\n[connect]\nrate = 3\n", 7, 500),
            ("[fleet]\ndevices = 50\n[connect]\nrate = 7.3\n", 50, 0),
            (
                "[fleet]\ndevices = 9\n[connect]\nrate = 40\n[churn]\nduration = \"2500ms\"\n",
                9,
                250,
            ),
        ] {
            let mut p = plan(toml).unwrap();
            p.connect.offset = Duration::from_millis(offset_ms);
            let walked = per_second(
                super::super::arrivals(&p, devices).map(|t| (t.as_secs_f64(), 1.0)),
                9,
            );
            assert_eq!(
                constant_rate_connects(&p, devices, 9).unwrap(),
                walked,
                "{toml}"
            );
        }
    }

    #[test]
    fn a_burst_plans_no_connect_rate_and_a_closed_model_no_send_rate() {
        let p = planned("[fleet]\ndevices = 3\n[messages]\ncount = 2\n", 3, 2);
        assert!(p.iter().all(|x| x.0.is_none() && x.1.is_some()), "{p:?}");
        let p = planned(
            "[fleet]\ndevices = 3\n[connect]\nrate = 3\n[messages]\nmodel = \"closed\"\n",
            3,
            2,
        );
        assert!(p.iter().all(|x| x.0.is_some() && x.1.is_none()), "{p:?}");
    }
}
