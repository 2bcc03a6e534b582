//! The device registry: how each device authenticates, its counters and its one current
//! connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum DeviceAuth {
    /// Any certificate with CN = device id chaining to a verified CA.
    CertificateAuthority,
    /// A certificate whose SHA-1 or SHA-256 thumbprint (hex) is one of these.
    SelfSigned {
        /// Primary thumbprint.
        primary: String,
        /// Secondary thumbprint.
        secondary: Option<String>,
    },
}

/// A registered device.
#[derive(Debug)]
pub struct Device {
    /// Device id.
    pub id: String,
    /// Authentication type.
    pub auth: DeviceAuth,
    /// Enabled (status) flag.
    pub enabled: bool,
    /// Messages received from this device.
    pub received: AtomicU64,
    /// The current connection: its number and how to drop it.
    session: Mutex<Option<(u64, CancellationToken)>>,
}

impl Device {
    pub(super) fn new(id: String, auth: DeviceAuth) -> Self {
        Self {
            id,
            auth,
            enabled: true,
            received: AtomicU64::new(0),
            session: Mutex::new(None),
        }
    }

    /// Makes connection `conn` the device's only one, dropping the older (as IoT Hub does).
    /// Returns a token that is cancelled when a newer connection takes over.
    pub fn take_over(&self, conn: u64) -> CancellationToken {
        let token = CancellationToken::new();
        if let Some((_, old)) = self.session.lock().replace((conn, token.clone())) {
            old.cancel();
        }
        token
    }

    /// Forgets connection `conn` if it is still the current one.
    pub fn release(&self, conn: u64) {
        let mut s = self.session.lock();
        if s.as_ref().is_some_and(|(c, _)| *c == conn) {
            *s = None;
        }
    }

    /// Counts one received message.
    pub fn count_message(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }
}

impl Registry {
    /// Every registered device and how it authenticates, sorted by id.
    pub fn devices(&self) -> Vec<(String, DeviceAuth)> {
        let mut all: Vec<_> = self
            .inner
            .read()
            .devices
            .values()
            .map(|d| (d.id.clone(), d.auth.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Registers (or replaces) devices.
    pub fn register_devices(&self, devices: impl IntoIterator<Item = (String, DeviceAuth)>) {
        let mut inner = self.inner.write();
        for (id, auth) in devices {
            inner
                .devices
                .insert(id.clone(), Arc::new(Device::new(id, auth)));
        }
    }

    /// Registers devices as "X.509 CA signed".
    pub fn register_ca_signed(&self, ids: impl IntoIterator<Item = String>) {
        self.register_devices(
            ids.into_iter()
                .map(|id| (id, DeviceAuth::CertificateAuthority)),
        );
    }

    /// Registers, from now on, every device that authenticates with a certificate of a verified
    /// CA whose CN is its id, as "X.509 CA signed", on its first connection: what
    /// [`Registry::register_ca_signed`] would do for a whole fleet, without holding entries for
    /// devices that never connect.
    pub fn register_ca_signed_on_demand(&self) {
        self.on_demand.store(true, Ordering::Relaxed);
    }

    /// A registered device.
    pub fn device(&self, id: &str) -> Option<Arc<Device>> {
        self.inner.read().devices.get(id).cloned()
    }

    /// How many devices are registered.
    pub fn device_count(&self) -> usize {
        self.inner.read().devices.len()
    }

    /// Messages received from `id` (0 for unknown devices).
    pub fn received(&self, id: &str) -> u64 {
        self.device(id)
            .map_or(0, |d| d.received.load(Ordering::Relaxed))
    }
}
