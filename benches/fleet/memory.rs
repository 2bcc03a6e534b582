//! 2. Memory per idle session, and 3. concurrency: each client in a process of its own.

use std::sync::Arc;

use bytes::BytesMut;
use fleetbench::load;
use fleetbench::metrics::{ProcessSample, Recorder};
use fleetbench::pki::CaChain;
use futures::StreamExt as _;
use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

use super::bare;
use super::{chain_from, client_tls, endpoint, fleet, plan, role_args, runtime, Lab};

const HELD: u64 = 10_000;

pub(crate) fn memory(lab: &Lab) {
    let server = lab.server();
    lab.export_ca();
    let fb: f64 = lab.client("memory-fleet", server.mqtt).parse().unwrap();
    let floor: f64 = lab.client("memory-vec", server.mqtt).parse().unwrap();
    let tasks: f64 = lab.client("memory-tasks", server.mqtt).parse().unwrap();
    println!(
        "2. memory per idle mutual-TLS session, {HELD} held (separate client processes, one round each)"
    );
    println!("   fleetbench MQTT session          : {fb:>6.1} KiB RSS each");
    println!("   bare task per MQTT connection    : {tasks:>6.1} KiB RSS each");
    println!("   bare Vec of TLS streams (floor)  : {floor:>6.1} KiB RSS each");
    println!("   fleetbench: CONNECT/CONNACK, one QoS 1 message acknowledged, then held with keep-alives");
    println!("   bare tasks: the same exchange (mqttbytes), then each task waits on a read of its stream");
    println!(
        "   bare Vec: TLS handshake only, streams kept in a Vec with no task (the leanest floor)"
    );
    println!(
        "   ratio to the task-per-connection client: {:.2}   to the floor: {:.2}   (aim <= 1.5)\n",
        fb / tasks,
        fb / floor
    );
}

/// A client process's role: a memory side or the concurrency run.
pub(crate) fn client_role(role: &str) {
    let (dir, port) = role_args();
    let root = CertificateDer::from(std::fs::read(dir.join("root.der")).unwrap());
    let chain = chain_from(&dir);
    let rt = runtime();
    let per_session = match role {
        "memory-fleet" => memory_fleet(&rt, &chain, &root, port),
        "memory-vec" => rt.block_on(memory_vec(&chain, &root, port)),
        "memory-tasks" => rt.block_on(memory_tasks(&chain, &root, port)),
        "concurrency" => return concurrency_client(&rt, &chain, &root, port),
        other => panic!("unknown role {other}"),
    };
    println!("{per_session}");
}

/// Connect all (the handshake cap paces them), each sends one message, then holds long enough
/// for every session to be open at once.
fn memory_fleet(
    rt: &tokio::runtime::Runtime,
    chain: &Arc<CaChain>,
    root: &CertificateDer<'static>,
    port: u16,
) -> f64 {
    let p = plan(&format!(
        "[fleet]\ndevices = {HELD}\n[connect]\nmax-handshakes = 64\n[messages]\ncount = 1\n\
         [session]\nhold = \"20s\"\n[protocol]\nkeep-alive = \"60s\"\n"
    ));
    let rec = Arc::new(Recorder::new());
    let result = rt
        .block_on(load::run(
            &p,
            fleet(chain, HELD, 0),
            endpoint(port),
            client_tls(root, false),
            rec.clone(),
            CancellationToken::new(),
        ))
        .unwrap();
    assert_eq!(
        rec.snapshot().sessions_connected,
        HELD,
        "{:?}",
        rec.failures()
    );
    result.health.rss_per_session_kib.unwrap()
}

/// One device's client configuration, minted as needed.
fn config(
    chain: &CaChain,
    tls: &fleetbench::transport::ClientTls,
    i: usize,
) -> (String, Arc<rustls::ClientConfig>) {
    let id = super::ids(HELD).id(i);
    let d = chain
        .mint_device(
            &id,
            fleetbench::pki::KeyType::EcdsaP256,
            fleetbench::pki::Validity::default(),
        )
        .unwrap();
    let cfg = tls.for_device(&d).unwrap();
    (id, cfg)
}

/// The floor: TLS streams in a `Vec`, no task, no protocol.
async fn memory_vec(chain: &CaChain, root: &CertificateDer<'static>, port: u16) -> f64 {
    let tls = client_tls(root, false);
    let before = ProcessSample::now().rss_kib;
    let held: Vec<_> = futures::stream::iter(0..HELD as usize)
        .map(|i| {
            let (_, cfg) = config(chain, &tls, i);
            async move { bare::tls(port, &cfg).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let after = ProcessSample::now().rss_kib;
    assert_eq!(held.len(), HELD as usize);
    after.saturating_sub(before) as f64 / HELD as f64
}

/// A bare client with a task per connection: CONNECT/CONNACK, one QoS 1 message acknowledged,
/// then the task waits on a read of its stream, as an idle device's task does.
async fn memory_tasks(chain: &CaChain, root: &CertificateDer<'static>, port: u16) -> f64 {
    let tls = client_tls(root, false);
    let before = ProcessSample::now().rss_kib;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(64);
    let stop = CancellationToken::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::with_capacity(HELD as usize);
    for i in 0..HELD as usize {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (id, cfg) = config(chain, &tls, i);
        let (ready, stop) = (ready_tx.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = bare::tls(port, &cfg).await;
            let mut read = BytesMut::with_capacity(512);
            bare::mqtt_connect(&mut s, &id, &mut read).await;
            let mut w = BytesMut::with_capacity(512);
            rumqttc::mqttbytes::v4::Packet::Publish(bare::tutorial_publish(&id, 0, 777, 1))
                .write(&mut w, 1 << 20)
                .unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut s, &w)
                .await
                .unwrap();
            drop(w);
            assert!(matches!(
                bare::next(&mut s, &mut read).await,
                Some(rumqttc::mqttbytes::v4::Packet::PubAck(_))
            ));
            drop(permit);
            ready.send(()).await.unwrap();
            tokio::select! {
                () = stop.cancelled() => {}
                _ = bare::next(&mut s, &mut read) => {}
            }
        }));
    }
    for _ in 0..HELD {
        ready_rx.recv().await.unwrap();
    }
    let after = ProcessSample::now().rss_kib;
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    after.saturating_sub(before) as f64 / HELD as f64
}

pub(crate) fn concurrency(lab: &Lab) {
    let server = lab.server();
    lab.export_ca();
    let line = lab.client("concurrency", server.mqtt);
    println!("3. concurrency: {line}\n");
}

fn concurrency_client(
    rt: &tokio::runtime::Runtime,
    chain: &Arc<CaChain>,
    root: &CertificateDer<'static>,
    port: u16,
) {
    let n = 19_000;
    let p = plan(&format!(
        "[fleet]\ndevices = {n}\n[connect]\nmax-handshakes = 64\n[messages]\ncount = 1\n\
         [session]\nhold = \"60s\"\n[protocol]\nkeep-alive = \"30s\"\n[run]\nmax-duration = \"10m\"\n"
    ));
    load::check_open_files(n, 1).unwrap();
    let rec = Arc::new(Recorder::new());
    let result = rt
        .block_on(load::run(
            &p,
            fleet(chain, n, 0),
            endpoint(port),
            client_tls(root, false),
            rec.clone(),
            CancellationToken::new(),
        ))
        .unwrap();
    let s = rec.snapshot();
    let connect_all = result
        .timeline
        .iter()
        .find(|r| r.active >= n)
        .map_or(f64::NAN, |r| r.t as f64);
    println!(
        "{} of {n} sessions connected, {} failed, peak {} open at once, all open after {connect_all:.0} s, \
         held 60 s; peak RSS {:.1} MiB ({:.1} KiB/session); {} acked",
        s.sessions_connected,
        s.sessions_failed,
        result.health.peak_sessions,
        result.health.peak_rss_kib as f64 / 1024.0,
        result.health.rss_per_session_kib.unwrap_or(f64::NAN),
        s.messages_acked
    );
}
