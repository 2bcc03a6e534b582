//! Issue 6: the results directory's contract (schema, CSV, interval log), `report` and
//! `compare` through the binary.

use std::path::Path;
use std::process::Command;

use fleetbench::metrics::{decode_histogram, FailureKind, Summary};

use crate::support;

const SMALL: &str = r#"
[fleet]
devices = 20
[messages]
count = 3
interval = "10ms"
[thresholds]
"publish_ack.p99" = "< 60s"
"errors.rate" = "< 0.5"
"#;

fn fleetbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fleetbench"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_json_from_a_real_run_validates_against_the_schema() {
    let (report, _dir) = support::run(&support::plan(SMALL)).await;
    let text = std::fs::read_to_string(report.dir.join("summary.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator =
        jsonschema::validator_for(&support::results::schema()).expect("schema compiles");
    let errors: Vec<_> = validator
        .iter_errors(&json)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // The schema is strict enough to catch a broken document.
    let mut broken = json;
    broken["counts"]["messages_acked"] = serde_json::json!(-1);
    broken["phases"][0]["name"] = serde_json::json!("warp_drive");
    assert!(!validator.is_valid(&broken));

    let back: Summary = serde_json::from_str(&text).unwrap();
    // The scenario's two thresholds and the default check it does not override.
    assert_eq!(back.thresholds.len(), 3);
    assert_eq!(back.thresholds.iter().filter(|t| t.default).count(), 1);
    assert!(
        back.thresholds.iter().all(|t| t.passed),
        "{:?}",
        back.thresholds
    );
    for p in &back.phases {
        let h = decode_histogram(&p.histogram).unwrap();
        assert_eq!(h.len(), p.count, "{}", p.name);
        assert_eq!(h.value_at_quantile(0.99), p.p99_us, "{}", p.name);
    }
    assert_eq!(back.phase("publish_ack").unwrap().count, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_csv_and_interval_log_hold_the_run() {
    let (report, _dir) = support::run(&support::plan(SMALL)).await;
    let s = &report.summary;
    let csv = std::fs::read_to_string(report.dir.join("timeline.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<_> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[0], "t_secs");
    for k in FailureKind::ALL {
        assert!(
            header.contains(&format!("errors_{}", k.name()).as_str()),
            "{header:?}"
        );
    }
    let health = ["active_sessions", "cpu_cores", "rss_kib", "timer_lag_us"];
    let at = header.iter().position(|h| *h == "active_sessions").unwrap();
    assert_eq!(header[at..at + 4], health);
    // Then each phase's count and percentiles of that second.
    for p in &s.phases {
        for c in ["count", "p50_us", "p90_us", "p99_us", "max_us"] {
            let name = format!("{}_{c}", p.name);
            assert!(header.contains(&name.as_str()), "{name} not in {header:?}");
        }
    }
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), s.timeline.len());
    assert!(rows.iter().all(|r| r.len() == header.len()));
    // The rows, the last partial second included, add up to the run's totals.
    let acks: u64 = rows.iter().map(|r| r[4].parse::<u64>().unwrap()).sum();
    assert_eq!(acks, s.counts.messages_acked, "{csv}");

    // One interval per second per phase; a tag's intervals add up to the phase's histogram.
    let mut seen: std::collections::BTreeMap<String, u64> = Default::default();
    for i in support::results::hlog_intervals(&report.dir.join("latency.hlog")) {
        assert!(i.duration <= std::time::Duration::from_secs(1), "{}", i.tag);
        *seen.entry(i.tag).or_default() += i.histogram.len();
    }
    let counts: std::collections::BTreeMap<String, u64> =
        s.phases.iter().map(|p| (p.name.clone(), p.count)).collect();
    assert_eq!(seen, counts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_of_a_run_with_itself_reports_no_change_and_a_slower_run_regresses() {
    let (report, dir) = support::run(&support::plan(SMALL)).await;
    let out = fleetbench()
        .arg("compare")
        .arg(&report.dir)
        .arg(&report.dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("within 10.0%"), "{stdout}");
    assert!(!stdout.contains("REGRESSED"), "{stdout}");
    let changes: Vec<_> = stdout
        .lines()
        .filter(|l| l.trim_end().ends_with('%'))
        .collect();
    assert!(!changes.is_empty(), "{stdout}");
    assert!(
        changes.iter().all(|l| l.trim_end().ends_with(" 0.0%")),
        "{stdout}"
    );
    for line in stdout.lines() {
        assert!(line.chars().count() <= 100, "over 100 columns: {line}");
    }

    // Half the acknowledgement rate is a regression beyond 10%, and exits 1.
    let mut slower = report.summary.clone();
    slower.acks_per_sec /= 2.0;
    slower.rates.acks.per_sec = slower.rates.acks.per_sec.map(|r| r / 2.0);
    let slower_path = dir.path().join("slower.json");
    std::fs::write(&slower_path, serde_json::to_vec(&slower).unwrap()).unwrap();
    let out = fleetbench()
        .arg("compare")
        .arg(&report.dir)
        .arg(&slower_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("throughput acks"), "{stdout}");
    // ... but within a 60% tolerance.
    let out = fleetbench()
        .args(["compare", "--tolerance", "60%"])
        .arg(&report.dir)
        .arg(&slower_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));

    let out = fleetbench()
        .arg("compare")
        .arg(&report.dir)
        .arg(dir.path().join("nope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_re_renders_text_and_html_from_a_results_directory() {
    let (report, _dir) = support::run(&support::plan(SMALL)).await;
    let html = report.dir.join("report.html");
    let original = std::fs::read_to_string(&html).unwrap();
    std::fs::remove_file(&html).unwrap();
    let out = fleetbench()
        .arg("report")
        .arg(&report.dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(std::fs::read_to_string(&html).unwrap(), original);
    assert_eq!(
        stdout,
        std::fs::read_to_string(report.dir.join("report.txt")).unwrap()
    );
    assert!(
        stdout.contains("Checks      3 passed, 0 failed"),
        "{stdout}"
    );
    for name in fleetbench::report::chart_names(&report.summary) {
        assert!(
            original.contains(&format!("data-chart=\"{name}\"")),
            "{name}"
        );
    }
}

/// Debian's `libhdrhistogram-java` (HdrHistogram's own Java tools).
const HDR_JAR: &str = "/usr/share/java/hdrhistogram.jar";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_hlog_is_read_by_hdrhistograms_own_log_processor() {
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(java && Path::new(HDR_JAR).is_file()) {
        assert!(
            std::env::var("FLEETBENCH_REQUIRE_HDRHISTOGRAM_JAVA").as_deref() != Ok("1"),
            "FLEETBENCH_REQUIRE_HDRHISTOGRAM_JAVA=1 but java or {HDR_JAR} is missing"
        );
        return;
    }
    let (report, dir) = support::run(&support::plan(SMALL)).await;
    let out_base = dir.path().join("publish_ack");
    let out = Command::new("java")
        .args([
            "-cp",
            HDR_JAR,
            "org.HdrHistogram.HistogramLogProcessor",
            "-i",
        ])
        .arg(report.dir.join("latency.hlog"))
        .args(["-tag", "publish_ack", "-outputValueUnitRatio", "1000", "-o"])
        .arg(&out_base)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hgrm = std::fs::read_to_string(out_base.with_extension("hgrm")).unwrap();
    let p = report.summary.phase("publish_ack").unwrap();
    let total = format!("Total count    = {:>12}", p.count);
    assert!(hgrm.contains(&total), "{total} not in\n{hgrm}");
    let max = format!("Max     = {:>12.3}", p.max_us as f64 / 1000.0);
    assert!(hgrm.contains(&max), "{max} not in\n{hgrm}");
}
