//! Issue 15: `run` against `hub serve` asks the hub what it received of that run (`[target]
//! accounts`, `GET /runs/<run-id>`), so summary.json `hub` has received / acked / lost as with
//! the embedded hub; `merge` sums the shards'. A run whose messages the hub did not count is
//! reported lost and fails.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use crate::support::hub_serve::HubServe;
use crate::support::hub_state;
use crate::support::walkthrough::{fleetbench, text};

const DEVICES: u64 = 12;
const MESSAGES: u64 = 3;

/// The tutorial's hub state in `dir/hub-state`: CA `ca` verified, `DEVICES` devices imported.
fn tutorial_state(dir: &Path) {
    hub_state::walkthrough(dir, "hub-state", "tutorial", DEVICES);
}

/// `hub serve` over `dir/hub-state` on ephemeral ports: the process, its MQTT address and its
/// metrics (accounting) address, and the thread collecting its stderr.
struct Served {
    hub: HubServe,
    mqtt: String,
    amqp: String,
    accounts: std::net::SocketAddr,
    log: std::thread::JoinHandle<String>,
}

fn serve(dir: &Path) -> Served {
    let mut cmd = HubServe::ephemeral("hub-state");
    cmd.current_dir(dir)
        .args(["--amqp", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .stderr(Stdio::piped());
    let mut hub = HubServe::start(cmd);
    let (mqtt, amqp) = (hub.mqtt(), hub.amqp());
    let (accounts, log) = hub.metrics();
    Served {
        hub,
        mqtt,
        amqp,
        accounts,
        log,
    }
}

impl Served {
    /// Stops the hub; what it printed on stdout after its first line.
    fn stop(self) -> String {
        let (status, summary, _) = self.hub.stop("-TERM");
        let log = self.log.join().unwrap();
        assert!(status.success(), "{log}");
        summary
    }
}

/// The committed tutorial-hub scenario as `dir/file`, pointed at `address` with its accounting
/// at `accounts`, scaled down to `DEVICES` devices sending `MESSAGES` each, `extra` appended.
fn tutorial(dir: &Path, file: &str, (address, accounts): (&str, &str), extra: &str) -> PathBuf {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/tutorial-hub.toml");
    let mut body = std::fs::read_to_string(committed).unwrap();
    for (from, to) in [
        (
            "address = \"127.0.0.1:8883\"".to_owned(),
            format!("address = \"{address}\""),
        ),
        (
            "accounts = \"127.0.0.1:9464\"".to_owned(),
            format!("accounts = \"{accounts}\""),
        ),
        ("devices = 100".into(), format!("devices = {DEVICES}")),
        ("count = 5".into(), format!("count = {MESSAGES}")),
        ("interval = \"1s\"".into(), "interval = \"10ms\"".into()),
    ] {
        assert!(
            body.contains(&from),
            "tutorial-hub.toml no longer holds {from:?}"
        );
        body = body.replace(&from, &to);
    }
    let path = dir.join(file);
    std::fs::write(&path, body + extra).unwrap();
    path
}

fn run(dir: &Path, scenario: &Path, results: &str, extra: &[&str]) -> Output {
    let scenario = scenario.to_str().unwrap();
    let args = [
        &["run", "--quiet", "--results", results, scenario][..],
        extra,
    ]
    .concat();
    fleetbench(dir, &args, &[])
}

/// The only results directory under `dir/results`.
fn only_run(results: &Path) -> PathBuf {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.pop().unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn get(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

#[test]
fn accounts_must_be_host_port_and_only_for_a_remote_hub() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (target, said) in [
        (
            "hub = \"remote\"\naddress = \"127.0.0.1:1\"\nverify-server = false\naccounts = \"hub:metrics\"",
            "target.accounts: \"hub:metrics\" is not valid: expected host:port",
        ),
        (
            "accounts = \"127.0.0.1:9464\"",
            "target.accounts",
        ),
    ] {
        std::fs::write(d.join("s.toml"), format!("[target]\n{target}\n")).unwrap();
        let out = fleetbench(d, &["run", "--quiet", "s.toml"], &[]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(said), "{}", text(&out));
    }
}

#[test]
fn three_shards_against_hub_serve_are_accounted_per_run_and_merged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tutorial_state(d);
    let hub = serve(d);
    let scenario = tutorial(d, "t.toml", (&hub.mqtt, &hub.accounts.to_string()), "");
    let mut shard_dirs = Vec::new();
    let mut run_ids = Vec::new();
    for k in 0..3 {
        let results = format!("shards/{k}");
        let out = run(d, &scenario, &results, &["--shard", &format!("{k}/3")]);
        assert!(out.status.success(), "shard {k}: {}", text(&out));
        let shard = only_run(&d.join(&results));
        let summary = json(&shard.join("summary.json"));
        let run_id = summary["run_id"].as_str().unwrap().to_owned();
        assert_eq!(json(&shard.join("plan.json"))["run_id"], run_id.as_str());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("Run id      {run_id}")),
            "{stdout}"
        );
        // This shard's devices, as the hub counted them.
        let counted = get(hub.accounts, &format!("/runs/{run_id}"));
        assert_eq!(counted["seen"], true);
        assert_eq!(
            counted["devices"].as_object().unwrap().len(),
            4,
            "{counted}"
        );
        let acc = &summary["hub"];
        assert_eq!(acc["received"], counted["received"], "{acc}");
        assert_eq!(acc["acked"], 4 * MESSAGES, "{acc}");
        assert_eq!(acc["lost"], 0, "{acc}");
        run_ids.push(run_id);
        shard_dirs.push(shard);
    }
    run_ids.sort();
    run_ids.dedup();
    assert_eq!(run_ids.len(), 3, "each shard has its own run id");
    assert!(run_ids.iter().all(|id| id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())));
    let kept = get(hub.accounts, "/runs");
    assert_eq!(kept["runs"].as_array().unwrap().len(), 3, "{kept}");

    let merged = d.join("merged");
    let mut args = vec!["merge".to_owned()];
    args.extend(shard_dirs.iter().map(|p| p.to_str().unwrap().to_owned()));
    args.extend(["-o".into(), merged.to_str().unwrap().to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = fleetbench(d, &args, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let m = json(&merged.join("summary.json"));
    let acc = &m["hub"];
    assert_eq!(acc["acked"], DEVICES * MESSAGES, "{acc}");
    assert_eq!(acc["received"], acc["acked"], "{acc}");
    assert_eq!(acc["lost"], 0, "{acc}");
    let mut listed: Vec<String> = m["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["run_id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, run_ids, "the merge lists each shard's run id");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("hub received {}", DEVICES * MESSAGES)),
        "{stdout}"
    );
    // At exit the hub lists the runs it counted.
    let summary = hub.stop();
    for id in &run_ids {
        let line = format!("  run       {id}        4 devices         {}", 4 * MESSAGES);
        assert!(summary.contains(&line), "{line:?} not in\n{summary}");
    }
}

#[test]
fn amqp_is_accounted_a_run_the_hub_did_not_count_fails_an_unreachable_hub_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tutorial_state(d);
    // The devices send to one hub; the run asks another (same state, fresh counts).
    let sent_to = serve(d);
    let asked = serve(d);
    let scenario = tutorial(
        d,
        "t.toml",
        (&sent_to.mqtt, &asked.accounts.to_string()),
        "",
    );
    // Over AMQP to the hub it asks: every message counted.
    let kind = "\n[protocol]\nkind = \"amqp\"\n";
    let amqp = tutorial(
        d,
        "a.toml",
        (&asked.amqp, &asked.accounts.to_string()),
        kind,
    );
    let out = run(d, &amqp, "amqp", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let acc = &json(&only_run(&d.join("amqp")).join("summary.json"))["hub"];
    assert_eq!(acc["acked"], DEVICES * MESSAGES, "{acc}");
    assert_eq!(
        (&acc["received"], &acc["lost"]),
        (&acc["acked"], &0.into()),
        "{acc}"
    );

    let out = run(d, &scenario, "lost", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let summary = json(&only_run(&d.join("lost")).join("summary.json"));
    let acc = &summary["hub"];
    assert_eq!(acc["acked"], DEVICES * MESSAGES, "{acc}");
    assert_eq!(
        (acc["received"].as_u64(), acc["lost"].as_u64()),
        (Some(0), Some(DEVICES * MESSAGES)),
        "{acc}"
    );
    assert_eq!(acc["lost_devices"].as_array().unwrap().len(), 10, "{acc}");
    assert!(text(&out).contains("LOST MESSAGES"), "{}", text(&out));

    // Nothing listens at the accounting address: the run reports what it measured, exits 0
    // and says the hub's count is unknown.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = closed.local_addr().unwrap().to_string();
    drop(closed);
    let scenario = tutorial(d, "u.toml", (&sent_to.mqtt, &gone), "");
    let out = run(d, &scenario, "unknown", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let summary = json(&only_run(&d.join("unknown")).join("summary.json"));
    assert!(summary["hub"].is_null(), "{}", summary["hub"]);
    assert_eq!(summary["counts"]["messages_acked"], DEVICES * MESSAGES);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot reach the hub's accounting at {gone}"))
            && stderr.contains("the hub's count of this run is unknown"),
        "{stderr}"
    );
    sent_to.stop();
    asked.stop();
}
