//! Issue 14: each stage's target against what was held, in the text report and report.html,
//! through the binary against the embedded hub with a tier quota (S1 x 1 accepts 100 sends/s).

use std::process::Command;

/// Ten sessions sending 5/s hold easily; forty offer 200/s, twice the quota.
const STAGES: &str = r#"
name = "stages"
[target]
tier = "S1"
units = 1
[[stages]]
duration = "2s"
sessions = 10
[[stages]]
duration = "2s"
sessions = 10
[[stages]]
duration = "1s"
sessions = 40
[[stages]]
duration = "3s"
sessions = 40
[messages]
interval = "200ms"
timeout = "30s"
[run]
max-duration = "60s"
grace = "30s"
"#;

/// Runs `scenario` through the binary in a new directory; the exit code and report.txt.
fn run(scenario: &str) -> (Option<i32>, String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stages.toml"), scenario).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .current_dir(dir.path())
        .args(["run", "--quiet", "--results", "res", "stages.toml"])
        .output()
        .unwrap();
    let run = crate::support::results::run_dir_of(&dir.path().join("res"), &out);
    let text = std::fs::read_to_string(run.join("report.txt")).unwrap();
    (out.status.code(), text, run, dir)
}

#[test]
fn stages_the_run_did_not_reach_are_said_to_be_cut_not_short() {
    let (code, text, _, _dir) =
        run(&STAGES.replace("max-duration = \"60s\"", "max-duration = \"3s\""));
    assert!(
        text.contains("PARTIAL (max-duration 3s reached)"),
        "{code:?} {text}"
    );
    assert!(
        text.contains("stage 2 did not finish: the run ended ")
            && text.contains("stage 3 never began: the run ended first")
            && text.contains("stage 4 never began"),
        "{text}"
    );
    assert!(!text.contains("stage 2 fell short"), "{text}");
    // A rate that fell short of the whole schedule's plan says the run stopped early, not that
    // the hub or the network limited it.
    let short: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" fell short: "))
        .collect();
    assert!(
        short.iter().any(|l| l.contains("connects fell short")),
        "{text}"
    );
    for line in short {
        assert!(
            line.ends_with("the run stopped early (max-duration 3s reached)"),
            "{text}"
        );
    }
}

#[test]
fn each_stage_is_reported_against_what_it_held_and_why_it_fell_short() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stages.toml"), STAGES).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .current_dir(dir.path())
        .args(["run", "--quiet", "--results", "res", "stages.toml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = crate::support::results::run_dir(&dir.path().join("res"));
    let text = std::fs::read_to_string(run.join("report.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let head = lines
        .iter()
        .position(|l| l.starts_with("Stages"))
        .unwrap_or_else(|| panic!("no Stages table: {text}"));
    for word in [
        "stage", "time", "sessions", "held", "planned", "sent", "acked",
    ] {
        assert!(lines[head].contains(word), "{text}");
    }
    let row = |n: usize| -> Vec<&str> { lines[head + n].split_whitespace().collect() };
    // Stage 1 ramps 0 -> 10 over 0-2 s, stage 4 holds 40 from 5 to 8 s planning 200/s.
    assert_eq!(&row(1)[..6], ["1", "0-2", "s", "0", "→", "10"], "{text}");
    assert_eq!(&row(4)[..5], ["4", "5-8", "s", "40", "40"], "{text}");
    assert_eq!(row(4)[5], "200.0/s", "{text}");
    let acked: f64 = row(4)[7].trim_end_matches("/s").parse().unwrap();
    assert!(acked < 160.0, "the quota held stage 4 down: {text}");
    let shortfalls = lines[head + 5..]
        .iter()
        .take_while(|l| l.starts_with(' '))
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        shortfalls.starts_with("stage 4 fell short: acknowledged")
            && shortfalls.contains("of 200.0/s planned")
            && shortfalls.contains("the hub throttled it (Throttling)"),
        "{text}"
    );
    for n in 1..=3 {
        assert!(!shortfalls.contains(&format!("stage {n} ")), "{text}");
    }
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");

    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    let table = html.find("<h2>Stages</h2>").expect("a Stages section");
    assert!(html.find("<h2>Rates</h2>").unwrap() < table);
    assert!(html.contains("<tr data-stage=\"1\"><td>1</td><td>0-2 s</td>"));
    assert!(html.contains("<tr data-stage=\"4\" class=\"fail\"><td>4</td><td>5-8 s</td>"));
    assert!(html.contains("<p class=\"note\" data-stage-short>stage 4 fell short: acknowledged"));
}

/// The scenario a shard records is the fleet's: its Stages table holds the shard's part of each
/// target, and the merge of the shards the fleet's whole.
#[test]
fn a_shard_is_held_to_its_part_of_each_stage_and_the_merge_to_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    fleetbench::pki::store::write_ca_dir(&dir.path().join("ca"), &crate::support::chain()).unwrap();
    let scenario = "name = \"split\"\n[fleet]\nca-dir = \"ca\"\n\
        [[stages]]\nduration = \"2s\"\nsessions = 10\n[[stages]]\nduration = \"2s\"\nsessions = 10\n\
        [messages]\ninterval = \"200ms\"\n";
    std::fs::write(dir.path().join("split.toml"), scenario).unwrap();
    // Shards start together, as `merge` expects of a fleet.
    let at = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    let at = humantime::format_rfc3339_millis(at).to_string();
    let shards: Vec<_> = (0..2)
        .map(|k| {
            Command::new(env!("CARGO_BIN_EXE_fleetbench"))
                .current_dir(dir.path())
                .env_remove("FLEETBENCH_SHARD")
                .args([
                    "run",
                    "--quiet",
                    "--start-at",
                    &at,
                    "--shard",
                    &format!("{k}/2"),
                ])
                .arg("--results")
                .arg(format!("shard-{k}"))
                .arg("split.toml")
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in shards {
        assert!(child.wait().unwrap().success());
    }
    let runs: Vec<std::path::PathBuf> = (0..2)
        .map(|k| crate::support::results::run_dir(&dir.path().join(format!("shard-{k}"))))
        .collect();
    let stages_of = |text: &str| -> Vec<Vec<String>> {
        let lines: Vec<&str> = text.lines().collect();
        let head = lines
            .iter()
            .position(|l| l.starts_with("Stages"))
            .unwrap_or_else(|| panic!("no Stages table: {text}"));
        lines[head + 1..head + 3]
            .iter()
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    for run in &runs {
        let text = std::fs::read_to_string(run.join("report.txt")).unwrap();
        let rows = stages_of(&text);
        assert_eq!(rows[0][3..6], ["0", "→", "5"], "{text}");
        assert_eq!(rows[1][3..5], ["5", "5"], "{text}");
        assert_eq!(rows[1][5], "25.0/s", "{text}");
        assert!(!text.contains("fell short: "), "{text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .current_dir(dir.path())
        .arg("merge")
        .args(&runs)
        .args(["-o", "merged"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let rows = stages_of(&text);
    assert_eq!(rows[0][3..6], ["0", "→", "10"], "{text}");
    assert_eq!(rows[1][3..5], ["10", "10"], "{text}");
    assert_eq!(rows[1][5], "50.0/s", "{text}");
}
