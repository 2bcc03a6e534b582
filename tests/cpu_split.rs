//! Issue 17: CPU measured inside each TLS handshake, full and resumed apart, client and embedded
//! hub apart, against independent counts: the whole run's CPU of the same threads from /proc (the
//! sums cannot exceed it) and each handshake's wall time (its CPU cannot exceed it).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support::walkthrough::{fleetbench, text};

const DEVICES: u64 = 8;

/// A resuming churn run of `DEVICES` devices against the embedded hub, no messages.
fn churn(duration: &str) -> String {
    format!(
        "name = \"cpu-split\"\n[target]\nhub = \"embedded\"\n[tls]\nresumption = true\n\
         [fleet]\ndevices = {DEVICES}\nid = \"device-{{n:05}}\"\n[connect]\nrate = 400.0\n\
         [churn]\nduration = \"{duration}\"\nmessages = 0\n"
    )
}

/// Runs an inline scenario from `dir` into `dir/out`; the output, and the summary and results
/// directory of the run (kept, for its reports).
pub(crate) fn run_kept(dir: &Path, toml: &str, extra: &[&str]) -> (Output, Value, PathBuf) {
    std::fs::write(dir.join("s.toml"), toml).unwrap();
    let mut args = vec!["run", "--quiet", "--results", "out", "s.toml"];
    args.extend_from_slice(extra);
    let out = fleetbench(dir, &args, &[]);
    assert_eq!(out.status.code(), Some(0), "{toml}\n{}", text(&out));
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    runs.sort();
    let last = runs.pop().unwrap();
    let summary = std::fs::read_to_string(last.join("summary.json")).unwrap();
    (out, serde_json::from_str(&summary).unwrap(), last)
}

/// `summary` validates against results/schema.json.
pub(crate) fn assert_valid(summary: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(summary)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

/// A kind's figures, checked for sense: counted, positive, and no more CPU than wall time.
fn checked<'a>(s: &Value, stat: &'a Value, phase: &str, count: u64) -> &'a Value {
    assert_eq!(stat["count"].as_u64(), Some(count), "{stat}");
    let mean = num(&stat["mean_us"], "mean_us");
    assert!(mean > 0.0 && num(&stat["p50_us"], "p50_us") > 0.0, "{stat}");
    let per_sec = num(&stat["per_cpu_second"], "per_cpu_second");
    assert!((per_sec * mean / 1e6 - 1.0).abs() < 0.01, "{stat}");
    let wall = s["phases"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == phase))
        .unwrap_or_else(|| panic!("no {phase} phase"));
    // The client's CPU of a handshake is spent within its wall time.
    assert!(
        mean <= num(&wall["mean_us"], "phase mean") * 1.01,
        "{stat} vs {wall}"
    );
    stat
}

#[test]
fn resumed_handshakes_cost_less_cpu_than_full_ones_and_the_sums_fit_in_the_runs_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let (out, s, results) = run_kept(dir.path(), &churn("1500ms"), &[]);
    let cpu = &s["cpu"];
    let per = &cpu["per_handshake"];
    let (full, resumed) = (
        cpu["full_handshakes"].as_u64().unwrap(),
        cpu["resumed_handshakes"].as_u64().unwrap(),
    );
    assert_eq!(full, DEVICES, "{cpu}");
    assert!(resumed >= 4 * DEVICES, "too few resumed handshakes: {cpu}");
    // The client clocks all of its first 256 handshakes (the full ones among them) and one in 8
    // after; the hub every one.
    let clocked = 256.min(full + resumed)
        + (256..full + resumed)
            .filter(|n| n.is_multiple_of(8))
            .count() as u64;
    let client_full = checked(&s, &per["client"]["full"], "tls_handshake", full);
    let client_resumed = checked(&s, &per["client"]["resumed"], "tls_resumed", clocked - full);
    // A resumed handshake skips the certificates' signatures and checks.
    assert!(
        num(&client_resumed["mean_us"], "") < num(&client_full["mean_us"], ""),
        "{per}"
    );
    assert!(
        num(&client_resumed["p50_us"], "") < num(&client_full["p50_us"], ""),
        "{per}"
    );
    // The hub measured its side of the same handshakes.
    let hub = &per["hub"];
    for (kind, n) in [("full", full), ("resumed", resumed)] {
        assert_eq!(hub[kind]["count"].as_u64(), Some(n), "{hub}");
        assert!(num(&hub[kind]["total_us"], "hub total") > 0.0, "{hub}");
    }
    // The sums of what each handshake cost cannot exceed the CPU of the same threads over the
    // whole run, read from /proc (10 ms ticks, truncated per thread: 50 ms of slack).
    let total = |side: &Value| {
        (num(&side["full"]["total_us"], "total") + num(&side["resumed"]["total_us"], "total")) / 1e6
    };
    let (client, server) = (total(&per["client"]), total(hub));
    let client_proc = num(&cpu["client_secs"], "client_secs");
    let server_proc = num(&cpu["server_secs"], "server_secs");
    assert!(
        client > 0.0 && client <= client_proc + 0.05,
        "{client} s vs {cpu}"
    );
    assert!(
        server > 0.0 && server <= server_proc + 0.05,
        "{server} s vs {cpu}"
    );
    // The text report shows both sides beside the /proc line, saying which is which.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("CPU inside  client full "))
        .unwrap_or_else(|| panic!("no in-handshake CPU line in\n{stdout}"));
    assert!(
        lines[at].contains(", resumed ") && lines[at].contains("/CPU-s)"),
        "{stdout}"
    );
    assert!(
        lines[at + 1].trim_start().starts_with("hub    full "),
        "{stdout}"
    );
    let note = lines[at + 2..(at + 5).min(lines.len())]
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(note.contains("the /proc figure above"), "{stdout}");
    assert!(lines.iter().all(|l| l.chars().count() <= 100), "{stdout}");
    let html = std::fs::read_to_string(results.join("report.html")).unwrap();
    assert_valid(&s);
    assert!(
        html.contains("<ul data-cpu-split>"),
        "no CPU section in report.html"
    );
}

/// A histogram of a summary's, decoded.
fn hist(v: &Value) -> hdrhistogram::Histogram<u64> {
    fleetbench::metrics::decode_histogram(v.as_str().expect("a histogram string")).unwrap()
}

/// The median of `shards`' histograms at `path` added together.
fn merged_median(shards: &[Value], path: &[&str]) -> u64 {
    let mut sum: Option<hdrhistogram::Histogram<u64>> = None;
    for s in shards {
        let h = hist(path.iter().fold(s, |v, k| &v[*k]));
        match &mut sum {
            Some(m) => m.add(&h).unwrap(),
            None => sum = Some(h),
        }
    }
    sum.unwrap().value_at_quantile(0.5)
}

#[test]
fn merge_adds_the_shards_handshake_and_cpu_figures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let init = fleetbench(d, &["pki", "init", "--out", "ca"], &[]);
    assert_eq!(init.status.code(), Some(0), "{}", text(&init));
    let toml = churn("800ms").replace("[connect]", "ca-dir = \"ca\"\n[connect]");
    let shards: Vec<Value> = (0..2)
        .map(|k| {
            let shard = format!("{k}/2");
            let out = d.join(format!("shard-{k}"));
            std::fs::create_dir(&out).unwrap();
            std::fs::write(out.join("s.toml"), &toml).unwrap();
            std::fs::create_dir(out.join("ca")).unwrap();
            for f in std::fs::read_dir(d.join("ca")).unwrap().flatten() {
                std::fs::copy(f.path(), out.join("ca").join(f.file_name())).unwrap();
            }
            run_kept(&out, &toml, &["--shard", &shard]).1
        })
        .collect();
    let files: Vec<String> = (0..2)
        .map(|k| {
            let p = d.join(format!("shard-{k}/s{k}.json"));
            std::fs::write(&p, serde_json::to_vec(&shards[k]).unwrap()).unwrap();
            p.display().to_string()
        })
        .collect();
    let out = fleetbench(d, &["merge", &files[0], &files[1], "-o", "merged"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("merged/summary.json")).unwrap())
            .unwrap();
    assert_valid(&m);
    let sum = |path: &[&str]| -> f64 {
        shards
            .iter()
            .map(|s| num(path.iter().fold(s, |v, k| &v[*k]), &path.join(".")))
            .sum()
    };
    let at = |path: &[&str]| num(path.iter().fold(&m, |v, k| &v[*k]), &path.join("."));
    // Counts and totals add; medians are the medians of the added histograms.
    for path in [
        &["cpu", "full_handshakes"][..],
        &["cpu", "resumed_handshakes"],
        &["cpu", "client_secs"],
        &["cpu", "server_secs"],
    ] {
        assert!(
            (at(path) - sum(path)).abs() < 1e-6,
            "{path:?}: {}",
            m["cpu"]
        );
    }
    for side in ["client", "hub"] {
        for kind in ["full", "resumed"] {
            let base = ["cpu", "per_handshake", side, kind];
            let path = |f: &'static str| [base[0], base[1], base[2], base[3], f];
            assert_eq!(at(&path("count")), sum(&path("count")), "{side} {kind}");
            assert!((at(&path("total_us")) - sum(&path("total_us"))).abs() < 0.011);
            let p50 = merged_median(&shards, &path("histogram_ns")) as f64 / 1e3;
            assert!((at(&path("p50_us")) - p50).abs() < 0.006, "{side} {kind}");
        }
    }
    for kind in ["full", "resumed"] {
        let k = |f: &'static str| ["handshake", kind, f];
        for f in [
            "count",
            "sessions",
            "session_bytes_to_server",
            "hello_retries",
        ] {
            assert_eq!(at(&k(f)), sum(&k(f)), "handshake.{kind}.{f}");
        }
        for f in ["bytes_to_server", "bytes_to_client", "round_trips"] {
            let total = ["handshake", kind, f, "total"];
            assert_eq!(at(&total), sum(&total), "handshake.{kind}.{f}");
            let median = merged_median(&shards, &["handshake", kind, "histograms", f]);
            assert_eq!(at(&["handshake", kind, f, "median"]) as u64, median);
        }
    }
}
