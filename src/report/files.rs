//! Machine-readable files of a results directory besides `summary.json`: `timeline.csv` (one
//! row per second) and `latency.hlog` (an HdrHistogram interval log, one interval per phase,
//! tagged with the phase name, which HdrHistogram's `HistogramLogProcessor` reads).

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use crate::metrics::{decode_histogram, FailureKind, Summary};

/// Writes the timeline as CSV: a header, then one row per second of the run.
pub fn write_timeline_csv(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    write!(w, "t_secs,connects,handshakes,sends,acks,errors")?;
    for k in FailureKind::ALL {
        write!(w, ",errors_{}", k.name())?;
    }
    writeln!(w, ",active_sessions,cpu_cores,rss_kib,timer_lag_us")?;
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
        writeln!(w, ",{},{:.3},{},{}", r.active, r.cpu, r.rss_kib, r.lag_us)?;
    }
    Ok(())
}

/// Writes every phase's histogram as one interval of an HdrHistogram interval log. Values are
/// microseconds; the interval max column is in milliseconds (`MaxValueDivisor` 1000).
pub fn write_hlog(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let start = humantime::parse_rfc3339(&s.started_at).unwrap_or(SystemTime::UNIX_EPOCH);
    let length = Duration::from_secs_f64(s.duration_secs.max(0.0));
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment(&format!(
            "fleetbench {} {}: latency per phase in microseconds, one interval per phase \
             tagged with its name",
            s.tool_version, s.scenario_name
        ))
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1000.0)
        .begin_log_with(w, &mut serializer)?;
    for p in &s.phases {
        let h = decode_histogram(&p.histogram).map_err(io::Error::other)?;
        log.write_histogram(&h, Duration::ZERO, length, Tag::new(&p.name))
            .map_err(|e| io::Error::other(e.to_string()))?;
    }
    Ok(())
}
