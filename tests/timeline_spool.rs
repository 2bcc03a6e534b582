//! Issue 19: a run's interval histograms wait in a spool file while it goes and come back after
//! it, whole: summary.json's timeline and latency.hlog still carry every second's histogram.

use std::collections::BTreeMap;

use crate::support;

/// Twenty sessions sending ten a second each for four seconds: several rows, three phases.
const SECONDS: &str = r#"
[fleet]
devices = 20
[[stages]]
duration = "4s"
sessions = 20
[messages]
interval = "100ms"
timeout = "10s"
[run]
max-duration = "30s"
"#;

#[test]
fn the_timeline_of_a_run_through_the_binary_keeps_every_interval_histogram() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("seconds.toml");
    std::fs::write(&scenario, SECONDS).unwrap();
    let results = dir.path().join("results");
    let out = support::bin()
        .args(["run", "--quiet", "--results"])
        .arg(&results)
        .arg(&scenario)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = support::results::run_dir_of(&results, &out);
    let s = fleetbench::report::read_summary(&run).unwrap();
    assert!(s.timeline.len() >= 4, "{} rows", s.timeline.len());
    assert!(s.counts.messages_acked >= 400, "{:?}", s.counts);

    // Every second's histogram decodes to its own figures; a phase's seconds add up to it.
    let mut per_phase: BTreeMap<String, u64> = BTreeMap::new();
    for r in &s.timeline {
        for (phase, l) in &r.latency {
            let h = l
                .decode()
                .unwrap_or_else(|e| panic!("{phase} at {} s: {e}", r.t));
            assert_eq!(
                (h.len(), h.max()),
                (l.count, l.max_us),
                "{phase} at {} s",
                r.t
            );
            *per_phase.entry(phase.clone()).or_default() += h.len();
        }
    }
    let totals: BTreeMap<String, u64> =
        s.phases.iter().map(|p| (p.name.clone(), p.count)).collect();
    assert_eq!(per_phase, totals);
    assert!(per_phase.get("publish_ack") >= Some(&400), "{per_phase:?}");

    // latency.hlog has the same intervals, histogram for histogram.
    let mut logged: BTreeMap<String, u64> = BTreeMap::new();
    let intervals = support::results::hlog_intervals(&run.join("latency.hlog"));
    let seconds = s.timeline.iter().map(|r| r.latency.len()).sum::<usize>();
    assert_eq!(intervals.len(), seconds);
    for i in intervals {
        *logged.entry(i.tag).or_default() += i.histogram.len();
    }
    assert_eq!(logged, totals);
}
