//! The end-of-run text report: fits 100 columns, aligned, in units people read.

use std::io::{self, Write};

use super::format::{count, kib, micros, observed};
use super::verdict;
use crate::metrics::{RunStatus, Summary};

/// Fewest peak sessions for which memory per session is printed.
const PER_SESSION_MIN: u64 = 50;

/// The scenario's description, if it has a non-blank one.
pub(crate) fn description(s: &Summary) -> Option<&str> {
    s.scenario
        .get("description")
        .and_then(serde_json::Value::as_str)
        .filter(|d| !d.trim().is_empty())
}

/// `text`'s non-blank lines, each broken at spaces to at most `width` characters (a longer word
/// stays whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut cur = String::new();
        for word in line.split_whitespace() {
            if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
                out.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
        out.push(cur);
    }
    out
}

/// Writes the text report of `s`.
pub fn write_text(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let head = format!("fleetbench {}:", s.scenario_name);
    let tail = format!("{} in {:.1} s", verdict::word(s), s.duration_secs);
    if head.chars().count() + tail.chars().count() < 100 {
        writeln!(w, "{head} {tail}")?;
    } else {
        writeln!(w, "{head}\n{:<12}{tail}", "")?;
    }
    if let Some(d) = description(s) {
        for line in wrap(d, 100 - 12) {
            writeln!(w, "{:<12}{line}", "")?;
        }
    }
    for (n, check) in verdict::failed_checks(s).iter().enumerate() {
        writeln!(w, "{:<12}{check}", if n == 0 { "Failed" } else { "" })?;
    }
    writeln!(w, "{:<12}{}", "Schedule", verdict::schedule(s))?;
    writeln!(w)?;
    write_shards(w, s)?;
    let c = &s.counts;
    write!(
        w,
        "{:<12}attempted {}   connected {}   failed {}   devices {}",
        "Sessions",
        count(c.sessions_attempted),
        count(c.sessions_connected),
        count(c.sessions_failed),
        count(c.devices)
    )?;
    writeln!(w)?;
    if c.devices_never_connected > 0 {
        writeln!(
            w,
            "{:<12}devices that never connected {}",
            "",
            count(c.devices_never_connected)
        )?;
    }
    if c.reconnects > 0 {
        writeln!(
            w,
            "{:<12}reconnect attempts {}: {} came back (connected again), {} did not",
            "",
            count(c.reconnects),
            count(c.reconnects_connected),
            count(c.reconnects.saturating_sub(c.reconnects_connected))
        )?;
    }
    write!(
        w,
        "{:<12}sent {}   acknowledged {}   unacknowledged {}",
        "Messages",
        count(c.messages_sent),
        count(c.messages_acked),
        count(c.messages_unacked)
    )?;
    if let Some(hub) = &s.hub {
        write!(
            w,
            "\n{:<12}hub received {}   lost {}",
            "",
            count(hub.received),
            count(hub.lost)
        )?;
    }
    writeln!(w)?;
    write_rates(w, s)?;
    writeln!(w)?;
    writeln!(
        w,
        "{:<18}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "Phase", "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean"
    )?;
    for p in &s.phases {
        writeln!(
            w,
            "{:<18}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            p.name,
            count(p.count),
            micros(p.min_us),
            micros(p.p50_us),
            micros(p.p90_us),
            micros(p.p99_us),
            micros(p.p999_us),
            micros(p.max_us),
            micros(p.mean_us.round() as u64)
        )?;
    }
    if s.phases.iter().any(|p| p.name.ends_with("_response")) {
        writeln!(
            w,
            "  (*_response phases run from the scheduled start, so they include any time the\n   generator or hub made a session or message wait; the others from the actual start)"
        )?;
    }
    super::failed::write_failures(w, s)?;
    if !s.outcomes.is_empty() {
        writeln!(w, "  not accepted, by outcome:")?;
        for (outcome, n) in &s.outcomes {
            let mut outcome = outcome.clone();
            if outcome.chars().count() > 80 {
                outcome = outcome.chars().take(79).collect::<String>() + "…";
            }
            writeln!(w, "  {:>10}  {}", count(*n), outcome)?;
        }
    }
    if let Some(hub) = &s.hub {
        if !hub.refused.is_empty() {
            let list: Vec<_> = hub
                .refused
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            writeln!(w, "  hub refusals: {}", list.join(", "))?;
        }
        if hub.lost > 0 {
            writeln!(w)?;
            writeln!(
                w,
                "!!! LOST MESSAGES: the hub counted {} fewer messages than were acknowledged\n    \
                 ({} devices, e.g. {}).",
                hub.lost,
                hub.lost_devices.len(),
                hub.lost_devices.first().map_or("?", String::as_str)
            )?;
        }
    }
    write_thresholds(w, s)?;
    super::throttling::write_text(w, s)?;
    writeln!(w)?;
    let g = &s.generator;
    if s.hosts.len() > 1 {
        for (n, h) in s.hosts.iter().enumerate() {
            writeln!(
                w,
                "{:<12}{}: CPU {:.0}% of {} cores, peak RSS {}, peak sessions {}",
                if n == 0 { "Generators" } else { "" },
                h.host.as_deref().unwrap_or("?"),
                h.cpu_utilisation * 100.0,
                h.cores,
                kib(h.peak_rss_kib),
                count(h.peak_sessions),
            )?;
        }
    } else {
        writeln!(
            w,
            "{:<12}CPU {:.0}% of {} cores, timer lag p99 {}, peak sessions {}",
            "Generator",
            g.cpu_utilisation * 100.0,
            g.cores,
            g.timer_lag_p99_us.map_or("not sampled".into(), micros),
            count(g.peak_sessions),
        )?;
        // Memory per session means something only over enough sessions to outweigh the noise of
        // the allocator and the runtime.
        let per_session = g
            .rss_per_session_kib
            .filter(|_| g.peak_sessions >= PER_SESSION_MIN)
            .map_or_else(String::new, |k| format!(" ({k:.1} KiB/session)"));
        writeln!(
            w,
            "{:<12}peak RSS {}{}",
            "",
            kib(g.peak_rss_kib),
            per_session
        )?;
    }
    if g.saturated {
        writeln!(
            w,
            "{:<12}SATURATED: the generator, not only the hub, limited this run:",
            ""
        )?;
        for r in &g.saturation_reasons {
            writeln!(w, "{:<12}  - {r}", "")?;
        }
    }
    Ok(())
}

/// Each rate planned against achieved, over the span defined once in `metrics::Rate`.
fn write_rates(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    for (n, row) in verdict::rate_rows(s).iter().enumerate() {
        let line = format!(
            "{:<12}{:<10}{:<18}{:<24}{}",
            if n == 0 { "Rates" } else { "" },
            row.label,
            row.planned(),
            row.achieved(),
            row.basis()
        );
        writeln!(w, "{}", line.trim_end())?;
    }
    let c = &s.counts;
    writeln!(
        w,
        "{:<12}late connects {}   late sends {}",
        "",
        count(c.late_connects),
        count(c.late_sends)
    )?;
    for row in verdict::rate_rows(s) {
        if let Some(short) = row.shortfall(s) {
            writeln!(w, "{:<12}{short}", "")?;
        }
    }
    if let Some(h) = verdict::handshakes(s) {
        writeln!(w, "{:<12}{h}", "Handshakes")?;
    }
    Ok(())
}

fn write_thresholds(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    if s.thresholds.is_empty() {
        return Ok(());
    }
    let failed = s.thresholds.iter().filter(|t| !t.passed).count();
    writeln!(w)?;
    writeln!(
        w,
        "{:<12}{} passed, {} failed",
        "Checks",
        s.thresholds.len() - failed,
        failed
    )?;
    for t in &s.thresholds {
        let seen = t
            .observed
            .map_or_else(|| "no data".to_owned(), |v| observed(t.unit, v));
        writeln!(
            w,
            "  {:<6}{:<44}observed {}",
            if t.passed { "pass" } else { "FAIL" },
            verdict::check_name(t),
            seen
        )?;
    }
    Ok(())
}

/// Which shard a run was, or which shards a merge holds, with how their starts lined up.
fn write_shards(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let offset = |ms: Option<f64>| {
        ms.map(|m| format!("   start-at offset {m:+.1} ms"))
            .unwrap_or_default()
    };
    if let Some(i) = &s.shard {
        let at = offset(i.start_offset_ms);
        writeln!(w, "{:<12}{}/{} of the fleet{at}", "Shard", i.index, i.count)?;
    }
    for (n, r) in s.shards.iter().enumerate() {
        // The reasons of partial shards are in the merged status line.
        let status = match &r.status {
            RunStatus::Complete => "complete",
            RunStatus::Partial { .. } => "PARTIAL",
        };
        writeln!(
            w,
            "{:<12}{}/{}   {} devices   {status}{}{}",
            if n == 0 { "Shards" } else { "" },
            r.shard.index,
            r.shard.count,
            count(r.devices),
            offset(r.shard.start_offset_ms),
            if r.generator.saturated {
                "   SATURATED"
            } else {
                ""
            }
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
            generator: GeneratorHealth {
                cores: 256,
                cpu_utilisation: 0.999,
                peak_rss_kib: 512 * 1024 * 1024,
                peak_sessions: big,
                rss_per_session_kib: Some(1234.5),
                timer_lag_p99_us: Some(3_000_000),
                saturated: true,
                saturation_reasons: vec![
                    "generator CPU averaged 100% of 256 cores (threshold 90%)".into(),
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
            shards: vec![crate::metrics::ShardRun {
                shard: crate::metrics::ShardInfo {
                    index: 999,
                    count: 1000,
                    start_at: Some("2026-01-01T00:00:00.000Z".into()),
                    start_offset_ms: Some(12345.678),
                },
                source: "logs.txt:12345".into(),
                started_at: "2026-01-01T00:00:00.000Z".into(),
                duration_secs: 5400.0,
                status: RunStatus::Complete,
                devices: big,
                generator: GeneratorHealth {
                    saturated: true,
                    ..GeneratorHealth::default()
                },
            }],
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
}
