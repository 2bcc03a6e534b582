//! `report.html`: one self-contained page (inline CSS and SVG, no script, no network; a
//! Content-Security-Policy forbids fetching anything) with the run's numbers and charts.
//!
//! Every chart is a `<figure class="chart" data-chart="NAME">` holding one `<svg>`; the names
//! are listed by [`chart_names`] so a browser check can tell that none is missing.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::charts::spectrum;
use super::format::{count, kib, micros, observed, rate};
use super::timeline_charts::{latency_chart_names, timeline_charts};
use super::verdict;
use crate::metrics::{decode_histogram, RunStatus, Summary};

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}\
h1{font-size:22px}.description{white-space:pre-line;color:#444}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;text-align:right;\
border-bottom:1px solid #eee}th:first-child,td:first-child{text-align:left}\
.pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}\
.charts{display:flex;flex-wrap:wrap;gap:12px}figure.chart{margin:0;border:1px solid #ddd}\
figcaption{font-size:12px;color:#555;padding:4px 8px}.note{color:#555;font-size:13px}";

/// The names of the charts [`write_html`] draws for `s`, in page order.
pub fn chart_names(s: &Summary) -> Vec<String> {
    let mut names: Vec<String> = s
        .phases
        .iter()
        .map(|p| format!("latency-{}", p.name))
        .collect();
    names.extend(latency_chart_names(&s.timeline));
    names.extend(
        [
            "rates",
            "sessions",
            "errors",
            "generator-cpu",
            "generator-memory",
        ]
        .map(String::from),
    );
    names
}

/// Writes the HTML report of `s`.
pub fn write_html(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let title = format!("fleetbench {}: {}", s.scenario_name, verdict::word(s));
    write_head(w, &title, STYLE)?;
    writeln!(
        w,
        "<h1>{}</h1><p>Started {} UTC, ran {:.1} s, fleetbench {}.</p>",
        esc(&title),
        esc(&s.started_at),
        s.duration_secs,
        esc(&s.tool_version)
    )?;
    if let Some(d) = super::text::description(s) {
        writeln!(w, "<p class=\"description\">{}</p>", esc(d.trim()))?;
    }
    write_verdict(w, s)?;
    write_thresholds(w, s)?;
    write_totals(w, s)?;
    write_shards(w, s)?;
    write_rates(w, s)?;
    super::stages::write_html(w, s)?;
    write_throttling(w, s)?;
    super::handshake::write_html(w, s)?;
    super::cpu_split::write_html(w, s)?;
    super::delivery::write_html(w, s)?;
    write_phases(w, s)?;
    writeln!(
        w,
        "<h2>Latency percentile spectrum</h2><p class=\"note\">x: percentile on a log \
        scale (1/(1-q), as HdrHistogram plots it); y: latency. *_response phases run from the \
        scheduled start.</p><div class=\"charts\">"
    )?;
    for p in &s.phases {
        let h = decode_histogram(&p.histogram).map_err(io::Error::other)?;
        figure(w, &format!("latency-{}", p.name), &spectrum(&p.name, &h)?)?;
    }
    writeln!(w, "</div><h2>Over time</h2><div class=\"charts\">")?;
    for (name, svg) in timeline_charts(&s.timeline)? {
        figure(w, &name, &svg)?;
    }
    writeln!(w, "</div>")?;
    write_failures(w, s)?;
    write_generator(w, s)?;
    writeln!(w, "<h2>Settings</h2><table>")?;
    let mut settings = Vec::new();
    flatten("", &s.scenario, &mut settings);
    for (k, v) in settings {
        writeln!(w, "<tr><td>{}</td><td>{}</td></tr>", esc(&k), esc(&v))?;
    }
    writeln!(w, "</table></body></html>")
}

fn figure(w: &mut impl Write, name: &str, svg: &str) -> io::Result<()> {
    writeln!(
        w,
        "<figure class=\"chart\" data-chart=\"{name}\">{svg}<figcaption>{name}</figcaption></figure>"
    )
}

/// What the exit status says, and why, before any figure.
fn write_verdict(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let class = if s.judge().passed() { "pass" } else { "fail" };
    writeln!(
        w,
        "<p class=\"verdict\" data-verdict=\"{}\"><span class=\"{class}\">{}</span>. \
         Schedule {}.</p>",
        esc(&verdict::word(s)),
        esc(&verdict::word(s)),
        esc(&verdict::schedule(s))
    )?;
    let failed = verdict::failed_checks(s);
    if !failed.is_empty() {
        writeln!(w, "<ul class=\"failed\">")?;
        for f in failed {
            writeln!(w, "<li class=\"fail\">{}</li>", esc(&f))?;
        }
        writeln!(w, "</ul>")?;
    }
    Ok(())
}

/// Each rate planned against achieved.
fn write_rates(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    writeln!(
        w,
        "<h2>Rates</h2><table><tr><th>rate</th><th>planned</th><th>achieved</th>\
         <th>over</th></tr>"
    )?;
    let rows = verdict::rate_rows(s);
    for row in &rows {
        writeln!(
            w,
            "<tr data-rate=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            row.label,
            row.label,
            esc(&row
                .rate
                .planned_per_sec
                .map_or_else(|| "-".to_owned(), rate)),
            esc(&row.achieved()),
            esc(&row.basis())
        )?;
    }
    writeln!(w, "</table>")?;
    for short in rows.iter().filter_map(|r| r.shortfall(s)) {
        writeln!(w, "<p class=\"note\">{}</p>", esc(&short))?;
    }
    if let Some(h) = verdict::handshakes(s) {
        writeln!(w, "<p data-handshakes>Handshakes: {}</p>", esc(&h))?;
    }
    Ok(())
}

fn write_thresholds(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    if s.thresholds.is_empty() {
        return Ok(());
    }
    writeln!(
        w,
        "<h2>Checks</h2><table><tr><th>metric</th><th>condition</th>\
        <th>observed</th><th>result</th></tr>"
    )?;
    for t in &s.thresholds {
        let seen = t
            .observed
            .map_or_else(|| "no data".to_owned(), |v| observed(t.unit, v));
        let (class, word) = if t.passed {
            ("pass", "pass")
        } else {
            ("fail", "FAIL")
        };
        writeln!(
            w,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{word}</td></tr>",
            esc(&t.metric),
            esc(&format!(
                "{}{}",
                t.condition,
                if t.default { " (default)" } else { "" }
            )),
            esc(&seen)
        )?;
    }
    writeln!(w, "</table>")
}

fn write_totals(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let c = &s.counts;
    let mut rows = vec![
        ("devices", count(c.devices)),
        ("sessions attempted", count(c.sessions_attempted)),
        ("sessions connected", count(c.sessions_connected)),
        ("sessions failed", count(c.sessions_failed)),
        (
            "devices that never connected",
            count(c.devices_never_connected),
        ),
        (
            "reconnect attempts: came back / did not",
            format!(
                "{} / {}",
                count(c.reconnects_connected),
                count(c.reconnects.saturating_sub(c.reconnects_connected))
            ),
        ),
        ("messages sent", count(c.messages_sent)),
        ("messages acknowledged", count(c.messages_acked)),
        ("messages unacknowledged", count(c.messages_unacked)),
        (
            "late connects / sends",
            format!("{} / {}", count(c.late_connects), count(c.late_sends)),
        ),
    ];
    if let Some(hub) = &s.hub {
        rows.push((
            "hub received / lost",
            format!("{} / {}", count(hub.received), count(hub.lost)),
        ));
    }
    writeln!(w, "<h2>Totals</h2><table>")?;
    for (k, v) in rows {
        writeln!(w, "<tr><td>{k}</td><td>{}</td></tr>", esc(&v))?;
    }
    writeln!(w, "</table>")
}

/// A merge's Shards table (as the text report's Shards lines), or a shard's own place.
fn write_shards(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let offset = |ms: Option<f64>| ms.map(|m| format!("{m:+.1} ms")).unwrap_or_default();
    if let Some(i) = &s.shard {
        writeln!(
            w,
            "<p>Shard {}/{} of the fleet{}.</p>",
            i.index,
            i.count,
            i.start_offset_ms
                .map(|_| format!(", start-at offset {}", offset(i.start_offset_ms)))
                .unwrap_or_default()
        )?;
    }
    if s.shards.is_empty() {
        return Ok(());
    }
    writeln!(
        w,
        "<h2>Shards</h2><table><tr><th>shard</th><th>devices</th><th>status</th>\
         <th>start offset</th><th>saturated</th><th>source</th></tr>"
    )?;
    for r in &s.shards {
        let (class, status) = match &r.status {
            RunStatus::Complete => ("", "complete"),
            RunStatus::Partial { .. } => (" class=\"fail\"", "partial"),
        };
        let saturated = if r.generator.saturated {
            "<span class=\"fail\">saturated</span>"
        } else {
            "no"
        };
        writeln!(
            w,
            "<tr><td>{}/{}</td><td>{}</td><td{class}>{status}</td><td>{}</td><td>{saturated}</td>\
             <td>{}</td></tr>",
            r.shard.index,
            r.shard.count,
            count(r.devices),
            esc(&offset(r.shard.start_offset_ms)),
            esc(&r.source)
        )?;
    }
    writeln!(w, "</table>")
}

/// The Throttling section, when the hub throttled the run (shared with the text report).
fn write_throttling(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    super::throttling::write_html(w, s)
}

fn write_phases(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    writeln!(
        w,
        "<h2>Latency</h2><table><tr><th>phase</th><th>count</th><th>min</th>\
        <th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>mean</th></tr>"
    )?;
    for p in &s.phases {
        let mut row = format!("<tr><td>{}</td><td>{}</td>", esc(&p.name), count(p.count));
        for v in [
            p.min_us,
            p.p50_us,
            p.p90_us,
            p.p99_us,
            p.p999_us,
            p.max_us,
            p.mean_us.round() as u64,
        ] {
            let _ = write!(row, "<td>{}</td>", micros(v));
        }
        writeln!(w, "{row}</tr>")?;
    }
    writeln!(w, "</table>")
}

fn write_failures(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    if s.failures.is_empty() {
        return Ok(());
    }
    writeln!(
        w,
        "<h2>Failures</h2><table><tr><th>phase</th><th>kind</th><th>count</th>\
        <th>first message</th><th>devices</th></tr>"
    )?;
    for f in &s.failures {
        let mut devices = f.devices.join(", ");
        if f.devices_more > 0 {
            devices += &format!(" and {} more", count(f.devices_more));
        }
        writeln!(
            w,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.phase),
            esc(&f.kind),
            count(f.count),
            esc(&f.sample),
            esc(&devices)
        )?;
    }
    writeln!(w, "</table>")
}

fn write_generator(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let g = &s.generator;
    let rows = [
        (
            "CPU",
            format!("{:.0}% of {} cores", g.cpu_utilisation * 100.0, g.cores),
        ),
        (
            "CPU user / system",
            format!("{:.2} s / {:.2} s", g.cpu_user_secs, g.cpu_system_secs),
        ),
        ("peak RSS", kib(g.peak_rss_kib)),
        ("peak sessions", count(g.peak_sessions)),
        (
            "RSS per session",
            g.rss_per_session_kib
                .map_or("-".into(), |k| format!("{k:.1} KiB")),
        ),
        (
            "timer lag p99 / max",
            format!(
                "{} / {}",
                g.timer_lag_p99_us.map_or("not sampled".into(), micros),
                micros(g.timer_lag_max_us)
            ),
        ),
        (
            "saturated",
            if g.saturated {
                g.saturation_reasons.join("; ")
            } else {
                "no".into()
            },
        ),
    ];
    writeln!(w, "<h2>Generator health</h2><table>")?;
    for (k, v) in rows {
        writeln!(w, "<tr><td>{k}</td><td>{}</td></tr>", esc(&v))?;
    }
    writeln!(w, "</table>")
}

/// `a.b = value` pairs of a JSON document, for the settings table.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

/// A self-contained page's head, up to `<body>`: its Content-Security-Policy forbids fetching
/// anything (inline styles and SVG only), `title` escaped here.
pub(super) fn write_head(w: &mut impl Write, title: &str, style: &str) -> io::Result<()> {
    write!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'\"><title>{}</title><style>{style}</style></head><body>\n",
        esc(title)
    )
}

/// Escapes text for HTML.
pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
