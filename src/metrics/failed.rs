//! Which devices failed: every failed session with its device id, attempt, phase, kind, full
//! message and time (bounded), and per phase and kind the first few distinct device ids.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use serde::Serialize;

use super::{FailureKind, Phase};

/// At most this many failed sessions are kept for `failures.csv`; the rest are only counted.
pub const MAX_FAILED_SESSIONS: usize = 100_000;

/// At most this many device ids are listed per phase and kind in `summary.json`.
pub const MAX_DEVICE_IDS: usize = 20;

/// One failed session (or one failure of a connected session's messages).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedSession {
    /// The device's id.
    pub device: String,
    /// The device's session number: 1 for the first, one more per reconnect.
    pub attempt: u32,
    /// Phase name.
    pub phase: &'static str,
    /// Failure kind name.
    pub kind: &'static str,
    /// The full message.
    pub message: String,
    /// Seconds since the run's start (as the timeline's seconds).
    pub at_secs: f64,
}

/// The distinct devices that failed one way: the first few by id, and how many in all.
#[derive(Debug, Default)]
struct DeviceIds {
    first: Vec<String>,
    all: HashSet<String>,
}

/// The failed sessions of a run so far.
#[derive(Debug)]
pub(super) struct FailedLog {
    /// What `at_secs` counts from: the recorder's creation until the run says when it began.
    pub(super) started: Instant,
    rows: Vec<FailedSession>,
    left_out: u64,
    ids: BTreeMap<(Phase, FailureKind), DeviceIds>,
}

impl FailedLog {
    pub(super) fn new() -> Self {
        Self {
            started: Instant::now(),
            rows: Vec::new(),
            left_out: 0,
            ids: BTreeMap::new(),
        }
    }

    /// Notes one failure of `device` in its session `attempt`.
    pub(super) fn add(
        &mut self,
        phase: Phase,
        kind: FailureKind,
        device: &str,
        attempt: u32,
        message: &str,
    ) {
        let ids = self.ids.entry((phase, kind)).or_default();
        if !ids.all.contains(device) {
            ids.all.insert(device.to_owned());
            if ids.first.len() < MAX_DEVICE_IDS {
                ids.first.push(device.to_owned());
            }
        }
        if self.rows.len() < MAX_FAILED_SESSIONS {
            self.rows.push(FailedSession {
                device: device.to_owned(),
                attempt,
                phase: phase.name(),
                kind: kind.name(),
                message: message.to_owned(),
                at_secs: (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            });
        } else {
            self.left_out += 1;
        }
    }

    /// The first device ids of one phase and kind, and how many more devices failed so.
    pub(super) fn devices(&self, phase: Phase, kind: FailureKind) -> (Vec<String>, u64) {
        self.ids.get(&(phase, kind)).map_or((Vec::new(), 0), |d| {
            (d.first.clone(), (d.all.len() - d.first.len()) as u64)
        })
    }

    /// The failed sessions kept, and how many more were left out.
    pub(super) fn sessions(&self) -> (Vec<FailedSession>, u64) {
        (self.rows.clone(), self.left_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_capped_with_the_rest_counted() {
        let mut log = FailedLog::new();
        for i in 0..30 {
            for attempt in 1..=2 {
                log.add(
                    Phase::TlsHandshake,
                    FailureKind::Handshake,
                    &format!("d{i}"),
                    attempt,
                    "x",
                );
            }
        }
        let (ids, more) = log.devices(Phase::TlsHandshake, FailureKind::Handshake);
        assert_eq!(ids.len(), MAX_DEVICE_IDS);
        assert_eq!(ids[0], "d0");
        assert_eq!(ids[19], "d19");
        assert_eq!(more, 10);
        let (rows, left) = log.sessions();
        assert_eq!((rows.len(), left), (60, 0));
        assert_eq!(rows[1].attempt, 2);
        assert_eq!(
            log.devices(Phase::TcpConnect, FailureKind::Connect),
            (vec![], 0)
        );
    }
}
