//! Generator benchmarks, each against a baseline measured in the same run on the same machine:
//!
//! 1. handshakes: full mutual TLS 1.3 handshakes per client CPU-second in churn mode (k = 0),
//!    against a bare tokio-rustls connect/handshake/close loop (same certificates, same server);
//!    the same with resumption;
//! 2. memory: client RSS per idle mutual-TLS MQTT session with 10,000 held, against the RSS per
//!    bare tokio-rustls connection;
//! 4. messages: QoS 1 publishes acknowledged per client CPU-second over 100 sessions, against a
//!    bare rumqttc `AsyncClient` loop;
//! 5. recording: nanoseconds per histogram sample on the hot path, against a bare hdrhistogram;
//!
//! and, only when asked (`cargo bench --bench fleet -- concurrency`):
//! 3. concurrency: 19,000 sessions from this process, held 60 s with keep-alives.
//!
//! The hub always runs in a child process (this binary re-executed as the server) so that the
//! client's CPU time is the generator's alone. Client runtimes have one worker thread: "per core".

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetbench::command::run::bind_loopback;
use fleetbench::hub::{self, Hub, HubConfig, Listeners};
use fleetbench::load::{self, Fleet};
use fleetbench::metrics::{Phase, ProcessSample, Recorder, Snapshot};
use fleetbench::pki::{
    CaChain, ChainSpec, DeviceIds, IdTemplate, KeyType, ServerIdentity, Validity,
};
use fleetbench::scenario::{Overrides, Plan, Scenario};
use fleetbench::transport::{self, ClientTls, Endpoint, ServerVerification, TlsVersion};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio_util::sync::CancellationToken;

const ROLE: &str = "FLEETBENCH_BENCH_ROLE";
const IDS: &str = "bench-{n:05}";
const FLEET: u64 = 20_000;

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("server") => return server(Path::new(&std::env::args().nth(1).unwrap())),
        Ok(role) => return client_role(role),
        Err(_) => {}
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let only = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    let lab = Lab::new();
    println!("fleetbench generator benchmarks ({} cores)\n", cores());
    if only("handshakes") {
        handshakes(&lab, false);
        handshakes(&lab, true);
    }
    if only("memory") {
        memory(&lab);
    }
    if only("messages") {
        messages(&lab);
    }
    if only("recording") {
        recording();
    }
    if args.iter().any(|a| a == "concurrency") {
        concurrency(&lab);
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The PKI of a benchmark run, written for the server process.
struct Lab {
    dir: tempfile::TempDir,
    chain: Arc<CaChain>,
}

impl Lab {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Devices signed by the root, so child processes can mint from the root alone.
        let spec = ChainSpec {
            intermediates: 0,
            ..ChainSpec::default()
        };
        let chain = Arc::new(CaChain::generate(&spec).unwrap());
        let server = chain
            .mint_server(&["localhost".into()], KeyType::EcdsaP256)
            .unwrap();
        std::fs::write(dir.path().join("root.der"), chain.root().cert()).unwrap();
        for (i, c) in server.chain.iter().enumerate() {
            std::fs::write(dir.path().join(format!("server-{i}.der")), c).unwrap();
        }
        std::fs::write(dir.path().join("server.key"), server.key.secret_der()).unwrap();
        Self { dir, chain }
    }

    /// Starts the hub in a child process; it exits when its stdin closes.
    fn server(&self) -> (Child, u16) {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg(self.dir.path())
            .env(ROLE, "server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("READY ").unwrap().parse().unwrap();
        (child, port)
    }

    /// Runs this binary as a client in `role` against a server on `port`; its stdout line.
    fn client(&self, role: &str, port: u16) -> String {
        let out = Command::new(std::env::current_exe().unwrap())
            .arg(self.dir.path())
            .arg(port.to_string())
            .env(ROLE, role)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "client {role} failed");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// The hub, fed from the lab's files.
fn server(dir: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut chain = Vec::new();
        for i in 0.. {
            match std::fs::read(dir.join(format!("server-{i}.der"))) {
                Ok(der) => chain.push(CertificateDer::from(der)),
                Err(_) => break,
            }
        }
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            std::fs::read(dir.join("server.key")).unwrap(),
        ));
        let hub = Hub::new(HubConfig::default(), &ServerIdentity { chain, key }).unwrap();
        hub.registry
            .add_verified_ca(
                "root",
                CertificateDer::from(std::fs::read(dir.join("root.der")).unwrap()),
            )
            .unwrap();
        hub.registry.register_ca_signed(ids(FLEET).iter());
        let listener = bind_loopback().await.unwrap();
        println!("READY {}", listener.local_addr().unwrap().port());
        std::io::stdout().flush().unwrap();
        let eof = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        });
        hub::serve(
            hub,
            Listeners {
                amqp: None,
                mqtt: Some(listener),
            },
            async move {
                let _ = eof.await;
            },
        )
        .await;
    });
}

fn ids(n: u64) -> DeviceIds {
    DeviceIds::new(IdTemplate::parse(IDS).unwrap(), n, 0, 1)
}

fn plan(toml: &str) -> Plan {
    let s = Scenario::parse(toml, Path::new("bench.toml")).unwrap();
    Plan::new(
        &s,
        toml,
        Path::new("bench.toml"),
        "bench",
        &Overrides::default(),
    )
    .unwrap()
}

/// The CA a child client mints its devices from (written by `Lab::export_ca`).
fn chain_from(dir: &Path) -> Arc<CaChain> {
    let cert = CertificateDer::from(std::fs::read(dir.join("ca.der")).unwrap());
    let key =
        rcgen::KeyPair::try_from(std::fs::read(dir.join("ca.key")).unwrap().as_slice()).unwrap();
    Arc::new(
        CaChain::from_authorities(vec![
            fleetbench::pki::Authority::from_parts(cert, key).unwrap()
        ])
        .unwrap(),
    )
}

fn endpoint(port: u16) -> Endpoint {
    Endpoint {
        addr: ([127, 0, 0, 1], port).into(),
        server_name: ServerName::try_from("localhost").unwrap().to_owned(),
        host: "localhost".into(),
    }
}

fn client_tls(root: &CertificateDer<'static>, resumption: bool) -> ClientTls {
    let roots = ClientTls::roots(std::slice::from_ref(root)).unwrap();
    ClientTls::new(
        TlsVersion::Tls13,
        ServerVerification::Roots(roots),
        resumption,
    )
}

/// CPU seconds (user + system) and wall seconds of `f`.
fn measured<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (c0, w0) = (ProcessSample::now().cpu(), Instant::now());
    let out = f();
    (
        out,
        ProcessSample::now().cpu().saturating_sub(c0).as_secs_f64(),
        w0.elapsed().as_secs_f64(),
    )
}

fn fleet(chain: &Arc<CaChain>, n: u64) -> Fleet {
    Fleet {
        ca: chain.clone(),
        ids: ids(n),
        key_type: KeyType::EcdsaP256,
        validity: Validity::default(),
    }
}

/// Rounds of each handshake loop, alternating, best kept: a neighbour on this shared machine
/// then slows both loops alike instead of one of them.
const ROUNDS: usize = 5;

fn handshakes(lab: &Lab, resumption: bool) {
    let (mut server, port) = lab.server();
    let root = lab.chain.root().cert().clone();
    let secs = 3;
    let concurrency = 16;
    let devices = 64;
    let kind = if resumption { "resumed" } else { "full" };
    let rt = runtime();

    // fleetbench: churn, k = 0, as fast as the handshake cap allows.
    let p = plan(&format!(
        "[fleet]\ndevices = {devices}\n[connect]\nrate = 1000000\nmax-handshakes = {concurrency}\n\
         [churn]\nduration = \"{secs}s\"\nmessages = 0\n[tls]\nresumption = {resumption}\n"
    ));
    let fleetbench = || {
        let run = FleetRun {
            rt: &rt,
            plan: &p,
            lab,
            devices,
            port,
            resumption,
        };
        run.rate("handshakes", |s| s.handshakes)
    };

    // Bare tokio-rustls: connect, handshake, close; same certificates, same server.
    let tls = client_tls(&root, resumption);
    let configs: Vec<_> = (0..devices as usize)
        .map(|i| {
            tls.for_device(
                &lab.chain
                    .mint_device(&ids(devices).id(i), KeyType::EcdsaP256, Validity::default())
                    .unwrap(),
            )
            .unwrap()
        })
        .collect();
    let bare = || {
        let count = Arc::new(AtomicU64::new(0));
        let (_, cpu, wall) = measured(|| {
            rt.block_on(async {
                let end = tokio::time::Instant::now() + Duration::from_secs(secs);
                let tasks: Vec<_> = (0..concurrency)
                    .map(|t| {
                        let (configs, count) = (configs.clone(), count.clone());
                        tokio::spawn(async move {
                            let mut i = t;
                            while tokio::time::Instant::now() < end {
                                let tcp =
                                    transport::tcp_connect(([127, 0, 0, 1], port).into(), None)
                                        .await
                                        .unwrap();
                                let name = ServerName::try_from("localhost").unwrap().to_owned();
                                let (mut s, _) = transport::tls_handshake(
                                    configs[i % configs.len()].clone(),
                                    name,
                                    tcp,
                                )
                                .await
                                .unwrap();
                                count.fetch_add(1, Ordering::Relaxed);
                                // Close, then read to the end: a TLS 1.3 session ticket arrives
                                // after the handshake, and resumption needs it read.
                                let _ = tokio::io::AsyncWriteExt::shutdown(&mut s).await;
                                let mut sink = Vec::new();
                                let _ =
                                    tokio::io::AsyncReadExt::read_to_end(&mut s, &mut sink).await;
                                i += concurrency;
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            });
        });
        Rate::new("handshakes", count.load(Ordering::Relaxed), cpu, wall)
    };

    compare(
        &format!(
            "1. handshakes ({kind}, TLS 1.3, mutual, concurrency {concurrency}, {ROUNDS} alternating rounds of {secs} s, best kept)"
        ),
        ("fleetbench churn k=0", "bare tokio-rustls   "),
        None,
        ">= 0.9",
        fleetbench,
        bare,
    );
    drop(server.stdin.take());
    let _ = server.wait();
}

/// Runs `fleetbench` and `bare` `ROUNDS` times each, alternating, then prints the best round of
/// each (with every round listed), an optional footnote, and their ratio per client CPU-second.
fn compare(
    title: &str,
    (fleet_label, bare_label): (&str, &str),
    footnote: Option<&str>,
    aim: &str,
    mut fleetbench: impl FnMut() -> Rate,
    mut bare: impl FnMut() -> Rate,
) {
    let (fb, bb): (Vec<_>, Vec<_>) = (0..ROUNDS).map(|_| (fleetbench(), bare())).unzip();
    let (fbest, bbest) = (Rate::best(&fb), Rate::best(&bb));
    println!("{title}");
    println!("   {fleet_label}: {fbest}   rounds {}", Rate::list(&fb));
    println!("   {bare_label}: {bbest}   rounds {}", Rate::list(&bb));
    if let Some(note) = footnote {
        println!("   {note}");
    }
    println!(
        "   ratio (per CPU-second): {:.2}   (aim {aim})\n",
        fbest.per_cpu / bbest.per_cpu
    );
}

/// One timed fleetbench run in the client runtime, against the lab's server.
struct FleetRun<'a> {
    rt: &'a tokio::runtime::Runtime,
    plan: &'a Plan,
    lab: &'a Lab,
    devices: u64,
    port: u16,
    resumption: bool,
}

impl FleetRun<'_> {
    /// Runs the plan; `count` picks what to count from the recorder's totals.
    fn rate(&self, what: &'static str, count: impl Fn(&Snapshot) -> u64) -> Rate {
        let rec = Arc::new(Recorder::new());
        let root = self.lab.chain.root().cert().clone();
        let (_, cpu, wall) = measured(|| {
            self.rt
                .block_on(load::run(
                    self.plan,
                    fleet(&self.lab.chain, self.devices),
                    endpoint(self.port),
                    client_tls(&root, self.resumption),
                    rec.clone(),
                    CancellationToken::new(),
                ))
                .unwrap()
        });
        let s = rec.snapshot();
        assert_eq!(s.sessions_failed, 0, "{:?}", rec.failures());
        Rate::new(what, count(&s), cpu, wall)
    }
}

/// Events (handshakes, acknowledgements) per client CPU-second and per wall second of one
/// round.
#[derive(Debug, Clone, Copy)]
struct Rate {
    what: &'static str,
    count: u64,
    per_cpu: f64,
    per_wall: f64,
}

impl Rate {
    fn new(what: &'static str, count: u64, cpu: f64, wall: f64) -> Self {
        Self {
            what,
            count,
            per_cpu: count as f64 / cpu,
            per_wall: count as f64 / wall,
        }
    }

    fn best(rounds: &[Self]) -> Self {
        *rounds
            .iter()
            .max_by(|a, b| a.per_cpu.total_cmp(&b.per_cpu))
            .unwrap()
    }

    fn list(rounds: &[Self]) -> String {
        let each: Vec<_> = rounds.iter().map(|r| format!("{:.0}", r.per_cpu)).collect();
        format!("[{}]", each.join(", "))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>7} {}, {:>6.0}/s wall, {:>6.0} per client CPU-second",
            self.count, self.what, self.per_wall, self.per_cpu
        )
    }
}

fn memory(lab: &Lab) {
    let (mut server, port) = lab.server();
    lab.export_ca();
    let fb: f64 = lab.client("memory-fleet", port).parse().unwrap();
    let bare: f64 = lab.client("memory-bare", port).parse().unwrap();
    println!("2. memory per idle mutual-TLS session, 10,000 held (separate client processes)");
    println!("   fleetbench MQTT session : {fb:>6.1} KiB RSS each");
    println!("   bare tokio-rustls conn  : {bare:>6.1} KiB RSS each");
    println!("   ratio: {:.2}   (aim <= 1.5)\n", fb / bare);
    drop(server.stdin.take());
    let _ = server.wait();
}

impl Lab {
    /// Child clients mint their own devices from the same issuing CA.
    fn export_ca(&self) {
        let issuing = self.chain.issuing();
        std::fs::write(self.dir.path().join("ca.der"), issuing.cert()).unwrap();
        std::fs::write(
            self.dir.path().join("ca.key"),
            issuing.key().serialize_der(),
        )
        .unwrap();
    }
}

fn client_role(role: &str) {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(&args[1]);
    let port: u16 = args[2].parse().unwrap();
    let root = CertificateDer::from(std::fs::read(dir.join("root.der")).unwrap());
    let chain = chain_from(&dir);
    let n = 10_000;
    let rt = runtime();
    let per_session = match role {
        "memory-fleet" => {
            // Connect all (the handshake cap paces them), each sends one message, then holds
            // long enough for every session to be open at once.
            let p = plan(&format!(
                "[fleet]\ndevices = {n}\n[connect]\nmax-handshakes = 64\n[messages]\ncount = 1\n\
                 [session]\nhold = \"20s\"\n[protocol]\nkeep-alive = \"60s\"\n"
            ));
            let rec = Arc::new(Recorder::new());
            let result = rt
                .block_on(load::run(
                    &p,
                    fleet(&chain, n),
                    endpoint(port),
                    client_tls(&root, false),
                    rec.clone(),
                    CancellationToken::new(),
                ))
                .unwrap();
            assert_eq!(rec.snapshot().sessions_connected, n, "{:?}", rec.failures());
            result.health.rss_per_session_kib.unwrap()
        }
        "memory-bare" => rt.block_on(async {
            let tls = client_tls(&root, false);
            use futures::StreamExt as _;
            let before = ProcessSample::now().rss_kib;
            let held: Vec<_> = futures::stream::iter(0..n as usize)
                .map(|i| {
                    let cfg = tls
                        .for_device(
                            &chain
                                .mint_device(&ids(n).id(i), KeyType::EcdsaP256, Validity::default())
                                .unwrap(),
                        )
                        .unwrap();
                    async move {
                        let tcp = transport::tcp_connect(([127, 0, 0, 1], port).into(), None)
                            .await
                            .unwrap();
                        let name = ServerName::try_from("localhost").unwrap().to_owned();
                        transport::tls_handshake(cfg, name, tcp).await.unwrap().0
                    }
                })
                .buffer_unordered(64)
                .collect()
                .await;
            let after = ProcessSample::now().rss_kib;
            assert_eq!(held.len(), n as usize);
            (after.saturating_sub(before)) as f64 / n as f64
        }),
        "concurrency" => return concurrency_client(&rt, &chain, &root, port),
        other => panic!("unknown role {other}"),
    };
    println!("{per_session}");
}

fn messages(lab: &Lab) {
    let (mut server, port) = lab.server();
    let root = lab.chain.root().cert().clone();
    let sessions = 100u64;
    let secs = 3;
    let rt = runtime();
    let p = plan(&format!(
        "[fleet]\ndevices = {sessions}\n[messages]\ninterval = \"0s\"\nduration = \"{secs}s\"\nmax-inflight = 16\n"
    ));
    let fleetbench = || {
        let run = FleetRun {
            rt: &rt,
            plan: &p,
            lab,
            devices: sessions,
            port,
            resumption: false,
        };
        run.rate("acked", |s| s.messages_acked)
    };

    let tls = client_tls(&root, false);
    let configs: Vec<_> = (0..sessions as usize)
        .map(|i| {
            let id = ids(sessions).id(i);
            let device = lab
                .chain
                .mint_device(&id, KeyType::EcdsaP256, Validity::default())
                .unwrap();
            (id, tls.for_device(&device).unwrap())
        })
        .collect();
    let bare = || {
        let acked = Arc::new(AtomicU64::new(0));
        let (_, cpu, wall) = measured(|| {
            rt.block_on(async {
                let end = tokio::time::Instant::now() + Duration::from_secs(secs);
                let mut tasks = Vec::new();
                for (id, cfg) in &configs {
                    let mut o = rumqttc::MqttOptions::new(id.clone(), "localhost", port);
                    o.set_credentials(format!("localhost/{id}/?api-version=2021-04-12"), "");
                    o.set_clean_session(false);
                    o.set_inflight(16);
                    o.set_transport(rumqttc::Transport::tls_with_config(
                        rumqttc::TlsConfiguration::Rustls(cfg.clone()),
                    ));
                    let (client, mut events) = rumqttc::AsyncClient::new(o, 16);
                    let acked = acked.clone();
                    let topic = format!("devices/{id}/messages/events/");
                    tasks.push(tokio::spawn(async move {
                        let publisher = tokio::spawn(async move {
                            while tokio::time::Instant::now() < end {
                                let body = br#"{"deviceId":"x","messageId":1,"temperature":25.00,"humidity":70.00}"#;
                                if client
                                    .publish(&topic, rumqttc::QoS::AtLeastOnce, false, body.to_vec())
                                    .await
                                    .is_err()
                                {
                                    break;
                                }
                            }
                            let _ = client.disconnect().await;
                        });
                        while let Ok(ev) = events.poll().await {
                            if matches!(ev, rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) {
                                acked.fetch_add(1, Ordering::Relaxed);
                            }
                            if matches!(ev, rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                                break;
                            }
                        }
                        let _ = publisher.await;
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            });
        });
        Rate::new("acked", acked.load(Ordering::Relaxed), cpu, wall)
    };

    compare(
        &format!(
            "4. QoS 1 publishes acknowledged, {sessions} sessions, 16 in flight each, {ROUNDS} alternating rounds of {secs} s, best kept"
        ),
        ("fleetbench   ", "bare rumqttc "),
        Some("(both include their 100 handshakes)"),
        "> 1.0",
        fleetbench,
        bare,
    );
    drop(server.stdin.take());
    let _ = server.wait();
}

fn recording() {
    let n = 10_000_000u64;
    let rec = Recorder::new();
    let (_, _, fb) = measured(|| {
        for i in 0..n {
            rec.record(
                Phase::PublishAck,
                (i & 7) as usize,
                Duration::from_micros(50 + (i & 1023)),
            );
        }
    });
    let mut h = fleetbench::metrics::new_histogram();
    let (_, _, bare) = measured(|| {
        for i in 0..n {
            h.saturating_record(std::hint::black_box(50 + (i & 1023)));
        }
    });
    std::hint::black_box(&h);
    let (fb_ns, bare_ns) = (fb * 1e9 / n as f64, bare * 1e9 / n as f64);
    println!("5. cost of recording one latency sample ({n} samples, one thread)");
    println!("   fleetbench Recorder::record : {fb_ns:>5.1} ns   (sharded lock + histogram)");
    println!("   bare Histogram::record      : {bare_ns:>5.1} ns");
    println!("   ratio: {:.2}\n", fb_ns / bare_ns);
}

fn concurrency(lab: &Lab) {
    let (mut server, port) = lab.server();
    lab.export_ca();
    let line = lab.client("concurrency", port);
    println!("3. concurrency: {line}\n");
    drop(server.stdin.take());
    let _ = server.wait();
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
            fleet(chain, n),
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
