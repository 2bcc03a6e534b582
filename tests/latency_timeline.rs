//! Issue 14: latency over time. Each second's own histogram per phase in the timeline, in
//! `timeline.csv` and in `latency.hlog` (read back by HdrHistogram's tools), the knee of a ramp
//! against a throttling hub at the right second, and a merge that adds the seconds exactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use fleetbench::metrics::{new_histogram, Summary, TimelineRow};
use fleetbench::pki::store::{pem, write_ca_dir};

use crate::support;

/// S1 x 1 accepts 100 sends/s. Sessions ramp to 60 over 8 s, each sending 5/s: the planned
/// send rate is 37.5 t per second, past the quota from about 2.7 s on.
const RAMP: &str = r#"
[target]
tier = "S1"
units = 1
[[stages]]
duration = "8s"
sessions = 60
[messages]
interval = "200ms"
timeout = "30s"
[run]
max-duration = "60s"
grace = "30s"
"#;

fn p99_ms(r: &TimelineRow) -> Option<f64> {
    r.latency_of("send_response")
        .map(|l| l.p99_us as f64 / 1000.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_past_the_quota_shows_its_knee_in_the_per_second_latency() {
    let (report, dir) = support::run(&support::plan(RAMP)).await;
    let s = &report.summary;
    let seconds: Vec<(u64, Option<f64>)> = s.timeline.iter().map(|r| (r.t, p99_ms(r))).collect();
    // Before the planned rate reaches the quota, the hub keeps up: p99 stays low.
    let early: Vec<f64> = s
        .timeline
        .iter()
        .filter(|r| r.t <= 2)
        .filter_map(p99_ms)
        .collect();
    assert!(!early.is_empty(), "{seconds:?}");
    assert!(early.iter().all(|p| *p < 100.0), "{seconds:?}");
    // The knee: the first second whose p99 passes 300 ms comes after the crossing, and the
    // latency keeps climbing past it.
    let knee = s
        .timeline
        .iter()
        .find(|r| p99_ms(r).is_some_and(|p| p >= 300.0))
        .unwrap_or_else(|| panic!("no knee: {seconds:?}"));
    assert!(
        (3..=9).contains(&knee.t),
        "knee at {} s: {seconds:?}",
        knee.t
    );
    let worst = s.timeline.iter().filter_map(p99_ms).fold(0.0, f64::max);
    assert!(worst >= 1000.0, "{seconds:?}");

    // The seconds hold every sample of the run, each second's figures from its own histogram.
    for phase in &s.phases {
        let per_second: u64 = s
            .timeline
            .iter()
            .filter_map(|r| r.latency_of(&phase.name))
            .map(|l| l.count)
            .sum();
        assert_eq!(per_second, phase.count, "{}", phase.name);
    }
    for l in s.timeline.iter().flat_map(|r| r.latency.values()) {
        let h = l.decode().unwrap();
        assert_eq!(
            (h.len(), h.value_at_quantile(0.99), h.max()),
            (l.count, l.p99_us, l.max_us)
        );
    }

    // report.html charts that second's latency with the rate achieved.
    let html = std::fs::read_to_string(report.dir.join("report.html")).unwrap();
    for name in [
        "latency-over-time-send_response",
        "latency-over-time-connect_response",
    ] {
        assert!(html.contains(&format!("data-chart=\"{name}\"")), "{name}");
    }
    check_csv(&report.dir, s);
    let logged = read_hlog(&report.dir.join("latency.hlog"));
    let expected: BTreeMap<(u64, String), (u64, u64)> = s
        .timeline
        .iter()
        .flat_map(|r| {
            r.latency
                .iter()
                .map(move |(p, l)| ((r.t - 1, p.clone()), (l.count, l.p99_us)))
        })
        .collect();
    assert_eq!(logged, expected);
    check_with_hdrh(&report.dir.join("latency.hlog"), &logged);
    check_with_log_processor(&report.dir.join("latency.hlog"), knee, dir.path());
}

/// `timeline.csv` has each phase's per-second columns, equal to the timeline's.
fn check_csv(dir: &Path, s: &Summary) {
    let csv = std::fs::read_to_string(dir.join("timeline.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{name} not in {header:?}"))
    };
    let (count, p50, p90, p99, max) = (
        col("send_response_count"),
        col("send_response_p50_us"),
        col("send_response_p90_us"),
        col("send_response_p99_us"),
        col("send_response_max_us"),
    );
    col("connect_response_p99_us");
    for (line, r) in lines.zip(&s.timeline) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{line}");
        let got = [count, p50, p90, p99, max].map(|i| cells[i].to_owned());
        let want = match r.latency_of("send_response") {
            Some(l) => [l.count, l.p50_us, l.p90_us, l.p99_us, l.max_us].map(|v| v.to_string()),
            None => Default::default(),
        };
        assert_eq!(got, want, "second {}", r.t);
    }
}

/// Each interval of an hlog: (start second, tag) to (count, p99).
fn read_hlog(path: &Path) -> BTreeMap<(u64, String), (u64, u64)> {
    let mut out = BTreeMap::new();
    for i in support::results::hlog_intervals(path) {
        let h = &i.histogram;
        let key = (i.start.as_secs(), i.tag);
        assert!(out
            .insert(key, (h.len(), h.value_at_quantile(0.99)))
            .is_none());
    }
    out
}

/// Python's `hdrh` reads the log back with the same seconds, tags and counts.
fn check_with_hdrh(path: &Path, logged: &BTreeMap<(u64, String), (u64, u64)>) {
    let have = Command::new("python3")
        .args(["-c", "import hdrh.log"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("FLEETBENCH_REQUIRE_BROKERS").is_none(),
            "FLEETBENCH_REQUIRE_BROKERS is set but Python's hdrh is not installed \
             (pip install hdrhistogram)"
        );
        eprintln!("skipped the hdrh check: Python's hdrh is not installed");
        return;
    }
    let script = r#"
import sys
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
reader = HistogramLogReader(sys.argv[1], HdrHistogram(1, 3600000000, 3))
while True:
    h = reader.get_next_interval_histogram()
    if h is None:
        break
    start = round(h.get_start_time_stamp() / 1000.0 - reader.start_time_sec)
    print(start, h.get_tag(), h.get_total_count())
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Counts only: hdrh rounds a percentile's rank differently from the Rust and Java ports.
    let read: BTreeMap<(u64, String), u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n = |i: usize| f[i].parse::<u64>().unwrap();
            ((n(0), f[1].to_owned()), n(2))
        })
        .collect();
    let want: BTreeMap<(u64, String), u64> = logged
        .iter()
        .map(|(k, (count, _))| (k.clone(), *count))
        .collect();
    assert_eq!(read, want);
}

/// HdrHistogram's own `HistogramLogProcessor` (Debian's `libhdrhistogram-java`) adds the
/// send_response intervals of the knee's second alone to that second's count.
fn check_with_log_processor(path: &Path, second: &TimelineRow, out_dir: &Path) {
    const JAR: &str = "/usr/share/java/hdrhistogram.jar";
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(java && Path::new(JAR).is_file()) {
        assert!(
            std::env::var("FLEETBENCH_REQUIRE_HDRHISTOGRAM_JAVA").as_deref() != Ok("1"),
            "FLEETBENCH_REQUIRE_HDRHISTOGRAM_JAVA=1 but java or {JAR} is missing"
        );
        eprintln!("skipped the HistogramLogProcessor check: java or {JAR} is missing");
        return;
    }
    let base = out_dir.join("knee");
    let from = (second.t - 1).to_string();
    let to = format!("{}.5", second.t - 1);
    let out = Command::new("java")
        .args(["-cp", JAR, "org.HdrHistogram.HistogramLogProcessor", "-i"])
        .arg(path)
        .args(["-tag", "send_response", "-start", &from, "-end", &to])
        .args(["-outputValueUnitRatio", "1000", "-o"])
        .arg(&base)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hgrm = std::fs::read_to_string(base.with_extension("hgrm")).unwrap();
    let l = second.latency_of("send_response").unwrap();
    let total = format!("Total count    = {:>12}", l.count);
    assert!(hgrm.contains(&total), "{total} not in\n{hgrm}");
    let max = format!("Max     = {:>12.3}", l.max_us as f64 / 1000.0);
    assert!(hgrm.contains(&max), "{max} not in\n{hgrm}");
}

/// The binary, with no shard or start time inherited (the shard comes from each test).
fn bin() -> tokio::process::Command {
    support::bin_async()
}

fn read(path: &Path) -> Summary {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_timeline_adds_each_seconds_histograms_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ca = support::chain();
    write_ca_dir(&dir.path().join("ca"), &ca).unwrap();
    let server_ca = support::chain();
    let hub = support::hub(&server_ca, &[ca.as_ref()]).await;
    hub.hub
        .registry
        .register_ca_signed(support::ids("device", 20).iter());
    let roots = dir.path().join("server-root.pem");
    std::fs::write(&roots, pem("CERTIFICATE", server_ca.root().cert())).unwrap();
    let scenario = dir.path().join("fleet.toml");
    std::fs::write(
        &scenario,
        format!(
            "name = \"sharded\"\n[target]\nhub = \"remote\"\naddress = \"{}\"\n\
             server-name = \"localhost\"\nca-file = \"{}\"\n[fleet]\ndevices = 20\nca-dir = \"{}\"\n\
             [connect]\nrate = 100.0\n[messages]\ncount = 25\ninterval = \"100ms\"\n",
            hub.mqtt,
            roots.display(),
            dir.path().join("ca").display()
        ),
    )
    .unwrap();
    let start_at =
        humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(2)).to_string();
    let results: Vec<PathBuf> = (0..2)
        .map(|k| dir.path().join(format!("results-{k}")))
        .collect();
    let runs = results.iter().enumerate().map(|(k, out)| {
        bin()
            .args(["run", "--quiet", "--start-at", &start_at, "--shard"])
            .arg(format!("{k}/2"))
            .arg("--results")
            .arg(out)
            .arg(&scenario)
            .output()
    });
    for out in futures::future::join_all(runs).await {
        let out = out.unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Each results root holds one run directory.
    let runs: Vec<PathBuf> = results
        .iter()
        .map(|r| support::results::run_dir(r))
        .collect();
    let merged_dir = dir.path().join("merged");
    let out = bin()
        .arg("merge")
        .args(&runs)
        .arg("-o")
        .arg(&merged_dir)
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged = read(&merged_dir.join("summary.json"));
    let shards: Vec<Summary> = runs.iter().map(|r| read(&r.join("summary.json"))).collect();
    check_merged_seconds(&merged, &shards);
    // The merge's interval log holds the same seconds.
    let logged = read_hlog(&merged_dir.join("latency.hlog"));
    let want: usize = merged.timeline.iter().map(|r| r.latency.len()).sum();
    assert_eq!(logged.len(), want);
}

/// Every merged second's percentiles are those of the shards' histograms of that wall-clock
/// second added together.
fn check_merged_seconds(merged: &Summary, shards: &[Summary]) {
    let start = humantime::parse_rfc3339_weak(&merged.started_at).unwrap();
    let mut union: BTreeMap<(u64, String), hdrhistogram::Histogram<u64>> = BTreeMap::new();
    let mut planned: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for s in shards {
        let at = humantime::parse_rfc3339_weak(&s.started_at).unwrap();
        let shift = at.duration_since(start).unwrap().as_secs_f64().round() as u64;
        for r in &s.timeline {
            let p = planned.entry(r.t + shift).or_default();
            p.0 += r.planned_connects.expect("a rate plans its connects");
            p.1 += r.planned_sends.expect("an open model plans its sends");
            for (p, l) in &r.latency {
                union
                    .entry((r.t + shift, p.clone()))
                    .or_insert_with(new_histogram)
                    .add(l.decode().unwrap())
                    .unwrap();
            }
        }
    }
    let mut seen = 0;
    for r in &merged.timeline {
        for (p, l) in &r.latency {
            let h = &union[&(r.t, p.clone())];
            let want = [0.5, 0.9, 0.99].map(|q| h.value_at_quantile(q));
            assert_eq!([l.p50_us, l.p90_us, l.p99_us], want, "{p} at {} s", r.t);
            assert_eq!((l.count, l.max_us), (h.len(), h.max()), "{p} at {} s", r.t);
            seen += 1;
        }
    }
    assert_eq!(seen, union.len());
    // The fleet's plan is the shards' plans added up, second by second: 20 connects in all.
    for r in &merged.timeline {
        let (connects, sends) = planned[&r.t];
        assert!(
            (r.planned_connects.unwrap() - connects).abs() < 1e-6,
            "{r:?}"
        );
        assert!((r.planned_sends.unwrap() - sends).abs() < 1e-6, "{r:?}");
    }
    let connects: f64 = merged
        .timeline
        .iter()
        .filter_map(|r| r.planned_connects)
        .sum();
    assert!((connects - 20.0).abs() < 1e-6, "{connects}");
    let sends: u64 = merged
        .timeline
        .iter()
        .filter_map(|r| r.latency_of("publish_ack"))
        .map(|l| l.count)
        .sum();
    assert_eq!(sends, 20 * 25);
    assert!(
        merged
            .timeline
            .iter()
            .filter(|r| r.latency_of("publish_ack").is_some())
            .count()
            >= 2
    );
}
