//! The memory of chains that verified.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rustls::pki_types::CertificateDer;

/// reconnect often, so they are soon back).
const VERIFIED_CHAINS: usize = 1 << 17;

/// Chains that verified, so that a device reconnecting (churn, TLS resumption) costs a hash
/// instead of a signature check, as a hub with many devices must. Keyed by the SHA-256 of the
/// presented chain; an entry holds for the CA generation it was checked against, and only
/// while every certificate of the chain is within its validity.
#[derive(Debug, Default)]
pub(super) struct VerifiedChains {
    pub(super) map: Mutex<HashMap<[u8; 32], Verified>>,
}

#[derive(Debug, Clone)]
pub(super) struct Verified {
    generation: u64,
    /// The latest not-before and the earliest not-after of the chain, in Unix seconds.
    valid: (u64, u64),
    cn: Arc<str>,
    /// The registered CA the chain verified against.
    ca: Arc<str>,
}

impl VerifiedChains {
    pub(super) fn key(chain: &[CertificateDer<'_>]) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for cert in chain {
            ctx.update(&(cert.len() as u64).to_be_bytes());
            ctx.update(cert);
        }
        let mut key = [0; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        key
    }

    /// The leaf's CN and the verifying CA's name, when the chain verified against CA
    /// generation `generation`.
    pub(super) fn get(
        &self,
        key: &[u8; 32],
        generation: u64,
        now: u64,
    ) -> Option<(Arc<str>, Arc<str>)> {
        let map = self.map.lock();
        let v = map.get(key)?;
        (v.generation == generation && v.valid.0 <= now && now <= v.valid.1)
            .then(|| (v.cn.clone(), v.ca.clone()))
    }

    pub(super) fn insert(
        &self,
        key: [u8; 32],
        chain: &[CertificateDer<'_>],
        generation: u64,
        (cn, ca): (Arc<str>, Arc<str>),
    ) {
        let Some(valid) = validity_of(chain) else {
            return;
        };
        let mut map = self.map.lock();
        if map.len() >= VERIFIED_CHAINS {
            map.clear();
        }
        map.insert(
            key,
            Verified {
                generation,
                valid,
                cn,
                ca,
            },
        );
    }
}

/// The window in which every certificate of `chain` is valid, in Unix seconds.
pub(super) fn validity_of(chain: &[CertificateDer<'_>]) -> Option<(u64, u64)> {
    chain.iter().try_fold((0u64, u64::MAX), |(from, to), cert| {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
        let v = parsed.validity();
        let secs = |t: i64| u64::try_from(t).unwrap_or(0);
        Some((
            from.max(secs(v.not_before.timestamp())),
            to.min(secs(v.not_after.timestamp())),
        ))
    })
}
