//! HDR histograms in microseconds with 3 significant digits, sharded for the hot path, and their
//! standard serialized form (HdrHistogram V2, deflate-compressed, base64), which other HdrHistogram
//! tools read and which `merge` adds without loss.

use std::time::Duration;

use base64::Engine as _;
use flate2::{Compress, Compression, FlushCompress, Status};
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Lowest recordable value: 1 µs.
const LOWEST_US: u64 = 1;
/// Highest trackable value: one hour in µs; larger samples saturate to it.
const HIGHEST_US: u64 = 3_600_000_000;
/// Significant decimal digits kept.
const SIGFIG: u8 = 3;

/// A latency histogram in microseconds.
pub type LatencyHistogram = Histogram<u64>;

/// A new, empty latency histogram with fleetbench's bounds.
pub fn new_histogram() -> LatencyHistogram {
    // Invariant: the bounds are constants that hdrhistogram accepts (1 <= low, high >= 2*low, sigfig <= 5).
    #[allow(clippy::unwrap_used)]
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG).unwrap()
}

/// Microseconds of a duration, at least 1 so that sub-microsecond samples still count.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .max(LOWEST_US)
}

/// One histogram per phase in each of a few shards, so that tasks on different cores rarely
/// contend; merged only when read.
///
/// A sample first goes to its shard's short list of pending samples, and the list goes into the
/// histograms when it is full or when anything reads them, so every read sees every sample
/// recorded before it. A histogram's counts span 184 KB and a session's samples land in
/// scattered slots of several of them: recorded one at a time, each of those slots is a cache
/// miss on the session's path; recorded a batch at a time, the misses overlap and the session
/// writes one line of the list. A read holds each shard's lock while it adds that shard's
/// histogram of the phase (some 184 KB scanned), as it held that histogram's own lock before.
#[derive(Debug)]
pub struct PhaseHistograms {
    shards: Vec<Mutex<Shard>>,
}

/// Samples a shard holds before it adds them to its histograms: 16 bytes each, a few cache
/// lines.
const PENDING: usize = 64;

#[derive(Debug)]
struct Shard {
    /// One histogram per phase, made when the phase is prepared ([`PhaseHistograms::prepare`])
    /// or first recorded: each is 184 KB written with zeros, and a run records 6 to 10 of the
    /// 15 phases.
    phases: Vec<Option<LatencyHistogram>>,
    /// Samples not yet in `phases`: the phase's index and the value in µs.
    pending: Vec<(usize, u64)>,
}

impl Shard {
    fn histogram(phases: &mut [Option<LatencyHistogram>], phase: usize) -> &mut LatencyHistogram {
        phases[phase].get_or_insert_with(new_histogram)
    }

    /// Adds the pending samples to their histograms.
    fn flush(&mut self) {
        for (phase, value) in self.pending.drain(..) {
            Self::histogram(&mut self.phases, phase).saturating_record(value);
        }
    }
}

impl PhaseHistograms {
    /// No histogram is made yet: see [`Self::prepare`].
    pub(crate) fn new(shards: usize) -> Self {
        let shards = (0..shards.max(1))
            .map(|_| {
                Mutex::new(Shard {
                    phases: super::Phase::ALL.iter().map(|_| None).collect(),
                    pending: Vec::with_capacity(PENDING),
                })
            })
            .collect();
        Self { shards }
    }

    /// Makes `phase`'s histogram in every shard, so that its first samples do not wait for
    /// one to be made and zeroed on a session's path.
    pub(crate) fn prepare(&self, phase: usize) {
        for shard in &self.shards {
            Shard::histogram(&mut shard.lock().phases, phase);
        }
    }

    fn shard(&self, shard: usize) -> &Mutex<Shard> {
        &self.shards[shard % self.shards.len()]
    }

    pub(crate) fn record(&self, phase: usize, shard: usize, value: Duration) {
        let mut shard = self.shard(shard).lock();
        if shard.pending.len() == PENDING {
            shard.flush();
        }
        shard.pending.push((phase, micros(value)));
    }

    /// Records `value` and, HdrHistogram's coordinated-omission correction, the samples that
    /// would have come every `interval` meanwhile: `value - interval`, ... down to `interval`.
    pub(crate) fn record_correct(
        &self,
        phase: usize,
        shard: usize,
        value: Duration,
        interval: Duration,
    ) {
        let mut shard = self.shard(shard).lock();
        let h = Shard::histogram(&mut shard.phases, phase);
        let value = micros(value).min(h.high());
        if interval.is_zero() {
            h.saturating_record(value);
        } else {
            // Cannot fail: every value recorded is within the histogram's bounds.
            let _ = h.record_correct(value, micros(interval));
        }
    }

    /// Whether `phase` has no sample in any shard: checked before a merge, which allocates a
    /// histogram (some 184 KB) and reads every shard's counts.
    pub(crate) fn is_empty(&self, phase: usize) -> bool {
        self.shards.iter().all(|shard| {
            let shard = shard.lock();
            shard.phases[phase].as_ref().is_none_or(|h| h.is_empty())
                && shard.pending.iter().all(|&(p, _)| p != phase)
        })
    }

    pub(crate) fn merged(&self, phase: usize) -> LatencyHistogram {
        let mut out = new_histogram();
        self.add_to(phase, &mut out);
        out
    }

    /// Replaces `out`'s counts with `phase`'s, all shards merged. `out` must have fleetbench's
    /// bounds ([`new_histogram`]).
    pub(crate) fn merge_into(&self, phase: usize, out: &mut LatencyHistogram) {
        out.reset();
        self.add_to(phase, out);
    }

    /// Adds `phase`'s shards to `out` (a fresh histogram is not reset first: zeroing it would
    /// touch every page of its counts).
    fn add_to(&self, phase: usize, out: &mut LatencyHistogram) {
        for shard in &self.shards {
            let mut shard = shard.lock();
            shard.flush();
            if let Some(h) = &shard.phases[phase] {
                // Invariant: every shard has the same bounds as `out`, so addition cannot fail.
                #[allow(clippy::unwrap_used)]
                out.add(h).unwrap();
            }
        }
    }
}

/// Errors decoding a serialized histogram.
#[derive(Debug, thiserror::Error)]
pub enum HistogramCodecError {
    /// The text is not base64.
    #[error("histogram is not valid base64")]
    Base64(#[source] base64::DecodeError),
    /// The bytes are not a V2 histogram.
    #[error("histogram is not a valid HdrHistogram V2 encoding")]
    Decode(#[source] hdrhistogram::serialization::DeserializeError),
}

/// Serializes a histogram as HdrHistogram V2 deflate, base64 (the form of HdrHistogram logs).
pub fn encode_histogram(h: &LatencyHistogram) -> String {
    HistogramEncoder::default().encode(h)
}

/// HdrHistogram's cookie of a V2 deflate encoding (`V2_COMPRESSED_COOKIE`, which the crate
/// does not export): a big-endian u32 ahead of the compressed length and the zlib stream.
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;

/// Encodes histograms as [`encode_histogram`] does, keeping its buffers and its compressor from
/// one histogram to the next. hdrhistogram's `V2DeflateSerializer` makes a new compressor for
/// each histogram: some 300 KB allocated and zeroed, then given back, which the allocator hands
/// to the system and takes back (page faults) when a timeline encodes a few phases a second.
pub(crate) struct HistogramEncoder {
    v2: V2Serializer,
    raw: Vec<u8>,
    deflate: Compress,
    out: Vec<u8>,
}

impl std::fmt::Debug for HistogramEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistogramEncoder").finish_non_exhaustive()
    }
}

impl Default for HistogramEncoder {
    fn default() -> Self {
        Self {
            v2: V2Serializer::new(),
            raw: Vec::new(),
            deflate: Compress::new(Compression::default(), true),
            out: Vec::new(),
        }
    }
}

impl HistogramEncoder {
    /// `h` as HdrHistogram V2 deflate, base64.
    pub(crate) fn encode(&mut self, h: &LatencyHistogram) -> String {
        self.raw.clear();
        // Invariant: serializing into a Vec cannot fail for a well-formed histogram.
        #[allow(clippy::unwrap_used)]
        self.v2.serialize(h, &mut self.raw).unwrap();
        self.out.clear();
        self.out.extend_from_slice(&V2_DEFLATE_COOKIE.to_be_bytes());
        self.out.extend_from_slice(&[0; 4]);
        self.deflate.reset();
        loop {
            // `compress_vec` writes only into spare capacity.
            self.out.reserve(self.raw.len() / 2 + 64);
            let done = usize::try_from(self.deflate.total_in()).unwrap_or(usize::MAX);
            let input = self.raw.get(done..).unwrap_or_default();
            // Invariant: deflating a whole buffer in memory cannot fail.
            #[allow(clippy::unwrap_used)]
            match self
                .deflate
                .compress_vec(input, &mut self.out, FlushCompress::Finish)
                .unwrap()
            {
                Status::StreamEnd => break,
                Status::Ok | Status::BufError => {}
            }
        }
        // The compressed length, behind the cookie and the length itself.
        let len = u32::try_from(self.out.len() - 8).unwrap_or(u32::MAX);
        self.out[4..8].copy_from_slice(&len.to_be_bytes());
        base64::engine::general_purpose::STANDARD.encode(&self.out)
    }
}

/// Decodes what [`encode_histogram`] wrote (or any HdrHistogram V2 / V2-deflate base64).
pub fn decode_histogram(text: &str) -> Result<LatencyHistogram, HistogramCodecError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(HistogramCodecError::Base64)?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(HistogramCodecError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trips() {
        let mut h = new_histogram();
        for v in [1, 10, 100, 1000, 123_456, HIGHEST_US * 2] {
            h.saturating_record(v);
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    #[test]
    fn a_kept_encoder_writes_what_hdrhistogram_reads_histogram_after_histogram() {
        let mut encoder = HistogramEncoder::default();
        let mut wide = new_histogram();
        for i in 0..20_000u64 {
            wide.saturating_record(1 + i * i * 7 % HIGHEST_US);
        }
        let mut one = new_histogram();
        one.saturating_record(421);
        // Empty, wide (more than the first output reserve), small after wide, and again.
        for h in [new_histogram(), wide.clone(), one, wide] {
            let text = encoder.encode(&h);
            let back = decode_histogram(&text).unwrap();
            assert_eq!(back, h);
            // hdrhistogram's own V2 deflate serializer: the same cookie, the same histogram.
            let mut theirs = Vec::new();
            hdrhistogram::serialization::V2DeflateSerializer::new()
                .serialize(&h, &mut theirs)
                .unwrap();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&text)
                .unwrap();
            assert_eq!(bytes[..4], theirs[..4], "the V2 deflate cookie");
            assert_eq!(
                Deserializer::new()
                    .deserialize::<u64, _>(&mut theirs.as_slice())
                    .unwrap(),
                back
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_histogram("not base64 !!").is_err());
        assert!(decode_histogram("AAAA").is_err());
    }

    #[test]
    fn a_shard_makes_histograms_only_for_phases_prepared_or_recorded() {
        let h = PhaseHistograms::new(2);
        let made = |h: &PhaseHistograms| -> Vec<Vec<usize>> {
            h.shards
                .iter()
                .map(|s| {
                    let s = s.lock();
                    (0..s.phases.len())
                        .filter(|&p| s.phases[p].is_some())
                        .collect()
                })
                .collect()
        };
        assert_eq!(made(&h), [Vec::<usize>::new(), Vec::new()]);
        h.prepare(5);
        assert_eq!(made(&h), [vec![5], vec![5]]);
        // A sample is made room for when its shard's list goes into the histograms.
        h.record(3, 1, Duration::from_micros(40));
        assert!(!h.is_empty(3));
        assert_eq!(h.merged(3).len(), 1);
        assert_eq!(made(&h), [vec![5], vec![3, 5]]);
        assert!(h.is_empty(5) && h.merged(5).is_empty());
    }

    #[test]
    fn a_read_sees_every_sample_recorded_before_it_pending_or_not() {
        let h = PhaseHistograms::new(2);
        assert!(h.is_empty(3));
        // One sample: pending in its shard, yet not empty and merged.
        h.record(3, 0, Duration::from_micros(250));
        assert!(h.is_empty(2) && !h.is_empty(3));
        assert_eq!(h.merged(3).len(), 1);
        // More than a shard's list holds, over two phases and both shards, read between.
        let n = 5 * PENDING as u64;
        for i in 0..n {
            h.record(
                2 + (i % 2) as usize,
                i as usize,
                Duration::from_micros(i + 1),
            );
            if i == n / 2 {
                assert_eq!(h.merged(2).len() + h.merged(3).len(), 1 + i + 1);
            }
        }
        let (even, odd) = (h.merged(2), h.merged(3));
        assert_eq!((even.len(), odd.len()), (n / 2, n / 2 + 1));
        assert_eq!(even.max(), n - 1);
        assert_eq!(odd.max(), n);
        let mut out = new_histogram();
        h.merge_into(2, &mut out);
        assert_eq!(out, even);
    }

    #[test]
    fn sub_microsecond_samples_count_as_one() {
        assert_eq!(micros(Duration::from_nanos(10)), 1);
    }
}
