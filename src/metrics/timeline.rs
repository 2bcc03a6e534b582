//! Throughput and latency over time: a sampler copies the counters once per second, off the hot
//! path, and takes each phase's cumulative histogram, whose difference from the previous
//! second's is exactly that second's interval histogram.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::histogram::{decode_histogram, HistogramCodecError, HistogramEncoder};
use super::spool::{Place, Spool};
use super::{FailureKind, LatencyHistogram, Phase, Recorder, Snapshot};

/// One phase's latency in one interval, from that interval's own histogram (not from means).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalLatency {
    /// Samples recorded in the interval.
    pub count: u64,
    /// Median, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Largest sample, µs.
    pub max_us: u64,
    /// The interval's histogram: HdrHistogram V2 deflate, base64 (as in `phases[].histogram`).
    pub histogram: String,
}

impl IntervalLatency {
    /// The figures of an interval histogram, and the histogram itself encoded.
    pub fn from_histogram(h: &LatencyHistogram) -> Self {
        Self::encoded_by(h, &mut HistogramEncoder::default())
    }

    /// [`Self::from_histogram`] with an encoder kept from one interval to the next.
    pub(crate) fn encoded_by(h: &LatencyHistogram, encoder: &mut HistogramEncoder) -> Self {
        Self {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
            histogram: encoder.encode(h),
        }
    }

    /// The interval's histogram, decoded.
    pub fn decode(&self) -> Result<LatencyHistogram, HistogramCodecError> {
        decode_histogram(&self.histogram)
    }
}

/// One second of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Seconds since the start of the run (end of this interval).
    pub t: u64,
    /// Sessions that connected in this interval.
    pub connects: u64,
    /// TLS handshakes completed in this interval.
    pub handshakes: u64,
    /// Messages written in this interval.
    pub sends: u64,
    /// Messages acknowledged in this interval.
    pub acks: u64,
    /// Connects the plan scheduled in this interval, if it schedules them at a rate (not for
    /// a burst); filled in from the plan after the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_connects: Option<f64>,
    /// Sends the plan scheduled in this interval (open model; not for a closed model), each
    /// session sending from its planned connect; filled in from the plan after the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_sends: Option<f64>,
    /// Failures counted in this interval.
    pub errors: u64,
    /// Failures counted in this interval by kind name (kinds with none are left out).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Sessions open at the end of the interval.
    pub active: u64,
    /// Mean acknowledgement latency of the acknowledgements in this interval, µs.
    #[serde(default)]
    pub ack_mean_us: u64,
    /// Generator CPU use in this interval, as a fraction of one core.
    pub cpu: f64,
    /// Generator resident memory at the end of the interval, KiB.
    pub rss_kib: u64,
    /// The generator's worst timer lag in this interval, µs (how late a 100 ms ticker fired).
    #[serde(default)]
    pub lag_us: u64,
    /// Latency of the samples recorded in this interval, by phase name (phases with none are
    /// left out).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub latency: BTreeMap<String, IntervalLatency>,
}

impl TimelineRow {
    /// This interval's latency of `phase`, if it recorded any.
    pub fn latency_of(&self, phase: &str) -> Option<&IntervalLatency> {
        self.latency.get(phase)
    }
}

/// Accumulates timeline rows from successive snapshots. While the run goes, each row's interval
/// histograms wait in a `Spool` (a temporary file) and the row in memory keeps only its
/// figures; [`Timeline::into_rows`] puts them back, so the rows come out whole.
#[derive(Debug, Default)]
pub struct Timeline {
    rows: Vec<Kept>,
    spool: Spool,
    last: Snapshot,
    last_histograms: BTreeMap<Phase, LatencyHistogram>,
    /// Histograms done with (last second's cumulative ones, interval scratch), reused by the
    /// next second's merge and intervals instead of fresh 184 KB allocations.
    spare: Vec<LatencyHistogram>,
    /// Encodes each second's interval histograms with the same buffers and compressor.
    encoder: HistogramEncoder,
}

/// A row as kept during the run: no latency map (a B-tree node is about 1 KB), its phases'
/// figures in a short vector instead.
#[derive(Debug)]
struct Kept {
    row: TimelineRow,
    latency: Vec<KeptLatency>,
}

/// One phase's figures in a kept row; `figures.histogram` is empty while it is in the spool.
#[derive(Debug)]
struct KeptLatency {
    phase: &'static str,
    figures: IntervalLatency,
    place: Option<Place>,
}

/// The seconds each row covers: the time since the row before (the first row's since the
/// start). One, unless the generator was too starved to sample every second.
pub fn spans(rows: &[TimelineRow]) -> impl Iterator<Item = u64> + '_ {
    let mut before = 0;
    rows.iter().map(move |r| {
        let span = r.t.saturating_sub(before).max(1);
        before = r.t;
        span
    })
}

impl Timeline {
    /// Adds the interval ending at `t` seconds, from the counters now.
    pub fn push(&mut self, t: u64, now: Snapshot, cpu: f64, rss_kib: u64, lag_us: u64) {
        self.push_with_latency(t, now, Vec::new(), (cpu, rss_kib, lag_us));
    }

    /// [`Self::push_with_latency`] with `recorder`'s cumulative histograms now, merged into
    /// histograms this timeline no longer needs.
    pub fn push_sampled(
        &mut self,
        t: u64,
        now: Snapshot,
        recorder: &Recorder,
        health: (f64, u64, u64),
    ) {
        let histograms = recorder.histograms_reusing(&mut self.spare);
        self.push_with_latency(t, now, histograms, health);
    }

    /// Adds the interval ending at `t` seconds, from the counters and the cumulative histograms
    /// per phase now (`Recorder::histograms`); `health` is the generator's CPU (cores), resident
    /// memory (KiB) and worst timer lag (µs) in the interval.
    pub fn push_with_latency(
        &mut self,
        t: u64,
        now: Snapshot,
        histograms: Vec<(Phase, LatencyHistogram)>,
        health: (f64, u64, u64),
    ) {
        let (cpu, rss_kib, lag_us) = health;
        let latency = self.intervals(histograms);
        let latency = self.spooled(latency);
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let row = TimelineRow {
            t,
            connects: d(now.sessions_connected, self.last.sessions_connected),
            handshakes: d(now.handshakes, self.last.handshakes),
            sends: d(now.messages_sent, self.last.messages_sent),
            acks: d(now.messages_acked, self.last.messages_acked),
            errors: d(now.errors, self.last.errors),
            planned_connects: None,
            planned_sends: None,
            errors_by_kind: FailureKind::ALL
                .into_iter()
                .zip(now.errors_by_kind.iter().zip(&self.last.errors_by_kind))
                .filter(|(_, (n, l))| n > l)
                .map(|(k, (n, l))| (k.name().to_owned(), n - l))
                .collect(),
            active: now.sessions_active,
            ack_mean_us: d(now.ack_latency_us, self.last.ack_latency_us)
                .checked_div(d(now.messages_acked, self.last.messages_acked))
                .unwrap_or(0),
            cpu,
            rss_kib,
            lag_us,
            latency: BTreeMap::new(),
        };
        self.rows.push(Kept { row, latency });
        self.last = now;
    }

    /// Each phase's interval histogram: the cumulative one less the previous interval's.
    fn intervals(
        &mut self,
        histograms: Vec<(Phase, LatencyHistogram)>,
    ) -> Vec<(&'static str, IntervalLatency)> {
        let mut out = Vec::new();
        for (phase, cumulative) in histograms {
            let interval = match self.spare.pop() {
                Some(mut h) => {
                    h.reset();
                    // Both have fleetbench's bounds: the addition cannot fail; were it to,
                    // the interval would be left out below rather than made up.
                    h.add(&cumulative).map(|()| h).ok()
                }
                None => Some(cumulative.clone()),
            };
            // Counts only grow, so the earlier histogram is always within the later one; if
            // that ever failed, the interval is left out rather than made up.
            let interval = interval.and_then(|mut h| match self.last_histograms.get(&phase) {
                Some(before) if h.subtract(before).is_err() => {
                    self.spare.push(h);
                    None
                }
                _ => Some(h),
            });
            if let Some(interval) = interval {
                if !interval.is_empty() {
                    out.push((
                        phase.name(),
                        IntervalLatency::encoded_by(&interval, &mut self.encoder),
                    ));
                }
                self.spare.push(interval);
            }
            if let Some(old) = self.last_histograms.insert(phase, cumulative) {
                self.spare.push(old);
            }
        }
        out
    }

    /// Moves a second's encoded histograms to the spool, leaving their figures and places; if
    /// the spool is unavailable, they stay in memory (as before there was a spool).
    fn spooled(&mut self, latency: Vec<(&'static str, IntervalLatency)>) -> Vec<KeptLatency> {
        let encoded: Vec<&str> = latency.iter().map(|(_, l)| l.histogram.as_str()).collect();
        let places = match self.spool.append(&encoded) {
            Some(places) => places.into_iter().map(Some).collect(),
            None => vec![None; latency.len()],
        };
        latency
            .into_iter()
            .zip(places)
            .map(|((phase, mut figures), place)| {
                if place.is_some() {
                    figures.histogram = String::new();
                }
                KeptLatency {
                    phase,
                    figures,
                    place,
                }
            })
            .collect()
    }

    /// Takes the rows, whole: each with its latency by phase and every interval histogram read
    /// back from the spool. Call it after the run, before anything reads the rows.
    pub fn into_rows(mut self) -> Vec<TimelineRow> {
        let mut waiting: Vec<&mut KeptLatency> = self
            .rows
            .iter_mut()
            .flat_map(|k| k.latency.iter_mut())
            .filter(|l| l.place.is_some())
            .collect();
        let places: Vec<Place> = waiting.iter().filter_map(|l| l.place).collect();
        let mut next = waiting.iter_mut();
        let back = self.spool.read_back(places, |h| {
            if let Some(l) = next.next() {
                l.figures.histogram = h;
            }
        });
        if let Err(e) = back {
            // Not expected (the file is ours and was written); the rows keep their figures.
            tracing::warn!("the timeline's histograms could not be read back: {e}");
        }
        self.rows
            .into_iter()
            .map(|k| {
                let mut row = k.row;
                row.latency = k
                    .latency
                    .into_iter()
                    .map(|l| (l.phase.to_owned(), l.figures))
                    .collect();
                row
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
