//! Issue 13: a hard bound that is hard. Against a server that accepts TCP and never answers, or
//! completes TLS and then stays silent, through the binary: `run.max-duration` ends the run on
//! time whatever `connect.timeout` says, the first SIGINT drains for at most `run.grace`, a second
//! one ends the run at once, and each writes results marked partial. A setup error leaves no
//! results directory behind.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fleetbench::metrics::{FailureKind, RunStatus};

/// How the test server behaves once a device connects.
#[derive(Clone, Copy)]
enum Silence {
    /// Accept TCP and never say a word (the device waits in the TLS handshake).
    AfterTcp,
    /// Complete the TLS handshake, then never say a word (the device waits for CONNACK).
    AfterTls,
}

/// A server on 127.0.0.1:0 that goes silent, holding every connection; each connection it
/// reaches silence on is announced on the channel.
fn silent_server(
    rt: &tokio::runtime::Runtime,
    silence: Silence,
) -> (SocketAddr, mpsc::Receiver<()>) {
    let ca = fleetbench::pki::CaChain::generate(&fleetbench::pki::ChainSpec::default()).unwrap();
    let identity = ca
        .mint_server(&["localhost".into()], fleetbench::pki::KeyType::EcdsaP256)
        .unwrap();
    let config = fleetbench::transport::tls::hub_server_config(&identity).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    rt.spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match silence {
                    Silence::AfterTcp => {
                        let _ = tx.send(());
                        std::future::pending::<()>().await;
                        drop(socket);
                    }
                    Silence::AfterTls => {
                        let Ok(tls) = acceptor.accept(socket).await else {
                            return;
                        };
                        let _ = tx.send(());
                        std::future::pending::<()>().await;
                        drop(tls);
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// A remote-target scenario against `addr` with a 30 s connect timeout.
fn scenario(dir: &Path, addr: SocketAddr, run: &str) -> PathBuf {
    let path = dir.join("bound.toml");
    let text = format!(
        r#"
[target]
hub = "remote"
address = "{addr}"
server-name = "localhost"
verify-server = false

[fleet]
devices = 4

[connect]
timeout = "30s"

[messages]
count = 1

[run]
{run}
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts `fleetbench run` on `scenario` with `extra` options; its stderr lines arrive on the
/// channel, and the thread returns the whole log.
fn start(
    scenario: &Path,
    results: &Path,
    extra: &[&str],
) -> (
    Child,
    mpsc::Receiver<String>,
    std::thread::JoinHandle<String>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        // Extra options need the info lines (the live metrics address).
        .args(if extra.is_empty() {
            &[][..]
        } else {
            &["-v"][..]
        })
        .args(["run", "--quiet", "--results"])
        .arg(results)
        .args(extra)
        .arg(scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    (child, rx, reader)
}

fn kill(signal: &str, child: &Child) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for a stderr line containing `text`, and returns it.
fn wait_for_line(lines: &mpsc::Receiver<String>, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line with {text:?}: {e}"),
        }
    }
}

/// The one run directory under `results`, and its summary.
fn summary(results: &Path) -> fleetbench::metrics::Summary {
    let dirs: Vec<_> = std::fs::read_dir(results).unwrap().collect();
    assert_eq!(dirs.len(), 1, "one run directory");
    let dir = dirs.into_iter().next().unwrap().unwrap().path();
    assert!(dir.join("report.txt").is_file());
    fleetbench::report::read_summary(&dir).unwrap()
}

/// Waits for the run to exit with `code` less than `within` after `since`; its log.
fn ends(
    (child, reader): (Child, std::thread::JoinHandle<String>),
    since: Instant,
    code: i32,
    within: Duration,
) -> String {
    let out = child.wait_with_output().unwrap();
    let took = since.elapsed();
    let log = reader.join().unwrap();
    assert_eq!(out.status.code(), Some(code), "{log}");
    assert!(took < within, "{took:?}\n{log}");
    log
}

/// Asserts that the run under `results` was cut short for `reason`; its summary.
fn partial(results: &Path, reason: &str) -> fleetbench::metrics::Summary {
    let s = summary(results);
    assert_eq!(
        s.status,
        RunStatus::Partial {
            reason: reason.into()
        }
    );
    s
}

/// Asserts that `results` holds nothing (absent or empty).
fn assert_nothing_in(results: &Path) {
    let left: Vec<_> = std::fs::read_dir(results)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Unfinished failures counted in `phase`.
fn failures(s: &fleetbench::metrics::Summary, phase: &str) -> u64 {
    s.failures
        .iter()
        .filter(|f| f.phase == phase && f.is(FailureKind::Unfinished))
        .map(|f| f.count)
        .sum()
}

fn max_duration_bounds(silence: Silence, phase: &str, protocol: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, accepted) = silent_server(&rt, silence);
    let dir = tempfile::tempdir().unwrap();
    let run = format!("max-duration = \"3s\"\ngrace = \"10s\"\n[protocol]\nkind = \"{protocol}\"");
    let scenario = scenario(dir.path(), addr, &run);
    let results = dir.path().join("results");
    let began = Instant::now();
    let (child, _lines, reader) = start(&scenario, &results, &[]);
    accepted.recv_timeout(Duration::from_secs(60)).unwrap();
    // Before: 31 s (connect.timeout + 1 s).
    let log = ends((child, reader), began, 1, Duration::from_secs(6));
    let s = partial(&results, "max-duration 3s reached");
    assert!(s.duration_secs < 4.0, "{}", s.duration_secs);
    assert_eq!(failures(&s, phase), 4, "{log}");
    assert_eq!(s.counts.sessions_failed, 4);
}

#[test]
fn max_duration_ends_sessions_stuck_in_the_tls_handshake() {
    max_duration_bounds(Silence::AfterTcp, "tls_handshake", "mqtt");
}

#[test]
fn max_duration_ends_sessions_waiting_for_connack() {
    max_duration_bounds(Silence::AfterTls, "mqtt_connect", "mqtt");
}

#[test]
fn max_duration_ends_sessions_waiting_for_the_amqp_open() {
    max_duration_bounds(Silence::AfterTls, "amqp_open", "amqp");
}

#[test]
#[cfg(unix)]
fn sigint_drains_for_the_grace_period_only() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, accepted) = silent_server(&rt, Silence::AfterTls);
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario(dir.path(), addr, "max-duration = \"5m\"\ngrace = \"1s\"");
    let results = dir.path().join("results");
    let (child, _lines, reader) = start(&scenario, &results, &[]);
    accepted.recv_timeout(Duration::from_secs(60)).unwrap();
    let sent = Instant::now();
    kill("-INT", &child);
    // Before: 30 s (the connect timeout).
    let log = ends((child, reader), sent, 1, Duration::from_millis(2500));
    let s = partial(&results, "interrupted");
    // The stop ends the schedule: every session it had started ends unfinished.
    assert!(s.counts.sessions_attempted >= 1);
    assert_eq!(
        failures(&s, "mqtt_connect"),
        s.counts.sessions_attempted,
        "{log}"
    );
}

#[test]
#[cfg(unix)]
fn a_second_sigint_ends_the_run_at_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, accepted) = silent_server(&rt, Silence::AfterTcp);
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario(dir.path(), addr, "max-duration = \"5m\"\ngrace = \"2m\"");
    let results = dir.path().join("results");
    let (child, lines, reader) = start(&scenario, &results, &[]);
    accepted.recv_timeout(Duration::from_secs(60)).unwrap();
    kill("-INT", &child);
    wait_for_line(&lines, "interrupted: stopping the schedule");
    let sent = Instant::now();
    kill("-INT", &child);
    let log = ends((child, reader), sent, 1, Duration::from_millis(1500));
    assert!(log.contains("interrupted again"), "{log}");
    let s = partial(&results, "interrupted");
    assert!(s.counts.sessions_attempted >= 1);
    // Every session ended unfinished, most in the handshake; one that had just been started may
    // still have been in its TCP connect when the second signal came.
    assert_eq!(
        failures(&s, "tls_handshake") + failures(&s, "tcp_connect"),
        s.counts.sessions_attempted,
        "{log}"
    );
}

/// Runs the binary to a setup error; it must exit 2 naming `what`, and leave no results
/// directory.
fn setup_error_leaves_nothing(scenario: &Path, extra: &[&str], what: &str) {
    let results = scenario.parent().unwrap().join("results");
    let out = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .args(["run", "--quiet", "--results"])
        .arg(&results)
        .args(extra)
        .arg(scenario)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(what), "{err}");
    assert_nothing_in(&results);
}

#[test]
fn a_port_that_cannot_be_bound_for_metrics_leaves_no_results_directory() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(&scenario, "[fleet]\ndevices = 2\n").unwrap();
    setup_error_leaves_nothing(&scenario, &["--metrics", &port], "live metrics");
}

#[test]
fn a_malformed_target_ca_file_leaves_no_results_directory() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("roots.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let scenario = dir.path().join("s.toml");
    let text = format!(
        "[target]\nhub = \"remote\"\naddress = \"127.0.0.1:9\"\nserver-name = \"localhost\"\n\
         ca-file = {:?}\n[fleet]\ndevices = 2\n",
        ca.display().to_string()
    );
    std::fs::write(&scenario, text).unwrap();
    setup_error_leaves_nothing(&scenario, &[], "target.ca-file");
}

/// A sample's value in the live metrics served at `addr`.
fn live_value(addr: &str, sample: &str) -> f64 {
    crate::support::openmetrics::value_at(addr.parse().unwrap(), sample)
}

/// The process's peak resident memory so far, in KiB.
#[cfg(target_os = "linux")]
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
#[cfg(target_os = "linux")]
fn setup_scales_with_the_sessions_used_not_the_fleet() {
    // Ten million devices, five sessions: before, setup registered and minted the whole fleet
    // (2.8 GB, and 40 s or more to exit on Ctrl-C).
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("big.toml");
    std::fs::write(
        &scenario,
        r#"
[fleet]
devices = 10000000
[[stages]]
duration = "1s"
sessions = 5
[[stages]]
duration = "5m"
sessions = 5
[messages]
count = 1000000
interval = "1s"
[run]
max-duration = "10m"
grace = "1s"
"#,
    )
    .unwrap();
    let results = dir.path().join("results");
    let (child, lines, reader) = start(&scenario, &results, &["--metrics", "127.0.0.1:0"]);
    let line = wait_for_line(&lines, "live metrics on http://");
    let addr = line
        .split("live metrics on http://")
        .nth(1)
        .unwrap()
        .trim_end_matches("/metrics")
        .to_owned();
    // Poll the endpoint (an event: the run's own count) until the five sessions are up.
    let deadline = Instant::now() + Duration::from_secs(60);
    while live_value(&addr, "fleetbench_sessions_active") < 5.0 {
        assert!(Instant::now() < deadline, "sessions never came up");
    }
    let peak = peak_rss_kib(child.id());
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB for 5 sessions");
    let sent = Instant::now();
    kill("-INT", &child);
    ends((child, reader), sent, 1, Duration::from_secs(3));
    let s = summary(&results);
    assert_eq!(s.counts.devices, 10_000_000);
    assert_eq!(s.counts.sessions_connected, 5);
}

#[test]
#[cfg(unix)]
fn ctrl_c_while_waiting_for_start_at_exits_at_once_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(&scenario, "[fleet]\ndevices = 2\n").unwrap();
    let results = dir.path().join("results");
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    let at = humantime::format_rfc3339_seconds(later).to_string();
    let (child, lines, reader) = start(&scenario, &results, &["--start-at", &at]);
    wait_for_line(&lines, "for start-at");
    let sent = Instant::now();
    kill("-INT", &child);
    let log = ends((child, reader), sent, 2, Duration::from_secs(2));
    assert!(
        log.contains("interrupted while waiting for start-at"),
        "{log}"
    );
    assert_nothing_in(&results);
}
