//! Issue 6: thresholds in the scenario decide the exit status (1 failed, 0 passed), and are
//! listed in the report and summary.json.

use std::process::Command;

fn run(thresholds: &str) -> (i32, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.toml");
    std::fs::write(
        &path,
        format!(
            "[fleet]\ndevices = 5\n[messages]\ncount = 2\ninterval = \"5ms\"\n[thresholds]\n{thresholds}"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .args(["run", "--quiet", "--results"])
        .arg(dir.path().join("results"))
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in stdout.lines() {
        assert!(line.chars().count() <= 100, "line over 100 columns: {line}");
    }
    (out.status.code().unwrap_or(-1), stdout, dir)
}

fn summary(dir: &tempfile::TempDir) -> fleetbench::metrics::Summary {
    crate::support::results::summary(&dir.path().join("results"))
}

#[test]
fn a_threshold_that_must_fail_exits_1() {
    // No latency is below 1 µs (the histogram's floor), and no loopback fleet of 5 connects a
    // million sessions per second.
    let (code, stdout, dir) =
        run("\"publish_ack.p50\" = \"< 1us\"\n\"connect.rate\" = \"> 1000000\"\n\"errors.count\" = \"<= 0\"\n");
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("Checks      2 passed, 2 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL  publish_ack.p50"), "{stdout}");
    assert!(stdout.contains("pass  errors.count"), "{stdout}");
    let s = summary(&dir);
    let failed: Vec<_> = s
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| t.metric.as_str())
        .collect();
    assert_eq!(failed, ["connect.rate", "publish_ack.p50"]);
    assert_eq!(s.counts.messages_acked, 10, "the run itself completed");
}

#[test]
fn thresholds_that_must_pass_exit_0() {
    let (code, stdout, dir) = run(
        "tls_handshake.p99 = \"< 60s\"\n\"publish_ack.p99.9\" = \"< 60s\"\n\"errors.rate\" = \"< 0.001\"\n\"ack.rate\" = \"> 0\"\n",
    );
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("Checks      5 passed, 0 failed"),
        "{stdout}"
    );
    assert!(summary(&dir).thresholds_passed());
}

#[test]
fn a_malformed_threshold_is_a_scenario_error_exit_2() {
    let (code, _, _) = run("\"publish_ack.p99\" = \"fast\"\n");
    assert_eq!(code, 2);
}
