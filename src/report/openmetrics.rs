//! Live metrics in the OpenMetrics text format (which Prometheus scrapes), made from a
//! [`Snapshot`] of the counters and the merged histograms. Pure: the HTTP side is in `command`.

use std::io::{self, Write};

use crate::metrics::{FailureKind, LatencyHistogram, Phase, Snapshot};

/// The Content-Type of [`write_openmetrics`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Writes one exposition, ending with `# EOF`.
pub fn write_openmetrics(
    w: &mut impl Write,
    s: &Snapshot,
    histograms: &[(Phase, LatencyHistogram)],
) -> io::Result<()> {
    let counters = [
        (
            "sessions_attempted",
            "Sessions that began a TCP connect.",
            s.sessions_attempted,
        ),
        (
            "sessions_connected",
            "Sessions that reached the connected state.",
            s.sessions_connected,
        ),
        (
            "sessions_failed",
            "Sessions that failed.",
            s.sessions_failed,
        ),
        ("handshakes", "TLS handshakes completed.", s.handshakes),
        ("messages_sent", "Messages written.", s.messages_sent),
        (
            "messages_acked",
            "Messages acknowledged by the hub.",
            s.messages_acked,
        ),
        (
            "messages_unacked",
            "Messages never acknowledged.",
            s.messages_unacked,
        ),
    ];
    for (name, help, value) in counters {
        writeln!(w, "# TYPE fleetbench_{name} counter")?;
        writeln!(w, "# HELP fleetbench_{name} {help}")?;
        writeln!(w, "fleetbench_{name}_total {value}")?;
    }
    writeln!(w, "# TYPE fleetbench_sessions_active gauge")?;
    writeln!(
        w,
        "# HELP fleetbench_sessions_active Sessions connected now."
    )?;
    writeln!(w, "fleetbench_sessions_active {}", s.sessions_active)?;
    writeln!(w, "# TYPE fleetbench_errors counter")?;
    writeln!(w, "# HELP fleetbench_errors Failures by kind.")?;
    for (k, n) in FailureKind::ALL.iter().zip(s.errors_by_kind) {
        writeln!(w, "fleetbench_errors_total{{kind=\"{}\"}} {n}", k.name())?;
    }
    writeln!(w, "# TYPE fleetbench_latency_seconds summary")?;
    writeln!(w, "# UNIT fleetbench_latency_seconds seconds")?;
    writeln!(
        w,
        "# HELP fleetbench_latency_seconds Latency of each phase so far."
    )?;
    for (phase, h) in histograms {
        let name = phase.name();
        for q in [0.5, 0.9, 0.99, 0.999] {
            let v = h.value_at_quantile(q) as f64 / 1e6;
            writeln!(
                w,
                "fleetbench_latency_seconds{{phase=\"{name}\",quantile=\"{q}\"}} {v}"
            )?;
        }
        let sum = h.mean() * h.len() as f64 / 1e6;
        writeln!(
            w,
            "fleetbench_latency_seconds_sum{{phase=\"{name}\"}} {sum}"
        )?;
        writeln!(
            w,
            "fleetbench_latency_seconds_count{{phase=\"{name}\"}} {}",
            h.len()
        )?;
    }
    writeln!(w, "# EOF")
}
