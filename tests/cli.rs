//! The binary itself: exit statuses and error wording for bad scenarios.

use std::process::Command;

fn fleetbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fleetbench"))
}

fn run_scenario(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = fleetbench()
        .args(["run", "--quiet", "--results"])
        .arg(dir.path().join("results"))
        .arg(&path)
        .output()
        .unwrap();
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "bad.toml");
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn unknown_key_is_rejected_with_file_line_and_field() {
    let (code, err) = run_scenario("[fleet]\ndevices = 5\nflavour = \"x\"\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml:3:"), "{err}");
    assert!(err.contains("fleet.flavour"), "{err}");
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn wrong_type_is_rejected_with_file_line_and_field() {
    let (code, err) = run_scenario("[messages]\ncount = \"five\"\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml:2:"), "{err}");
    assert!(err.contains("messages.count"), "{err}");
}

#[test]
fn zero_devices_is_rejected_with_file_line_and_field() {
    let (code, err) = run_scenario("[fleet]\n\ndevices = 0\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml:3:"), "{err}");
    assert!(err.contains("fleet.devices: 0 is not valid"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn missing_scenario_file_is_a_clear_error() {
    let out = fleetbench()
        .args(["run", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/x.toml") && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn a_small_run_exits_zero_and_prints_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.toml");
    std::fs::write(
        &path,
        "[fleet]\ndevices = 5\n[messages]\ncount = 2\ninterval = \"5ms\"\n",
    )
    .unwrap();
    let out = fleetbench()
        .args(["run", "--quiet", "--results"])
        .arg(dir.path().join("results"))
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("hub received 10   lost 0"), "{stdout}");
    for line in stdout.lines() {
        assert!(line.chars().count() <= 100, "line over 100 columns: {line}");
    }
}

#[test]
fn log_lines_piped_to_a_file_carry_no_colour_codes() {
    // A tier with no connect rate: the plan warns before it runs (a `warn!` log line).
    let (code, err) =
        run_scenario("[target]\ntier = \"F1\"\n[fleet]\ndevices = 1\n[messages]\ncount = 1\n");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("accepts"), "the warning is missing: {err}");
    assert!(
        !err.contains('\u{1b}'),
        "escape codes in a piped log: {err:?}"
    );
}
