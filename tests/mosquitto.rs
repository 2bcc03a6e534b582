//! Issues 8 and 16: the generic MQTT dialect against a real Mosquitto with mutual TLS, run the
//! way README "Against your own broker" tells a new user to, from the very files it names: the
//! binary's `pki init` and `pki server`, the committed `.ci/mosquitto/*.conf` (only the port
//! changed) and the committed `scenarios/mosquitto*.toml` (only the port in the address
//! changed). Skipped (saying so) without Mosquitto unless FLEETBENCH_REQUIRE_BROKERS=1.

use std::path::Path;
use std::process::Output;

use crate::support;
use crate::support::mosquitto::{self, Mosquitto};
use crate::support::walkthrough::{self, fleetbench, take_summary, text};

/// The port the committed broker configs and scenarios name.
const PORT: u16 = 8883;

/// Starts Mosquitto in `dir` with the committed `.ci/mosquitto/<conf>` on a free port.
/// Waits for its "running" log line, not for a fixed time.
fn start_broker(dir: &Path, conf: &str) -> Mosquitto {
    let port = support::free_port();
    let conf = walkthrough::copy_replacing(
        &format!(".ci/mosquitto/{conf}"),
        &format!("listener {PORT} 127.0.0.1"),
        &format!("listener {port} 127.0.0.1"),
        dir,
    );
    Mosquitto::start(dir, &conf, port)
}

/// Runs the committed scenario `name` against the broker on `port` from `dir`.
fn run(dir: &Path, name: &str, port: u16, extra: &[&str], env: &[(&str, &str)]) -> Output {
    walkthrough::run(dir, name, (PORT, port), extra, env)
}

#[test]
fn the_mosquitto_walkthrough_passes_at_qos_2_and_refuses_another_ca() {
    if !support::have("mosquitto") {
        return;
    }
    let dir = walkthrough::setup();
    let broker = start_broker(dir.path(), "mosquitto.conf");

    let out = run(dir.path(), "mosquitto.toml", broker.port, &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = take_summary(dir.path());
    assert_eq!(s["counts"]["sessions_connected"], 100, "{}", text(&out));
    assert_eq!(s["counts"]["messages_acked"], 500, "{}", text(&out));
    assert_eq!(s["counts"]["messages_unacked"], 0);
    // QoS 2 end to end: an acknowledgement is a PUBCOMP (a PUBACK would be a protocol error),
    // and the ack phase times the whole PUBLISH..PUBCOMP exchange.
    let protocol = &s["scenario"]["protocol"];
    assert_eq!(
        (&protocol["qos"], &protocol["clean-session"]),
        (&2.into(), &true.into())
    );
    let phases = s["phases"].as_array().unwrap();
    let acks = phases.iter().find(|p| p["name"] == "publish_ack").unwrap();
    assert_eq!(acks["count"], 500);

    // Devices from a CA the broker does not trust are refused and counted: the thresholds fail.
    let out = fleetbench(dir.path(), &["pki", "init", "--out", "other-ca"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let extra = ["--ca", "other-ca", "--devices", "3"];
    let out = run(dir.path(), "mosquitto.toml", broker.port, &extra, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = take_summary(dir.path());
    assert_eq!(
        (
            &s["counts"]["sessions_connected"],
            &s["counts"]["sessions_failed"]
        ),
        (&0.into(), &3.into()),
        "{}",
        text(&out)
    );
    drop(broker);
}

#[test]
fn username_and_password_from_the_environment_against_mosquitto() {
    if !support::have("mosquitto") || !support::have("mosquitto_passwd") {
        return;
    }
    let dir = walkthrough::setup();
    // The walkthrough's password file: one line per device id of the scenario.
    mosquitto::passwords(&dir.path().join("broker/passwords"), 20, "s3cret-pw");
    let broker = start_broker(dir.path(), "mosquitto-password.conf");
    let scenario = "mosquitto-password.toml";

    let env = [("FLEETBENCH_MQTT_PASSWORD", "s3cret-pw")];
    let out = run(dir.path(), scenario, broker.port, &[], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = take_summary(dir.path());
    assert_eq!(s["counts"]["messages_acked"], 60, "{}", text(&out));
    assert_eq!(s["scenario"]["protocol"]["password"], "(set, not shown)");
    assert!(!s.to_string().contains("s3cret-pw"), "the password leaked");

    // A wrong password is refused by the broker, session by session.
    let env = [("FLEETBENCH_MQTT_PASSWORD", "wrong")];
    let out = run(dir.path(), scenario, broker.port, &[], &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = take_summary(dir.path());
    assert_eq!(s["counts"]["sessions_failed"], 20, "{}", text(&out));
    assert!(
        s["failures"].to_string().contains("CONNACK 5"),
        "{}",
        s["failures"]
    );

    // No password in the environment: refused at validation, naming the field and its line.
    let out = run(dir.path(), scenario, broker.port, &[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = walkthrough::line_of(&format!("scenarios/{scenario}"), "password-env");
    let at = format!("{scenario}:{line}:1: protocol.password-env");
    assert!(err.contains(&at), "expected {at:?} in: {err}");
    assert!(err.contains("FLEETBENCH_MQTT_PASSWORD"), "{err}");
    drop(broker);
}
