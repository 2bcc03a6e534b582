//! Reading what a run wrote: the run directory under a results root, its summary and files.

use std::path::{Path, PathBuf};

use fleetbench::metrics::Summary;

/// The run directory under `results` (its first entry: a test writes one run there).
pub fn run_dir(results: &Path) -> PathBuf {
    std::fs::read_dir(results)
        .unwrap_or_else(|e| panic!("no results in {}: {e}", results.display()))
        .next()
        .expect("a run directory")
        .expect("a readable entry")
        .path()
}

/// As [`run_dir`], with the run's output in the message when there are no results.
pub fn run_dir_of(results: &Path, out: &std::process::Output) -> PathBuf {
    if !results.is_dir() {
        panic!(
            "no results in {}\n{}{}",
            results.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    run_dir(results)
}

/// The summary of the run under `results`.
pub fn summary(results: &Path) -> Summary {
    fleetbench::report::read_summary(&run_dir(results)).expect("summary.json reads")
}

/// A file of `run` as text.
pub fn text(run: &Path, name: &str) -> String {
    std::fs::read_to_string(run.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `run`'s summary.json as JSON.
pub fn summary_json(run: &Path) -> serde_json::Value {
    serde_json::from_str(&text(run, "summary.json")).expect("summary.json parses")
}

/// The committed results/schema.json.
pub fn schema() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("schema.json"))
        .expect("schema.json parses")
}

/// Asserts that `summary` (a summary.json) validates against the committed results/schema.json.
pub fn assert_valid(summary: &serde_json::Value) {
    let validator = jsonschema::validator_for(&schema()).expect("schema compiles");
    let errors: Vec<_> = validator
        .iter_errors(summary)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

/// A summary.json `delivery`'s devices with their lost message counts, in its order.
pub fn lost_by_device(delivery: &serde_json::Value) -> Vec<(String, u64)> {
    delivery["devices"]
        .as_array()
        .expect("delivery.devices")
        .iter()
        .map(|x| {
            (
                x["device"].as_str().expect("device").to_owned(),
                x["lost"].as_u64().expect("lost"),
            )
        })
        .collect()
}

/// One interval of a latency.hlog: its tag, start, length and histogram.
pub struct HlogInterval {
    /// The phase it is tagged with.
    pub tag: String,
    /// Its start, from the log's base time.
    pub start: std::time::Duration,
    /// Its length.
    pub duration: std::time::Duration,
    /// Its samples.
    pub histogram: hdrhistogram::Histogram<u64>,
}

/// The intervals of the latency.hlog at `path`.
pub fn hlog_intervals(path: &Path) -> Vec<HlogInterval> {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    let bytes = std::fs::read(path).expect("latency.hlog");
    let mut out = Vec::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let LogEntry::Interval(i) = entry.expect("log parses") else {
            continue;
        };
        let raw = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            i.encoded_histogram(),
        )
        .expect("base64 histogram");
        let histogram = Deserializer::new()
            .deserialize(&mut raw.as_slice())
            .expect("histogram decodes");
        out.push(HlogInterval {
            tag: i.tag().expect("tagged").as_str().to_owned(),
            start: i.start_timestamp(),
            duration: i.duration(),
            histogram,
        });
    }
    out
}
