//! Bytes on the wire and round trips per TLS handshake, in the text report and report.html.

use std::io::{self, Write};

use super::format::count;
use crate::metrics::{HandshakeKind, Summary};

/// One kind's figures in words: e.g. `full 200: 1 RTT, 1,021 B up (chain 640), 2,310 B down
/// (chain 1,150), 0 HelloRetryRequest`.
pub(super) fn line(kind: &str, k: &HandshakeKind) -> String {
    let mut line = format!(
        "{kind} {}: {} RTT, {} B up",
        count(k.count),
        k.round_trips.median,
        count(k.bytes_to_server.median)
    );
    if k.chain_sent_bytes > 0.0 {
        line += &format!(" (chain {})", count(k.chain_sent_bytes.round() as u64));
    }
    line += &format!(", {} B down", count(k.bytes_to_client.median));
    if k.chain_received_bytes > 0.0 {
        line += &format!(" (chain {})", count(k.chain_received_bytes.round() as u64));
    }
    if k.hello_retries > 0 {
        line += &format!(", {} HelloRetryRequest", count(k.hello_retries));
    }
    line
}

fn lines(s: &Summary) -> Vec<String> {
    let Some(h) = &s.handshake else {
        return Vec::new();
    };
    [("full", &h.full), ("resumed", &h.resumed)]
        .into_iter()
        .filter_map(|(kind, k)| k.as_ref().map(|k| line(kind, k)))
        .collect()
}

/// The text lines (medians per handshake; nothing when no handshake completed).
pub(super) fn write_text(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    for (i, l) in lines(s).iter().enumerate() {
        let label = if i == 0 { "On the wire" } else { "" };
        writeln!(w, "{label:<12}{l}")?;
    }
    Ok(())
}

/// The HTML paragraph (nothing when no handshake completed).
pub(super) fn write_html(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    let lines = lines(s);
    if lines.is_empty() {
        return Ok(());
    }
    writeln!(
        w,
        "<h2>TLS handshakes on the wire</h2><p class=\"note\">Medians per handshake: TCP \
         payload up to the handshake's completion on the client, round trips as counted, the \
         certificate chains' DER bytes in brackets.</p><ul>"
    )?;
    for l in lines {
        writeln!(w, "<li>{}</li>", super::html::esc(&l))?;
    }
    writeln!(w, "</ul>")
}
