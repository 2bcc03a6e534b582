//! The text report's Failures section: per phase and kind, the count, the first message in
//! full (wrapped to 100 columns) and the first few device ids.

use std::io::{self, Write};

use super::format::count;
use crate::metrics::Summary;

/// Device ids printed per phase and kind (summary.json lists more).
const IDS_SHOWN: usize = 5;

/// Columns the section fits in.
const WIDTH: usize = 100;

/// Writes the Failures section (nothing when nothing failed).
pub(super) fn write_failures(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    if s.failures.is_empty() {
        return Ok(());
    }
    writeln!(w)?;
    writeln!(w, "Failures")?;
    for f in &s.failures {
        writeln!(w, "  {:<16}{:<12}{:>8}", f.phase, f.kind, count(f.count))?;
        for line in wrap(&f.sample, WIDTH - 4) {
            writeln!(w, "    {line}")?;
        }
        if !f.devices.is_empty() {
            let shown: Vec<&str> = f
                .devices
                .iter()
                .take(IDS_SHOWN)
                .map(String::as_str)
                .collect();
            let rest = (f.devices.len() - shown.len()) as u64 + f.devices_more;
            let mut list = format!("devices: {}", shown.join(", "));
            if rest > 0 {
                list += &format!(" and {} more", count(rest));
            }
            for line in wrap(&list, WIDTH - 4) {
                writeln!(w, "    {line}")?;
            }
        }
    }
    Ok(())
}

/// Splits `text` into lines of at most `width` characters, at spaces where it can and inside
/// a word longer than a line where it must.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        let used = line.chars().count();
        if used > 0 && used + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        while word.len() > width {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(word.drain(..width).collect());
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.extend(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrap_keeps_every_word_within_the_width() {
        let text = "certificate not valid for name \"hub.example\"; certificate is only valid for \
                    DnsName(\"localhost\") and a-very-long-token-that-must-be-split";
        let lines = wrap(text, 20);
        assert!(lines.iter().all(|l| l.chars().count() <= 20), "{lines:?}");
        assert_eq!(lines.concat().replace(' ', ""), text.replace(' ', ""));
        assert_eq!(wrap("", 20), Vec::<String>::new());
    }
}
