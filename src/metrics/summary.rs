//! The frozen result of a run: what `report` renders and what `summary.json` holds.

use serde::{Deserialize, Serialize};

use super::histogram::{encode_histogram, LatencyHistogram};
use super::{FailureKind, Phase, Rates, ThresholdResult, TimelineRow};

/// Version of the `summary.json` layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Whether the run did all it planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunStatus {
    /// Every device ran its schedule to the end.
    Complete,
    /// The run was stopped early; the numbers cover what was measured until then.
    Partial {
        /// Why it stopped (interrupt, deadline, fault).
        reason: String,
    },
}

/// What a run's exit status says, and why: the headline of every report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Some checks failed (exit 1).
    Failed {
        /// What failed: threshold names with their conditions, lost messages.
        checks: Vec<String>,
    },
    /// The run was cut short (exit 1); its checks are judged on what it measured.
    Partial {
        /// Why it stopped.
        reason: String,
        /// What failed besides, as for `Failed`.
        checks: Vec<String>,
    },
    /// The run did all it planned and every check passed (exit 0).
    Passed,
}

impl Verdict {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        *self == Self::Passed
    }
}

/// Session and message totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Devices in the fleet (this shard's share).
    pub devices: u64,
    /// Sessions that began a TCP connect.
    pub sessions_attempted: u64,
    /// Sessions that reached the protocol's connected state.
    pub sessions_connected: u64,
    /// Sessions that failed.
    pub sessions_failed: u64,
    /// TLS handshakes completed.
    pub handshakes: u64,
    /// Messages written.
    pub messages_sent: u64,
    /// Messages acknowledged by the hub.
    pub messages_acked: u64,
    /// Messages written and never acknowledged.
    pub messages_unacked: u64,
    /// Payload bytes written.
    pub bytes_sent: u64,
    /// Connects that began later than scheduled.
    pub late_connects: u64,
    /// Reconnect attempts after failed sessions.
    #[serde(default)]
    pub reconnects: u64,
    /// Reconnect attempts that connected again (the rest did not).
    #[serde(default)]
    pub reconnects_connected: u64,
    /// Devices whose every session failed before connecting (apart from failed attempts).
    #[serde(default)]
    pub devices_never_connected: u64,
    /// Sends that began later than scheduled.
    pub late_sends: u64,
}

/// One phase's latency distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseSummary {
    /// Stable phase name, e.g. `tls_handshake`.
    pub name: String,
    /// Samples recorded.
    pub count: u64,
    /// Smallest sample, µs.
    pub min_us: u64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Largest sample, µs.
    pub max_us: u64,
    /// The histogram itself: HdrHistogram V2, deflate-compressed, base64.
    pub histogram: String,
}

impl PhaseSummary {
    /// Summarises a histogram of `phase`.
    pub fn new(phase: Phase, h: &LatencyHistogram) -> Self {
        Self::from_histogram(phase.name(), h)
    }

    /// Summarises a histogram under any name.
    pub fn from_histogram(name: &str, h: &LatencyHistogram) -> Self {
        Self {
            name: name.to_owned(),
            count: h.len(),
            min_us: h.min(),
            mean_us: (h.mean() * 10.0).round() / 10.0,
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            histogram: encode_histogram(h),
        }
    }
}

/// Failures of one kind in one phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureSummary {
    /// Phase name.
    pub phase: String,
    /// Failure kind name.
    pub kind: String,
    /// How many.
    pub count: u64,
    /// The first message seen of this kind.
    pub sample: String,
    /// The first distinct devices that failed so (at most 20), by id.
    #[serde(default)]
    pub devices: Vec<String>,
    /// How many more distinct devices failed so than `devices` lists.
    #[serde(default)]
    pub devices_more: u64,
}

impl FailureSummary {
    /// Whether this entry is of `kind`.
    pub fn is(&self, kind: FailureKind) -> bool {
        self.kind == kind.name()
    }
}

/// The hub's own count of what it received, compared with what the generator saw acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubAccounting {
    /// Messages the hub counted as received from this run's devices.
    pub received: u64,
    /// Messages the generator saw acknowledged.
    pub acked: u64,
    /// Acknowledged messages the hub did not count, summed over devices (must be 0).
    pub lost: u64,
    /// Devices with at least one lost message, first few.
    pub lost_devices: Vec<String>,
    /// Sessions the hub refused, by reason.
    pub refused: Vec<(String, u64)>,
    /// Sessions the hub disconnected and requests it refused for throttling, by its own count
    /// (absent from summaries written before it was counted).
    #[serde(default)]
    pub throttled: Option<u64>,
}

/// How the generator itself fared: so nobody mistakes a generator limit for a hub limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GeneratorHealth {
    /// User CPU seconds of the generator process during the run.
    pub cpu_user_secs: f64,
    /// System CPU seconds of the generator process during the run.
    pub cpu_system_secs: f64,
    /// Cores available to the process.
    pub cores: u32,
    /// Mean CPU use over the run as a fraction of all cores (1.0 = every core busy).
    pub cpu_utilisation: f64,
    /// Peak resident set size, KiB.
    pub peak_rss_kib: u64,
    /// Peak concurrently open sessions (counted as sessions open, not sampled).
    pub peak_sessions: u64,
    /// Resident memory per open session at the peak, KiB (RSS above the pre-run baseline).
    pub rss_per_session_kib: Option<f64>,
    /// 99th percentile of timer lag (how late a 100 ms ticker fired), µs; `None` when the
    /// ticker never fired (a run shorter than one tick).
    pub timer_lag_p99_us: Option<u64>,
    /// Largest timer lag, µs.
    pub timer_lag_max_us: u64,
    /// 99th percentile of how long a spawned session task waited before it first ran, µs.
    pub task_start_lag_p99_us: u64,
    /// Largest task-start lag, µs.
    pub task_start_lag_max_us: u64,
    /// Whether the generator was saturated (CPU or lag beyond the thresholds below).
    pub saturated: bool,
    /// What made it saturated, in words.
    pub saturation_reasons: Vec<String>,
    /// The host the generator ran on (its hostname), so that merged shards count each host's
    /// cores once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Layout version of this document.
    pub schema_version: u32,
    /// The fleetbench version that wrote it.
    pub tool_version: String,
    /// Scenario name.
    pub scenario_name: String,
    /// The resolved scenario (every default filled in).
    pub scenario: serde_json::Value,
    /// Whether the run completed.
    pub status: RunStatus,
    /// Start of the run, RFC 3339 UTC.
    pub started_at: String,
    /// Wall-clock length of the run, seconds.
    pub duration_secs: f64,
    /// Totals.
    pub counts: RunCounts,
    /// Connected sessions per second achieved: `rates.connects.per_sec` (0 when fewer than two).
    pub connects_per_sec: f64,
    /// Acknowledged messages per second achieved: `rates.acks.per_sec` (0 when fewer than two).
    pub acks_per_sec: f64,
    /// Connects, sends and acknowledgements: achieved and planned rates over their spans.
    #[serde(default)]
    pub rates: Rates,
    /// Latency per phase.
    pub phases: Vec<PhaseSummary>,
    /// Failures by phase and kind.
    pub failures: Vec<FailureSummary>,
    /// Messages the hub did not accept, by outcome and condition (AMQP rejected, released,
    /// modified).
    #[serde(default)]
    pub outcomes: Vec<(String, u64)>,
    /// The hub's accounting of this run: the embedded hub's, or a fleetbench hub's asked at
    /// the end of the run (`[target] accounts`); `None` for any other target.
    pub hub: Option<HubAccounting>,
    /// A verifying receiver's accounting, when `[verify]` ran one.
    #[serde(default)]
    pub delivery: Option<super::Delivery>,
    /// The generator's own health (of all hosts together, for a merge).
    pub generator: GeneratorHealth,
    /// A merge's generator health per host (shards on one host share its cores).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<GeneratorHealth>,
    /// One row per second.
    pub timeline: Vec<TimelineRow>,
    /// Evidence that the hub throttled the run, if any.
    #[serde(default)]
    pub throttling: Option<super::Throttling>,
    /// The scenario's thresholds judged on this summary, then the default checks it did not
    /// override (`default: true`).
    #[serde(default)]
    pub thresholds: Vec<ThresholdResult>,
    /// The verdict that the exit status reports ([`Summary::judge`] when the summary was made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// SHA-256 of the CA certificate that signed the devices (upper-case hex): shards of one
    /// fleet must share it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_fingerprint: Option<String>,
    /// Which shard of the fleet this run was, when it was one of several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// The run's id (16 lowercase hex characters), which its messages carry as the
    /// `fleetbench-run` property; absent in a merge (each shard's is in `shards`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The shards a merged summary was made from, by shard index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardRun>,
    /// Bytes and round trips per TLS handshake, full and resumed apart (absent in merges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<super::HandshakeSummary>,
    /// Client and server CPU over the run and per handshake (absent in merges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<super::CpuSummary>,
}

/// One shard's place in the fleet and how its start lined up with the others'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Shard index K, from 0.
    pub index: u64,
    /// Shard count N.
    pub count: u64,
    /// The shared start instant asked for (`--start-at`), RFC 3339 UTC.
    pub start_at: Option<String>,
    /// When the schedule actually began minus `start_at`, milliseconds, by this host's clock
    /// (positive: late). It shows a shard that was ready too late or a slow timer; it cannot show
    /// this host's clock error against other hosts, which is whatever NTP leaves.
    pub start_offset_ms: Option<f64>,
}

/// A shard of a merged summary: its identity, timing, status and generator health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRun {
    /// Index and count, and the start synchronisation.
    pub shard: ShardInfo,
    /// Where the shard's summary came from (file, or file:line for a log).
    pub source: String,
    /// The shard's run id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The shard's start, RFC 3339 UTC.
    pub started_at: String,
    /// The shard's length, seconds.
    pub duration_secs: f64,
    /// Whether the shard completed.
    pub status: RunStatus,
    /// Devices the shard ran.
    pub devices: u64,
    /// The shard generator's own health.
    pub generator: GeneratorHealth,
}

impl Summary {
    /// The phase called `name`, if it has samples.
    pub fn phase(&self, name: &str) -> Option<&PhaseSummary> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// Whether every threshold passed (true when there are none).
    pub fn thresholds_passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed)
    }

    /// The verdict: partial when the run was cut short, failed when a check failed (a threshold,
    /// a default check, acknowledged messages the hub did not receive), passed otherwise.
    pub fn judge(&self) -> Verdict {
        let mut checks: Vec<String> = self
            .thresholds
            .iter()
            .filter(|t| !t.passed)
            .map(|t| format!("{} {}", t.metric, t.condition))
            .collect();
        if let Some(lost) = self.hub.as_ref().map(|h| h.lost).filter(|l| *l > 0) {
            checks.push(format!("{lost} acknowledged messages lost"));
        }
        checks.extend(self.delivery.iter().flat_map(super::Delivery::failures));
        match &self.status {
            RunStatus::Partial { reason } => Verdict::Partial {
                reason: reason.clone(),
                checks,
            },
            RunStatus::Complete if checks.is_empty() => Verdict::Passed,
            RunStatus::Complete => Verdict::Failed { checks },
        }
    }

    /// Failures summed over phases for `kind`.
    pub fn failures_of(&self, kind: FailureKind) -> u64 {
        self.failures
            .iter()
            .filter(|f| f.is(kind))
            .map(|f| f.count)
            .sum()
    }
}
