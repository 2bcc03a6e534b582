//! A finished run frozen into its [`Summary`], and the hub's accounting of it.

use crate::hub::Hub;
use crate::load::FleetResult;
use crate::metrics::{HubAccounting, PhaseSummary, Recorder, RunCounts, Summary, SCHEMA_VERSION};
use crate::pki::DeviceIds;
use crate::scenario::Plan;

/// Compares what the hub counted with what the generator saw acknowledged, device by device.
pub fn account(hub: &Hub, ids: &DeviceIds, result: &FleetResult) -> HubAccounting {
    let mut acc = HubAccounting::default();
    for (i, acked) in result.acked.iter().enumerate() {
        let id = ids.id(i);
        let received = hub.registry.received(&id);
        let acked = u64::from(*acked);
        acc.received += received;
        acc.acked += acked;
        if acked > received {
            acc.lost += acked - received;
            if acc.lost_devices.len() < 10 {
                acc.lost_devices.push(id);
            }
        }
    }
    acc.refused = hub.stats.refusals();
    acc.throttled = Some(
        hub.stats
            .throttle_refusals
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    acc
}

/// Freezes a run into its summary.
pub fn summarize(
    plan: &Plan,
    recorder: &Recorder,
    result: &FleetResult,
    hub: Option<HubAccounting>,
    devices: u64,
) -> Summary {
    let s = recorder.snapshot();
    let c = &recorder.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let secs = result.elapsed.as_secs_f64().max(1e-9);
    let mut summary = Summary {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        scenario_name: plan.name.clone(),
        scenario: plan.to_json(),
        status: result.status.clone(),
        started_at: humantime::format_rfc3339_millis(result.started_at).to_string(),
        duration_secs: (secs * 1000.0).round() / 1000.0,
        counts: RunCounts {
            devices,
            sessions_attempted: s.sessions_attempted,
            sessions_connected: s.sessions_connected,
            sessions_failed: s.sessions_failed,
            handshakes: s.handshakes,
            messages_sent: s.messages_sent,
            messages_acked: s.messages_acked,
            messages_unacked: s.messages_unacked,
            bytes_sent: load(&c.bytes_sent),
            late_connects: load(&c.late_connects),
            reconnects: load(&c.reconnects),
            late_sends: load(&c.late_sends),
        },
        connects_per_sec: connect_rate(&result.timeline, s.sessions_connected, secs),
        acks_per_sec: s.messages_acked as f64 / secs,
        phases: recorder
            .histograms()
            .iter()
            .map(|(p, h)| PhaseSummary::new(*p, h))
            .collect(),
        failures: recorder.failures(),
        outcomes: recorder.outcomes(),
        hub,
        generator: result.health.clone(),
        timeline: result.timeline.clone(),
        thresholds: Vec::new(),
        ca_fingerprint: None,
        shard: None,
        shards: Vec::new(),
        throttling: None,
    };
    let evidence = crate::metrics::ThrottleEvidence {
        cpu_ceiling: 0.9,
        throttled: summary.failures_of(crate::metrics::FailureKind::Throttled),
        hub_throttled: summary.hub.as_ref().and_then(|h| h.throttled),
    };
    summary.throttling = crate::metrics::detect_throttling(&summary.timeline, &evidence);
    summary.thresholds = crate::metrics::evaluate(&plan.thresholds, &summary);
    summary
}

/// Connected sessions per second over the seconds in which sessions connected (a run that
/// connects in one second and then sends for a minute connected at that second's rate, not at
/// a sixtieth of it); the whole run when the timeline is empty.
fn connect_rate(timeline: &[crate::metrics::TimelineRow], connected: u64, run_secs: f64) -> f64 {
    let mut seconds = timeline.iter().filter(|r| r.connects > 0).map(|r| r.t);
    match (seconds.next(), seconds.next_back()) {
        (Some(first), last) => connected as f64 / (last.unwrap_or(first) - first + 1) as f64,
        (None, _) => connected as f64 / run_secs,
    }
}
