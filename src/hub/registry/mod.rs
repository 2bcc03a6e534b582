//! The hub's registries: CA certificates (at most 25, verified by proof of possession) and
//! devices ("X.509 CA signed" or self-signed by thumbprint), with per-device counters and the
//! one-connection-per-device rule.
//!
//! Split by responsibility: `ca` (uploading and proving CAs), `device` (the device registry and
//! one device's session), `auth` (deciding whether a chain may act as a device), `verified`
//! (the memory of chains that verified) and `refusal` (why a session is refused).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

mod auth;
mod ca;
mod device;
mod refusal;
#[cfg(test)]
mod tests;
mod verified;

pub use ca::{hex_upper, CaEntry, CaInfo};
pub use device::{Device, DeviceAuth};
pub use refusal::{Refusal, SELF_SIGNED};
use verified::VerifiedChains;

/// IoT Hub's limit on CA certificates per hub.
pub const MAX_CAS: usize = 25;

/// IoT Hub's limit on devices (and modules) per hub, which `hub device add` keeps to. The
/// embedded hub of a `run` registers whatever fleet the plan allows.
pub const MAX_DEVICES: u64 = 1_000_000;

/// Errors changing the registries.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// Already 25 CAs.
    #[error("the hub already holds {MAX_CAS} CA certificates, IoT Hub's limit")]
    TooManyCas,
    /// A CA by this name exists.
    #[error("a CA named {0:?} is already registered")]
    DuplicateCa(String),
    /// No CA by this name.
    #[error("no CA named {0:?} is registered")]
    UnknownCa(String),
    /// The same certificate is registered under another name.
    #[error(
        "this certificate (thumbprint {thumbprint}) is already registered as CA {existing:?}; \
         IoT Hub refuses the same certificate under two names"
    )]
    DuplicateCertificate {
        /// The name it is registered under.
        existing: String,
        /// Its SHA-1 thumbprint.
        thumbprint: String,
    },
    /// A CA name or device id IoT Hub would refuse.
    #[error(transparent)]
    Name(#[from] crate::hub::names::NameError),
    /// The certificate is not a usable CA certificate.
    #[error("CA certificate {name:?} is not usable: {reason}")]
    BadCa {
        /// CA name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The verification certificate did not prove possession.
    #[error("verification of CA {name:?} failed: {reason}")]
    VerificationFailed {
        /// CA name.
        name: String,
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Default)]
struct Inner {
    cas: Vec<CaEntry>,
    /// Changes whenever the CAs do, so that a chain verified against older CAs is checked again.
    generation: u64,
    devices: HashMap<String, Arc<Device>>,
}

/// CA and device registries.
#[derive(Debug, Default)]
pub struct Registry {
    inner: RwLock<Inner>,
    verified: VerifiedChains,
    /// Register a CA-signed device on its first successful authentication (see
    /// [`Registry::register_ca_signed_on_demand`]).
    on_demand: std::sync::atomic::AtomicBool,
    /// Rereads the registry's source (a state directory) when a device is refused for
    /// something a newer registry might allow (see [`Registry::reload_with`]).
    reload: RwLock<Option<Reloader>>,
}

/// Brings a registry up to date with its source; says whether it changed anything.
#[derive(Clone)]
struct Reloader(Arc<dyn Fn(&Registry) -> bool + Send + Sync>);

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reloader")
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Has [`Registry::authenticate`] call `reload` when a device is unknown or its CA unknown
    /// or unverified, and try once more if `reload` says it changed the registry (a serving
    /// hub rereads its state directory, so that a device added a moment ago is accepted).
    pub fn reload_with(&self, reload: impl Fn(&Self) -> bool + Send + Sync + 'static) {
        *self.reload.write() = Some(Reloader(Arc::new(reload)));
    }

    fn reload(&self) -> bool {
        // Cloned out: the reloader takes the registry's locks.
        let reload = self.reload.read().clone();
        reload.is_some_and(|r| (r.0)(self))
    }
}
