//! Issue 13: verdicts a capacity test can bet on. One connect rate, defined once and printed
//! against the plan, the same in `run`, `merge` and thresholds; an exit status that is not 0
//! when nothing connected or something failed; the verdict leading the report.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use fleetbench::metrics::Summary;
use fleetbench::pki::store::write_ca_dir;

use crate::support;
use crate::support::walkthrough::text;

/// The binary, with no shard or start time inherited.
fn bin() -> Command {
    support::bin()
}

/// Runs `scenario` through the binary with results under `results`; the exit code, the
/// output and the summary written.
fn run(scenario: &Path, results: &Path, extra: &[&str]) -> (i32, String, Summary) {
    let out = bin()
        .args(["run", "--quiet", "--results"])
        .arg(results)
        .arg(scenario)
        .args(extra)
        .output()
        .unwrap();
    let dir = support::results::run_dir_of(results, &out);
    let summary = fleetbench::report::read_summary(&dir).unwrap();
    (out.status.code().unwrap_or(-1), text(&out), summary)
}

fn within(got: Option<f64>, want: f64, pct: f64) -> bool {
    got.is_some_and(|g| (g - want).abs() <= want * pct / 100.0)
}

/// A short run's rate on a shared 2-core machine: a busy moment can delay its last connect by
/// tens of milliseconds, a real shortfall of that run that moves a half-second ramp's rate by
/// several percent. So up to three runs, and one must hold within the bound; the old
/// definitions were off by 20-50 % in every run.
fn in_one_of_three(mut attempt: impl FnMut(usize) -> Result<(), String>) {
    let mut why = Vec::new();
    for k in 0..3 {
        match attempt(k) {
            Ok(()) => return,
            Err(e) => why.push(e),
        }
    }
    panic!("no run of three held:\n{}", why.join("\n---\n"));
}

/// A run that missed its thresholds on a busy machine says so and exits 1: one failed attempt
/// of [`in_one_of_three`], not a panic.
fn exited_0(code: i32, out: &str) -> Result<(), String> {
    if code == 0 {
        Ok(())
    } else {
        Err(format!("exit {code}\n{out}"))
    }
}

fn write(dir: &Path, name: &str, toml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, toml).unwrap();
    path
}

#[test]
fn the_quickstart_achieves_its_planned_200_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
    in_one_of_three(|k| {
        let (code, out, s) = run(&scenario, &dir.path().join(format!("r{k}")), &[]);
        exited_0(code, &out)?;
        assert!(out.contains("planned 200.0/s"), "{out}");
        assert!(out.starts_with("fleetbench quickstart: PASSED"), "{out}");
        assert!(out.contains("Schedule    complete"), "{out}");
        let c = &s.rates.connects;
        assert_eq!(c.planned_per_sec, Some(200.0), "{c:?}");
        assert_eq!(s.connects_per_sec, c.per_sec.unwrap());
        // Sends: 5 per device a second apart, so the plan's own instants say ~111/s over 4.5 s.
        let sends = &s.rates.sends;
        assert_eq!(sends.count, 500);
        assert!(
            within(sends.per_sec, sends.planned_per_sec.unwrap(), 2.0),
            "{sends:?}"
        );
        if within(c.per_sec, 200.0, 2.0) {
            Ok(())
        } else {
            Err(format!("{c:?}\n{out}"))
        }
    });
}

#[test]
fn an_odd_fleet_at_50_per_second_reports_50() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "odd.toml",
        "[fleet]\ndevices = 153\n[connect]\nrate = 50\n[messages]\ncount = 1\n\
         [thresholds]\n\"connect.rate\" = \"> 45\"\n",
    );
    in_one_of_three(|k| {
        let (code, out, s) = run(&scenario, &dir.path().join(format!("r{k}")), &[]);
        exited_0(code, &out)?;
        assert!(out.contains("planned 50.0/s"), "{out}");
        if within(s.rates.connects.per_sec, 50.0, 2.0) {
            Ok(())
        } else {
            Err(format!("{:?}\n{out}", s.rates.connects))
        }
    });
}

#[test]
fn a_merged_pair_of_shards_reports_the_rate_of_the_whole_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let ca = support::chain();
    write_ca_dir(&dir.path().join("ca"), &ca).unwrap();
    let scenario = write(
        dir.path(),
        "pair.toml",
        &format!(
            "name = \"pair\"\n[fleet]\ndevices = 120\nca-dir = \"{}\"\n[connect]\nrate = 60\n\
             [messages]\ncount = 1\n[thresholds]\n\"connect.rate\" = \"> 50\"\n",
            dir.path().join("ca").display()
        ),
    );
    let mut last = None;
    in_one_of_three(|attempt| {
        let (code, out, whole) = run(&scenario, &dir.path().join(format!("whole-{attempt}")), &[]);
        exited_0(code, &out)?;
        let start_at = humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(2))
            .to_string();
        let shards: Vec<_> = (0..2)
            .map(|k| {
                bin()
                    .args(["run", "--quiet", "--start-at", &start_at, "--shard"])
                    .arg(format!("{k}/2"))
                    .arg("--results")
                    .arg(dir.path().join(format!("shard-{k}-{attempt}")))
                    .arg(&scenario)
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in shards {
            assert!(child.wait().unwrap().success());
        }
        let inputs: Vec<PathBuf> = (0..2)
            .map(|k| support::results::run_dir(&dir.path().join(format!("shard-{k}-{attempt}"))))
            .collect();
        let merged = dir.path().join(format!("merged-{attempt}"));
        let out = bin()
            .arg("merge")
            .args(&inputs)
            .arg("-o")
            .arg(&merged)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let m = fleetbench::report::read_summary(&merged).unwrap();
        let (w, got) = (
            whole.rates.connects.per_sec.unwrap(),
            m.rates.connects.per_sec,
        );
        let held = within(got, w, 2.0);
        let why = format!("merged {got:?} vs whole {w}");
        last = Some((m, whole));
        if held {
            Ok(())
        } else {
            Err(why)
        }
    });
    let (m, whole) = last.unwrap();
    assert_eq!(m.rates.connects.planned_per_sec.map(f64::round), Some(60.0));
    assert!(m.thresholds.iter().all(|t| t.passed), "{:?}", m.thresholds);
    // Two shards on one host: the host's cores count once.
    assert_eq!(m.hosts.len(), 1, "{:?}", m.hosts);
    assert_eq!(m.generator.cores, whole.generator.cores);
}

#[test]
fn a_run_in_which_nothing_connects_fails_without_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port: every session fails at TCP connect.
    let port = support::free_port();
    let scenario = write(
        dir.path(),
        "nobody.toml",
        &format!(
            "[target]\nhub = \"remote\"\naddress = \"127.0.0.1:{port}\"\nserver-name = \"localhost\"\nverify-server = false\n\
             [fleet]\ndevices = 3\n[messages]\ncount = 1\n[connect]\ntimeout = \"2s\"\n"
        ),
    );
    let (code, out, s) = run(&scenario, &dir.path().join("r"), &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(s.counts.sessions_connected, 0);
    assert!(out.contains(": FAILED in"), "{out}");
    assert!(out.contains("sessions.connected >= 1 (default)"), "{out}");
    assert!(out.contains("errors.rate <= 0 (default)"), "{out}");
    let defaults: Vec<_> = s.thresholds.iter().filter(|t| t.default).collect();
    assert_eq!(defaults.len(), 2, "{:?}", s.thresholds);
    assert!(defaults.iter().all(|t| !t.passed));
    assert!(matches!(
        s.verdict,
        Some(fleetbench::metrics::Verdict::Failed { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_devices_fail_the_run_and_a_stated_tolerance_overrides_the_default() {
    let dir = tempfile::tempdir().unwrap();
    // A hub whose registry knows none of these devices' CA: every device is refused.
    let server_ca = support::chain();
    let hub = support::hub(&server_ca, &[]).await;
    let roots = dir.path().join("roots.pem");
    std::fs::write(
        &roots,
        support::pem("CERTIFICATE", &[server_ca.root().cert()]),
    )
    .unwrap();
    let base = format!(
        "[target]\nhub = \"remote\"\naddress = \"{}\"\nserver-name = \"localhost\"\nca-file = \"{}\"\n\
         [fleet]\ndevices = 3\n[messages]\ncount = 1\n",
        hub.mqtt,
        roots.display()
    );
    let scenario = write(dir.path(), "refused.toml", &base);
    let (code, out, s) = tokio::task::block_in_place(|| run(&scenario, &dir.path().join("a"), &[]));
    assert_eq!(code, 1, "{out}");
    assert_eq!(s.counts.sessions_failed, 3, "{out}");

    // Wrong server name: the handshake fails on the generator's side.
    let wrong = write(
        dir.path(),
        "wrong-name.toml",
        &base.replace(
            "server-name = \"localhost\"",
            "server-name = \"elsewhere.example\"",
        ),
    );
    let (code, out, _) = tokio::task::block_in_place(|| run(&wrong, &dir.path().join("b"), &[]));
    assert_eq!(code, 1, "{out}");

    // Saying what is tolerated replaces the defaults that the scenario states its own of.
    let tolerant = write(
        dir.path(),
        "tolerant.toml",
        &format!(
            "{base}[thresholds]\n\"errors.rate\" = \"<= 100%\"\n\"sessions.connected\" = \">= 0\"\n"
        ),
    );
    let (code, out, s) = tokio::task::block_in_place(|| run(&tolerant, &dir.path().join("c"), &[]));
    assert_eq!(code, 0, "{out}");
    assert!(
        s.thresholds.iter().all(|t| !t.default),
        "{:?}",
        s.thresholds
    );
    hub.stop().await;
}

#[test]
fn a_churn_run_holding_its_rate_reports_that_rate() {
    // Sessions come and go at 400/s for 2 s: every connect is on the schedule, so the rate
    // over the span is the plan's, not the rate per timeline second that saw a connect.
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "churn.toml",
        "[fleet]\ndevices = 40\n[connect]\nrate = 400\n[churn]\nduration = \"2s\"\nmessages = 0\n\
         [tls]\nresumption = true\n[thresholds]\n\"connect.rate\" = \"> 380\"\n",
    );
    in_one_of_three(|k| {
        let (code, out, s) = run(&scenario, &dir.path().join(format!("r{k}")), &[]);
        assert!(s.counts.sessions_connected >= 700, "{out}");
        assert_eq!(s.rates.connects.planned_per_sec, Some(400.0));
        // The handshake benchmark's headline: full and resumed apart, per second and per
        // CPU-second of the process (generator and embedded hub together here).
        let resumed = s.phase("tls_resumed").map_or(0, |p| p.count);
        assert!(resumed > 0, "{out}");
        assert!(
            out.contains("Handshakes  full ")
                && out.contains(&format!("resumed {resumed} ("))
                && out.contains("per generator and embedded hub CPU-second"),
            "{out}"
        );
        // Exit 0 means connect.rate > 380 held as well.
        if code == 0 && within(s.rates.connects.per_sec, 400.0, 2.0) {
            Ok(())
        } else {
            Err(format!("exit {code}: {:?}\n{out}", s.rates.connects))
        }
    });
}
