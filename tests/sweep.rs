//! Issue 17: a sweep in one command. `run` on a scenario with `[matrix]` runs every cell in
//! alternating rounds against the embedded hub, keeps each run as a results directory, and
//! writes the comparison as text, JSON and HTML (looked at in headless Chromium).

use std::path::Path;

use serde_json::Value;

use crate::report_html::{browser_available, chromium};
use crate::support::walkthrough::{fleetbench, text};

/// A churn load of 4 devices at 100 handshakes/s for 1 s per run, and `matrix`.
fn scenario(matrix: &str) -> String {
    format!(
        "name = \"sw\"\n[fleet]\ndevices = 4\n[connect]\nrate = 100\n[churn]\nduration = \"1s\"\n\
         messages = 0\n[matrix]\n{matrix}"
    )
}

fn sweep(dir: &Path, toml: &str) -> std::process::Output {
    std::fs::write(dir.join("m.toml"), toml).unwrap();
    fleetbench(
        dir,
        &["run", "--quiet", "--results", "results", "m.toml"],
        &[],
    )
}

/// The one sweep directory under `results/`.
fn sweep_dir(dir: &Path) -> std::path::PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir(dir.join("results"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

#[test]
fn a_two_by_two_matrix_runs_every_workable_cell_in_rounds_and_compares_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = sweep(
        dir.path(),
        &scenario(
            "rounds = 2\ngroup = [\"x25519\", \"X25519MLKEM768\"]\nprovider = [\"ring\", \"aws-lc-rs\"]\n",
        ),
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("fleetbench sweep sw: PASSED, 3 cells x 2 rounds"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "Skipped     X25519MLKEM768_ring: the devices' provider ring has no key-exchange group X25519MLKEM768"
        ),
        "{shown}"
    );
    let root = sweep_dir(dir.path());
    let text_file = std::fs::read_to_string(root.join("comparison.txt")).unwrap();
    assert!(
        shown.starts_with(&text_file),
        "stdout opens with comparison.txt"
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("comparison.json")).unwrap())
            .unwrap();
    let cells = json["cells"].as_array().unwrap();
    let labels: Vec<&str> = cells.iter().map(|c| c["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        [
            "x25519_ring",
            "x25519_aws-lc-rs",
            "X25519MLKEM768_aws-lc-rs"
        ]
    );
    for c in cells {
        let runs = c["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2, "{c}");
        for r in runs {
            let run = root.join(r["dir"].as_str().unwrap());
            assert!(run.join("summary.json").is_file(), "{}", run.display());
            assert!(r["handshakes"].as_u64().unwrap() > 0, "{c}");
        }
        assert!(c["handshakes"]["min"].as_f64().unwrap() > 0.0, "{c}");
        assert!(
            c["client_us_per_handshake"]["median"].as_f64().unwrap() > 0.0,
            "{c}"
        );
        assert_eq!(c["round_trips"]["median"], 1.0, "{c}");
        // The CPU inside each full handshake, client and hub, read by the thread CPU clock.
        assert!(
            c["client_inside_full_us"]["median"].as_f64().unwrap() > 0.0,
            "{c}"
        );
        assert!(
            c["hub_inside_full_us"]["median"].as_f64().unwrap() > 0.0,
            "{c}"
        );
    }
    assert!(
        text_file.contains("CPU inside one handshake"),
        "{text_file}"
    );
    assert!(root
        .join("cells/X25519MLKEM768_aws-lc-rs/round-2/summary.json")
        .is_file());
    // The hybrid group was negotiated: the devices offered it alone and completed mutual-TLS
    // handshakes, and ML-KEM-768's 1,184-byte key share rode in every ClientHello.
    let pq = &cells[2];
    assert_eq!(pq["negotiated_group"], "X25519MLKEM768", "{pq}");
    let up = |c: &Value| c["bytes_to_server"]["median"].as_f64().unwrap();
    assert!(
        up(pq) > up(&cells[1]) + 1_100.0,
        "{} vs {}",
        up(pq),
        up(&cells[1])
    );
    let skipped = &json["skipped"][0];
    assert_eq!(skipped["label"], "X25519MLKEM768_ring");
    assert!(
        skipped["reason"].as_str().unwrap().contains("ring has no"),
        "{skipped}"
    );
    looks_right_in_a_browser(&root, dir.path());
}

/// comparison.html in headless Chromium: every chart drawn, bars in it, a non-blank page.
fn looks_right_in_a_browser(root: &Path, scratch: &Path) {
    if !browser_available() {
        return;
    }
    let page = root.join("comparison.html");
    let (dom, console) = chromium(&page, &scratch.join("profile"), &["--dump-dom"]);
    assert!(console.is_empty(), "console messages: {console:#?}");
    for name in fleetbench::report::SWEEP_CHARTS {
        let start = dom
            .find(&format!("data-chart=\"{name}\""))
            .unwrap_or_else(|| panic!("chart {name} missing from the rendered page"));
        let figure = &dom[start..start + dom[start..].find("</figure>").unwrap()];
        // One bar per cell at least, each named on the left.
        assert!(
            figure.matches("<rect").count() >= 3,
            "chart {name}: {figure}"
        );
        assert!(figure.contains("X25519MLKEM768_aws-lc-rs"), "chart {name}");
    }
    let shot = scratch.join("comparison.png");
    let (_, console) = chromium(
        &page,
        &scratch.join("profile2"),
        &[
            "--window-size=1300,1800",
            "--hide-scrollbars",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    assert!(console.is_empty(), "console messages: {console:#?}");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    // IHDR: width and height, big-endian, at bytes 16..24.
    let dim = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((dim(16), dim(20)), (1300, 1800));
    // A blank page compresses to a few KB; charts and tables take far more.
    assert!(png.len() > 60_000, "{} bytes: a blank page?", png.len());
    if let Ok(keep) = std::env::var("FLEETBENCH_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

#[test]
fn a_failed_cell_fails_the_sweep_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let toml = scenario("rounds = 1\ninclude = [{ label = \"only\", version = \"1.2\" }]\n")
        .replace(
            "[matrix]",
            "[thresholds]\n\"connect.rate\" = \"> 1000000\"\n[matrix]",
        )
        .replace("duration = \"1s\"", "duration = \"300ms\"");
    let out = sweep(dir.path(), &toml);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("fleetbench sweep sw: FAILED"), "{shown}");
    assert!(
        shown.contains("Failed      only round 1: FAILED: connect.rate > 1000000"),
        "{shown}"
    );
    assert!(sweep_dir(dir.path())
        .join("cells/only/round-1/report.html")
        .is_file());
}

#[test]
fn a_bad_axis_value_is_named_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let out = sweep(
        dir.path(),
        &scenario("group = [\n  \"x25519\",\n  \"x448\",\n]\nprovider = [\"ring\", \"boring\"]\n"),
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("m.toml:12:3: matrix.group[1]: \"x448\" is not a key-exchange group"),
        "{shown}"
    );
    assert!(
        shown.contains("m.toml:14:21: matrix.provider[1]: \"boring\" is not a crypto provider"),
        "{shown}"
    );
    assert!(
        !dir.path().join("results").exists(),
        "nothing run, nothing written"
    );
}

#[test]
fn the_shipped_matrix_covers_the_axes_in_a_few_minutes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/handshake-matrix.toml");
    let plan = fleetbench::scenario::Plan::from_file(&path, &Default::default()).unwrap();
    let m = plan.matrix.unwrap();
    let seen = |axis: &str| -> std::collections::BTreeSet<String> {
        m.cells
            .iter()
            .flat_map(|c| c.values.iter())
            .filter(|(a, _)| a.key() == axis)
            .map(|(_, v)| v.clone())
            .collect()
    };
    for (axis, want) in [
        (
            "key-type",
            &[
                "ecdsa-p256",
                "ecdsa-p384",
                "ed25519",
                "rsa-2048",
                "ml-dsa-44",
                "ml-dsa-65",
            ][..],
        ),
        ("group", &["x25519", "secp256r1", "X25519MLKEM768"]),
        ("provider", &["ring", "aws-lc-rs"]),
        ("version", &["1.2", "1.3"]),
        ("resumption", &["on", "off"]),
        ("intermediates", &["0", "1", "2"]),
    ] {
        let have = seen(axis);
        for v in want {
            assert!(have.contains(*v), "{axis} = {v} missing: {have:?}");
        }
    }
    let churn = match plan.session {
        fleetbench::scenario::SessionPlan::Churn { duration } => duration,
        s => panic!("not a churn load: {s:?}"),
    };
    let minutes = churn.as_secs_f64() * m.cells.len() as f64 * f64::from(m.rounds) / 60.0;
    assert!(minutes <= 5.0, "{minutes:.1} minutes of load");
}
