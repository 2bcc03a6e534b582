//! One session of one device: TCP connect -> TLS handshake -> protocol connect -> send on the
//! schedule while reading acknowledgements -> (hold) -> close. Every phase is timed and every
//! failure counted by phase and kind; a failed session never aborts the run.

use std::future::Future;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::Either;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::connect::connect;
use super::message::{telemetry, Stamping};
use crate::metrics::{incr, FailureKind, Phase, Recorder, Scheduled};
use crate::protocol::{Outcome, Session};
use crate::scenario::schedule::SendSchedule;
use crate::scenario::{MessagePlan, ReconnectPlan, SendModel};
use crate::transport::{DeviceStream, Endpoint};

/// What every session of a run shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) endpoint: Endpoint,
    pub(crate) protocol: Protocol,
    pub(crate) messages: MessagePlan,
    pub(crate) connect_timeout: Duration,
    /// Idle time after the last message: `None` none, `Some(MAX)` until stopped (stages).
    pub(crate) hold: Option<Duration>,
    pub(crate) sources: Vec<IpAddr>,
    pub(crate) recorder: Arc<Recorder>,
    /// Acknowledged messages of the devices that left the run, for the hub's accounting.
    pub(crate) tally: super::pool::Tally,
    /// Cancelled when the run must end now (deadline, grace over, second interrupt): every
    /// session gives up wherever it waits.
    pub(crate) abort: CancellationToken,
    /// `abort`, as sessions wait on it (fired by a task that follows the token): a poll of a
    /// session is then an atomic load rather than two locks.
    pub(crate) aborted: super::signal::Signal,
    /// The run's stop, as the sessions that stop with the run wait on it (likewise followed).
    pub(crate) stopped: super::signal::Signal,
    /// Reconnect after a failure, with backoff, if set.
    pub(crate) reconnect: Option<ReconnectPlan>,
    /// Handshakes in flight (reconnects take a slot too).
    pub(crate) handshakes: Arc<Semaphore>,
    /// Handshakes started, for choosing which to clock ([`Shared::clock_this_handshake`]).
    pub(crate) handshake_turn: AtomicU64,
}

/// The protocol of a run's sessions. MQTT's settings are shared by them all rather than
/// copied into each.
#[derive(Debug)]
pub(crate) enum Protocol {
    Mqtt(Arc<crate::protocol::MqttOptions>),
    Amqp(crate::protocol::AmqpOptions),
}

/// Every handshake's CPU is clocked up to this many, then one in [`CLOCK_ONE_IN`]: the thread
/// CPU clock is a system call a read (0.4 µs here, 4-5 reads a handshake: some 1 % of a resumed
/// handshake's CPU), and a steady sample gives the same mean and median.
const CLOCK_ALL_FIRST: u64 = 256;
const CLOCK_ONE_IN: u64 = 8;

impl Shared {
    /// Whether a session's task may run session after session ([`InTask`]): no session of the
    /// run has a life (nothing to send and no hold: a churn without messages), so that each
    /// closes as soon as it has connected, and a close is over at once (MQTT's; AMQP's waits for
    /// the hub's close, so its sessions free their slots and end their tasks as before).
    pub(crate) fn sessions_run_on(&self) -> bool {
        self.hold.is_none()
            && self.messages.count == 0
            && matches!(self.protocol, Protocol::Mqtt(_))
    }

    /// Whether to clock the CPU inside the handshake about to start.
    pub(crate) fn clock_this_handshake(&self) -> bool {
        let n = self.handshake_turn.fetch_add(1, Ordering::Relaxed);
        n < CLOCK_ALL_FIRST || n.is_multiple_of(CLOCK_ONE_IN)
    }
}

/// A device ready to connect: its minted identity as a TLS configuration.
#[derive(Debug)]
pub(crate) struct ReadyDevice {
    pub(crate) index: usize,
    pub(crate) id: String,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// Messages of this device acknowledged so far, over all its sessions.
    pub(crate) acked: AtomicU32,
    /// Messages sent so far, over all its sessions: the next message's number.
    pub(crate) sent: AtomicU32,
    /// The numbers of the messages sent and not acknowledged (rare: a broken session, a
    /// timeout, a refusal), for a verifying receiver's accounting.
    pub(crate) unacked: parking_lot::Mutex<Vec<u32>>,
}

/// When and how one session starts.
#[derive(Debug)]
pub(crate) struct Start {
    /// The schedule's arrival number (picks the source address).
    pub(crate) arrival: u64,
    /// When the schedule wanted the session to connect.
    pub(crate) intended: Instant,
    /// When its task was spawned (to measure how late it first ran); `None` when the session
    /// runs on in the task of the one before it, which no scheduler had to start.
    pub(crate) spawned: Option<Instant>,
    /// Cancelled when this session must end: no new sends, in-flight acks still awaited.
    pub(crate) stop: CancellationToken,
    /// Whether `stop` is the session's own (stages take sessions down one by one); else it is
    /// the run's, and the session waits on [`Shared::stopped`] instead.
    pub(crate) own_stop: bool,
}

impl Start {
    /// Waits until this session must stop.
    fn stopped<'a>(&'a self, shared: &'a Shared) -> impl Future<Output = ()> + 'a {
        if self.own_stop {
            Either::Right(self.stop.cancelled())
        } else {
            Either::Left(shared.stopped.fired())
        }
    }
}

/// A session's first handshake slot, freed once its first attempt to connect is over.
pub(crate) trait HandshakeSlot: Send {
    /// Gives the slot up: the attempt connected or failed.
    fn free(self);
}

/// Where a session's connect and close futures live while they run: on the heap, so that a
/// long-lived session's task is not widened for its whole life by futures dead once it has
/// connected, or in the task, when every session of the run closes as soon as it has
/// connected (a churn without messages) and its task goes on to the next arrival.
pub(crate) trait Room {
    /// Whether a task in this room goes on to the next arrival when its session closed at once.
    const RUNS_ON: bool;
    /// `F`, placed.
    type Placed<F: Future>: Future<Output = F::Output>;
    fn place<F: Future>(f: F) -> Self::Placed<F>;
}

/// The connect and close futures boxed, each for as long as it runs.
pub(crate) enum OnHeap {}

impl Room for OnHeap {
    const RUNS_ON: bool = false;
    type Placed<F: Future> = std::pin::Pin<Box<F>>;
    fn place<F: Future>(f: F) -> Self::Placed<F> {
        Box::pin(f)
    }
}

/// The connect and close futures in the session's task (a task that runs session after
/// session allocates them once, not once a session).
pub(crate) enum InTask {}

impl Room for InTask {
    const RUNS_ON: bool = true;
    type Placed<F: Future> = F;
    fn place<F: Future>(f: F) -> F {
        f
    }
}

/// Why a session ended badly (already counted).
struct Broken;

/// Runs one device's sessions: the first, and with a reconnect policy, the ones after a
/// failure, until its messages are done or the run stops. `handshake` is freed once the
/// first attempt is over (it may start the next arrival); reconnects take a handshake slot of
/// their own. When the run aborts, the device ends at once wherever it waits (connect phases
/// count that as unfinished, as do messages still in flight).
///
/// Returns `handshake` unfreed when the first session closed as soon as it connected, and its
/// close was over at once: the caller may start the next arrival with it in this task.
pub(crate) async fn run<R: Room, P: HandshakeSlot>(
    shared: Arc<Shared>,
    device: &ReadyDevice,
    start: Start,
    handshake: P,
) -> Option<P> {
    let rec = &*shared.recorder;
    // One clock read for the task's start delay and the sender's clock.
    let now = Instant::now();
    if let Some(spawned) = start.spawned {
        rec.record_task_start(now - spawned);
    }
    let mut sender = Sender::new(&shared, device, now);
    // The sessions come first: a connect phase or the sender that sees the abort counts what it
    // leaves unfinished; wherever else the device waits (a write, a close, a backoff), this
    // ends it.
    let (aborted, kept) = tokio::select! {
        biased;
        kept = sessions::<R, P>(&shared, device, start, handshake, &mut sender) => (false, kept),
        () = shared.aborted.fired() => (true, None),
    };
    if aborted {
        sender.give_up(
            FailureKind::Unfinished,
            "run ended before the acknowledgement",
        );
    }
    if !sender.connected {
        incr(&rec.counters.devices_never_connected);
    }
    kept
}

/// The device's sessions, one after another while the reconnect policy allows. Returns the
/// first handshake slot unfreed as [`run`] says.
async fn sessions<R: Room, P: HandshakeSlot>(
    shared: &Shared,
    device: &ReadyDevice,
    mut start: Start,
    handshake: P,
    sender: &mut Sender<'_>,
) -> Option<P> {
    let rec = &*shared.recorder;
    let mut first = Some(handshake);
    let mut slot: Option<OwnedSemaphorePermit> = None;
    let mut failures = 0u32;
    loop {
        incr(&rec.counters.sessions_attempted);
        // In its room (`R`): the handshake's futures are large and dead once connected.
        // The session goes straight into the boxed `live` future: held in this task's frame
        // across an await, it would cost its size twice for the session's whole life.
        let lived = {
            // The connected session is moved out of `living` at once, and `living` is dead
            // before the next await: held in scope across it, a brief session's value would
            // widen every session's task.
            let (life, close) = {
                let attempt = sender.attempt;
                let living = R::place(connect(shared, device, &start, attempt, Instant::now()))
                    .await
                    .map(|mut session| {
                        if attempt > 1 {
                            incr(&rec.counters.reconnects_connected);
                        }
                        sender.connected = true;
                        if !sender.has_life() {
                            // Nothing to send and no hold (a churn without messages): the session
                            // is connected and closed at once, without a life's future.
                            sender.brief();
                            return Life::Brief(session);
                        }
                        let (sender, start) = (&mut *sender, &start);
                        // The session is this future's own (not an argument that async fn would
                        // copy into a second slot); closing takes it by value.
                        Life::Full(Box::pin(async move {
                            live(shared, &mut session, sender, start).await?;
                            session.close().await;
                            Ok::<(), Broken>(())
                        }))
                    });
                match living {
                    Some(Life::Full(life)) => (Some(life), None),
                    Some(Life::Brief(session)) => (None, Some(R::place(session.close()))),
                    None => (None, None),
                }
            };
            // A close over at once (MQTT's: DISCONNECT and close_notify in one write) keeps the
            // first slot for the caller to start the next arrival with, in this task; one that
            // waits on the peer (AMQP's) frees it first, as a session with a life does.
            let mut close = pin!(close);
            if let Some(close) = close.as_mut().as_pin_mut() {
                if futures::poll!(close).is_ready() {
                    drop(slot.take());
                    return first.take();
                }
            }
            if let Some(slot) = first.take() {
                slot.free();
            }
            drop(slot.take());
            match (life, close.as_pin_mut()) {
                (_, Some(close)) => {
                    close.await;
                    Some(Ok(()))
                }
                (Some(life), None) => Some(life.await),
                (None, None) => None,
            }
        };
        match lived {
            Some(Ok(())) => return None,
            Some(Err(Broken)) => failures = 0,
            None => {}
        }
        // The session failed (counted). Reconnect if the scenario says so.
        let Some(policy) = &shared.reconnect else {
            return None;
        };
        failures += 1;
        if start.stop.is_cancelled() || sender.finished() || failures > policy.attempts {
            return None;
        }
        let delay = policy.backoff(failures, sender.rng());
        tokio::select! {
            () = start.stop.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        slot = tokio::select! {
            () = start.stop.cancelled() => return None,
            p = shared.handshakes.clone().acquire_owned() => p.ok(),
        };
        incr(&rec.counters.reconnects);
        sender.attempt += 1;
        start.intended = Instant::now();
    }
}

/// What a connected session does before it closes: a life (send, hold), boxed, or nothing:
/// the session, to close at once in its room (a churn without messages makes no life's future
/// per session).
enum Life<F, S> {
    Full(std::pin::Pin<Box<F>>),
    Brief(S),
}

/// A connected session's life: send, (hold). `Err` when it broke (counted); the caller
/// closes it otherwise.
async fn live(
    shared: &Shared,
    session: &mut Session<DeviceStream>,
    sender: &mut Sender<'_>,
    start: &Start,
) -> Result<(), Broken> {
    let rec = &*shared.recorder;
    incr(&rec.counters.sessions_connected);
    let active = Active::count(&rec.counters);
    let result = sender.run(session, start).await;
    drop(active);
    if result.is_err() {
        incr(&rec.counters.sessions_failed);
    }
    result
}

/// Counts a session as active while it lives, even if the run drops it mid-await.
struct Active<'a>(&'a crate::metrics::Counters);

impl<'a> Active<'a> {
    fn count(counters: &'a crate::metrics::Counters) -> Self {
        counters.session_opened();
        Self(counters)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.session_closed();
    }
}

struct InFlight {
    seq: u64,
    /// The message's number (its id's `n`).
    n: u32,
    due: Instant,
    sent: Instant,
}

/// The sending half of a connected session.
struct Sender<'a> {
    shared: &'a Shared,
    device: &'a ReadyDevice,
    ack_phase: Phase,
    keep_alive: Option<Duration>,
    inflight: Vec<InFlight>,
    last_write: Instant,
    /// The send schedule survives reconnects: these say where it stands.
    schedule: SendSchedule,
    think: Option<Duration>,
    /// When the first session became ready (the schedule's origin).
    origin: Option<Instant>,
    next: u32,
    /// Closed model: the next message is due this long after the last acknowledgement.
    closed_due: Option<Instant>,
    hold_until: Option<Instant>,
    /// Closed model: the fastest acknowledgement so far, for the expected send interval.
    fastest_ack: Option<Duration>,
    /// Seeded at its first use: a session without messages or backoffs (churn) needs none.
    rng: Option<rand::rngs::SmallRng>,
    /// The device's session number: 1 for the first, one more per reconnect.
    attempt: u32,
    /// Whether any session of the device connected.
    connected: bool,
}

impl<'a> Sender<'a> {
    fn new(shared: &'a Shared, device: &'a ReadyDevice, now: Instant) -> Self {
        let (ack_phase, keep_alive) = match &shared.protocol {
            // fe2o3-amqp answers the hub's idle-time-out with empty frames by itself.
            Protocol::Amqp(_) => (Phase::SendAck, None),
            Protocol::Mqtt(o) => (
                Phase::PublishAck,
                (o.keep_alive_secs > 0).then(|| Duration::from_secs(o.keep_alive_secs.into())),
            ),
        };
        let plan = &shared.messages;
        let (interval, think) = match plan.model {
            SendModel::Open { interval } => (interval, None),
            SendModel::Closed { think } => (Duration::ZERO, Some(think)),
        };
        Self {
            shared,
            device,
            ack_phase,
            keep_alive,
            // Grown as needed: a session without messages (churn) allocates none.
            inflight: Vec::new(),
            last_write: now,
            schedule: SendSchedule {
                count: plan.count,
                interval,
                duration: plan.duration,
            },
            think,
            origin: None,
            next: 0,
            closed_due: None,
            hold_until: None,
            fastest_ack: None,
            rng: None,
            attempt: 1,
            connected: false,
        }
    }

    /// The message due next, if any is left (open model: on the schedule; closed: after the
    /// last acknowledgement).
    fn due(&self, origin: Instant) -> Option<Instant> {
        let send_end = self.schedule.duration.map(|d| origin + d);
        if send_end.is_some_and(|e| Instant::now() >= e) {
            return None;
        }
        let at = self.schedule.offset(self.next)?;
        Some(match self.think {
            Some(_) => self.closed_due.unwrap_or(origin),
            None => origin + at,
        })
    }

    /// Whether nothing is left to do: every message sent and any hold over.
    fn finished(&self) -> bool {
        let sent_all = self.origin.is_some_and(|o| self.due(o).is_none());
        let held =
            self.shared.hold.is_none() || self.hold_until.is_some_and(|h| Instant::now() >= h);
        sent_all && held
    }

    /// Whether a session connecting now may have anything to do before it closes: a message
    /// left to send, or a hold. `false` only when [`Self::run`] would return at once.
    fn has_life(&self) -> bool {
        self.shared.hold.is_some() || self.schedule.offset(self.next).is_some()
    }

    /// A session without a life: counted as [`live`] counts one that returns at once. (The
    /// schedule's origin and the last write, which `run` would set, are read only by a later
    /// session or send, and a device without a life has neither.)
    fn brief(&self) {
        let counters = &self.shared.recorder.counters;
        incr(&counters.sessions_connected);
        drop(Active::count(counters));
    }

    /// The device's random numbers (payload readings, backoff jitter).
    fn rng(&mut self) -> &mut rand::rngs::SmallRng {
        self.rng
            .get_or_insert_with(|| rand::SeedableRng::from_rng(&mut rand::rng()))
    }

    fn rec(&self) -> &Recorder {
        &self.shared.recorder
    }

    /// Sends on the schedule, reads acknowledgements, then holds if asked, until done or stopped.
    async fn run<S>(&mut self, session: &mut Session<S>, started: &Start) -> Result<(), Broken>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let plan = &self.shared.messages;
        // An MQTT 5 broker's receive maximum caps the window below the scenario's.
        let max_inflight = (plan.max_inflight as usize).min(session.inflight_cap());
        let now = Instant::now();
        let start = *self.origin.get_or_insert(now);
        let far = now + Duration::from_secs(86_400 * 365);
        let mut stopping = false;
        self.last_write = now;
        // Made once for the session, not once per turn of the loop (a turn per acknowledgement):
        // each turn would otherwise register and drop two cancellation waiters and a timer entry.
        let shared = self.shared;
        let mut aborted = pin!(shared.aborted.fired());
        let mut stopped = pin!(started.stopped(shared));
        // The coarse deadlines (acknowledgement timeout, hold end, keep-alive) share one timer:
        // a session waits on one timer entry, not three. It is re-armed only when a deadline
        // comes before it or it has fired; a deadline that moved later (the oldest message in
        // flight was acknowledged, a write pushed the keep-alive back) lets it fire early once,
        // and the turn after re-arms it, instead of re-registering it at every acknowledgement.
        let mut coarse = pin!(sleep_until(far));

        loop {
            let due = if stopping || self.hold_until.is_some() {
                None
            } else {
                self.due(start)
            };
            if due.is_none() && self.inflight.is_empty() {
                if stopping {
                    return Ok(());
                }
                match (self.hold_until, self.shared.hold) {
                    (Some(until), _) if Instant::now() >= until => return Ok(()),
                    (Some(_), _) => {}
                    (None, None) => return Ok(()),
                    (None, Some(h)) => {
                        self.hold_until =
                            Some(Instant::now().checked_add(h).unwrap_or(far).min(far))
                    }
                }
            }
            let send_at = due.filter(|_| self.inflight.len() < max_inflight);
            let ack_deadline = self
                .inflight
                .iter()
                .map(|f| f.sent)
                .min()
                .map(|s| s + plan.timeout);
            let ping_at = self.keep_alive.map(|k| self.last_write + k);
            let hold_end = self.hold_until.filter(|_| self.inflight.is_empty());
            let coarse_at = [ack_deadline, hold_end, ping_at]
                .into_iter()
                .flatten()
                .min();
            if let Some(at) = coarse_at {
                if coarse.is_elapsed() || at < coarse.deadline() {
                    coarse.as_mut().reset(at);
                }
            }
            tokio::select! {
                biased;
                () = aborted.as_mut() => {
                    self.give_up(FailureKind::Unfinished, "run ended before the acknowledgement");
                    return Ok(());
                }
                () = stopped.as_mut(), if !stopping => stopping = true,
                ack = session.next_ack() => match ack {
                    Ok(ack) => {
                        let now = Instant::now();
                        let Some(i) = self.inflight.iter().position(|f| f.seq == ack.seq) else { continue };
                        let f = self.inflight.swap_remove(i);
                        self.acknowledged(f, ack.outcome, now);
                        if let Some(think) = self.think {
                            self.closed_due = Some(now + think);
                        }
                    }
                    Err(e) => {
                        let n = self.inflight.len();
                        return Err(self.broken(e.kind(), format!("{e} ({n} awaiting acknowledgement)")));
                    }
                },
                // The send deadline is the schedule's: it gets the precise clock; the others
                // are timeouts and keep tokio's millisecond timer.
                () = super::clock::sleep_until(send_at.unwrap_or(far)), if send_at.is_some() => {
                    // Queue every message that is due by now and fits the window, then write
                    // them at once: one syscall and one TLS record for a burst.
                    let now = Instant::now();
                    let mut due = due;
                    while let Some(d) = due.filter(|d| *d <= now && self.inflight.len() < max_inflight) {
                        self.queue(session, d).await?;
                        due = if self.think.is_some() { None } else { self.due(start) };
                    }
                    self.flush(session).await?;
                }
                () = coarse.as_mut(), if coarse_at.is_some() => {
                    let now = Instant::now();
                    if ack_deadline.is_some_and(|at| at <= now) {
                        self.give_up(FailureKind::Timeout, "no acknowledgement within the timeout");
                        return Err(Broken);
                    }
                    if hold_end.is_some_and(|at| at <= now) {
                        return Ok(());
                    }
                    if ping_at.is_some_and(|at| at <= now) {
                        if let Err(e) = session.keep_alive().await {
                            return Err(self.broken(e.kind(), format!("{e} on keep-alive")));
                        }
                        self.last_write = Instant::now();
                    }
                    // Otherwise it fired for a deadline that has since moved later.
                }
            }
        }
    }

    /// The session broke: one failure of `kind`, and every in-flight message unacknowledged.
    fn broken(&mut self, kind: FailureKind, message: String) -> Broken {
        let n = self.inflight.len() as u64;
        self.fail_here(kind, 1, &message);
        self.rec()
            .counters
            .messages_unacked
            .fetch_add(n, Ordering::Relaxed);
        self.forget_inflight();
        Broken
    }

    /// Writes everything queued.
    async fn flush<S>(&mut self, session: &mut Session<S>) -> Result<(), Broken>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        match session.flush().await {
            Ok(()) => {
                self.last_write = Instant::now();
                Ok(())
            }
            Err(e) => Err(self.broken(e.kind(), format!("{e} while sending"))),
        }
    }

    /// Queues the next message, due at `due`.
    async fn queue<S>(&mut self, session: &mut Session<S>, due: Instant) -> Result<(), Broken>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let sent = Instant::now();
        // Numbered over all the device's sessions, so that a churning device's ids stay unique.
        let n = self.device.sent.load(Ordering::Relaxed);
        let stamping = self.shared.messages.stamp.map(|stamp| Stamping {
            stamp,
            device: self.device.index as u32,
            sent_us: crate::protocol::stamp::unix_micros(sent.into_std()),
        });
        let msg = telemetry(
            self.shared.messages.payload,
            &self.device.id,
            n,
            stamping,
            self.rng(),
        );
        match session.send(&msg).await {
            Ok((seq, settled)) => {
                self.next += 1;
                self.device.sent.store(n + 1, Ordering::Relaxed);
                let rec = &*self.shared.recorder;
                incr(&rec.counters.messages_sent);
                rec.spans.sent(due, sent);
                rec.counters
                    .bytes_sent
                    .fetch_add(msg.body.len() as u64, Ordering::Relaxed);
                if settled {
                    self.record_response(Scheduled {
                        intended: due,
                        started: sent,
                        done: sent,
                    });
                } else {
                    self.inflight.push(InFlight { seq, n, due, sent });
                }
                Ok(())
            }
            // Not sent: with a reconnect policy it goes out on the next session.
            Err(e) => Err(self.broken(e.kind(), format!("{e} while sending"))),
        }
    }

    /// Records a send's response time. The closed model's is corrected for coordinated
    /// omission at the interval the device would have kept with the hub at its fastest: think
    /// time plus the quickest acknowledgement this device has had before this one.
    fn record_response(&self, at: Scheduled) {
        let rec = self.rec();
        match self.think {
            Some(think) => {
                let interval = think + self.fastest_ack.unwrap_or_default();
                rec.record_closed_loop(self.device.index, at, interval);
            }
            None => rec.record_scheduled(Phase::SendResponse, self.device.index, at),
        }
    }

    fn acknowledged(&mut self, f: InFlight, outcome: Outcome, now: Instant) {
        let shared = self.shared;
        let rec = &*shared.recorder;
        let shard = self.device.index;
        match outcome {
            Outcome::Accepted => {
                rec.record(self.ack_phase, shard, now - f.sent);
                rec.counters
                    .ack_latency_us
                    .fetch_add(crate::metrics::micros(now - f.sent), Ordering::Relaxed);
                self.record_response(Scheduled {
                    intended: f.due,
                    started: f.sent,
                    done: now,
                });
                let service = now - f.sent;
                self.fastest_ack = Some(self.fastest_ack.map_or(service, |f| f.min(service)));
                incr(&rec.counters.messages_acked);
                self.device.acked.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Refused(reason) => {
                incr(&rec.counters.messages_unacked);
                self.device.unacked.lock().push(f.n);
                rec.not_accepted(&reason);
                let kind = if reason.contains("throttled") {
                    FailureKind::Throttled
                } else {
                    FailureKind::Refused
                };
                self.fail_here(kind, 1, &reason);
            }
        }
    }

    /// Counts every in-flight message as never acknowledged.
    fn give_up(&mut self, kind: FailureKind, why: &'static str) {
        let n = self.inflight.len() as u64;
        if n > 0 {
            self.rec()
                .counters
                .messages_unacked
                .fetch_add(n, Ordering::Relaxed);
            self.fail_here(kind, n, &format!("{why} ({n} awaiting acknowledgement)"));
            self.forget_inflight();
        }
    }

    /// Drops every in-flight message, noting its number as never acknowledged.
    fn forget_inflight(&mut self) {
        if !self.inflight.is_empty() {
            let mut unacked = self.device.unacked.lock();
            unacked.extend(self.inflight.drain(..).map(|f| f.n));
        }
    }

    /// Counts `n` failures of `kind` in the acknowledgement phase, with this device's id and
    /// session number.
    fn fail_here(&self, kind: FailureKind, n: u64, message: &str) {
        self.rec().fail_device(
            (self.ack_phase, kind, n),
            &self.device.id,
            self.attempt,
            message,
        );
    }
}
