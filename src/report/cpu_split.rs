//! CPU measured inside each TLS handshake, full and resumed apart, client and hub apart, in the
//! text report and report.html, beside (and told apart from) the whole-run `/proc` figures.

use std::io::{self, Write};

use super::format::count;
use crate::metrics::{CpuKinds, CpuStat, Summary};

/// What the figures are, and how they differ from the `/proc` line.
const NOTE: &str = "Mean (p50) CPU of one handshake and handshakes per CPU-second, measured \
    inside the handshake by the thread CPU clock (the client's first 256 handshakes, then one in \
    8); the /proc figure above is the whole run's CPU, the protocol's included";

/// `full 634 µs (p50 562 µs, 1,576/CPU-s)`.
fn stat(kind: &str, s: &CpuStat) -> String {
    format!(
        "{kind} {:.0} µs (p50 {:.0} µs, {}/CPU-s)",
        s.mean_us,
        s.p50_us,
        count(s.per_cpu_second.round() as u64)
    )
}

/// `client  full ..., resumed ...`; `None` when neither kind completed.
fn side(who: &str, k: &CpuKinds) -> Option<String> {
    let kinds: Vec<String> = [("full", &k.full), ("resumed", &k.resumed)]
        .into_iter()
        .filter_map(|(kind, s)| s.as_ref().map(|s| stat(kind, s)))
        .collect();
    (!kinds.is_empty()).then(|| format!("{who:<7}{}", kinds.join(", ")))
}

fn lines(s: &Summary) -> Vec<String> {
    let Some(p) = s.cpu.as_ref().and_then(|c| c.per_handshake.as_ref()) else {
        return Vec::new();
    };
    [
        side("client", &p.client),
        p.hub.as_ref().and_then(|h| side("hub", h)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The text lines (nothing without figures).
pub(super) fn write_text(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let lines = lines(s);
    if lines.is_empty() {
        return Ok(());
    }
    for (i, l) in lines.iter().enumerate() {
        let label = if i == 0 { "CPU inside" } else { "" };
        writeln!(w, "{label:<12}{l}")?;
    }
    for l in super::text::wrap(&format!("({NOTE})"), 100 - 12) {
        writeln!(w, "{:<12}{l}", "")?;
    }
    Ok(())
}

/// The HTML paragraph (nothing without figures).
pub(super) fn write_html(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let lines = lines(s);
    if lines.is_empty() {
        return Ok(());
    }
    writeln!(
        w,
        "<h2>CPU inside each TLS handshake</h2><p class=\"note\">{}.</p><ul data-cpu-split>",
        super::html::esc(NOTE)
    )?;
    for l in lines {
        writeln!(w, "<li>{}</li>", super::html::esc(&l))?;
    }
    writeln!(w, "</ul>")
}
