//! 1. Sessions without messages per client CPU-second (churn, k = 0), full and resumed, MQTT and
//!    AMQP, against bare clients doing the same exchange against the same hub.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::bare::{self, Device};
use super::{measured, plan, rounds, Comparison, FleetRun, Lab, Rate, Server};

/// Seconds per round and side: `FLEETBENCH_BENCH_SECS`, default 3.
fn secs() -> u64 {
    super::env_count("FLEETBENCH_BENCH_SECS", 3)
}
const CONCURRENCY: usize = 16;
const DEVICES: u64 = 64;
const AMQP: &str =
    "[protocol]\nkind = \"amqp\"\ndialect = \"iot-hub\"\napi-version = \"2021-04-12\"\n";

/// The bare client made like fleetbench in parts, to measure what each part of fleetbench's
/// structure costs a session (`FLEETBENCH_BENCH_BARE=spawn,stack,env`, any of them; default
/// none: the plain bare client).
#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    /// A scheduler task spawning a task per session under a 16-permit semaphore, as fleetbench
    /// starts sessions, instead of 16 tasks looping.
    spawn: bool,
    /// fleetbench's own transport and MQTT session (`tcp_connect`, `tls_handshake_counted`,
    /// `MqttSession`) instead of the hand-written exchange (MQTT only).
    stack: bool,
    /// A fleetbench run (scheduler, sampler, timers, one idle session) beside the bare loop.
    env: bool,
}

impl Shape {
    fn from_env() -> Self {
        let mut shape = Self::default();
        let parts = std::env::var("FLEETBENCH_BENCH_BARE").unwrap_or_default();
        for part in parts.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "spawn" => shape.spawn = true,
                "stack" => shape.stack = true,
                "env" => shape.env = true,
                other => panic!("FLEETBENCH_BENCH_BARE: no part {other:?} (spawn, stack, env)"),
            }
        }
        shape
    }

    /// The note saying how the bare client was shaped, if it was.
    fn note(self, protocol: &str) -> Option<String> {
        let parts: Vec<&str> = [
            (
                self.spawn,
                "spawn (a scheduler task, 16 permits, a task per session)",
            ),
            (
                self.stack && protocol == "MQTT",
                "stack (fleetbench's tcp_connect, tls_handshake_counted, MqttSession)",
            ),
            (
                self.env,
                "env (a fleetbench run with one idle session beside it)",
            ),
        ]
        .into_iter()
        .filter_map(|(on, what)| on.then_some(what))
        .collect();
        (!parts.is_empty()).then(|| format!("bare shaped like fleetbench: {}", parts.join(", ")))
    }
}

/// fleetbench's churn plan: k = 0, as fast as the handshake cap allows.
fn churn(protocol: &str, resumption: bool) -> fleetbench::scenario::Plan {
    plan(&format!(
        "[fleet]\ndevices = {DEVICES}\n[connect]\nrate = 1000000\nmax-handshakes = {CONCURRENCY}\n\
         [churn]\nduration = \"{}s\"\nmessages = 0\n[tls]\nresumption = {resumption}\n{protocol}",
        secs()
    ))
}

/// MQTT sessions: TCP, TLS 1.3 mutual auth, CONNECT/CONNACK, DISCONNECT.
pub(crate) fn mqtt(lab: &Lab, resumption: bool) {
    let server = lab.server();
    let port = server.mqtt;
    let shape = Shape::from_env();
    compare(
        lab,
        &server,
        "MQTT",
        port,
        resumption,
        shape,
        &churn("", resumption),
        &[
            "both: TCP connect, TLS 1.3 mutual auth (P-256), MQTT CONNECT (IoT Hub username) / CONNACK,",
            "DISCONNECT sealed with close_notify, against the same hub; 64 devices minted in each round",
            "fleetbench: its scheduler, handshake cap, per-phase timeouts and recording; a session that",
            "has closed starts the next due arrival in its own task (a task is spawned when none is due)",
            "bare: 16 tokio tasks looping tokio-rustls + rumqttc's mqttbytes v4 codec, nothing else",
        ],
        {
            let opts = match &churn("", resumption).protocol {
                fleetbench::scenario::ProtocolPlan::Mqtt(o) => o.clone(),
                fleetbench::scenario::ProtocolPlan::Amqp(_) => unreachable!("an MQTT plan"),
            };
            let stack = shape.stack;
            move |d, i, _| {
                if stack {
                    Either::Left(bare::mqtt_session_stack(port, d, i, opts.clone()))
                } else {
                    Either::Right(bare::mqtt_session(port, d, i))
                }
            }
        },
    );
}

/// AMQP sessions: TCP, TLS 1.3 mutual auth, open/begin/attach, detach/end/close.
pub(crate) fn amqp(lab: &Lab, resumption: bool) {
    let server = lab.server();
    let port = server.amqp;
    compare(
        lab,
        &server,
        "AMQP",
        port,
        resumption,
        Shape::from_env(),
        &churn(AMQP, resumption),
        &[
            "both: TCP connect, TLS 1.3 mutual auth, AMQP header/open, begin, sender attach (IoT Hub",
            "target and properties), then detach/end/close, with fe2o3 0.18, against the same hub",
            "fleetbench: its scheduler, handshake cap, per-phase timeouts and recording, one task per session",
            "bare: 16 tokio tasks looping tokio-rustls + fe2o3; each close runs in a task of its own, so",
            "the next connect starts at once, as fleetbench's handshake slot is freed once connected",
        ],
        move |d, i, closing| bare::amqp_session(port, d, i, closing),
    );
}

#[allow(clippy::too_many_arguments)]
fn compare<F, Fut>(
    lab: &Lab,
    server: &Server,
    protocol: &str,
    port: u16,
    resumption: bool,
    shape: Shape,
    p: &fleetbench::scenario::Plan,
    notes: &[&str],
    session: F,
) where
    F: Fn(Arc<Vec<Device>>, usize, TaskTracker) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    let kind = if resumption { "resumed" } else { "full" };
    let shaped = shape.note(protocol);
    let notes: Vec<&str> = notes.iter().copied().chain(shaped.as_deref()).collect();
    let rt = super::runtime();
    let fleetbench = |first| {
        let run = FleetRun {
            rt: &rt,
            plan: p,
            lab,
            devices: DEVICES,
            port,
            resumption,
        };
        run.rate(first, "sessions", |s| s.handshakes)
    };
    let root = lab.root();
    let bare = |first| {
        let count = Arc::new(AtomicU64::new(0));
        let (_, cpu, wall) = measured(|| {
            let devices = bare::devices(&lab.chain, &root, (DEVICES, first), resumption);
            // fleetbench's run machinery beside the loop: ids from bench-20001, its own recorder.
            let env = shape.env.then(|| {
                let hold = plan(&format!(
                    "[fleet]\ndevices = 1\n[[stages]]\nduration = \"{}s\"\nsessions = 1\n{}",
                    secs(),
                    if protocol == "AMQP" { AMQP } else { "" }
                ));
                let (chain, root) = (lab.chain.clone(), root.clone());
                rt.spawn(async move {
                    fleetbench::load::run(
                        &hold,
                        super::fleet(&chain, 1, 20_000),
                        super::endpoint(port),
                        super::client_tls(&root, resumption),
                        Arc::new(fleetbench::metrics::Recorder::new()),
                        CancellationToken::new(),
                    )
                    .await
                    .map(|_| ())
                })
            });
            rt.block_on(churn_loop(
                devices,
                count.clone(),
                session.clone(),
                shape.spawn,
            ));
            if let Some(env) = env {
                rt.block_on(env).unwrap().unwrap();
            }
        });
        Rate::new("sessions", count.load(Ordering::Relaxed), cpu, wall)
    };
    Comparison {
        name: format!("{}-{kind}", protocol.to_lowercase()),
        title: format!(
            "1. {protocol} sessions without messages ({kind} TLS 1.3 handshakes), concurrency {CONCURRENCY}, \
             {} rounds of {} s",
            rounds(),
            secs()
        ),
        fleet_label: "fleetbench churn k=0",
        bare_label: "bare client         ",
        notes: &notes,
        aim: Some(0.95),
        lab,
        server,
    }
    .run(fleetbench, bare);
}

/// `CONCURRENCY` tasks running whole sessions back to back for `secs()`, devices round-robin;
/// with `spawn`, a scheduler spawning a task per session under `CONCURRENCY` permits instead.
async fn churn_loop<F, Fut>(
    devices: Arc<Vec<Device>>,
    count: Arc<AtomicU64>,
    session: F,
    spawn: bool,
) where
    F: Fn(Arc<Vec<Device>>, usize, TaskTracker) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    let end = tokio::time::Instant::now() + Duration::from_secs(secs());
    let closing = TaskTracker::new();
    if spawn {
        let sessions = TaskTracker::new();
        let scheduler = {
            let (sessions, closing) = (sessions.clone(), closing.clone());
            let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
            async move {
                let mut i = 0;
                while tokio::time::Instant::now() < end {
                    let permit = permits.clone().acquire_owned().await.unwrap();
                    let (devices, count) = (devices.clone(), count.clone());
                    let (session, closing) = (session.clone(), closing.clone());
                    let k = i % devices.len();
                    sessions.spawn(async move {
                        session(devices, k, closing).await;
                        count.fetch_add(1, Ordering::Relaxed);
                        drop(permit);
                    });
                    i += 1;
                }
            }
        };
        // On a worker, as fleetbench's scheduler is.
        tokio::spawn(scheduler).await.unwrap();
        sessions.close();
        sessions.wait().await;
        closing.close();
        closing.wait().await;
        return;
    }
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|t| {
            let (devices, count, session) = (devices.clone(), count.clone(), session.clone());
            let closing = closing.clone();
            tokio::spawn(async move {
                let mut i = t;
                while tokio::time::Instant::now() < end {
                    session(devices.clone(), i % devices.len(), closing.clone()).await;
                    count.fetch_add(1, Ordering::Relaxed);
                    i += CONCURRENCY;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    closing.close();
    closing.wait().await;
}
