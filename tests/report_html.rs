//! Issue 6: `report.html` opens in headless Chromium with no console messages (no script
//! errors, no blocked fetches: the page is self-contained) and shows every chart.
//!
//! Skipped when Chromium is not installed, unless `FLEETBENCH_REQUIRE_BROWSER=1` (as in CI),
//! which makes a missing browser a failure.

use std::path::Path;
use std::process::Command;

use crate::support;

const BROWSER: &str = "chromium";

pub(crate) fn browser_available() -> bool {
    let found = Command::new(BROWSER)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("FLEETBENCH_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "FLEETBENCH_REQUIRE_BROWSER=1 but {BROWSER} is not installed"
        );
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipping: {BROWSER} is not installed");
        }
    }
    found
}

/// Runs headless Chromium on `page` with `args`; returns stdout and the console lines.
pub(crate) fn chromium(page: &Path, profile: &Path, args: &[&str]) -> (String, Vec<String>) {
    let out = Command::new(BROWSER)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_html_loads_without_console_errors_and_shows_every_chart() {
    if !browser_available() {
        return;
    }
    let plan = support::plan(
        "[fleet]\ndevices = 30\n[messages]\ncount = 8\ninterval = \"300ms\"\n\
         [thresholds]\n\"publish_ack.p99\" = \"< 60s\"\n\"connect.rate\" = \"> 1000000\"\n",
    );
    let (report, dir) = support::run(&plan).await;
    let page = report.dir.join("report.html");
    let (dom, console) = chromium(&page, &dir.path().join("profile"), &["--dump-dom"]);
    assert!(console.is_empty(), "console messages: {console:#?}");
    let names = fleetbench::report::chart_names(&report.summary);
    // Sends span over 2 s, so their latency has seconds enough for a line.
    assert!(names.len() >= 9, "{names:?}");
    assert!(
        names.contains(&"latency-over-time-send_response".to_owned()),
        "{names:?}"
    );
    for name in &names {
        let start = dom
            .find(&format!("data-chart=\"{name}\""))
            .unwrap_or_else(|| panic!("chart {name} missing from the rendered page"));
        let figure = &dom[start..start + dom[start..].find("</figure>").expect("figure closes")];
        assert!(figure.contains("<svg"), "chart {name} has no svg");
        assert!(figure.contains("<polyline"), "chart {name} draws no line");
    }
    assert!(
        dom.contains("class=\"fail\">FAIL<"),
        "the failed threshold is shown"
    );

    let shot = dir.path().join("report.png");
    let (_, console) = chromium(
        &page,
        &dir.path().join("profile2"),
        &[
            "--window-size=1280,2400",
            "--hide-scrollbars",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    assert!(console.is_empty(), "console messages: {console:#?}");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("FLEETBENCH_SCREENSHOT") {
        std::fs::copy(&shot, keep).expect("screenshot kept");
    }
}
