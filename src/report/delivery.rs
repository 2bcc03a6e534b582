//! The Delivery section of the text and HTML reports: what a verifying receiver read, matched
//! to what the devices sent and had acknowledged, and the devices with something wrong.

use std::io::{self, Write};

use super::format::count;
use super::html::esc;
use crate::metrics::{Delivery, Summary};

/// Device rows shown in the text report (summary.json lists up to 20).
const DEVICES_SHOWN: usize = 5;

/// The section's figures as label and value, in report order; the zero ones that only matter
/// when not zero are left out.
fn rows(d: &Delivery) -> Vec<(&'static str, u64)> {
    let mut rows = vec![
        ("acknowledged", d.acked),
        ("delivered", d.delivered),
        ("lost", d.lost),
        ("duplicated", d.duplicated),
        ("out of order", d.out_of_order),
    ];
    for (name, n) in [
        ("unacknowledged, delivered", d.unacked_delivered),
        ("unacknowledged, missing", d.unacked_missing),
        ("settled on send, delivered", d.settled_delivered),
        ("settled on send, missing", d.settled_missing),
        ("unexpected", d.unexpected),
        ("other runs' or unstamped", d.foreign),
    ] {
        if n > 0 {
            rows.push((name, n));
        }
    }
    rows
}

/// How the receiver stopped, in words.
fn ending(d: &Delivery) -> String {
    let how = if d.complete {
        "every acknowledged message arrived"
    } else {
        "stopped at the settle time with messages missing"
    };
    format!("read {} ms after the load; {how}", d.settle_ms)
}

/// Writes the text report's Delivery section (nothing without a receiver).
pub(super) fn write_text(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    s.delivery.as_ref().map_or(Ok(()), |d| text(w, d))
}

fn text(w: &mut impl Write, d: &Delivery) -> io::Result<()> {
    writeln!(w)?;
    let runs = match d.run_ids.as_slice() {
        [] => String::new(),
        [one] => format!("   run {one}"),
        many => format!("   {} runs", many.len()),
    };
    writeln!(w, "{:<12}{}{runs}", "Delivery", d.receiver)?;
    writeln!(
        w,
        "{:<12}received {}   {}",
        "",
        count(d.received),
        ending(d)
    )?;
    let line: Vec<String> = rows(d)
        .into_iter()
        .map(|(k, n)| format!("{k} {}", count(n)))
        .collect();
    for chunk in line.chunks(4) {
        writeln!(w, "{:<12}{}", "", chunk.join("   "))?;
    }
    for dev in d.devices.iter().take(DEVICES_SHOWN) {
        writeln!(
            w,
            "  {:<40} lost {}   duplicated {}   out of order {}   unacknowledged delivered {}",
            dev.device,
            count(dev.lost),
            count(dev.duplicated),
            count(dev.out_of_order),
            count(dev.unacked_delivered)
        )?;
    }
    let rest = d.devices.len().saturating_sub(DEVICES_SHOWN) as u64 + d.devices_more;
    if rest > 0 {
        writeln!(w, "  and {} more devices", count(rest))?;
    }
    for e in &d.errors {
        writeln!(w, "  receiver: {e}")?;
    }
    if d.strict && d.lost > 0 {
        writeln!(
            w,
            "!!! LOST MESSAGES: {} acknowledged messages never reached the receiver",
            count(d.lost)
        )?;
    }
    Ok(())
}

/// Writes report.html's Delivery section (nothing without a receiver).
pub(super) fn write_html(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    s.delivery.as_ref().map_or(Ok(()), |d| html(w, d))
}

fn html(w: &mut impl Write, d: &Delivery) -> io::Result<()> {
    writeln!(
        w,
        "<h2>Delivery</h2><p>{}: received {}; {}.</p><table>",
        esc(&d.receiver),
        count(d.received),
        esc(&ending(d))
    )?;
    for (k, n) in rows(d) {
        writeln!(w, "<tr><td>{k}</td><td>{}</td></tr>", count(n))?;
    }
    writeln!(w, "</table>")?;
    if !d.devices.is_empty() {
        writeln!(
            w,
            "<table><tr><th>device</th><th>lost</th><th>duplicated</th><th>out of order</th>\
             <th>unacknowledged, delivered</th></tr>"
        )?;
        for dev in &d.devices {
            writeln!(
                w,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&dev.device),
                count(dev.lost),
                count(dev.duplicated),
                count(dev.out_of_order),
                count(dev.unacked_delivered)
            )?;
        }
        writeln!(w, "</table>")?;
        if d.devices_more > 0 {
            writeln!(w, "<p>and {} more devices</p>", count(d.devices_more))?;
        }
    }
    for e in &d.errors {
        writeln!(w, "<p>receiver: {}</p>", esc(e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::DeviceDelivery;

    #[test]
    fn losses_are_shown_by_device() {
        let d = Delivery {
            receiver: "mqtt <x>".into(),
            acked: 10,
            delivered: 8,
            lost: 2,
            strict: true,
            devices: vec![DeviceDelivery {
                device: "dev-7".into(),
                lost: 2,
                ..DeviceDelivery::default()
            }],
            ..Delivery::default()
        };
        let (mut t, mut h) = (Vec::new(), Vec::new());
        text(&mut t, &d).unwrap();
        html(&mut h, &d).unwrap();
        let (text, html) = (String::from_utf8(t).unwrap(), String::from_utf8(h).unwrap());
        assert!(text.contains("lost 2"), "{text}");
        assert!(text.contains("dev-7"), "{text}");
        assert!(text.contains("!!! LOST MESSAGES"), "{text}");
        assert!(html.contains("<td>dev-7</td><td>2</td>"), "{html}");
        assert!(html.contains("mqtt &lt;x&gt;"), "{html}");
    }
}
