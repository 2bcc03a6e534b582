//! Issue 14: the results directory is documented whole. The CSV columns that
//! `results/schema.json` lists (`x-csv-columns`) are exactly the headers of a real run's
//! `timeline.csv` and `failures.csv`, and `results/README.md` names every column and every file
//! a run writes; the README's results paragraph names every file too.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const TINY: &str = "[fleet]\ndevices = 3\n[messages]\ncount = 2\ninterval = \"5ms\"\n";

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// The schema's columns of `file`, `{kind}` and `{phase}` expanded in the schema's enum order.
fn columns(schema: &Value, file: &str, phases: &[String]) -> Vec<String> {
    let kinds: Vec<&str> = schema["$defs"]["failure_kind"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let order: Vec<&str> = schema["$defs"]["phase_name"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .filter(|p| phases.iter().any(|q| q == p))
        .collect();
    let mut out = Vec::new();
    let templates = schema["x-csv-columns"][file]
        .as_array()
        .unwrap_or_else(|| panic!("no x-csv-columns for {file}"));
    let mut phase_columns = Vec::new();
    for c in templates {
        let name = c["name"].as_str().unwrap();
        assert!(
            c["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name} has no description"
        );
        if name.contains("{kind}") {
            out.extend(kinds.iter().map(|k| name.replace("{kind}", k)));
        } else if name.contains("{phase}") {
            phase_columns.push(name);
        } else {
            out.push(name.to_owned());
        }
    }
    // The phase's columns come together, phase by phase.
    for p in order {
        out.extend(phase_columns.iter().map(|c| c.replace("{phase}", p)));
    }
    out
}

#[test]
fn the_schema_lists_the_csv_columns_a_run_writes_and_the_readme_names_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), TINY).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .current_dir(dir.path())
        .args(["run", "--quiet", "--results", "res", "tiny.toml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = crate::support::results::run_dir(&dir.path().join("res"));
    let schema: Value = serde_json::from_str(&repo_file("results/schema.json")).unwrap();
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let mut phases: Vec<String> = summary["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["latency"].as_object().into_iter().flat_map(|l| l.keys()))
        .cloned()
        .collect();
    phases.sort();
    phases.dedup();
    assert!(phases.iter().any(|p| p == "publish_ack"), "{phases:?}");
    let header = |file: &str| -> Vec<String> {
        let text = std::fs::read_to_string(run.join(file)).unwrap();
        text.lines()
            .next()
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect()
    };
    for file in ["timeline.csv", "failures.csv"] {
        assert_eq!(header(file), columns(&schema, file, &phases), "{file}");
    }

    // results/README.md names every column (templates as the schema writes them, with <kind>
    // and <phase>) and every file; the README's results paragraph every file.
    let results_readme = repo_file("results/README.md");
    for file in ["timeline.csv", "failures.csv"] {
        for c in schema["x-csv-columns"][file].as_array().unwrap() {
            let name = c["name"]
                .as_str()
                .unwrap()
                .replace("{kind}", "<kind>")
                .replace("{phase}", "<phase>");
            assert!(
                results_readme.contains(&format!("`{name}`")),
                "results/README.md does not name {file}'s column `{name}`"
            );
        }
    }
    let readme = repo_file("README.md");
    for entry in std::fs::read_dir(&run).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            results_readme.contains(&format!("| `{name}` |")),
            "results/README.md has no row for {name}"
        );
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not name {name}"
        );
    }
}
