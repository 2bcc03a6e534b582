//! The Throttling section, in the text report and in report.html alike: when it began, the
//! rates the hub held, its throttling refusals, and which tests fired.

use std::io::{self, Write};

use super::format::{count, rate};
use super::html::esc;
use crate::metrics::{Summary, Throttling};

/// Text columns a line may use.
const WIDTH: usize = 100;
/// The label column of the text report.
const LABEL: usize = 12;

/// The headline of the section: onset and the rate held, in words.
fn headline(t: &Throttling) -> String {
    let held = t.pinned.first().map_or_else(String::new, |p| {
        format!(
            "; {} held at {} for {} s from {} s",
            p.what,
            rate(p.per_sec),
            p.to_secs.saturating_sub(p.from_secs),
            p.from_secs
        )
    });
    format!("began {} s into the run{held}", t.began_at_secs)
}

/// Throttle-coded refusals as the generator saw them and as the hub counted them.
fn refusals(t: &Throttling) -> String {
    let hub = t
        .hub_throttled
        .map_or_else(|| "not known (remote hub)".to_owned(), count);
    format!(
        "throttled refusals {}; hub throttling disconnects/refusals {hub}",
        count(t.throttled_refusals)
    )
}

const CONCLUSION: &str = "the hub's throttling, not its capacity, limited the rate from then on";

/// Writes the text section (nothing when the run was not throttled).
pub(super) fn write_text(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let Some(t) = &s.throttling else {
        return Ok(());
    };
    writeln!(w)?;
    let lines = [headline(t), refusals(t)];
    for (i, line) in lines
        .iter()
        .flat_map(|l| wrap(l, WIDTH - LABEL))
        .enumerate()
    {
        let label = if i == 0 { "Throttling" } else { "" };
        writeln!(w, "{label:<LABEL$}{line}")?;
    }
    writeln!(w, "{:<LABEL$}evidence:", "")?;
    for e in &t.evidence {
        for (i, line) in wrap(e, WIDTH - LABEL - 4).iter().enumerate() {
            let bullet = if i == 0 { "- " } else { "  " };
            writeln!(w, "{:<LABEL$}  {bullet}{line}", "")?;
        }
    }
    writeln!(w, "{:<LABEL$}{CONCLUSION}", "")
}

/// Writes the HTML section (nothing when the run was not throttled).
pub(super) fn write_html(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let Some(t) = &s.throttling else {
        return Ok(());
    };
    writeln!(
        w,
        "<h2 id=\"throttling\">Throttling</h2><p class=\"fail\">The hub throttled this run: {}.</p>\
         <p>{}.</p><ul class=\"evidence\">",
        esc(&headline(t)),
        esc(&refusals(t))
    )?;
    for e in &t.evidence {
        writeln!(w, "<li>{}</li>", esc(e))?;
    }
    writeln!(w, "</ul><p class=\"note\">{CONCLUSION}.</p>")
}

/// Greedy word wrap to `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        // Invariant: `lines` starts non-empty and only grows.
        let last = lines.last_mut().map_or(0, |l| l.chars().count());
        if last > 0 && last + 1 + word.chars().count() > width {
            lines.push(String::new());
        }
        if let Some(l) = lines.last_mut() {
            if !l.is_empty() {
                l.push(' ');
            }
            l.push_str(word);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_evidence_wraps_within_the_width() {
        let lines = wrap(&"word ".repeat(60), 20);
        assert!(lines.len() > 10);
        assert!(lines.iter().all(|l| l.chars().count() <= 20), "{lines:?}");
    }
}
