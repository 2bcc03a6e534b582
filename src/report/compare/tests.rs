use serde_json::json;

use super::*;
use crate::metrics::{new_histogram, GeneratorHealth, RunCounts};

const TEN_PERCENT: Tolerance = Tolerance {
    relative: 0.1,
    floor_us: DEFAULT_FLOOR_US,
};

/// A phase of `n` samples spread evenly over `from_us..from_us + 100`.
fn phase(name: &str, n: u64, from_us: u64) -> PhaseSummary {
    let mut h = new_histogram();
    for i in 0..n {
        h.saturating_record(from_us + i * 100 / n);
    }
    PhaseSummary::from_histogram(name, &h)
}

/// A complete run with these phases and scenario (built from JSON, as `summary.json` is read).
fn summary(phases: Vec<PhaseSummary>, scenario: Value) -> Summary {
    serde_json::from_value(json!({
        "schema_version": 1, "tool_version": "t", "scenario_name": "s", "scenario": scenario,
        "status": {"state": "complete"}, "started_at": "2026-01-01T00:00:00Z",
        "duration_secs": 1.0, "counts": RunCounts::default(), "connects_per_sec": 100.0,
        "acks_per_sec": 500.0, "phases": phases, "failures": [], "hub": null,
        "generator": GeneratorHealth::default(), "timeline": [],
    }))
    .unwrap()
}

fn find<'a>(c: &'a Comparison, group: &str, label: &str) -> &'a Delta {
    c.deltas
        .iter()
        .find(|d| d.group == group && d.label == label)
        .unwrap()
}

#[test]
fn a_small_move_under_the_noise_floor_is_not_a_regression() {
    // The case: a 30 µs move on a 233 µs p50 is 13% but under the 100 µs floor.
    let base = summary(vec![phase("publish_ack", 1000, 200)], json!({}));
    let new = summary(vec![phase("publish_ack", 1000, 230)], json!({}));
    let c = compare(&base, &new, TEN_PERCENT);
    assert_eq!(c.regressions().count(), 0, "{c:?}");
    // Without the floor it would count.
    let no_floor = Tolerance {
        floor_us: 0,
        ..TEN_PERCENT
    };
    assert!(find(&compare(&base, &new, no_floor), "publish_ack", "p50").regressed);
}

#[test]
fn a_shifted_histogram_regresses_where_samples_support_it() {
    let base = summary(vec![phase("tls_handshake", 10_000, 600)], json!({}));
    let new = summary(vec![phase("tls_handshake", 10_000, 5_600)], json!({}));
    let c = compare(&base, &new, TEN_PERCENT);
    let worse: Vec<_> = c.regressions().map(|d| d.label.as_str()).collect();
    assert_eq!(worse, ["p50", "p90", "p99", "p99.9"]);
    assert_eq!(
        find(&c, "tls_handshake", "max").not_judged.as_deref(),
        Some("max")
    );
}

#[test]
fn percentiles_too_few_samples_support_are_shown_but_not_judged() {
    let base = summary(vec![phase("tcp_connect", 100, 100)], json!({}));
    let new = summary(vec![phase("tcp_connect", 100, 5_000)], json!({}));
    let c = compare(&base, &new, TEN_PERCENT);
    assert!(find(&c, "tcp_connect", "p90").regressed);
    for q in ["p99", "p99.9"] {
        let d = find(&c, "tcp_connect", q);
        assert!(!d.regressed, "{d:?}");
        assert_eq!(d.not_judged.as_deref(), Some("100 samples"));
        assert!(d.new.is_some());
    }
    assert_eq!(samples_needed(0.5), 20);
    assert_eq!(samples_needed(0.9), 100);
    assert_eq!(samples_needed(0.99), 1000);
    assert_eq!(samples_needed(0.999), 10000);
}

#[test]
fn generator_side_phases_are_left_out_of_the_verdict() {
    let base = summary(vec![phase("send_start_lag", 5000, 1_000)], json!({}));
    let new = summary(vec![phase("send_start_lag", 5000, 90_000)], json!({}));
    let c = compare(&base, &new, TEN_PERCENT);
    assert_eq!(c.regressions().count(), 0);
    let p50 = find(&c, "send_start_lag", "p50");
    assert_eq!(p50.not_judged.as_deref(), Some("generator-side"));
    assert!(p50.new > Some(89_000.0));
    assert!(
        c.notes.iter().any(|n| n.contains("send_start_lag p50")),
        "{:?}",
        c.notes
    );
}

#[test]
fn a_move_within_what_the_samples_explain_is_not_a_regression() {
    // 100 samples from 0.5 to 1.4 ms against the same with the top 11 at 3 ms: the p90
    // doubles, but NEW's lower bound of p90 (about p81) is not above BASE's upper bound (p99).
    let spread = |top: u64| {
        let mut h = new_histogram();
        for i in 0..100u64 {
            h.saturating_record(if i >= 89 { top } else { 500 + i * 10 });
        }
        PhaseSummary::from_histogram("mqtt_connect", &h)
    };
    let base = summary(vec![spread(1_400)], json!({}));
    let new = summary(vec![spread(3_000)], json!({}));
    let c = compare(&base, &new, TEN_PERCENT);
    let p90 = find(&c, "mqtt_connect", "p90");
    assert!(p90.new.unwrap() > 2.0 * p90.base.unwrap(), "{p90:?}");
    assert!(!p90.regressed && p90.within_noise, "{p90:?}");
}

#[test]
fn throughput_and_errors_are_judged_relative_only() {
    let mut base = summary(vec![], json!({}));
    base.rates.acks.per_sec = Some(500.0);
    let mut new = base.clone();
    new.rates.acks.per_sec = Some(460.0); // -8%
    assert_eq!(compare(&base, &new, TEN_PERCENT).regressions().count(), 0);
    new.rates.acks.per_sec = Some(400.0); // -20%
    let c = compare(&base, &new, TEN_PERCENT);
    assert!(find(&c, "throughput", "acks").regressed);
}

#[test]
fn differing_settings_are_listed_by_dotted_key() {
    let base = summary(
        vec![],
        json!({"name": "q", "fleet": {"devices": 100, "id": "d-{n}"}, "tls": {"groups": ["x"]}}),
    );
    let new = summary(
        vec![],
        json!({"name": "q", "fleet": {"devices": 200, "id": "d-{n}"}, "tls": {"groups": []},
               "reconnect": {"attempts": 3}}),
    );
    let c = compare(&base, &new, TEN_PERCENT);
    let keys: Vec<_> = c.settings_differ.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["fleet.devices", "reconnect", "tls.groups"]);
    assert_eq!(c.settings_differ[0].base, json!(100));
    assert_eq!(c.settings_differ[0].new, json!(200));
    let mut text = Vec::new();
    write_comparison(&mut text, &c, "a", "b").unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("fleet.devices"), "{text}");
    assert!(text.contains("100 -> 200"), "{text}");
}

#[test]
fn text_and_json_say_what_was_not_judged_and_the_verdict() {
    let base = summary(vec![phase("mqtt_connect", 100, 300)], json!({}));
    let new = summary(vec![phase("mqtt_connect", 100, 3_000)], json!({}));
    let c = compare(&base, &new, TEN_PERCENT);
    let mut text = Vec::new();
    write_comparison(&mut text, &c, "base", "new").unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("not judged: 100 samples"), "{text}");
    assert!(text.contains("not judged: max"), "{text}");
    assert!(text.contains("NEW REGRESSED beyond 10.0%"), "{text}");
    for line in text.lines() {
        assert!(line.chars().count() <= 100, "over 100 columns: {line}");
    }
    let mut out = Vec::new();
    write_comparison_json(&mut out, &c, "base", "new").unwrap();
    let doc: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["regressed"], json!(true));
    assert_eq!(doc["tolerance"]["relative"], json!(0.1));
    assert!(doc["regressions"]
        .as_array()
        .unwrap()
        .contains(&json!("mqtt_connect.p50")));
    let p999 = doc["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["group"] == "mqtt_connect" && v["label"] == "p99.9")
        .unwrap();
    assert_eq!(p999["not_judged"], json!("100 samples"));
}
