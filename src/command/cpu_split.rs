//! The run's CPU per handshake, measured inside each handshake, joined here: the client's from
//! the load's recorder, the embedded hub's from its own counts over the same window as the
//! `/proc` probe (the hub and the load never meet; this module reads both).

use std::sync::Arc;

use crate::hub::handshake_cpu::CpuCount;
use crate::hub::Hub;
use crate::metrics::{CpuKinds, CpuSummary, CpuTally, HandshakeCpu, Recorder};

/// The embedded hub's handshake CPU counts at the start of the run's load.
pub(super) struct HubCpu(Option<(Arc<Hub>, CpuCount, CpuCount)>);

impl HubCpu {
    /// Reads the hub's counts now (nothing without an embedded hub).
    pub(super) fn start(hub: Option<&Arc<Hub>>) -> Self {
        Self(hub.map(|h| {
            let (full, resumed) = h.stats.handshake_cpu.snapshot();
            (h.clone(), full, resumed)
        }))
    }

    /// The hub's handshakes since [`HubCpu::start`], full and resumed apart.
    pub(super) fn finish(self) -> Option<CpuKinds> {
        let (hub, full0, resumed0) = self.0?;
        let (full, resumed) = hub.stats.handshake_cpu.snapshot();
        Some(CpuKinds::of(
            &since(full, &full0),
            &since(resumed, &resumed0),
        ))
    }
}

/// `now` less `before` (the handshakes before the load: a verifying receiver's, say).
fn since(now: CpuCount, before: &CpuCount) -> CpuTally {
    let mut hist = now.hist;
    // `before` is a prefix of the same counts with the same bounds: subtraction cannot fail.
    let _ = hist.subtract(&before.hist);
    CpuTally {
        total_ns: now.total_ns.saturating_sub(before.total_ns),
        hist,
    }
}

/// `cpu` with the per-handshake figures of the client (`recorder`) and the hub (`hub`).
pub(super) fn with_per_handshake(
    mut cpu: CpuSummary,
    recorder: &Recorder,
    hub: Option<CpuKinds>,
) -> CpuSummary {
    cpu.per_handshake = Some(HandshakeCpu::new(recorder.wire.cpu(), hub));
    cpu
}
