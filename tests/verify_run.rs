//! Issue 15: `run` with a `[verify]` receiver on AMQP targets, through the binary: RabbitMQ's
//! queue read over AMQP 1.0 with SASL EXTERNAL (and an exchange that drops some devices'
//! messages unroutable after accepting them), and `hub serve`'s Event Hubs-compatible
//! endpoint (the tutorial's two-process flow), where the hub's test-only fault drops every
//! N-th message and the run must count exactly those as lost, by device.

use std::path::Path;
use std::process::Stdio;

use crate::support::hub_serve::HubServe;
use crate::support::hub_state;
use crate::support::rabbitmq::RabbitMq;
use crate::support::walkthrough::{self, fleetbench, take_summary, text};

/// The deliver phase's sample count in a summary.
fn deliver_count(s: &serde_json::Value) -> u64 {
    s["phases"]
        .as_array()
        .and_then(|p| p.iter().find(|x| x["name"] == "deliver"))
        .and_then(|x| x["count"].as_u64())
        .unwrap_or(0)
}

/// Starts RabbitMQ for the walkthrough's 50 devices and a 51st identity, the receiver's own
/// (RabbitMQ maps EXTERNAL to the CN), and runs `scenarios/rabbitmq.toml` against it as
/// `edit` changes it. Returns the run's output and summary, with the broker's log tail.
fn rabbitmq_run(
    edit: impl Fn(String) -> String,
) -> (std::process::Output, serde_json::Value, String) {
    let dir = walkthrough::setup();
    let d = dir.path();
    let broker = RabbitMq::for_walkthrough(d, 51);
    let scenario = walkthrough::copy_replacing(
        "scenarios/rabbitmq.toml",
        "127.0.0.1:5671",
        &format!("127.0.0.1:{}", broker.port),
        d,
    );
    let body = edit(std::fs::read_to_string(&scenario).unwrap());
    std::fs::write(&scenario, body).unwrap();
    let out = fleetbench(
        d,
        &[
            "run",
            "--quiet",
            "--results",
            "results",
            scenario.to_str().unwrap(),
        ],
        &[],
    );
    let log = broker.log_tail();
    drop(broker);
    let s = take_summary(d);
    (out, s, log)
}

#[test]
fn a_rabbitmq_run_with_an_amqp_receiver_proves_every_message_delivered() {
    if !RabbitMq::available() {
        return;
    }
    let (out, s, log) = rabbitmq_run(|body| {
        body + "\n[verify]\nkind = \"amqp\"\naddresses = [\"/queue/telemetry\"]\nclient-id = \"device-00051\"\n"
    });
    assert_eq!(out.status.code(), Some(0), "{}\n{log}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Delivery"), "{stdout}");
    let v = &s["delivery"];
    assert_eq!(s["counts"]["messages_acked"], 200, "{}", text(&out));
    assert_eq!(
        (&v["acked"], &v["delivered"], &v["received"]),
        (&200.into(), &200.into(), &200.into()),
        "{v}"
    );
    for field in ["lost", "duplicated", "unexpected"] {
        assert_eq!(v[field], 0, "{field}: {v}");
    }
    assert!(
        v["receiver"].as_str().unwrap().contains("/queue/telemetry"),
        "{v}"
    );
    assert_eq!(deliver_count(&s), 200, "{}", s["phases"]);
}

/// `hub serve` with MQTT and AMQP listeners in `dir/hub`; returns it with its MQTT address and
/// its Event Hubs connection string.
fn hub_serve(dir: &Path, drop_every: Option<&str>) -> (HubServe, String, String) {
    let mut cmd = HubServe::ephemeral("hub");
    cmd.current_dir(dir)
        .args(["--amqp", "127.0.0.1:0"])
        .stderr(Stdio::piped());
    if let Some(n) = drop_every {
        cmd.env("FLEETBENCH_FAULT_EVENTHUBS_DROP_EVERY", n);
    }
    let mut hub = HubServe::start(cmd);
    hub.drain_stdout();
    let connection = hub.eventhubs();
    let mqtt = hub.mqtt();
    (hub, mqtt, connection)
}

/// Runs 6 devices x 4 messages over MQTT against `mqtt` with an Event Hubs receiver.
fn run_with_receiver(
    d: &Path,
    mqtt: &str,
    connection: &str,
) -> (std::process::Output, serde_json::Value) {
    let scenario = format!(
        "[target]\nhub = \"remote\"\naddress = \"{mqtt}\"\nserver-name = \"localhost\"\n\
         ca-file = \"hub/server-root.pem\"\n[fleet]\ndevices = 6\n\
         [messages]\ncount = 4\ninterval = \"5ms\"\n\
         [verify]\nkind = \"eventhubs\"\nconnection-string-env = \"FB_TEST_EVENTHUBS\"\nsettle = \"2s\"\n"
    );
    std::fs::write(d.join("eh.toml"), scenario).unwrap();
    let out = fleetbench(
        d,
        &[
            "run",
            "--quiet",
            "--results",
            "results",
            "--ca",
            "ca",
            "eh.toml",
        ],
        &[("FB_TEST_EVENTHUBS", connection)],
    );
    let s = take_summary(d);
    (out, s)
}

#[test]
fn the_hubs_event_hubs_endpoint_proves_delivery_and_a_dropping_hub_is_caught_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    hub_state::walkthrough(d, "hub", "t", 6);

    // A faithful hub: all 24 acknowledged messages arrive once, each with its deliver time.
    let (hub, mqtt, connection) = hub_serve(d, None);
    let (out, s) = run_with_receiver(d, &mqtt, &connection);
    hub.interrupt();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = &s["delivery"];
    assert_eq!(
        (&v["acked"], &v["delivered"], &v["lost"], &v["duplicated"]),
        (&24.into(), &24.into(), &0.into(), &0.into()),
        "{v}"
    );
    assert!(
        v["receiver"].as_str().unwrap().contains("event hubs"),
        "{v}"
    );
    assert_eq!(deliver_count(&s), 24, "{}", s["phases"]);

    // The same hub dropping every 5th message from its endpoint (after acknowledging it):
    // 24 / 5 = 4 lost, each named by device, and the run fails.
    let (hub, mqtt, connection) = hub_serve(d, Some("5"));
    let (out, s) = run_with_receiver(d, &mqtt, &connection);
    hub.interrupt();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = &s["delivery"];
    assert_eq!(
        (&v["acked"], &v["delivered"], &v["lost"]),
        (&24.into(), &20.into(), &4.into()),
        "{v}"
    );
    let lost_by_device: u64 = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["lost"].as_u64().unwrap())
        .sum();
    assert_eq!(lost_by_device, 4, "{v}");
    // The reports lead with why the run failed, as they do for a failed check.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("Failed")
                && l.contains("4 acknowledged messages never delivered")),
        "{stdout}"
    );
    assert!(
        s["verdict"]["checks"]
            .to_string()
            .contains("4 acknowledged messages never delivered"),
        "{}",
        s["verdict"]
    );
}

#[test]
fn an_eventhubs_receiver_without_its_connection_string_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let scenario =
        "[target]\nhub = \"remote\"\naddress = \"127.0.0.1:1\"\nserver-name = \"localhost\"\n\
         verify-server = false\n[fleet]\ndevices = 1\n\
         [verify]\nkind = \"eventhubs\"\nconnection-string-env = \"FB_TEST_UNSET_EVENTHUBS\"\n";
    std::fs::write(d.join("eh.toml"), scenario).unwrap();
    let out = fleetbench(
        d,
        &["run", "--quiet", "--results", "results", "eh.toml"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("FB_TEST_UNSET_EVENTHUBS is not set"),
        "{}",
        text(&out)
    );
    // And on the embedded hub the kind is refused at validation, naming the field.
    std::fs::write(
        d.join("emb.toml"),
        "[verify]\nkind = \"eventhubs\"\nconnection-string-env = \"X\"\n",
    )
    .unwrap();
    let out = fleetbench(
        d,
        &["run", "--quiet", "--results", "results", "emb.toml"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("verify.kind"), "{}", text(&out));
}

#[test]
fn a_rabbitmq_exchange_that_drops_unroutable_messages_is_caught_exactly_by_device() {
    if !RabbitMq::available() {
        return;
    }
    // Each device sends to amq.direct with its id as the routing key; the receiver binds a
    // queue for every device but 3 and 7, whose messages RabbitMQ accepts and drops unroutable.
    let addresses: Vec<String> = (1..=12)
        .filter(|n| ![3, 7].contains(n))
        .map(|n| format!("\"/exchange/amq.direct/device-{n:05}\""))
        .collect();
    let (out, s, log) = rabbitmq_run(|body| {
        let body = body.replace("devices = 50", "devices = 12").replace(
            "address = \"/queue/telemetry\"",
            "address = \"/exchange/amq.direct/{device_id}\"",
        );
        format!(
            "{body}\n[verify]\nkind = \"amqp\"\naddresses = [{}]\nclient-id = \"device-00051\"\nsettle = \"1s\"\n",
            addresses.join(", ")
        )
    });
    assert_eq!(out.status.code(), Some(1), "{}\n{log}", text(&out));
    let v = &s["delivery"];
    assert_eq!(s["counts"]["messages_acked"], 48, "{}", text(&out));
    assert_eq!(
        (&v["acked"], &v["delivered"], &v["lost"], &v["duplicated"]),
        (&48.into(), &40.into(), &8.into(), &0.into()),
        "{v}"
    );
    let lost = crate::support::results::lost_by_device(v);
    assert_eq!(
        lost,
        [
            ("device-00003".to_owned(), 4),
            ("device-00007".to_owned(), 4)
        ]
    );
}
