//! Issue 15: `hub serve` accounts for what it received: live OpenMetrics counts by protocol and
//! verifying CA on `--metrics`, a summary on stdout when it stops, and one log line per refused
//! session at the default verbosity.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Stdio;

use crate::support::hub_serve::HubServe;
use crate::support::hub_state::{self, ok};
use crate::support::openmetrics;
use crate::support::walkthrough::{fleetbench, take_summary, text};

/// Runs a remote-hub scenario `name` from `dir` with devices minted from CA directory `ca`
/// and returns its acknowledged message count.
fn acked_by_run(
    dir: &Path,
    (name, ca): (&str, &str),
    address: &str,
    extra: &str,
    devices: u32,
) -> u64 {
    let scenario = format!(
        "[target]\nhub = \"remote\"\naddress = \"{address}\"\nserver-name = \"localhost\"\n\
         ca-file = \"hub/server-root.pem\"\n{extra}[fleet]\ndevices = {devices}\n\
         [messages]\ncount = 3\ninterval = \"5ms\"\n"
    );
    std::fs::write(dir.join(name), scenario).unwrap();
    let out = fleetbench(
        dir,
        &["run", "--quiet", "--results", "results", "--ca", ca, name],
        &[],
    );
    let summary = take_summary(dir);
    let acked = summary["counts"]["messages_acked"].as_u64().unwrap();
    assert!(acked > 0, "{}", text(&out));
    acked
}

fn scrape(addr: std::net::SocketAddr) -> String {
    let body = openmetrics::scrape(addr);
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    body
}

#[test]
fn hub_serve_counts_what_it_received_by_protocol_and_ca_live_and_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two verified CAs vouch for the same registered device ids.
    for (out, name) in [("ca", "tutorial"), ("ca2", "second")] {
        ok(d, &["pki", "init", "--out", out]);
        hub_state::add_verified_ca(d, "hub", name, &format!("{out}/root.cer"));
    }
    hub_state::register_devices(d, "hub", 5);
    let mut cmd = HubServe::ephemeral("hub");
    cmd.current_dir(d)
        .args(["--amqp", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .stderr(Stdio::piped());
    let mut hub = HubServe::start(cmd);
    let (mqtt, amqp) = (hub.mqtt(), hub.amqp());
    let (metrics, log) = hub.metrics();

    // Six devices over MQTT, five registered: device-00006 is refused.
    let mqtt_acked = acked_by_run(d, ("m.toml", "ca"), &mqtt, "", 6);
    let kind = "[protocol]\nkind = \"amqp\"\n";
    let amqp_acked = acked_by_run(d, ("a.toml", "ca"), &amqp, kind, 5);
    // Two devices over MQTT whose chains end at the second CA.
    let second_acked = acked_by_run(d, ("s.toml", "ca2"), &mqtt, "", 2);
    assert_eq!((mqtt_acked, amqp_acked, second_acked), (15, 15, 6));

    let body = scrape(metrics);
    let received = "fleetbench_hub_messages_received_total";
    for expected in [
        format!("{received}{{protocol=\"mqtt\",ca=\"tutorial\"}} {mqtt_acked}\n"),
        format!("{received}{{protocol=\"amqp\",ca=\"tutorial\"}} {amqp_acked}\n"),
        format!("{received}{{protocol=\"mqtt\",ca=\"second\"}} {second_acked}\n"),
        "fleetbench_hub_sessions_accepted_total{protocol=\"mqtt\"} 7\n".into(),
        "fleetbench_hub_sessions_accepted_total{protocol=\"amqp\"} 5\n".into(),
        "fleetbench_hub_sessions_refused_total{protocol=\"mqtt\",reason=\"unknown_device\"} 1\n"
            .into(),
    ] {
        assert!(body.contains(&expected), "{expected} not in\n{body}");
    }
    assert!(body.ends_with("# EOF\n"), "{body}");

    // Not TLS: refused at the handshake (counted by the time the hub has stopped).
    let mut garbage = std::net::TcpStream::connect(&mqtt).unwrap();
    garbage.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let _ = garbage.read_to_end(&mut Vec::new());

    let (status, rest, _) = hub.stop("-INT");
    let log = log.join().unwrap();
    assert!(status.success(), "{rest}{log}");
    let total = mqtt_acked + amqp_acked + second_acked;
    assert!(
        rest.starts_with(&format!(
            "hub summary: {total} messages received; 12 sessions accepted, 2 refused\n"
        )),
        "{rest}"
    );
    for (what, n) in [
        ("received  mqtt  CA tutorial", mqtt_acked),
        ("received  amqp  CA tutorial", amqp_acked),
        ("received  mqtt  CA second", second_acked),
        ("accepted  mqtt", 7),
        ("refused   mqtt  unknown_device", 1),
        ("refused   mqtt  tls_handshake", 1),
    ] {
        assert!(
            rest.lines()
                .any(|l| l.trim_start().starts_with(what) && l.ends_with(&format!(" {n}"))),
            "{what} {n} not in\n{rest}"
        );
    }
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains("hub refused")).collect();
    assert_eq!(refusals.len(), 1, "{log}");
    assert!(
        refusals[0].contains("mqtt session of device \"device-00006\" (unknown_device)"),
        "{log}"
    );
}

#[test]
fn hub_serve_logs_refusals_at_most_ten_a_second_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    hub_state::walkthrough(d, "hub", "tutorial", 5);
    let mut cmd = HubServe::ephemeral("hub");
    cmd.current_dir(d).stderr(Stdio::piped());
    let hub = HubServe::start(cmd);
    // Thirty devices, five registered: 25 refusals within a few milliseconds.
    acked_by_run(d, ("m.toml", "ca"), &hub.mqtt(), "", 30);
    let (status, summary, log) = hub.stop("-TERM");
    assert!(status.success(), "{summary}{log}");
    assert!(
        summary.contains("5 sessions accepted, 25 refused"),
        "{summary}"
    );
    let shown = log.matches("hub refused mqtt session of device").count();
    let hidden: usize = log
        .lines()
        .filter_map(|l| {
            l.split("hub refused ")
                .nth(1)?
                .split(" more sessions")
                .next()
        })
        .filter_map(|n| n.parse::<usize>().ok())
        .sum();
    assert_eq!(shown + hidden, 25, "{log}");
    assert!((1..25).contains(&shown), "{log}");
}
