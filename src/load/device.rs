//! One device's lifecycle: TCP connect -> TLS handshake -> protocol connect -> send on its
//! schedule while reading acknowledgements -> close. Every phase is timed and every failure
//! counted by phase and kind; a failed device never aborts the run.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::message::telemetry;
use super::schedule::{lateness, SendSchedule};
use crate::metrics::{incr, FailureKind, Phase, Recorder};
use crate::protocol::{io_kind, AmqpSession, MqttSession, Outcome, Session};
use crate::scenario::{MessagePlan, ProtocolPlan};
use crate::transport::{self, Endpoint};

/// What every device task of a run shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) endpoint: Endpoint,
    pub(crate) protocol: ProtocolPlan,
    pub(crate) messages: MessagePlan,
    pub(crate) connect_timeout: Duration,
    pub(crate) recorder: Arc<Recorder>,
    /// Acknowledged messages per device index, for the hub's accounting.
    pub(crate) acked: Vec<AtomicU32>,
    /// Cancelled when the schedule must stop: no new sends, in-flight acks still awaited.
    pub(crate) stop: CancellationToken,
    /// Cancelled when the grace period is over: give up on in-flight acks.
    pub(crate) abort: CancellationToken,
}

/// A device ready to connect: minted identity and its TLS configuration.
#[derive(Debug)]
pub(crate) struct ReadyDevice {
    pub(crate) index: usize,
    pub(crate) id: String,
    pub(crate) tls: Arc<rustls::ClientConfig>,
}

/// Runs one device to completion. `intended` is when the schedule wanted it to connect.
pub(crate) async fn run(
    shared: Arc<Shared>,
    device: ReadyDevice,
    intended: Instant,
    permit: OwnedSemaphorePermit,
) {
    let rec = &*shared.recorder;
    let shard = device.index;
    incr(&rec.counters.sessions_attempted);
    let started = Instant::now();
    let t = shared.connect_timeout;

    // TCP
    let tcp = match timeout(t, transport::tcp_connect(shared.endpoint.addr, None)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return fail_session(rec, Phase::TcpConnect, FailureKind::Connect, || {
                e.to_string()
            })
        }
        Err(_) => {
            return fail_session(rec, Phase::TcpConnect, FailureKind::Timeout, || {
                format!("no connection within {t:?}")
            })
        }
    };
    let t1 = Instant::now();
    rec.record(Phase::TcpConnect, shard, t1 - started);

    // TLS
    let server_name = shared.endpoint.server_name.clone();
    let (tls, resumed) = match timeout(
        t,
        transport::tls_handshake(device.tls.clone(), server_name, tcp),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let kind = match io_kind(&e) {
                FailureKind::Connect => FailureKind::Handshake,
                k => k,
            };
            return fail_session(rec, Phase::TlsHandshake, kind, || e.to_string());
        }
        Err(_) => {
            return fail_session(rec, Phase::TlsHandshake, FailureKind::Timeout, || {
                format!("no handshake within {t:?}")
            })
        }
    };
    let t2 = Instant::now();
    rec.record(
        if resumed {
            Phase::TlsResumed
        } else {
            Phase::TlsHandshake
        },
        shard,
        t2 - t1,
    );
    incr(&rec.counters.handshakes);

    // Protocol connect
    let Some((mut session, ready)) = connect_protocol(&shared, &device, tls, t2).await else {
        return incr(&rec.counters.sessions_failed);
    };
    rec.record_scheduled(
        Phase::ConnectResponse,
        shard,
        lateness(Duration::ZERO, started - intended),
        ready - intended,
    );
    drop(permit);
    incr(&rec.counters.sessions_connected);
    rec.counters.sessions_active.fetch_add(1, Ordering::Relaxed);

    let result = send_loop(&shared, &device, &mut session).await;
    rec.counters.sessions_active.fetch_sub(1, Ordering::Relaxed);
    match result {
        Ok(()) => session.close().await,
        Err(()) => incr(&rec.counters.sessions_failed),
    }
}

/// The protocol's own connect phases, each timed and recorded; `None` when one failed (counted).
/// Returns the session and when it became ready.
async fn connect_protocol(
    shared: &Shared,
    device: &ReadyDevice,
    tls: transport::DeviceStream,
    from: Instant,
) -> Option<(Session<transport::DeviceStream>, Instant)> {
    let rec = &*shared.recorder;
    let t = shared.connect_timeout;
    let host = &shared.endpoint.host;
    match &shared.protocol {
        ProtocolPlan::Mqtt(opts) => {
            let connect = MqttSession::connect(tls, opts.clone(), &device.id, host);
            let s = timed_phase(rec, Phase::MqttConnect, device.index, from, t, connect).await?;
            Some((Session::Mqtt(s), Instant::now()))
        }
        ProtocolPlan::Amqp(opts) => {
            let open = AmqpSession::open(tls, opts.clone(), &device.id, host);
            let conn = timed_phase(rec, Phase::AmqpOpen, device.index, from, t, open).await?;
            let opened = Instant::now();
            let s = timed_phase(
                rec,
                Phase::AmqpAttach,
                device.index,
                opened,
                t,
                conn.attach(),
            )
            .await?;
            Some((Session::Amqp(s), Instant::now()))
        }
    }
}

/// Runs one connect phase under the timeout and records its time from `from`, or its failure.
async fn timed_phase<T>(
    rec: &Recorder,
    phase: Phase,
    shard: usize,
    from: Instant,
    t: Duration,
    fut: impl std::future::Future<Output = Result<T, crate::protocol::SessionError>>,
) -> Option<T> {
    match timeout(t, fut).await {
        Ok(Ok(v)) => {
            rec.record(phase, shard, from.elapsed());
            Some(v)
        }
        Ok(Err(e)) => {
            rec.fail(phase, e.kind(), || e.to_string());
            None
        }
        Err(_) => {
            rec.fail(phase, FailureKind::Timeout, || {
                format!("no answer within {t:?}")
            });
            None
        }
    }
}

fn fail_session(rec: &Recorder, phase: Phase, kind: FailureKind, msg: impl FnOnce() -> String) {
    rec.fail(phase, kind, msg);
    incr(&rec.counters.sessions_failed);
}

struct InFlight {
    seq: u64,
    due: Instant,
    sent: Instant,
}

/// Sends on schedule and reads acknowledgements until every message is settled. `Err` when
/// the session broke (already counted).
async fn send_loop<S>(
    shared: &Shared,
    device: &ReadyDevice,
    session: &mut Session<S>,
) -> Result<(), ()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let rec = &*shared.recorder;
    let plan = &shared.messages;
    let ack_phase = match shared.protocol {
        ProtocolPlan::Amqp(_) => Phase::SendAck,
        ProtocolPlan::Mqtt(_) => Phase::PublishAck,
    };
    let keep_alive = match &shared.protocol {
        // fe2o3-amqp answers the hub's idle-time-out with empty frames by itself.
        ProtocolPlan::Amqp(_) => None,
        ProtocolPlan::Mqtt(o) => {
            (o.keep_alive_secs > 0).then(|| Duration::from_secs(o.keep_alive_secs.into()))
        }
    };
    let schedule = SendSchedule {
        count: plan.count,
        interval: plan.interval,
    };
    let max_inflight = plan.max_inflight as usize;
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::from_rng(&mut rand::rng());
    let start = Instant::now();
    let mut next = 0u32;
    let mut inflight: Vec<InFlight> = Vec::with_capacity(max_inflight.min(64));
    let mut last_write = start;
    let mut stopping = false;
    let far = start + Duration::from_secs(86_400 * 365);

    loop {
        let due = if stopping {
            None
        } else {
            schedule.offset(next).map(|o| start + o)
        };
        if due.is_none() && inflight.is_empty() {
            return Ok(());
        }
        let can_send = due.is_some() && inflight.len() < max_inflight;
        let ack_deadline = inflight
            .iter()
            .map(|f| f.sent)
            .min()
            .map(|s| s + plan.timeout);
        let ping_at = keep_alive.map(|k| last_write + k);
        tokio::select! {
            biased;
            () = shared.abort.cancelled() => {
                give_up(rec, ack_phase, inflight.len(), FailureKind::Unfinished, "run ended before the acknowledgement");
                return Ok(());
            }
            () = shared.stop.cancelled(), if !stopping => stopping = true,
            ack = session.next_ack() => match ack {
                Ok(ack) => {
                    let now = Instant::now();
                    let Some(i) = inflight.iter().position(|f| f.seq == ack.seq) else { continue };
                    let f = inflight.swap_remove(i);
                    match ack.outcome {
                        Outcome::Accepted => {
                            rec.record(ack_phase, device.index, now - f.sent);
                            rec.record_scheduled(Phase::SendResponse, device.index, f.sent - f.due, now - f.due);
                            incr(&rec.counters.messages_acked);
                            shared.acked[device.index].fetch_add(1, Ordering::Relaxed);
                        }
                        Outcome::Refused(reason) => {
                            incr(&rec.counters.messages_unacked);
                            rec.fail(ack_phase, FailureKind::Refused, || reason);
                        }
                    }
                }
                Err(e) => {
                    let n = inflight.len();
                    rec.fail(ack_phase, e.kind(), || format!("{e} ({n} awaiting acknowledgement)"));
                    rec.counters.messages_unacked.fetch_add(n as u64, Ordering::Relaxed);
                    return Err(());
                }
            },
            () = sleep_until(due.unwrap_or(far)), if can_send => {
                let msg = telemetry(plan.payload, &device.id, next, &mut rng);
                let sent = Instant::now();
                match session.send(&msg).await {
                    Ok((seq, settled)) => {
                        incr(&rec.counters.messages_sent);
                        rec.counters.bytes_sent.fetch_add(msg.body.len() as u64, Ordering::Relaxed);
                        last_write = Instant::now();
                        // Invariant: `can_send` implies `due` is Some.
                        let due = due.unwrap_or(sent);
                        if !settled {
                            inflight.push(InFlight { seq, due, sent });
                        }
                    }
                    Err(e) => {
                        rec.fail(ack_phase, e.kind(), || format!("{e} while sending"));
                        rec.counters.messages_unacked.fetch_add(inflight.len() as u64, Ordering::Relaxed);
                        return Err(());
                    }
                }
                next += 1;
            }
            () = sleep_until(ack_deadline.unwrap_or(far)), if ack_deadline.is_some() => {
                let n = inflight.len();
                give_up(rec, ack_phase, n, FailureKind::Timeout, "no acknowledgement within the timeout");
                return Err(());
            }
            () = sleep_until(ping_at.unwrap_or(far)), if ping_at.is_some() => {
                if let Err(e) = session.keep_alive().await {
                    rec.fail(ack_phase, e.kind(), || format!("{e} on keep-alive"));
                    rec.counters.messages_unacked.fetch_add(inflight.len() as u64, Ordering::Relaxed);
                    return Err(());
                }
                last_write = Instant::now();
            }
        }
    }
}

/// Counts `n` in-flight messages as never acknowledged.
fn give_up(rec: &Recorder, phase: Phase, n: usize, kind: FailureKind, why: &'static str) {
    if n > 0 {
        rec.counters
            .messages_unacked
            .fetch_add(n as u64, Ordering::Relaxed);
        rec.fail_many(phase, kind, n as u64, || why.to_owned());
    }
}
