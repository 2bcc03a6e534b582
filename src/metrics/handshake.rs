//! Bytes on the wire and round trips per TLS handshake, full and resumed apart, as the
//! transport's counting adapter counted them on each device's TCP stream.

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::histogram::encode_histogram;

/// One handshake as counted when it completed on the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandshakeSample {
    /// The session was resumed.
    pub resumed: bool,
    /// TCP payload bytes client -> server up to the handshake's completion.
    pub to_server: u64,
    /// TCP payload bytes server -> client up to the handshake's completion.
    pub to_client: u64,
    /// Round trips (write -> read turns) up to the completion.
    pub round_trips: u32,
    /// The server answered the first ClientHello with a HelloRetryRequest.
    pub hello_retry: bool,
    /// DER bytes of the certificate chain the client sent.
    pub chain_sent: u64,
    /// DER bytes of the certificate chain the server sent.
    pub chain_received: u64,
    /// CPU ns spent inside the handshake's polls on the client, when it was clocked.
    pub cpu_ns: Option<u64>,
}

/// Collects handshakes and their sessions' totals (one lock per handshake: a handshake costs
/// hundreds of microseconds, the lock tens of nanoseconds).
#[derive(Debug, Default)]
pub struct HandshakeRecorder {
    full: Mutex<Acc>,
    resumed: Mutex<Acc>,
}

#[derive(Debug, Default)]
struct Acc {
    count: u64,
    hello_retries: u64,
    to_server: Values,
    to_client: Values,
    round_trips: Values,
    chain_sent: u64,
    chain_received: u64,
    sessions: u64,
    session_to_server: u64,
    session_to_client: u64,
    cpu: super::cpu_split::CpuTally,
}

/// Exact sums and counts, medians from a histogram (3 significant digits).
#[derive(Debug)]
struct Values {
    sum: u64,
    max: u64,
    hist: Histogram<u64>,
}

impl Default for Values {
    fn default() -> Self {
        Self {
            sum: 0,
            max: 0,
            // Invariant: constant bounds hdrhistogram accepts (1 <= low, high >= 2 * low,
            // 3 significant digits); up to 1 TiB per handshake.
            #[allow(clippy::unwrap_used)]
            hist: Histogram::new_with_bounds(1, 1 << 40, 3).unwrap(),
        }
    }
}

impl Values {
    fn record(&mut self, v: u64) {
        self.sum += v;
        self.max = self.max.max(v);
        self.hist.saturating_record(v);
    }

    fn stat(&self, count: u64) -> WireStat {
        WireStat {
            median: self.hist.value_at_quantile(0.5),
            mean: round2(self.sum as f64 / count.max(1) as f64),
            max: self.max,
            total: self.sum,
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl HandshakeRecorder {
    /// Records one completed handshake.
    pub fn handshake(&self, s: &HandshakeSample) {
        let mut a = self.acc(s.resumed).lock();
        a.count += 1;
        a.hello_retries += u64::from(s.hello_retry);
        a.to_server.record(s.to_server);
        a.to_client.record(s.to_client);
        a.round_trips.record(u64::from(s.round_trips));
        a.chain_sent += s.chain_sent;
        a.chain_received += s.chain_received;
        if let Some(ns) = s.cpu_ns {
            a.cpu.record(ns);
        }
    }

    /// Records a session's TCP payload totals each way, at its end.
    pub fn session(&self, resumed: bool, to_server: u64, to_client: u64) {
        let mut a = self.acc(resumed).lock();
        a.sessions += 1;
        a.session_to_server += to_server;
        a.session_to_client += to_client;
    }

    fn acc(&self, resumed: bool) -> &Mutex<Acc> {
        if resumed {
            &self.resumed
        } else {
            &self.full
        }
    }

    /// The client's CPU per handshake, full and resumed apart.
    pub fn cpu(&self) -> super::CpuKinds {
        super::CpuKinds::of(&self.full.lock().cpu, &self.resumed.lock().cpu)
    }

    /// The summary, `None` before any handshake completed.
    pub fn summary(&self) -> Option<HandshakeSummary> {
        let (full, resumed) = (self.full.lock(), self.resumed.lock());
        if full.count == 0 && resumed.count == 0 {
            return None;
        }
        let kind = |a: &Acc| {
            (a.count > 0).then(|| HandshakeKind {
                count: a.count,
                hello_retries: a.hello_retries,
                bytes_to_server: a.to_server.stat(a.count),
                bytes_to_client: a.to_client.stat(a.count),
                round_trips: a.round_trips.stat(a.count),
                chain_sent_bytes: round2(a.chain_sent as f64 / a.count as f64),
                chain_received_bytes: round2(a.chain_received as f64 / a.count as f64),
                sessions: a.sessions,
                session_bytes_to_server: a.session_to_server,
                session_bytes_to_client: a.session_to_client,
                histograms: Some(WireHistograms {
                    bytes_to_server: encode_histogram(&a.to_server.hist),
                    bytes_to_client: encode_histogram(&a.to_client.hist),
                    round_trips: encode_histogram(&a.round_trips.hist),
                }),
            })
        };
        Some(HandshakeSummary {
            full: kind(&full),
            resumed: kind(&resumed),
        })
    }
}

/// `summary.json`'s `handshake` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandshakeSummary {
    /// Full handshakes.
    pub full: Option<HandshakeKind>,
    /// Resumed handshakes.
    pub resumed: Option<HandshakeKind>,
}

/// The figures of one kind of handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandshakeKind {
    /// Handshakes completed.
    pub count: u64,
    /// Of them, answered with a HelloRetryRequest first.
    pub hello_retries: u64,
    /// TCP payload client -> server up to the handshake's completion.
    pub bytes_to_server: WireStat,
    /// TCP payload server -> client up to the handshake's completion.
    pub bytes_to_client: WireStat,
    /// Round trips up to the completion.
    pub round_trips: WireStat,
    /// Mean DER bytes of the client's chain per handshake (its share of `bytes_to_server`).
    pub chain_sent_bytes: f64,
    /// Mean DER bytes of the server's chain per handshake (its share of `bytes_to_client`).
    pub chain_received_bytes: f64,
    /// Sessions of this kind that ended (their streams closed).
    pub sessions: u64,
    /// TCP payload client -> server over those whole sessions.
    pub session_bytes_to_server: u64,
    /// TCP payload server -> client over those whole sessions.
    pub session_bytes_to_client: u64,
    /// The per-handshake samples behind the medians, for `merge` (absent in older summaries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histograms: Option<WireHistograms>,
}

/// The per-handshake samples of a kind: HdrHistogram V2 deflate, base64 (as the phases').
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireHistograms {
    /// Of `bytes_to_server`.
    pub bytes_to_server: String,
    /// Of `bytes_to_client`.
    pub bytes_to_client: String,
    /// Of `round_trips`.
    pub round_trips: String,
}

/// Median, mean, max and total of a per-handshake figure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WireStat {
    /// Median (3 significant digits).
    pub median: u64,
    /// Mean (exact, 2 decimals).
    pub mean: f64,
    /// Largest.
    pub max: u64,
    /// Sum over the handshakes.
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_resumed_apart_with_exact_means() {
        let r = HandshakeRecorder::default();
        assert!(r.summary().is_none());
        let full = HandshakeSample {
            to_server: 1000,
            to_client: 2000,
            round_trips: 1,
            chain_sent: 600,
            chain_received: 700,
            ..Default::default()
        };
        r.handshake(&full);
        r.handshake(&HandshakeSample {
            to_server: 1001,
            round_trips: 2,
            hello_retry: true,
            ..full
        });
        r.handshake(&HandshakeSample {
            resumed: true,
            to_server: 300,
            to_client: 250,
            round_trips: 1,
            ..Default::default()
        });
        r.session(false, 5000, 6000);
        let s = r.summary().unwrap();
        let f = s.full.unwrap();
        assert_eq!((f.count, f.hello_retries), (2, 1));
        assert_eq!(f.bytes_to_server.mean, 1000.5);
        assert_eq!(f.bytes_to_server.total, 2001);
        assert_eq!((f.round_trips.max, f.chain_sent_bytes), (2, 600.0));
        assert_eq!((f.sessions, f.session_bytes_to_client), (1, 6000));
        let re = s.resumed.unwrap();
        assert_eq!((re.count, re.bytes_to_client.median), (1, 250));
    }
}
