//! A sweep's comparison as text: the headline, a table of rate and CPU per cell, a table of
//! bytes, round trips and latency per cell, what was skipped and what failed.

use std::io::{self, Write};

use super::format::{count, micros};
use super::sweep::{passed, CellFigures, CellRun, Spread, Sweep, SweepCell};

/// The verdict word of a sweep.
pub(super) fn verdict(sweep: &Sweep) -> String {
    match (&sweep.interrupted, passed(sweep)) {
        (Some(why), _) => format!("PARTIAL ({why})"),
        (None, true) => "PASSED".into(),
        (None, false) => "FAILED".into(),
    }
}

/// A cell's median, with `[min-max]` when `range` and the rounds differ.
pub(super) fn spread(s: Option<Spread>, f: fn(f64) -> String, range: bool) -> String {
    match s {
        None => "-".into(),
        Some(s) if range && s.min != s.max => {
            format!("{} [{}-{}]", f(s.median), f(s.min), f(s.max))
        }
        Some(s) => f(s.median),
    }
}

pub(super) fn whole(x: f64) -> String {
    count(x.round() as u64)
}

pub(super) fn one_decimal(x: f64) -> String {
    if x >= 10_000.0 {
        whole(x)
    } else {
        format!("{x:.1}")
    }
}

pub(super) fn us(x: f64) -> String {
    micros(x.round() as u64)
}

/// `1,234 (chain 640, 52%)`.
pub(super) fn with_chain(bytes: Option<Spread>, chain: Option<Spread>) -> String {
    match (bytes, chain) {
        (Some(b), Some(c)) if c.median > 0.0 && b.median > 0.0 => format!(
            "{} (chain {}, {:.0}%)",
            whole(b.median),
            whole(c.median),
            100.0 * c.median / b.median
        ),
        (b, _) => spread(b, whole, false),
    }
}

/// A table's rows: `header`, then one per cell, its label and `columns` of its figures.
fn rows_of<const N: usize>(
    sweep: &Sweep,
    header: [&str; N],
    columns: impl Fn(&CellFigures) -> Vec<String>,
) -> Vec<Vec<String>> {
    let mut rows = vec![header.map(String::from).to_vec()];
    for c in &sweep.cells {
        let mut row = vec![c.label.clone()];
        row.extend(columns(&CellFigures::of(&c.runs)));
        rows.push(row);
    }
    rows
}

/// The rows of the rate and CPU table: header, then one per cell.
pub(super) fn cpu_rows(sweep: &Sweep) -> Vec<Vec<String>> {
    let header = [
        "cell",
        "handshakes/s",
        "client CPU/hs",
        "hs per client CPU-s",
        "hub CPU/hs",
        "hs per hub CPU-s",
        "failed sessions",
    ];
    rows_of(sweep, header, |f| {
        vec![
            spread(f.handshakes_per_sec, one_decimal, true),
            spread(f.client_us_per_handshake, us, true),
            spread(f.handshakes_per_client_cpu_sec, whole, false),
            spread(f.server_us_per_handshake, us, true),
            spread(f.handshakes_per_server_cpu_sec, whole, false),
            spread(f.errors, whole, false),
        ]
    })
}

/// The rows of the in-handshake CPU table: header, then one per cell.
pub(super) fn inside_rows(sweep: &Sweep) -> Vec<Vec<String>> {
    let header = [
        "cell",
        "client full",
        "client resumed",
        "hub full",
        "hub resumed",
    ];
    rows_of(sweep, header, |f| {
        [
            f.client_inside_full_us,
            f.client_inside_resumed_us,
            f.hub_inside_full_us,
            f.hub_inside_resumed_us,
        ]
        .map(|x| spread(x, us, true))
        .to_vec()
    })
}

/// The rows of the wire and latency table.
pub(super) fn wire_rows(sweep: &Sweep) -> Vec<Vec<String>> {
    let header = [
        "cell",
        "bytes up",
        "bytes down",
        "RTT",
        "resumed",
        "tls p50",
        "tls p99",
        "connect p50",
        "connect p99",
    ];
    rows_of(sweep, header, |f| {
        vec![
            with_chain(f.bytes_to_server, f.chain_sent_bytes),
            with_chain(f.bytes_to_client, f.chain_received_bytes),
            spread(f.round_trips, |x| format!("{x:.2}"), false),
            spread(f.resumed_share, |x| format!("{:.0}%", 100.0 * x), false),
            spread(f.tls_handshake_p50_us, us, false),
            spread(f.tls_handshake_p99_us, us, true),
            spread(f.connect_response_p50_us, us, false),
            spread(f.connect_response_p99_us, us, true),
        ]
    })
}

fn write_table(w: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i == 0 {
                line += &format!("{cell}{}", " ".repeat(pad));
            } else {
                line += &format!("  {}{cell}", " ".repeat(pad));
            }
        }
        writeln!(w, "{}", line.trim_end())?;
    }
    Ok(())
}

/// The runs of a cell that did not pass, as `round K: problem`.
pub(super) fn failed_runs(c: &SweepCell) -> Vec<String> {
    c.runs
        .iter()
        .filter_map(|r: &CellRun| r.problem().map(|p| format!("round {}: {p}", r.round)))
        .collect()
}

/// The text comparison.
pub fn write_sweep_text(w: &mut impl Write, sweep: &Sweep) -> io::Result<()> {
    writeln!(
        w,
        "fleetbench sweep {}: {}, {} cell{} x {} round{} ({} order), {} skipped",
        sweep.name,
        verdict(sweep),
        sweep.cells.len(),
        if sweep.cells.len() == 1 { "" } else { "s" },
        sweep.rounds,
        if sweep.rounds == 1 { "" } else { "s" },
        sweep.order,
        sweep.skipped.len()
    )?;
    if let Some(d) = &sweep.description {
        writeln!(w, "{}", d.trim())?;
    }
    writeln!(
        w,
        "\nRate and CPU per handshake (median over rounds [min-max])"
    )?;
    write_table(w, &cpu_rows(sweep))?;
    writeln!(
        w,
        "\nCPU inside one handshake, mean µs (thread CPU clock around each handshake: the \
         handshake alone)"
    )?;
    write_table(w, &inside_rows(sweep))?;
    writeln!(
        w,
        "\nOn the wire per handshake (mean bytes, the certificate chain's share) and latency"
    )?;
    write_table(w, &wire_rows(sweep))?;
    if !sweep.skipped.is_empty() {
        writeln!(w)?;
    }
    for (i, s) in sweep.skipped.iter().enumerate() {
        let label = if i == 0 { "Skipped" } else { "" };
        writeln!(w, "{label:<12}{}: {}", s.label, s.reason)?;
    }
    let failed: Vec<String> = sweep
        .cells
        .iter()
        .flat_map(|c| {
            failed_runs(c)
                .into_iter()
                .map(move |p| format!("{} {p}", c.label))
        })
        .collect();
    if !failed.is_empty() {
        writeln!(w)?;
    }
    for (i, f) in failed.iter().enumerate() {
        let label = if i == 0 { "Failed" } else { "" };
        writeln!(w, "{label:<12}{f}")?;
    }
    Ok(())
}

/// One progress line: `cell 3/8 round 1/3: <label>`.
pub fn progress_line(done: usize, total: usize, round: u32, rounds: u32, label: &str) -> String {
    format!("sweep: run {done}/{total} (round {round}/{rounds}): {label}\n")
}
