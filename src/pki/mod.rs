//! The in-memory PKI: CA chains, device leaf certificates, the hub's server certificate and
//! proof-of-possession (verification) certificates, all minted with rcgen.
//!
//! rcgen stays inside this module: the rest of the crate sees DER certificates and keys as
//! `rustls-pki-types`. Nothing here touches the disk; `store` does, on explicit export only.

pub mod export;
mod fleet;
mod key_type;
mod pfx;
mod server;
pub mod store;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData as _, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Date, Month, OffsetDateTime};

pub use fleet::{is_device_id_char, DeviceIds, IdTemplate, IdTemplateError};
pub use key_type::KeyType;
pub use pfx::{check_key_type as check_pfx_key_type, pfx, PfxError};
pub use server::{ServerNameError, ServerNames};

/// Errors minting or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or the key.
    #[error("could not mint {what}")]
    Mint {
        /// What was being minted.
        what: String,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// A CA certificate and the key offered for it do not belong together.
    #[error("the key does not match the public key of CA certificate {0:?}")]
    KeyMismatch(String),
    /// A server certificate's names.
    #[error(transparent)]
    ServerName(#[from] ServerNameError),
}

/// The latest expiry a certificate can carry: RFC 5280 ends GeneralizedTime at
/// 99991231235959Z.
pub const LATEST_NOT_AFTER: OffsetDateTime =
    match Date::from_calendar_date(9999, Month::December, 31) {
        Ok(date) => match date.with_hms(23, 59, 59) {
            Ok(at) => at.assume_utc(),
            Err(_) => panic!("23:59:59 is a time of day"),
        },
        Err(_) => panic!("9999-12-31 is a date"),
    };

/// A validity in days that no certificate can carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidityError {
    /// Zero days.
    #[error("0 is not valid: certificates must be valid for at least a day")]
    Zero,
    /// Expiry after [`LATEST_NOT_AFTER`].
    #[error(
        "{days} days is not valid: it ends after 9999-12-31, the latest expiry a certificate \
         can carry (RFC 5280); at most {max} days from today"
    )]
    TooLong {
        /// The days asked for.
        days: u64,
        /// The most days that end by 9999-12-31, counted from now.
        max: u32,
    },
}

/// How long minted certificates are valid, and from when.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago (clock skew between generator and hub) for `days` days, but never
    /// past [`LATEST_NOT_AFTER`]; [`Validity::check_days`] tells callers when it would be.
    pub fn days_from_now(days: u32) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::from_secs(3600),
            not_after: now
                .checked_add(time::Duration::days(i64::from(days)))
                .map_or(LATEST_NOT_AFTER, |t| t.min(LATEST_NOT_AFTER)),
        }
    }

    /// The most whole days from now that still end by [`LATEST_NOT_AFTER`].
    pub fn max_days() -> u32 {
        let left = (LATEST_NOT_AFTER - OffsetDateTime::now_utc()).whole_days();
        u32::try_from(left.max(0)).unwrap_or(u32::MAX)
    }

    /// `days` if a certificate valid that long from now can be minted: at least 1, and ending by
    /// 9999-12-31.
    pub fn check_days(days: u64) -> Result<u32, ValidityError> {
        let max = Self::max_days();
        match u32::try_from(days) {
            Ok(0) => Err(ValidityError::Zero),
            Ok(d) if d <= max => Ok(d),
            _ => Err(ValidityError::TooLong { days, max }),
        }
    }
}

impl Default for Validity {
    fn default() -> Self {
        Self::days_from_now(30)
    }
}

/// One certificate authority: its certificate and signing key.
pub struct Authority {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    common_name: String,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("common_name", &self.common_name)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// The certificate, DER.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The subject common name.
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// The signing key.
    pub fn key(&self) -> &KeyPair {
        self.issuer.key()
    }

    /// An authority from an existing certificate and its key (checked to match).
    pub fn from_parts(cert: CertificateDer<'static>, key: KeyPair) -> Result<Self, PkiError> {
        let common_name = common_name_of(&cert).unwrap_or_default();
        let matches = x509_parser::parse_x509_certificate(&cert)
            .is_ok_and(|(_, c)| c.public_key().subject_public_key.data == key.der_bytes());
        if !matches {
            return Err(PkiError::KeyMismatch(common_name));
        }
        let issuer = Issuer::from_ca_cert_der(&cert, key).map_err(|source| PkiError::Mint {
            what: format!("issuer from CA certificate {common_name:?}"),
            source,
        })?;
        Ok(Self {
            cert,
            issuer,
            common_name,
        })
    }
}

/// The subject common name of a DER certificate, if it parses and has one.
pub fn common_name_of(cert: &[u8]) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// What a CA chain looks like.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    /// Key type of the root and intermediates.
    pub key_type: KeyType,
    /// Intermediates between the root and the devices (0 = devices signed by the root).
    pub intermediates: u8,
    /// Validity of every certificate in the chain.
    pub validity: Validity,
    /// Subject common name prefix, e.g. "fleetbench".
    pub name: String,
}

impl Default for ChainSpec {
    fn default() -> Self {
        Self {
            key_type: KeyType::EcdsaP256,
            intermediates: 1,
            validity: Validity::default(),
            name: "fleetbench".to_owned(),
        }
    }
}

/// A root CA and its intermediates; the last one signs devices.
#[derive(Debug)]
pub struct CaChain {
    authorities: Vec<Authority>,
}

impl CaChain {
    /// Mints a new chain.
    pub fn generate(spec: &ChainSpec) -> Result<Self, PkiError> {
        let mut authorities: Vec<Authority> =
            Vec::with_capacity(usize::from(spec.intermediates) + 1);
        for level in 0..=spec.intermediates {
            let cn = if level == 0 {
                format!("{} Root CA", spec.name)
            } else {
                format!("{} Intermediate {level} CA", spec.name)
            };
            let mut params = base_params(&cn, spec.validity);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
            ];
            let key = spec.key_type.generate()?;
            let mint_err = |source| PkiError::Mint {
                what: format!("CA certificate {cn:?}"),
                source,
            };
            let cert = match authorities.last() {
                None => params.self_signed(&key),
                Some(parent) => params.signed_by(&key, &parent.issuer),
            }
            .map_err(mint_err)?;
            authorities.push(Authority {
                cert: cert.der().clone(),
                issuer: Issuer::new(params, key),
                common_name: cn,
            });
        }
        Ok(Self { authorities })
    }

    /// A chain from existing authorities, root first.
    pub fn from_authorities(authorities: Vec<Authority>) -> Option<Self> {
        (!authorities.is_empty()).then_some(Self { authorities })
    }

    /// The root CA (the one a hub registers by default).
    pub fn root(&self) -> &Authority {
        &self.authorities[0]
    }

    /// All authorities, root first.
    pub fn authorities(&self) -> &[Authority] {
        &self.authorities
    }

    /// The authority that signs devices (the last intermediate, or the root).
    pub fn issuing(&self) -> &Authority {
        // Invariant: a chain always holds at least the root.
        #[allow(clippy::unwrap_used)]
        self.authorities.last().unwrap()
    }

    /// The certificates a device presents after its own leaf: every intermediate, nearest
    /// first, up to but not including the root.
    pub fn device_chain_tail(&self) -> Vec<CertificateDer<'static>> {
        self.authorities[1..]
            .iter()
            .rev()
            .map(|a| a.cert.clone())
            .collect()
    }

    /// Mints a device leaf certificate: CN = device id, clientAuth, signed by the issuing CA.
    pub fn mint_device(
        &self,
        id: &str,
        key_type: KeyType,
        validity: Validity,
    ) -> Result<DeviceIdentity, PkiError> {
        self.mint_device_with(id, key_type, validity, LeafUsage::Client)
    }

    /// Mints a device leaf certificate with a chosen extended key usage (tests of hub refusals).
    pub fn mint_device_with(
        &self,
        id: &str,
        key_type: KeyType,
        validity: Validity,
        usage: LeafUsage,
    ) -> Result<DeviceIdentity, PkiError> {
        let key = key_type.generate()?;
        let cert = self.sign_leaf(id, &key, validity, usage)?;
        Ok(DeviceIdentity {
            id: id.to_owned(),
            leaf: cert,
            chain_tail: self.device_chain_tail().into(),
            key: Arc::new(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                key.serialize_der(),
            ))),
        })
    }

    /// Mints the proof-of-possession certificate: CN = the hub's verification code, signed by
    /// `authority`'s key.
    pub fn mint_verification(
        authority: &Authority,
        code: &str,
        key_type: KeyType,
    ) -> Result<CertificateDer<'static>, PkiError> {
        let key = key_type.generate()?;
        let params = leaf_params(code, Validity::default(), LeafUsage::Client);
        params
            .signed_by(&key, &authority.issuer)
            .map(|c| c.der().clone())
            .map_err(|source| PkiError::Mint {
                what: format!("verification certificate for code {code:?}"),
                source,
            })
    }

    fn sign_leaf(
        &self,
        cn: &str,
        key: &KeyPair,
        validity: Validity,
        usage: LeafUsage,
    ) -> Result<CertificateDer<'static>, PkiError> {
        leaf_params(cn, validity, usage)
            .signed_by(key, &self.issuing().issuer)
            .map(|c| c.der().clone())
            .map_err(|source| PkiError::Mint {
                what: format!("device certificate {cn:?}"),
                source,
            })
    }
}

/// Extended key usage of a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafUsage {
    /// clientAuth (devices; the verification certificate).
    Client,
    /// serverAuth only: a leaf a hub must refuse as a device certificate.
    Server,
}

/// What every certificate carries: the CN, the validity, a random positive serial, and an
/// authority key identifier (RFC 5280 4.2.1.1; strict verifiers such as `openssl verify
/// -x509_strict` and Python 3.13's default context refuse a chain without it). rcgen adds the
/// subject key identifier to every certificate with basic constraints.
fn base_params(cn: &str, validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.serial_number = Some(SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
    params.use_authority_key_identifier_extension = true;
    params
}

/// The profile of the tutorial's client certificate: CA:false, digitalSignature, clientAuth.
pub fn leaf_params(cn: &str, validity: Validity, usage: LeafUsage) -> CertificateParams {
    let mut params = base_params(cn, validity);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match usage {
        LeafUsage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        LeafUsage::Server => ExtendedKeyUsagePurpose::ServerAuth,
    }];
    params
}

/// A device's identity: its id (= certificate CN), leaf, chain and key.
#[derive(Clone)]
pub struct DeviceIdentity {
    /// Device id, equal to the certificate's CN.
    pub id: String,
    /// The leaf certificate.
    pub leaf: CertificateDer<'static>,
    /// Intermediates presented after the leaf (shared by the fleet).
    pub chain_tail: Arc<[CertificateDer<'static>]>,
    /// The private key, PKCS#8.
    pub key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl DeviceIdentity {
    /// The chain a device presents: leaf, then intermediates.
    pub fn presented_chain(&self) -> Vec<CertificateDer<'static>> {
        let mut chain = Vec::with_capacity(1 + self.chain_tail.len());
        chain.push(self.leaf.clone());
        chain.extend(self.chain_tail.iter().cloned());
        chain
    }
}

/// The hub's TLS identity.
#[derive(Debug)]
pub struct ServerIdentity {
    /// Server leaf, then intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_certificate_has_cn_and_verifies_to_root() {
        let chain = CaChain::generate(&ChainSpec::default()).unwrap();
        let dev = chain
            .mint_device("device-00001", KeyType::EcdsaP256, Validity::default())
            .unwrap();
        assert_eq!(common_name_of(&dev.leaf).as_deref(), Some("device-00001"));
        assert_eq!(dev.chain_tail.len(), 1);

        let anchor = webpki::anchor_from_trusted_cert(chain.root().cert()).unwrap();
        let ee = webpki::EndEntityCert::try_from(&dev.leaf).unwrap();
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &dev.chain_tail,
            rustls::pki_types::UnixTime::now(),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .unwrap();
    }

    #[test]
    fn rsa_keys_are_generated_in_every_size() {
        for (k, bytes) in [(KeyType::Rsa2048, 256), (KeyType::Rsa3072, 384)] {
            let key = k.generate().unwrap();
            assert_eq!(key.algorithm(), &rcgen::PKCS_RSA_SHA256);
            // RSAPublicKey DER: the modulus (plus a sign byte and headers) dominates its length.
            assert!(key.der_bytes().len() > bytes, "{k}");
        }
    }

    #[test]
    fn from_parts_refuses_a_key_of_another_ca() {
        let a = CaChain::generate(&ChainSpec::default()).unwrap();
        let other = KeyType::EcdsaP256.generate().unwrap();
        let err = Authority::from_parts(a.root().cert().clone(), other).unwrap_err();
        assert!(matches!(err, PkiError::KeyMismatch(_)), "{err}");
    }

    #[test]
    fn key_type_parses_its_names() {
        for k in KeyType::ALL {
            assert_eq!(k.name().parse::<KeyType>().unwrap(), k);
        }
        assert!("dsa".parse::<KeyType>().unwrap_err().contains("ecdsa-p256"));
    }

    #[test]
    fn validity_ends_by_9999_and_says_the_largest_days() {
        let max = Validity::max_days();
        assert!(max > 2_000_000, "{max}");
        assert_eq!(Validity::check_days(30), Ok(30));
        assert_eq!(Validity::check_days(0), Err(ValidityError::Zero));
        let e = Validity::check_days(100_000_000).unwrap_err();
        assert!(matches!(
            e,
            ValidityError::TooLong {
                days: 100_000_000,
                ..
            }
        ));
        assert!(e.to_string().contains("9999-12-31"), "{e}");
        assert!(Validity::check_days(u64::MAX).is_err());
        // Clamped rather than panicking, and the longest accepted validity mints.
        assert_eq!(
            Validity::days_from_now(u32::MAX).not_after,
            LATEST_NOT_AFTER
        );
        let spec = ChainSpec {
            validity: Validity::days_from_now(Validity::check_days(u64::from(max)).unwrap()),
            ..ChainSpec::default()
        };
        let chain = CaChain::generate(&spec).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(chain.root().cert()).unwrap();
        assert_eq!(cert.validity().not_after.to_datetime().year(), 9999);
    }
}
