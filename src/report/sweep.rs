//! A sweep's comparison: every cell's runs (one per round) reduced to the figures that price a
//! handshake, each the median over the rounds with its min and max. Written as
//! `comparison.json` here, as text by `sweep_text` and as HTML by `sweep_html`.

use std::path::PathBuf;

use serde::Serialize;

use crate::metrics::{CpuKinds, HandshakeKind, Summary, Verdict};

/// One run of a cell (one round), as the sweep left it.
#[derive(Debug, Clone)]
pub struct CellRun {
    /// Round, from 1.
    pub round: u32,
    /// Its results directory, relative to the sweep's.
    pub dir: Option<PathBuf>,
    /// Its summary, when it ran.
    pub summary: Option<Summary>,
    /// Why it did not run (a setup error), when it did not.
    pub error: Option<String>,
}

impl CellRun {
    /// Whether the run ran and passed every check.
    pub fn passed(&self) -> bool {
        self.summary.as_ref().is_some_and(|s| s.judge().passed())
    }

    /// What went wrong, in words (`None` when it passed).
    pub fn problem(&self) -> Option<String> {
        match (&self.summary, &self.error) {
            (_, Some(e)) => Some(format!("did not run: {e}")),
            (None, None) => Some("did not run".into()),
            (Some(s), None) => match s.judge() {
                Verdict::Passed => None,
                Verdict::Failed { checks } => Some(format!("FAILED: {}", checks.join("; "))),
                Verdict::Partial { reason, checks } if checks.is_empty() => {
                    Some(format!("PARTIAL ({reason})"))
                }
                Verdict::Partial { reason, checks } => {
                    Some(format!("PARTIAL ({reason}): {}", checks.join("; ")))
                }
            },
        }
    }
}

/// One cell of the sweep: what it is and what its runs measured.
#[derive(Debug, Clone)]
pub struct SweepCell {
    /// Its label.
    pub label: String,
    /// Each varying axis and its value.
    pub values: Vec<(String, String)>,
    /// The key-exchange groups its devices offered (empty: the provider's defaults).
    pub offered_groups: Vec<String>,
    /// Its runs, in round order.
    pub runs: Vec<CellRun>,
}

/// A combination that did not run.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedCell {
    /// Its label.
    pub label: String,
    /// Each varying axis and its value.
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Why.
    pub reason: String,
}

/// The whole sweep.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Scenario name.
    pub name: String,
    /// Its description, if any.
    pub description: Option<String>,
    /// Start, RFC 3339 UTC.
    pub started_at: String,
    /// Rounds planned.
    pub rounds: u32,
    /// `alternate` or `same`.
    pub order: String,
    /// The varying axes.
    pub axes: Vec<String>,
    /// The cells that ran (or were to).
    pub cells: Vec<SweepCell>,
    /// The combinations that did not.
    pub skipped: Vec<SkippedCell>,
    /// Why the sweep stopped early, if it did.
    pub interrupted: Option<String>,
}

/// Median, min and max over a cell's rounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Median (the mean of the middle two for an even count).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`, `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median: round3(median),
            min: round3(v[0]),
            max: round3(v[n - 1]),
        })
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The figures of one cell, each over its rounds that ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CellFigures {
    /// TLS handshakes completed per round.
    pub handshakes: Option<Spread>,
    /// Handshakes per second of the run.
    pub handshakes_per_sec: Option<Spread>,
    /// The generator's CPU µs per handshake (summary `cpu`).
    pub client_us_per_handshake: Option<Spread>,
    /// Handshakes per CPU-second of the generator.
    pub handshakes_per_client_cpu_sec: Option<Spread>,
    /// The hub's CPU µs per handshake (summary `cpu`).
    pub server_us_per_handshake: Option<Spread>,
    /// Handshakes per CPU-second of the hub.
    pub handshakes_per_server_cpu_sec: Option<Spread>,
    /// The client's mean CPU µs inside one full handshake (thread CPU clock; summary
    /// `cpu.per_handshake`): the handshake alone, without the session's other work.
    pub client_inside_full_us: Option<Spread>,
    /// As above, resumed handshakes.
    pub client_inside_resumed_us: Option<Spread>,
    /// The hub's mean CPU µs inside one full handshake.
    pub hub_inside_full_us: Option<Spread>,
    /// As above, resumed handshakes.
    pub hub_inside_resumed_us: Option<Spread>,
    /// TCP payload bytes client -> server per handshake, full and resumed together (mean).
    pub bytes_to_server: Option<Spread>,
    /// TCP payload bytes server -> client per handshake (mean).
    pub bytes_to_client: Option<Spread>,
    /// DER bytes of the devices' chain per handshake (mean).
    pub chain_sent_bytes: Option<Spread>,
    /// DER bytes of the hub's chain per handshake (mean).
    pub chain_received_bytes: Option<Spread>,
    /// Round trips per handshake (mean).
    pub round_trips: Option<Spread>,
    /// Handshakes answered with a HelloRetryRequest, per round.
    pub hello_retries: Option<Spread>,
    /// Share of handshakes that were resumed.
    pub resumed_share: Option<Spread>,
    /// `tls_handshake` (full handshakes) p50 and p99, µs.
    pub tls_handshake_p50_us: Option<Spread>,
    /// As above, p99.
    pub tls_handshake_p99_us: Option<Spread>,
    /// `tls_resumed` p50, µs.
    pub tls_resumed_p50_us: Option<Spread>,
    /// `tls_resumed` p99, µs.
    pub tls_resumed_p99_us: Option<Spread>,
    /// `connect_response` p50, µs.
    pub connect_response_p50_us: Option<Spread>,
    /// `connect_response` p99, µs.
    pub connect_response_p99_us: Option<Spread>,
    /// Failed sessions per round.
    pub errors: Option<Spread>,
}

impl CellFigures {
    /// The figures of `runs` that ran.
    pub fn of(runs: &[CellRun]) -> Self {
        let s: Vec<&Summary> = runs.iter().filter_map(|r| r.summary.as_ref()).collect();
        let over = |f: &dyn Fn(&Summary) -> Option<f64>| Spread::of(s.iter().filter_map(|s| f(s)));
        let phase = |name: &'static str, p99: bool| {
            over(&move |s: &Summary| {
                s.phase(name)
                    .filter(|p| p.count > 0)
                    .map(|p| if p99 { p.p99_us } else { p.p50_us } as f64)
            })
        };
        Self {
            handshakes: over(&|s| Some(s.counts.handshakes as f64)),
            handshakes_per_sec: over(&|s| {
                (s.duration_secs > 0.0).then(|| s.counts.handshakes as f64 / s.duration_secs)
            }),
            client_us_per_handshake: over(&|s| s.cpu.as_ref()?.client_us_per_handshake),
            handshakes_per_client_cpu_sec: over(&|s| {
                per_cpu_sec(s, Some(s.cpu.as_ref()?.client_secs))
            }),
            server_us_per_handshake: over(&|s| s.cpu.as_ref()?.server_us_per_handshake),
            handshakes_per_server_cpu_sec: over(&|s| per_cpu_sec(s, s.cpu.as_ref()?.server_secs)),
            client_inside_full_us: over(&|s| inside(s, false)?.full.as_ref().map(|k| k.mean_us)),
            client_inside_resumed_us: over(&|s| {
                inside(s, false)?.resumed.as_ref().map(|k| k.mean_us)
            }),
            hub_inside_full_us: over(&|s| inside(s, true)?.full.as_ref().map(|k| k.mean_us)),
            hub_inside_resumed_us: over(&|s| inside(s, true)?.resumed.as_ref().map(|k| k.mean_us)),
            bytes_to_server: over(&|s| wire(s, |k| k.bytes_to_server.total as f64)),
            bytes_to_client: over(&|s| wire(s, |k| k.bytes_to_client.total as f64)),
            chain_sent_bytes: over(&|s| wire(s, |k| k.chain_sent_bytes * k.count as f64)),
            chain_received_bytes: over(&|s| wire(s, |k| k.chain_received_bytes * k.count as f64)),
            round_trips: over(&|s| wire(s, |k| k.round_trips.total as f64)),
            hello_retries: over(&|s| Some(kinds(s).map(|k| k.hello_retries).sum::<u64>() as f64)),
            resumed_share: over(&|s| {
                let h = s.handshake.as_ref()?;
                let resumed = h.resumed.as_ref().map_or(0, |k| k.count);
                let all = resumed + h.full.as_ref().map_or(0, |k| k.count);
                (all > 0).then(|| resumed as f64 / all as f64)
            }),
            tls_handshake_p50_us: phase("tls_handshake", false),
            tls_handshake_p99_us: phase("tls_handshake", true),
            tls_resumed_p50_us: phase("tls_resumed", false),
            tls_resumed_p99_us: phase("tls_resumed", true),
            connect_response_p50_us: phase("connect_response", false),
            connect_response_p99_us: phase("connect_response", true),
            errors: over(&|s| Some(s.counts.sessions_failed as f64)),
        }
    }
}

/// The CPU measured inside each handshake, the hub's or the client's.
fn inside(s: &Summary, hub: bool) -> Option<&CpuKinds> {
    let p = s.cpu.as_ref()?.per_handshake.as_ref()?;
    if hub {
        p.hub.as_ref()
    } else {
        Some(&p.client)
    }
}

/// Handshakes per CPU-second of `cpu_secs`.
fn per_cpu_sec(s: &Summary, cpu_secs: Option<f64>) -> Option<f64> {
    let cpu = cpu_secs.filter(|c| *c > 0.0)?;
    Some(s.counts.handshakes as f64 / cpu)
}

/// Full and resumed handshake figures of a summary.
fn kinds(s: &Summary) -> impl Iterator<Item = &HandshakeKind> {
    s.handshake
        .iter()
        .flat_map(|h| [h.full.as_ref(), h.resumed.as_ref()])
        .flatten()
}

/// The mean of a per-handshake figure over full and resumed handshakes, from its `total`.
fn wire(s: &Summary, total: impl Fn(&HandshakeKind) -> f64) -> Option<f64> {
    let n: u64 = kinds(s).map(|k| k.count).sum();
    (n > 0).then(|| kinds(s).map(&total).sum::<f64>() / n as f64)
}

/// The group a completed handshake of a cell must have used: the only one its devices offered.
pub fn negotiated_group<'a>(cell: &'a SweepCell, figures: &CellFigures) -> Option<&'a str> {
    let done = figures.handshakes.is_some_and(|h| h.max > 0.0);
    match (done, cell.offered_groups.as_slice()) {
        (true, [only]) => Some(only),
        _ => None,
    }
}

/// Whether every run of every cell passed and the sweep ran to its end.
pub fn passed(sweep: &Sweep) -> bool {
    sweep.interrupted.is_none()
        && sweep
            .cells
            .iter()
            .all(|c| c.runs.iter().all(CellRun::passed))
}

/// How the figures are made (in every rendering).
pub const METHOD: &str = "Each figure is the median over the cell's rounds, with the smallest \
    and largest in brackets. CPU: the run's summary `cpu` (utime + stime from /proc over the \
    load; client = the generator less the embedded hub's threads); bytes and round trips: \
    summary `handshake`, the mean per handshake over full and resumed ones; the chain's share \
    is the certificate chain's DER bytes in them. A cell's negotiated group is named when its \
    devices offered one group only: a completed handshake can have used no other.";

/// `comparison.json`.
pub fn to_json(sweep: &Sweep) -> serde_json::Value {
    let cells: Vec<serde_json::Value> = sweep
        .cells
        .iter()
        .map(|c| {
            let f = CellFigures::of(&c.runs);
            let runs: Vec<serde_json::Value> = c
                .runs
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "round": r.round,
                        "dir": r.dir,
                        "passed": r.passed(),
                        "problem": r.problem(),
                        "handshakes": r.summary.as_ref().map(|s| s.counts.handshakes),
                    })
                })
                .collect();
            let mut v = serde_json::json!({
                "label": c.label,
                "values": values_map(&c.values),
                "offered_groups": c.offered_groups,
                "negotiated_group": negotiated_group(c, &f),
                "passed": c.runs.iter().all(CellRun::passed),
                "runs": runs,
            });
            if let (Some(obj), Ok(serde_json::Value::Object(fig))) =
                (v.as_object_mut(), serde_json::to_value(&f))
            {
                obj.extend(fig);
            }
            v
        })
        .collect();
    serde_json::json!({
        "name": sweep.name,
        "description": sweep.description,
        "started_at": sweep.started_at,
        "rounds": sweep.rounds,
        "order": sweep.order,
        "axes": sweep.axes,
        "passed": passed(sweep),
        "interrupted": sweep.interrupted,
        "method": METHOD,
        "cells": cells,
        "skipped": sweep.skipped,
    })
}

/// Axis values as a JSON object.
pub fn values_map(values: &[(String, String)]) -> serde_json::Map<String, serde_json::Value> {
    values
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_are_medians_with_their_extremes() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of([1.0, 2.0, 4.0, 10.0]).unwrap().median, 3.0);
        assert_eq!(Spread::of([f64::NAN]), None);
        assert_eq!(Spread::of(std::iter::empty()), None);
    }
}
