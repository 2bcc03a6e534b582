//! What the verifying receiver costs: messages read and accounted per receiver CPU-second,
//! against a bare rumqttc subscriber loop reading the very same messages in the same run.
//!
//! A Mosquitto with mutual TLS (skipped, saying so, when `mosquitto` is not installed); both
//! receivers subscribe (QoS 1) before one rumqttc publisher sends `MESSAGES` QoS 1 messages
//! with the 28-byte binary stamp at the head of a 64-byte payload. Each receiver runs on its own
//! thread with a current-thread tokio runtime, and its CPU time is that thread's own
//! (`/proc/thread-self/schedstat`, ns): fleetbench's is the receiver (framing, PUBACKs, stamp
//! parsing, the deliver histogram) plus the accounting; the bare loop counts PUBLISH events of
//! rumqttc's `EventLoop` (which PUBACKs them). Rounds alternate nothing: both read at once.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use fleetbench::metrics::Recorder;
use fleetbench::pki::store::pem;
use fleetbench::pki::{CaChain, ChainSpec, KeyType, Validity};
use fleetbench::protocol::stamp;
use fleetbench::protocol::QoS;
use fleetbench::scenario::{VerifyIdentity, VerifyKind, VerifyPlan};
use fleetbench::transport::{ClientTls, Endpoint, ServerVerification, TlsVersion};
use fleetbench::verify::{self, Sent};
use rustls::pki_types::ServerName;

/// Messages per round.
const MESSAGES: u32 = 40_000;
/// Rounds; the ratio reported is the median of the rounds' ratios, with its spread.
const ROUNDS: usize = 5;
#[path = "support/stats.rs"]
mod stats;

const RUN: u64 = 0x0bad_cafe_f00d_0001;

struct Mosquitto(Child);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// This thread's CPU time so far, seconds.
fn thread_cpu() -> f64 {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    text.split_whitespace()
        .next()
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 1e9
}

fn main() {
    let found = Command::new("sh")
        .args(["-c", "command -v mosquitto"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("SKIPPED: mosquitto is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let chain = CaChain::generate(&ChainSpec {
        intermediates: 0,
        ..ChainSpec::default()
    })
    .unwrap();
    let server = chain
        .mint_server(&["localhost".into()], KeyType::EcdsaP256)
        .unwrap();
    let d = dir.path();
    std::fs::write(d.join("ca.pem"), pem("CERTIFICATE", chain.root().cert())).unwrap();
    let chain_pem: String = server.chain.iter().map(|c| pem("CERTIFICATE", c)).collect();
    std::fs::write(d.join("server.pem"), chain_pem).unwrap();
    std::fs::write(
        d.join("server.key"),
        pem("PRIVATE KEY", server.key.secret_der()),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    std::fs::write(
        d.join("m.conf"),
        format!(
            "per_listener_settings false\npersistence false\nlog_dest stderr\nuser root\n\
             listener {port} 127.0.0.1\ncafile ca.pem\ncertfile server.pem\nkeyfile server.key\n\
             require_certificate true\nuse_identity_as_username true\nallow_anonymous false\n\
             set_tcp_nodelay true\nmax_queued_messages 1000000\nmax_inflight_messages 100\n"
        ),
    )
    .unwrap();
    let mut child = Command::new("mosquitto")
        .args(["-c", "m.conf"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("running") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let _broker = Mosquitto(child);

    let roots = ClientTls::roots(std::slice::from_ref(chain.root().cert())).unwrap();
    let tls = ClientTls::new(TlsVersion::Tls13, ServerVerification::Roots(roots), false);
    let config = |id: &str| {
        let identity = chain
            .mint_device(id, KeyType::EcdsaP256, Validity::default())
            .unwrap();
        tls.for_device(&identity).unwrap()
    };
    let (mut fbs, mut bares) = (Vec::new(), Vec::new());
    println!("receiver cost: {MESSAGES} QoS 1 messages of 64 bytes per round, {ROUNDS} rounds");
    for round in 0..ROUNDS {
        let (fb, bare) = round_once(port, &config, round);
        println!(
            "  round {round}: fleetbench {fb:>10.0} msg/CPU-s   bare rumqttc {bare:>10.0} msg/CPU-s   ratio {:.2}",
            fb / bare
        );
        fbs.push(fb);
        bares.push(bare);
    }
    let (Some(fb), Some(bare), Some(ratio)) = (
        stats::Spread::of(&fbs),
        stats::Spread::of(&bares),
        stats::Spread::of(&stats::ratios(&fbs, &bares)),
    ) else {
        println!("no finite figures to summarise");
        return;
    };
    println!(
        "median: fleetbench receiver {:.0} msg/CPU-s, bare rumqttc subscriber {:.0} msg/CPU-s",
        fb.median, bare.median
    );
    println!("ratio (fleetbench / bare, per round): {ratio}");
}

/// One round: both receivers subscribed, the publisher sends, each reports msg/CPU-s.
fn round_once(
    port: u16,
    config: &dyn Fn(&str) -> Arc<rustls::ClientConfig>,
    round: usize,
) -> (f64, f64) {
    let endpoint = Endpoint {
        addr: ([127, 0, 0, 1], port).into(),
        server_name: ServerName::try_from("localhost").unwrap().to_owned(),
        host: "localhost".into(),
        websocket: None,
    };
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let topic = format!("bench{round}/+");
    // fleetbench's receiver and accounting.
    let fb = {
        let (ready, cfg, topic) = (ready_tx.clone(), config("fleetbench-verify"), topic.clone());
        std::thread::spawn(move || fleetbench_receiver(&endpoint, cfg, &topic, &ready, &done_rx))
    };
    // The bare rumqttc subscriber.
    let bare = {
        let (ready, cfg) = (ready_tx, config("bare-subscriber"));
        std::thread::spawn(move || bare_receiver(port, cfg, &topic, &ready))
    };
    ready_rx.recv().unwrap();
    ready_rx.recv().unwrap();
    publish(port, config("bench-00000"), &format!("bench{round}/d0"));
    done_tx.send(()).unwrap();
    (fb.join().unwrap(), bare.join().unwrap())
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn fleetbench_receiver(
    endpoint: &Endpoint,
    cfg: Arc<rustls::ClientConfig>,
    topic: &str,
    ready: &mpsc::Sender<()>,
    done: &mpsc::Receiver<()>,
) -> f64 {
    current_thread().block_on(async {
        let plan = VerifyPlan {
            kind: VerifyKind::Mqtt {
                topic: topic.to_owned(),
                qos: QoS::AtLeastOnce,
                group: None,
                receivers: 1,
            },
            client_id: "fleetbench-verify".into(),
            identity: VerifyIdentity::Minted,
            settle: Duration::from_secs(60),
        };
        let recorder = Arc::new(Recorder::new());
        let setup = verify::Setup {
            endpoint: endpoint.clone(),
            tls: cfg.clone(),
            tls_anonymous: cfg,
            sasl: fleetbench::protocol::SaslMechanism::External,
            connection_string: None,
        };
        let verifier = verify::start(&plan, &setup, RUN, recorder).await.unwrap();
        ready.send(()).unwrap();
        let cpu0 = thread_cpu();
        // The publisher's end, polled without blocking the runtime the receiver runs on.
        while done.try_recv().is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let sent = vec![Sent {
            index: 0,
            device: "bench-00000".into(),
            sent: MESSAGES,
            settled: false,
            unacked: Vec::new(),
        }];
        let d = verifier.finish(sent, true).await;
        let cpu = thread_cpu() - cpu0;
        assert_eq!((d.delivered, d.lost), (u64::from(MESSAGES), 0), "{d:?}");
        d.received as f64 / cpu
    })
}

fn bare_receiver(
    port: u16,
    cfg: Arc<rustls::ClientConfig>,
    topic: &str,
    ready: &mpsc::Sender<()>,
) -> f64 {
    current_thread().block_on(async {
        let mut o = rumqttc::MqttOptions::new("bare-subscriber", "localhost", port);
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(cfg),
        ));
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut events) = rumqttc::AsyncClient::new(o, 64);
        client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
        loop {
            if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) =
                events.poll().await.unwrap()
            {
                break;
            }
        }
        ready.send(()).unwrap();
        let cpu0 = thread_cpu();
        let mut n = 0u32;
        while n < MESSAGES {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(_)) =
                events.poll().await.unwrap()
            {
                n += 1;
            }
        }
        let cpu = thread_cpu() - cpu0;
        f64::from(n) / cpu
    })
}

/// Sends `MESSAGES` stamped QoS 1 messages to `topic`.
fn publish(port: u16, cfg: Arc<rustls::ClientConfig>, topic: &str) {
    current_thread().block_on(async {
        let mut o = rumqttc::MqttOptions::new("bench-00000", "localhost", port);
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(cfg),
        ));
        o.set_inflight(100);
        let (client, mut events) = rumqttc::AsyncClient::new(o, 256);
        let topic = topic.to_owned();
        let sender = tokio::spawn(async move {
            for seq in 0..MESSAGES {
                let mut body = vec![0u8; 64];
                let now = stamp::unix_micros(Instant::now());
                stamp::write_binary(&mut body, RUN, 0, seq, now);
                client
                    .publish(&topic, QoS::AtLeastOnce, false, body)
                    .await
                    .unwrap();
            }
        });
        let mut acked = 0;
        while acked < MESSAGES {
            if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) =
                events.poll().await.unwrap()
            {
                acked += 1;
            }
        }
        sender.await.unwrap();
    });
}
