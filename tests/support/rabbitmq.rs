//! A RabbitMQ node for one test, started with the project's `.ci/rabbitmq/start.sh` and stopped
//! by its PID when dropped. Certificates are minted in the test; nothing is committed.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use fleetbench::pki::{CaChain, KeyType};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// Set to 1 in CI: a missing broker fails the test instead of skipping it.
const REQUIRE: &str = "FLEETBENCH_REQUIRE_BROKERS";

/// A running node; stopped on drop.
pub struct RabbitMq {
    /// The TLS listener's port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl RabbitMq {
    /// Starts a node whose server certificate and trusted roots come from `ca`, with one user
    /// per device CN. `None` (after printing why) when rabbitmq-server is not installed, unless
    /// FLEETBENCH_REQUIRE_BROKERS=1, which makes that a failure.
    pub fn start(ca: &CaChain, cns: impl IntoIterator<Item = String>) -> Option<Self> {
        if !Path::new(SERVER).exists() {
            let required = std::env::var(REQUIRE).is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{REQUIRE}=1 but {SERVER} is missing: apt-get install -y rabbitmq-server"
            );
            eprintln!("SKIPPED: rabbitmq-server is not installed (apt-get install -y rabbitmq-server); set {REQUIRE}=1 to fail instead");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let server = ca
            .mint_server(
                &["localhost".into(), "127.0.0.1".into()],
                KeyType::EcdsaP256,
            )
            .expect("server certificate");
        let roots: Vec<_> = ca.authorities().iter().map(|a| a.cert().to_vec()).collect();
        write_pem(&dir.path().join("ca.pem"), "CERTIFICATE", &roots, 0o644);
        let chain: Vec<_> = server.chain.iter().map(|c| c.to_vec()).collect();
        write_pem(&dir.path().join("server.pem"), "CERTIFICATE", &chain, 0o644);
        write_pem(
            &dir.path().join("server.key"),
            "PRIVATE KEY",
            &[server.key.secret_der().to_vec()],
            0o600,
        );
        let cn_file = dir.path().join("cns");
        let cns: Vec<String> = cns.into_iter().collect();
        std::fs::write(&cn_file, cns.join("\n")).expect("cn file");
        let out = Command::new(script("start.sh"))
            .arg(dir.path())
            .arg(&cn_file)
            .output()
            .expect("start.sh runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "start.sh failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let port = stdout
            .lines()
            .find_map(|l| l.strip_prefix("port="))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("start.sh printed no port: {stdout}"));
        Some(Self { port, dir })
    }

    /// Where the node's files are.
    pub fn work_dir(&self) -> PathBuf {
        self.dir.path().join("rabbitmq")
    }

    /// The last lines of the node's log, for assertion messages (the directory goes on drop).
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        let Ok(entries) = std::fs::read_dir(self.work_dir().join("log")) else {
            return out;
        };
        for entry in entries.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("==> {} <==\n", entry.path().display()));
            for line in &lines[lines.len().saturating_sub(25)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        let _ = Command::new(script("stop.sh"))
            .arg(self.work_dir())
            .status();
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".ci/rabbitmq")
        .join(name)
}

fn write_pem(path: &Path, label: &str, ders: &[Vec<u8>], mode: u32) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .expect("pem file");
    for der in ders {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        writeln!(f, "-----BEGIN {label}-----").expect("write");
        for line in b64.as_bytes().chunks(64) {
            f.write_all(line).expect("write");
            writeln!(f).expect("write");
        }
        writeln!(f, "-----END {label}-----").expect("write");
    }
}
