//! Deciding whether a presented chain may act as a device: thumbprints for self-signed
//! devices, a path to a verified CA for CA-signed ones, remembered once it verified.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};

use super::ca::{algorithms, sha1_hex, sha256_hex};
use super::{CaEntry, Device, DeviceAuth, Refusal, Registry, VerifiedChains, SELF_SIGNED};
use crate::pki::common_name_of;

impl Registry {
    /// Decides whether `chain` (leaf first) may act as device `claimed_id`.
    pub fn authenticate(
        &self,
        chain: &[CertificateDer<'static>],
        claimed_id: &str,
    ) -> Result<Arc<Device>, Refusal> {
        self.authenticate_by(chain, claimed_id).map(|(d, _)| d)
    }

    /// As [`Registry::authenticate`], also naming what vouched for the device: the registered
    /// CA its chain verified against, or [`SELF_SIGNED`] for a thumbprint-registered device.
    pub fn authenticate_by(
        &self,
        chain: &[CertificateDer<'static>],
        claimed_id: &str,
    ) -> Result<(Arc<Device>, Arc<str>), Refusal> {
        match self.authenticate_once(chain, claimed_id) {
            Err(
                Refusal::UnknownDevice(_) | Refusal::UnknownCa { .. } | Refusal::CaUnverified(_),
            ) if self.reload() => self.authenticate_once(chain, claimed_id),
            other => other,
        }
    }

    fn authenticate_once(
        &self,
        chain: &[CertificateDer<'static>],
        claimed_id: &str,
    ) -> Result<(Arc<Device>, Arc<str>), Refusal> {
        let leaf = chain.first().ok_or(Refusal::NoCertificate)?;
        let key = VerifiedChains::key(chain);
        let generation = self.inner.read().generation;
        let known = self
            .verified
            .get(&key, generation, UnixTime::now().as_secs());
        let cn: Arc<str> = match &known {
            Some((cn, _)) => cn.clone(),
            None => common_name_of(leaf)
                .ok_or_else(|| Refusal::InvalidCertificate("no subject common name".into()))?
                .into(),
        };
        let (device, provisional) = match self.device(claimed_id) {
            Some(d) => (d, false),
            None if self.on_demand.load(Ordering::Relaxed) => {
                let auth = DeviceAuth::CertificateAuthority;
                (Arc::new(Device::new(claimed_id.to_owned(), auth)), true)
            }
            None => return Err(Refusal::UnknownDevice(claimed_id.to_owned())),
        };
        if !device.enabled {
            return Err(Refusal::DeviceDisabled(claimed_id.to_owned()));
        }
        let by: Arc<str> = match &device.auth {
            DeviceAuth::SelfSigned { primary, secondary } => {
                let (s1, s256) = (sha1_hex(leaf), sha256_hex(leaf));
                let matches =
                    |t: &String| t.eq_ignore_ascii_case(&s1) || t.eq_ignore_ascii_case(&s256);
                if !(matches(primary) || secondary.as_ref().is_some_and(matches)) {
                    return Err(Refusal::ThumbprintMismatch);
                }
                SELF_SIGNED.into()
            }
            DeviceAuth::CertificateAuthority => {
                if *cn != *claimed_id {
                    return Err(Refusal::IdentityMismatch(format!(
                        "certificate CN is {cn:?} but the device claims to be {claimed_id:?}"
                    )));
                }
                match known {
                    Some((_, ca)) => ca,
                    None => {
                        let ca = self.verify_chain(chain)?;
                        self.verified
                            .insert(key, chain, generation, (cn, ca.clone()));
                        ca
                    }
                }
            }
        };
        if provisional {
            // Authenticated: register it (or take the entry a concurrent first connection made).
            let mut inner = self.inner.write();
            let device = inner
                .devices
                .entry(claimed_id.to_owned())
                .or_insert(device)
                .clone();
            return Ok((device, by));
        }
        Ok((device, by))
    }

    /// Verifies `chain` against the verified CAs; returns the name of the one it chains to.
    fn verify_chain(&self, chain: &[CertificateDer<'static>]) -> Result<Arc<str>, Refusal> {
        let ee = webpki::EndEntityCert::try_from(&chain[0])
            .map_err(|e| Refusal::InvalidCertificate(format!("{e:?}")))?;
        let inner = self.inner.read();
        let verify = |cas: &mut dyn Iterator<Item = &CaEntry>| {
            let anchors: Vec<TrustAnchor<'_>> = cas.map(|c| c.anchor.clone()).collect();
            ee.verify_for_usage(
                algorithms(),
                &anchors,
                &chain[1..],
                UnixTime::now(),
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .map(|path| {
                let a = path.anchor();
                (a.subject.to_vec(), a.subject_public_key_info.to_vec())
            })
        };
        match verify(&mut inner.cas.iter().filter(|c| c.verified)) {
            Ok((subject, spki)) => Ok(inner
                .cas
                .iter()
                .find(|c| {
                    c.verified
                        && *c.anchor.subject == *subject
                        && *c.anchor.subject_public_key_info == *spki
                })
                .map_or_else(|| "unknown".into(), |c| c.name.as_str().into())),
            // No path to a verified CA: the issuer is unknown, or a same-named CA's signature
            // does not match (another CA that happens to share the name).
            Err(webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey) => {
                let unverified = inner
                    .cas
                    .iter()
                    .filter(|c| !c.verified)
                    .find(|c| verify(&mut std::iter::once(*c)).is_ok());
                Err(unverified.map_or(
                    Refusal::UnknownCa {
                        presented: chain.len(),
                    },
                    |c| Refusal::CaUnverified(c.name.clone()),
                ))
            }
            Err(e) => Err(Refusal::InvalidCertificate(describe_webpki(&e))),
        }
    }
}

fn describe_webpki(e: &webpki::Error) -> String {
    match e {
        webpki::Error::CertExpired { .. } => "expired".into(),
        webpki::Error::CertNotValidYet { .. } => "not yet valid".into(),
        webpki::Error::RequiredEkuNotFoundContext(_) => "no clientAuth extended key usage".into(),
        other => format!("{other:?}"),
    }
}
