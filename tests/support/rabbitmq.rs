//! A RabbitMQ node for one test, started with the project's `.ci/rabbitmq/start.sh` as README
//! "Against your own broker" starts it, and stopped by its PID when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// Set to 1 in CI: a missing broker fails the test instead of skipping it.
const REQUIRE: &str = "FLEETBENCH_REQUIRE_BROKERS";

/// A running node; stopped on drop.
pub struct RabbitMq {
    /// The TLS listener's port on 127.0.0.1.
    pub port: u16,
    work: PathBuf,
}

impl RabbitMq {
    /// Whether rabbitmq-server is installed; prints why not (a skip), unless
    /// FLEETBENCH_REQUIRE_BROKERS=1, which makes that a failure.
    pub fn available() -> bool {
        if Path::new(SERVER).exists() {
            return true;
        }
        let required = std::env::var(REQUIRE).is_ok_and(|v| v == "1");
        assert!(
            !required,
            "{REQUIRE}=1 but {SERVER} is missing: apt-get install -y rabbitmq-server"
        );
        eprintln!("SKIPPED: rabbitmq-server is not installed (apt-get install -y rabbitmq-server); set {REQUIRE}=1 to fail instead");
        false
    }

    /// The walkthrough's step in `dir` (set up by [`super::walkthrough::setup`]): `pki registry
    /// --ca ca --count DEVICES --out broker/devices.jsonl`, then a node that knows them.
    pub fn for_walkthrough(dir: &Path, devices: u32) -> Self {
        let count = devices.to_string();
        let args = [
            "pki",
            "registry",
            "--ca",
            "ca",
            "--count",
            &count,
            "--out",
            "broker/devices.jsonl",
        ];
        let out = super::walkthrough::fleetbench(dir, &args, &[]);
        assert!(out.status.success(), "{}", super::walkthrough::text(&out));
        Self::start(dir, &dir.join("broker/devices.jsonl"))
    }

    /// Starts a node with `start.sh DIR REGISTRY PORT` on a free port: `dir` holds `ca/` and
    /// `broker/` as `pki init` and `pki server` wrote them, `registry` is `pki registry`'s
    /// output. Returns when the node is ready (the script waits for it).
    pub fn start(dir: &Path, registry: &Path) -> Self {
        let port = super::free_port();
        let out = Command::new(script("start.sh"))
            .arg(dir)
            .arg(registry)
            .arg(port.to_string())
            .output()
            .expect("start.sh runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "start.sh failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("port={port}")), "{stdout}");
        Self {
            port,
            work: dir.join("rabbitmq"),
        }
    }

    /// Where the node's files are.
    pub fn work_dir(&self) -> PathBuf {
        self.work.clone()
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
