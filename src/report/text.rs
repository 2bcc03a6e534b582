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
pub(super) fn wrap(text: &str, width: usize) -> Vec<String> {
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
    if let Some(id) = &s.run_id {
        writeln!(w, "{:<12}{id}", "Run id")?;
    }
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
    super::delivery::write_text(w, s)?;
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
    super::handshake::write_text(w, s)?;
    super::cpu_split::write_text(w, s)?;
    super::stages::write_text(w, s)
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
mod tests;
