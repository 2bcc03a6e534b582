//! 1. Sessions without messages per client CPU-second (churn, k = 0), full and resumed, MQTT and
//!    AMQP, against bare clients doing the same exchange against the same hub.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use super::bare::{self, Device};
use super::{measured, plan, rounds, Comparison, FleetRun, Lab, Rate, Server};

/// Seconds per round and side: `FLEETBENCH_BENCH_SECS`, default 3.
fn secs() -> u64 {
    super::env_count("FLEETBENCH_BENCH_SECS", 3)
}
const CONCURRENCY: usize = 16;
const DEVICES: u64 = 64;

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
    compare(
        lab,
        &server,
        "MQTT",
        port,
        resumption,
        &churn("", resumption),
        &[
            "both: TCP connect, TLS 1.3 mutual auth (P-256), MQTT CONNECT (IoT Hub username) / CONNACK,",
            "DISCONNECT sealed with close_notify, against the same hub; 64 devices minted in each round",
            "fleetbench: its scheduler, handshake cap, per-phase timeouts and recording, one task per session",
            "bare: 16 tokio tasks looping tokio-rustls + rumqttc's mqttbytes v4 codec, nothing else",
        ],
        move |d, i, _| bare::mqtt_session(port, d, i),
    );
}

/// AMQP sessions: TCP, TLS 1.3 mutual auth, open/begin/attach, detach/end/close.
pub(crate) fn amqp(lab: &Lab, resumption: bool) {
    let server = lab.server();
    let port = server.amqp;
    let protocol =
        "[protocol]\nkind = \"amqp\"\ndialect = \"iot-hub\"\napi-version = \"2021-04-12\"\n";
    compare(
        lab,
        &server,
        "AMQP",
        port,
        resumption,
        &churn(protocol, resumption),
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
    p: &fleetbench::scenario::Plan,
    notes: &[&str],
    session: F,
) where
    F: Fn(Arc<Vec<Device>>, usize, TaskTracker) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    let kind = if resumption { "resumed" } else { "full" };
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
            rt.block_on(churn_loop(devices, count.clone(), session.clone()));
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
        notes,
        aim: Some(0.95),
        lab,
        server,
    }
    .run(fleetbench, bare);
}

/// `CONCURRENCY` tasks running whole sessions back to back for `secs()`, devices round-robin.
async fn churn_loop<F, Fut>(devices: Arc<Vec<Device>>, count: Arc<AtomicU64>, session: F)
where
    F: Fn(Arc<Vec<Device>>, usize, TaskTracker) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    let end = tokio::time::Instant::now() + Duration::from_secs(secs());
    let closing = TaskTracker::new();
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
