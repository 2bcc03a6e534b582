//! Throughput over time: a sampler copies the counters once per second, off the hot path.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{FailureKind, Snapshot};

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
}

/// Accumulates timeline rows from successive snapshots.
#[derive(Debug, Default)]
pub struct Timeline {
    rows: Vec<TimelineRow>,
    last: Snapshot,
}

impl Timeline {
    /// Adds the interval ending at `t` seconds, from the counters now.
    pub fn push(&mut self, t: u64, now: Snapshot, cpu: f64, rss_kib: u64, lag_us: u64) {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        self.rows.push(TimelineRow {
            t,
            connects: d(now.sessions_connected, self.last.sessions_connected),
            handshakes: d(now.handshakes, self.last.handshakes),
            sends: d(now.messages_sent, self.last.messages_sent),
            acks: d(now.messages_acked, self.last.messages_acked),
            errors: d(now.errors, self.last.errors),
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
        });
        self.last = now;
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
}
