//! Printing a [`Comparison`]: a table within 100 columns with the verdict, or JSON.

use std::io::{self, Write};

use super::Comparison;
use crate::report::format::{change, micros, observed};

/// The verdict in words: within the tolerance, or how many values regressed; then the names of
/// those values.
fn verdict(c: &Comparison) -> (String, Vec<String>) {
    let worse: Vec<_> = c
        .regressions()
        .map(|d| format!("{} {}", d.group, d.label))
        .collect();
    let tol = format!(
        "{:.1}% (latency: and {})",
        c.tolerance.relative * 100.0,
        micros(c.tolerance.floor_us)
    );
    if worse.is_empty() {
        (format!("NEW is within {tol} of BASE"), worse)
    } else {
        let head = format!("NEW REGRESSED beyond {tol} in {} value(s)", worse.len());
        (head, worse)
    }
}

/// Prints a comparison: settings that differ, a table within 100 columns, then the verdict.
pub fn write_comparison(
    w: &mut impl Write,
    c: &Comparison,
    base: &str,
    new: &str,
) -> io::Result<()> {
    writeln!(w, "BASE  {base}")?;
    writeln!(w, "NEW   {new}")?;
    for n in &c.notes {
        writeln!(w, "note: {n}")?;
    }
    if c.settings_differ.is_empty() {
        writeln!(w, "settings: the same resolved scenario")?;
    } else {
        writeln!(w, "settings that differ:")?;
        for s in &c.settings_differ {
            writeln!(w, "  {:<30} {} -> {}", s.key, s.base, s.new)?;
        }
    }
    writeln!(w)?;
    writeln!(
        w,
        "{:<20}{:<12}{:>14}{:>14}{:>10}",
        "", "", "base", "new", "change"
    )?;
    let mut last = "";
    for d in &c.deltas {
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| observed(d.unit, v));
        let ch = match (d.base, d.new) {
            (Some(b), Some(n)) => change(b, n),
            _ => "-".to_owned(),
        };
        let group = if d.group == last {
            ""
        } else {
            d.group.as_str()
        };
        last = &d.group;
        let mark = match (&d.not_judged, d.regressed) {
            (_, true) => "  REGRESSED".to_owned(),
            (Some(why), false) => format!("  not judged: {why}"),
            (None, false) if d.within_noise => "  within sampling noise".to_owned(),
            (None, false) => String::new(),
        };
        writeln!(
            w,
            "{:<20}{:<12}{:>14}{:>14}{:>10}{mark}",
            group,
            d.label,
            show(d.base),
            show(d.new),
            ch,
        )?;
    }
    writeln!(w)?;
    let (head, worse) = verdict(c);
    writeln!(
        w,
        "Verdict     {head}{}",
        if worse.is_empty() { "" } else { ":" }
    )?;
    let mut line = String::new();
    for name in worse {
        if !line.is_empty() && line.len() + name.len() > 84 {
            writeln!(w, "            {line},")?;
            line.clear();
        }
        if !line.is_empty() {
            line.push_str(", ");
        }
        line.push_str(&name);
    }
    if !line.is_empty() {
        writeln!(w, "            {line}")?;
    }
    Ok(())
}

/// Prints a comparison as one JSON document: the paths, the verdict, and everything compared.
pub fn write_comparison_json(
    w: &mut impl Write,
    c: &Comparison,
    base: &str,
    new: &str,
) -> io::Result<()> {
    let regressions: Vec<String> = c
        .regressions()
        .map(|d| format!("{}.{}", d.group, d.label))
        .collect();
    let doc = serde_json::json!({
        "base": base,
        "new": new,
        "regressed": !regressions.is_empty(),
        "verdict": verdict(c).0,
        "regressions": regressions,
        "tolerance": c.tolerance,
        "settings_differ": c.settings_differ,
        "notes": c.notes,
        "values": c.deltas,
    });
    serde_json::to_writer_pretty(&mut *w, &doc)?;
    writeln!(w)
}
