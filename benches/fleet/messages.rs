//! 4. Messages acknowledged per client CPU-second over 100 sessions with 16 in flight each:
//!    MQTT QoS 1 against a bare pipelined publisher, AMQP unsettled transfers against a bare
//!    fe2o3 sender, both sending the tutorial's messages (the same bytes as fleetbench's).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use fe2o3_amqp::types::messaging::Outcome;
use fe2o3_amqp::Sendable;
use futures::stream::FuturesUnordered;
use futures::StreamExt as _;
use rand::{Rng as _, SeedableRng as _};
use rumqttc::mqttbytes::v4::Packet;
use tokio::io::AsyncWriteExt as _;
use tokio::time::Instant;

use super::bare::{self, Counting, Device, IoCounts};
use super::{measured, plan, rounds, Comparison, FleetRun, Lab, Rate};

const SESSIONS: u64 = 100;
const SECS: u64 = 3;
const WINDOW: usize = 16;

fn fleet_plan(protocol: &str) -> fleetbench::scenario::Plan {
    plan(&format!(
        "[fleet]\ndevices = {SESSIONS}\n[messages]\ninterval = \"0s\"\nduration = \"{SECS}s\"\n\
         max-inflight = {WINDOW}\n{protocol}"
    ))
}

/// Runs `sender` for every device (from `bench-{first + 1}`) at once and counts what they
/// acknowledged.
fn bare_round<F, Fut>(
    lab: &Lab,
    first: u64,
    rt: &tokio::runtime::Runtime,
    what: &'static str,
    sender: F,
) -> Rate
where
    F: Fn(Arc<Vec<Device>>, usize, Instant, Arc<AtomicU64>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let acked = Arc::new(AtomicU64::new(0));
    let (_, cpu, wall) = measured(|| {
        let devices = bare::devices(&lab.chain, &lab.root(), (SESSIONS, first), false);
        rt.block_on(async {
            let end = Instant::now() + Duration::from_secs(SECS);
            let tasks: Vec<_> = (0..SESSIONS as usize)
                .map(|i| tokio::spawn(sender(devices.clone(), i, end, acked.clone())))
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
    });
    Rate::new(what, acked.load(Ordering::Relaxed), cpu, wall)
}

pub(crate) fn mqtt(lab: &Lab) {
    let server = lab.server();
    let port = server.mqtt;
    let rt = &super::runtime();
    let p = fleet_plan("");
    let fleetbench = |first| {
        let run = FleetRun {
            rt,
            plan: &p,
            lab,
            devices: SESSIONS,
            port,
            resumption: false,
        };
        run.rate(first, "acked", |s| s.messages_acked)
    };
    let bare = |batched| {
        move |first| {
            bare_round(lab, first, rt, "acked", move |d, i, end, acked| {
                publisher(port, d, i, end, acked, batched)
            })
        }
    };
    let title = |what: &str| {
        format!(
            "4. MQTT QoS 1 publishes acknowledged{what}, {SESSIONS} sessions, {WINDOW} in flight each, \
             {} rounds of {SECS} s",
            rounds()
        )
    };
    Comparison {
        name: "mqtt-messages".into(),
        title: title(""),
        fleet_label: "fleetbench           ",
        bare_label: "bare batched publisher",
        notes: &[
            "both: 100 mutual-TLS sessions (handshakes included), the tutorial's messages (IoT Hub topic",
            "with its property bag, JSON body: the same bytes), QoS 1, 16 in flight, against the same hub",
            "bare: tokio-rustls + mqttbytes v4, one task per session: fills its window, writes the",
            "batch in one write, reads what PUBACKs are there; fleetbench also schedules and records each",
        ],
        aim: Some(0.95),
        lab,
        server: &server,
    }
    .run(fleetbench, bare(true));
    Comparison {
        name: "mqtt-write-per-message".into(),
        title: title(": what a write per message costs"),
        fleet_label: "bare, a write per PUBLISH",
        bare_label: "bare, batched writes     ",
        notes: &[
            "the same bare publisher, writing (one TLS record, one syscall) after every PUBLISH",
        ],
        aim: None,
        lab,
        server: &server,
    }
    .run(bare(false), bare(true));
}

/// One bare MQTT session publishing the tutorial's messages until `end`, `WINDOW` in flight,
/// then waiting for the last acknowledgements and disconnecting.
async fn publisher(
    port: u16,
    devices: Arc<Vec<Device>>,
    i: usize,
    end: Instant,
    acked: Arc<AtomicU64>,
    batched: bool,
) {
    let (id, cfg) = &devices[i];
    let mut s = bare::tls(port, cfg).await;
    let mut read = BytesMut::with_capacity(512);
    bare::mqtt_connect(&mut s, id, &mut read).await;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(i as u64);
    let mut write = BytesMut::with_capacity(4096);
    let (mut inflight, mut n, mut pkid) = (0usize, 0u32, 0u16);
    loop {
        if Instant::now() < end {
            while inflight < WINDOW {
                pkid = pkid.checked_add(1).unwrap_or(1);
                let publish = bare::tutorial_publish(id, n, rng.random(), pkid);
                Packet::Publish(publish).write(&mut write, 1 << 20).unwrap();
                (n, inflight) = (n + 1, inflight + 1);
                if !batched {
                    s.write_all(&write).await.unwrap();
                    write.clear();
                }
            }
            if batched {
                s.write_all(&write).await.unwrap();
                write.clear();
            }
        }
        if inflight == 0 {
            break;
        }
        // A dropped connection fails the round (rather than spinning on an ended stream).
        let mut packet = Some(
            bare::next(&mut s, &mut read)
                .await
                .expect("the hub closed an MQTT session"),
        );
        // Every acknowledgement already read, then refill the window.
        while let Some(p) = packet {
            assert!(matches!(p, Packet::PubAck(_)), "{p:?}");
            inflight -= 1;
            acked.fetch_add(1, Ordering::Relaxed);
            packet = Packet::read(&mut read, 1 << 20).ok();
        }
    }
    bare::mqtt_close(s).await;
}

pub(crate) fn amqp(lab: &Lab) {
    let server = lab.server();
    let port = server.amqp;
    let rt = super::runtime();
    let p = fleet_plan(
        "[protocol]\nkind = \"amqp\"\ndialect = \"iot-hub\"\napi-version = \"2021-04-12\"\n\
         settle-mode = \"unsettled\"\n",
    );
    let fleetbench = |first| {
        let run = FleetRun {
            rt: &rt,
            plan: &p,
            lab,
            devices: SESSIONS,
            port,
            resumption: false,
        };
        run.rate(first, "settled", |s| s.messages_acked)
    };
    let counts = Arc::new(IoCounts::default());
    // Each round carries its own writes and flushes (back from a side child in its line).
    let bare = |first| {
        let load = |c: &IoCounts| {
            (
                c.writes.load(Ordering::Relaxed),
                c.flushes.load(Ordering::Relaxed),
            )
        };
        let before = load(&counts);
        let round_counts = counts.clone();
        let mut rate = bare_round(lab, first, &rt, "settled", move |d, i, end, acked| {
            sender(port, d, i, end, acked, round_counts.clone())
        });
        let after = load(&counts);
        rate.io = Some((after.0 - before.0, after.1 - before.1));
        rate
    };
    let settled = Comparison {
        name: "amqp-messages".into(),
        title: format!(
            "4. AMQP transfers settled (accepted dispositions), {SESSIONS} sessions, {WINDOW} in flight each, \
             {} rounds of {SECS} s",
            rounds()
        ),
        fleet_label: "fleetbench   ",
        bare_label: "bare fe2o3   ",
        notes: &[
            "both: 100 mutual-TLS AMQP sessions (open/begin/attach included), the tutorial's messages",
            "(message id, content type and encoding, temperatureAlert, JSON data), unsettled, 16 in flight",
            "bare: fe2o3's Sender::send_batchable, settlements awaited in a FuturesUnordered, one task each",
        ],
        aim: Some(0.95),
        lab,
        server: &server,
    };
    let Some([_, bare_rounds]) = settled.run(fleetbench, bare) else {
        return;
    };
    let (w, f) = bare_rounds
        .iter()
        .filter_map(|r| r.io)
        .fold((0, 0), |(w, f), (dw, df)| (w + dw, f + df));
    println!(
        "   fe2o3's engine on the bare side: {w} writes and {f} flushes of the TLS stream over all rounds\n"
    );
}

/// One bare fe2o3 sender transferring the tutorial's messages until `end`, `WINDOW` unsettled,
/// then waiting for the last dispositions and closing.
async fn sender(
    port: u16,
    devices: Arc<Vec<Device>>,
    i: usize,
    end: Instant,
    acked: Arc<AtomicU64>,
    counts: Arc<IoCounts>,
) {
    let (id, cfg) = &devices[i];
    let inner = bare::tls(port, cfg).await;
    let mut link = bare::amqp_attach(Counting { inner, counts }, id).await;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(i as u64);
    let mut pending = FuturesUnordered::new();
    let mut n = 0u32;
    loop {
        while Instant::now() < end && pending.len() < WINDOW {
            let message = bare::tutorial_message(id, n, rng.random());
            let sendable = Sendable::builder().message(message).settled(false).build();
            pending.push(link.sender.send_batchable(sendable).await.unwrap());
            n += 1;
        }
        match pending.next().await {
            Some(Ok(Outcome::Accepted(_))) => {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Some(other) => panic!("transfer not accepted: {other:?}"),
            None => break,
        }
    }
    link.close().await;
}
