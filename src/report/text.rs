//! The end-of-run text report: fits 100 columns, aligned, in units people read.

use std::io::{self, Write};

use super::format::{count, kib, micros, rate};
use crate::metrics::{RunStatus, Summary};

/// Writes the report of `s`.
pub fn write_text(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let status = match &s.status {
        RunStatus::Complete => "complete".to_owned(),
        RunStatus::Partial { reason } => format!("PARTIAL ({reason})"),
    };
    writeln!(
        w,
        "fleetbench {}: {} in {:.1} s",
        s.scenario_name, status, s.duration_secs
    )?;
    writeln!(w)?;
    let c = &s.counts;
    writeln!(
        w,
        "{:<12}attempted {}   connected {}   failed {}   devices {}",
        "Sessions",
        count(c.sessions_attempted),
        count(c.sessions_connected),
        count(c.sessions_failed),
        count(c.devices)
    )?;
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
            "   hub received {}   lost {}",
            count(hub.received),
            count(hub.lost)
        )?;
    }
    writeln!(w)?;
    writeln!(
        w,
        "{:<12}connects {}   acknowledgements {}   late connects {}   late sends {}",
        "Rates",
        rate(s.connects_per_sec),
        rate(s.acks_per_sec),
        count(c.late_connects),
        count(c.late_sends)
    )?;
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
    if !s.failures.is_empty() {
        writeln!(w)?;
        writeln!(w, "Failures")?;
        for f in &s.failures {
            let mut sample = f.sample.clone();
            if sample.chars().count() > 56 {
                sample = sample.chars().take(55).collect::<String>() + "…";
            }
            writeln!(
                w,
                "  {:<16}{:<12}{:>8}  {}",
                f.phase,
                f.kind,
                count(f.count),
                sample
            )?;
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
                "!!! LOST MESSAGES: the hub counted {} fewer messages than were acknowledged ({} devices, e.g. {}).",
                hub.lost,
                hub.lost_devices.len(),
                hub.lost_devices.first().map_or("?", String::as_str)
            )?;
        }
    }
    writeln!(w)?;
    let g = &s.generator;
    let per_session = g
        .rss_per_session_kib
        .map_or_else(String::new, |k| format!(", {k:.1} KiB/session"));
    writeln!(
        w,
        "{:<12}CPU {:.0}% of {} cores, peak RSS {}{}, peak sessions {}, timer lag p99 {}",
        "Generator",
        g.cpu_utilisation * 100.0,
        g.cores,
        kib(g.peak_rss_kib),
        per_session,
        count(g.peak_sessions),
        micros(g.timer_lag_p99_us)
    )?;
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
