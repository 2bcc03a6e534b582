//! A finished run frozen into its [`Summary`], and the hub's accounting of it: the embedded
//! hub's, read in process, or a `hub serve`'s, asked over its metrics listener ([`remote`]).

pub(super) mod remote;

use crate::hub::accounts::RunAccount;
use crate::hub::Hub;
use crate::load::FleetResult;
use crate::metrics::{
    GeneratorHealth, HubAccounting, PhaseSummary, Recorder, RunCounts, Summary, SCHEMA_VERSION,
};
use crate::pki::DeviceIds;
use crate::scenario::Plan;

/// Compares what the embedded hub counted with what the generator saw acknowledged, device by
/// device.
pub fn account(hub: &Hub, ids: &DeviceIds, result: &FleetResult) -> HubAccounting {
    let mut acc = compare(|id| hub.registry.received(id), ids, result);
    acc.refused = hub.stats.refusals();
    acc.throttled = Some(
        hub.stats
            .throttle_refusals
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    acc
}

/// Asks the hub's accounting at `addr` before the load starts: its refusals so far, and an early
/// warning when it cannot be reached (the run goes on).
pub(super) async fn ask_hub_before(addr: &str, run_id: &str) -> Option<RunAccount> {
    remote::fetch(addr, run_id)
        .await
        .map_err(|e| tracing::warn!("{e}; the run goes on, and asks again at its end"))
        .ok()
}

/// Asks the hub's accounting at `addr` what it received of the run and compares; `None` (the
/// hub's count unknown, said on stderr) when it cannot be reached.
pub(super) async fn ask_hub_after(
    addr: &str,
    run_id: &str,
    before: Option<&RunAccount>,
    ids: &DeviceIds,
    result: &FleetResult,
) -> Option<HubAccounting> {
    // No waiting for the hub to catch up: both hubs count a message before acknowledging it
    // (src/hub/mqtt.rs, src/hub/amqp.rs), so every acknowledged message is counted by now.
    match remote::fetch(addr, run_id).await {
        Ok(after) => Some(account_remote(before, &after, ids, result)),
        Err(e) => {
            tracing::warn!(
                "{e}: the hub's count of this run is unknown (summary.json \"hub\": null); \
                 what the generator measured is reported"
            );
            None
        }
    }
}

/// Compares what a hub in another process counted of this run (`after`, asked at the end) with
/// what the generator saw acknowledged, device by device. Refusals and throttling carry no run
/// id: they are the hub's between `before` (asked before the load started) and `after`, so
/// they include other clients' (and other shards') sessions refused meanwhile.
pub fn account_remote(
    before: Option<&RunAccount>,
    after: &RunAccount,
    ids: &DeviceIds,
    result: &FleetResult,
) -> HubAccounting {
    let mut acc = compare(
        |id| after.devices.get(id).copied().unwrap_or(0),
        ids,
        result,
    );
    let earlier = |reason: &str| {
        before
            .and_then(|b| b.hub_refused.iter().find(|(r, _)| r == reason))
            .map_or(0, |(_, n)| *n)
    };
    acc.refused = after
        .hub_refused
        .iter()
        .map(|(r, n)| (r.clone(), n.saturating_sub(earlier(r))))
        .filter(|(_, n)| *n > 0)
        .collect();
    acc.throttled = Some(
        after
            .hub_throttled
            .saturating_sub(before.map_or(0, |b| b.hub_throttled)),
    );
    acc
}

/// Compares what a hub counted per device (`received`) with what the generator saw
/// acknowledged.
fn compare(received: impl Fn(&str) -> u64, ids: &DeviceIds, result: &FleetResult) -> HubAccounting {
    let mut acc = HubAccounting::default();
    // Only the devices that ran: the others sent nothing (and a large fleet is not walked).
    for &(i, acked) in &result.acked {
        let id = ids.id(i);
        let received = received(&id);
        let acked = u64::from(acked);
        acc.received += received;
        acc.acked += acked;
        if acked > received {
            acc.lost += acked - received;
            if acc.lost_devices.len() < 10 {
                acc.lost_devices.push(id);
            }
        }
    }
    acc
}

/// Freezes a run into its summary. `plan` is the fleet's; `planned_connects` the connect rate
/// that this run (the fleet, or one shard of it) scheduled.
pub fn summarize(
    plan: &Plan,
    recorder: &Recorder,
    result: &FleetResult,
    hub: Option<HubAccounting>,
    devices: u64,
    planned_connects: Option<f64>,
) -> Summary {
    let s = recorder.snapshot();
    let c = &recorder.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let secs = result.elapsed.as_secs_f64().max(1e-9);
    let mut rates = recorder
        .spans
        .rates(s.sessions_connected, s.messages_sent, s.messages_acked);
    rates.connects.planned_per_sec = planned_connects;
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
            reconnects_connected: load(&c.reconnects_connected),
            devices_never_connected: load(&c.devices_never_connected),
            late_sends: load(&c.late_sends),
        },
        connects_per_sec: rates.connects.per_sec.unwrap_or(0.0),
        acks_per_sec: rates.acks.per_sec.unwrap_or(0.0),
        rates,
        phases: recorder
            .histograms()
            .iter()
            .map(|(p, h)| PhaseSummary::new(*p, h))
            .collect(),
        failures: recorder.failures(),
        outcomes: recorder.outcomes(),
        hub,
        delivery: None,
        generator: GeneratorHealth {
            host: hostname(),
            ..result.health.clone()
        },
        hosts: Vec::new(),
        timeline: result.timeline.clone(),
        thresholds: Vec::new(),
        verdict: None,
        ca_fingerprint: None,
        shard: None,
        run_id: None,
        shards: Vec::new(),
        throttling: None,
        handshake: recorder.wire.summary(),
        cpu: None,
    };
    let evidence = crate::metrics::ThrottleEvidence {
        cpu_ceiling: 0.9,
        throttled: summary.failures_of(crate::metrics::FailureKind::Throttled),
        hub_throttled: summary.hub.as_ref().and_then(|h| h.throttled),
    };
    summary.throttling = crate::metrics::detect_throttling(&summary.timeline, &evidence);
    summary.thresholds = crate::metrics::evaluate(&plan.thresholds, &summary);
    summary.verdict = Some(summary.judge());
    summary
}

/// This machine's name (the pod's, in Kubernetes), for telling merged shards' hosts apart.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}
