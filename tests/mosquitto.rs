//! Issue 8: the generic MQTT dialect against a real broker, Mosquitto with mutual TLS and
//! `require_certificate true`, started by the test on a free loopback port.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fleetbench::pki::{CaChain, KeyType};

use crate::support;

/// A Mosquitto process, killed by PID on drop.
struct Mosquitto {
    child: Child,
    port: u16,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mosquitto {
    /// Starts Mosquitto with the project's configuration; its server certificate and client CA
    /// come from `ca`. Waits for its "running" log line, not for a fixed time.
    fn start(ca: &CaChain, dir: &Path) -> Self {
        let server = ca
            .mint_server(
                &["localhost".into(), "127.0.0.1".into()],
                KeyType::EcdsaP256,
            )
            .unwrap();
        let certs: Vec<&[u8]> = server.chain.iter().map(|c| c.as_ref()).collect();
        std::fs::write(dir.join("server.pem"), support::pem("CERTIFICATE", &certs)).unwrap();
        support::write_private(
            &dir.join("server.key"),
            &support::pem("PRIVATE KEY", &[server.key.secret_der()]),
        );
        let cas: Vec<&[u8]> = ca.authorities().iter().map(|a| a.cert().as_ref()).collect();
        std::fs::write(dir.join("ca.pem"), support::pem("CERTIFICATE", &cas)).unwrap();
        let port = support::free_port();
        let template = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/.ci/mosquitto/mosquitto.conf"
        ))
        .unwrap();
        let conf = template
            .replace("{port}", &port.to_string())
            .replace("{dir}", &dir.display().to_string());
        std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let ready = line.contains("running");
                if tx.send(line).is_err() || ready {
                    // Keep draining so the broker never blocks on a full pipe.
                    continue;
                }
            }
        });
        let mut log = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.contains("running") => break,
                Ok(line) => log.push(line),
                Err(_) => {
                    // Not yet wrapped in `Mosquitto`, so stop it here rather than leak it.
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("mosquitto did not start: {}", log.join("\n"))
                }
            }
        }
        Self { child, port }
    }
}

const GENERIC: &str = r#"
[protocol]
dialect = "generic"
topic = "fleet/{device_id}/telemetry"
qos = 1
[connect]
max-handshakes = 32
[messages]
count = 2
interval = "10ms"
[run]
max-duration = "60s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_of_200_against_mosquitto_with_client_certificates() {
    if !support::have("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = support::chain();
    let broker = Mosquitto::start(&ca, dir.path());
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], broker.port));
    let plan = support::plan(GENERIC);

    let (rec, _) = support::fleet_at(&plan, addr, &ca, ca.clone(), support::ids("mq", 200)).await;
    let s = rec.snapshot();
    assert_eq!(s.sessions_connected, 200, "{:?}", rec.failures());
    assert_eq!(s.sessions_failed, 0, "{:?}", rec.failures());
    assert_eq!(s.messages_acked, 400);
    assert_eq!(s.messages_unacked, 0);

    // A device whose certificate comes from another CA is refused and counted.
    let rogue = support::chain();
    let (rec, _) = support::fleet_at(&plan, addr, &ca, rogue, support::ids("rogue", 3)).await;
    let s = rec.snapshot();
    assert_eq!(s.sessions_connected, 0);
    assert_eq!(s.sessions_failed, 3);
    assert_eq!(
        rec.failures().iter().map(|f| f.count).sum::<u64>(),
        3,
        "{:?}",
        rec.failures()
    );
    drop(broker);
}
