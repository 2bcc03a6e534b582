//! Machine-readable files of a results directory besides `summary.json`: `timeline.csv` (one
//! row per second, with each phase's count and percentiles of that second) and `latency.hlog`
//! (an HdrHistogram interval log, one interval per second per phase, tagged with the phase name,
//! which HdrHistogram's `HistogramLogProcessor` and Python's `hdrh` read).

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use crate::metrics::{decode_histogram, FailedSession, FailureKind, Phase, Summary};

/// The per-phase latency columns of `timeline.csv`, after `<phase>_`.
const LATENCY_COLUMNS: [&str; 5] = ["count", "p50_us", "p90_us", "p99_us", "max_us"];

/// The phases with latency in any interval of the timeline, in report order.
pub(crate) fn timeline_phases(s: &Summary) -> Vec<&'static str> {
    Phase::ALL
        .into_iter()
        .map(Phase::name)
        .filter(|p| s.timeline.iter().any(|r| r.latency.contains_key(*p)))
        .collect()
}

/// Writes the timeline as CSV: a header, then one row per second of the run; each phase with
/// latency anywhere in the run adds `<phase>_count`, `_p50_us`, `_p90_us`, `_p99_us` and
/// `_max_us` (empty in seconds without samples of it).
pub fn write_timeline_csv(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    write!(w, "t_secs,connects,handshakes,sends,acks,errors")?;
    for k in FailureKind::ALL {
        write!(w, ",errors_{}", k.name())?;
    }
    write!(
        w,
        ",active_sessions,cpu_cores,rss_kib,timer_lag_us,planned_connects,planned_sends"
    )?;
    let phases = timeline_phases(s);
    for p in &phases {
        for c in LATENCY_COLUMNS {
            write!(w, ",{p}_{c}")?;
        }
    }
    writeln!(w)?;
    for r in &s.timeline {
        write!(
            w,
            "{},{},{},{},{},{}",
            r.t, r.connects, r.handshakes, r.sends, r.acks, r.errors
        )?;
        for k in FailureKind::ALL {
            write!(
                w,
                ",{}",
                r.errors_by_kind.get(k.name()).copied().unwrap_or(0)
            )?;
        }
        write!(w, ",{},{:.3},{},{}", r.active, r.cpu, r.rss_kib, r.lag_us)?;
        let planned = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
        write!(
            w,
            ",{},{}",
            planned(r.planned_connects),
            planned(r.planned_sends)
        )?;
        for p in &phases {
            match r.latency_of(p) {
                Some(l) => write!(
                    w,
                    ",{},{},{},{},{}",
                    l.count, l.p50_us, l.p90_us, l.p99_us, l.max_us
                )?,
                None => write!(w, ",,,,,")?,
            }
        }
        writeln!(w)?;
    }
    Ok(())
}

/// Writes the run's latency as an HdrHistogram interval log: each second of the timeline, each
/// phase's interval histogram tagged with the phase's name (adding a tag's intervals gives the
/// whole run's histogram). A summary without per-second latency (written by an older version)
/// gives one whole-run interval per phase instead. Values are microseconds; the interval max
/// column is in milliseconds (`MaxValueDivisor` 1000).
pub fn write_hlog(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let start = humantime::parse_rfc3339(&s.started_at).unwrap_or(SystemTime::UNIX_EPOCH);
    let length = Duration::from_secs_f64(s.duration_secs.max(0.0));
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment(&format!(
            "fleetbench {} {}: latency per phase in microseconds, one interval per second per \
             phase, tagged with the phase's name",
            s.tool_version, s.scenario_name
        ))
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1000.0)
        .begin_log_with(w, &mut serializer)?;
    if s.timeline.iter().any(|r| !r.latency.is_empty()) {
        let phases = timeline_phases(s);
        for r in &s.timeline {
            let from = Duration::from_secs(r.t.saturating_sub(1));
            // The last row is the partial second up to the end of the run.
            let secs = (s.duration_secs - from.as_secs_f64()).clamp(1e-3, 1.0);
            for p in &phases {
                let Some(l) = r.latency_of(p) else { continue };
                let h = l.decode().map_err(io::Error::other)?;
                log.write_histogram(&h, from, Duration::from_secs_f64(secs), Tag::new(p))
                    .map_err(|e| io::Error::other(e.to_string()))?;
            }
        }
        return Ok(());
    }
    for p in &s.phases {
        let h = decode_histogram(&p.histogram).map_err(io::Error::other)?;
        log.write_histogram(&h, Duration::ZERO, length, Tag::new(&p.name))
            .map_err(|e| io::Error::other(e.to_string()))?;
    }
    Ok(())
}

/// Writes `failures.csv`: a header, then one row per failed session (device id, session attempt
/// from 1, phase, kind, the full message, seconds since the run's start); when more than
/// [`crate::metrics::MAX_FAILED_SESSIONS`] failed, a last row of kind `left_out` says how many
/// more were not listed.
pub(super) fn write_failures_csv(
    w: &mut impl Write,
    rows: &[FailedSession],
    left_out: u64,
) -> io::Result<()> {
    writeln!(w, "device,attempt,phase,kind,message,t_secs")?;
    for r in rows {
        writeln!(
            w,
            "{},{},{},{},{},{:.3}",
            csv_field(&r.device),
            r.attempt,
            r.phase,
            r.kind,
            csv_field(&r.message),
            r.at_secs
        )?;
    }
    if left_out > 0 {
        writeln!(
            w,
            ",,,left_out,{} more failed sessions not listed,",
            left_out
        )?;
    }
    Ok(())
}

/// A CSV field, quoted (RFC 4180) when it holds a comma, quote or line break.
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod failures_tests {
    use super::*;

    #[test]
    fn failures_csv_quotes_messages_and_says_what_was_left_out() {
        let row = FailedSession {
            device: "dev-1".into(),
            attempt: 2,
            phase: "tls_handshake",
            kind: "handshake",
            message: "invalid peer certificate: \"UnknownIssuer\", sorry".into(),
            at_secs: 1.5,
        };
        let mut out = Vec::new();
        write_failures_csv(&mut out, &[row], 7).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "device,attempt,phase,kind,message,t_secs\n\
             dev-1,2,tls_handshake,handshake,\"invalid peer certificate: \"\"UnknownIssuer\"\", sorry\",1.500\n\
             ,,,left_out,7 more failed sessions not listed,\n"
        );
    }
}
