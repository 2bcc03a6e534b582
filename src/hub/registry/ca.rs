//! CA certificates: upload (at most 25), proof of possession, listing.

use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::{Deserialize, Serialize};

use super::{Registry, RegistryError, MAX_CAS};
use crate::pki::common_name_of;

#[derive(Debug, Clone)]
pub struct CaEntry {
    /// Name given at upload.
    pub name: String,
    /// The certificate.
    pub cert: CertificateDer<'static>,
    /// Subject CN.
    pub subject: String,
    /// Whether possession was proven (or it was verified on upload).
    pub verified: bool,
    /// The code a verification certificate must carry as its CN.
    pub verification_code: String,
    /// SHA-1 thumbprint, upper-case hex (as the portal shows it).
    pub thumbprint: String,
    pub(super) anchor: TrustAnchor<'static>,
}

/// What `list` shows of a CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaInfo {
    /// Name.
    pub name: String,
    /// Subject CN.
    pub subject: String,
    /// Verified flag.
    pub verified: bool,
    /// Verification code (to put in the verification certificate's CN).
    pub verification_code: String,
    /// SHA-1 thumbprint.
    pub thumbprint: String,
}

/// Upper-case hex of bytes.
pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

pub(super) fn sha1_hex(der: &[u8]) -> String {
    hex_upper(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
}

pub(super) fn sha256_hex(der: &[u8]) -> String {
    hex_upper(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

pub(super) fn algorithms(
) -> &'static [&'static dyn rustls::pki_types::SignatureVerificationAlgorithm] {
    webpki::ALL_VERIFICATION_ALGS
}

impl Registry {
    /// Uploads a CA certificate, unverified. Returns its verification code.
    pub fn add_ca(
        &self,
        name: &str,
        cert: CertificateDer<'static>,
    ) -> Result<String, RegistryError> {
        crate::hub::names::check_ca_name(name)?;
        self.insert_ca(name, cert, false, None)
    }

    /// Uploads a CA certificate and marks it verified ("verified on upload").
    pub fn add_verified_ca(
        &self,
        name: &str,
        cert: CertificateDer<'static>,
    ) -> Result<(), RegistryError> {
        crate::hub::names::check_ca_name(name)?;
        self.insert_ca(name, cert, true, None).map(drop)
    }

    /// Restores a CA as it was saved (a hub's state directory), code and flag included. A CA
    /// already present is only marked verified if the saved one is.
    pub fn restore_ca(
        &self,
        name: &str,
        cert: CertificateDer<'static>,
        verified: bool,
        code: String,
    ) -> Result<(), RegistryError> {
        let mut inner = self.inner.write();
        if let Some(ca) = inner.cas.iter_mut().find(|c| c.name == name) {
            ca.verified |= verified;
            inner.generation += 1;
            return Ok(());
        }
        drop(inner);
        self.insert_ca(name, cert, verified, Some(code)).map(drop)
    }

    /// The registered CAs with their certificates (for saving).
    pub fn ca_entries(&self) -> Vec<CaEntry> {
        self.inner.read().cas.clone()
    }

    pub(super) fn insert_ca(
        &self,
        name: &str,
        cert: CertificateDer<'static>,
        verified: bool,
        code: Option<String>,
    ) -> Result<String, RegistryError> {
        let bad = |reason: String| RegistryError::BadCa {
            name: name.to_owned(),
            reason,
        };
        let anchor = webpki::anchor_from_trusted_cert(&cert)
            .map_err(|e| bad(format!("{e:?}")))?
            .to_owned();
        let subject =
            common_name_of(&cert).ok_or_else(|| bad("it has no subject common name".into()))?;
        crate::hub::names::check_is_ca(&cert).map_err(bad)?;
        let thumbprint = sha1_hex(&cert);
        let mut inner = self.inner.write();
        if let Some(c) = inner.cas.iter().find(|c| c.thumbprint == thumbprint) {
            return Err(RegistryError::DuplicateCertificate {
                existing: c.name.clone(),
                thumbprint,
            });
        }
        if inner.cas.len() >= MAX_CAS {
            return Err(RegistryError::TooManyCas);
        }
        if inner.cas.iter().any(|c| c.name == name) {
            return Err(RegistryError::DuplicateCa(name.to_owned()));
        }
        let code = code.unwrap_or_else(|| hex_upper(&rand::random::<[u8; 24]>()));
        inner.generation += 1;
        inner.cas.push(CaEntry {
            name: name.to_owned(),
            thumbprint,
            cert,
            subject,
            verified,
            verification_code: code.clone(),
            anchor,
        });
        Ok(code)
    }

    /// Proof of possession: `verification` must have CN = the CA's code and be signed by its key.
    pub fn verify_ca(
        &self,
        name: &str,
        verification: &CertificateDer<'_>,
    ) -> Result<(), RegistryError> {
        let mut inner = self.inner.write();
        let ca = inner
            .cas
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| RegistryError::UnknownCa(name.to_owned()))?;
        let failed = |reason: String| RegistryError::VerificationFailed {
            name: name.to_owned(),
            reason,
        };
        let cn = common_name_of(verification)
            .ok_or_else(|| failed("the certificate has no common name".into()))?;
        if cn != ca.verification_code {
            return Err(failed(format!(
                "its CN is {cn:?}, but the verification code is {:?}",
                ca.verification_code
            )));
        }
        let ee =
            webpki::EndEntityCert::try_from(verification).map_err(|e| failed(format!("{e:?}")))?;
        ee.verify_for_usage(
            algorithms(),
            std::slice::from_ref(&ca.anchor),
            &[],
            UnixTime::now(),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(|e| failed(format!("not signed by this CA's key ({e:?})")))?;
        ca.verified = true;
        inner.generation += 1;
        Ok(())
    }

    /// The registered CAs.
    pub fn cas(&self) -> Vec<CaInfo> {
        self.inner
            .read()
            .cas
            .iter()
            .map(|c| CaInfo {
                name: c.name.clone(),
                subject: c.subject.clone(),
                verified: c.verified,
                verification_code: c.verification_code.clone(),
                thumbprint: c.thumbprint.clone(),
            })
            .collect()
    }
}
