//! Threads that mint device identities and their TLS configurations on every core, streaming
//! them through a bounded queue so that memory grows with the queue, not with the fleet.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use super::device::ReadyDevice;
use super::Fleet;
use crate::metrics::{incr, Recorder};
use crate::transport::ClientTls;

/// The minting threads of a run.
pub(super) struct Minter {
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Minter {
    /// Lets the threads go without waiting for them: they stop once the identity in hand is
    /// minted (the queue is closed and the run stopped), and a large RSA key can take a second,
    /// which the run's hard bound must not wait for.
    pub(super) fn detach(self) {
        drop(self.threads);
    }
}

/// One thread per core; thread w mints devices w, w + cores, ... in order.
pub(super) fn start(
    fleet: &Fleet,
    tls: ClientTls,
    tx: mpsc::Sender<Result<ReadyDevice, String>>,
    stop: CancellationToken,
    recorder: Arc<Recorder>,
) -> Minter {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = fleet.ids.len();
    let threads = (0..workers)
        .filter_map(|w| {
            let (fleet, tls, tx, stop) = (fleet.clone(), tls.clone(), tx.clone(), stop.clone());
            let recorder = recorder.clone();
            std::thread::Builder::new()
                .name(format!("mint-{w}"))
                .spawn(move || {
                    for index in (w..n).step_by(workers) {
                        if stop.is_cancelled() {
                            return;
                        }
                        let id = fleet.ids.id(index);
                        let ready = fleet
                            .ca
                            .mint_device(&id, fleet.key_type, fleet.validity)
                            .map_err(|e| format!("{id}: {e}"))
                            .and_then(|d| {
                                tls.for_device(&d)
                                    .map(|tls| ReadyDevice {
                                        index,
                                        id,
                                        tls,
                                        acked: AtomicU32::new(0),
                                        sent: AtomicU32::new(0),
                                        unacked: Default::default(),
                                    })
                                    .map_err(|e| e.to_string())
                            });
                        if ready.is_ok() {
                            incr(&recorder.counters.identities_minted);
                        }
                        if tx.blocking_send(ready).is_err() {
                            return;
                        }
                    }
                })
                .ok()
        })
        .collect();
    Minter { threads }
}
