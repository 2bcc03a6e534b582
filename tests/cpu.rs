//! Issue 17: CPU per handshake, client and server apart. Against the embedded hub, its own
//! threads' CPU; against `hub serve` given by `--server-pid`, that process's CPU, checked against
//! the test's own reads of /proc/PID/stat bracketing the run.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use fleetbench::hub::StateDir;
use fleetbench::pki::store::write_ca_dir;

use crate::support;
use crate::support::walkthrough::text;
use crate::tls_choices::run;

const DEVICES: u64 = 4;

/// A churn run of `DEVICES` devices for `duration`, no messages, `resumption` as given.
fn churn(target: &str, resumption: bool, duration: &str) -> String {
    format!(
        "name = \"cpu\"\n[target]\n{target}\n[tls]\nresumption = {resumption}\n[fleet]\n\
         devices = {DEVICES}\nid = \"device-{{n:05}}\"\n[connect]\nrate = 200.0\n\
         [churn]\nduration = \"{duration}\"\nmessages = 0\n"
    )
}

#[test]
fn a_churn_run_against_the_embedded_hub_prices_each_handshake_for_client_and_server() {
    let dir = tempfile::tempdir().unwrap();
    let (out, summary) = run(dir.path(), &churn("hub = \"embedded\"", true, "1s"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cpu = &summary.unwrap()["cpu"];
    assert_eq!(cpu["server"], "embedded hub threads (fb-hub)", "{cpu}");
    let per = |k: &str| cpu[k].as_f64().unwrap_or(0.0);
    assert!(per("client_us_per_handshake") > 0.0, "{cpu}");
    assert!(per("server_us_per_handshake") > 0.0, "{cpu}");
    assert!(cpu["resumed_handshakes"].as_u64().unwrap() > 0, "{cpu}");
    assert_eq!(cpu["full_handshakes"].as_u64(), Some(DEVICES), "{cpu}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("CPU per handshake"))
        .unwrap_or_else(|| panic!("no CPU line in\n{stdout}"));
    assert!(
        line.contains("client ") && line.contains(" µs / server ") && line.contains(" µs CPU"),
        "{line}"
    );
}

/// CPU seconds of process `pid` (utime + stime, 100 ticks a second), read by the test itself.
fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    (f[0] + f[1]) as f64 / 100.0
}

/// `hub serve` trusting a new device CA (written to `dir/ca`) with the fleet's devices
/// registered; the hub and its MQTT address.
fn hub_serve(dir: &Path) -> (Child, String) {
    let ca = fleetbench::pki::CaChain::generate(&fleetbench::pki::ChainSpec::default()).unwrap();
    write_ca_dir(&dir.join("ca"), &ca).unwrap();
    let state = StateDir::open(&dir.join("hub")).unwrap();
    let registry = state.load().unwrap();
    registry
        .add_verified_ca("fleet", ca.root().cert().clone())
        .unwrap();
    registry.register_ca_signed(support::ids("device", DEVICES + 1).iter());
    state.save(&registry).unwrap();
    let mut hub = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .args(["hub", "serve", "--mqtt", "127.0.0.1:0", "--state"])
        .arg(dir.join("hub"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(hub.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("mqtts://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (hub, addr)
}

#[test]
fn server_pid_reads_hub_serve_cpu_as_proc_does_and_a_missing_pid_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, addr) = hub_serve(dir.path());
    let target = format!(
        "hub = \"remote\"\naddress = \"{addr}\"\nserver-name = \"localhost\"\nca-file = \"{}\"",
        dir.path().join("hub/server-root.pem").display()
    );
    // Full handshakes only: the server's CPU is well above the 10 ms resolution of /proc.
    let scenario = churn(&target, false, "2s");
    let ca = dir.path().join("ca");
    let ca = ca.to_str().unwrap();
    let pid = hub.id().to_string();
    let before = proc_cpu(hub.id());
    let (out, summary) = run(dir.path(), &scenario, &["--ca", ca, "--server-pid", &pid]);
    let after = proc_cpu(hub.id());
    let (missing, _) = run(
        dir.path(),
        &scenario,
        &["--ca", ca, "--server-pid", "4294967295"],
    );
    hub.kill().unwrap();
    let _ = hub.wait();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cpu = &summary.unwrap()["cpu"];
    assert_eq!(cpu["server"], format!("process {pid}"), "{cpu}");
    let server = cpu["server_secs"].as_f64().unwrap();
    let independent = after - before;
    // The test's reads bracket the run's, and the hub does next to nothing outside the run.
    assert!(server <= independent + 1e-9, "{cpu} vs /proc {independent}");
    assert!(server >= 0.9 * independent, "{cpu} vs /proc {independent}");
    assert!(server >= 0.1, "too little server CPU to compare: {cpu}");
    assert!(
        cpu["server_us_per_handshake"].as_f64().unwrap() > 0.0,
        "{cpu}"
    );
    assert!(
        cpu["client_us_per_handshake"].as_f64().unwrap() > 0.0,
        "{cpu}"
    );
    // A pid that is no process is an error naming it, before anything runs.
    assert_ne!(missing.status.code(), Some(0));
    let said = text(&missing);
    assert!(
        said.contains("--server-pid 4294967295: no such process"),
        "{said}"
    );
}
