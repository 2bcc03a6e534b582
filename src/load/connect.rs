//! A session's connect: TCP connect, TLS handshake, the WebSocket upgrade when the protocol goes
//! over WebSockets, and the protocol's own connect (CONNACK; AMQP open and attach), each timed
//! apart and each bounded by its timeout and by the run.

use std::pin::{pin, Pin};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::device::{Protocol, ReadyDevice, Shared, Start};
use super::signal::Signal;
use crate::metrics::{incr, FailureKind, HandshakeSample, Phase, Recorder, Scheduled};
use crate::protocol::{io_kind, AmqpSession, MqttSession, Session, SessionError};
use crate::transport::ws::{self, UpgradeError};
use crate::transport::{self, DeviceStream, MaybeWs, TlsDeviceStream};

/// How a bounded wait for a connect phase ended, short of the phase's own result.
enum Cut {
    /// The phase's timeout passed.
    Timeout,
    /// The run aborted.
    Aborted,
}

/// What bounds every connect phase of a session: the run's abort and the phase's timeout (a
/// timer entry registered once per session, not per phase).
///
/// The abort is looked at, not waited on: the device's task already waits on it
/// (`device::run`), and that wake-up polls the phase again, which then sees it first.
struct Bounds<'a, 's> {
    aborted: &'s Signal,
    /// Armed at the first phase's deadline. A later phase's deadline is later, so the timer
    /// is re-armed only if it fires while a phase is still within its own.
    timer: Pin<&'a mut Sleep>,
    timeout: Duration,
}

impl Bounds<'_, '_> {
    /// Awaits `fut`, a phase that began at `from`, for at most the timeout, and no longer than
    /// the run lasts.
    async fn phase<T>(
        &mut self,
        from: Instant,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<T, Cut> {
        let deadline = from + self.timeout;
        let mut fut = pin!(fut);
        loop {
            tokio::select! {
                biased;
                () = self.aborted.looked_at() => return Err(Cut::Aborted),
                r = fut.as_mut() => return Ok(r),
                () = self.timer.as_mut() => {
                    if Instant::now() >= deadline {
                        return Err(Cut::Timeout);
                    }
                    self.timer.as_mut().reset(deadline);
                }
            }
        }
    }
}

/// Whose session this is: for the failures' device ids and `failures.csv`.
struct Who<'a> {
    rec: &'a Recorder,
    device: &'a str,
    /// The device's index: its shard of the histograms.
    shard: usize,
    /// 1 for the device's first session, one more per reconnect.
    attempt: u32,
}

/// Counts a connect phase the run ended before it finished.
fn unfinished<T>(who: &Who, phase: Phase) -> Option<T> {
    fail_session(who, phase, FailureKind::Unfinished, || {
        "run ended before the phase finished".to_owned()
    })
}

/// TCP connect, TLS handshake and protocol connect, each timed; `None` when one failed (counted
/// against the device's session `attempt`).
pub(super) async fn connect(
    shared: &Shared,
    device: &ReadyDevice,
    start: &Start,
    attempt: u32,
    started: Instant,
) -> Option<Session<DeviceStream>> {
    let rec = &*shared.recorder;
    let who = &Who {
        rec,
        device: &device.id,
        shard: device.index,
        attempt,
    };
    let shard = who.shard;
    let t = shared.connect_timeout;
    let source = (!shared.sources.is_empty())
        .then(|| shared.sources[(start.arrival % shared.sources.len() as u64) as usize]);
    let timer = pin!(tokio::time::sleep_until(started + t));
    let bounds = &mut Bounds {
        aborted: &shared.aborted,
        timer,
        timeout: t,
    };

    let tcp = match bounds
        .phase(
            started,
            transport::tcp_connect(shared.endpoint.addr, source),
        )
        .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return fail_session(who, Phase::TcpConnect, FailureKind::Connect, || {
                e.to_string()
            })
        }
        Err(Cut::Aborted) => return unfinished(who, Phase::TcpConnect),
        Err(Cut::Timeout) => {
            return fail_session(who, Phase::TcpConnect, FailureKind::Timeout, || {
                format!("no connection within {t:?}")
            })
        }
    };
    let t1 = Instant::now();
    rec.record(Phase::TcpConnect, shard, t1 - started);

    let name = shared.endpoint.server_name.clone();
    // Pinned inside the connect's own (boxed) future and passed to `phase` by reference, so
    // not copied: one allocation per connect rather than a second for the handshake. Scoped
    // to its phase, so that the later phases' futures share its room.
    let handshaken = {
        let handshake = pin!(transport::tls_handshake_counted(
            device.tls.clone(),
            name,
            tcp,
            shared.clock_this_handshake(),
        ));
        bounds.phase(t1, handshake).await
    };
    let (mut tls, wire) = match handshaken {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let kind = match io_kind(&e) {
                FailureKind::Connect => FailureKind::Handshake,
                k => k,
            };
            return fail_session(who, Phase::TlsHandshake, kind, || e.to_string());
        }
        Err(Cut::Aborted) => return unfinished(who, Phase::TlsHandshake),
        Err(Cut::Timeout) => {
            return fail_session(who, Phase::TlsHandshake, FailureKind::Timeout, || {
                format!("no handshake within {t:?}")
            })
        }
    };
    let t2 = Instant::now();
    let resumed = wire.resumed;
    count_wire(shared, &mut tls, &wire);
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

    let (stream, t3) = ws_upgrade(shared, bounds, who, tls, t2).await?;
    let (session, ready) = connect_protocol(shared, bounds, who, device, stream, t3).await?;
    rec.record_scheduled(
        Phase::ConnectResponse,
        shard,
        Scheduled {
            intended: start.intended,
            started,
            done: ready,
        },
    );
    Some(session)
}

/// Records the handshake's bytes and round trips, and the session's totals when its stream
/// closes.
fn count_wire(shared: &Shared, tls: &mut TlsDeviceStream, wire: &transport::HandshakeWire) {
    let c = wire.counts;
    shared.recorder.wire.handshake(&HandshakeSample {
        resumed: wire.resumed,
        to_server: c.written,
        to_client: c.read,
        round_trips: c.round_trips,
        hello_retry: c.hello_retry,
        chain_sent: wire.chain_sent,
        chain_received: wire.chain_received,
        cpu_ns: wire
            .cpu
            .map(|c| u64::try_from(c.as_nanos()).unwrap_or(u64::MAX)),
    });
    let (recorder, resumed) = (shared.recorder.clone(), wire.resumed);
    tls.get_mut().0.on_drop(Box::new(move |c| {
        recorder.wire.session(resumed, c.written, c.read);
    }));
}

/// The WebSocket upgrade inside the TLS stream when the endpoint asks for one, timed as
/// `ws_upgrade` from `from`; a refused upgrade (an HTTP status, the wrong subprotocol) is its
/// own failure kind. Returns the stream for the protocol and when it was ready.
async fn ws_upgrade(
    shared: &Shared,
    bounds: &mut Bounds<'_, '_>,
    who: &Who<'_>,
    tls: TlsDeviceStream,
    from: Instant,
) -> Option<(DeviceStream, Instant)> {
    let Some(target) = &shared.endpoint.websocket else {
        return Some((MaybeWs::Plain(tls), from));
    };
    let t = shared.connect_timeout;
    let phase = Phase::WsUpgrade;
    let upgrade = Box::pin(ws::upgrade(tls, &shared.endpoint.host, target));
    match bounds.phase(from, upgrade).await {
        Ok(Ok(ws)) => {
            let now = Instant::now();
            who.rec.record(phase, who.shard, now - from);
            Some((MaybeWs::Ws(Box::new(ws)), now))
        }
        Ok(Err(UpgradeError::Io(e))) => fail_session(who, phase, io_kind(&e), || e.to_string()),
        Ok(Err(e)) => fail_session(who, phase, FailureKind::Upgrade, || e.to_string()),
        Err(Cut::Aborted) => unfinished(who, phase),
        Err(Cut::Timeout) => fail_session(who, phase, FailureKind::Timeout, || {
            format!("no WebSocket upgrade within {t:?}")
        }),
    }
}

/// The protocol's own connect phases, each timed and recorded; `None` when one failed (counted).
/// Returns the session and when it became ready.
async fn connect_protocol(
    shared: &Shared,
    bounds: &mut Bounds<'_, '_>,
    who: &Who<'_>,
    device: &ReadyDevice,
    tls: DeviceStream,
    from: Instant,
) -> Option<(Session<DeviceStream>, Instant)> {
    let host = &shared.endpoint.host;
    match &shared.protocol {
        // Phases are passed pinned or boxed: a future passed by value to an async fn takes
        // its room twice.
        Protocol::Mqtt(opts) => {
            let connect = pin!(MqttSession::connect(tls, opts.clone(), &device.id, host));
            let (s, ready) =
                timed_phase(shared, bounds, who, Phase::MqttConnect, from, connect).await?;
            Some((Session::Mqtt(s), ready))
        }
        Protocol::Amqp(opts) => {
            // fe2o3's open is some 11 KB: boxed, so MQTT sessions do not carry its room.
            let open = Box::pin(AmqpSession::open(tls, opts.clone(), &device.id, host));
            let (conn, opened) =
                timed_phase(shared, bounds, who, Phase::AmqpOpen, from, open).await?;
            let attach = Box::pin(conn.attach());
            let (s, ready) =
                timed_phase(shared, bounds, who, Phase::AmqpAttach, opened, attach).await?;
            Some((Session::Amqp(Box::new(s)), ready))
        }
    }
}

/// Runs one connect phase under the timeout and records its time from `from`, or its failure
/// (and the session's). Returns the phase's result and when it ended.
async fn timed_phase<T>(
    shared: &Shared,
    bounds: &mut Bounds<'_, '_>,
    who: &Who<'_>,
    phase: Phase,
    from: Instant,
    fut: impl std::future::Future<Output = Result<T, SessionError>>,
) -> Option<(T, Instant)> {
    let (rec, t) = (&*shared.recorder, shared.connect_timeout);
    match bounds.phase(from, fut).await {
        Ok(Ok(v)) => {
            let now = Instant::now();
            rec.record(phase, who.shard, now - from);
            Some((v, now))
        }
        Ok(Err(e)) => fail_session(who, phase, e.kind(), || e.to_string()),
        Err(Cut::Aborted) => unfinished(who, phase),
        Err(Cut::Timeout) => fail_session(who, phase, FailureKind::Timeout, || {
            format!("no answer within {t:?}")
        }),
    }
}

/// Counts a session that failed in `phase`, with its device and attempt.
fn fail_session<T>(
    who: &Who,
    phase: Phase,
    kind: FailureKind,
    msg: impl FnOnce() -> String,
) -> Option<T> {
    let rec = who.rec;
    rec.fail_device((phase, kind, 1), who.device, who.attempt, &msg());
    incr(&rec.counters.sessions_failed);
    None
}
