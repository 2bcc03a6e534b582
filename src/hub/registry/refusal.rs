//! Why the hub refuses a device session.

#[cfg(doc)]
use super::Registry;

/// Why the hub refused a device session. Counted by [`Refusal::name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The CA is registered but not verified.
    #[error("certificate chains to CA {0:?}, which is not verified")]
    CaUnverified(String),
    /// The device is registered but disabled.
    #[error("device {0:?} is disabled")]
    DeviceDisabled(String),
    /// The certificate CN, client id and username do not name the same device.
    #[error("identity mismatch: {0}")]
    IdentityMismatch(String),
    /// The certificate is expired, not yet valid, lacks clientAuth, or does not parse.
    #[error("certificate invalid: {0}")]
    InvalidCertificate(String),
    /// No client certificate was presented.
    #[error("no client certificate")]
    NoCertificate,
    /// A self-signed device presented a certificate with other thumbprints.
    #[error("thumbprint does not match the registered one")]
    ThumbprintMismatch,
    /// The chain does not end at any registered CA.
    #[error("{}", unknown_ca(*presented))]
    UnknownCa {
        /// How many certificates the device presented.
        presented: usize,
    },
    /// No such device id in the registry.
    #[error("device {0:?} is not registered")]
    UnknownDevice(String),
}

impl Refusal {
    /// Stable name for counting.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CaUnverified(_) => "ca_unverified",
            Self::DeviceDisabled(_) => "device_disabled",
            Self::IdentityMismatch(_) => "identity_mismatch",
            Self::InvalidCertificate(_) => "invalid_certificate",
            Self::NoCertificate => "no_certificate",
            Self::ThumbprintMismatch => "thumbprint_mismatch",
            Self::UnknownCa { .. } => "unknown_ca",
            Self::UnknownDevice(_) => "unknown_device",
        }
    }
}

/// What [`Registry::authenticate_by`] names for a device registered by thumbprint.
pub const SELF_SIGNED: &str = "(self-signed)";

fn unknown_ca(presented: usize) -> String {
    if presented == 1 {
        "certificate does not chain to a registered CA: presented 1 certificate: the chain to a \
         registered CA is missing; present the device chain file (leaf, then its intermediates)"
            .into()
    } else {
        format!(
            "certificate does not chain to a registered CA (presented {presented} certificates)"
        )
    }
}
