//! Issue 6: live metrics in OpenMetrics text, scraped during a run, and Ctrl-C (SIGINT) that
//! stops the schedule, drains and still writes results marked partial.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use fleetbench::metrics::{incr, FailureKind, Phase, Recorder, RunStatus};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

use crate::support::openmetrics::value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_serves_the_recorders_counters_and_latencies() {
    let recorder = Arc::new(Recorder::new());
    for _ in 0..3 {
        incr(&recorder.counters.sessions_connected);
    }
    incr(&recorder.counters.sessions_active);
    recorder.record(Phase::TlsHandshake, 0, Duration::from_millis(2));
    recorder.fail(Phase::PublishAck, FailureKind::Timeout, || "late".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(fleetbench::command::live::serve(
        listener,
        recorder,
        stop.clone(),
    ));

    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{text}"
    );
    assert_eq!(
        value(&text, "fleetbench_sessions_connected_total"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(value(&text, "fleetbench_sessions_active"), Some(1.0));
    assert_eq!(
        value(&text, "fleetbench_errors_total{kind=\"timeout\"}"),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "fleetbench_latency_seconds_count{phase=\"tls_handshake\"}"
        ),
        Some(1.0)
    );
    let p50 = value(
        &text,
        "fleetbench_latency_seconds{phase=\"tls_handshake\",quantile=\"0.5\"}",
    )
    .unwrap();
    assert!((p50 - 0.002).abs() < 0.00001, "{p50}");
    assert!(text.trim_end().ends_with("# EOF"));

    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    stop.cancel();
    server.await.unwrap();
}

/// A run long enough to interrupt: 40 devices sending every 50 ms for 50 s.
const LONG: &str = r#"
[fleet]
devices = 40
[connect]
rate = 20
[messages]
count = 1000
interval = "50ms"
[run]
max-duration = "5m"
grace = "2s"
"#;

#[test]
#[cfg(unix)]
fn sigint_mid_run_writes_partial_results_and_exits_1() {
    interrupt_mid_run("-INT");
}

#[test]
#[cfg(unix)]
fn sigterm_mid_run_writes_partial_results_and_exits_1() {
    interrupt_mid_run("-TERM");
}

/// Sends `signal` to a long run once acknowledgements flow; the run must drain, write every
/// results file marked partial, and exit 1.
#[cfg(unix)]
fn interrupt_mid_run(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("long.toml");
    std::fs::write(&scenario, LONG).unwrap();
    let results = dir.path().join("results");
    let (child, addr, reader) = crate::support::spawn_run_with_metrics(&scenario, &results);
    // Scrape until messages are being acknowledged: the run is in full swing.
    let text = crate::support::wait_for_acks(addr, 1.0);
    assert!(
        text.contains("fleetbench_latency_seconds_count{phase=\"publish_ack\"}"),
        "{text}"
    );

    let kill = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let log = reader.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{log}");
    assert!(stdout.contains("PARTIAL (interrupted)"), "{stdout}");

    let run_dir = crate::support::results::run_dir(&results);
    let s = fleetbench::report::read_summary(&run_dir).unwrap();
    assert_eq!(
        s.status,
        RunStatus::Partial {
            reason: "interrupted".into()
        }
    );
    assert!(s.counts.messages_acked > 0);
    assert!(
        s.counts.messages_acked < 40 * 1000,
        "the schedule was cut short"
    );
    for file in [
        "report.txt",
        "report.html",
        "timeline.csv",
        "latency.hlog",
        "plan.json",
    ] {
        assert!(run_dir.join(file).is_file(), "{file} written");
    }
}
