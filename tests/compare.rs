//! Issue 13: `compare` through the binary. Two back-to-back runs of the quickstart on the
//! embedded hub are not a regression; a run whose handshakes all take longer is; differing
//! settings are named.

use std::path::{Path, PathBuf};
use std::process::Command;

use fleetbench::metrics::{decode_histogram, new_histogram, PhaseSummary, Summary};

use crate::support::walkthrough::text;

fn fleetbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fleetbench"))
}

/// Runs the checked-in quickstart through the binary; returns its results directory.
fn quickstart(results: &Path) -> PathBuf {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
    let out = fleetbench()
        .args(["run", "--quiet", "--results"])
        .arg(results)
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut dirs: Vec<_> = std::fs::read_dir(results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

/// `summary` with every sample of `phase` moved up by `shift_us`.
fn shifted(summary: &Summary, phase: &str, shift_us: u64) -> Summary {
    let mut s = summary.clone();
    let p = s.phases.iter_mut().find(|p| p.name == phase).unwrap();
    let h = decode_histogram(&p.histogram).unwrap();
    let mut moved = new_histogram();
    for v in h.iter_recorded() {
        moved.saturating_record_n(v.value_iterated_to() + shift_us, v.count_at_value());
    }
    *p = PhaseSummary::from_histogram(phase, &moved);
    s
}

#[test]
fn issue_13_back_to_back_quickstarts_are_not_a_regression_and_a_slower_one_is() {
    let dir = tempfile::tempdir().unwrap();
    // Other tests and builds share this machine: a pair of runs during which its load changed
    // differs for real (the generator's own start lag doubles), so up to three pairs are run
    // and one must pass. Before issue 13, every pair failed (p99.9 and max of 100 samples,
    // sub-100 µs moves and the start-lag phases all counted).
    let mut failed = Vec::new();
    let (base, new, report) = loop {
        let pair = dir.path().join(failed.len().to_string());
        let base = quickstart(&pair.join("a"));
        let new = quickstart(&pair.join("b"));
        let out = fleetbench()
            .arg("compare")
            .arg(&base)
            .arg(&new)
            .output()
            .unwrap();
        let report = text(&out);
        if out.status.code() == Some(0) {
            break (base, new, report);
        }
        assert_eq!(out.status.code(), Some(1), "{report}");
        failed.push(report);
        assert!(
            failed.len() < 3,
            "three pairs regressed:\n{}",
            failed.join("\n")
        );
    };
    assert!(
        report.contains("settings: the same resolved scenario"),
        "{report}"
    );
    // 100 handshakes cannot support a p99 or p99.9; the generator's own lag is not the hub's.
    assert!(report.contains("not judged: 100 samples"), "{report}");
    assert!(report.contains("not judged: generator-side"), "{report}");

    // BASE with every TLS handshake slower by more than BASE's spread (its slowest handshake,
    // plus 1 ms) regresses, and says where: p50 and p90 are judged on 100 samples.
    let summary: Summary =
        serde_json::from_slice(&std::fs::read(base.join("summary.json")).unwrap()).unwrap();
    let shift = summary.phase("tls_handshake").unwrap().max_us + 1_000;
    let slower = dir.path().join("slower.json");
    let slow = shifted(&summary, "tls_handshake", shift);
    std::fs::write(&slower, serde_json::to_vec(&slow).unwrap()).unwrap();
    let out = fleetbench()
        .args(["compare", "--json"])
        .arg(&base)
        .arg(&slower)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let worse: Vec<_> = doc["regressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(worse, ["tls_handshake.p50", "tls_handshake.p90"], "{doc}");

    // A noise floor above the shift lets it pass; a bare 10 is refused as ambiguous.
    let floor = format!("{}us", 2 * shift);
    let out = fleetbench()
        .args(["compare", "--noise-floor", &floor])
        .arg(&base)
        .arg(&slower)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = fleetbench()
        .args(["compare", "--tolerance", "10"])
        .arg(&base)
        .arg(&new)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("write 10%"), "{}", text(&out));

    // Different settings are listed by key.
    let mut other = summary;
    other.scenario["fleet"]["devices"] = serde_json::json!(200);
    other.scenario["tls"]["version"] = serde_json::json!("1.2");
    let other_path = dir.path().join("other.json");
    std::fs::write(&other_path, serde_json::to_vec(&other).unwrap()).unwrap();
    let out = fleetbench()
        .arg("compare")
        .arg(&base)
        .arg(&other_path)
        .output()
        .unwrap();
    let report = text(&out);
    assert!(report.contains("settings that differ:"), "{report}");
    assert!(report.contains("100 -> 200"), "{report}");
    assert!(report.contains("\"1.3\" -> \"1.2\""), "{report}");
}
