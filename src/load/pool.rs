//! Devices between sessions. When sessions repeat (churn, stages) a device whose session ended
//! waits here for its next one, and the scheduler takes a waiting device before it asks the
//! minters for a new one: the devices minted (and held in memory) grow with the sessions a run
//! holds at once, not with `fleet.devices`. Each device's acknowledgements are tallied when it
//! leaves the run.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::device::ReadyDevice;

/// Devices waiting for their next session.
#[derive(Debug, Default)]
pub(super) struct Pool {
    waiting: Mutex<VecDeque<ReadyDevice>>,
    returned: Notify,
}

impl Pool {
    /// A device whose session ended, ready for another.
    pub(super) fn put(&self, device: ReadyDevice) {
        self.waiting.lock().push_back(device);
        self.returned.notify_one();
    }

    /// The device that has waited longest, if any.
    pub(super) fn take(&self) -> Option<ReadyDevice> {
        self.waiting.lock().pop_front()
    }

    /// Waits for a device to come back.
    pub(super) async fn returned(&self) -> ReadyDevice {
        loop {
            // `notify_one` keeps a permit when nobody waits, so a return between the check and
            // the wait is not lost.
            if let Some(d) = self.take() {
                return d;
            }
            self.returned.notified().await;
        }
    }

    /// Every waiting device, emptying the pool.
    pub(super) fn drain(&self) -> Vec<ReadyDevice> {
        self.waiting.lock().drain(..).collect()
    }
}

/// Acknowledged messages per device that ran at least one session, and what each sent.
#[derive(Debug, Default)]
pub(super) struct Tally {
    acked: Mutex<Vec<(usize, u32)>>,
    sends: Mutex<Vec<super::DeviceSends>>,
}

impl Tally {
    /// Records a device that leaves the run.
    pub(super) fn record(&self, device: &ReadyDevice) {
        use std::sync::atomic::Ordering::Relaxed;
        let acked = device.acked.load(Relaxed);
        self.acked.lock().push((device.index, acked));
        let sent = device.sent.load(Relaxed);
        if sent > 0 {
            self.sends.lock().push(super::DeviceSends {
                index: device.index,
                sent,
                acked,
                unacked: std::mem::take(&mut *device.unacked.lock()),
            });
        }
    }

    /// The tallies, by device index.
    pub(super) fn finish(&self) -> Vec<(usize, u32)> {
        let mut all = std::mem::take(&mut *self.acked.lock());
        all.sort_unstable();
        all
    }

    /// What each device that sent anything sent, by device index.
    pub(super) fn finish_sends(&self) -> Vec<super::DeviceSends> {
        let mut all = std::mem::take(&mut *self.sends.lock());
        all.sort_unstable_by_key(|d| d.index);
        all
    }
}
