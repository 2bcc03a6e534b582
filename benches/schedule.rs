//! Schedule precision: how late scheduled starts land.
//!
//! 1. sleep error: 100 tasks each wait for 10 deadlines spread at 200 arrivals a second (the
//!    quickstart's connect rate), on tokio's timer (`tokio::time::sleep_until`, the old code)
//!    and on fleetbench's clock (`load::clock::sleep_until`), in alternating rounds; lateness
//!    percentiles of each, and the process CPU time per round;
//! 2. fleet: the quickstart's fleet (100 devices at 200/s, 5 messages each 200 ms apart) against
//!    the embedded hub, in-process, a few rounds: `connect_start_lag`, `send_start_lag`,
//!    `publish_ack` and `send_response` percentiles from the run's own summary.
//!
//! The runtime is the binary's (multi-thread, one worker per core).

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::time::Duration;

use fleetbench::command::run::{run_plan, RunOptions};
use fleetbench::hub::HubConfig;
use fleetbench::load::clock;
use fleetbench::metrics::{new_histogram, LatencyHistogram, ProcessSample};
use fleetbench::scenario::{Overrides, Plan, Scenario};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const ROUNDS: usize = 5;
const TASKS: u64 = 100;
const WAITS: u64 = 10;
/// Between two deadlines of the whole set: 200 a second.
const SPACING: Duration = Duration::from_millis(5);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let only = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    if only("sleep") {
        rt.block_on(sleep_error());
    }
    if only("fleet") {
        rt.block_on(fleet());
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Timer {
    Coarse,
    Precise,
}

/// One round: every task waits for its deadlines; the lateness of each, and CPU seconds.
async fn round(timer: Timer) -> (LatencyHistogram, f64) {
    let cpu = ProcessSample::now().cpu();
    let start = Instant::now() + Duration::from_millis(20);
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            tokio::spawn(async move {
                let mut late = Vec::with_capacity(WAITS as usize);
                for k in 0..WAITS {
                    // Deadlines interleave across tasks: task t's k-th is number k * TASKS + t.
                    let n = u32::try_from(k * TASKS + t).unwrap();
                    let deadline = start + SPACING * n;
                    match timer {
                        Timer::Coarse => tokio::time::sleep_until(deadline).await,
                        Timer::Precise => clock::sleep_until(deadline).await,
                    }
                    late.push(Instant::now() - deadline);
                }
                late
            })
        })
        .collect();
    let mut h = new_histogram();
    for t in tasks {
        for d in t.await.unwrap() {
            h.saturating_record(fleetbench::metrics::micros(d));
        }
    }
    let cpu = ProcessSample::now().cpu().saturating_sub(cpu).as_secs_f64();
    (h, cpu)
}

async fn sleep_error() {
    let wall = SPACING * u32::try_from(TASKS * WAITS).unwrap();
    println!(
        "sleep error: {TASKS} tasks x {WAITS} deadlines at {}/s ({:.1} s a round), {ROUNDS} alternating rounds",
        1000 / SPACING.as_millis(),
        wall.as_secs_f64()
    );
    let mut all = [(Timer::Coarse, Vec::new()), (Timer::Precise, Vec::new())];
    for _ in 0..ROUNDS {
        for (timer, rounds) in &mut all {
            rounds.push(round(*timer).await);
        }
    }
    for (timer, rounds) in &all {
        let name = match timer {
            Timer::Coarse => "tokio timer (old)",
            Timer::Precise => "fleetbench clock",
        };
        let p50: Vec<_> = rounds
            .iter()
            .map(|(h, _)| h.value_at_quantile(0.5))
            .collect();
        let p99: Vec<_> = rounds
            .iter()
            .map(|(h, _)| h.value_at_quantile(0.99))
            .collect();
        let cpu: Vec<_> = rounds
            .iter()
            .map(|(_, c)| format!("{:.1}%", 100.0 * c / wall.as_secs_f64()))
            .collect();
        println!(
            "  {name:<18} lateness p50 {} µs (rounds {p50:?}), p99 {} µs (rounds {p99:?}), CPU {}",
            median(&p50),
            median(&p99),
            cpu.join(" / ")
        );
    }
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

const QUICKSTART: &str = r#"
[fleet]
devices = 100
[connect]
rate = 200
[messages]
count = 5
interval = "200ms"
"#;

async fn fleet() {
    let s = Scenario::parse(QUICKSTART, Path::new("bench.toml")).unwrap();
    let plan = Plan::new(
        &s,
        QUICKSTART,
        Path::new("bench.toml"),
        "bench",
        &Overrides::default(),
    )
    .unwrap();
    println!("\nfleet: 100 devices at 200/s, 5 messages 200 ms apart, embedded hub; {ROUNDS} rounds (p50 / p99, µs)");
    let phases = [
        "connect_start_lag",
        "send_start_lag",
        "publish_ack",
        "send_response",
    ];
    let mut rows: Vec<Vec<(u64, u64)>> = vec![Vec::new(); phases.len()];
    for _ in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let options = RunOptions {
            results_root: dir.path().to_owned(),
            quiet: true,
            interrupt: CancellationToken::new(),
            abort: CancellationToken::new(),
            hub: HubConfig::default(),
            metrics: None,
            shard: None,
            start_at: None,
            ca: None,
        };
        let report = run_plan(&plan, &options).await.unwrap();
        for (row, name) in rows.iter_mut().zip(phases) {
            let p = report.summary.phase(name).unwrap();
            row.push((p.p50_us, p.p99_us));
        }
    }
    for (row, name) in rows.iter().zip(phases) {
        let p50: Vec<_> = row.iter().map(|r| r.0).collect();
        let p99: Vec<_> = row.iter().map(|r| r.1).collect();
        println!(
            "  {name:<18} p50 {:>5} (rounds {p50:?})   p99 {:>5} (rounds {p99:?})",
            median(&p50),
            median(&p99)
        );
    }
}
