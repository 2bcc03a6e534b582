//! Merging the summaries of the shards of one fleet into the summary of the fleet, without
//! loss: histograms are added (HdrHistogram addition, so every percentile of the merge is the
//! percentile of all the samples), counts summed, timelines aligned by wall clock, and each
//! shard's generator health kept. The thresholds are then judged on the merge exactly as on
//! one run.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

mod check;
mod handshake;

use check::check_shards;
pub use check::MergeError;

use super::histogram::{decode_histogram, new_histogram, HistogramCodecError};
use super::{
    evaluate, FailureSummary, GeneratorHealth, HubAccounting, IntervalLatency, LatencyHistogram,
    PhaseSummary, Rates, RunCounts, RunStatus, ShardRun, Summary, Threshold, TimelineRow,
};

/// One shard's summary and where it came from (for messages).
#[derive(Debug, Clone)]
pub struct ShardSummary {
    /// File, or file:line of a log.
    pub source: String,
    /// The summary.
    pub summary: Summary,
}

/// Merges the summaries of all N shards of one fleet (in any order).
pub fn merge(mut shards: Vec<ShardSummary>) -> Result<Summary, MergeError> {
    check_shards(&mut shards)?;
    let first = &shards[0];
    let starts = shards
        .iter()
        .map(|s| {
            humantime::parse_rfc3339_weak(&s.summary.started_at).map_err(|_| {
                MergeError::StartedAt {
                    source_name: s.source.clone(),
                    value: s.summary.started_at.clone(),
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Invariant: check_shards refused an empty list.
    #[allow(clippy::unwrap_used)]
    let start = *starts.iter().min().unwrap();
    let since = |t: SystemTime| t.duration_since(start).unwrap_or_default();
    let end = shards
        .iter()
        .zip(&starts)
        .map(|(s, t)| since(*t) + Duration::from_secs_f64(s.summary.duration_secs.max(0.0)))
        .max()
        .unwrap_or_default();
    let secs = end.as_secs_f64().max(1e-9);
    let counts = sum_counts(shards.iter().map(|s| &s.summary.counts));
    let rates = Rates::merge(
        shards
            .iter()
            .zip(&starts)
            .map(|(s, t)| (since(*t).as_secs_f64(), &s.summary.rates)),
    );
    let mut merged = Summary {
        schema_version: first.summary.schema_version,
        tool_version: first.summary.tool_version.clone(),
        scenario_name: first.summary.scenario_name.clone(),
        scenario: first.summary.scenario.clone(),
        status: status(&shards),
        started_at: humantime::format_rfc3339_millis(start).to_string(),
        duration_secs: (secs * 1000.0).round() / 1000.0,
        connects_per_sec: rates.connects.per_sec.unwrap_or(0.0),
        acks_per_sec: rates.acks.per_sec.unwrap_or(0.0),
        rates,
        counts,
        phases: phases(&shards)?,
        failures: failures(&shards),
        outcomes: outcomes(&shards),
        hub: hub(&shards),
        delivery: super::Delivery::merge(shards.iter().map(|s| s.summary.delivery.as_ref())),
        generator: generator(&shards),
        hosts: hosts(&shards),
        timeline: timeline(&shards, &starts, start)?,
        thresholds: Vec::new(),
        verdict: None,
        ca_fingerprint: first.summary.ca_fingerprint.clone(),
        shard: None,
        run_id: None,
        shards: shards.iter().map(shard_run).collect(),
        throttling: None,
        handshake: handshake::handshake(&shards)?,
        cpu: handshake::cpu(&shards)?,
    };
    // Per-row CPU is summed over shards (each on its own host), so no CPU ceiling applies.
    let evidence = super::ThrottleEvidence {
        cpu_ceiling: f64::INFINITY,
        throttled: merged.failures_of(super::FailureKind::Throttled),
        hub_throttled: shards
            .iter()
            .map(|s| s.summary.hub.as_ref().and_then(|h| h.throttled))
            .sum(),
    };
    merged.throttling = super::detect_throttling(&merged.timeline, &evidence);
    merged.thresholds = evaluate(&thresholds(first)?, &merged);
    merged.verdict = Some(merged.judge());
    Ok(merged)
}

fn sum_counts<'a>(all: impl Iterator<Item = &'a RunCounts>) -> RunCounts {
    all.fold(RunCounts::default(), |a, c| RunCounts {
        devices: a.devices + c.devices,
        sessions_attempted: a.sessions_attempted + c.sessions_attempted,
        sessions_connected: a.sessions_connected + c.sessions_connected,
        sessions_failed: a.sessions_failed + c.sessions_failed,
        handshakes: a.handshakes + c.handshakes,
        messages_sent: a.messages_sent + c.messages_sent,
        messages_acked: a.messages_acked + c.messages_acked,
        messages_unacked: a.messages_unacked + c.messages_unacked,
        bytes_sent: a.bytes_sent + c.bytes_sent,
        late_connects: a.late_connects + c.late_connects,
        reconnects: a.reconnects + c.reconnects,
        reconnects_connected: a.reconnects_connected + c.reconnects_connected,
        devices_never_connected: a.devices_never_connected + c.devices_never_connected,
        late_sends: a.late_sends + c.late_sends,
    })
}

fn status(shards: &[ShardSummary]) -> RunStatus {
    let partial: Vec<String> = shards
        .iter()
        .filter_map(|s| match (&s.summary.status, &s.summary.shard) {
            (RunStatus::Partial { reason }, Some(i)) => {
                Some(format!("shard {}/{}: {reason}", i.index, i.count))
            }
            _ => None,
        })
        .collect();
    if partial.is_empty() {
        RunStatus::Complete
    } else {
        RunStatus::Partial {
            reason: partial.join("; "),
        }
    }
}

/// Each phase's histograms added, phases in the order they first appear.
fn phases(shards: &[ShardSummary]) -> Result<Vec<PhaseSummary>, MergeError> {
    let mut order: Vec<String> = Vec::new();
    let mut sums = BTreeMap::new();
    for s in shards {
        for p in &s.summary.phases {
            let err = |message: String| MergeError::Histogram {
                source_name: s.source.clone(),
                phase: p.name.clone(),
                message,
            };
            let h = decode_histogram(&p.histogram)
                .map_err(|e: HistogramCodecError| err(format!("{e}")))?;
            let sum = sums.entry(p.name.clone()).or_insert_with(|| {
                order.push(p.name.clone());
                new_histogram()
            });
            sum.add(&h)
                .map_err(|e| err(format!("cannot add the histogram: {e:?}")))?;
        }
    }
    Ok(order
        .iter()
        .filter_map(|name| {
            sums.get(name)
                .map(|h| PhaseSummary::from_histogram(name, h))
        })
        .collect())
}

/// Failures summed by phase and kind; the first shard's sample message is kept, and the
/// device ids listed up to the cap (shards have disjoint devices, so the rest add up).
fn failures(shards: &[ShardSummary]) -> Vec<FailureSummary> {
    let mut out: Vec<FailureSummary> = Vec::new();
    for f in shards.iter().flat_map(|s| &s.summary.failures) {
        match out
            .iter_mut()
            .find(|o| o.phase == f.phase && o.kind == f.kind)
        {
            Some(o) => {
                o.count += f.count;
                o.devices_more += f.devices_more;
                for d in &f.devices {
                    if o.devices.len() < super::MAX_DEVICE_IDS {
                        o.devices.push(d.clone());
                    } else {
                        o.devices_more += 1;
                    }
                }
            }
            None => out.push(f.clone()),
        }
    }
    out
}

/// The embedded hubs' accounting summed, when every shard has one.
fn hub(shards: &[ShardSummary]) -> Option<HubAccounting> {
    let all: Vec<&HubAccounting> = shards
        .iter()
        .map(|s| s.summary.hub.as_ref())
        .collect::<Option<_>>()?;
    let mut acc = HubAccounting::default();
    for h in all {
        acc.received += h.received;
        acc.acked += h.acked;
        acc.lost += h.lost;
        if let Some(t) = h.throttled {
            *acc.throttled.get_or_insert(0) += t;
        }
        acc.lost_devices.extend(h.lost_devices.iter().cloned());
        for (reason, n) in &h.refused {
            match acc.refused.iter_mut().find(|(r, _)| r == reason) {
                Some((_, m)) => *m += n,
                None => acc.refused.push((reason.clone(), *n)),
            }
        }
    }
    acc.lost_devices.truncate(10);
    Some(acc)
}

/// The generators taken together: CPU, memory and sessions summed, the cores of each host
/// counted once (shards that ran on one host share its cores), lags at their worst, saturated
/// when any shard was (its reasons prefixed with the shard). Each host's health is in `hosts`,
/// each shard's in `shards`.
fn generator(shards: &[ShardSummary]) -> GeneratorHealth {
    let hosts = hosts(shards);
    let mut g = combine(shards.iter().map(|s| (&s.summary, &s.summary.generator)));
    g.cores = hosts.iter().map(|h| h.cores).sum();
    utilisation(&mut g, shards);
    g.host = None;
    g
}

/// The generator health of each host that ran shards (by `generator.host`; a shard that did
/// not record its host counts as a host of its own), in order of first appearance.
fn hosts(shards: &[ShardSummary]) -> Vec<GeneratorHealth> {
    let mut names: Vec<String> = Vec::new();
    for (i, s) in shards.iter().enumerate() {
        let name = host_of(s, i);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let on: Vec<&ShardSummary> = shards
                .iter()
                .enumerate()
                .filter(|(i, s)| host_of(s, *i) == name)
                .map(|(_, s)| s)
                .collect();
            let mut g = combine(on.iter().map(|s| (&s.summary, &s.summary.generator)));
            g.cores = on
                .iter()
                .map(|s| s.summary.generator.cores)
                .max()
                .unwrap_or(0);
            let owned: Vec<ShardSummary> = on.into_iter().cloned().collect();
            utilisation(&mut g, &owned);
            g.host = Some(name);
            g
        })
        .collect()
}

fn host_of(s: &ShardSummary, i: usize) -> String {
    s.summary
        .generator
        .host
        .clone()
        .unwrap_or_else(|| format!("{} (host not recorded, #{i})", s.source))
}

/// Sums and worst cases of several generators' health; cores and utilisation left to the caller.
fn combine<'a>(all: impl Iterator<Item = (&'a Summary, &'a GeneratorHealth)>) -> GeneratorHealth {
    let mut g = GeneratorHealth::default();
    for (s, h) in all {
        g.cpu_user_secs += h.cpu_user_secs;
        g.cpu_system_secs += h.cpu_system_secs;
        g.peak_rss_kib += h.peak_rss_kib;
        g.peak_sessions += h.peak_sessions;
        g.timer_lag_p99_us = g.timer_lag_p99_us.max(h.timer_lag_p99_us);
        g.timer_lag_max_us = g.timer_lag_max_us.max(h.timer_lag_max_us);
        g.task_start_lag_p99_us = g.task_start_lag_p99_us.max(h.task_start_lag_p99_us);
        g.task_start_lag_max_us = g.task_start_lag_max_us.max(h.task_start_lag_max_us);
        g.saturated |= h.saturated;
        if let Some(i) = &s.shard {
            g.saturation_reasons.extend(
                h.saturation_reasons
                    .iter()
                    .map(|r| format!("shard {}/{}: {r}", i.index, i.count)),
            );
        }
    }
    g.rss_per_session_kib = None;
    g
}

/// Mean CPU over the longest of `shards`, as a fraction of `g.cores`.
fn utilisation(g: &mut GeneratorHealth, shards: &[ShardSummary]) {
    let busy = g.cpu_user_secs + g.cpu_system_secs;
    let secs: f64 = shards
        .iter()
        .map(|s| s.summary.duration_secs)
        .fold(0.0, f64::max);
    g.cpu_utilisation = if g.cores > 0 && secs > 0.0 {
        busy / (secs * f64::from(g.cores))
    } else {
        0.0
    };
}

/// Rows moved to seconds since the earliest shard's start (each shard's start rounded to the
/// second) and summed; CPU and memory are summed over the generators. The interval histograms of
/// one second are added (exactly, as the whole-run ones are) and the percentiles taken again.
fn timeline(
    shards: &[ShardSummary],
    starts: &[SystemTime],
    start: SystemTime,
) -> Result<Vec<TimelineRow>, MergeError> {
    let mut rows: BTreeMap<u64, TimelineRow> = BTreeMap::new();
    let mut latency: BTreeMap<(u64, String), LatencyHistogram> = BTreeMap::new();
    for (s, t) in shards.iter().zip(starts) {
        let shift = t
            .duration_since(start)
            .unwrap_or_default()
            .as_secs_f64()
            .round() as u64;
        for r in &s.summary.timeline {
            let m = rows.entry(r.t + shift).or_insert_with(|| TimelineRow {
                t: r.t + shift,
                ..TimelineRow::default()
            });
            add_row(m, r);
            for (phase, l) in &r.latency {
                let err = |message: String| MergeError::Histogram {
                    source_name: s.source.clone(),
                    phase: format!("{phase} (timeline, second {})", r.t),
                    message,
                };
                let h = l.decode().map_err(|e| err(e.to_string()))?;
                latency
                    .entry((r.t + shift, phase.clone()))
                    .or_insert_with(new_histogram)
                    .add(&h)
                    .map_err(|e| err(format!("cannot add the histogram: {e:?}")))?;
            }
        }
    }
    for ((t, phase), h) in latency {
        if let Some(row) = rows.get_mut(&t) {
            row.latency
                .insert(phase, IntervalLatency::from_histogram(&h));
        }
    }
    Ok(rows.into_values().collect())
}

/// Adds one shard's counters of a second to the merged row of that second.
fn add_row(m: &mut TimelineRow, r: &TimelineRow) {
    m.connects += r.connects;
    m.handshakes += r.handshakes;
    m.sends += r.sends;
    // The mean over the shards' acknowledgements of this second, weighted by count.
    m.ack_mean_us = (m.ack_mean_us * m.acks + r.ack_mean_us * r.acks)
        .checked_div(m.acks + r.acks)
        .unwrap_or(0);
    m.acks += r.acks;
    // Each shard plans its own share: the fleet's plan is their sum.
    let add = |a: Option<f64>, b: Option<f64>| a.map_or(b, |a| Some(a + b.unwrap_or(0.0)));
    m.planned_connects = add(m.planned_connects, r.planned_connects);
    m.planned_sends = add(m.planned_sends, r.planned_sends);
    m.lag_us = m.lag_us.max(r.lag_us);
    m.errors += r.errors;
    for (k, n) in &r.errors_by_kind {
        *m.errors_by_kind.entry(k.clone()).or_default() += n;
    }
    m.active += r.active;
    m.cpu += r.cpu;
    m.rss_kib += r.rss_kib;
}

fn shard_run(s: &ShardSummary) -> ShardRun {
    let x = &s.summary;
    ShardRun {
        // Invariant: check_shards refused summaries without a shard.
        #[allow(clippy::unwrap_used)]
        shard: x.shard.clone().unwrap(),
        source: s.source.clone(),
        run_id: x.run_id.clone(),
        started_at: x.started_at.clone(),
        duration_secs: x.duration_secs,
        status: x.status.clone(),
        devices: x.counts.devices,
        generator: x.generator.clone(),
    }
}

/// The scenario's thresholds, from the resolved scenario in the summary.
fn thresholds(s: &ShardSummary) -> Result<Vec<Threshold>, MergeError> {
    let err = |message: String| MergeError::Thresholds {
        source_name: s.source.clone(),
        message,
    };
    let Some(table) = s.summary.scenario.get("thresholds") else {
        return Ok(Vec::new());
    };
    let table = table
        .as_object()
        .ok_or_else(|| err("is not a table of metric = condition".into()))?;
    table
        .iter()
        .map(|(name, condition)| {
            let c = condition
                .as_str()
                .ok_or_else(|| err(format!("{name}: {condition} is not a condition string")))?;
            Threshold::parse(name, c).map_err(|e| err(e.to_string()))
        })
        .collect()
}

/// Not-accepted outcomes summed over the shards.
fn outcomes(shards: &[ShardSummary]) -> Vec<(String, u64)> {
    let mut all: BTreeMap<String, u64> = BTreeMap::new();
    for s in shards {
        for (k, n) in &s.summary.outcomes {
            *all.entry(k.clone()).or_default() += n;
        }
    }
    all.into_iter().collect()
}
