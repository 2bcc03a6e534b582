//! Running a fleet: mint identities on every core (streaming, bounded), start sessions on the
//! connect schedule under a handshake cap, let each session run its lifecycle, take sessions
//! down when the stages say so, watch the generator itself, and stop on time. One loop, driven
//! by the plan's schedule, whatever the load shape.

pub mod clock;
mod connect;
mod device;
mod ending;
mod limits;
mod message;
mod mint;
mod planned;
mod pool;
mod signal;
mod watch;

use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::{GeneratorHealth, Phase, Recorder, RunStatus, TimelineRow};
use crate::pki::{CaChain, DeviceIds, KeyType, PkiError, Validity};
use crate::scenario::{Plan, ProtocolPlan, SendModel, SessionPlan};
use crate::transport::{ClientTls, Endpoint, TlsConfigError};
use device::{ReadyDevice, Shared, Start};
pub use ending::Interrupt;
use ending::Timers;
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
    /// Acknowledged messages of each device that ran a session: (index in `Fleet::ids`,
    /// count), by index. Devices that never ran are absent.
    pub acked: Vec<(usize, u32)>,
    /// What each device that sent anything sent, by index: for a verifying receiver.
    pub sends: Vec<DeviceSends>,
    /// One row per second.
    pub timeline: Vec<TimelineRow>,
    /// The generator's own health.
    pub health: GeneratorHealth,
}

/// What one device sent over the run, for matching against what a receiver got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSends {
    /// Index in `Fleet::ids`.
    pub index: usize,
    /// Messages sent: numbered `0..sent`.
    pub sent: u32,
    /// Of them acknowledged (0 when every send was settled on write: QoS 0, pre-settled).
    pub acked: u32,
    /// The numbers of those sent and never acknowledged (a broken session, a timeout, a
    /// refusal).
    pub unacked: Vec<u32>,
}

/// Open sessions that the stages may take down, newest last (k6 ramps down the newest first).
type Departures = Arc<Mutex<Vec<(u64, CancellationToken)>>>;

/// The phases whose latencies a run of `plan` records (the verifying receiver's `deliver`
/// aside): their histograms are made before the first session rather than on its path.
fn recorded_phases(plan: &Plan) -> Vec<Phase> {
    let mut phases = vec![
        Phase::TcpConnect,
        Phase::TlsHandshake,
        Phase::ConnectResponse,
        Phase::ConnectLag,
    ];
    if plan.tls.resumption {
        phases.push(Phase::TlsResumed);
    }
    if plan.websocket.is_some() {
        phases.push(Phase::WsUpgrade);
    }
    let ack = match plan.protocol {
        ProtocolPlan::Mqtt(_) => {
            phases.push(Phase::MqttConnect);
            Phase::PublishAck
        }
        ProtocolPlan::Amqp(_) => {
            phases.extend([Phase::AmqpOpen, Phase::AmqpAttach]);
            Phase::SendAck
        }
    };
    if plan.messages.count > 0 {
        phases.extend([ack, Phase::SendResponse, Phase::SendLag]);
        if matches!(plan.messages.model, SendModel::Closed { .. }) {
            phases.push(Phase::SendResponseUncorrected);
        }
    }
    phases
}

/// Runs `fleet` against `endpoint` per `plan`, recording into `recorder`, until the schedule
/// completes, `plan.run.max_duration` passes (a hard bound: every session ends then), or
/// `interrupt` stops (drain for at most `plan.run.grace`) or aborts it (end at once).
pub async fn run(
    plan: &Plan,
    fleet: Fleet,
    endpoint: Endpoint,
    tls: ClientTls,
    recorder: Arc<Recorder>,
    interrupt: impl Into<Interrupt>,
) -> Result<FleetResult, LoadError> {
    let interrupt: Interrupt = interrupt.into();
    let n = fleet.ids.len();
    // Fail fast on key types or settings that cannot work, before any connection is made.
    if n > 0 {
        let probe = fleet
            .ca
            .mint_device(&fleet.ids.id(0), fleet.key_type, fleet.validity)?;
        tls.for_device(&probe)?;
    }

    let stop = interrupt.stop.child_token();
    let hold = match plan.session {
        SessionPlan::Once { hold } => hold,
        SessionPlan::Staged => Some(Duration::MAX),
        SessionPlan::Churn { .. } => None,
    };
    let endpoint = Endpoint {
        server_name: crate::transport::lasting_name(&endpoint.server_name),
        ..endpoint
    };
    let shared = Arc::new(Shared {
        endpoint,
        protocol: match &plan.protocol {
            ProtocolPlan::Mqtt(o) => device::Protocol::Mqtt(Arc::new(o.clone())),
            ProtocolPlan::Amqp(o) => device::Protocol::Amqp(o.clone()),
        },
        messages: plan.messages.clone(),
        connect_timeout: plan.connect.timeout,
        hold,
        sources: plan.connect.source_addresses.clone(),
        recorder: recorder.clone(),
        tally: pool::Tally::default(),
        abort: interrupt.abort.child_token(),
        aborted: signal::Signal::default(),
        stopped: signal::Signal::default(),
        reconnect: plan.reconnect.clone(),
        handshakes: Arc::new(Semaphore::new(plan.connect.max_handshakes as usize)),
        handshake_turn: Default::default(),
    });
    recorder.prepare(recorded_phases(plan));
    let started_at = SystemTime::now();
    let start = Instant::now();
    recorder.spans.begin(start);
    recorder.failures_from(start.into_std());
    let watcher = watch::Watcher::start(recorder.clone());
    // Sessions wait on the abort and the stop as signals; these follow the tokens, for the
    // run's length.
    let follow = |token: CancellationToken, signal: fn(&Shared) -> &signal::Signal| {
        let shared = shared.clone();
        tokio::spawn(async move {
            token.cancelled().await;
            signal(&shared).fire();
        })
    };
    let followers = [
        follow(shared.abort.clone(), |s| &s.aborted),
        follow(stop.clone(), |s| &s.stopped),
    ];

    let deadline_hit = Arc::new(AtomicBool::new(false));
    let timers = Timers::start(plan, start, &stop, &shared.abort, &deadline_hit);

    // Devices come from the minters and, when sessions repeat (churn, stages), wait in the
    // pool when their session ends; the scheduler prefers a waiting device to a new one.
    let reuse = !matches!(plan.session, SessionPlan::Once { .. });
    let (tx, rx) = mpsc::channel(MINT_QUEUE);
    let minter = mint::start(&fleet, tls, tx, stop.clone(), recorder.clone());
    let pool = reuse.then(|| Arc::new(pool::Pool::default()));
    let departures: Departures = Arc::default();
    let departing = tokio::spawn(take_down(
        plan.connect.schedule.departures(),
        start,
        departures.clone(),
        stop.clone(),
    ));
    let tracker = TaskTracker::new();
    let sessions = Arc::new(Sessions {
        shared: shared.clone(),
        pool: pool.clone(),
        departures: departures.clone(),
        stop: stop.clone(),
        tracker: tracker.clone(),
        until: match plan.session {
            SessionPlan::Churn { duration } => Some(start + duration),
            _ => None,
        },
        dispatch: Mutex::new(Dispatch::new(arrivals(plan, n), start, rx)),
    });
    // The schedule runs on a worker, beside the sessions it spawns: from the thread that
    // blocks on the runtime, every spawn and every permit returned would cross threads.
    let mint_error = tokio::spawn(sessions.clone().schedule())
        .await
        .unwrap_or_else(|e| Some(format!("the session scheduler failed: {e}")));
    // No session starts after the schedule ends, from a relay either.
    sessions.dispatch.lock().head = None;
    drop(sessions);
    tracker.close();

    // Drain: wait for sessions; once stopped, give in-flight work the grace period, but never
    // past the deadline; then end every session (they all give up at once on `abort`).
    let deadline = start + plan.run.max_duration;
    tokio::select! {
        () = tracker.wait() => {}
        () = stop.cancelled() => {
            let until = (Instant::now() + plan.run.grace).min(deadline);
            tokio::select! {
                () = tracker.wait() => {}
                () = shared.abort.cancelled() => {}
                () = tokio::time::sleep_until(until) => {}
            }
            shared.abort.cancel();
            tracker.wait().await;
        }
    }
    timers.cancel();
    departing.abort();
    followers.iter().for_each(JoinHandle::abort);
    stop.cancel();
    minter.detach();
    let elapsed = start.elapsed();
    let (mut timeline, mut health) = watcher.finish(elapsed).await;
    planned::fill(plan, n, &mut timeline);
    watch::task_start_health(&mut health, &recorder.task_start_lag());

    for device in pool.iter().flat_map(|p| p.drain()) {
        shared.tally.record(&device);
    }

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
    Ok(FleetResult {
        status,
        started_at,
        elapsed,
        acked: shared.tally.finish(),
        sends: shared.tally.finish_sends(),
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

/// Starts sessions: the scheduler task, and the sessions themselves when their handshake slot
/// comes free while the next arrival is already due ([`Slot`]). When the handshake cap paces a
/// run (a churn as fast as it can go, a burst of a large fleet), a session that has connected
/// starts the next one at once, rather than giving its slot back to wake the scheduler for it:
/// a wake of the scheduler per session cost some 3 % of a resumed session's client CPU
/// (BENCHMARKING.md). A session that closes as soon as it has connected, and whose close is over
/// at once (a churn without messages, over MQTT), goes further: it keeps its slot through the
/// close and runs the next due arrival in its own task ([`Sessions::runs_on`]), so that such a
/// churn runs its sessions back to back in a few tasks, as a client's loops would, with their
/// connect and close futures in the task rather than on the heap ([`device::Room`]). The
/// scheduler still keeps the time: it waits for each arrival that is not due yet, and starts it
/// if no session has.
struct Sessions {
    shared: Arc<Shared>,
    /// Where devices wait after a session, when sessions repeat.
    pool: Option<Arc<pool::Pool>>,
    departures: Departures,
    stop: CancellationToken,
    tracker: TaskTracker,
    /// No new session after this instant (churn).
    until: Option<Instant>,
    /// Where the schedule stands, for the scheduler and the sessions' relays.
    dispatch: Mutex<Dispatch>,
}

/// Where the schedule stands.
struct Dispatch {
    arrivals: Box<dyn Iterator<Item = Duration> + Send>,
    start: Instant,
    /// The next arrival to start, its number and intended instant; `None` once the schedule
    /// is over.
    head: Option<(u64, Instant)>,
    /// The minters' queue; `None` while the scheduler waits on it.
    minted: Option<mpsc::Receiver<Result<ReadyDevice, String>>>,
    /// The minters are done: every device is minted.
    all_minted: bool,
    /// The scheduler is waiting for a device for the head: relays leave the head to it.
    busy: bool,
    /// A minting error that a relay took from the queue, for the scheduler to end the run on.
    mint_error: Option<String>,
}

impl Dispatch {
    fn new(
        mut arrivals: Box<dyn Iterator<Item = Duration> + Send>,
        start: Instant,
        minted: mpsc::Receiver<Result<ReadyDevice, String>>,
    ) -> Self {
        let head = arrivals.next().map(|offset| (0, start + offset));
        Self {
            arrivals,
            start,
            head,
            minted: Some(minted),
            all_minted: false,
            busy: false,
            mint_error: None,
        }
    }

    /// Moves the head to the next arrival.
    fn advance(&mut self) {
        if let Some((k, _)) = self.head {
            self.head = self
                .arrivals
                .next()
                .map(|offset| (k + 1, self.start + offset));
        }
    }

    /// A device ready at once: a newly minted one first (a churn or stages run goes round the
    /// fleet), else the one that has waited longest in the pool.
    fn ready_device(&mut self, pool: Option<&pool::Pool>) -> Option<Result<ReadyDevice, String>> {
        use mpsc::error::TryRecvError;
        if !self.all_minted {
            match self.minted.as_mut()?.try_recv() {
                Ok(d) => return Some(d),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => self.all_minted = true,
            }
        }
        pool?.take().map(Ok)
    }
}

/// A session's first handshake slot. Freed once the session has connected or failed to, it
/// starts the next arrival if that is due; dropped unfreed (the session ended mid-connect: the
/// run aborted, the runtime shut down), it only goes back to the handshake cap.
struct Slot {
    permit: tokio::sync::OwnedSemaphorePermit,
    sessions: Arc<Sessions>,
}

impl device::HandshakeSlot for Slot {
    fn free(self) {
        self.sessions.relay(self.permit);
    }
}

impl Sessions {
    /// Starts a session at each arrival that no relay has started, until the arrivals end or
    /// the run stops. Returns a minting error if one cut the fleet short.
    async fn schedule(self: Arc<Self>) -> Option<String> {
        // One waiter on the stop for the whole schedule, not two registered and dropped again
        // per session.
        let mut stopped = pin!(self.stop.cancelled());
        loop {
            let (k, intended) = {
                let mut d = self.dispatch.lock();
                if let Some(e) = d.mint_error.take() {
                    return Some(e);
                }
                d.head?
            };
            // A churn run that cannot keep up ends on time rather than when it catches up.
            if self.until.is_some_and(|end| Instant::now() >= end) {
                return None;
            }
            tokio::select! {
                biased;
                () = stopped.as_mut() => return None,
                () = clock::sleep_until(intended) => {}
            }
            let permit = tokio::select! {
                biased;
                () = stopped.as_mut() => return None,
                p = self.shared.handshakes.clone().acquire_owned() => p.ok()?,
            };
            // While the scheduler waited, sessions may have started this arrival and others;
            // then the slot goes back, and the scheduler looks at the new head.
            // None ready at once: the scheduler waits for one, and relays leave the head to it
            // meanwhile (`busy`, set in the same lock as the head was checked).
            let ready = {
                let mut d = self.dispatch.lock();
                if d.head.map(|(head, _)| head) != Some(k) {
                    continue;
                }
                match d.ready_device(self.pool.as_deref()) {
                    Some(device) => {
                        d.advance();
                        Ok(device)
                    }
                    None => {
                        d.busy = true;
                        Err((d.minted.take(), d.all_minted))
                    }
                }
            };
            let device = match ready {
                Ok(device) => device,
                Err((minted, all_minted)) => self.wait_device(minted, all_minted).await?,
            };
            let device = match device {
                Err(e) => return Some(e),
                Ok(d) => d,
            };
            self.spawn(device, k, intended, permit);
        }
    }

    /// A handshake slot came free: starts the next arrival with it if that is due and a device
    /// is ready at once. Otherwise the slot goes back to the handshake cap (and to the
    /// scheduler, if it waits for one).
    fn relay(self: &Arc<Self>, permit: tokio::sync::OwnedSemaphorePermit) {
        if let Some((device, k, intended)) = self.next_due() {
            self.spawn(device, k, intended, permit);
        }
    }

    /// The next arrival, taken off the schedule, if it is due and a device is ready at once:
    /// for a handshake slot that came free to start.
    fn next_due(&self) -> Option<(ReadyDevice, u64, Instant)> {
        // Another relay or the scheduler has the schedule: the slot goes back.
        let mut d = self.dispatch.try_lock()?;
        if d.busy || self.stop.is_cancelled() || self.shared.abort.is_cancelled() {
            return None;
        }
        let (k, intended) = d.head?;
        let now = Instant::now();
        if intended > now || self.until.is_some_and(|end| now >= end) {
            return None;
        }
        let device = match d.ready_device(self.pool.as_deref())? {
            Ok(device) => device,
            Err(e) => {
                // The minters failed: the scheduler ends the run on it when the slot wakes it.
                d.mint_error = Some(e);
                d.head = None;
                return None;
            }
        };
        d.advance();
        Some((device, k, intended))
    }

    /// Waits for a device for the head when none was ready at once (`Dispatch::ready_device`),
    /// with the minters' queue taken out of the dispatch: a newly minted one or one back in the
    /// pool, whichever comes first. Then gives the queue back and moves the head on. Minting is
    /// lazy and bounded (`MINT_QUEUE` ahead), so the devices held grow with the sessions the
    /// run uses, not with the fleet. `None` when the run stops or no device is left.
    async fn wait_device(
        &self,
        mut minted: Option<mpsc::Receiver<Result<ReadyDevice, String>>>,
        all_minted: bool,
    ) -> Option<Result<ReadyDevice, String>> {
        let device = match (&self.pool, minted.as_mut()) {
            (_, None) => None,
            (None, Some(minted)) => tokio::select! {
                biased;
                () = self.stop.cancelled() => None,
                d = minted.recv() => d,
            },
            (Some(pool), Some(minted)) => tokio::select! {
                biased;
                () = self.stop.cancelled() => None,
                Some(d) = minted.recv(), if !all_minted => Some(d),
                d = pool.returned() => Some(Ok(d)),
            },
        };
        let mut d = self.dispatch.lock();
        d.minted = minted;
        d.busy = false;
        d.advance();
        device
    }

    /// Spawns a task for the session of `arrival`, with its first handshake slot.
    fn spawn(
        self: &Arc<Self>,
        device: ReadyDevice,
        arrival: u64,
        intended: Instant,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let start = self.start(arrival, intended, Some(Instant::now()));
        let slot = Slot {
            permit,
            sessions: self.clone(),
        };
        if self.shared.sessions_run_on() {
            self.tracker.spawn(Self::runs_on(device, start, slot));
        } else {
            // The session future itself, not one that owns its arguments too.
            self.tracker
                .spawn(Self::session::<device::OnHeap>(device, start, slot));
        }
    }

    /// How the session of `arrival` starts.
    fn start(&self, arrival: u64, intended: Instant, spawned: Option<Instant>) -> Start {
        let staged = self.pool.is_some() && matches!(self.shared.hold, Some(Duration::MAX));
        // A session of its own to stop only when departures pick sessions one by one (stages);
        // otherwise the run's stop is the session's (a child token costs an allocation and
        // two locks of the parent per session).
        let stop = if staged {
            let own = self.stop.child_token();
            self.departures.lock().push((arrival, own.clone()));
            own
        } else {
            self.stop.clone()
        };
        Start {
            arrival,
            intended,
            spawned,
            stop,
            own_stop: staged,
        }
    }

    /// A session task of a run without lives: the session, then, while a session ends with its
    /// handshake slot kept ([`device::run`]: its close was over at once) and the next arrival is
    /// due, that one in the same task, as a client's loop would, rather than a task spawned for
    /// it. Otherwise the slot goes back to the handshake cap (and to the scheduler, if it waits
    /// for one).
    async fn runs_on(mut device: ReadyDevice, mut start: Start, mut slot: Slot) {
        loop {
            let Some(Slot { permit, sessions }) =
                Self::session::<device::InTask>(device, start, slot).await
            else {
                return;
            };
            let Some((next, k, intended)) = sessions.next_due() else {
                return;
            };
            device = next;
            start = sessions.start(k, intended, None);
            slot = Slot { permit, sessions };
        }
    }

    /// One device's session(s), then the device back to the pool. Returns the first handshake
    /// slot if [`device::run`] kept it and the task runs on ([`device::Room::RUNS_ON`]);
    /// otherwise frees it, to start the next arrival in a task of its own.
    async fn session<R: device::Room>(
        device: ReadyDevice,
        start: Start,
        slot: Slot,
    ) -> Option<Slot> {
        let sessions = slot.sessions.clone();
        let (arrival, staged) = (start.arrival, start.own_stop);
        let kept = device::run::<R, _>(sessions.shared.clone(), &device, start, slot).await;
        if staged {
            sessions.departures.lock().retain(|(a, _)| *a != arrival);
        }
        match &sessions.pool {
            Some(pool) => pool.put(device),
            None => sessions.shared.tally.record(&device),
        }
        match kept {
            Some(slot) if !R::RUNS_ON => {
                device::HandshakeSlot::free(slot);
                None
            }
            kept => kept,
        }
    }
}
