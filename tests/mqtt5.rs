//! Issue 18: MQTT 5 against a real Mosquitto 2 with client certificates, through the binary.
//! What Mosquitto 2.0 does, as checked by hand with raw packets before these tests were
//! written: its CONNACK announces `max_inflight_messages` as the receive maximum (and a topic
//! alias maximum of 10); a QoS 2 PUBLISH beyond that receive maximum gets PUBREC 0x97 (quota
//! exceeded); a publish its ACL denies gets PUBACK 0x87 (not authorized); a publish nobody
//! subscribes to gets PUBACK 0x10 (no matching subscribers), a success; a wrong password gets
//! CONNACK 0x87 (not authorized), not 0x86 (bad user name or password); a message over its
//! `message_size_limit` gets PUBACK or PUBREC 0x95 (packet too large), a code MQTT 5 does not
//! list for them. Skipped (saying so) without Mosquitto unless FLEETBENCH_REQUIRE_BROKERS=1.

use std::path::Path;
use std::process::Output;

use crate::support;
use crate::support::mosquitto::{self, Mosquitto};
use crate::support::walkthrough::{self, fleetbench, take_summary, text};

/// The broker's receive maximum in these tests (`max_inflight_messages`).
const RECEIVE_MAXIMUM: u32 = 2;

/// Starts Mosquitto in `dir` (the walkthrough's `ca/` and `broker/`) with mutual TLS, the
/// receive maximum above and `auth` (the authentication and ACL lines). Waits for its
/// "running" log line, not for a fixed time.
fn start_broker(dir: &Path, auth: &str) -> Mosquitto {
    Mosquitto::inline(dir, "mqtt5.conf", |port| {
        format!(
            "per_listener_settings false\npersistence false\nlog_dest stderr\nuser root\n\
             max_inflight_messages {RECEIVE_MAXIMUM}\n\
             listener {port} 127.0.0.1\ncafile ca/chain.pem\ncertfile broker/server.chain.pem\n\
             keyfile broker/server.key.pem\nrequire_certificate true\nallow_anonymous false\n\
             set_tcp_nodelay true\n{auth}\n"
        )
    })
}

/// A version 5 scenario against the broker on `port`, with `protocol` lines added to the
/// generic dialect's table: `devices` devices sending `count` QoS 2 messages in bursts (every
/// microsecond, up to 10 awaiting acknowledgement by the scenario's own bound).
fn scenario(port: u16, protocol: &str, devices: u32, count: u32) -> String {
    format!(
        r#"name = "mqtt5"
[target]
hub = "remote"
address = "127.0.0.1:{port}"
server-name = "localhost"
ca-file = "ca/root.cert.pem"

[protocol]
kind = "mqtt"
dialect = "generic"
version = "5"
qos = 2
{protocol}

[fleet]
devices = {devices}
id = "device-{{n:05}}"
ca-dir = "ca"

[connect]
rate = 200
timeout = "10s"

[messages]
count = {count}
interval = "1us"
max-inflight = 10
timeout = "10s"

[run]
max-duration = "60s"
"#
    )
}

/// Runs `text` as `mqtt5.toml` in `dir`.
fn run(dir: &Path, text: &str, env: &[(&str, &str)]) -> Output {
    std::fs::write(dir.join("mqtt5.toml"), text).unwrap();
    let args = ["run", "--quiet", "--results", "results", "mqtt5.toml"];
    fleetbench(dir, &args, env)
}

#[test]
fn issue_18_an_mqtt5_fleet_completes_within_the_receive_maximum_and_counts_puback_codes() {
    if !support::have("mosquitto") {
        return;
    }
    let dir = walkthrough::setup();
    std::fs::write(dir.path().join("acl"), "pattern write fleet/%u/telemetry\n").unwrap();
    let auth = "use_identity_as_username true\nacl_file acl";
    let broker = start_broker(dir.path(), auth);

    // Bursts of QoS 2 messages, 10 allowed by the scenario, 2 by the broker's receive maximum:
    // a third in flight would come back PUBREC 0x97 (quota exceeded). Nobody subscribes, so
    // every PUBREC says 0x10 (no matching subscribers), which is a success.
    let topic = "topic = \"fleet/{device_id}/telemetry\"\ntopic-alias = true";
    let out = run(dir.path(), &scenario(broker.port, topic, 10, 30), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = take_summary(dir.path());
    assert_eq!(s["counts"]["sessions_connected"], 10, "{}", text(&out));
    assert_eq!(s["counts"]["messages_acked"], 300, "{}", text(&out));
    assert_eq!(s["counts"]["messages_unacked"], 0, "{}", s["outcomes"]);
    let protocol = &s["scenario"]["protocol"];
    assert_eq!(
        (&protocol["version"], &protocol["topic-alias"]),
        (&"5".into(), &true.into())
    );

    // A topic the ACL denies: every PUBACK says 0x87, counted by code; the session goes on.
    let denied = "topic = \"fleet/{device_id}/denied\"\nqos = 1";
    let text5 = scenario(broker.port, denied, 3, 4).replace("qos = 2\n", "");
    let out = run(dir.path(), &text5, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = take_summary(dir.path());
    assert_eq!(s["counts"]["sessions_connected"], 3, "{}", text(&out));
    assert_eq!(s["counts"]["messages_unacked"], 12, "{}", text(&out));
    let outcomes = s["outcomes"].to_string();
    assert!(
        outcomes.contains("PUBACK 0x87 (not authorized)") && outcomes.contains("12"),
        "{outcomes}"
    );
    assert!(s["throttling"].is_null(), "{}", s["throttling"]);
    drop(broker);
}

#[test]
fn issue_18_an_mqtt5_connack_refusal_and_an_oversize_message_are_counted_by_code() {
    if !support::have("mosquitto") || !support::have("mosquitto_passwd") {
        return;
    }
    let dir = walkthrough::setup();
    mosquitto::passwords(&dir.path().join("broker/passwords"), 3, "right");
    let auth =
        "use_identity_as_username false\npassword_file broker/passwords\nmessage_size_limit 1000";
    let broker = start_broker(dir.path(), auth);
    let login = "username = \"{device_id}\"\npassword-env = \"FLEETBENCH_MQTT_PASSWORD\"";
    let text5 = scenario(broker.port, login, 3, 2);

    let out = run(dir.path(), &text5, &[("FLEETBENCH_MQTT_PASSWORD", "right")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(take_summary(dir.path())["counts"]["messages_acked"], 6);

    // A message over the broker's size limit: Mosquitto answers PUBACK 0x95 (packet too large),
    // a code outside rumqttc's PUBACK table, counted by its code all the same.
    let big = text5.replace(
        "max-inflight = 10",
        "max-inflight = 10\npayload = \"bytes\"\nsize = 2000",
    );
    let out = run(dir.path(), &big, &[("FLEETBENCH_MQTT_PASSWORD", "right")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = take_summary(dir.path());
    assert_eq!(s["counts"]["messages_unacked"], 6, "{}", text(&out));
    let outcomes = s["outcomes"].to_string();
    assert!(
        outcomes.contains("PUBREC 0x95 (packet too large)"),
        "{outcomes}"
    );

    let out = run(dir.path(), &text5, &[("FLEETBENCH_MQTT_PASSWORD", "wrong")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = take_summary(dir.path());
    assert_eq!(s["counts"]["sessions_failed"], 3, "{}", text(&out));
    let failures = s["failures"].to_string();
    assert!(
        failures.contains("CONNACK 0x87 (not authorized)") && failures.contains("refused"),
        "{failures}"
    );
    drop(broker);
}

#[test]
fn issue_18_version_5_is_refused_for_iot_hub_and_unknown_versions_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let iot_hub = "name = \"x\"\n[target]\nhub = \"remote\"\naddress = \"127.0.0.1:8883\"\nca-file = \"r.pem\"\n[protocol]\nversion = \"5\"\n";
    let out = run(dir.path(), iot_hub, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mqtt5.toml:7:1: protocol.version"), "{err}");
    assert!(err.contains("IoT Hub speaks MQTT 3.1.1"), "{err}");

    let unknown = scenario(8883, "", 1, 1).replace("version = \"5\"", "version = \"4\"");
    let out = run(dir.path(), &unknown, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = 1 + unknown
        .lines()
        .position(|l| l.starts_with("version"))
        .unwrap();
    let at = format!("mqtt5.toml:{line}:1: protocol.version");
    assert!(err.contains(&at), "expected {at:?} in: {err}");
    assert!(err.contains("\"3.1.1\" (the default) or \"5\""), "{err}");

    let v311 = scenario(8883, "receive-maximum = 5", 1, 1).replace("version = \"5\"\n", "");
    let out = run(dir.path(), &v311, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("protocol.receive-maximum"), "{err}");
    assert!(err.contains("only applies to version = \"5\""), "{err}");
}
