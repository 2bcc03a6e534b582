//! Running a fleet: mint identities on every core (streaming, bounded), start sessions on the
//! connect schedule under a handshake cap, let each session run its lifecycle, take sessions
//! down when the stages say so, watch the generator itself, and stop on time. One loop, driven
//! by the plan's schedule, whatever the load shape.

pub mod clock;
mod device;
mod limits;
mod message;
mod mint;
pub mod schedule;
mod watch;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::{GeneratorHealth, Recorder, RunStatus, TimelineRow};
use crate::pki::{CaChain, DeviceIds, KeyType, PkiError, Validity};
use crate::scenario::{Plan, SessionPlan};
use crate::transport::{ClientTls, Endpoint, TlsConfigError};
use device::{ReadyDevice, Shared, Start};
pub use limits::{check_open_files, port_warning, LimitError};

/// Minted identities waiting for their connect slot. Small: minting is ~10x faster than
/// handshaking, so a short queue keeps every core busy without holding the fleet in memory.
const MINT_QUEUE: usize = 256;

/// The devices of a run and the CA that signs them.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Signs the devices.
    pub ca: Arc<CaChain>,
    /// Their ids (the whole fleet or one shard of it).
    pub ids: DeviceIds,
    /// Device key type.
    pub key_type: KeyType,
    /// Device certificate validity.
    pub validity: Validity,
}

/// Errors that stop a run before it starts.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A device identity could not be minted.
    #[error("cannot mint device certificates")]
    Mint(#[from] PkiError),
    /// A device TLS configuration could not be built.
    #[error("cannot build the device TLS configuration")]
    Tls(#[from] TlsConfigError),
}

/// What a run measured, besides the recorder's contents.
#[derive(Debug)]
pub struct FleetResult {
    /// Complete or partial.
    pub status: RunStatus,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// Length of the run.
    pub elapsed: Duration,
    /// Acknowledged messages per device, in `Fleet::ids` order.
    pub acked: Vec<u32>,
    /// One row per second.
    pub timeline: Vec<TimelineRow>,
    /// The generator's own health.
    pub health: GeneratorHealth,
}

/// Open sessions that the stages may take down, newest last (k6 ramps down the newest first).
type Departures = Arc<Mutex<Vec<(u64, CancellationToken)>>>;

/// Runs `fleet` against `endpoint` per `plan`, recording into `recorder`, until the schedule
/// completes, `plan.run.max_duration` passes, or `interrupt` is cancelled.
pub async fn run(
    plan: &Plan,
    fleet: Fleet,
    endpoint: Endpoint,
    tls: ClientTls,
    recorder: Arc<Recorder>,
    interrupt: CancellationToken,
) -> Result<FleetResult, LoadError> {
    let n = fleet.ids.len();
    // Fail fast on key types or settings that cannot work, before any connection is made.
    if n > 0 {
        let probe = fleet
            .ca
            .mint_device(&fleet.ids.id(0), fleet.key_type, fleet.validity)?;
        tls.for_device(&probe)?;
    }

    let stop = interrupt.child_token();
    let hold = match plan.session {
        SessionPlan::Once { hold } => hold,
        SessionPlan::Staged => Some(Duration::MAX),
        SessionPlan::Churn { .. } => None,
    };
    let shared = Arc::new(Shared {
        endpoint,
        protocol: plan.protocol.clone(),
        messages: plan.messages.clone(),
        connect_timeout: plan.connect.timeout,
        hold,
        sources: plan.connect.source_addresses.clone(),
        recorder: recorder.clone(),
        acked: (0..n).map(|_| AtomicU32::new(0)).collect(),
        abort: CancellationToken::new(),
        reconnect: plan.reconnect.clone(),
        handshakes: Arc::new(Semaphore::new(plan.connect.max_handshakes as usize)),
    });
    let started_at = SystemTime::now();
    let start = Instant::now();
    let watcher = watch::Watcher::start(recorder.clone());

    let deadline_hit = Arc::new(AtomicBool::new(false));
    let timers = Timers::start(plan, start, &stop, &deadline_hit);

    // Devices come from the minters and, when sessions repeat (churn, stages), go back into
    // the same queue when their session ends; its capacity covers the whole fleet then, so a
    // returning device never waits.
    let reuse = !matches!(plan.session, SessionPlan::Once { .. });
    let (tx, rx) = mpsc::channel(if reuse { n.max(1) } else { MINT_QUEUE });
    let minter = mint::start(&fleet, tls, tx.clone(), stop.clone(), recorder.clone());
    let departures: Departures = Arc::default();
    let departing = tokio::spawn(take_down(
        plan.connect.schedule.departures(),
        start,
        departures.clone(),
        stop.clone(),
    ));
    let tracker = TaskTracker::new();
    let arrivals = arrivals(plan, n);
    let sessions = Sessions {
        shared: shared.clone(),
        pool: reuse.then_some(tx),
        departures: departures.clone(),
        stop: stop.clone(),
        tracker: tracker.clone(),
        until: match plan.session {
            SessionPlan::Churn { duration } => Some(start + duration),
            _ => None,
        },
    };
    // The schedule runs on a worker, beside the sessions it spawns: from the thread that
    // blocks on the runtime, every spawn and every permit returned would cross threads.
    let mint_error = tokio::spawn(sessions.schedule(rx, arrivals, start))
        .await
        .unwrap_or_else(|e| Some(format!("the session scheduler failed: {e}")));
    tracker.close();

    // Drain: wait for sessions; once stopped, give in-flight work the grace period.
    tokio::select! {
        () = tracker.wait() => {}
        () = stop.cancelled() => {
            if tokio::time::timeout(plan.run.grace, tracker.wait()).await.is_err() {
                shared.abort.cancel();
                tracker.wait().await;
            }
        }
    }
    timers.cancel();
    departing.abort();
    stop.cancel();
    minter.join();
    let elapsed = start.elapsed();
    let (timeline, mut health) = watcher.finish(elapsed).await;
    watch::task_start_health(&mut health, &recorder.task_start_lag());

    let status = if let Some(e) = mint_error {
        RunStatus::Partial {
            reason: format!("minting failed: {e}"),
        }
    } else if interrupt.is_cancelled() {
        RunStatus::Partial {
            reason: "interrupted".into(),
        }
    } else if deadline_hit.load(Ordering::Relaxed) {
        RunStatus::Partial {
            reason: format!(
                "max-duration {} reached",
                humantime::format_duration(plan.run.max_duration)
            ),
        }
    } else {
        RunStatus::Complete
    };
    let acked = shared
        .acked
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    Ok(FleetResult {
        status,
        started_at,
        elapsed,
        acked,
        timeline,
        health,
    })
}

/// Intended connect offsets: one per device once, or as many as fit a churn duration, or the
/// stages' crossings.
fn arrivals(plan: &Plan, devices: usize) -> Box<dyn Iterator<Item = Duration> + Send> {
    let offset = plan.connect.offset;
    let all: Box<dyn Iterator<Item = Duration> + Send> =
        Box::new(plan.connect.schedule.arrivals().map(move |t| t + offset));
    match plan.session {
        SessionPlan::Once { .. } => Box::new(all.take(devices)),
        SessionPlan::Churn { duration } => Box::new(all.take_while(move |t| *t < duration)),
        SessionPlan::Staged => all,
    }
}

/// The run's deadline, and the end of a staged schedule: both stop the run.
struct Timers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Timers {
    fn start(
        plan: &Plan,
        start: Instant,
        stop: &CancellationToken,
        deadline_hit: &Arc<AtomicBool>,
    ) -> Self {
        let mut tasks = Vec::new();
        let (stop2, hit, max) = (stop.clone(), deadline_hit.clone(), plan.run.max_duration);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start + max).await;
            hit.store(true, Ordering::Relaxed);
            stop2.cancel();
        }));
        if let Some(end) = plan.connect.schedule.stages_end() {
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(start + end).await;
                stop.cancel();
            }));
        }
        Self { tasks }
    }

    fn cancel(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// At each departure time, stops the newest open session.
async fn take_down(
    times: Vec<Duration>,
    start: Instant,
    open: Departures,
    stop: CancellationToken,
) {
    for t in times {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(start + t) => {}
        }
        if let Some((_, token)) = open.lock().pop() {
            token.cancel();
        }
    }
}

/// Starts sessions.
struct Sessions {
    shared: Arc<Shared>,
    /// Where devices go back after a session, when sessions repeat.
    pool: Option<mpsc::Sender<Result<ReadyDevice, String>>>,
    departures: Departures,
    stop: CancellationToken,
    tracker: TaskTracker,
    /// No new session after this instant (churn).
    until: Option<Instant>,
}

impl Sessions {
    /// Starts a session at each arrival until the arrivals end or the run stops. Returns a
    /// minting error if one cut the fleet short.
    async fn schedule(
        self,
        mut devices: mpsc::Receiver<Result<ReadyDevice, String>>,
        arrivals: Box<dyn Iterator<Item = Duration> + Send>,
        start: Instant,
    ) -> Option<String> {
        for (k, offset) in arrivals.enumerate() {
            let intended = start + offset;
            // A churn run that cannot keep up ends on time rather than when it catches up.
            if self.until.is_some_and(|end| Instant::now() >= end) {
                return None;
            }
            let stop = &self.stop;
            tokio::select! {
                biased;
                () = stop.cancelled() => return None,
                () = clock::sleep_until(intended) => {}
            }
            let permit = tokio::select! {
                biased;
                () = stop.cancelled() => return None,
                p = self.shared.handshakes.clone().acquire_owned() => p.ok()?,
            };
            let device = tokio::select! {
                biased;
                () = stop.cancelled() => return None,
                d = devices.recv() => match d? {
                    Err(e) => return Some(e),
                    Ok(d) => d,
                },
            };
            self.spawn(device, k as u64, intended, permit);
        }
        None
    }

    fn spawn(
        &self,
        device: ReadyDevice,
        arrival: u64,
        intended: Instant,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let session_stop = self.stop.child_token();
        let staged = self.pool.is_some() && matches!(self.shared.hold, Some(Duration::MAX));
        if staged {
            self.departures.lock().push((arrival, session_stop.clone()));
        }
        let start = Start {
            arrival,
            intended,
            spawned: Instant::now(),
            stop: session_stop,
        };
        let (shared, pool, departures) = (
            self.shared.clone(),
            self.pool.clone(),
            self.departures.clone(),
        );
        let fut = async move {
            device::run(shared, &device, start, permit).await;
            if staged {
                departures.lock().retain(|(a, _)| *a != arrival);
            }
            if let Some(pool) = pool {
                // Capacity covers the fleet, so this never fails for want of room.
                let _ = pool.try_send(Ok(device));
            }
        };
        self.tracker.spawn(fut);
    }
}
