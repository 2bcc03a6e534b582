//! Issue 7: four shard processes of one fleet against one hub, merged without loss; thresholds
//! judged on the merge; shards of different scenarios or CAs refused.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use fleetbench::metrics::{decode_histogram, new_histogram, Summary};
use fleetbench::pki::store::{pem, write_ca_dir};

use crate::support;
use crate::support::walkthrough::text;

const DEVICES: u64 = 40;
const MESSAGES: u64 = 3;
const SHARDS: u64 = 4;

/// The binary, with no shard or start time inherited (the shard comes from each test).
fn bin() -> tokio::process::Command {
    support::bin_async()
}

fn read(path: &Path) -> Summary {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn merge(inputs: &[PathBuf], out: &Path) -> Output {
    bin()
        .arg("merge")
        .args(inputs)
        .arg("-o")
        .arg(out)
        .output()
        .await
        .unwrap()
}

/// The shards' summaries rewritten by `edit`, one file each, for merges of altered runs.
fn edited(
    dir: &Path,
    name: &str,
    shards: &[Summary],
    edit: impl Fn(usize, &mut Summary),
) -> Vec<PathBuf> {
    shards
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let mut s = s.clone();
            edit(k, &mut s);
            let path = dir.join(format!("{name}-{k}.json"));
            std::fs::write(&path, serde_json::to_vec(&s).unwrap()).unwrap();
            path
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shard_processes_against_one_hub_merge_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let ca = support::chain();
    write_ca_dir(&dir.path().join("ca"), &ca).unwrap();
    let server_ca = support::chain();
    let hub = support::hub(&server_ca, &[ca.as_ref()]).await;
    let fleet = support::ids("device", DEVICES);
    hub.hub.registry.register_ca_signed(fleet.iter());
    let roots = dir.path().join("server-root.pem");
    std::fs::write(&roots, pem("CERTIFICATE", server_ca.root().cert())).unwrap();
    let scenario = dir.path().join("fleet.toml");
    std::fs::write(
        &scenario,
        format!(
            "name = \"sharded\"\n[target]\nhub = \"remote\"\naddress = \"{}\"\nserver-name = \"localhost\"\n\
             ca-file = \"{}\"\n[fleet]\ndevices = {DEVICES}\nca-dir = \"{}\"\n[connect]\nrate = 400.0\n\
             [messages]\ncount = {MESSAGES}\ninterval = \"5ms\"\n\
             [thresholds]\n\"errors.count\" = \"< 1\"\n\"publish_ack.p99\" = \"< 30s\"\n",
            hub.mqtt,
            roots.display(),
            dir.path().join("ca").display()
        ),
    )
    .unwrap();

    // Four processes, two told their shard by flag and two by an Indexed Job's environment,
    // all given one start instant a little ahead.
    let start_at =
        humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(2)).to_string();
    let runs = (0..SHARDS).map(|k| {
        let mut c = bin();
        c.args([
            "run",
            "--quiet",
            "--print-summary",
            "--start-at",
            &start_at,
            "--results",
        ])
        .arg(dir.path().join(format!("results-{k}")))
        .arg(&scenario);
        if k < 2 {
            c.arg("--shard").arg(format!("{k}/{SHARDS}"));
        } else {
            c.env("JOB_COMPLETION_INDEX", k.to_string())
                .env("FLEETBENCH_SHARDS", SHARDS.to_string());
        }
        c.output()
    });
    let outputs = futures::future::join_all(runs).await;
    let mut log = String::new();
    for (k, out) in outputs.iter().enumerate() {
        let out = out.as_ref().unwrap();
        assert_eq!(out.status.code(), Some(0), "shard {k}: {}", text(out));
        // What `kubectl logs --prefix` would collect.
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            log.push_str(&format!("[pod/sharded-{k}-x/fleetbench] {line}\n"));
        }
    }
    let logs = dir.path().join("logs.txt");
    std::fs::write(&logs, log).unwrap();

    // Every device of the fleet sent its messages exactly once: the shards are disjoint and
    // cover the fleet.
    let received: Vec<u64> = fleet
        .iter()
        .map(|id| hub.hub.registry.received(&id))
        .collect();
    assert!(received.iter().all(|n| *n == MESSAGES), "{received:?}");
    hub.stop().await;

    let shard_dirs: Vec<PathBuf> = (0..SHARDS)
        .map(|k| support::results::run_dir(&dir.path().join(format!("results-{k}"))))
        .collect();
    let shards: Vec<Summary> = shard_dirs
        .iter()
        .map(|d| read(&d.join("summary.json")))
        .collect();
    for (k, s) in shards.iter().enumerate() {
        let info = s.shard.as_ref().unwrap();
        assert_eq!((info.index, info.count), (k as u64, SHARDS));
        assert_eq!(s.counts.devices, DEVICES / SHARDS);
        assert_eq!(info.start_at.as_deref(), Some(start_at.as_str()));
        assert!(info.start_offset_ms.unwrap() > -5.0, "{info:?}");
        assert!(
            s.thresholds.iter().all(|t| t.default),
            "shards leave the scenario's thresholds to the merge: {:?}",
            s.thresholds
        );
        assert_eq!(s.ca_fingerprint, shards[0].ca_fingerprint);
    }
    let schema = support::results::schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let shard_json = serde_json::to_value(&shards[0]).unwrap();
    assert!(
        validator.is_valid(&shard_json),
        "{:?}",
        validator
            .iter_errors(&shard_json)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );

    // Merged from the logs, and from the results directories: the same fleet.
    let from_logs = dir.path().join("merged-logs");
    let out = merge(&[logs], &from_logs).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let from_dirs = dir.path().join("merged-dirs");
    let out = merge(&shard_dirs, &from_dirs).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let merged = read(&from_logs.join("summary.json"));
    assert_eq!(merged.counts, read(&from_dirs.join("summary.json")).counts);
    assert!(from_logs.join("report.html").is_file() && from_logs.join("report.txt").is_file());
    // report.html has the Shards table the text report has: one row per shard, in order.
    let html = std::fs::read_to_string(from_dirs.join("report.html")).unwrap();
    let table = &html[html.find("<h2>Shards</h2>").expect("a Shards section")..];
    let table = &table[..table.find("</table>").unwrap()];
    for k in 0..SHARDS {
        let row = format!(
            "<tr><td>{k}/{SHARDS}</td><td>{}</td><td>complete</td>",
            DEVICES / SHARDS
        );
        assert!(table.contains(&row), "{row} in {table}");
    }
    assert_eq!(
        table.matches("<tr><td>").count(),
        SHARDS as usize,
        "{table}"
    );
    let merged_json = serde_json::to_value(&merged).unwrap();
    assert!(
        validator.is_valid(&merged_json),
        "{:?}",
        validator
            .iter_errors(&merged_json)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );

    check_sums(&merged, &shards);
    check_histograms(&merged, &shards);

    // Thresholds are judged on the merge: both pass here (exit 0 above), and the default check
    // that the scenario does not override (sessions.connected; errors.count replaces errors.rate)...
    assert_eq!(merged.thresholds.len(), 3);
    assert!(
        merged.thresholds.iter().all(|t| t.passed),
        "{:?}",
        merged.thresholds
    );
    // ... and a scenario with one that cannot pass exits 1, with the other still passing.
    let strict = edited(dir.path(), "strict", &shards, |_, s| {
        s.scenario["thresholds"]["publish_ack.p50"] = "< 1us".into();
    });
    let out = merge(&strict, &dir.path().join("merged-strict")).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let judged = read(&dir.path().join("merged-strict/summary.json")).thresholds;
    let verdicts: Vec<_> = judged
        .iter()
        .map(|t| (t.metric.as_str(), t.passed))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("errors.count", true),
            ("publish_ack.p50", false),
            ("publish_ack.p99", true),
            ("sessions.connected", true)
        ]
    );

    refuses_mismatched_shards(dir.path(), &shards).await;
}

/// Counts and timelines are the shards' sums.
fn check_sums(merged: &Summary, shards: &[Summary]) {
    let sum = |f: fn(&Summary) -> u64| shards.iter().map(f).sum::<u64>();
    assert_eq!(merged.counts.devices, DEVICES);
    assert_eq!(merged.counts.messages_acked, DEVICES * MESSAGES);
    assert_eq!(
        merged.counts.sessions_connected,
        sum(|s| s.counts.sessions_connected)
    );
    assert_eq!(merged.counts.handshakes, sum(|s| s.counts.handshakes));
    assert_eq!(merged.counts.bytes_sent, sum(|s| s.counts.bytes_sent));
    let acks = |s: &Summary| s.timeline.iter().map(|r| r.acks).sum::<u64>();
    assert_eq!(acks(merged), shards.iter().map(acks).sum::<u64>());
    assert_eq!(merged.shards.len(), SHARDS as usize);
    let first = shards.iter().map(|s| s.started_at.clone()).min().unwrap();
    assert_eq!(merged.started_at, first);
}

/// Each merged histogram is the union of the shards' samples: its count is the sum, and every
/// percentile equals the percentile of one histogram holding all of them.
fn check_histograms(merged: &Summary, shards: &[Summary]) {
    let names = [
        "tls_handshake",
        "mqtt_connect",
        "publish_ack",
        "send_response",
    ];
    for name in names {
        let mut union = new_histogram();
        let mut count = 0;
        for s in shards {
            let p = s
                .phase(name)
                .unwrap_or_else(|| panic!("{name} in every shard"));
            count += p.count;
            union.add(decode_histogram(&p.histogram).unwrap()).unwrap();
        }
        let m = merged.phase(name).unwrap();
        assert_eq!(m.count, count, "{name}");
        assert_eq!(union.len(), count, "{name}");
        let h = decode_histogram(&m.histogram).unwrap();
        for q in [0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                h.value_at_quantile(q),
                union.value_at_quantile(q),
                "{name} q{q}"
            );
        }
        assert_eq!(
            (m.p50_us, m.p99_us, m.max_us),
            (
                union.value_at_quantile(0.5),
                union.value_at_quantile(0.99),
                union.max()
            ),
            "{name}"
        );
    }
}

async fn refuses_mismatched_shards(dir: &Path, shards: &[Summary]) {
    let other = edited(dir, "other", shards, |k, s| {
        if k == 2 {
            s.scenario["messages"]["count"] = 7.into();
        }
    });
    let out = merge(&other, &dir.join("merged-other")).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("different scenarios") && err.contains("scenario.messages.count is 3"),
        "{err}"
    );
    assert!(!dir.join("merged-other/summary.json").exists());

    let other_ca = edited(dir, "ca", shards, |k, s| {
        if k == 1 {
            s.ca_fingerprint = Some("00".repeat(32));
        }
    });
    let out = merge(&other_ca, &dir.join("merged-ca")).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("different CAs"));

    let missing = edited(dir, "missing", &shards[..3], |_, _| {});
    let out = merge(&missing, &dir.join("merged-missing")).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shards 3 of 4 are missing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_fleet_needs_a_shared_ca_and_a_whole_shard_spec() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(&scenario, "[fleet]\ndevices = 4\n").unwrap();
    let run = |args: &[&str]| {
        let mut c = bin();
        c.arg("run")
            .arg("--quiet")
            .arg("--results")
            .arg(dir.path())
            .args(args)
            .arg(&scenario);
        c
    };
    let out = run(&["--shard", "1/2"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("needs the fleet's CA directory"),
        "{}",
        text(&out)
    );
    let out = run(&["--shard", "2/2"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("\"2/2\" is not a shard"),
        "{}",
        text(&out)
    );
    let out = run(&[])
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("FLEETBENCH_SHARDS"), "{}", text(&out));
}
