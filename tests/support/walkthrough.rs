//! README "Against your own broker", as the tests follow it: the binary's `pki` commands in a
//! fresh directory, and the committed broker configs and scenarios copied there with only the
//! walkthrough's port changed, so that the files the README names cannot rot.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The variable the password scenario reads; never inherited from the test runner.
const PASSWORD_ENV: &str = "FLEETBENCH_MQTT_PASSWORD";

/// Runs the binary in `dir` with only the given environment additions.
pub fn fleetbench(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetbench"));
    cmd.args(args).current_dir(dir).env_remove(PASSWORD_ENV);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("fleetbench runs")
}

/// Standard output and error, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A fresh directory as the walkthrough's first steps leave it: `pki init --out ca` and
/// `pki server --ca ca --name localhost --ip 127.0.0.1 --out broker`.
pub fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = [
        "pki",
        "server",
        "--ca",
        "ca",
        "--name",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--out",
        "broker",
    ];
    for args in [&["pki", "init", "--out", "ca"][..], &server] {
        let out = fleetbench(dir.path(), args, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    dir
}

/// Copies the committed file `committed` (relative to the repository) into `dir`, replacing
/// `from` (which must occur: the test follows the file) with `to`.
pub fn copy_replacing(committed: &str, from: &str, to: &str, dir: &Path) -> PathBuf {
    let body = std::fs::read_to_string(Path::new(REPO).join(committed)).expect("committed file");
    assert!(body.contains(from), "{committed} no longer holds {from:?}");
    let path = dir.join(Path::new(committed).file_name().expect("file name"));
    std::fs::write(&path, body.replace(from, to)).expect("copy");
    path
}

/// Runs the committed `scenarios/<name>` from `dir` with its address `127.0.0.1:<port_in_file>`
/// pointed at `port`, results in `dir/results`.
pub fn run(
    dir: &Path,
    name: &str,
    ports: (u16, u16),
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let (from, to) = (
        format!("127.0.0.1:{}", ports.0),
        format!("127.0.0.1:{}", ports.1),
    );
    let scenario = copy_replacing(&format!("scenarios/{name}"), &from, &to, dir);
    let scenario = scenario.to_str().expect("utf-8 path");
    let mut args = vec!["run", "--quiet", "--results", "results", scenario];
    args.extend_from_slice(extra);
    fleetbench(dir, &args, env)
}

/// The summary.json of the only run in `dir/results`, which is then removed (so the next
/// run's is the only one again).
pub fn take_summary(dir: &Path) -> serde_json::Value {
    let results = dir.join("results");
    let mut runs: Vec<_> = std::fs::read_dir(&results)
        .expect("results")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = runs.pop().expect("one run");
    let summary = std::fs::read_to_string(run.join("summary.json")).expect("summary.json");
    std::fs::remove_dir_all(results).expect("remove results");
    serde_json::from_str(&summary).expect("summary parses")
}

/// The 1-based line of the committed `path` that starts with `prefix`.
pub fn line_of(path: &str, prefix: &str) -> usize {
    let body = std::fs::read_to_string(Path::new(REPO).join(path)).expect("committed file");
    1 + body
        .lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("{path} has no line starting with {prefix:?}"))
}
