//! Shared test fixtures: scenarios from inline TOML, a PKI minted in the test, an embedded hub
//! on 127.0.0.1:0, and fleet runs driven in-process.

#![allow(dead_code, unreachable_pub)]

pub mod accounting;
pub mod amqp_link;
pub mod hub_serve;
pub mod hub_state;
pub mod mosquitto;
pub mod openmetrics;
pub mod pki_cli;
pub mod rabbitmq;
pub mod remote_run;
pub mod results;
pub mod walkthrough;

use std::path::Path;
use std::sync::Arc;

use fleetbench::command::run::{run_plan, EmbeddedHub, RunOptions, RunReport};
use fleetbench::hub::HubConfig;
use fleetbench::load::{self, Fleet, FleetResult};
use fleetbench::metrics::Recorder;
use fleetbench::pki::{CaChain, ChainSpec, DeviceIds, IdTemplate, KeyType, Validity};
use fleetbench::scenario::{Overrides, Plan, Scenario};
use fleetbench::transport::{ClientTls, Endpoint, ServerVerification, TlsVersion};
use rustls::pki_types::ServerName;
use tokio_util::sync::CancellationToken;

/// A validated plan from inline TOML.
pub fn plan(toml: &str) -> Plan {
    let s = Scenario::parse(toml, Path::new("inline.toml")).expect("scenario parses");
    Plan::new(
        &s,
        toml,
        Path::new("inline.toml"),
        "test",
        &Overrides::default(),
    )
    .expect("plan is valid")
}

/// Runs a plan end to end (its own PKI and embedded hub), results in a temporary directory.
pub async fn run(plan: &Plan) -> (RunReport, tempfile::TempDir) {
    run_with(plan, HubConfig::default()).await
}

/// As [`run`], with hub behaviour.
pub async fn run_with(plan: &Plan, hub: HubConfig) -> (RunReport, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = RunOptions {
        results_root: dir.path().to_owned(),
        quiet: true,
        interrupt: CancellationToken::new(),
        abort: CancellationToken::new(),
        hub,
        metrics: None,
        shard: None,
        start_at: None,
        ca: None,
    };
    let report = run_plan(plan, &options).await.expect("run completes");
    (report, dir)
}

/// A fresh CA chain (root -> one intermediate), ECDSA P-256.
pub fn chain() -> Arc<CaChain> {
    Arc::new(CaChain::generate(&ChainSpec::default()).expect("chain mints"))
}

/// A hub whose server certificate comes from `server_ca`, with `registered` CAs verified.
pub async fn hub(server_ca: &CaChain, registered: &[&CaChain]) -> EmbeddedHub {
    let hub = EmbeddedHub::start(server_ca, HubConfig::default())
        .await
        .expect("hub starts");
    for (i, ca) in registered.iter().enumerate() {
        hub.hub
            .registry
            .add_verified_ca(&format!("ca-{i}"), ca.root().cert().clone())
            .expect("ca registers");
    }
    hub
}

/// Device ids `prefix-{n:05}`, `count` of them.
pub fn ids(prefix: &str, count: u64) -> DeviceIds {
    DeviceIds::new(
        IdTemplate::parse(&format!("{prefix}-{{n:05}}")).expect("template"),
        count,
        0,
        1,
    )
}

/// Runs `ids` (signed by `ca`) against `hub` per `plan`, in-process, on the hub's port for the
/// plan's protocol. `trust` signs the hub's server certificate.
pub async fn fleet(
    plan: &Plan,
    hub: &EmbeddedHub,
    trust: &CaChain,
    ca: Arc<CaChain>,
    ids: DeviceIds,
) -> (Arc<Recorder>, FleetResult) {
    fleet_at(plan, hub.addr_for(&plan.protocol), trust, ca, ids).await
}

/// Runs `ids` (signed by `ca`) against the server at `addr` (certificate for `localhost`, signed
/// by `trust`) per `plan`, in-process.
pub async fn fleet_at(
    plan: &Plan,
    addr: std::net::SocketAddr,
    trust: &CaChain,
    ca: Arc<CaChain>,
    ids: DeviceIds,
) -> (Arc<Recorder>, FleetResult) {
    let endpoint = Endpoint {
        addr,
        server_name: ServerName::try_from("localhost").expect("name").to_owned(),
        host: "localhost".into(),
        websocket: None,
    };
    let roots = ClientTls::roots(std::slice::from_ref(trust.root().cert())).expect("roots");
    let tls = ClientTls::new(TlsVersion::Tls13, ServerVerification::Roots(roots), false);
    let fleet = Fleet {
        ca,
        ids,
        key_type: KeyType::EcdsaP256,
        validity: Validity::default(),
    };
    let recorder = Arc::new(Recorder::new());
    let result = load::run(
        plan,
        fleet,
        endpoint,
        tls,
        recorder.clone(),
        CancellationToken::new(),
    )
    .await
    .expect("fleet runs");
    (recorder, result)
}

/// PEM text of DER blocks.
pub fn pem(label: &str, ders: &[&[u8]]) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    for der in ders {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        out.push_str(&format!("-----BEGIN {label}-----\n"));
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
    }
    out
}

/// Writes a private key file readable by its owner only.
pub fn write_private(path: &Path, contents: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("key file");
    f.write_all(contents.as_bytes()).expect("write key");
}

/// Whether an external program is installed; when it is not, tests that need it skip, unless
/// FLEETBENCH_REQUIRE_BROKERS=1 (CI), where they fail.
pub fn have(program: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("FLEETBENCH_REQUIRE_BROKERS").as_deref() != Ok("1"),
            "{program} is not installed but FLEETBENCH_REQUIRE_BROKERS=1"
        );
        eprintln!("SKIPPED: {program} is not installed");
    }
    found
}

/// A free port on 127.0.0.1 for a server that must be told its port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Reads a `fleetbench run --metrics 127.0.0.1:0 -v` child's stderr on a thread and waits for
/// the live metrics address it announces once set up. The thread returns the whole log.
pub fn metrics_address(
    child: &mut std::process::Child,
) -> (std::net::SocketAddr, std::thread::JoinHandle<String>) {
    use std::io::{BufRead as _, BufReader};
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let stderr = child.stderr.take().expect("stderr piped");
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("live metrics on http://").nth(1) {
                let _ = tx.send(rest.trim_end_matches("/metrics").to_owned());
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let addr = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("metrics address announced")
        .parse()
        .expect("an address");
    (addr, reader)
}

/// `fleetbench -v run --quiet --metrics 127.0.0.1:0 --results RESULTS SCENARIO` started, once
/// its live metrics address is announced: the child, that address and the stderr reader.
pub fn spawn_run_with_metrics(
    scenario: &Path,
    results: &Path,
) -> (
    std::process::Child,
    std::net::SocketAddr,
    std::thread::JoinHandle<String>,
) {
    use std::process::Stdio;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .args([
            "-v",
            "run",
            "--quiet",
            "--metrics",
            "127.0.0.1:0",
            "--results",
        ])
        .arg(results)
        .arg(scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fleetbench starts");
    let (addr, reader) = metrics_address(&mut child);
    (child, addr, reader)
}

/// Scrapes `addr` until `fleetbench_messages_acked_total` reaches `n` (at most 60 s): the run
/// is in full swing. Returns the last exposition.
pub fn wait_for_acks(addr: std::net::SocketAddr, n: f64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = openmetrics::scrape(addr);
        if openmetrics::value(&text, "fleetbench_messages_acked_total").unwrap_or(0.0) >= n {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "fewer than {n} acknowledgements seen: {text}"
        );
    }
}

/// The arguments of `fleetbench pki devices --ca CA --count COUNT --out OUT`.
pub fn pki_devices<'a>(ca: &'a str, count: &'a str, out: &'a str) -> [&'a str; 8] {
    ["pki", "devices", "--ca", ca, "--count", count, "--out", out]
}

/// The environment variables that pick a shard, a start time or extra output for `run`; a test
/// sets the ones it means, never inherits them.
pub const RUN_ENV: [&str; 5] = [
    "FLEETBENCH_SHARD",
    "FLEETBENCH_SHARDS",
    "JOB_COMPLETION_INDEX",
    "FLEETBENCH_START_AT",
    "FLEETBENCH_PRINT_SUMMARY",
];

/// The binary as a blocking command, with none of [`RUN_ENV`] inherited.
pub fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_fleetbench"));
    for var in RUN_ENV {
        c.env_remove(var);
    }
    c
}

/// The binary as a tokio command, with none of [`RUN_ENV`] inherited.
pub fn bin_async() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetbench"));
    for var in RUN_ENV {
        c.env_remove(var);
    }
    c
}

/// The MQTT session options of an IoT Hub device: MQTT 3.1.1, QoS 1, a persistent session.
pub fn iot_hub_mqtt() -> fleetbench::protocol::MqttOptions {
    use fleetbench::protocol::{MqttDialect, MqttOptions, MqttVersion, QoS};
    MqttOptions {
        dialect: MqttDialect::IotHub {
            api_version: "2021-04-12".into(),
        },
        version: MqttVersion::V311,
        qos: QoS::AtLeastOnce,
        keep_alive_secs: 60,
        clean_session: false,
        run_id: None,
    }
}
