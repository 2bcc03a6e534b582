use super::*;

#[test]
fn a_long_description_is_wrapped_at_spaces() {
    let long = format!("{}\n\n  short  ", ["word"; 30].join(" "));
    let lines = wrap(&long, 88);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|l| l.chars().count() <= 88), "{lines:?}");
    assert_eq!(lines[2], "short");
    assert_eq!(lines[..2].join(" "), ["word"; 30].join(" "));
}
use crate::metrics::{
    new_histogram, FailureSummary, GeneratorHealth, HubAccounting, Op, PhaseSummary, RunCounts,
    ThresholdResult, Unit,
};

/// A summary with every section and the widest values a big run produces.
fn busy() -> Summary {
    let mut h = new_histogram();
    h.saturating_record(3_599_000_000);
    h.saturating_record(1);
    let big = 987_654_321;
    Summary {
        schema_version: 1,
        tool_version: "0.1.0".into(),
        scenario_name: "a-rather-long-scenario-name-for-a-fleet".into(),
        scenario: serde_json::json!({}),
        status: RunStatus::Partial {
            reason: "max-duration 1h 30m reached".into(),
        },
        started_at: "2026-01-01T00:00:00.000Z".into(),
        duration_secs: 5400.0,
        counts: RunCounts {
            devices: big,
            sessions_attempted: big,
            sessions_connected: big,
            sessions_failed: big,
            handshakes: big,
            messages_sent: big,
            messages_acked: big,
            messages_unacked: big,
            bytes_sent: big,
            late_connects: big,
            late_sends: big,
            reconnects: big,
            reconnects_connected: big,
            devices_never_connected: big,
        },
        connects_per_sec: 123_456.7,
        acks_per_sec: 9_876_543.2,
        rates: crate::metrics::Rates {
            connects: crate::metrics::Rate::new(big, Some(0.0), Some(5e3), Some(5.4e3), None),
            sends: crate::metrics::Rate::new(big, Some(0.0), Some(5e3), Some(5.4e3), None),
            acks: crate::metrics::Rate::new(big, Some(0.0), Some(5e3), Some(5.4e3), None),
        },
        hosts: Vec::new(),
        verdict: None,
        phases: vec![PhaseSummary::from_histogram("connect_response", &h)],
        failures: vec![FailureSummary {
            phase: "connect_response".into(),
            kind: "unfinished".into(),
            count: big,
            sample: "x".repeat(300),
            devices: vec!["d".repeat(80); 20],
            devices_more: big,
        }],
        outcomes: vec![("r".repeat(300), big)],
        hub: Some(HubAccounting {
            received: big,
            acked: big,
            lost: big,
            lost_devices: vec!["device-with-a-long-identifier-0000001".into()],
            refused: vec![("unknown-ca".into(), big), ("identity".into(), big)],
            throttled: Some(big),
        }),
        delivery: None,
        generator: GeneratorHealth {
            cores: 256,
            cpu_utilisation: 0.999,
            peak_rss_kib: 512 * 1024 * 1024,
            peak_sessions: big,
            rss_per_session_kib: Some(1234.5),
            timer_lag_p99_us: Some(3_000_000),
            saturated: true,
            saturation_reasons: vec![
                "generator CPU averaged 100% of 256 cores (threshold 90%)".into()
            ],
            ..GeneratorHealth::default()
        },
        timeline: Vec::new(),
        throttling: Some(crate::metrics::Throttling {
            began_at_secs: big,
            pinned: vec![crate::metrics::PinnedRate {
                what: "acknowledgements".into(),
                from_secs: big,
                to_secs: big,
                per_sec: 9_876_543.2,
                offered_per_sec: 9_876_543.2,
                latency_first_us: 3_599_000_000,
                latency_last_us: 3_599_000_000,
            }],
            throttled_refusals: big,
            hub_throttled: Some(big),
            evidence: vec!["acknowledgements held at 9876543.2/s ".repeat(9)],
        }),
        thresholds: vec![ThresholdResult {
            metric: "connect_response.p99.999".into(),
            condition: ">= 12345678/s".into(),
            op: Op::AtLeast,
            limit: 1.0,
            observed: Some(3_599_000_000.0),
            unit: Unit::Microseconds,
            passed: false,
            default: true,
        }],
        ca_fingerprint: Some("AB".repeat(32)),
        shard: Some(crate::metrics::ShardInfo {
            index: 999,
            count: 1000,
            start_at: Some("2026-01-01T00:00:00.000Z".into()),
            start_offset_ms: Some(-12345.678),
        }),
        run_id: Some("0123456789abcdef".into()),
        shards: vec![crate::metrics::ShardRun {
            shard: crate::metrics::ShardInfo {
                index: 999,
                count: 1000,
                start_at: Some("2026-01-01T00:00:00.000Z".into()),
                start_offset_ms: Some(12345.678),
            },
            source: "logs.txt:12345".into(),
            run_id: Some("fedcba9876543210".into()),
            started_at: "2026-01-01T00:00:00.000Z".into(),
            duration_secs: 5400.0,
            status: RunStatus::Complete,
            devices: big,
            generator: GeneratorHealth {
                saturated: true,
                ..GeneratorHealth::default()
            },
        }],
        handshake: None,
        cpu: None,
    }
}

#[test]
fn every_section_fits_100_columns() {
    let mut out = Vec::new();
    write_text(&mut out, &busy()).unwrap();
    let text = String::from_utf8(out).unwrap();
    for section in [
        "Checks      0 passed, 1 failed",
        "PARTIAL (max-duration 1h 30m reached)",
        "Failed      connect_response.p99.999 >= 12345678/s (default): observed",
        "fell short",
        "FAIL  connect_response",
        "LOST MESSAGES",
        "SATURATED",
        "Throttling  began 987654321 s into the run",
    ] {
        assert!(text.contains(section), "{section} missing:\n{text}");
    }
    for line in text.lines() {
        assert!(line.chars().count() <= 100, "over 100 columns: {line}");
    }
}

#[test]
fn memory_per_session_is_printed_only_over_enough_sessions() {
    let with = |peak_sessions: u64| {
        let mut s = busy();
        s.generator.saturated = false;
        s.generator.peak_sessions = peak_sessions;
        s.generator.rss_per_session_kib = Some(2_048.0);
        let mut out = Vec::new();
        write_text(&mut out, &s).unwrap();
        String::from_utf8(out).unwrap()
    };
    // One session's RSS is the allocator's and the runtime's, not the session's.
    assert!(!with(1).contains("KiB/session"));
    assert!(with(PER_SESSION_MIN).contains("(2048.0 KiB/session)"));
}
