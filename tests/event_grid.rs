//! Issue 18: `dialect = "event-grid"` through the binary, from the committed
//! `scenarios/event-grid.toml` (only its address, server name and CA file changed). Event Grid
//! itself is not on loopback, so Mosquitto with client certificates stands in for the strings:
//! its ACL is keyed on the user name (`pattern write devices/%u/telemetry`, as an Event Grid
//! topic space `devices/${client.authenticationName}/telemetry` is), once from the CONNECT user
//! name and once from the certificate's CN, and its log shows the client id. Skipped (saying
//! so) without Mosquitto unless FLEETBENCH_REQUIRE_BROKERS=1.

use std::path::Path;
use std::process::Output;

use crate::support;
use crate::support::mosquitto::Mosquitto;
use crate::support::walkthrough::{self, fleetbench, take_summary, text};

const SCENARIO: &str = "scenarios/event-grid.toml";

/// Starts Mosquitto in `dir` (the walkthrough's `ca/` and `broker/`) with mutual TLS, the ACL
/// above and its log also in `dir/<log>`, the user name taken from the certificate's CN when
/// `identity`, else from CONNECT. Waits for its "running" line.
fn start_broker(dir: &Path, identity: bool, log: &str) -> Mosquitto {
    std::fs::write(dir.join("acl"), "pattern write devices/%u/telemetry\n").unwrap();
    Mosquitto::inline(dir, "event-grid.conf", |port| {
        format!(
            "per_listener_settings false\npersistence false\nlog_dest stderr\n\
             log_dest file {log}\nlog_type all\nuser root\n\
             listener {port} 127.0.0.1\ncafile ca/chain.pem\ncertfile broker/server.chain.pem\n\
             keyfile broker/server.key.pem\nrequire_certificate true\n\
             use_identity_as_username {identity}\nallow_anonymous true\nacl_file acl\n\
             set_tcp_nodelay true\n"
        )
    })
}

/// The committed scenario pointed at `port` on loopback, with `edits` (each must occur).
fn scenario(port: u16, edits: &[(&str, &str)]) -> String {
    let repo = env!("CARGO_MANIFEST_DIR");
    let mut body = std::fs::read_to_string(Path::new(repo).join(SCENARIO)).unwrap();
    let local = format!("127.0.0.1:{port}\"\nserver-name = \"localhost");
    let address = (
        "NAMESPACE.REGION-1.ts.eventgrid.azure.net:8883",
        local.as_str(),
    );
    let roots = ("eventgrid-roots.pem", "ca/root.cert.pem");
    for (from, to) in [address, roots].iter().chain(edits) {
        assert!(body.contains(from), "{SCENARIO} no longer holds {from:?}");
        body = body.replace(from, to);
    }
    body
}

/// Runs `text` as `event-grid.toml` in `dir`, 2 messages per device, connecting at 500/s.
fn run(dir: &Path, text: &str) -> Output {
    std::fs::write(dir.join("event-grid.toml"), text).unwrap();
    let args = [
        "run",
        "--quiet",
        "--results",
        "results",
        "event-grid.toml",
        "--rate",
        "500",
        "--messages",
        "2",
    ];
    fleetbench(dir, &args, &[])
}

#[test]
fn event_grid_connects_with_the_device_id_as_user_name_and_client_id_under_an_acl_on_them() {
    if !support::have("mosquitto") {
        return;
    }
    let dir = walkthrough::setup();
    // The user name from CONNECT: the dialect's default, the device id.
    let broker = start_broker(dir.path(), false, "connect.log");
    let out = run(dir.path(), &scenario(broker.port, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = take_summary(dir.path());
    assert_eq!(s["counts"]["sessions_connected"], 100, "{}", text(&out));
    assert_eq!(s["counts"]["messages_acked"], 200, "{}", s["outcomes"]);
    assert_eq!(s["counts"]["messages_unacked"], 0, "{}", s["outcomes"]);
    let protocol = &s["scenario"]["protocol"];
    assert_eq!(
        (&protocol["dialect"], &protocol["throughput-units"]),
        (&"event-grid".into(), &1.into())
    );
    assert!(
        !text(&out).contains("Event Grid namespace of"),
        "no quota warning expected: {}",
        text(&out)
    );
    // Mosquitto logs each CONNECT's client id, protocol level 5 and user name.
    let log = std::fs::read_to_string(dir.path().join("connect.log")).unwrap();
    for n in [1, 57, 100] {
        let line = format!("as device-{n:05} (p5, c1, k60, u'device-{n:05}')");
        assert!(
            log.contains(&line),
            "{line:?} not in the broker's log:\n{log}"
        );
    }

    // Another user name than the certificate's: the ACL refuses every PUBLISH (PUBACK 0x87).
    let other = [(
        "username = \"{device_id}\"",
        "username = \"other-{device_id}\"",
    )];
    let out = run(dir.path(), &scenario(broker.port, &other));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = take_summary(dir.path());
    assert_eq!(s["counts"]["messages_unacked"], 200, "{}", text(&out));
    assert!(
        s["outcomes"].to_string().contains("0x87"),
        "{}",
        s["outcomes"]
    );
    drop(broker);

    // The user name from the certificate's CN, as Event Grid's alternative authentication name
    // source "Certificate Subject Name" reads it: the same ACL accepts every message.
    let broker = start_broker(dir.path(), true, "identity.log");
    let out = run(dir.path(), &scenario(broker.port, &other));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = take_summary(dir.path());
    assert_eq!(s["counts"]["messages_acked"], 200, "{}", s["outcomes"]);

    // Too fast for one throughput unit: 100 devices every 50 ms is 2,000 publishes/s against
    // 1,000; the run warns at its start (Mosquitto takes them all).
    let fast = [("interval = \"1s\"", "interval = \"50ms\"")];
    let out = run(dir.path(), &scenario(broker.port, &fast));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let warning = "the plan sends up to 2000 messages/s but an Event Grid namespace of 1 TU \
                   accepts 1000 inbound MQTT publishes/s";
    assert!(text(&out).contains(warning), "{}", text(&out));
    take_summary(dir.path());
    drop(broker);
}

#[test]
fn event_grid_refuses_qos_2_at_validation_naming_the_field_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &scenario(8883, &[("qos = 1", "qos = 2")]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    // One line further down than in the committed file: the address gained a server-name line.
    let line = walkthrough::line_of(SCENARIO, "qos = ") + 1;
    let at = format!("event-grid.toml:{line}:1: protocol.qos");
    assert!(err.contains(&at), "expected {at:?} in: {err}");
    assert!(
        err.contains("Event Grid's broker supports QoS 0 and 1"),
        "{err}"
    );
}
