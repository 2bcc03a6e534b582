//! Issue 15: `hub serve` accounts for what it received: live OpenMetrics counts by protocol and
//! verifying CA on `--metrics`, a summary on stdout when it stops, and one log line per refused
//! session at the default verbosity.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support;
use crate::support::walkthrough::{fleetbench, take_summary, text};

fn ok(dir: &Path, args: &[&str]) {
    let out = fleetbench(dir, args, &[]);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
}

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
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
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
        let cert = format!("{out}/root.cer");
        let add = [
            "hub", "ca", "add", "--state", "hub", "--name", name, "--cert", &cert,
        ];
        ok(d, &[&add[..], &["--verified"]].concat());
    }
    ok(
        d,
        &["pki", "registry", "--count", "5", "--out", "devices.txt"],
    );
    ok(
        d,
        &[
            "hub",
            "device",
            "add",
            "--state",
            "hub",
            "--import",
            "devices.txt",
        ],
    );
    let mut hub = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .current_dir(d)
        .args(["hub", "serve", "--state", "hub", "--mqtt", "127.0.0.1:0"])
        .args(["--amqp", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(hub.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let after = |scheme: &str| {
        let rest = line.split(scheme).nth(1).unwrap();
        rest.split_whitespace().next().unwrap().to_owned()
    };
    let (mqtt, amqp) = (after("mqtts://"), after("amqps://"));
    let (metrics, log) = support::metrics_address(&mut hub);

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

    let kill = Command::new("kill")
        .args(["-INT", &hub.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = hub.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
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
    ok(d, &["pki", "init", "--out", "ca"]);
    let add = ["hub", "ca", "add", "--state", "hub", "--name", "tutorial"];
    ok(
        d,
        &[&add[..], &["--cert", "ca/root.cer", "--verified"]].concat(),
    );
    ok(
        d,
        &["pki", "registry", "--count", "5", "--out", "devices.txt"],
    );
    ok(
        d,
        &[
            "hub",
            "device",
            "add",
            "--state",
            "hub",
            "--import",
            "devices.txt",
        ],
    );
    let mut hub = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .current_dir(d)
        .args(["hub", "serve", "--state", "hub", "--mqtt", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(hub.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let rest = line.split("mqtts://").nth(1).unwrap();
    let mqtt = rest.split_whitespace().next().unwrap();
    // Thirty devices, five registered: 25 refusals within a few milliseconds.
    acked_by_run(d, ("m.toml", "ca"), mqtt, "", 30);
    let kill = Command::new("kill")
        .args(["-TERM", &hub.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = hub.wait_with_output().unwrap();
    let mut summary = String::new();
    stdout.read_to_string(&mut summary).unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{summary}{log}");
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
