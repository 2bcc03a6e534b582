//! Issue 18: MQTT and AMQP over WebSockets inside mutual TLS, through the binary: fleets
//! complete against the embedded hub, against `hub serve --mqtt-ws/--amqp-ws`, and (MQTT)
//! against Mosquitto's `protocol websockets` listener with client certificates; a wrong path or
//! subprotocol is refused, counted as the failure kind `upgrade` and in the hub's refusals.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::support;
use crate::support::walkthrough::{self, fleetbench, take_summary, text};

const DEVICES: u64 = 12;
const MESSAGES: u64 = 4;

/// A scenario of `DEVICES` devices sending `MESSAGES` each, with `head` (target, protocol) and
/// `transport` (the `[transport]` table's lines) in it.
fn scenario(head: &str, transport: &str) -> String {
    format!(
        "name = \"ws\"\n{head}\n[fleet]\ndevices = {DEVICES}\nca-dir = \"ca\"\n\
         [connect]\nrate = 200\ntimeout = \"10s\"\n\
         [messages]\ncount = {MESSAGES}\ninterval = \"20ms\"\ntimeout = \"10s\"\n\
         [run]\nmax-duration = \"60s\"\n[transport]\n{transport}\n"
    )
}

/// Runs `text` as `ws.toml` in `dir`.
fn run(dir: &Path, text: &str) -> Output {
    std::fs::write(dir.join("ws.toml"), text).unwrap();
    fleetbench(
        dir,
        &["run", "--quiet", "--results", "results", "ws.toml"],
        &[],
    )
}

/// The count of `phase` in a summary, 0 when absent.
fn phase_count(s: &serde_json::Value, phase: &str) -> u64 {
    s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == phase)
        .map_or(0, |p| p["count"].as_u64().unwrap())
}

/// Checks a completed WebSocket run's summary: every session upgraded (timed as ws_upgrade),
/// every message acknowledged and counted by the hub when it reports.
fn assert_completed(s: &serde_json::Value, out: &Output, subprotocol: &str) {
    assert_eq!(s["counts"]["sessions_connected"], DEVICES, "{}", text(out));
    assert_eq!(
        s["counts"]["messages_acked"],
        DEVICES * MESSAGES,
        "{}",
        text(out)
    );
    assert_eq!(phase_count(s, "ws_upgrade"), DEVICES, "{}", s["phases"]);
    let t = &s["scenario"]["transport"];
    assert_eq!(
        (&t["websocket"], &t["subprotocol"]),
        (&true.into(), &subprotocol.into())
    );
}

#[test]
fn issue_18_mqtt_and_amqp_fleets_complete_over_websockets_against_the_embedded_hub() {
    let dir = walkthrough::setup();
    for (kind, subprotocol) in [("mqtt", "mqtt"), ("amqp", "AMQPWSB10")] {
        let head = format!("[protocol]\nkind = \"{kind}\"");
        let out = run(dir.path(), &scenario(&head, "websocket = true"));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let run_dir = std::fs::read_dir(dir.path().join("results"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let report = std::fs::read_to_string(run_dir.join("report.txt")).unwrap();
        assert!(report.contains("\nws_upgrade "), "{report}");
        let timeline = std::fs::read_to_string(run_dir.join("timeline.csv")).unwrap();
        assert!(timeline
            .lines()
            .next()
            .unwrap()
            .contains("ws_upgrade_count"));
        let s = take_summary(dir.path());
        assert_completed(&s, &out, subprotocol);
        assert_eq!(s["hub"]["received"], DEVICES * MESSAGES, "{}", s["hub"]);
        assert_eq!(s["hub"]["lost"], 0);
        assert_eq!(s["scenario"]["transport"]["path"], "/$iothub/websocket");
    }
}

#[test]
fn issue_18_a_wrong_websocket_path_is_refused_and_counted_on_both_sides() {
    let dir = walkthrough::setup();
    let out = run(
        dir.path(),
        &scenario("", "websocket = true\npath = \"/mqtt\""),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = take_summary(dir.path());
    let f = &s["failures"][0];
    assert_eq!(
        (&f["phase"], &f["kind"]),
        (&"ws_upgrade".into(), &"upgrade".into())
    );
    assert_eq!(f["count"], DEVICES, "{}", s["failures"]);
    assert!(f["sample"].as_str().unwrap().contains("404"), "{f}");
    assert_eq!(
        s["hub"]["refused"],
        serde_json::json!([["ws_upgrade", DEVICES]])
    );
    assert_eq!(phase_count(&s, "mqtt_connect"), 0);
}

/// `hub serve` with WebSocket listeners over the tutorial's state in `dir` (CA `ca` verified,
/// the devices imported): the process and its MQTT-over-WebSockets and AMQP-over-WebSockets
/// addresses, as its listening line names them.
fn serve(dir: &Path) -> (Child, String, String) {
    let ok = |args: &[&str]| {
        let out = fleetbench(dir, args, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    };
    ok(&["hub", "ca", "add", "--state", "hub-state", "--name", "t"]
        .iter()
        .chain(&["--cert", "ca/root.cer", "--verified"])
        .copied()
        .collect::<Vec<_>>());
    let count = DEVICES.to_string();
    ok(&["pki", "registry", "--count", &count, "--out", "devices.txt"]);
    ok(&[
        "hub",
        "device",
        "add",
        "--state",
        "hub-state",
        "--import",
        "devices.txt",
    ]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .current_dir(dir)
        .args([
            "hub",
            "serve",
            "--state",
            "hub-state",
            "--mqtt",
            "127.0.0.1:0",
        ])
        .args(["--mqtt-ws", "127.0.0.1:0", "--amqp-ws", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let after = |what: &str| {
        let rest = line.split(what).nth(1).unwrap_or_else(|| panic!("{line}"));
        let url = rest.split_whitespace().next().unwrap();
        url.trim_end_matches("/$iothub/websocket").to_owned()
    };
    let (mqtt, amqp) = (after("MQTT over wss://"), after("AMQP over wss://"));
    (child, mqtt, amqp)
}

#[test]
fn issue_18_hub_serve_takes_websocket_sessions_and_refuses_the_wrong_subprotocol() {
    let dir = walkthrough::setup();
    let (mut hub, mqtt, amqp) = serve(dir.path());
    let remote = |addr: &str, kind: &str| {
        format!(
            "[target]\nhub = \"remote\"\naddress = \"{addr}\"\nserver-name = \"localhost\"\n\
             ca-file = \"hub-state/server-root.pem\"\n[protocol]\nkind = \"{kind}\""
        )
    };
    // AMQP as IoT Hub's SDKs name the endpoint: a wss:// URL with the path, no [transport] keys.
    let amqp_url = format!("wss://{amqp}/$iothub/websocket");
    for (addr, kind, subprotocol, transport) in [
        (&mqtt, "mqtt", "mqtt", "websocket = true"),
        (&amqp_url, "amqp", "AMQPWSB10", ""),
    ] {
        let out = run(dir.path(), &scenario(&remote(addr, kind), transport));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_completed(&take_summary(dir.path()), &out, subprotocol);
    }
    // MQTT's subprotocol offered to the AMQP listener: 400, counted by both sides.
    let out = run(
        dir.path(),
        &scenario(&remote(&amqp, "mqtt"), "websocket = true"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = take_summary(dir.path());
    let f = &s["failures"][0];
    assert_eq!(
        (&f["phase"], &f["kind"]),
        (&"ws_upgrade".into(), &"upgrade".into())
    );
    assert!(f["sample"].as_str().unwrap().contains("400"), "{f}");

    let kill = Command::new("kill")
        .args(["-TERM", &hub.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut summary = String::new();
    hub.stdout
        .as_mut()
        .unwrap()
        .read_to_string(&mut summary)
        .unwrap();
    assert!(hub.wait().unwrap().success());
    assert!(summary.contains("ws_upgrade"), "{summary}");
}

/// Mosquitto with mutual TLS on a plain listener and on a `protocol websockets` listener
/// (Debian's 2.0.11 refuses to start with a WebSocket listener alone, and libwebsockets cannot
/// bind port 0, so both ports are chosen free first); killed by PID on drop.
struct Mosquitto {
    child: Child,
    ws_port: u16,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mosquitto {
    fn start(dir: &Path) -> Self {
        let (port, ws_port) = (support::free_port(), support::free_port());
        let tls = "cafile ca/chain.pem\ncertfile broker/server.chain.pem\n\
                   keyfile broker/server.key.pem\nrequire_certificate true\n\
                   use_identity_as_username true\n";
        let conf = format!(
            "per_listener_settings false\npersistence false\nlog_dest stderr\nuser root\n\
             allow_anonymous false\nset_tcp_nodelay true\n\
             listener {port} 127.0.0.1\n{tls}\
             listener {ws_port} 127.0.0.1\nprotocol websockets\n{tls}"
        );
        std::fs::write(dir.join("ws.conf"), conf).unwrap();
        let child = support::mosquitto::spawn(dir, Path::new("ws.conf"));
        Self { child, ws_port }
    }
}

#[test]
fn issue_18_mqtt_over_websockets_completes_against_mosquitto_with_client_certificates() {
    if !support::have("mosquitto") {
        return;
    }
    let dir = walkthrough::setup();
    let broker = Mosquitto::start(dir.path());
    let head = format!(
        "[target]\nhub = \"remote\"\naddress = \"127.0.0.1:{}\"\nserver-name = \"localhost\"\n\
         ca-file = \"ca/root.cert.pem\"\n\
         [protocol]\nkind = \"mqtt\"\ndialect = \"generic\"\ntopic = \"fleet/{{device_id}}/t\"",
        broker.ws_port
    );
    let out = run(dir.path(), &scenario(&head, "websocket = true"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = take_summary(dir.path());
    assert_completed(&s, &out, "mqtt");
    assert_eq!(s["scenario"]["transport"]["path"], "/mqtt");

    // Without WebSockets the same port speaks no MQTT: every session fails, none hangs.
    let out = run(dir.path(), &scenario(&head, "websocket = false"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(take_summary(dir.path())["counts"]["sessions_connected"], 0);
    drop(broker);
}
