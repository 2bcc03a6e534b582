//! The hub's CPU per TLS handshake, full and resumed apart: the thread CPU clock read around
//! each poll of its TLS accept ([`crate::transport::cpu_clock`]), kept as an exact total and a
//! histogram per kind. `run` reads it for the embedded hub (the command layer turns it into the
//! summary's figures; the hub knows nothing of the summary).

use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// CPU ns of the handshakes of one kind.
#[derive(Debug, Clone)]
pub struct CpuCount {
    /// Sum over the handshakes, ns.
    pub total_ns: u64,
    /// One sample per handshake, ns (3 significant digits, up to about 18 minutes).
    pub hist: Histogram<u64>,
}

impl Default for CpuCount {
    fn default() -> Self {
        Self {
            total_ns: 0,
            // Invariant: constant bounds hdrhistogram accepts (1 <= low, high >= 2 * low,
            // 3 significant digits).
            #[allow(clippy::unwrap_used)]
            hist: Histogram::new_with_bounds(1, 1 << 40, 3).unwrap(),
        }
    }
}

/// CPU per completed handshake, full and resumed apart (one short lock per handshake).
#[derive(Debug, Default)]
pub struct HandshakeCpu {
    full: Mutex<CpuCount>,
    resumed: Mutex<CpuCount>,
}

impl HandshakeCpu {
    /// Counts one completed handshake's CPU.
    pub(crate) fn record(&self, resumed: bool, cpu: Duration) {
        let ns = u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX);
        let mut c = if resumed { &self.resumed } else { &self.full }.lock();
        c.total_ns += ns;
        c.hist.saturating_record(ns);
    }

    /// Copies of the full and the resumed counts.
    pub fn snapshot(&self) -> (CpuCount, CpuCount) {
        (self.full.lock().clone(), self.resumed.lock().clone())
    }
}
