//! `comparison.html`: a sweep's comparison as one self-contained page (inline CSS and SVG, no
//! script, nothing fetched), with a bar chart per figure and links to every cell's runs.
//!
//! Every chart is a `<figure class="chart" data-chart="NAME">` holding one `<svg>`; the names
//! are [`SWEEP_CHARTS`], so a browser check can tell that none is missing.

use std::io::{self, Write};

use super::html::{esc, write_head};
use super::sweep::{CellFigures, Spread, Sweep, METHOD};
use super::sweep_chart::{bars, Series};
use super::sweep_text::{cpu_rows, failed_runs, inside_rows, verdict, wire_rows};

/// The charts of `comparison.html`, in page order.
pub const SWEEP_CHARTS: [&str; 6] = [
    "handshakes-per-sec",
    "cpu-inside-handshake",
    "cpu-per-handshake",
    "handshakes-per-cpu-sec",
    "bytes-per-handshake",
    "tls-handshake-latency",
];

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1300px}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;text-align:right;\
border-bottom:1px solid #eee;white-space:nowrap}th:first-child,td:first-child{text-align:left}\
.pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}\
.charts{display:flex;flex-wrap:wrap;gap:12px}figure.chart{margin:0;border:1px solid #ddd}\
figcaption{font-size:12px;color:#555;padding:4px 8px}.note{color:#555;font-size:13px}";

/// The charts' titles, x descriptions and series.
fn charts(
    figures: &[CellFigures],
) -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    Vec<Series<'static>>,
)> {
    let col = |f: fn(&CellFigures) -> Option<Spread>| figures.iter().map(f).collect::<Vec<_>>();
    let ms = |f: fn(&CellFigures) -> Option<Spread>| {
        figures
            .iter()
            .map(|x| {
                f(x).map(|s| Spread {
                    median: s.median / 1000.0,
                    min: s.min / 1000.0,
                    max: s.max / 1000.0,
                })
            })
            .collect::<Vec<_>>()
    };
    vec![
        (
            SWEEP_CHARTS[0],
            "Handshakes per second",
            "handshakes/s",
            vec![("handshakes/s", col(|f| f.handshakes_per_sec))],
        ),
        (
            SWEEP_CHARTS[1],
            "CPU inside one full handshake (thread CPU clock)",
            "CPU µs per full handshake",
            vec![
                ("client (generator)", col(|f| f.client_inside_full_us)),
                ("server (hub)", col(|f| f.hub_inside_full_us)),
            ],
        ),
        (
            SWEEP_CHARTS[2],
            "CPU per session (/proc, the whole run)",
            "CPU µs per session",
            vec![
                ("client (generator)", col(|f| f.client_us_per_handshake)),
                ("server (hub)", col(|f| f.server_us_per_handshake)),
            ],
        ),
        (
            SWEEP_CHARTS[3],
            "Sessions per CPU-second (/proc, the whole run)",
            "sessions per CPU-second",
            vec![
                (
                    "client (generator)",
                    col(|f| f.handshakes_per_client_cpu_sec),
                ),
                ("server (hub)", col(|f| f.handshakes_per_server_cpu_sec)),
            ],
        ),
        (
            SWEEP_CHARTS[4],
            "Bytes per handshake",
            "TCP payload bytes per handshake",
            vec![
                ("client -> server", col(|f| f.bytes_to_server)),
                ("server -> client", col(|f| f.bytes_to_client)),
            ],
        ),
        (
            SWEEP_CHARTS[5],
            "TLS handshake latency (full handshakes)",
            "latency (ms)",
            vec![
                ("p50", ms(|f| f.tls_handshake_p50_us)),
                ("p99", ms(|f| f.tls_handshake_p99_us)),
            ],
        ),
    ]
}

fn table(w: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
    writeln!(w, "<table>")?;
    for (i, row) in rows.iter().enumerate() {
        let tag = if i == 0 { "th" } else { "td" };
        write!(w, "<tr>")?;
        for cell in row {
            write!(w, "<{tag}>{}</{tag}>", esc(cell))?;
        }
        writeln!(w, "</tr>")?;
    }
    writeln!(w, "</table>")
}

/// Writes `comparison.html`.
pub fn write_sweep_html(w: &mut impl Write, sweep: &Sweep) -> io::Result<()> {
    let word = verdict(sweep);
    let title = format!("fleetbench sweep {}: {word}", sweep.name);
    write_head(w, &title, STYLE)?;
    let class = if word == "PASSED" { "pass" } else { "fail" };
    writeln!(
        w,
        "<h1>fleetbench sweep {}: <span class=\"{class}\">{}</span></h1><p>Started {} UTC: {} \
         cells x {} rounds ({} order), skipped: {}.</p>",
        esc(&sweep.name),
        esc(&word),
        esc(&sweep.started_at),
        sweep.cells.len(),
        sweep.rounds,
        esc(&sweep.order),
        sweep.skipped.len()
    )?;
    if let Some(d) = &sweep.description {
        writeln!(w, "<p>{}</p>", esc(d.trim()))?;
    }
    writeln!(w, "<p class=\"note\">{}</p>", esc(METHOD))?;
    let figures: Vec<CellFigures> = sweep
        .cells
        .iter()
        .map(|c| CellFigures::of(&c.runs))
        .collect();
    let labels: Vec<String> = sweep.cells.iter().map(|c| c.label.clone()).collect();
    writeln!(w, "<h2>Charts</h2><div class=\"charts\">")?;
    for (name, title, x_desc, series) in charts(&figures) {
        let svg = bars(title, x_desc, &labels, &series)?;
        writeln!(
            w,
            "<figure class=\"chart\" data-chart=\"{name}\">{svg}<figcaption>{name}: median over \
             rounds, whiskers from the smallest to the largest round</figcaption></figure>"
        )?;
    }
    writeln!(w, "</div><h2>Rate and CPU per handshake</h2>")?;
    table(w, &cpu_rows(sweep))?;
    writeln!(
        w,
        "<h2>CPU inside one handshake</h2><p>Mean µs, read by the thread CPU clock around each \
         handshake on the client and on the hub: the handshake alone, without the session's \
         other work.</p>"
    )?;
    table(w, &inside_rows(sweep))?;
    writeln!(w, "<h2>On the wire and latency</h2>")?;
    table(w, &wire_rows(sweep))?;
    write_cells(w, sweep)
}

/// Each cell's values and runs (links to their reports), then what was skipped.
fn write_cells(w: &mut impl Write, sweep: &Sweep) -> io::Result<()> {
    writeln!(w, "<h2>Cells and their runs</h2><table><tr><th>cell</th>")?;
    for a in &sweep.axes {
        write!(w, "<th>{}</th>", esc(a))?;
    }
    writeln!(w, "<th>runs</th><th>verdict</th></tr>")?;
    for c in &sweep.cells {
        write!(w, "<tr><td>{}</td>", esc(&c.label))?;
        for (_, v) in &c.values {
            write!(w, "<td>{}</td>", esc(v))?;
        }
        let links: Vec<String> = c
            .runs
            .iter()
            .map(|r| match &r.dir {
                Some(d) => format!(
                    "<a href=\"{}/report.html\">round {}</a>",
                    esc(&d.display().to_string()),
                    r.round
                ),
                None => format!("round {} (did not run)", r.round),
            })
            .collect();
        let failed = failed_runs(c);
        let verdict = if failed.is_empty() {
            "<span class=\"pass\">passed</span>".to_owned()
        } else {
            format!("<span class=\"fail\">{}</span>", esc(&failed.join("; ")))
        };
        writeln!(w, "<td>{}</td><td>{verdict}</td></tr>", links.join(" "))?;
    }
    writeln!(w, "</table>")?;
    if !sweep.skipped.is_empty() {
        writeln!(w, "<h2>Skipped</h2><ul>")?;
        for s in &sweep.skipped {
            writeln!(w, "<li>{}: {}</li>", esc(&s.label), esc(&s.reason))?;
        }
        writeln!(w, "</ul>")?;
    }
    writeln!(w, "</body></html>")
}
