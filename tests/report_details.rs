//! Issue 14, the rest of what the report missed: the scenario's description in every output,
//! and error texts that name the file and what is wrong (a cut-short PEM, `--results` a file).

use std::path::Path;
use std::process::{Command, Output};

fn fleetbench(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const TINY: &str = "[fleet]\ndevices = 3\n[messages]\ncount = 1\ninterval = \"5ms\"\n";

#[test]
fn the_description_is_in_plan_summary_and_both_reports() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!("description = \"Ramp to the knee <fast>.\\nSecond line.\"\n{TINY}");
    std::fs::write(dir.path().join("described.toml"), scenario).unwrap();
    let out = fleetbench(
        dir.path(),
        &["run", "--quiet", "--results", "res", "described.toml"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<_> = stdout.lines().collect();
    // Right under the headline, one line each, indented like the other sections.
    assert!(lines[0].starts_with("fleetbench described:"), "{stdout}");
    assert_eq!(
        lines[1].trim_start(),
        "Ramp to the knee <fast>.",
        "{stdout}"
    );
    assert_eq!(lines[2].trim_start(), "Second line.", "{stdout}");
    let run = crate::support::results::run_dir(&dir.path().join("res"));
    let text = std::fs::read_to_string(run.join("report.txt")).unwrap();
    assert!(text.contains("Ramp to the knee <fast>.\n"), "{text}");
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    let h1 = html.find("<h1>").unwrap();
    let desc = html
        .find("<p class=\"description\">Ramp to the knee &lt;fast&gt;.\nSecond line.</p>")
        .unwrap_or_else(|| panic!("no description in the HTML: {html}"));
    assert!(desc > h1 && desc < html.find("<h2>").unwrap());
    for file in ["plan.json", "summary.json"] {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join(file)).unwrap()).unwrap();
        let scenario = if file == "plan.json" {
            &json
        } else {
            &json["scenario"]
        };
        assert_eq!(
            scenario["description"], "Ramp to the knee <fast>.\nSecond line.",
            "{file}"
        );
    }
}

#[test]
fn a_results_path_that_is_a_file_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), TINY).unwrap();
    std::fs::write(dir.path().join("afile"), "").unwrap();
    let out = fleetbench(
        dir.path(),
        &["run", "--quiet", "--results", "afile", "tiny.toml"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--results afile is a file, not a directory"),
        "{err}"
    );
    assert!(!err.contains("File exists"), "{err}");
}

/// A CA directory made by `pki init`, and its root certificate cut short.
fn ca_dirs(dir: &Path) -> String {
    let out = fleetbench(dir, &["pki", "init", "--out", "ca"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let root = std::fs::read_to_string(dir.join("ca/root.cert.pem")).unwrap();
    root[..root.len() / 2].to_owned()
}

#[test]
fn a_cut_short_pem_in_a_ca_dir_names_the_file_and_the_section() {
    let dir = tempfile::tempdir().unwrap();
    let cut = ca_dirs(dir.path());
    std::fs::write(dir.path().join("ca/root.cert.pem"), cut).unwrap();
    std::fs::write(
        dir.path().join("cut.toml"),
        "[fleet]\ndevices = 2\nca-dir = \"ca\"\n[messages]\ncount = 1\n",
    )
    .unwrap();
    let out = fleetbench(
        dir.path(),
        &["run", "--quiet", "--results", "res", "cut.toml"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "ca/root.cert.pem is not a valid certificate: the CERTIFICATE section has no END line"
        ),
        "{err}"
    );
    assert!(!err.contains("[67, 69"), "{err}");
}

#[test]
fn a_cut_short_target_ca_file_names_the_file_and_the_section() {
    let dir = tempfile::tempdir().unwrap();
    let cut = ca_dirs(dir.path());
    std::fs::write(dir.path().join("roots.pem"), cut).unwrap();
    std::fs::write(
        dir.path().join("remote.toml"),
        "[target]\nhub = \"remote\"\naddress = \"127.0.0.1:1\"\nserver-name = \"localhost\"\n\
         ca-file = \"roots.pem\"\n[fleet]\ndevices = 2\nca-dir = \"ca\"\n[messages]\ncount = 1\n",
    )
    .unwrap();
    let out = fleetbench(
        dir.path(),
        &["run", "--quiet", "--results", "res", "remote.toml"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("target.ca-file roots.pem: the CERTIFICATE section has no END line"),
        "{err}"
    );
}
