//! The over-time charts of `report.html`: each key phase's latency per second with the rate it
//! was achieved at, then rates, sessions, errors and the generator's CPU and memory. Every
//! chart starts at the first second with data, not at a made-up (0 s, 0). A phase with latency
//! in at least `HEATMAP_MIN_SECONDS` (10) seconds gets a heat map after its chart.

use std::io;

use super::charts::{
    heatmap, latency_over_time, over_time, LatencyPoints, RateLines, HEATMAP_MIN_SECONDS,
};
use crate::metrics::{timeline_spans, FailureKind, TimelineRow};

/// The phases whose latency over time is charted, each with the achieved rate it goes with:
/// a send's response time and acknowledgement (MQTT, AMQP) with acknowledgements per second,
/// a connect's response time with connects per second.
const KEY_PHASES: [(&str, Rate); 4] = [
    ("send_response", Rate::Acks),
    ("publish_ack", Rate::Acks),
    ("send_ack", Rate::Acks),
    ("connect_response", Rate::Connects),
];

#[derive(Clone, Copy)]
enum Rate {
    Acks,
    Connects,
}

impl Rate {
    fn name(self) -> &'static str {
        match self {
            Self::Acks => "acks/s",
            Self::Connects => "connects/s",
        }
    }

    fn of(self, r: &TimelineRow) -> f64 {
        match self {
            Self::Acks => r.acks as f64,
            Self::Connects => r.connects as f64,
        }
    }

    /// What the plan asked for in the second of `r` (acknowledgements answer sends).
    fn planned(self, r: &TimelineRow) -> Option<f64> {
        match self {
            Self::Acks => r.planned_sends,
            Self::Connects => r.planned_connects,
        }
    }
}

/// Seconds of `rows` with latency of `phase`.
fn seconds_with(rows: &[TimelineRow], phase: &str) -> usize {
    rows.iter()
        .filter(|r| r.latency.contains_key(phase))
        .count()
}

/// The key phases with latency in at least two seconds (one point draws no line), in order,
/// each with whether it has seconds enough for a heat map.
fn charted(rows: &[TimelineRow]) -> impl Iterator<Item = (&'static str, Rate, bool)> + '_ {
    KEY_PHASES.into_iter().filter_map(|(p, rate)| {
        let n = seconds_with(rows, p);
        (n >= 2).then_some((p, rate, n >= HEATMAP_MIN_SECONDS))
    })
}

/// The names of the latency-over-time charts and heat maps of `rows`, in page order.
pub(super) fn latency_chart_names(rows: &[TimelineRow]) -> Vec<String> {
    let mut names = Vec::new();
    for (p, _, heat) in charted(rows) {
        names.push(format!("latency-over-time-{p}"));
        if heat {
            names.push(format!("heatmap-{p}"));
        }
    }
    names
}

/// Every over-time chart of `rows`, named, in page order.
pub(super) fn timeline_charts(rows: &[TimelineRow]) -> io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (phase, rate, heat) in charted(rows) {
        let latency: LatencyPoints = rows
            .iter()
            .filter_map(|r| {
                let l = r.latency_of(phase)?;
                let ms = |us: u64| us as f64 / 1000.0;
                Some((r.t as f64, ms(l.p50_us), ms(l.p99_us), ms(l.max_us)))
            })
            .collect();
        let achieved: Vec<(f64, f64)> = rows
            .iter()
            .zip(timeline_spans(rows))
            .map(|(r, span)| (r.t as f64, rate.of(r) / span as f64))
            .collect();
        let planned: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| Some((r.t as f64, rate.planned(r)?)))
            .collect();
        let rates = RateLines {
            name: rate.name(),
            achieved: &achieved,
            planned: &planned,
        };
        let title = format!("{phase} per second");
        out.push((
            format!("latency-over-time-{phase}"),
            latency_over_time(&title, &latency, &rates)?,
        ));
        if heat {
            let title = format!("{phase}: samples per second (red: p99)");
            if let Some(svg) = heatmap(&title, rows, phase)? {
                out.push((format!("heatmap-{phase}"), svg));
            }
        }
    }
    out.extend(
        counters(rows)?
            .into_iter()
            .map(|(n, svg)| (n.to_owned(), svg)),
    );
    Ok(out)
}

fn counters(rows: &[TimelineRow]) -> io::Result<Vec<(&'static str, String)>> {
    // Rows are deltas ending at `t`, each over its span (a second unless the generator was
    // starved): one point per row, from the first, per second.
    let line = |name: &str, f: &dyn Fn(&TimelineRow) -> f64| {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .zip(timeline_spans(rows))
            .map(|(r, span)| (r.t as f64, f(r) / span as f64))
            .collect();
        (name.to_owned(), points)
    };
    let rates = [
        line("connects/s", &|r| r.connects as f64),
        line("handshakes/s", &|r| r.handshakes as f64),
        line("sends/s", &|r| r.sends as f64),
        line("acks/s", &|r| r.acks as f64),
    ];
    let mut errors: Vec<_> = FailureKind::ALL
        .into_iter()
        .filter(|k| rows.iter().any(|r| r.errors_by_kind.contains_key(k.name())))
        .map(|k| {
            line(k.name(), &|r: &TimelineRow| {
                r.errors_by_kind.get(k.name()).copied().unwrap_or(0) as f64
            })
        })
        .collect();
    if errors.is_empty() {
        errors.push(line("errors (none)", &|r| r.errors as f64));
    }
    Ok(vec![
        ("rates", over_time("Rates", "per second", &rates)?),
        (
            "sessions",
            over_time(
                "Active sessions",
                "sessions",
                &[line("active", &|r| r.active as f64)],
            )?,
        ),
        (
            "errors",
            over_time("Errors by kind", "per second", &errors)?,
        ),
        (
            "generator-cpu",
            over_time(
                "Generator CPU",
                "% of one core",
                &[line("cpu", &|r| r.cpu * 100.0)],
            )?,
        ),
        (
            "generator-memory",
            over_time(
                "Generator memory",
                "RSS (MiB)",
                &[line("rss", &|r| r.rss_kib as f64 / 1024.0)],
            )?,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{new_histogram, IntervalLatency};

    fn rows() -> Vec<TimelineRow> {
        (1..=5)
            .map(|t| {
                let mut h = new_histogram();
                h.record(t * 100_000).unwrap();
                let mut r = TimelineRow {
                    t,
                    acks: 10 * t,
                    rss_kib: 50 * 1024,
                    ..TimelineRow::default()
                };
                r.latency
                    .insert("send_response".into(), IntervalLatency::from_histogram(&h));
                r
            })
            .collect()
    }

    /// The y coordinates of the first series line of an SVG (axes are 1 px wide, series 2).
    fn first_line_ys(svg: &str) -> Vec<String> {
        let key = "stroke-width=\"2\" points=\"";
        let start = svg.find(key).unwrap() + key.len();
        let end = start + svg[start..].find('"').unwrap();
        svg[start..end]
            .split_whitespace()
            .map(|p| p.split(',').nth(1).unwrap().to_owned())
            .collect()
    }

    #[test]
    fn constant_memory_is_a_flat_line_not_a_rise_from_zero() {
        let charts = timeline_charts(&rows()).unwrap();
        let memory = &charts
            .iter()
            .find(|(n, _)| n == "generator-memory")
            .unwrap()
            .1;
        let ys = first_line_ys(memory);
        assert_eq!(ys.len(), 5, "{ys:?}");
        assert!(ys.iter().all(|y| *y == ys[0]), "{ys:?}");
    }

    #[test]
    fn key_phases_with_seconds_of_latency_get_a_chart_first() {
        let rows = rows();
        assert_eq!(
            latency_chart_names(&rows),
            ["latency-over-time-send_response"]
        );
        let charts = timeline_charts(&rows).unwrap();
        assert_eq!(charts[0].0, "latency-over-time-send_response");
        assert!(charts[0].1.contains("acks/s achieved (right axis)"));
        // One second of latency draws no line, so no chart.
        assert!(latency_chart_names(&rows[..1]).is_empty());
    }
}
