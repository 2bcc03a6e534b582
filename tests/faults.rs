//! Issue 8: faults during a run. The hub goes away and comes back; a hub that never answers
//! TLS, CONNACK or PUBACK; an unwritable results directory. Every message ends up either
//! acknowledged and counted by the hub, or reported as not acknowledged, once.

use std::sync::Arc;
use std::time::Duration;

use fleetbench::command::run::{account, EmbeddedHub};
use fleetbench::hub::HubConfig;
use fleetbench::load;
use fleetbench::metrics::{FailureKind, Recorder, RunStatus};
use tokio_util::sync::CancellationToken;

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_outage_mid_run_is_survived_and_accounted() {
    let plan = support::plan(
        r#"
        [fleet]
        devices = 20
        [messages]
        count = 20
        interval = "25ms"
        timeout = "2s"
        [reconnect]
        initial = "20ms"
        max = "200ms"
        "#,
    );
    let ca = support::chain();
    let mut hub = support::hub(&ca, &[&ca]).await;
    let ids = support::ids("outage", 20);
    hub.hub.registry.register_ca_signed(ids.iter());
    let endpoint = fleetbench::transport::Endpoint {
        addr: hub.mqtt,
        server_name: rustls::pki_types::ServerName::try_from("localhost")
            .unwrap()
            .to_owned(),
        host: "localhost".into(),
        websocket: None,
    };
    let roots =
        fleetbench::transport::ClientTls::roots(std::slice::from_ref(ca.root().cert())).unwrap();
    let tls = fleetbench::transport::ClientTls::new(
        fleetbench::transport::TlsVersion::Tls13,
        fleetbench::transport::ServerVerification::Roots(roots),
        false,
    );
    let fleet = load::Fleet {
        ca: ca.clone(),
        ids: ids.clone(),
        key_type: fleetbench::pki::KeyType::EcdsaP256,
        validity: fleetbench::pki::Validity::default(),
    };
    let recorder = Arc::new(Recorder::new());
    let hub_state = hub.hub.clone();
    let run = load::run(
        &plan,
        fleet,
        endpoint,
        tls,
        recorder.clone(),
        CancellationToken::new(),
    );
    // Once a quarter of the messages are in, take the hub down and bring it back.
    let outage = async {
        hub_state.stats.messages_at_least(100).await;
        hub.restart().await.unwrap();
    };
    let (result, ()) = tokio::join!(run, outage);
    let result = result.unwrap();

    let s = recorder.snapshot();
    let c = &recorder.counters;
    let reconnects = c.reconnects.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(result.status, RunStatus::Complete);
    assert!(
        reconnects >= 20,
        "every session broke and came back: {reconnects} reconnects"
    );
    assert!(s.sessions_failed >= 20, "{:?}", recorder.failures());
    // Issue 14: the reconnects that came back are told apart, and no device is counted as
    // never connected; each failed session is listed with its device and attempt.
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let came_back = load(&c.reconnects_connected);
    assert!(came_back >= 20, "{came_back} of {reconnects} came back");
    assert!(came_back <= reconnects);
    assert_eq!(load(&c.devices_never_connected), 0);
    let (failed, left_out) = recorder.failed_sessions();
    assert_eq!(left_out, 0);
    let devices: std::collections::BTreeSet<&str> =
        failed.iter().map(|f| f.device.as_str()).collect();
    assert_eq!(devices.len(), 20, "every device broke: {failed:?}");
    assert!(failed.iter().all(|f| f.attempt >= 1), "{failed:?}");
    // Every message sent is acknowledged or reported unacknowledged, never both, never twice.
    assert_eq!(s.messages_sent, s.messages_acked + s.messages_unacked);
    assert_eq!(s.messages_sent, 400, "no message is sent twice or skipped");
    let acc = account(&hub.hub, &ids, &result);
    assert_eq!(acc.lost, 0, "{acc:?}");
    assert!(acc.received >= acc.acked);
    // The outage shows in the timeline as errors and reconnections.
    let errors: u64 = result.timeline.iter().map(|r| r.errors).sum();
    assert!(errors >= 20, "{:?}", result.timeline);
    hub.stop().await;
}

/// A listener that accepts connections and never says a word.
async fn mute_listener() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

const QUICK_TIMEOUTS: &str = r#"
[fleet]
devices = 5
[connect]
timeout = "300ms"
[messages]
count = 2
interval = "10ms"
timeout = "300ms"
[run]
max-duration = "20s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_never_answers_tls_times_out_in_the_handshake() {
    let plan = support::plan(QUICK_TIMEOUTS);
    let ca = support::chain();
    let (addr, mute) = mute_listener().await;
    let started = std::time::Instant::now();
    let (rec, result) = support::fleet_at(&plan, addr, &ca, ca.clone(), support::ids("m", 5)).await;
    assert_eq!(result.status, RunStatus::Complete);
    let f = rec.failures();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].phase.as_str(), f[0].count), ("tls_handshake", 5));
    assert!(f[0].is(FailureKind::Timeout));
    // Ends on its timeouts, not on the run's bound.
    assert!(started.elapsed() < Duration::from_secs(10));
    mute.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_never_sends_connack_times_out_in_mqtt_connect() {
    let plan = support::plan(QUICK_TIMEOUTS);
    let ca = support::chain();
    let config = HubConfig {
        connack_stall: Some((Duration::ZERO, Duration::from_secs(3600))),
        ..HubConfig::default()
    };
    let hub = stalling_hub(&ca, config).await;
    let ids = support::ids("c", 5);
    hub.hub.registry.register_ca_signed(ids.iter());
    let (rec, _) = support::fleet(&plan, &hub, &ca, ca.clone(), ids).await;
    let f = rec.failures();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].phase.as_str(), f[0].count), ("mqtt_connect", 5));
    assert!(f[0].is(FailureKind::Timeout));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_never_sends_puback_times_out_in_publish_ack() {
    let plan = support::plan(QUICK_TIMEOUTS);
    let ca = support::chain();
    let config = HubConfig {
        puback_stall: Some((Duration::ZERO, Duration::from_secs(3600))),
        ..HubConfig::default()
    };
    let hub = stalling_hub(&ca, config).await;
    let ids = support::ids("p", 5);
    hub.hub.registry.register_ca_signed(ids.iter());
    let (rec, result) = support::fleet(&plan, &hub, &ca, ca.clone(), ids.clone()).await;
    let s = rec.snapshot();
    assert_eq!(s.sessions_connected, 5);
    assert_eq!(s.messages_acked, 0);
    assert_eq!(s.messages_unacked, s.messages_sent);
    let f = rec.failures();
    assert!(
        f.iter()
            .all(|f| f.phase == "publish_ack" && f.is(FailureKind::Timeout)),
        "{f:?}"
    );
    assert_eq!(f.iter().map(|f| f.count).sum::<u64>(), s.messages_sent);
    // The hub counted what it never acknowledged: nothing acknowledged was lost.
    assert_eq!(account(&hub.hub, &ids, &result).lost, 0);
    hub.stop().await;
}

async fn stalling_hub(ca: &fleetbench::pki::CaChain, config: HubConfig) -> EmbeddedHub {
    let hub = EmbeddedHub::start(ca, config).await.unwrap();
    hub.hub
        .registry
        .add_verified_ca("root", ca.root().cert().clone())
        .unwrap();
    hub
}

#[test]
fn an_unwritable_results_directory_is_an_error_before_the_load_starts() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(&scenario, "[fleet]\ndevices = 1000\n").unwrap();
    // A file where the results directory should be.
    let blocker = dir.path().join("results");
    std::fs::write(&blocker, "not a directory").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .args(["run", "--quiet", "--results"])
        .arg(&blocker)
        .arg(&scenario)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is a file, not a directory"), "{err}");
    // Nothing ran: no report on stdout.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Sessions"));
}
