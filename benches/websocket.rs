//! What the WebSocket layer costs against the plain TLS path, measured in the same run: the
//! release binary's `run` against its embedded hub, one scenario with `[transport] websocket =
//! true` and the same scenario without, in alternating rounds (`FLEETBENCH_BENCH_ROUNDS`,
//! default 5), medians with their spreads (`support/stats.rs`) and the median of the paired
//! rounds' ratios (WebSocket / plain).
//!
//! - handshake: churn with no messages (TCP, TLS 1.3 mutual auth, [upgrade,] CONNECT/CONNACK or
//!   AMQP open/attach, close), 3 s per side: client and hub CPU per session (the run's own
//!   `cpu` section: /proc times, the hub's threads apart) and the connect phases' p50s;
//! - message: 20 sessions sending 400 QoS 1 messages each in the closed model: client and hub
//!   CPU per message and the acknowledgement's p50.
//!
//! `cargo bench --bench websocket [handshake|message] [mqtt|amqp]`.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

#[path = "support/stats.rs"]
mod stats;

use std::path::Path;
use std::process::Command;

use stats::{ratios, Spread};

const HANDSHAKE: &str = "[fleet]\ndevices = 40\n[connect]\nrate = 200\nmax-handshakes = 8\n\
    [churn]\nduration = \"3s\"\nmessages = 0\n";
const MESSAGE: &str = "[fleet]\ndevices = 20\n[connect]\nrate = 1000\n\
    [messages]\ncount = 400\nmodel = \"closed\"\ntimeout = \"10s\"\n";

/// One figure read from a run's summary.json.
struct Metric {
    name: &'static str,
    unit: &'static str,
    read: fn(&serde_json::Value) -> Option<f64>,
}

fn p50(s: &serde_json::Value, phase: &str) -> Option<f64> {
    let p = s["phases"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == phase)?;
    p["p50_us"].as_f64().or_else(|| p["p50"].as_f64())
}

fn per(s: &serde_json::Value, secs: &str, count: &str) -> Option<f64> {
    let n = s["counts"][count].as_f64()?;
    Some(s["cpu"][secs].as_f64()? * 1e6 / n)
}

fn handshake_metrics(protocol: &str) -> Vec<Metric> {
    let mut m = vec![
        Metric {
            name: "client CPU per session",
            unit: "µs",
            read: |s| per(s, "client_secs", "handshakes"),
        },
        Metric {
            name: "hub CPU per session",
            unit: "µs",
            read: |s| per(s, "server_secs", "handshakes"),
        },
        Metric {
            name: "tls_handshake p50",
            unit: "µs",
            read: |s| p50(s, "tls_handshake"),
        },
    ];
    m.push(if protocol == "mqtt" {
        Metric {
            name: "mqtt_connect p50",
            unit: "µs",
            read: |s| p50(s, "mqtt_connect"),
        }
    } else {
        Metric {
            name: "amqp_open p50",
            unit: "µs",
            read: |s| p50(s, "amqp_open"),
        }
    });
    m
}

fn message_metrics(protocol: &str) -> Vec<Metric> {
    vec![
        Metric {
            name: "client CPU per message",
            unit: "µs",
            read: |s| per(s, "client_secs", "messages_acked"),
        },
        Metric {
            name: "hub CPU per message",
            unit: "µs",
            read: |s| per(s, "server_secs", "messages_acked"),
        },
        if protocol == "mqtt" {
            Metric {
                name: "publish_ack p50",
                unit: "µs",
                read: |s| p50(s, "publish_ack"),
            }
        } else {
            Metric {
                name: "send_ack p50",
                unit: "µs",
                read: |s| p50(s, "send_ack"),
            }
        },
    ]
}

/// Runs `scenario` in `dir` with the binary and returns its summary.
fn run(dir: &Path, name: &str, scenario: &str) -> serde_json::Value {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, scenario).unwrap();
    let results = dir.join("results");
    let out = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .args(["run", "--quiet", "--results"])
        .arg(&results)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = std::fs::read_dir(&results)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    std::fs::remove_dir_all(&results).unwrap();
    serde_json::from_str(&summary).unwrap()
}

fn rounds() -> usize {
    std::env::var("FLEETBENCH_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
}

/// Alternating rounds of the plain and the WebSocket scenario; prints each metric's medians
/// with spreads and the paired ratio.
fn compare(case: &str, protocol: &str, body: &str, metrics: &[Metric]) {
    let dir = tempfile::tempdir().unwrap();
    let plain = format!("name = \"plain\"\n[protocol]\nkind = \"{protocol}\"\n{body}");
    let ws = format!("{plain}[transport]\nwebsocket = true\n").replace("\"plain\"", "\"ws\"");
    let (mut p, mut w) = (Vec::new(), Vec::new());
    for round in 0..rounds() {
        if round % 2 == 0 {
            p.push(run(dir.path(), "plain", &plain));
            w.push(run(dir.path(), "ws", &ws));
        } else {
            w.push(run(dir.path(), "ws", &ws));
            p.push(run(dir.path(), "plain", &plain));
        }
    }
    let upgrade: Vec<f64> = w.iter().filter_map(|s| p50(s, "ws_upgrade")).collect();
    println!("{case} ({protocol}), {} alternating rounds", p.len());
    if let Some(u) = Spread::of(&upgrade) {
        println!("  ws_upgrade p50 (µs)            websocket {u}");
    }
    for m in metrics {
        let a: Vec<f64> = p.iter().map(|s| (m.read)(s).unwrap()).collect();
        let b: Vec<f64> = w.iter().map(|s| (m.read)(s).unwrap()).collect();
        let (sa, sb) = (Spread::of(&a).unwrap(), Spread::of(&b).unwrap());
        println!("  {} ({})", m.name, m.unit);
        println!("    plain      {sa}");
        println!("    websocket  {sb}");
        println!("    ratio      {}", Spread::of(&ratios(&b, &a)).unwrap());
    }
    println!();
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // An argument from a set narrows to what it names; none from it: all of the set.
    let wants = |set: &[&str], name: &str| {
        !args.iter().any(|a| set.contains(&a.as_str())) || args.iter().any(|a| a == name)
    };
    println!("fleetbench WebSocket layer against plain TLS, same run\n");
    for protocol in ["mqtt", "amqp"] {
        if !wants(&["mqtt", "amqp"], protocol) {
            continue;
        }
        if wants(&["handshake", "message"], "handshake") {
            compare(
                "handshake",
                protocol,
                HANDSHAKE,
                &handshake_metrics(protocol),
            );
        }
        if wants(&["handshake", "message"], "message") {
            compare("message", protocol, MESSAGE, &message_metrics(protocol));
        }
    }
}
