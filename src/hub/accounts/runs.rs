//! What the hub received per run: messages carry their run's id as the application property
//! [`RUN_PROPERTY`] (IoT Hub MQTT: in the topic's property bag; AMQP: application-properties),
//! and the hub counts them per run id and per device, so that `fleetbench run` can compare what
//! each device saw acknowledged with what the hub counted (`hub serve --metrics ADDR` answers
//! `GET /runs/<run-id>`).
//!
//! Memory is bounded by the number of runs kept: the last [`RUNS_KEPT`] run ids seen (by first
//! message); an older run's counts are dropped and its id then reads as never seen. Within a run
//! there is one counter per device that sent a message carrying the id.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// The application property that names a message's run.
pub const RUN_PROPERTY: &str = "fleetbench-run";

/// Runs whose counts the hub keeps; the oldest is dropped when another starts.
pub const RUNS_KEPT: usize = 64;

/// The longest run id counted (fleetbench's are 16 hex characters); longer ones are ignored,
/// so a client cannot grow the table with large keys.
const MAX_RUN_ID: usize = 64;

type Counter = Arc<AtomicU64>;

/// Counts per run id and device, for the last [`RUNS_KEPT`] runs.
#[derive(Debug, Default)]
pub(crate) struct Runs {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    /// Run ids, oldest first.
    order: VecDeque<Arc<str>>,
    runs: HashMap<Arc<str>, Arc<Run>>,
}

/// One run's counters by device.
#[derive(Debug, Default)]
struct Run {
    devices: Mutex<HashMap<Box<str>, Counter>>,
}

impl Runs {
    /// The counter of `device`'s messages in run `run` (made, and the run kept, if new).
    fn counter(&self, run: &str, device: &str) -> Counter {
        let run = {
            let mut t = self.table.lock();
            match t.runs.get(run) {
                Some(r) => r.clone(),
                None => {
                    if t.order.len() >= RUNS_KEPT {
                        if let Some(oldest) = t.order.pop_front() {
                            t.runs.remove(&oldest);
                        }
                    }
                    let id: Arc<str> = run.into();
                    let r = Arc::new(Run::default());
                    t.order.push_back(id.clone());
                    t.runs.insert(id, r.clone());
                    r
                }
            }
        };
        let mut devices = run.devices.lock();
        match devices.get(device) {
            Some(c) => c.clone(),
            None => devices.entry(device.into()).or_default().clone(),
        }
    }

    /// Run `run`'s counts by device, if the hub keeps it.
    fn devices(&self, run: &str) -> Option<BTreeMap<String, u64>> {
        let run = self.table.lock().runs.get(run)?.clone();
        let devices = run.devices.lock();
        Some(
            devices
                .iter()
                .map(|(d, n)| (d.to_string(), n.load(Ordering::Relaxed)))
                .collect(),
        )
    }

    /// Each run kept, oldest first: its id, devices and messages counted.
    pub(super) fn totals(&self) -> Vec<(String, u64, u64)> {
        let runs: Vec<(Arc<str>, Arc<Run>)> = {
            let t = self.table.lock();
            t.order
                .iter()
                .filter_map(|id| Some((id.clone(), t.runs.get(id)?.clone())))
                .collect()
        };
        runs.into_iter()
            .map(|(id, run)| {
                let devices = run.devices.lock();
                let received = devices.values().map(|n| n.load(Ordering::Relaxed)).sum();
                (id.to_string(), devices.len() as u64, received)
            })
            .collect()
    }

    /// The run ids kept, oldest first.
    fn ids(&self) -> Vec<String> {
        self.table
            .lock()
            .order
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}

/// Where one session counts its messages per run: the run id of its last message and that
/// run's counter for the device, so that a session whose messages carry one run id (every
/// fleetbench session) looks the table up once.
#[derive(Debug, Default)]
pub(crate) struct RunCounter {
    last: Option<(Box<str>, Counter)>,
}

impl RunCounter {
    /// Counts `n` messages of `device` in run `run` (nothing for a message without a run id or
    /// with an implausibly long one).
    pub(crate) fn count(
        &mut self,
        runs: &super::Accounts,
        run: Option<&str>,
        device: &str,
        n: u64,
    ) {
        let Some(run) = run.filter(|r| !r.is_empty() && r.len() <= MAX_RUN_ID) else {
            return;
        };
        match &self.last {
            Some((id, c)) if &**id == run => {
                c.fetch_add(n, Ordering::Relaxed);
            }
            _ => {
                let c = runs.runs.counter(run, device);
                c.fetch_add(n, Ordering::Relaxed);
                self.last = Some((run.into(), c));
            }
        }
    }
}

/// What the hub counted of one run: the JSON of `GET /runs/<run-id>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAccount {
    /// The run id asked about.
    pub run_id: String,
    /// Whether the hub holds counts for it (false: no message carried it since the hub started,
    /// or it is older than the last [`RUNS_KEPT`] runs).
    pub seen: bool,
    /// Messages counted for the run, all devices.
    pub received: u64,
    /// Messages counted for the run by device id.
    pub devices: BTreeMap<String, u64>,
    /// Sessions the hub refused since it started, by reason (a refused session carries no run
    /// id, so these are the hub's; `run` reports the difference between its start and its end).
    pub hub_refused: Vec<(String, u64)>,
    /// Requests the hub refused for throttling since it started (the hub's, as above).
    pub hub_throttled: u64,
    /// How many runs the hub keeps counts for.
    pub runs_kept: usize,
}

impl super::Accounts {
    /// What the hub counted of run `run_id`; `hub_refused` and `hub_throttled` are the
    /// caller's (the hub's statistics).
    pub fn run_account(
        &self,
        run_id: &str,
        hub_refused: Vec<(String, u64)>,
        hub_throttled: u64,
    ) -> RunAccount {
        let devices = self.runs.devices(run_id);
        RunAccount {
            run_id: run_id.to_owned(),
            seen: devices.is_some(),
            received: devices.iter().flatten().map(|(_, n)| n).sum(),
            devices: devices.unwrap_or_default(),
            hub_refused,
            hub_throttled,
            runs_kept: RUNS_KEPT,
        }
    }

    /// The run ids the hub keeps counts for, oldest first.
    pub fn run_ids(&self) -> Vec<String> {
        self.runs.ids()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Accounts;
    use super::*;

    #[test]
    fn counts_by_run_and_device_and_keeps_the_last_runs() {
        let a = Accounts::default();
        let mut s1 = RunCounter::default();
        let mut s2 = RunCounter::default();
        s1.count(&a, Some("r1"), "d1", 1);
        s1.count(&a, Some("r1"), "d1", 2);
        s2.count(&a, Some("r1"), "d2", 1);
        s2.count(&a, Some("r2"), "d2", 1);
        s2.count(&a, None, "d2", 1);
        s2.count(&a, Some(&"x".repeat(MAX_RUN_ID + 1)), "d2", 1);
        let r1 = a.run_account("r1", vec![], 0);
        assert!(r1.seen);
        assert_eq!(r1.received, 4);
        assert_eq!(
            r1.devices,
            BTreeMap::from([("d1".into(), 3), ("d2".into(), 1)])
        );
        assert_eq!(a.run_account("r2", vec![], 0).received, 1);
        assert_eq!(
            a.snapshot().runs,
            vec![("r1".into(), 2, 4), ("r2".into(), 1, 1)]
        );
        assert!(a.snapshot().summary().contains("  run       r1 "));
        let unknown = a.run_account("r3", vec![("unknown_device".into(), 2)], 5);
        assert!(!unknown.seen);
        assert_eq!((unknown.received, unknown.hub_throttled), (0, 5));

        for i in 0..RUNS_KEPT {
            s1.count(&a, Some(&format!("n{i}")), "d1", 1);
        }
        assert_eq!(a.run_ids().len(), RUNS_KEPT);
        assert!(
            !a.run_account("r1", vec![], 0).seen,
            "the oldest is dropped"
        );
        assert!(
            a.run_account(&format!("n{}", RUNS_KEPT - 1), vec![], 0)
                .seen
        );
    }
}
