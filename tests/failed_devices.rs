//! Issue 14: which devices failed. A fleet against `hub serve` in which three devices are not
//! registered: summary.json, failures.csv and report.txt name exactly those three, and count
//! them as devices that never connected.

use std::path::Path;
use std::process::Command;

use crate::support::hub_serve::HubServe;
use crate::support::{self, hub_state, openmetrics, remote_run, results as run_results};

const DEVICES: u64 = 20;
const UNREGISTERED: [&str; 3] = ["device-00003", "device-00007", "device-00011"];

/// `hub serve` trusting a new device CA (written to `dir/ca`) with every `device-{n:05}` of
/// 0..=DEVICES registered except `unregistered`.
fn hub_serve(dir: &Path, unregistered: &[&str]) -> HubServe {
    let ids = support::ids("device", DEVICES + 1);
    hub_state::with_ca_signed(
        dir,
        ids.iter().filter(|id| !unregistered.contains(&id.as_str())),
    );
    serve(dir, "127.0.0.1:0")
}

/// `hub serve` on the state `dir/hub`, listening on `mqtt`.
fn serve(dir: &Path, mqtt: &str) -> HubServe {
    HubServe::start(HubServe::command(dir.join("hub"), mqtt))
}

#[test]
fn refused_devices_are_listed_by_id_and_counted_as_never_connected() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_serve(dir.path(), &UNREGISTERED);
    let addr = hub.mqtt();
    let scenario = dir.path().join("refused.toml");
    std::fs::write(
        &scenario,
        format!(
            "{}[fleet]\ndevices = {DEVICES}\nid = \"device-{{n:05}}\"\n\
             [messages]\ncount = 2\ninterval = \"10ms\"\n",
            remote_run::target(&addr, &dir.path().join("hub/server-root.pem"))
        ),
    )
    .unwrap();
    let results = dir.path().join("results");
    let out = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .args(["run", "--quiet", "--ca"])
        .arg(dir.path().join("ca"))
        .arg("--results")
        .arg(&results)
        .arg(&scenario)
        .output()
        .unwrap();
    hub.kill();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let run_dir = run_results::run_dir(&results);
    let s = fleetbench::report::read_summary(&run_dir).unwrap();

    assert_eq!(s.counts.devices_never_connected, 3, "{:?}", s.counts);
    assert_eq!(s.counts.sessions_failed, 3, "{:?}", s.counts);
    assert_eq!(s.counts.sessions_connected, DEVICES - 3);
    assert_eq!(s.failures.len(), 1, "{:?}", s.failures);
    let f = &s.failures[0];
    assert_eq!(
        (f.phase.as_str(), f.kind.as_str()),
        ("mqtt_connect", "refused")
    );
    let mut ids = f.devices.clone();
    ids.sort();
    assert_eq!(ids, UNREGISTERED, "{f:?}");
    assert_eq!(f.devices_more, 0);

    // The new fields are part of the contract (additionalProperties is false there).
    run_results::assert_valid(&run_results::summary_json(&run_dir));

    let csv = std::fs::read_to_string(run_dir.join("failures.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("device,attempt,phase,kind,message,t_secs")
    );
    let mut rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    rows.sort();
    assert_eq!(rows.len(), 3, "{csv}");
    for (row, id) in rows.iter().zip(UNREGISTERED) {
        assert_eq!(row[..4], [id, "1", "mqtt_connect", "refused"], "{csv}");
        assert!(row[4].contains("CONNACK 5"), "{csv}");
        let t: f64 = row[5].parse().unwrap();
        assert!(t >= 0.0 && t <= s.duration_secs, "{csv}");
    }

    // The text report prints the whole message and the ids, and the never-connected count.
    assert!(
        stdout.contains("devices that never connected 3"),
        "{stdout}"
    );
    for id in UNREGISTERED {
        assert!(stdout.contains(id), "{id} missing from\n{stdout}");
    }
    let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words(&stdout).contains(&words(&f.sample)),
        "message cut in\n{stdout}"
    );
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(html.contains("devices that never connected"));
    assert!(html.contains(UNREGISTERED[0]));
}

/// Messages acknowledged so far, from the run's live metrics endpoint.
fn acked(addr: std::net::SocketAddr) -> f64 {
    openmetrics::value_at(addr, "fleetbench_messages_acked_total")
}

#[test]
fn reconnects_after_a_hub_restart_are_reported_as_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_serve(dir.path(), &[]);
    let addr = hub.mqtt();
    let scenario = dir.path().join("restart.toml");
    // Ten registered devices, 100 messages each 20 ms apart (2 s), reconnecting on failure.
    std::fs::write(
        &scenario,
        format!(
            "{}[fleet]\ndevices = 10\nid = \"device-{{n:05}}\"\n\
             [messages]\ncount = 100\ninterval = \"20ms\"\ntimeout = \"2s\"\n\
             [reconnect]\ninitial = \"20ms\"\nmax = \"200ms\"\n",
            remote_run::target(&addr, &dir.path().join("hub/server-root.pem"))
        ),
    )
    .unwrap();
    let results = dir.path().join("results");
    let (run, metrics, reader) =
        remote_run::spawn_with_metrics(&dir.path().join("ca"), &results, &scenario);
    // Once every device is sending, the hub goes away and comes back on the same address.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acked(metrics) < 100.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "acknowledgements never flowed"
        );
    }
    hub.kill();
    let hub = serve(dir.path(), &addr);
    let out = run.wait_with_output().unwrap();
    let log = reader.join().unwrap();
    hub.kill();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let run_dir = run_results::run_dir(&results);
    let s = fleetbench::report::read_summary(&run_dir).unwrap();
    let c = &s.counts;
    assert!(c.reconnects >= 10, "{c:?}\n{stdout}\n{log}");
    assert!(
        c.reconnects_connected >= 10,
        "every device came back: {c:?}\n{:#?}\n{stdout}",
        s.failures
    );
    assert!(c.reconnects_connected <= c.reconnects, "{c:?}");
    assert_eq!(c.devices_never_connected, 0, "{c:?}");
    let did_not = c.reconnects - c.reconnects_connected;
    let line = format!(
        "reconnect attempts {}: {} came back (connected again), {did_not} did not",
        c.reconnects, c.reconnects_connected
    );
    assert!(stdout.contains(&line), "{line:?} missing from\n{stdout}");
    // failures.csv lists the broken sessions by device, with attempts counted from 1.
    let csv = std::fs::read_to_string(run_dir.join("failures.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let devices: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(devices.len(), 10, "{csv}");
    assert!(
        rows.iter().all(|r| r[1].parse::<u32>().unwrap() >= 1),
        "{csv}"
    );
}
