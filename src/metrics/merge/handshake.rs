//! The shards' `handshake` (bytes and round trips per handshake) and `cpu` (CPU per handshake)
//! merged: counts and totals added, medians from the added histograms, means from the totals.
//! Approximate only where a shard kept no more than a mean: the certificate chains' bytes per
//! handshake (each shard's mean is kept to 2 decimals, so the merged mean is within 0.005 B of
//! the exact one). A shard without the figures (an older version) leaves them out of the merge.

use super::{MergeError, ShardSummary};
use crate::metrics::{
    decode_histogram, CpuSummary, HandshakeKind, HandshakeSummary, LatencyHistogram,
    WireHistograms, WireStat,
};

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A histogram of `shard`'s, decoded; a bad one is an error naming the shard and the figure.
fn decode(shard: &ShardSummary, what: &str, text: &str) -> Result<LatencyHistogram, MergeError> {
    decode_histogram(text).map_err(|e| MergeError::Histogram {
        source_name: shard.source.clone(),
        phase: what.to_owned(),
        message: e.to_string(),
    })
}

/// `a` plus `b`, saturating samples beyond `a`'s range rather than failing.
fn add(mut a: LatencyHistogram, b: &LatencyHistogram) -> LatencyHistogram {
    if a.add(b).is_err() {
        for v in b.iter_recorded() {
            a.saturating_record_n(v.value_iterated_to(), v.count_at_value());
        }
    }
    a
}

/// One figure of one kind over all shards: (stat, histogram) pairs added.
fn wire_stat(parts: &[(WireStat, LatencyHistogram)], count: u64) -> (WireStat, LatencyHistogram) {
    let mut hist = parts[0].1.clone();
    for (_, h) in &parts[1..] {
        hist = add(hist, h);
    }
    let total: u64 = parts.iter().map(|(s, _)| s.total).sum();
    let stat = WireStat {
        median: hist.value_at_quantile(0.5),
        mean: round2(total as f64 / count.max(1) as f64),
        max: parts.iter().map(|(s, _)| s.max).max().unwrap_or(0),
        total,
    };
    (stat, hist)
}

/// The kinds `pick` chooses from every shard that has them added; `None` when no shard has
/// any, an error when a shard's histograms do not decode.
fn kind(
    shards: &[(&ShardSummary, &HandshakeSummary)],
    pick: fn(&HandshakeSummary) -> &Option<HandshakeKind>,
    name: &str,
) -> Result<Option<HandshakeKind>, MergeError> {
    let name = &format!("handshake.{name}");
    let mut kinds = Vec::new();
    for (shard, h) in shards {
        let Some(k) = pick(h) else { continue };
        // Checked by `handshake`: every kind of every shard has its histograms.
        let Some(hs) = &k.histograms else {
            return Ok(None);
        };
        let parts = [
            (k.bytes_to_server, decode(shard, name, &hs.bytes_to_server)?),
            (k.bytes_to_client, decode(shard, name, &hs.bytes_to_client)?),
            (k.round_trips, decode(shard, name, &hs.round_trips)?),
        ];
        kinds.push((k, parts));
    }
    if kinds.is_empty() {
        return Ok(None);
    }
    let count: u64 = kinds.iter().map(|(k, _)| k.count).sum();
    let sum = |f: fn(&HandshakeKind) -> u64| kinds.iter().map(|(k, _)| f(k)).sum::<u64>();
    let chain = |f: fn(&HandshakeKind) -> f64| {
        let total: f64 = kinds.iter().map(|(k, _)| f(k) * k.count as f64).sum();
        round2(total / count.max(1) as f64)
    };
    let figure = |i: usize| {
        let parts: Vec<(WireStat, LatencyHistogram)> =
            kinds.iter().map(|(_, p)| p[i].clone()).collect();
        wire_stat(&parts, count)
    };
    let ((up, up_h), (down, down_h), (rtt, rtt_h)) = (figure(0), figure(1), figure(2));
    let enc = crate::metrics::encode_histogram;
    Ok(Some(HandshakeKind {
        count,
        hello_retries: sum(|k| k.hello_retries),
        bytes_to_server: up,
        bytes_to_client: down,
        round_trips: rtt,
        chain_sent_bytes: chain(|k| k.chain_sent_bytes),
        chain_received_bytes: chain(|k| k.chain_received_bytes),
        sessions: sum(|k| k.sessions),
        session_bytes_to_server: sum(|k| k.session_bytes_to_server),
        session_bytes_to_client: sum(|k| k.session_bytes_to_client),
        histograms: Some(WireHistograms {
            bytes_to_server: enc(&up_h),
            bytes_to_client: enc(&down_h),
            round_trips: enc(&rtt_h),
        }),
    }))
}

/// The shards' `handshake` figures merged: `None` when a shard has none, or has no
/// histograms (an older version's summary) whose medians could be added.
pub(super) fn handshake(shards: &[ShardSummary]) -> Result<Option<HandshakeSummary>, MergeError> {
    let Some(all) = shards
        .iter()
        .map(|s| s.summary.handshake.as_ref().map(|h| (s, h)))
        .collect::<Option<Vec<(&ShardSummary, &HandshakeSummary)>>>()
    else {
        return Ok(None);
    };
    let complete = |k: &Option<HandshakeKind>| k.as_ref().is_none_or(|k| k.histograms.is_some());
    if !all
        .iter()
        .all(|(_, h)| complete(&h.full) && complete(&h.resumed))
    {
        return Ok(None);
    }
    Ok(Some(HandshakeSummary {
        full: kind(&all, |h| &h.full, "full")?,
        resumed: kind(&all, |h| &h.resumed, "resumed")?,
    }))
}

/// The shards' `cpu` merged when every shard has one: CPU seconds and handshakes added, the
/// per-handshake figures recomputed from the sums, the in-handshake histograms added. A server
/// given by pid is one process that every shard read over overlapping windows, so its figures
/// are not added (left out); embedded hubs are one per shard and are.
pub(super) fn cpu(shards: &[ShardSummary]) -> Result<Option<CpuSummary>, MergeError> {
    let Some(all) = shards
        .iter()
        .map(|s| s.summary.cpu.as_ref())
        .collect::<Option<Vec<&CpuSummary>>>()
    else {
        return Ok(None);
    };
    let first = all[0];
    let handshakes: u64 = all
        .iter()
        .map(|c| c.full_handshakes + c.resumed_handshakes)
        .sum();
    let per = |secs: f64| (handshakes > 0).then(|| secs * 1e6 / handshakes as f64);
    // /proc figures are whole 10 ms ticks: rounded to the ms, their sum is exact.
    let ms = |secs: f64| (secs * 1e3).round() / 1e3;
    let client_secs = ms(all.iter().map(|c| c.client_secs).sum());
    let embedded = all.iter().all(|c| {
        c.server
            .as_deref()
            .is_some_and(|s| s.starts_with("embedded"))
    });
    let server_secs = embedded
        .then(|| all.iter().map(|c| c.server_secs).sum::<Option<f64>>())
        .flatten()
        .map(ms);
    let mut per_handshake = all[0].per_handshake.clone();
    for (c, shard) in all[1..].iter().zip(&shards[1..]) {
        per_handshake = match (&per_handshake, &c.per_handshake) {
            (Some(a), Some(b)) => Some(a.merge(b).map_err(|e| MergeError::Histogram {
                source_name: shard.source.clone(),
                phase: "cpu.per_handshake".into(),
                message: e.to_string(),
            })?),
            _ => None,
        };
    }
    Ok(Some(CpuSummary {
        method: first.method.clone(),
        client_secs,
        server_secs,
        server: server_secs.and(first.server.clone()),
        full_handshakes: all.iter().map(|c| c.full_handshakes).sum(),
        resumed_handshakes: all.iter().map(|c| c.resumed_handshakes).sum(),
        client_us_per_handshake: per(client_secs),
        server_us_per_handshake: server_secs.and_then(per),
        per_handshake,
    }))
}
