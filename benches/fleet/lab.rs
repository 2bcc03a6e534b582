//! The lab of a benchmark run: its PKI written to files, the hub child process that serves it,
//! and what a child process reads back from those files.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use fleetbench::command::run::bind_loopback;
use fleetbench::hub::{self, Hub, HubConfig, Listeners};
use fleetbench::pki::{CaChain, ChainSpec, KeyType, ServerIdentity};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{ids, runtime, FLEET, HUB_CORE, PINNED_HUB, ROLE};

/// The PKI of a benchmark run, written for the server and client processes; in a side child
/// (`together.rs`), read back with the ports of the parent's hub.
pub(crate) struct Lab {
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub(crate) chain: Arc<CaChain>,
    /// In a side child: the hub the parent started (MQTT and AMQP ports).
    hub: Option<(u16, u16)>,
}

/// The hub child process (none in a side child), its stdin and stdout, and its ports.
pub(crate) struct Server {
    child: Option<Child>,
    io: Mutex<Option<(ChildStdin, BufReader<ChildStdout>)>>,
    pub(crate) mqtt: u16,
    pub(crate) amqp: u16,
}

impl Server {
    /// What the hub saw go wrong so far: older connections it dropped because the same device
    /// id connected again, and failed TLS handshakes. `None` in a side child.
    pub(crate) fn troubles(&self) -> Option<(u64, u64)> {
        let mut io = self.io.lock().unwrap();
        let (stdin, stdout) = io.as_mut()?;
        writeln!(stdin, "STATS").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let mut n = line.trim().strip_prefix("STATS ")?.split(' ');
        let mut next = || n.next()?.parse().ok();
        next().zip(next())
    }

    /// Panics when the hub dropped a connection or saw a failed handshake.
    pub(crate) fn assert_clean(&self) {
        if let Some((taken_over, tls_failures)) = self.troubles() {
            assert_eq!(
                (taken_over, tls_failures),
                (0, 0),
                "the hub dropped older connections of a device id used again, and saw failed \
                 TLS handshakes (taken over, failed)"
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            drop(self.io.lock().map(|mut io| io.take()));
            let _ = child.wait();
        }
    }
}

impl Lab {
    pub(crate) fn new() -> Self {
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
        let lab = Self {
            dir: dir.path().to_owned(),
            _tmp: Some(dir),
            chain,
            hub: None,
        };
        lab.export_ca();
        lab
    }

    /// The lab of a side child: the parent's files, and its hub at `hub` (MQTT, AMQP ports).
    pub(crate) fn open(dir: PathBuf, hub: (u16, u16)) -> Self {
        let chain = chain_from(&dir);
        Self {
            dir,
            _tmp: None,
            chain,
            hub: Some(hub),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts the hub in a child process; it exits when its stdin closes (on drop). In a side
    /// child, the parent's hub.
    pub(crate) fn server(&self) -> Server {
        if let Some((mqtt, amqp)) = self.hub {
            return Server {
                child: None,
                io: Mutex::new(None),
                mqtt,
                amqp,
            };
        }
        let mut command = Command::new(std::env::current_exe().unwrap());
        if let Some(core) = PINNED_HUB.get() {
            command.env(HUB_CORE, core.to_string());
        }
        let mut child = command
            .arg(&self.dir)
            .env(ROLE, "server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut ports = line.trim().strip_prefix("READY ").unwrap().split(' ');
        let mut port = || ports.next().unwrap().parse().unwrap();
        let (mqtt, amqp) = (port(), port());
        Server {
            child: Some(child),
            io: Mutex::new(Some((stdin, stdout))),
            mqtt,
            amqp,
        }
    }

    /// Runs this binary as a client in `role` against a server on `port`; its stdout line.
    pub(crate) fn client(&self, role: &str, port: u16) -> String {
        let out = Command::new(std::env::current_exe().unwrap())
            .arg(&self.dir)
            .arg(port.to_string())
            .env(ROLE, role)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "client {role} failed");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Child clients mint their own devices from the same issuing CA.
    pub(crate) fn export_ca(&self) {
        let issuing = self.chain.issuing();
        std::fs::write(self.dir.join("ca.der"), issuing.cert()).unwrap();
        std::fs::write(self.dir.join("ca.key"), issuing.key().serialize_der()).unwrap();
    }

    pub(crate) fn root(&self) -> CertificateDer<'static> {
        self.chain.root().cert().clone()
    }
}

/// The hub, fed from the lab's files, on an MQTT and an AMQP listener.
pub(crate) fn server(dir: &Path) {
    runtime().block_on(async {
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
        let (mqtt, amqp) = (
            bind_loopback().await.unwrap(),
            bind_loopback().await.unwrap(),
        );
        println!(
            "READY {} {}",
            mqtt.local_addr().unwrap().port(),
            amqp.local_addr().unwrap().port()
        );
        std::io::stdout().flush().unwrap();
        // Answers STATS with what went wrong (`Server::troubles`) until stdin closes.
        let watched = hub.clone();
        let eof = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
                if line.trim() == "STATS" {
                    let s = &watched.stats;
                    println!(
                        "STATS {} {}",
                        s.taken_over.load(Ordering::Relaxed),
                        s.tls_failures.load(Ordering::Relaxed)
                    );
                    std::io::stdout().flush().unwrap();
                }
                line.clear();
            }
        });
        let listeners = Listeners {
            amqp: Some(amqp),
            mqtt: Some(mqtt),
            ..Listeners::default()
        };
        hub::serve(hub, listeners, async move {
            let _ = eof.await;
        })
        .await;
    });
}

/// The CA a child client mints its devices from (written by `Lab::export_ca`).
pub(crate) fn chain_from(dir: &Path) -> Arc<CaChain> {
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
