//! A session's connect: TCP connect, TLS handshake, the WebSocket upgrade when the protocol goes
//! over WebSockets, and the protocol's own connect (CONNACK; AMQP open and attach), each timed
//! apart and each bounded by its timeout and by the run.

use std::pin::pin;
use std::time::Duration;

use tokio::time::{timeout, Instant};

use super::device::{ReadyDevice, Shared, Start};
use crate::metrics::{incr, FailureKind, HandshakeSample, Phase, Recorder, Scheduled};
use crate::protocol::{io_kind, AmqpSession, MqttSession, Session, SessionError};
use crate::scenario::ProtocolPlan;
use crate::transport::ws::{self, UpgradeError};
use crate::transport::{self, DeviceStream, MaybeWs, TlsDeviceStream};

/// How a bounded wait for a connect phase ended, short of the phase's own result.
enum Cut {
    /// The phase's timeout passed.
    Timeout,
    /// The run aborted.
    Aborted,
}

/// Awaits `fut` for at most `t`, and no longer than the run lasts.
async fn bounded<T>(
    shared: &Shared,
    t: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Cut> {
    tokio::select! {
        biased;
        () = shared.abort.cancelled() => Err(Cut::Aborted),
        r = timeout(t, fut) => r.map_err(|_| Cut::Timeout),
    }
}

/// Whose session this is: for the failures' device ids and `failures.csv`.
struct Who<'a> {
    rec: &'a Recorder,
    device: &'a str,
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
        attempt,
    };
    let shard = device.index;
    let t = shared.connect_timeout;
    let source = (!shared.sources.is_empty())
        .then(|| shared.sources[(start.arrival % shared.sources.len() as u64) as usize]);

    let tcp = match bounded(
        shared,
        t,
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
    // Boxed: the handshake future holds the stream being built, and `bounded` would copy it.
    let handshake = Box::pin(transport::tls_handshake_counted(
        device.tls.clone(),
        name,
        tcp,
        shared.clock_this_handshake(),
    ));
    let (mut tls, wire) = match bounded(shared, t, handshake).await {
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

    let (stream, t3) = ws_upgrade(shared, who, shard, tls, t2).await?;
    let (session, ready) = connect_protocol(shared, who, device, stream, t3).await?;
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
    who: &Who<'_>,
    shard: usize,
    tls: TlsDeviceStream,
    from: Instant,
) -> Option<(DeviceStream, Instant)> {
    let Some(target) = &shared.endpoint.websocket else {
        return Some((MaybeWs::Plain(tls), from));
    };
    let t = shared.connect_timeout;
    let phase = Phase::WsUpgrade;
    let upgrade = Box::pin(ws::upgrade(tls, &shared.endpoint.host, target));
    match bounded(shared, t, upgrade).await {
        Ok(Ok(ws)) => {
            let now = Instant::now();
            who.rec.record(phase, shard, now - from);
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
    who: &Who<'_>,
    device: &ReadyDevice,
    tls: DeviceStream,
    from: Instant,
) -> Option<(Session<DeviceStream>, Instant)> {
    let t = shared.connect_timeout;
    let host = &shared.endpoint.host;
    match &shared.protocol {
        // Phases are passed pinned or boxed: a future passed by value to an async fn takes
        // its room twice.
        ProtocolPlan::Mqtt(opts) => {
            let connect = pin!(MqttSession::connect(tls, opts.clone(), &device.id, host));
            let s = timed_phase(
                shared,
                who,
                Phase::MqttConnect,
                device.index,
                from,
                t,
                connect,
            )
            .await?;
            Some((Session::Mqtt(s), Instant::now()))
        }
        ProtocolPlan::Amqp(opts) => {
            // fe2o3's open is some 11 KB: boxed, so MQTT sessions do not carry its room.
            let open = Box::pin(AmqpSession::open(tls, opts.clone(), &device.id, host));
            let conn =
                timed_phase(shared, who, Phase::AmqpOpen, device.index, from, t, open).await?;
            let opened = Instant::now();
            let s = timed_phase(
                shared,
                who,
                Phase::AmqpAttach,
                device.index,
                opened,
                t,
                Box::pin(conn.attach()),
            )
            .await?;
            Some((Session::Amqp(s), Instant::now()))
        }
    }
}

/// Runs one connect phase under the timeout and records its time from `from`, or its failure
/// (and the session's).
async fn timed_phase<T>(
    shared: &Shared,
    who: &Who<'_>,
    phase: Phase,
    shard: usize,
    from: Instant,
    t: Duration,
    fut: impl std::future::Future<Output = Result<T, SessionError>>,
) -> Option<T> {
    let rec = &*shared.recorder;
    match bounded(shared, t, fut).await {
        Ok(Ok(v)) => {
            rec.record(phase, shard, from.elapsed());
            Some(v)
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
