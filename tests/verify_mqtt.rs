//! Issue 15: the verifying receiver against a real Mosquitto with client certificates, through
//! the binary. Every acknowledged message is delivered exactly once and timed (`deliver`); and
//! when the broker acknowledges what it then drops (an ACL that denies some devices' topics:
//! Mosquitto still PUBACKs a denied PUBLISH), the receiver counts exactly those devices'
//! messages as lost, by device. Skipped (saying so) without Mosquitto unless
//! FLEETBENCH_REQUIRE_BROKERS=1.

use crate::support::mosquitto::Mosquitto;
use std::path::Path;

use crate::support;
use crate::support::walkthrough::{self, fleetbench, take_summary, text};

/// Starts Mosquitto in `dir` (where `pki init` and `pki server` wrote `ca/` and `broker/`)
/// with client certificates and, if given, an ACL file. Waits for its "running" line.
fn start_broker(dir: &Path, acl: Option<&str>) -> Mosquitto {
    if let Some(acl) = acl {
        std::fs::write(dir.join("acl"), acl).unwrap();
    }
    Mosquitto::inline(dir, "mosquitto.conf", |port| {
        let mut conf = format!(
            "per_listener_settings false\npersistence false\nlog_dest stderr\nuser root\n\
             listener {port} 127.0.0.1\nmax_connections -1\ncafile ca/chain.pem\n\
             certfile broker/server.chain.pem\nkeyfile broker/server.key.pem\n\
             require_certificate true\nuse_identity_as_username true\nallow_anonymous false\n\
             set_tcp_nodelay true\n"
        );
        if acl.is_some() {
            conf.push_str("acl_file acl\n");
        }
        conf
    })
}

/// A scenario against the broker on `port`: `devices` devices, 5 QoS 1 messages each, and
/// `verify` as the `[verify]` table.
fn scenario(dir: &Path, port: u16, devices: u32, payload: &str, verify: &str) -> String {
    let body = format!(
        "name = \"verify\"\n[target]\nhub = \"remote\"\naddress = \"127.0.0.1:{port}\"\n\
         server-name = \"localhost\"\nca-file = \"ca/root.cert.pem\"\n\
         [protocol]\nkind = \"mqtt\"\ndialect = \"generic\"\ntopic = \"fleet/{{device_id}}/telemetry\"\nqos = 1\n\
         [fleet]\ndevices = {devices}\nid = \"device-{{n:05}}\"\nca-dir = \"ca\"\n\
         [connect]\nrate = 400\nmax-handshakes = 32\n\
         [messages]\ncount = 5\ninterval = \"50ms\"\n{payload}\n\
         [run]\nmax-duration = \"60s\"\n\
         [verify]\n{verify}\n"
    );
    let path = dir.join("verify.toml");
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_owned()
}

fn run(dir: &Path, scenario: &str) -> std::process::Output {
    fleetbench(
        dir,
        &["run", "--quiet", "--results", "results", scenario],
        &[],
    )
}

/// Asserts that `summary` validates against results/schema.json.
fn valid(summary: &serde_json::Value) {
    support::results::assert_valid(summary);
}

fn phase_count(s: &serde_json::Value, name: &str) -> u64 {
    s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .map_or(0, |p| p["count"].as_u64().unwrap())
}

#[test]
fn two_hundred_devices_every_acknowledged_message_arrives_exactly_once() {
    if !support::have("mosquitto") {
        return;
    }
    let dir = walkthrough::setup();
    let broker = start_broker(dir.path(), None);
    // A shared subscription read by two receivers, the tutorial's JSON carrying the stamp.
    let verify = "topic = \"fleet/+/telemetry\"\ngroup = \"fleetbench\"\nreceivers = 2";
    let sc = scenario(dir.path(), broker.port, 200, "", verify);
    let out = run(dir.path(), &sc);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Delivery"), "{stdout}");
    let s = take_summary(dir.path());
    valid(&s);
    let d = &s["delivery"];
    assert_eq!(s["counts"]["messages_acked"], 1000, "{}", text(&out));
    assert_eq!(
        (&d["acked"], &d["delivered"], &d["received"]),
        (&1000.into(), &1000.into(), &1000.into()),
        "{d}"
    );
    for field in ["lost", "duplicated", "unexpected", "unacked_delivered"] {
        assert_eq!(d[field], 0, "{field}: {d}");
    }
    assert_eq!(d["complete"], true, "{d}");
    assert_eq!(d["strict"], true, "{d}");
    assert!(
        d["receiver"]
            .as_str()
            .unwrap()
            .contains("$share/fleetbench/"),
        "{d}"
    );
    assert_eq!(phase_count(&s, "deliver"), 1000, "{}", s["phases"]);
    drop(broker);
}

#[test]
fn acknowledged_but_dropped_messages_are_lost_exactly_by_device() {
    if !support::have("mosquitto") {
        return;
    }
    let dir = walkthrough::setup();
    // Devices 3 and 7 of 12 may not publish: Mosquitto PUBACKs their messages and drops them.
    let mut acl = String::from("user fleetbench-verify\ntopic read fleet/#\n");
    for n in (1..=12).filter(|n| ![3, 7].contains(n)) {
        acl += &format!("user device-{n:05}\ntopic write fleet/device-{n:05}/telemetry\n");
    }
    let broker = start_broker(dir.path(), Some(&acl));
    // Random bytes with the binary stamp in front.
    let payload = "payload = \"bytes\"\nsize = 64";
    let verify = "topic = \"fleet/+/telemetry\"\nsettle = \"1s\"";
    let sc = scenario(dir.path(), broker.port, 12, payload, verify);
    let out = run(dir.path(), &sc);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = take_summary(dir.path());
    valid(&s);
    let d = &s["delivery"];
    assert_eq!(s["counts"]["messages_acked"], 60, "{}", text(&out));
    assert_eq!(
        (&d["acked"], &d["delivered"], &d["lost"]),
        (&60.into(), &50.into(), &10.into()),
        "{d}"
    );
    assert_eq!(d["duplicated"], 0, "{d}");
    assert_eq!(d["complete"], false, "{d}");
    let devices = support::results::lost_by_device(d);
    assert_eq!(
        devices,
        [
            ("device-00003".to_owned(), 5),
            ("device-00007".to_owned(), 5)
        ]
    );
    assert_eq!(phase_count(&s, "deliver"), 50, "{}", s["phases"]);
    let checks = s["verdict"]["checks"].to_string();
    assert!(
        checks.contains("10 acknowledged messages never delivered"),
        "{checks}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("device-00003"), "{stdout}");
    drop(broker);
}

#[test]
fn a_receiver_the_broker_refuses_stops_the_run_before_any_device_connects() {
    if !support::have("mosquitto") {
        return;
    }
    let dir = walkthrough::setup();
    let broker = start_broker(dir.path(), None);
    // The receiver presents a certificate from a CA the broker does not trust.
    let out = fleetbench(dir.path(), &["pki", "init", "--out", "other-ca"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let verify =
        "topic = \"fleet/+/telemetry\"\ncert-file = \"other-ca/intermediate-1.cert.pem\"\n\
                  key-file = \"other-ca/intermediate-1.key.pem\"";
    let sc = scenario(dir.path(), broker.port, 2, "", verify);
    let out = run(dir.path(), &sc);
    let err = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("[verify] receiver \"fleetbench-verify\" could not connect and subscribe"),
        "{err}"
    );
    // Nothing ran: no results directory was left behind.
    let results = dir.path().join("results");
    let left = std::fs::read_dir(&results).map_or(0, |d| d.count());
    assert_eq!(left, 0, "{err}");
    drop(broker);
}
