//! Issue 13: values too large to honour are a prompt exit 2 naming the largest accepted value,
//! never a panic or gigabytes of memory: validity past 9999-12-31, a hub beyond IoT Hub's
//! 1,000,000 devices; and `pki registry` streams whatever count it is given.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::pki_cli::{fleetbench, p, refused};

#[test]
fn issue_13_days_past_9999_are_exit_2_with_the_largest_accepted_value() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let err = refused(&fleetbench(&[
        "pki",
        "init",
        "--out",
        p(&ca),
        "--days",
        "100000000",
    ]));
    assert!(err.contains("--days"), "{err}");
    assert!(err.contains("9999-12-31"), "{err}");
    let max: u64 = err
        .split("at most ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no largest value in {err}"));
    assert!(!ca.exists());

    // The largest value it names is accepted, and the root expires in 9999.
    let out = fleetbench(&["pki", "init", "--out", p(&ca), "--days", &max.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let der = std::fs::read(ca.join("root.cer")).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(cert.validity().not_after.to_datetime().year(), 9999);

    let err = refused(&fleetbench(&[
        "pki",
        "devices",
        "--ca",
        p(&ca),
        "--count",
        "1",
        "--out",
        p(&dir.path().join("devices")),
        "--days",
        "100000000",
    ]));
    assert!(
        err.contains("9999-12-31") && err.contains("at most"),
        "{err}"
    );
}

#[test]
fn issue_13_validity_days_past_9999_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.toml");
    std::fs::write(&path, "[fleet]\ndevices = 1\nvalidity-days = 100000000\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .args(["run", "--quiet", "--results"])
        .arg(dir.path().join("results"))
        .arg(&path)
        .output()
        .unwrap();
    let err = refused(&out);
    assert!(
        err.contains(&format!(
            "{}:3:1: fleet.validity-days: 100000000 days is not valid",
            path.display()
        )),
        "{err}"
    );
    assert!(err.contains("at most"), "{err}");
}

#[test]
fn issue_13_hub_device_add_beyond_a_million_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let err = refused(&fleetbench(&[
        "hub",
        "device",
        "add",
        "--state",
        p(&state),
        "--count",
        "100000000",
    ]));
    assert!(err.contains("--count 100000000"), "{err}");
    assert!(err.contains("1,000,000"), "{err}");
    assert!(!state.join("registry.json").exists());
}

/// Resident memory of a process, KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn issue_13_pki_registry_streams_a_huge_count_in_bounded_memory() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .args(["pki", "registry", "--count", "100000000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // Reads 200,000 lines (about 25 MB), then reports the last one and the process's memory,
    // while the process is still writing.
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut last = String::new();
        for _ in 0..200_000 {
            match lines.next() {
                Some(Ok(l)) => last = l,
                _ => break,
            }
        }
        let _ = tx.send((last, rss_kib(pid)));
        drop(lines);
    });
    // A bound on a hang (the old code built the whole file before writing a byte), not a
    // synchronisation: the lines normally arrive within a second.
    let got = rx.recv_timeout(Duration::from_secs(120));
    let _ = child.kill();
    let _ = child.wait();
    let (last, rss) = got.expect("200,000 lines within 120 s");
    assert!(
        last.starts_with("{\"id\":\"device-200000\""),
        "line 200,000: {last}"
    );
    let rss = rss.expect("the process was still running");
    assert!(rss < 64 * 1024, "RSS {rss} KiB while streaming");
}
