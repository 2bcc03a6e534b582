//! Throughput and latency over time: a sampler copies the counters once per second, off the hot
//! path, and takes each phase's cumulative histogram, whose difference from the previous
//! second's is exactly that second's interval histogram.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::histogram::{decode_histogram, encode_histogram, HistogramCodecError};
use super::{FailureKind, LatencyHistogram, Phase, Snapshot};

/// One phase's latency in one interval, from that interval's own histogram (not from means).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalLatency {
    /// Samples recorded in the interval.
    pub count: u64,
    /// Median, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Largest sample, µs.
    pub max_us: u64,
    /// The interval's histogram: HdrHistogram V2 deflate, base64 (as in `phases[].histogram`).
    pub histogram: String,
}

impl IntervalLatency {
    /// The figures of an interval histogram, and the histogram itself encoded.
    pub fn from_histogram(h: &LatencyHistogram) -> Self {
        Self {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
            histogram: encode_histogram(h),
        }
    }

    /// The interval's histogram, decoded.
    pub fn decode(&self) -> Result<LatencyHistogram, HistogramCodecError> {
        decode_histogram(&self.histogram)
    }
}

/// One second of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Seconds since the start of the run (end of this interval).
    pub t: u64,
    /// Sessions that connected in this interval.
    pub connects: u64,
    /// TLS handshakes completed in this interval.
    pub handshakes: u64,
    /// Messages written in this interval.
    pub sends: u64,
    /// Messages acknowledged in this interval.
    pub acks: u64,
    /// Connects the plan scheduled in this interval, if it schedules them at a rate (not for
    /// a burst); filled in from the plan after the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_connects: Option<f64>,
    /// Sends the plan scheduled in this interval (open model; not for a closed model), each
    /// session sending from its planned connect; filled in from the plan after the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_sends: Option<f64>,
    /// Failures counted in this interval.
    pub errors: u64,
    /// Failures counted in this interval by kind name (kinds with none are left out).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Sessions open at the end of the interval.
    pub active: u64,
    /// Mean acknowledgement latency of the acknowledgements in this interval, µs.
    #[serde(default)]
    pub ack_mean_us: u64,
    /// Generator CPU use in this interval, as a fraction of one core.
    pub cpu: f64,
    /// Generator resident memory at the end of the interval, KiB.
    pub rss_kib: u64,
    /// The generator's worst timer lag in this interval, µs (how late a 100 ms ticker fired).
    #[serde(default)]
    pub lag_us: u64,
    /// Latency of the samples recorded in this interval, by phase name (phases with none are
    /// left out).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub latency: BTreeMap<String, IntervalLatency>,
}

impl TimelineRow {
    /// This interval's latency of `phase`, if it recorded any.
    pub fn latency_of(&self, phase: &str) -> Option<&IntervalLatency> {
        self.latency.get(phase)
    }
}

/// Accumulates timeline rows from successive snapshots.
#[derive(Debug, Default)]
pub struct Timeline {
    rows: Vec<TimelineRow>,
    last: Snapshot,
    last_histograms: BTreeMap<Phase, LatencyHistogram>,
}

/// The seconds each row covers: the time since the row before (the first row's since the
/// start). One, unless the generator was too starved to sample every second.
pub fn spans(rows: &[TimelineRow]) -> impl Iterator<Item = u64> + '_ {
    let mut before = 0;
    rows.iter().map(move |r| {
        let span = r.t.saturating_sub(before).max(1);
        before = r.t;
        span
    })
}

impl Timeline {
    /// Adds the interval ending at `t` seconds, from the counters now.
    pub fn push(&mut self, t: u64, now: Snapshot, cpu: f64, rss_kib: u64, lag_us: u64) {
        self.push_with_latency(t, now, Vec::new(), (cpu, rss_kib, lag_us));
    }

    /// Adds the interval ending at `t` seconds, from the counters and the cumulative histograms
    /// per phase now (`Recorder::histograms`); `health` is the generator's CPU (cores), resident
    /// memory (KiB) and worst timer lag (µs) in the interval.
    pub fn push_with_latency(
        &mut self,
        t: u64,
        now: Snapshot,
        histograms: Vec<(Phase, LatencyHistogram)>,
        health: (f64, u64, u64),
    ) {
        let (cpu, rss_kib, lag_us) = health;
        let latency = self.intervals(histograms);
        let d = |a: u64, b: u64| a.saturating_sub(b);
        self.rows.push(TimelineRow {
            t,
            connects: d(now.sessions_connected, self.last.sessions_connected),
            handshakes: d(now.handshakes, self.last.handshakes),
            sends: d(now.messages_sent, self.last.messages_sent),
            acks: d(now.messages_acked, self.last.messages_acked),
            errors: d(now.errors, self.last.errors),
            planned_connects: None,
            planned_sends: None,
            errors_by_kind: FailureKind::ALL
                .into_iter()
                .zip(now.errors_by_kind.iter().zip(&self.last.errors_by_kind))
                .filter(|(_, (n, l))| n > l)
                .map(|(k, (n, l))| (k.name().to_owned(), n - l))
                .collect(),
            active: now.sessions_active,
            ack_mean_us: d(now.ack_latency_us, self.last.ack_latency_us)
                .checked_div(d(now.messages_acked, self.last.messages_acked))
                .unwrap_or(0),
            cpu,
            rss_kib,
            lag_us,
            latency,
        });
        self.last = now;
    }

    /// Each phase's interval histogram: the cumulative one less the previous interval's.
    fn intervals(
        &mut self,
        histograms: Vec<(Phase, LatencyHistogram)>,
    ) -> BTreeMap<String, IntervalLatency> {
        let mut out = BTreeMap::new();
        for (phase, cumulative) in histograms {
            let mut interval = cumulative.clone();
            if let Some(before) = self.last_histograms.get(&phase) {
                // Counts only grow, so the earlier histogram is always within the later one; if
                // that ever failed, the interval is left out rather than made up.
                if interval.subtract(before).is_err() {
                    self.last_histograms.insert(phase, cumulative);
                    continue;
                }
            }
            if !interval.is_empty() {
                out.insert(
                    phase.name().to_owned(),
                    IntervalLatency::from_histogram(&interval),
                );
            }
            self.last_histograms.insert(phase, cumulative);
        }
        out
    }

    /// The rows so far.
    pub fn rows(&self) -> &[TimelineRow] {
        &self.rows
    }

    /// Takes the rows.
    pub fn into_rows(self) -> Vec<TimelineRow> {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_deltas() {
        let mut t = Timeline::default();
        let s1 = Snapshot {
            messages_acked: 10,
            sessions_active: 3,
            ..Snapshot::default()
        };
        let mut errors_by_kind = [0; FailureKind::ALL.len()];
        errors_by_kind[FailureKind::Timeout as usize] = 4;
        let s2 = Snapshot {
            messages_acked: 25,
            errors: 4,
            errors_by_kind,
            sessions_active: 1,
            ..Snapshot::default()
        };
        t.push(1, s1, 0.5, 100, 0);
        t.push(2, s2, 0.5, 100, 0);
        assert_eq!(t.rows()[0].acks, 10);
        assert_eq!(t.rows()[1].acks, 15);
        assert_eq!(t.rows()[1].active, 1);
        assert!(t.rows()[0].errors_by_kind.is_empty());
        assert_eq!(t.rows()[1].errors_by_kind.get("timeout"), Some(&4));
        assert_eq!(t.rows()[1].errors, 4);
    }

    fn cumulative(values: &[u64]) -> Vec<(Phase, LatencyHistogram)> {
        let mut h = crate::metrics::new_histogram();
        for v in values {
            h.saturating_record(*v);
        }
        vec![(Phase::SendResponse, h)]
    }

    #[test]
    fn interval_histograms_are_the_difference_of_cumulative_ones() {
        let mut t = Timeline::default();
        let s = Snapshot::default();
        t.push_with_latency(1, s, cumulative(&[1_000, 2_000]), (0.0, 0, 0));
        t.push_with_latency(2, s, cumulative(&[1_000, 2_000]), (0.0, 0, 0));
        t.push_with_latency(
            3,
            s,
            cumulative(&[1_000, 2_000, 50_000, 90_000]),
            (0.0, 0, 0),
        );
        let first = t.rows()[0].latency_of("send_response").unwrap();
        assert_eq!(first.count, 2);
        assert!(t.rows()[1].latency.is_empty(), "no samples, no entry");
        let third = t.rows()[2].latency_of("send_response").unwrap();
        assert_eq!(third.count, 2);
        assert!((49_000..=50_100).contains(&third.p50_us), "{third:?}");
        assert!((89_000..=90_100).contains(&third.max_us), "{third:?}");
        let h = third.decode().unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), h.lowest_equivalent(50_000));
    }
}
