//! A generator starved of CPU (here: stopped outright with SIGSTOP for a known time) samples its
//! timeline late. Its rows must still be labelled by the wall clock, and rates drawn per second
//! of what each row covers: before, a row was labelled by ticks counted, so a starved run showed
//! fewer seconds than it lasted (1,228 rows for a 60-minute soak) and each row's counts as one
//! second's.

use std::process::Command;
use std::time::{Duration, Instant};

use fleetbench::metrics::timeline_spans;

use crate::support;

/// 20 devices sending 20 messages a second each for 8 s after connecting.
const STEADY: &str = r#"
name = "starved"
[fleet]
devices = 20
[connect]
rate = 200
[messages]
count = 160
interval = "50ms"
timeout = "30s"
[run]
max-duration = "60s"
"#;

/// How long the generator is frozen.
const FROZEN: Duration = Duration::from_secs(3);

#[test]
#[cfg(unix)]
fn a_frozen_generators_timeline_keeps_wall_clock_seconds_and_per_second_rates() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("starved.toml");
    std::fs::write(&scenario, STEADY).unwrap();
    let results = dir.path().join("results");
    let started = Instant::now();
    let (child, addr, reader) = support::spawn_run_with_metrics(&scenario, &results);
    support::wait_for_acks(addr, 100.0);
    let signal = |s: &str| {
        let ok = Command::new("kill")
            .args([s, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    // The fault itself: the whole process, its timers and its sampler, stopped for 3 s.
    signal("-STOP");
    // The freeze is the known delay under test, not synchronisation.
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(FROZEN);
    signal("-CONT");
    let out = child.wait_with_output().unwrap();
    let lasted = started.elapsed();
    let log = reader.join().unwrap();
    assert!(out.status.code().is_some(), "{log}");

    let s = support::results::summary(&results);
    let rows = &s.timeline;
    let last = rows.last().expect("a timeline").t;
    // Labelled by the wall clock: the last row ends about when the run did (it started after
    // the process did, and its last row is a partial second), frozen seconds included.
    assert!(
        last as f64 >= s.duration_secs.floor() && last as f64 <= lasted.as_secs_f64() + 1.0,
        "last row at {last} s, run {:.1} s, process {:.1} s",
        s.duration_secs,
        lasted.as_secs_f64()
    );
    // The freeze shows as a row covering several seconds, not as missing time.
    let spans: Vec<u64> = timeline_spans(rows).collect();
    assert!(
        spans.iter().any(|&n| n >= 2),
        "no row covers the frozen seconds: {:?}",
        rows.iter().map(|r| r.t).collect::<Vec<_>>()
    );
    // Nothing is lost between rows: they add up to the run's counts.
    let acks: u64 = rows.iter().map(|r| r.acks).sum();
    assert_eq!(acks, s.counts.messages_acked);
    // A row's CPU is per second of what it covers: never more than the machine's cores.
    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    for r in rows {
        assert!(r.cpu <= cores + 0.5, "row at {} s: cpu {}", r.t, r.cpu);
    }
}
