//! Issue 15: the AMQP verifying receiver against real listeners: the embedded hub's built-in
//! Event Hubs-compatible endpoint (devices over MQTT and AMQP in, partitions out, the drop-every-N
//! fault counted exactly) and a RabbitMQ queue read with SASL EXTERNAL. The accounting is
//! elsewhere; these tests check the stream of `Received` values itself.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU64;
use std::time::{Duration, SystemTime};

use fleetbench::command::run::EmbeddedHub;
use fleetbench::hub::eventhubs::EventHubsConfig;
use fleetbench::hub::HubConfig;
use fleetbench::pki::{CaChain, KeyType, Validity};
use fleetbench::protocol::amqp::SaslMechanism;
use fleetbench::transport::{ClientTls, ServerVerification, TlsVersion};
use fleetbench::verify::amqp::{AmqpReceiver, AmqpReceiverOptions, ReceiveReport};
use fleetbench::verify::eventhubs::{self, ConnectionString, EventHubsOptions, EventHubsReceiver};
use fleetbench::verify::Received;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support;
use crate::support::hub_serve::HubServe;
use crate::support::hub_state;
use crate::support::rabbitmq::RabbitMq;
use crate::support::walkthrough::{self, fleetbench, text};

/// The longest any test waits for its messages.
const PATIENCE: Duration = Duration::from_secs(60);

fn options(hub: &EmbeddedHub, trust: &CaChain, connection: &str) -> EventHubsOptions {
    EventHubsOptions {
        connection: ConnectionString::parse(connection).unwrap(),
        addr: Some(hub.amqp),
        tls: eventhubs::tls_config(std::slice::from_ref(trust.root().cert())).unwrap(),
        consumer_group: eventhubs::DEFAULT_CONSUMER_GROUP.into(),
        from: SystemTime::now(),
        credit: 500,
        timeout: Duration::from_secs(10),
        token_lifetime: eventhubs::DEFAULT_TOKEN_LIFETIME,
        connections: 2,
    }
}

/// The hub's own connection string, naming it as its certificate does.
fn connection_string(hub: &EmbeddedHub) -> String {
    let authority = format!("localhost:{}", hub.amqp.port());
    hub.hub.eventhubs.connection_string(&authority)
}

/// Receives until `n` messages came (or `PATIENCE` passed), stops the receiver and returns
/// everything it delivered, including any that came after the n-th.
async fn collect(
    mut rx: mpsc::Receiver<Received>,
    n: usize,
    stop: CancellationToken,
    task: JoinHandle<ReceiveReport>,
) -> (Vec<Received>, ReceiveReport) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while got.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) => got.push(r),
            Ok(None) | Err(_) => break,
        }
    }
    stop.cancel();
    let report = task.await.unwrap();
    while let Some(r) = rx.recv().await {
        got.push(r);
    }
    (got, report)
}

fn start(
    receiver: EventHubsReceiver,
) -> (
    mpsc::Receiver<Received>,
    CancellationToken,
    JoinHandle<ReceiveReport>,
) {
    let (tx, rx) = mpsc::channel(1024);
    let stop = CancellationToken::new();
    let task = tokio::spawn(receiver.run(tx, stop.clone(), PATIENCE));
    (rx, stop, task)
}

/// Message ids by device, from the stream.
fn by_device(got: &[Received]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in got {
        let device = r.device.clone().expect("the device id annotation");
        let id = r.message_id.clone().expect("a message id");
        assert!(id.starts_with(&format!("{device}-")), "{id} from {device}");
        out.entry(device).or_default().insert(id);
    }
    out
}

async fn fleets(hub: &EmbeddedHub, ca: &std::sync::Arc<CaChain>, per_protocol: u64, count: u32) {
    let mqtt = format!(
        "[fleet]\ndevices = {per_protocol}\n[messages]\ncount = {count}\ninterval = \"5ms\"\n"
    );
    let amqp = format!("[protocol]\nkind = \"amqp\"\n{mqtt}");
    for (toml, prefix) in [(mqtt, "m"), (amqp, "a")] {
        let ids = support::ids(prefix, per_protocol);
        hub.hub.registry.register_ca_signed(ids.iter());
        let plan = support::plan(&toml);
        let (rec, _) = support::fleet(&plan, hub, ca, ca.clone(), ids).await;
        let s = rec.snapshot();
        assert_eq!(
            s.messages_acked,
            per_protocol * u64::from(count),
            "{prefix}: {:?}",
            rec.failures()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hubs_event_hubs_endpoint_delivers_every_message_once_with_its_device() {
    let ca = support::chain();
    let hub = support::hub(&ca, &[&ca]).await;
    let receiver = EventHubsReceiver::open(&options(&hub, &ca, &connection_string(&hub)))
        .await
        .unwrap();
    assert_eq!(receiver.partitions(), ["0", "1", "2", "3"]);
    let (rx, stop, task) = start(receiver);
    fleets(&hub, &ca, 20, 3).await;

    let (got, report) = collect(rx, 120, stop, task).await;
    assert_eq!(got.len(), 120, "{report:?}");
    // The tutorial's property and body come through from both protocols.
    for r in &got {
        let device = r.device.as_deref().unwrap_or_default();
        let alert = r.properties.iter().find(|(k, _)| k == "temperatureAlert");
        assert!(
            matches!(alert.map(|(_, v)| v.as_str()), Some("true" | "false")),
            "{r:?}"
        );
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            body.contains(&format!("\"deviceId\":\"{device}\"")),
            "{body}"
        );
    }
    let devices = by_device(&got);
    assert_eq!(devices.len(), 40);
    assert!(devices.values().all(|ids| ids.len() == 3), "{devices:?}");
    // Devices spread over the partitions, each device on one.
    assert_eq!(report.links.len(), 4);
    assert!(
        report.links.iter().filter(|l| l.received > 0).count() >= 2,
        "{report:?}"
    );
    assert!(report.links.iter().all(|l| l.ended.is_none()), "{report:?}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_drop_fault_on_exactly_the_dropped_messages_are_missing() {
    let ca = support::chain();
    let config = HubConfig {
        eventhubs: EventHubsConfig {
            fault_drop_every: NonZeroU64::new(7),
            ..EventHubsConfig::default()
        },
        ..HubConfig::default()
    };
    let hub = EmbeddedHub::start(&ca, config).await.unwrap();
    hub.hub
        .registry
        .add_verified_ca("ca-0", ca.root().cert().clone())
        .unwrap();
    let receiver = EventHubsReceiver::open(&options(&hub, &ca, &connection_string(&hub)))
        .await
        .unwrap();
    let (rx, stop, task) = start(receiver);
    fleets(&hub, &ca, 15, 4).await;

    let dropped = hub.hub.eventhubs.dropped();
    assert_eq!(dropped.len(), 120 / 7);
    let (got, report) = collect(rx, 120 - 120 / 7, stop, task).await;
    assert_eq!(got.len(), 120 - 120 / 7, "{report:?}");
    let received: BTreeSet<String> = by_device(&got).into_values().flatten().collect();
    for d in &dropped {
        let id = d.message_id.clone().expect("dropped message id");
        assert!(id.starts_with(&format!("{}-", d.device)));
        assert!(!received.contains(&id), "{id} was dropped but received");
    }
    let all = received.len() + dropped.len();
    assert_eq!(all, 120);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_signed_with_the_wrong_key_is_refused_by_name() {
    let ca = support::chain();
    let hub = support::hub(&ca, &[&ca]).await;
    let right = connection_string(&hub);
    let key = hub.hub.eventhubs.key().to_owned();
    let wrong = right.replace(&key, "d3Jvbmcga2V5");
    let err = EventHubsReceiver::open(&options(&hub, &ca, &wrong))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused the token"), "{err}");
    assert!(err.contains("signature does not match"), "{err}");
    hub.stop().await;
}

/// README "Against your own broker", RabbitMQ, with a receiver: the walkthrough's 50 devices send
/// to `/queue/telemetry` through the binary while a receiver holding the 51st identity (SASL
/// EXTERNAL) reads the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_queue_receiver_gets_every_message_the_walkthrough_sends() {
    if !RabbitMq::available() {
        return;
    }
    let dir = walkthrough::setup();
    let broker = RabbitMq::for_walkthrough(dir.path(), 51);

    let ca = fleetbench::pki::store::load_ca_dir(&dir.path().join("ca")).unwrap();
    let me = ca
        .mint_device("device-00051", KeyType::EcdsaP256, Validity::default())
        .unwrap();
    let roots = ClientTls::roots(std::slice::from_ref(ca.root().cert())).unwrap();
    let tls = ClientTls::new(TlsVersion::Tls13, ServerVerification::Roots(roots), false)
        .for_device(&me)
        .unwrap();
    let receiver = AmqpReceiver::open(&AmqpReceiverOptions {
        addr: format!("127.0.0.1:{}", broker.port).parse().unwrap(),
        server_name: "localhost".into(),
        tls,
        sasl: SaslMechanism::External,
        container_id: "device-00051".into(),
        addresses: vec!["/queue/telemetry".into()],
        credit: 500,
        timeout: Duration::from_secs(20),
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", broker.log_tail()));
    let (tx, rx) = mpsc::channel(1024);
    let stop = CancellationToken::new();
    let task = tokio::spawn(receiver.run(tx, stop.clone(), PATIENCE));

    let path = dir.path().to_owned();
    let port = broker.port;
    let out = tokio::task::spawn_blocking(move || {
        walkthrough::run(&path, "rabbitmq.toml", (5671, port), &[], &[])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let (got, report) = collect(rx, 200, stop, task).await;
    assert_eq!(got.len(), 200, "{report:?}\n{}", broker.log_tail());
    let mut per_device: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for r in &got {
        let id = r.message_id.clone().expect("message id");
        let device = id.rsplit_once('-').map(|(d, _)| d.to_owned()).unwrap();
        *per_device.entry(device).or_default() += 1;
        assert!(ids.insert(id), "duplicate delivery");
    }
    assert_eq!(per_device.len(), 50);
    assert!(per_device.values().all(|n| *n == 4), "{per_device:?}");
    drop(broker);
}

/// The tutorial's two-process flow with a receiver: `hub serve --amqp` prints its endpoint's
/// connection string (stderr), the receiver reads with it while `run` sends over MQTT; the hidden fault
/// (its environment variable) drops every 4th message and exactly that many are missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_serve_prints_a_connection_string_its_endpoint_answers_to() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    hub_state::walkthrough(d, "hub", "t", 5);
    let help = fleetbench(d, &["hub", "serve", "--help"], &[]);
    assert!(text(&help).contains("--eventhubs-key"), "{}", text(&help));
    assert!(
        !text(&help).contains("drop-every"),
        "the fault injector is hidden"
    );

    let mut cmd = HubServe::ephemeral("hub");
    cmd.current_dir(d)
        .args(["--amqp", "127.0.0.1:0"])
        .env("FLEETBENCH_FAULT_EVENTHUBS_DROP_EVERY", "4")
        .stderr(std::process::Stdio::piped());
    let mut hub = HubServe::start(cmd);
    let connection = hub.eventhubs();
    let connection = connection.as_str();
    let mqtt = hub.mqtt();
    assert!(
        connection.contains(";SharedAccessKeyName=service;"),
        "{connection}"
    );
    assert!(
        connection.ends_with(";EntityPath=fleetbench"),
        "{connection}"
    );

    let trust = fleetbench::pki::store::read_cert(&d.join("hub/server-root.pem")).unwrap();
    let receiver = EventHubsReceiver::open(&EventHubsOptions {
        connection: ConnectionString::parse(connection).unwrap(),
        addr: None,
        tls: eventhubs::tls_config(&[trust]).unwrap(),
        consumer_group: "$Default".into(),
        from: SystemTime::now(),
        credit: 100,
        timeout: Duration::from_secs(10),
        token_lifetime: eventhubs::DEFAULT_TOKEN_LIFETIME,
        connections: 2,
    })
    .await
    .unwrap();
    let (tx, rx) = mpsc::channel(64);
    let stop = CancellationToken::new();
    let task = tokio::spawn(receiver.run(tx, stop.clone(), PATIENCE));

    let scenario = format!(
        "[target]\nhub = \"remote\"\naddress = \"{mqtt}\"\nserver-name = \"localhost\"\n\
         ca-file = \"hub/server-root.pem\"\n[fleet]\ndevices = 5\n\
         [messages]\ncount = 3\ninterval = \"5ms\"\n"
    );
    std::fs::write(d.join("m.toml"), scenario).unwrap();
    let path = d.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        fleetbench(
            &path,
            &[
                "run",
                "--quiet",
                "--results",
                "results",
                "--ca",
                "ca",
                "m.toml",
            ],
            &[],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let (got, report) = collect(rx, 15 - 15 / 4, stop, task).await;
    hub.interrupt();
    assert_eq!(got.len(), 15 - 15 / 4, "{report:?}");
    let devices = by_device(&got);
    assert_eq!(
        devices.values().map(BTreeSet::len).sum::<usize>(),
        12,
        "no duplicates"
    );
    assert!(
        devices.keys().all(|d| d.starts_with("device-")),
        "{devices:?}"
    );
}

/// A raw AMQP client on the hub's endpoint (fe2o3 directly, as any Event Hubs client would):
/// TLS with server verification only, then `sasl`.
async fn raw_connection(
    hub: &EmbeddedHub,
    trust: &CaChain,
    sasl: fe2o3_amqp::sasl_profile::SaslProfile,
) -> fe2o3_amqp::connection::ConnectionHandle<()> {
    let tls = eventhubs::tls_config(std::slice::from_ref(trust.root().cert())).unwrap();
    let tcp = tokio::net::TcpStream::connect(hub.amqp).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .unwrap();
    fe2o3_amqp::Connection::builder()
        .container_id("raw")
        .hostname("localhost")
        .sasl_profile(sasl)
        .open_with_stream(stream)
        .await
        .unwrap()
}

/// The endpoint's two ways in, as Service Bus documents them: SASL PLAIN with the policy name
/// and key opens a partition at once (each event annotated with its device); SASL ANONYMOUS
/// without a CBS token is refused at attach; a wrong PLAIN password fails SASL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plain_with_the_key_reads_a_partition_and_anonymous_needs_a_token() {
    use fe2o3_amqp::sasl_profile::SaslProfile;
    use fe2o3_amqp::types::messaging::{Body, Source};
    use fe2o3_amqp::types::primitives::Value;
    let ca = support::chain();
    let hub = support::hub(&ca, &[&ca]).await;
    let eh = &hub.hub.eventhubs;
    let address = "fleetbench/ConsumerGroups/$Default/Partitions/";
    let device = "plain-00001";
    let partition = eh.partition_of(device);

    let plain = SaslProfile::Plain {
        username: eh.key_name().into(),
        password: eh.key().into(),
    };
    let mut connection = raw_connection(&hub, &ca, plain).await;
    let mut session = fe2o3_amqp::Session::begin(&mut connection).await.unwrap();
    let mut receiver = fe2o3_amqp::Receiver::builder()
        .name("plain")
        .source(
            Source::builder()
                .address(format!("{address}{partition}"))
                .build(),
        )
        .target("plain-reader")
        .attach(&mut session)
        .await
        .unwrap();
    let ids = support::ids("plain", 1);
    hub.hub.registry.register_ca_signed(ids.iter());
    let plan = support::plan("[messages]\ncount = 2\n");
    support::fleet(&plan, &hub, &ca, ca.clone(), ids).await;
    for n in 0..2 {
        let d = tokio::time::timeout(PATIENCE, receiver.recv::<Body<Value>>())
            .await
            .unwrap()
            .unwrap();
        receiver.accept(&d).await.unwrap();
        let annotations = d.message().message_annotations.as_ref().unwrap();
        let text = format!("{annotations:?}");
        assert!(
            text.contains("iothub-connection-device-id") && text.contains(device),
            "{n}: {text}"
        );
        assert!(text.contains("x-opt-enqueued-time"), "{text}");
    }
    let _ = connection.close().await;

    let mut anonymous = raw_connection(&hub, &ca, SaslProfile::Anonymous).await;
    let mut session = fe2o3_amqp::Session::begin(&mut anonymous).await.unwrap();
    let refused = fe2o3_amqp::Receiver::builder()
        .name("anonymous")
        .source(Source::builder().address(format!("{address}0")).build())
        .target("anonymous-reader")
        .attach(&mut session)
        .await;
    let why = match refused {
        Ok(_) => panic!("a partition was attached without a token"),
        Err(e) => format!("{e:?}"),
    };
    // The hub answers with a null source and detaches with amqp:unauthorized-access; fe2o3
    // reports the null source first.
    assert!(
        why.contains("UnauthorizedAccess") || why.contains("IncomingSourceIsNone"),
        "{why}"
    );
    let _ = anonymous.close().await;

    let tls = eventhubs::tls_config(std::slice::from_ref(ca.root().cert())).unwrap();
    let tcp = tokio::net::TcpStream::connect(hub.amqp).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .unwrap();
    let wrong = fe2o3_amqp::Connection::builder()
        .container_id("wrong")
        .sasl_profile(SaslProfile::Plain {
            username: "service".into(),
            password: "not-the-key".into(),
        })
        .open_with_stream(stream)
        .await;
    assert!(wrong.is_err(), "a wrong key passes SASL");
    hub.stop().await;
}
