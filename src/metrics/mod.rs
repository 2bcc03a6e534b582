//! Measurement: what a run records on its hot path, and the frozen view of it.
//!
//! This module owns the [`Recorder`] that device tasks write into (atomic counters and sharded
//! HDR histograms, no global lock on the hot path), the [`Snapshot`] that progress display and the
//! timeline sampler read, and the [`Summary`] that reports are made from. It depends on nothing
//! else in the crate and never prints: presentation lives in `report`.

mod cpu;
mod cpu_split;
mod delivery;
mod failed;
mod handshake;
mod histogram;
mod merge;
mod process;
mod rates;
mod spool;
mod summary;
mod threshold;
mod throttling;
mod timeline;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

pub use cpu::{process_cpu, CpuError, CpuProbe, CpuSpan, CpuSummary, ServerCpu, HUB_THREAD};
pub use cpu_split::{CpuKinds, CpuStat, CpuTally, HandshakeCpu};
pub use delivery::{Delivery, DeviceDelivery, MAX_DELIVERY_DEVICES};
pub use failed::{FailedSession, MAX_DEVICE_IDS, MAX_FAILED_SESSIONS};
pub use handshake::{
    HandshakeKind, HandshakeRecorder, HandshakeSample, HandshakeSummary, WireHistograms, WireStat,
};
pub use histogram::{
    decode_histogram, encode_histogram, micros, new_histogram, LatencyHistogram, PhaseHistograms,
};
pub use merge::{merge, MergeError, ShardSummary};
pub use process::ProcessSample;
pub use rates::{per_sec, Rate, Rates, Spans};
pub use summary::{
    FailureSummary, GeneratorHealth, HubAccounting, PhaseSummary, RunCounts, RunStatus, ShardInfo,
    ShardRun, Summary, Verdict, SCHEMA_VERSION,
};
pub use threshold::{
    evaluate, with_defaults, Metric, Op, Stat, Threshold, ThresholdError, ThresholdResult, Unit,
    DEFAULT_CHECKS,
};
pub use throttling::{
    detect as detect_throttling, mqtt5_throttling, Evidence as ThrottleEvidence, PinnedRate,
    Throttling, MQTT5_THROTTLING,
};
pub use timeline::{spans as timeline_spans, IntervalLatency, Timeline, TimelineRow};

/// A timed phase of a device session. Each has its own histogram.
///
/// `*Response` phases are measured from the *intended* start (the schedule's arrival time), the
/// plain ones from the actual start ("service time"); see wrk2 and coordinated omission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// SYN to established.
    TcpConnect,
    /// The mutual TLS handshake (full, or when resumption was not offered).
    TlsHandshake,
    /// A TLS handshake that resumed an earlier session.
    TlsResumed,
    /// The WebSocket upgrade inside the TLS stream: GET sent to 101 received.
    WsUpgrade,
    /// MQTT CONNECT written to CONNACK received.
    MqttConnect,
    /// AMQP header exchange and OPEN (and SASL when used).
    AmqpOpen,
    /// AMQP BEGIN and the sender ATTACH.
    AmqpAttach,
    /// Intended connect time to the session being ready to send (response time of a connect).
    ConnectResponse,
    /// MQTT PUBLISH written to PUBACK received.
    PublishAck,
    /// AMQP transfer written to the disposition that settles it.
    SendAck,
    /// Intended send time to acknowledgement (response time of a send). In the closed model,
    /// corrected for coordinated omission: see [`Recorder::record_closed_loop`].
    SendResponse,
    /// The closed model's response times as measured, without that correction.
    SendResponseUncorrected,
    /// A message's send instant to its delivery to a verifying receiver (same host, same
    /// clock).
    Deliver,
    /// How late connects started against their schedule.
    ConnectLag,
    /// How late sends started against their schedule.
    SendLag,
}

impl Phase {
    /// Every phase, in report order.
    pub const ALL: [Self; 15] = [
        Self::TcpConnect,
        Self::TlsHandshake,
        Self::TlsResumed,
        Self::WsUpgrade,
        Self::MqttConnect,
        Self::AmqpOpen,
        Self::AmqpAttach,
        Self::ConnectResponse,
        Self::PublishAck,
        Self::SendAck,
        Self::SendResponse,
        Self::SendResponseUncorrected,
        Self::Deliver,
        Self::ConnectLag,
        Self::SendLag,
    ];

    /// The stable name used in reports and `summary.json`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::TcpConnect => "tcp_connect",
            Self::TlsHandshake => "tls_handshake",
            Self::TlsResumed => "tls_resumed",
            Self::WsUpgrade => "ws_upgrade",
            Self::MqttConnect => "mqtt_connect",
            Self::AmqpOpen => "amqp_open",
            Self::AmqpAttach => "amqp_attach",
            Self::ConnectResponse => "connect_response",
            Self::PublishAck => "publish_ack",
            Self::SendAck => "send_ack",
            Self::SendResponse => "send_response",
            Self::SendResponseUncorrected => "send_response_uncorrected",
            Self::Deliver => "deliver",
            Self::ConnectLag => "connect_start_lag",
            Self::SendLag => "send_start_lag",
        }
    }

    /// Looks a phase up by its stable name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Why a session or a message failed. Counted per phase, with one sample message per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// The peer closed the connection unexpectedly.
    Closed,
    /// TCP connect failed (refused, unreachable, out of local ports).
    Connect,
    /// The TLS handshake failed (alert, bad certificate, protocol error).
    Handshake,
    /// The peer spoke the protocol wrongly, or we could not frame a packet.
    Protocol,
    /// The hub refused the session or message (CONNACK code, AMQP error condition, rejected outcome).
    Refused,
    /// The hub throttled (an IoT Hub throttling condition or disconnect).
    Throttled,
    /// A phase did not finish within its timeout.
    Timeout,
    /// The run ended (deadline or interrupt) before the phase finished.
    Unfinished,
    /// The WebSocket upgrade was refused (an HTTP status, the wrong subprotocol).
    Upgrade,
}

impl FailureKind {
    /// Every kind, in name order (the order of `Snapshot::errors_by_kind`).
    pub const ALL: [Self; 9] = [
        Self::Closed,
        Self::Connect,
        Self::Handshake,
        Self::Protocol,
        Self::Refused,
        Self::Throttled,
        Self::Timeout,
        Self::Unfinished,
        Self::Upgrade,
    ];

    /// The stable name used in reports and `summary.json`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Connect => "connect",
            Self::Handshake => "handshake",
            Self::Protocol => "protocol",
            Self::Refused => "refused",
            Self::Throttled => "throttled",
            Self::Timeout => "timeout",
            Self::Unfinished => "unfinished",
            Self::Upgrade => "upgrade",
        }
    }
}

/// Plain counters of a run. All relaxed atomics: they are statistics, not synchronisation.
#[derive(Debug, Default)]
pub struct Counters {
    /// Device identities (key, certificate, TLS configuration) minted so far.
    pub identities_minted: AtomicU64,
    /// Sessions that began a TCP connect.
    pub sessions_attempted: AtomicU64,
    /// Sessions that reached the protocol's connected state (CONNACK 0, AMQP attach).
    pub sessions_connected: AtomicU64,
    /// Sessions that failed before or after connecting.
    pub sessions_failed: AtomicU64,
    /// Sessions connected right now.
    pub sessions_active: AtomicU64,
    /// The most sessions connected at once so far.
    pub sessions_peak: AtomicU64,
    /// Handshakes completed (TLS), full and resumed.
    pub handshakes: AtomicU64,
    /// Messages written to the wire.
    pub messages_sent: AtomicU64,
    /// Messages the hub acknowledged (PUBACK, accepted disposition; QoS 0 counts on write).
    pub messages_acked: AtomicU64,
    /// Messages written but never acknowledged (connection lost, timeout, rejected, run ended).
    pub messages_unacked: AtomicU64,
    /// Payload bytes written.
    pub bytes_sent: AtomicU64,
    /// Reconnect attempts after a failed session.
    pub reconnects: AtomicU64,
    /// Reconnect attempts that connected again.
    pub reconnects_connected: AtomicU64,
    /// Devices whose every session failed before connecting.
    pub devices_never_connected: AtomicU64,
    /// Sum of acknowledgement latencies, µs.
    pub ack_latency_us: AtomicU64,
    /// Connects that started later than their scheduled time by more than the lateness tolerance.
    pub late_connects: AtomicU64,
    /// Sends that started later than their scheduled time by more than the lateness tolerance.
    pub late_sends: AtomicU64,
}

/// Adds one to an atomic counter.
pub fn incr(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// Counts a session becoming active, and the peak of active sessions with it.
    pub fn session_opened(&self) {
        let now = self.sessions_active.fetch_add(1, Ordering::Relaxed) + 1;
        self.sessions_peak.fetch_max(now, Ordering::Relaxed);
    }

    /// Counts an active session ending.
    pub fn session_closed(&self) {
        self.sessions_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The hot-path sink of a run: every device task writes here.
#[derive(Debug)]
pub struct Recorder {
    phases: PhaseHistograms,
    /// The plain counters.
    pub counters: Counters,
    /// When connects, sends and acknowledgements were due and done: the rates' spans.
    pub spans: Spans,
    failures: Mutex<BTreeMap<(Phase, FailureKind), FailureEntry>>,
    failed: Mutex<failed::FailedLog>,
    lateness_tolerance: Duration,
    task_start: Mutex<LatencyHistogram>,
    /// Messages the hub did not accept, by outcome and condition (rare: one lock is fine).
    outcomes: Mutex<BTreeMap<String, u64>>,
    /// Bytes and round trips per TLS handshake.
    pub wire: HandshakeRecorder,
    /// The phases whose histograms were made before the run ([`Self::prepare`]).
    prepared: Mutex<Vec<Phase>>,
}

#[derive(Debug, Clone)]
struct FailureEntry {
    count: u64,
    sample: String,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder with one histogram shard per available core (times two).
    pub fn new() -> Self {
        let shards = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
        Self {
            phases: PhaseHistograms::new(shards),
            counters: Counters::default(),
            spans: Spans::default(),
            failures: Mutex::new(BTreeMap::new()),
            failed: Mutex::new(failed::FailedLog::new()),
            // Scheduled starts land within tens of microseconds on an idle generator (the precise
            // clock of `load::clock`), but a shared machine delays a thread's wake-up by a
            // millisecond now and then; lateness beyond 2 ms is the generator falling behind.
            lateness_tolerance: Duration::from_millis(2),
            task_start: Mutex::new(new_histogram()),
            outcomes: Mutex::new(BTreeMap::new()),
            wire: HandshakeRecorder::default(),
            prepared: Mutex::new(Vec::new()),
        }
    }

    /// Makes the histograms of the phases a run will record before it starts (each shard's
    /// is 184 KB to zero): a phase not prepared gets its histograms at its first sample, on
    /// the path of the session that records it.
    pub fn prepare(&self, phases: impl IntoIterator<Item = Phase>) {
        let mut prepared = self.prepared.lock();
        for phase in phases {
            if !prepared.contains(&phase) {
                self.phases.prepare(phase.index());
                prepared.push(phase);
            }
        }
    }

    /// The phases with samples that were not prepared ([`Self::prepare`]): empty when a run
    /// made, before it started, the histograms of every phase it recorded.
    pub fn unprepared(&self) -> Vec<Phase> {
        let prepared = self.prepared.lock();
        Phase::ALL
            .into_iter()
            .filter(|p| !prepared.contains(p) && !self.phases.is_empty(p.index()))
            .collect()
    }

    /// Records one latency sample of `phase`; `shard` spreads contention (use the device index).
    pub fn record(&self, phase: Phase, shard: usize, value: Duration) {
        self.phases.record(phase.index(), shard, value);
    }

    /// Records the response time of a scheduled action: from `intended` to `done`, and counts
    /// it as late when `started` was behind `intended` by more than the tolerance. The instants
    /// also extend the rates' spans, so the hot path reads no clock of its own here.
    pub fn record_scheduled(&self, phase: Phase, shard: usize, at: Scheduled) {
        let total = at.done.saturating_duration_since(at.intended);
        let lateness = at.started.saturating_duration_since(at.intended);
        self.phases.record(phase.index(), shard, total);
        match phase {
            Phase::ConnectResponse => self.spans.connected(at.intended, at.done),
            _ => self.spans.acked(at.intended, at.done),
        }
        let (lag, counter) = match phase {
            Phase::ConnectResponse => (Phase::ConnectLag, &self.counters.late_connects),
            _ => (Phase::SendLag, &self.counters.late_sends),
        };
        self.phases.record(lag.index(), shard, lateness);
        if lateness > self.lateness_tolerance {
            incr(counter);
        }
    }

    /// Records the response time of a closed-loop send (the model in which a message is due
    /// `think` after the last acknowledgement), as [`Self::record_scheduled`] does, corrected for
    /// coordinated omission: a device that waited `total` sent nothing meanwhile, so the sends it
    /// would have made every `expected_interval` are back-filled into `send_response` (HdrHistogram's
    /// `record_correct`: `total - i`, `total - 2i`, ... down to `i`). The measured values alone go
    /// to `send_response_uncorrected`. A zero interval corrects nothing.
    pub fn record_closed_loop(&self, shard: usize, at: Scheduled, expected_interval: Duration) {
        self.record_scheduled(Phase::SendResponseUncorrected, shard, at);
        let total = at.done.saturating_duration_since(at.intended);
        self.phases
            .record_correct(Phase::SendResponse.index(), shard, total, expected_interval);
    }

    /// Records how long a spawned session task waited before it first ran.
    pub fn record_task_start(&self, lag: Duration) {
        self.task_start.lock().saturating_record(micros(lag));
    }

    /// The task-start lag histogram.
    pub fn task_start_lag(&self) -> LatencyHistogram {
        self.task_start.lock().clone()
    }

    /// Counts a failure of `kind` during `phase`, keeping the first message as a sample.
    pub fn fail(&self, phase: Phase, kind: FailureKind, message: impl FnOnce() -> String) {
        self.fail_many(phase, kind, 1, message);
    }

    /// Counts `n` failures of `kind` during `phase` of session `attempt` (1 for the first) of
    /// `device`, and keeps them as one row for `failures.csv` and the failed device ids.
    pub fn fail_device(
        &self,
        (phase, kind, n): (Phase, FailureKind, u64),
        device: &str,
        attempt: u32,
        message: &str,
    ) {
        self.fail_many(phase, kind, n, || message.to_owned());
        self.failed
            .lock()
            .add(phase, kind, device, attempt, message);
    }

    /// Times the failed sessions of `failures.csv` from `start` (the run's start) on.
    pub fn failures_from(&self, start: std::time::Instant) {
        self.failed.lock().started = start;
    }

    /// The failed sessions kept for `failures.csv` (at most [`MAX_FAILED_SESSIONS`]), and how
    /// many more were left out.
    pub fn failed_sessions(&self) -> (Vec<FailedSession>, u64) {
        self.failed.lock().sessions()
    }

    /// Counts `n` failures of one kind at once.
    pub fn fail_many(
        &self,
        phase: Phase,
        kind: FailureKind,
        n: u64,
        message: impl FnOnce() -> String,
    ) {
        let mut failures = self.failures.lock();
        failures
            .entry((phase, kind))
            .and_modify(|e| e.count += n)
            .or_insert_with(|| FailureEntry {
                count: n,
                sample: message(),
            });
    }

    /// A cheap copy of the counters for progress display and the timeline.
    pub fn snapshot(&self) -> Snapshot {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut errors_by_kind = [0; FailureKind::ALL.len()];
        for ((_, kind), e) in self.failures.lock().iter() {
            errors_by_kind[*kind as usize] += e.count;
        }
        Snapshot {
            identities_minted: load(&c.identities_minted),
            sessions_attempted: load(&c.sessions_attempted),
            sessions_connected: load(&c.sessions_connected),
            sessions_failed: load(&c.sessions_failed),
            sessions_active: load(&c.sessions_active),
            handshakes: load(&c.handshakes),
            messages_sent: load(&c.messages_sent),
            messages_acked: load(&c.messages_acked),
            messages_unacked: load(&c.messages_unacked),
            errors: errors_by_kind.iter().sum(),
            errors_by_kind,
            ack_latency_us: load(&c.ack_latency_us),
        }
    }

    /// Merged histograms per phase (only phases with samples).
    pub fn histograms(&self) -> Vec<(Phase, LatencyHistogram)> {
        self.histograms_reusing(&mut Vec::new())
    }

    /// [`Self::histograms`], merged into histograms taken from `spare` while it has any (their
    /// counts are replaced), so that a caller asking every second does not allocate and zero
    /// 184 KB per phase each time.
    pub fn histograms_reusing(
        &self,
        spare: &mut Vec<LatencyHistogram>,
    ) -> Vec<(Phase, LatencyHistogram)> {
        Phase::ALL
            .into_iter()
            // The timeline asks every second: phases without samples (most of them in a
            // given run) are skipped without a merge.
            .filter(|p| !self.phases.is_empty(p.index()))
            .map(|p| match spare.pop() {
                Some(mut h) => {
                    self.phases.merge_into(p.index(), &mut h);
                    (p, h)
                }
                None => (p, self.phases.merged(p.index())),
            })
            .collect()
    }

    /// Counts a message the hub did not accept, by its outcome and condition, e.g.
    /// `rejected: amqp:link:message-size-exceeded` or `released`.
    pub fn not_accepted(&self, outcome: &str) {
        *self.outcomes.lock().entry(outcome.to_owned()).or_default() += 1;
    }

    /// Messages not accepted, by outcome and condition.
    pub fn outcomes(&self) -> Vec<(String, u64)> {
        self.outcomes
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Failures counted so far, by phase and kind.
    pub fn failures(&self) -> Vec<FailureSummary> {
        let failed = self.failed.lock();
        self.failures
            .lock()
            .iter()
            .map(|((phase, kind), e)| {
                let (devices, devices_more) = failed.devices(*phase, *kind);
                FailureSummary {
                    phase: phase.name().to_owned(),
                    kind: kind.name().to_owned(),
                    count: e.count,
                    sample: e.sample.clone(),
                    devices,
                    devices_more,
                }
            })
            .collect()
    }
}

/// The instants of one scheduled action (a connect, a send): when it was due, when it began,
/// when it was done (connected; acknowledged, or written when nothing acknowledges it).
#[derive(Debug, Clone, Copy)]
pub struct Scheduled {
    /// When the schedule wanted it.
    pub intended: tokio::time::Instant,
    /// When it began.
    pub started: tokio::time::Instant,
    /// When it was done.
    pub done: tokio::time::Instant,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// See [`Counters::identities_minted`].
    pub identities_minted: u64,
    /// See [`Counters::sessions_attempted`].
    pub sessions_attempted: u64,
    /// See [`Counters::sessions_connected`].
    pub sessions_connected: u64,
    /// See [`Counters::sessions_failed`].
    pub sessions_failed: u64,
    /// See [`Counters::sessions_active`].
    pub sessions_active: u64,
    /// See [`Counters::handshakes`].
    pub handshakes: u64,
    /// See [`Counters::messages_sent`].
    pub messages_sent: u64,
    /// See [`Counters::messages_acked`].
    pub messages_acked: u64,
    /// See [`Counters::messages_unacked`].
    pub messages_unacked: u64,
    /// Failures of every kind so far.
    pub errors: u64,
    /// Failures so far by kind, indexed like [`FailureKind::ALL`].
    pub errors_by_kind: [u64; FailureKind::ALL.len()],
    /// Sum of acknowledgement latencies so far, µs (for per-second means).
    pub ack_latency_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_names_round_trip_and_are_unique() {
        let mut names: Vec<_> = Phase::ALL.iter().map(|p| p.name()).collect();
        for p in Phase::ALL {
            assert_eq!(Phase::from_name(p.name()), Some(p));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Phase::ALL.len());
    }

    #[test]
    fn failure_kinds_are_listed_in_index_order() {
        for (i, k) in FailureKind::ALL.into_iter().enumerate() {
            assert_eq!(k as usize, i, "{}", k.name());
        }
    }

    #[test]
    fn failures_keep_the_first_sample_and_count_all() {
        let r = Recorder::new();
        r.fail(Phase::MqttConnect, FailureKind::Refused, || "first".into());
        r.fail(Phase::MqttConnect, FailureKind::Refused, || "second".into());
        let f = r.failures();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].count, 2);
        assert_eq!(f[0].sample, "first");
        assert_eq!(r.snapshot().errors, 2);
        assert_eq!(
            r.snapshot().errors_by_kind[FailureKind::Refused as usize],
            2
        );
    }

    #[test]
    fn a_closed_loop_stall_is_back_filled_at_the_expected_interval() {
        let r = Recorder::new();
        let ms = Duration::from_millis;
        let t0 = tokio::time::Instant::now();
        let took = |total| Scheduled {
            intended: t0,
            started: t0,
            done: t0 + total,
        };
        r.record_closed_loop(0, took(ms(1)), ms(100));
        r.record_closed_loop(0, took(ms(2000)), ms(100));
        r.record_closed_loop(0, took(ms(500)), Duration::ZERO);
        let h: BTreeMap<_, _> = r.histograms().into_iter().collect();
        let raw = &h[&Phase::SendResponseUncorrected];
        assert_eq!(raw.len(), 3);
        // 1 ms, then 2000, 1900, ..., 100 ms (20 values), then 500 ms uncorrected.
        let corrected = &h[&Phase::SendResponse];
        assert_eq!(corrected.len(), 1 + 20 + 1);
        assert_eq!(corrected.count_between(99_000, 101_000), 1);
        assert_eq!(h[&Phase::SendLag].len(), 3);
    }

    #[test]
    fn samples_from_many_shards_merge() {
        let r = Recorder::new();
        for i in 0..1000u64 {
            r.record(Phase::PublishAck, i as usize, Duration::from_micros(i + 1));
        }
        let h = r.histograms();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].1.len(), 1000);
    }

    #[test]
    fn prepared_phases_read_as_empty_and_a_phase_not_prepared_still_records() {
        let r = Recorder::new();
        r.prepare([Phase::TcpConnect, Phase::MqttConnect]);
        // Made, yet without samples: no histogram to report, nothing unprepared.
        assert!(r.histograms().is_empty());
        assert!(r.unprepared().is_empty());
        r.record(Phase::TcpConnect, 0, Duration::from_micros(300));
        r.record(Phase::PublishAck, 1, Duration::from_micros(700));
        r.record(Phase::PublishAck, 2, Duration::from_micros(900));
        assert_eq!(r.unprepared(), [Phase::PublishAck]);
        let h: BTreeMap<_, _> = r.histograms().into_iter().collect();
        assert_eq!(
            h.keys().copied().collect::<Vec<_>>(),
            [Phase::TcpConnect, Phase::PublishAck]
        );
        assert_eq!(h[&Phase::TcpConnect].len(), 1);
        assert_eq!(h[&Phase::PublishAck].len(), 2);
        assert_eq!(h[&Phase::PublishAck].max(), 900);
    }
}
