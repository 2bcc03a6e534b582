//! Issues 8 and 13: IoT Hub's throttling rehearsed on the embedded hub and recognised in the
//! report on evidence (a rate held flat below what was offered, throttle-coded refusals), not
//! on a stalled hub; saturation only on sustained evidence; peak sessions and timer lag of runs
//! too short for the generator's ticker.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fleetbench::metrics::Summary;

use crate::support::hub_serve::HubServe;
use crate::support::walkthrough::text;
use crate::support::{self, openmetrics, remote_run, results as run_results};

fn fleetbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fleetbench"))
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The only run directory under `results`, its summary and its report.html.
fn results(results: &Path) -> (Summary, String) {
    let dir = run_results::run_dir(results);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    (fleetbench::report::read_summary(&dir).unwrap(), html)
}

/// `fleetbench run --quiet` of an inline scenario; its output, summary and report.html.
fn run(dir: &Path, scenario: &str, extra: &[&str]) -> (Output, Summary, String) {
    let file = dir.join("scenario.toml");
    std::fs::write(&file, scenario).unwrap();
    let out_dir = dir.join("results");
    let out = fleetbench()
        .args(["run", "--quiet", "--results", p(&out_dir)])
        .args(extra)
        .arg(&file)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    let (summary, html) = results(&out_dir);
    (out, summary, html)
}

fn assert_neither_throttled_nor_saturated(out: &Output, s: &Summary, html: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s.throttling, None, "{stdout}");
    assert!(!s.generator.saturated, "{:?}", s.generator);
    assert!(!stdout.contains("Throttling"), "{stdout}");
    assert!(!stdout.contains("SATURATED"), "{stdout}");
    assert!(!html.contains("id=\"throttling\""));
}

#[test]
fn an_f1_hub_overloaded_from_the_first_second_is_throttling_in_text_and_html() {
    // F1 accepts 100 sends/s (and 100 new connections/s), queueing 2 s before it refuses.
    // 300 sessions sending once a second offer 300/s from the first second: acknowledgements
    // are held at 100/s from the start, and the hub disconnects sessions past its queue.
    let dir = tempfile::tempdir().unwrap();
    let (out, s, html) = run(
        dir.path(),
        "name = \"f1-overload\"\n[target]\ntier = \"F1\"\n[fleet]\ndevices = 300\n\
         [connect]\nrate = 300\ntimeout = \"20s\"\n\
         [messages]\ncount = 6\ninterval = \"1s\"\ntimeout = \"20s\"\n\
         [run]\nmax-duration = \"60s\"\ngrace = \"20s\"\n",
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let t = s
        .throttling
        .as_ref()
        .unwrap_or_else(|| panic!("no throttling found: {stdout}\n{:#?}", s.timeline));
    assert!(t.began_at_secs <= 2, "{t:?}");
    // 300 connects planned at 300/s against F1's 100 new connections/s: short of the plan, and
    // the report says who limited it.
    assert!(stdout.contains("connects fell short"), "{stdout}");
    assert!(stdout.contains("the hub throttled it"), "{stdout}");
    let acks = t
        .pinned
        .iter()
        .find(|p| p.what == "acknowledgements")
        .unwrap_or_else(|| panic!("acknowledgements not pinned: {t:?}"));
    assert!((90.0..=110.0).contains(&acks.per_sec), "{acks:?}");
    // The hub's queue made acknowledgements ever later. (What was offered is averaged over a
    // window that runs into the drain after the last send, so it is not compared here.)
    assert!(acks.latency_last_us > 2 * acks.latency_first_us, "{acks:?}");
    assert!(acks.to_secs - acks.from_secs >= 3, "{acks:?}");
    // The hub's own count of its throttling disconnects, which the client saw as closes.
    let hub = s.hub.as_ref().unwrap();
    assert!(hub.throttled.unwrap() > 0, "{hub:?}");
    assert_eq!(t.hub_throttled, hub.throttled);
    assert_eq!(hub.lost, 0);
    // In words, in both reports.
    let began = format!("Throttling  began {} s into the run", t.began_at_secs);
    assert!(stdout.contains(&began), "{stdout}");
    assert!(stdout.contains("acknowledgements held at"), "{stdout}");
    assert!(
        stdout.contains("hub throttling disconnects/refusals"),
        "{stdout}"
    );
    assert!(
        html.contains("<h2 id=\"throttling\">Throttling</h2>"),
        "{html}"
    );
    assert!(html.contains(&format!("began {} s into the run", t.began_at_secs)));
    assert!(html.contains("acknowledgements held at"));
}

#[test]
fn a_healthy_quickstart_is_neither_throttled_nor_saturated() {
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
    neither_in_one_of_three(|| {
        let dir = tempfile::tempdir().unwrap();
        let (out, s, html) = run(
            dir.path(),
            &std::fs::read_to_string(&quickstart).unwrap(),
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(s.counts.messages_acked, 500);
        assert!(s.generator.timer_lag_p99_us.is_some());
        assert!(s.generator.peak_sessions > 0);
        (out, s, html)
    });
}

#[test]
fn a_run_shorter_than_a_tick_counts_its_peak_and_does_not_invent_a_lag() {
    // One device, one message: done before the 100 ms ticker first fires.
    let dir = tempfile::tempdir().unwrap();
    let (out, s, html) = run(
        dir.path(),
        "name = \"blink\"\n[fleet]\ndevices = 1\n[messages]\ncount = 1\n",
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s.counts.messages_acked, 1, "{stdout}");
    assert_eq!(s.generator.peak_sessions, 1, "{stdout}");
    assert!(stdout.contains("peak sessions 1"), "{stdout}");
    if s.duration_secs < 0.1 {
        assert_eq!(s.generator.timer_lag_p99_us, None, "{stdout}");
        assert!(stdout.contains("timer lag p99 not sampled"), "{stdout}");
        assert!(html.contains("not sampled"));
    }
}

/// A standalone `hub serve` with `devices` CA-signed devices registered; its address and the CA.
fn standalone_hub(dir: &Path, devices: u64) -> (HubServe, String, PathBuf) {
    let (ca, state) = (dir.join("ca"), dir.join("hub"));
    let ok = |args: &[&str]| {
        let out = fleetbench().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    };
    ok(&["pki", "init", "--out", p(&ca)]);
    let root = ca.join("root.cer");
    ok(&[
        "hub",
        "ca",
        "add",
        "--state",
        p(&state),
        "--name",
        "t",
        "--cert",
        p(&root),
        "--verified",
    ]);
    let n = devices.to_string();
    ok(&["hub", "device", "add", "--state", p(&state), "--count", &n]);
    let hub = HubServe::start(HubServe::ephemeral(&state));
    let addr = hub.mqtt();
    (hub, addr, ca)
}

/// The run's counters of messages sent and acknowledged, from its live metrics.
fn counters(metrics: SocketAddr) -> (f64, f64) {
    let body = openmetrics::scrape(metrics);
    let value = |name: &str| openmetrics::value(&body, name).unwrap_or(0.0);
    (
        value("fleetbench_messages_sent_total"),
        value("fleetbench_messages_acked_total"),
    )
}

#[cfg(unix)]
#[test]
fn a_hub_stalled_for_two_seconds_is_neither_throttling_nor_saturation() {
    // A stall is never throttling. Whether the generator saturated is the machine's to say: on a
    // shared 2-core machine other work can make its timers late for seconds on end, which it
    // reports, rightly. So up to three runs, and one must show a healthy generator.
    neither_in_one_of_three(stalled_run);
}

/// Runs `attempt` up to three times: none may report Throttling, and one must report neither
/// Throttling nor SATURATED.
fn neither_in_one_of_three(attempt: impl Fn() -> (Output, Summary, String)) {
    let mut why = Vec::new();
    for _ in 0..3 {
        let (out, s, html) = attempt();
        assert_eq!(
            s.throttling,
            None,
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        if !s.generator.saturated {
            assert_neither_throttled_nor_saturated(&out, &s, &html);
            return;
        }
        why.push(format!("{:?}", s.generator.saturation_reasons));
    }
    panic!("saturated in every run: {why:?}");
}

#[cfg(unix)]
fn stalled_run() -> (Output, Summary, String) {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr, ca) = standalone_hub(dir.path(), 20);
    let scenario = dir.path().join("stall.toml");
    std::fs::write(
        &scenario,
        format!(
            "name = \"stall\"\n{}[fleet]\ndevices = 20\n\
             [connect]\nrate = 100\n[messages]\ncount = 30\ninterval = \"200ms\"\ntimeout = \"10s\"\n",
            remote_run::target(&addr, &dir.path().join("hub/server-root.pem"))
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("results");
    // The run announces its metrics address on stderr once it is set up.
    let (run, metrics, log) = remote_run::spawn_with_metrics(&ca, &out_dir, &scenario);
    // Once every device is sending, freeze the hub for two seconds: until the fleet (20
    // devices, 5 messages/s each, 16 in flight at most) has sent 200 more messages.
    let deadline = Instant::now() + Duration::from_secs(60);
    while counters(metrics).1 < 100.0 {
        assert!(Instant::now() < deadline, "no acknowledgements");
    }
    assert!(hub.signal("-STOP"), "kill -STOP");
    let sent = counters(metrics).0;
    loop {
        let now = counters(metrics);
        if now.0 >= sent + 200.0 {
            break;
        }
        assert!(Instant::now() < deadline, "sends stopped: {now:?}");
    }
    assert!(hub.signal("-CONT"), "kill -CONT");
    let out = run.wait_with_output().unwrap();
    let log = log.join().unwrap();
    drop(hub);
    let (s, html) = results(&out_dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s.counts.messages_acked, 600, "{stdout}\n{log}");
    // The stall is in the response times, charged from the schedule ...
    let response = s.phase("send_response").unwrap();
    assert!(response.max_us >= 1_500_000, "{response:?}");
    (out, s, html)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s1_hub_shapes_a_growing_send_rate_and_the_report_says_when() {
    // S1 x 1 accepts 100 sends/s. Sessions ramp to 60 over 8 s, each sending 5/s: the planned
    // rate passes the quota after about 3 s.
    let plan = support::plan(
        r#"
        [target]
        tier = "S1"
        units = 1
        [[stages]]
        duration = "8s"
        sessions = 60
        [messages]
        interval = "200ms"
        timeout = "20s"
        [run]
        max-duration = "60s"
        grace = "20s"
        "#,
    );
    let warnings = plan.quota_warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("300 messages/s") && w.contains("100 device-to-cloud sends/s")),
        "{warnings:?}"
    );

    let (report, _dir) = support::run(&plan).await;
    let s = &report.summary;
    let t = s
        .throttling
        .as_ref()
        .unwrap_or_else(|| panic!("no throttling found: {:?}", s.timeline));
    assert!((2..=8).contains(&t.began_at_secs), "{t:?}");
    let acks = &t.pinned[0];
    assert_eq!(acks.what, "acknowledgements", "{t:?}");
    assert!(
        (80.0..=120.0).contains(&acks.per_sec),
        "the hub held the rate near its quota: {t:?}"
    );
    assert!(acks.offered_per_sec > acks.per_sec, "{t:?}");
    let mut text = Vec::new();
    fleetbench::report::write_text(&mut text, s).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("Throttling"), "{text}");
    // Nothing acknowledged was lost on the way.
    assert_eq!(s.hub.as_ref().unwrap().lost, 0);
}

#[test]
fn quota_warnings_name_the_tier_and_the_rates() {
    let plan = support::plan("[target]\ntier = \"S2\"\nunits = 2\n[connect]\nrate = 1000\n");
    let w = plan.quota_warnings();
    assert!(
        w.iter()
            .any(|w| w.contains("1000 devices/s") && w.contains("S2 x 2") && w.contains("240")),
        "{w:?}"
    );
    let quiet = support::plan(
        "[target]\ntier = \"S3\"\n[connect]\nrate = 1000\n[messages]\ninterval = \"10s\"\n",
    );
    assert!(quiet.quota_warnings().is_empty());
    let none = support::plan("[connect]\nrate = 1000\n");
    assert!(none.quota_warnings().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_connects_past_the_f1_queue_are_refused_as_throttled() {
    // F1 accepts 100 new connections/s and queues 2 s of them: 1000 devices at 1000/s, with
    // every handshake allowed in flight at once, leave hundreds past the queue, detached with
    // com.microsoft:device-container-throttled.
    let plan = support::plan(
        "[target]\ntier = \"F1\"\n[protocol]\nkind = \"amqp\"\n[fleet]\ndevices = 1000\n\
         [connect]\nrate = 1000\nmax-handshakes = 1000\ntimeout = \"20s\"\n[messages]\ncount = 1\ntimeout = \"20s\"\n\
         [run]\nmax-duration = \"60s\"\n",
    );
    let (report, _dir) = support::run(&plan).await;
    let s = &report.summary;
    let throttled = s.failures_of(fleetbench::metrics::FailureKind::Throttled);
    assert!(
        throttled > 0,
        "{:?} {:?} in {} s",
        s.failures,
        s.counts,
        s.duration_secs
    );
    let hub = s.hub.as_ref().unwrap();
    assert!(hub.throttled.unwrap() >= throttled, "{hub:?}");
    let t = s.throttling.as_ref().expect("throttling found");
    assert_eq!(t.throttled_refusals, throttled);
    assert!(
        t.evidence
            .iter()
            .any(|e| e.contains("refused with a throttling condition")),
        "{t:?}"
    );
}
