//! CPU per TLS handshake, full and resumed apart, client and hub apart, as measured inside each
//! handshake: the thread CPU clock read around every poll of the handshake future (client: the
//! device's connect; hub: its TLS accept). Unlike the whole-run `/proc` figures of
//! [`super::CpuSummary`], these hold only the handshake's own work, never the protocol's.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::histogram::{decode_histogram, encode_histogram, HistogramCodecError};

/// How the `cpu.per_handshake` figures are made.
const METHOD: &str = "Thread CPU time (CLOCK_THREAD_CPUTIME_ID) read before and after each \
    poll of the TLS handshake future and summed: the handshake's own CPU, full and resumed \
    apart, without the protocol's work. Client: from the ClientHello's making to the server's \
    Finished checked (session tickets read later are not in it). Hub: the embedded hub's TLS \
    accept, to the client's Finished checked, its session tickets included. The clock reads \
    themselves cost about 1 µs of CPU per poll, 1-3 polls per handshake, so the client clocks \
    all of its first 256 handshakes and one in 8 after (`count` says how many); the hub clocks \
    every one.";

/// Nanoseconds of CPU per handshake of one kind: an exact total and a histogram.
#[derive(Debug, Clone)]
pub struct CpuTally {
    /// Sum over the handshakes, ns.
    pub total_ns: u64,
    /// One sample per handshake, ns (3 significant digits).
    pub hist: Histogram<u64>,
}

impl Default for CpuTally {
    fn default() -> Self {
        Self {
            total_ns: 0,
            // Invariant: constant bounds hdrhistogram accepts (1 <= low, high >= 2 * low,
            // 3 significant digits); up to about 18 minutes of CPU per handshake.
            #[allow(clippy::unwrap_used)]
            hist: Histogram::new_with_bounds(1, 1 << 40, 3).unwrap(),
        }
    }
}

impl CpuTally {
    /// Records one handshake's CPU.
    pub fn record(&mut self, ns: u64) {
        self.total_ns += ns;
        self.hist.saturating_record(ns);
    }

    /// The summary figures, `None` without handshakes.
    pub fn stat(&self) -> Option<CpuStat> {
        let count = self.hist.len();
        (count > 0).then(|| {
            let mean_us = self.total_ns as f64 / 1e3 / count as f64;
            CpuStat {
                count,
                p50_us: round2(self.hist.value_at_quantile(0.5) as f64 / 1e3),
                mean_us: round2(mean_us),
                total_us: round2(self.total_ns as f64 / 1e3),
                per_cpu_second: round2(1e6 / mean_us.max(1e-3)),
                histogram_ns: encode_histogram(&self.hist),
            }
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// One kind's CPU per handshake (`cpu.per_handshake.client.full` and the like).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuStat {
    /// Handshakes measured.
    pub count: u64,
    /// Median CPU µs per handshake (3 significant digits).
    pub p50_us: f64,
    /// Mean CPU µs per handshake (exact, 2 decimals).
    pub mean_us: f64,
    /// CPU µs over all of them (2 decimals; `merge` adds these).
    pub total_us: f64,
    /// Handshakes per CPU-second: 1 / mean.
    pub per_cpu_second: f64,
    /// The per-handshake samples in ns: HdrHistogram V2 deflate, base64 (`merge` adds these).
    pub histogram_ns: String,
}

impl CpuStat {
    /// Adds `other`'s handshakes: totals summed, histograms added, medians of the whole.
    pub fn merge(&self, other: &Self) -> Result<Self, HistogramCodecError> {
        let mut hist = decode_histogram(&self.histogram_ns)?;
        let theirs = decode_histogram(&other.histogram_ns)?;
        // Same bounds on both sides (one encoder); an out-of-range sample saturates instead.
        if hist.add(&theirs).is_err() {
            for v in theirs.iter_recorded() {
                hist.saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        let total_ns = ((self.total_us + other.total_us) * 1e3).round() as u64;
        let mut merged = CpuTally { total_ns, hist }
            .stat()
            .unwrap_or_else(|| self.clone());
        // The exact totals, not re-rounded through nanoseconds.
        merged.total_us = round2(self.total_us + other.total_us);
        Ok(merged)
    }
}

/// Full and resumed apart; either absent when none of that kind completed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuKinds {
    /// Full handshakes.
    pub full: Option<CpuStat>,
    /// Resumed handshakes.
    pub resumed: Option<CpuStat>,
}

impl CpuKinds {
    /// From the tallies of each kind.
    pub fn of(full: &CpuTally, resumed: &CpuTally) -> Self {
        Self {
            full: full.stat(),
            resumed: resumed.stat(),
        }
    }

    /// Each kind's figures added.
    pub fn merge(&self, other: &Self) -> Result<Self, HistogramCodecError> {
        let one = |a: &Option<CpuStat>, b: &Option<CpuStat>| match (a, b) {
            (Some(a), Some(b)) => a.merge(b).map(Some),
            (a, b) => Ok(a.clone().or_else(|| b.clone())),
        };
        Ok(Self {
            full: one(&self.full, &other.full)?,
            resumed: one(&self.resumed, &other.resumed)?,
        })
    }
}

/// `summary.json`'s `cpu.per_handshake`: the CPU measured inside each handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandshakeCpu {
    /// How the figures are made.
    pub method: String,
    /// The generator's side.
    pub client: CpuKinds,
    /// The embedded hub's side; `None` for any other target.
    pub hub: Option<CpuKinds>,
}

impl HandshakeCpu {
    /// The client's figures and the hub's when it ran embedded.
    pub fn new(client: CpuKinds, hub: Option<CpuKinds>) -> Self {
        Self {
            method: METHOD.into(),
            client,
            hub,
        }
    }

    /// Both sides added (a side missing from either is missing from the merge: the sum would
    /// not be the fleet's).
    pub fn merge(&self, other: &Self) -> Result<Self, HistogramCodecError> {
        let hub = match (&self.hub, &other.hub) {
            (Some(a), Some(b)) => Some(a.merge(b)?),
            _ => None,
        };
        Ok(Self {
            method: self.method.clone(),
            client: self.client.merge(&other.client)?,
            hub,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(samples: &[u64]) -> CpuTally {
        let mut t = CpuTally::default();
        for s in samples {
            t.record(*s);
        }
        t
    }

    #[test]
    fn stats_are_exact_means_and_histogram_medians_and_merge_adds() {
        assert!(CpuTally::default().stat().is_none());
        let a = tally(&[100_000, 200_000, 300_000]).stat().unwrap();
        assert_eq!((a.count, a.mean_us, a.total_us), (3, 200.0, 600.0));
        assert!((a.p50_us - 200.0).abs() < 0.5, "{a:?}");
        assert_eq!(a.per_cpu_second, 5000.0);
        let b = tally(&[1_000_000]).stat().unwrap();
        let m = a.merge(&b).unwrap();
        assert_eq!((m.count, m.total_us, m.mean_us), (4, 1600.0, 400.0));
        assert!((m.p50_us - 200.0).abs() < 0.5, "{m:?}");
        let kinds = CpuKinds {
            full: Some(a.clone()),
            resumed: None,
        };
        let other = CpuKinds {
            full: None,
            resumed: Some(b.clone()),
        };
        let both = kinds.merge(&other).unwrap();
        assert_eq!((both.full, both.resumed), (Some(a), Some(b)));
    }
}
