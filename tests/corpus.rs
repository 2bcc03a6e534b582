//! Issue 8: a corpus of broken scenario files (tests/corpus/*.toml) driven through the binary.
//! Each file says what its error must mention in `# expect:` lines; every one must exit 2,
//! name the file, and never panic.

use std::process::Command;

#[test]
fn every_broken_scenario_is_refused_with_a_located_message() {
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let results = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "corpus has {} files", files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expects: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expects.is_empty(),
            "{} has no # expect: line",
            file.display()
        );
        let out = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
            .args(["run", "--quiet", "--results"])
            .arg(results.path())
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let name = file.display().to_string();
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(
            err.contains(&name),
            "{name}: the message must name the file: {err}"
        );
        for e in expects {
            assert!(err.contains(e), "{name}: expected {e:?} in: {err}");
        }
    }
}
