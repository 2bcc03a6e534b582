//! Issue 14, "Done when": a stages ramp against an embedded hub with a tier quota shows its
//! knee at the right second. Sessions hold below an S1 hub's 100 sends/s, then step past it;
//! the first second whose p99 climbs well past the early seconds' is the second the offered
//! rate crossed the quota (computed here from the stages), within one second, in summary.json
//! and timeline.csv alike, and report.html draws it with the planned rate and a heat map.

use std::path::{Path, PathBuf};
use std::process::Command;

use fleetbench::metrics::{Summary, TimelineRow};

/// Sends per second the S1 x 1 hub accepts.
const QUOTA: f64 = 100.0;
/// Each session sends every 100 ms.
const PER_SESSION: f64 = 10.0;
/// Stages: (seconds, sessions at the end). 8 sessions (80/s) for 7 s, a step to 30 (300/s) in
/// a quarter of a second, held a second, then down to none.
const STAGES: [(f64, u64); 5] = [(1.0, 8), (6.0, 8), (0.25, 30), (1.0, 30), (0.5, 0)];
/// A second's p99 past this many times the early seconds' worst marks the knee...
const K: f64 = 5.0;
/// ...and past this at least, so that a quiet start's microseconds do not make noise a knee.
const FLOOR_MS: f64 = 50.0;

fn scenario() -> String {
    let mut s = String::from(
        "name = \"knee\"\ndescription = \"A step past an S1 hub's 100 sends/s\"\n\
         [target]\ntier = \"S1\"\nunits = 1\n\
         [messages]\ninterval = \"100ms\"\ntimeout = \"20s\"\n\
         [run]\nmax-duration = \"30s\"\ngrace = \"20s\"\n",
    );
    for (secs, sessions) in STAGES {
        s += &format!(
            "[[stages]]\nduration = \"{}ms\"\nsessions = {sessions}\n",
            secs * 1000.0
        );
    }
    s
}

/// When the offered send rate (open sessions x sends per session per second, the sessions
/// moving linearly within each stage) first passes the quota, in seconds since the start.
fn crossing() -> f64 {
    let (mut start, mut level) = (0.0, 0.0);
    for (secs, sessions) in STAGES {
        let (from, to) = (level * PER_SESSION, sessions as f64 * PER_SESSION);
        if from <= QUOTA && to > QUOTA {
            return start + secs * (QUOTA - from) / (to - from);
        }
        start += secs;
        level = sessions as f64;
    }
    panic!("the stages never pass the quota");
}

/// The first row whose p99 passes the knee threshold, given (t, p99 ms) per row.
fn knee(p99s: &[(u64, f64)], crossing_row: u64) -> (u64, f64) {
    // The early seconds: those wholly before the crossing (the first, filling up, left out).
    let early = p99s
        .iter()
        .filter(|(t, _)| *t >= 2 && *t < crossing_row)
        .map(|p| p.1)
        .fold(0.0, f64::max);
    let threshold = (K * early).max(FLOOR_MS);
    let knee = p99s
        .iter()
        .find(|(_, p)| *p > threshold)
        .unwrap_or_else(|| panic!("no second past {threshold} ms: {p99s:?}"));
    (knee.0, threshold)
}

fn p99_ms(r: &TimelineRow) -> Option<(u64, f64)> {
    let l = r.latency_of("send_response")?;
    Some((r.t, l.p99_us as f64 / 1000.0))
}

/// Runs the scenario through the binary; its run directory and summary.
fn run(dir: &Path) -> (PathBuf, Summary) {
    let file = dir.join("knee.toml");
    std::fs::write(&file, scenario()).unwrap();
    let results = dir.join("results");
    let out = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .args(["run", "--quiet", "--results"])
        .arg(&results)
        .arg(&file)
        .env_remove("FLEETBENCH_SHARD")
        .env_remove("FLEETBENCH_SHARDS")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("FLEETBENCH_START_AT")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = crate::support::results::run_dir(&results);
    let s = fleetbench::report::read_summary(&run).unwrap();
    (run, s)
}

#[test]
fn a_step_past_the_quota_shows_its_knee_at_the_second_it_crossed() {
    let dir = tempfile::tempdir().unwrap();
    let (run, s) = run(dir.path());
    let cross = crossing();
    // A row t holds the second from t - 1 to t.
    let crossing_row = cross.floor() as u64 + 1;
    assert_eq!(crossing_row, 8, "{cross}");

    let p99s: Vec<(u64, f64)> = s.timeline.iter().filter_map(p99_ms).collect();
    let (at, threshold) = knee(&p99s, crossing_row);
    assert!(
        at.abs_diff(crossing_row) <= 1,
        "knee at {at} s (p99 past {threshold:.1} ms), the rate crossed {QUOTA}/s at {cross:.2} s: \
         {p99s:?}"
    );
    // Every sample was acknowledged: the knee is queueing at the hub, not loss.
    assert_eq!(s.counts.messages_acked, s.counts.messages_sent);

    // The planned rate in the timeline crosses the quota in the same second.
    let planned: Vec<(u64, Option<f64>)> =
        s.timeline.iter().map(|r| (r.t, r.planned_sends)).collect();
    let first_over = planned
        .iter()
        .find(|(_, p)| p.is_some_and(|p| p > QUOTA))
        .map(|(t, _)| *t);
    assert_eq!(first_over, Some(crossing_row), "{planned:?}");

    check_csv(&run, &p99s, crossing_row, at);

    // report.html: the latency chart with the planned rate beside the achieved, a heat map.
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    let chart = figure(&html, "latency-over-time-send_response");
    assert!(chart.contains("acks/s planned (right axis)"), "{chart}");
    assert!(
        chart.contains("latency (s)"),
        "p99 past a second: the axis in s"
    );
    let heat = figure(&html, "heatmap-send_response");
    assert!(heat.contains("\nsamples\n</text>"), "{heat}");
    check_labels(&html);
    check_in_browser(&run.join("report.html"), dir.path());
    if let Ok(keep) = std::env::var("FLEETBENCH_KNEE_REPORT") {
        std::fs::copy(run.join("report.html"), keep).unwrap();
    }
}

/// timeline.csv gives the same seconds, the same knee (at `at`) and the planned column.
fn check_csv(run: &Path, p99s: &[(u64, f64)], crossing_row: u64, at: u64) {
    let csv = std::fs::read_to_string(run.join("timeline.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (t, p99, plan) = (
        col("t_secs"),
        col("send_response_p99_us"),
        col("planned_sends"),
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let from_csv: Vec<(u64, f64)> = rows
        .iter()
        .filter(|c| !c[p99].is_empty())
        .map(|c| {
            (
                c[t].parse().unwrap(),
                c[p99].parse::<f64>().unwrap() / 1000.0,
            )
        })
        .collect();
    assert_eq!(from_csv, p99s);
    assert_eq!(knee(&from_csv, crossing_row).0, at);
    let csv_planned: f64 = rows[crossing_row as usize - 1][plan].parse().unwrap();
    assert!(csv_planned > QUOTA, "{csv_planned}");
}

/// Every chart's text stays inside its 560 px wide SVG (the last x label included), and no
/// latency label reads like "3000.00" (seconds past 1,000 ms, decimals as the axis needs).
fn check_labels(html: &str) {
    let mut seen = 0;
    for svg in html.split("<svg").skip(1) {
        let svg = &svg[..svg.find("</svg>").unwrap()];
        for text in svg.split("<text ").skip(1) {
            let attr = |name: &str| {
                let at = text
                    .find(&format!("{name}=\""))
                    .map(|i| i + name.len() + 2)?;
                Some(&text[at..at + text[at..].find('"')?])
            };
            let content = text[text.find('>').unwrap() + 1..text.find("</text>").unwrap()].trim();
            let (Some(x), Some(size)) = (attr("x"), attr("font-size")) else {
                continue;
            };
            let (x, size): (f64, f64) = (x.parse().unwrap(), size.parse().unwrap());
            // Sans-serif digits and letters are at most about 0.6 em wide on average.
            let width = 0.6 * size * content.chars().count() as f64;
            let (left, right) = match attr("text-anchor") {
                Some("middle") => (x - width / 2.0, x + width / 2.0),
                Some("end") => (x - width, x),
                _ => (x, x + width),
            };
            if attr("transform").is_none() {
                assert!(
                    left >= 0.0 && right <= 560.0,
                    "{content:?} from {left:.0} to {right:.0} px"
                );
            }
            let long_decimal =
                content.split('.').next().is_some_and(|whole| {
                    whole.len() >= 4 && whole.chars().all(|c| c.is_ascii_digit())
                }) && content.contains('.');
            assert!(!long_decimal, "label {content:?}");
            seen += 1;
        }
    }
    assert!(seen > 100, "{seen} labels");
}

/// Headless Chromium renders every chart of the report, the heat map's cells included, with no
/// console message (skipped without a browser, unless `FLEETBENCH_REQUIRE_BROWSER=1`).
fn check_in_browser(page: &Path, dir: &Path) {
    if !crate::report_html::browser_available() {
        return;
    }
    let (dom, console) = crate::report_html::chromium(page, &dir.join("profile"), &["--dump-dom"]);
    assert!(console.is_empty(), "console messages: {console:#?}");
    let html = std::fs::read_to_string(page).unwrap();
    let names: Vec<&str> = html
        .split("data-chart=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert!(names.len() >= 15, "{names:?}");
    for name in names {
        let chart = figure(&dom, name);
        assert!(
            chart.contains("<svg") && chart.contains("<polyline"),
            "{name}"
        );
        if name.starts_with("heatmap-") {
            assert!(chart.matches("<rect").count() > 50, "{name}: too few cells");
        }
    }
}

/// The `<figure>` of chart `name` in a report.
fn figure<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html
        .find(&format!("data-chart=\"{name}\""))
        .unwrap_or_else(|| panic!("no chart {name}"));
    &html[start..start + html[start..].find("</figure>").unwrap()]
}
