//! Running a fleet: mint identities on every core (streaming, bounded), start sessions on the
//! connect schedule under a handshake cap, let each device run its lifecycle, watch the
//! generator itself, and stop on time. One loop, driven by the plan's schedule.

mod device;
mod message;
pub mod schedule;
mod watch;

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::{GeneratorHealth, Recorder, RunStatus, TimelineRow};
use crate::pki::{CaChain, DeviceIds, KeyType, PkiError, Validity};
use crate::scenario::Plan;
use crate::transport::{ClientTls, Endpoint, TlsConfigError};
use device::{ReadyDevice, Shared};
use schedule::ConnectSchedule;

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
    let shared = Arc::new(Shared {
        endpoint,
        protocol: plan.protocol.clone(),
        messages: plan.messages.clone(),
        connect_timeout: plan.connect.timeout,
        recorder: recorder.clone(),
        acked: (0..n).map(|_| AtomicU32::new(0)).collect(),
        stop: stop.clone(),
        abort: CancellationToken::new(),
    });
    let started_at = SystemTime::now();
    let start = Instant::now();
    let watcher = watch::Watcher::start(recorder.clone());

    let deadline_hit = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deadline = tokio::spawn({
        let stop = stop.clone();
        let hit = deadline_hit.clone();
        let max = plan.run.max_duration;
        async move {
            tokio::time::sleep(max).await;
            hit.store(true, std::sync::atomic::Ordering::Relaxed);
            stop.cancel();
        }
    });

    let (tx, rx) = mpsc::channel(MINT_QUEUE);
    let minter = mint_in_background(&fleet, tls, tx, stop.clone(), recorder.clone());
    let schedule = plan
        .connect
        .rate
        .map_or(ConnectSchedule::Burst, ConnectSchedule::Rate);
    let tracker = TaskTracker::new();
    let mint_error = schedule_sessions(
        &shared,
        rx,
        schedule,
        plan.connect.max_handshakes as usize,
        start,
        &tracker,
    )
    .await;
    tracker.close();

    // Drain: wait for devices; once stopped, give in-flight work the grace period.
    tokio::select! {
        () = tracker.wait() => {}
        () = stop.cancelled() => {
            if tokio::time::timeout(plan.run.grace, tracker.wait()).await.is_err() {
                shared.abort.cancel();
                tracker.wait().await;
            }
        }
    }
    deadline.abort();
    stop.cancel();
    minter.join();
    let elapsed = start.elapsed();
    let (timeline, health) = watcher.finish(elapsed).await;

    let status = if let Some(e) = mint_error {
        RunStatus::Partial {
            reason: format!("minting failed: {e}"),
        }
    } else if interrupt.is_cancelled() {
        RunStatus::Partial {
            reason: "interrupted".into(),
        }
    } else if deadline_hit.load(std::sync::atomic::Ordering::Relaxed) {
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
        .map(|a| a.load(std::sync::atomic::Ordering::Relaxed))
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

/// Starts sessions on the schedule until every device has started or the run stops.
/// Returns a minting error if one cut the fleet short.
async fn schedule_sessions(
    shared: &Arc<Shared>,
    mut rx: mpsc::Receiver<Result<ReadyDevice, String>>,
    schedule: ConnectSchedule,
    max_handshakes: usize,
    start: Instant,
    tracker: &TaskTracker,
) -> Option<String> {
    let handshakes = Arc::new(Semaphore::new(max_handshakes));
    let stop = &shared.stop;
    let mut k = 0u64;
    loop {
        let intended = start + schedule.offset(k);
        tokio::select! {
            biased;
            () = stop.cancelled() => return None,
            () = tokio::time::sleep_until(intended) => {}
        }
        let permit = tokio::select! {
            biased;
            () = stop.cancelled() => return None,
            p = handshakes.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return None,
            },
        };
        let device = tokio::select! {
            biased;
            () = stop.cancelled() => return None,
            d = rx.recv() => match d {
                None => return None,
                Some(Err(e)) => return Some(e),
                Some(Ok(d)) => d,
            },
        };
        tracker.spawn(device::run(shared.clone(), device, intended, permit));
        k += 1;
    }
}

/// Threads that mint device identities and their TLS configurations, all cores, streaming.
struct Minter {
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Minter {
    fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn mint_in_background(
    fleet: &Fleet,
    tls: ClientTls,
    tx: mpsc::Sender<Result<ReadyDevice, String>>,
    stop: CancellationToken,
    recorder: Arc<Recorder>,
) -> Minter {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = fleet.ids.len();
    let threads = (0..workers)
        .map(|w| {
            let (fleet, tls, tx, stop) = (fleet.clone(), tls.clone(), tx.clone(), stop.clone());
            let recorder = recorder.clone();
            std::thread::Builder::new()
                .name(format!("mint-{w}"))
                .spawn(move || {
                    for index in (w..n).step_by(workers) {
                        if stop.is_cancelled() {
                            return;
                        }
                        let id = fleet.ids.id(index);
                        let ready = fleet
                            .ca
                            .mint_device(&id, fleet.key_type, fleet.validity)
                            .map_err(|e| format!("{id}: {e}"))
                            .and_then(|d| {
                                tls.for_device(&d)
                                    .map(|tls| ReadyDevice { index, id, tls })
                                    .map_err(|e| e.to_string())
                            });
                        if ready.is_ok() {
                            crate::metrics::incr(&recorder.counters.identities_minted);
                        }
                        if tx.blocking_send(ready).is_err() {
                            return;
                        }
                    }
                })
        })
        .filter_map(Result::ok)
        .collect();
    Minter { threads }
}
