//! The hub's registries: CA certificates (at most 25, verified by proof of possession) and
//! devices ("X.509 CA signed" or self-signed by thumbprint), with per-device counters and the
//! one-connection-per-device rule.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::pki::common_name_of;

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
    Name(#[from] super::names::NameError),
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

/// How a device authenticates.
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
    fn new(id: String, auth: DeviceAuth) -> Self {
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

/// A registered CA certificate.
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
    anchor: TrustAnchor<'static>,
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

/// Most chains remembered as verified; past this the memory starts again (a fleet's devices
/// reconnect often, so they are soon back).
const VERIFIED_CHAINS: usize = 1 << 17;

/// Chains that verified, so that a device reconnecting (churn, TLS resumption) costs a hash
/// instead of a signature check, as a hub with many devices must. Keyed by the SHA-256 of the
/// presented chain; an entry holds for the CA generation it was checked against, and only
/// while every certificate of the chain is within its validity.
#[derive(Debug, Default)]
struct VerifiedChains {
    map: Mutex<HashMap<[u8; 32], Verified>>,
}

#[derive(Debug, Clone)]
struct Verified {
    generation: u64,
    /// The latest not-before and the earliest not-after of the chain, in Unix seconds.
    valid: (u64, u64),
    cn: Arc<str>,
    /// The registered CA the chain verified against.
    ca: Arc<str>,
}

impl VerifiedChains {
    fn key(chain: &[CertificateDer<'_>]) -> [u8; 32] {
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
    fn get(&self, key: &[u8; 32], generation: u64, now: u64) -> Option<(Arc<str>, Arc<str>)> {
        let map = self.map.lock();
        let v = map.get(key)?;
        (v.generation == generation && v.valid.0 <= now && now <= v.valid.1)
            .then(|| (v.cn.clone(), v.ca.clone()))
    }

    fn insert(
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
fn validity_of(chain: &[CertificateDer<'_>]) -> Option<(u64, u64)> {
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

/// Upper-case hex of bytes.
pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn sha1_hex(der: &[u8]) -> String {
    hex_upper(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
}

fn sha256_hex(der: &[u8]) -> String {
    hex_upper(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

fn algorithms() -> &'static [&'static dyn rustls::pki_types::SignatureVerificationAlgorithm] {
    webpki::ALL_VERIFICATION_ALGS
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uploads a CA certificate, unverified. Returns its verification code.
    pub fn add_ca(
        &self,
        name: &str,
        cert: CertificateDer<'static>,
    ) -> Result<String, RegistryError> {
        super::names::check_ca_name(name)?;
        self.insert_ca(name, cert, false, None)
    }

    /// Uploads a CA certificate and marks it verified ("verified on upload").
    pub fn add_verified_ca(
        &self,
        name: &str,
        cert: CertificateDer<'static>,
    ) -> Result<(), RegistryError> {
        super::names::check_ca_name(name)?;
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

    fn insert_ca(
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
        super::names::check_is_ca(&cert).map_err(bad)?;
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

    /// Has [`Registry::authenticate`] call `reload` when a device is unknown or its CA unknown
    /// or unverified, and try once more if `reload` says it changed the registry (a serving
    /// hub rereads its state directory, so that a device added a moment ago is accepted).
    pub fn reload_with(&self, reload: impl Fn(&Self) -> bool + Send + Sync + 'static) {
        *self.reload.write() = Some(Reloader(Arc::new(reload)));
    }

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

    fn reload(&self) -> bool {
        // Cloned out: the reloader takes the registry's locks.
        let reload = self.reload.read().clone();
        reload.is_some_and(|r| (r.0)(self))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{CaChain, ChainSpec, KeyType, Validity};

    fn presented(chain: &CaChain, id: &str, validity: Validity) -> Vec<CertificateDer<'static>> {
        let d = chain.mint_device(id, KeyType::EcdsaP256, validity).unwrap();
        std::iter::once(d.leaf)
            .chain(d.chain_tail.iter().cloned())
            .collect()
    }

    fn registry(chain: &CaChain, verified: bool) -> Registry {
        let r = Registry::new();
        r.insert_ca("root", chain.root().cert().clone(), verified, None)
            .unwrap();
        r.register_ca_signed(["dev-1".to_owned(), "dev-2".to_owned()]);
        r
    }

    #[test]
    fn on_demand_registration_takes_only_authenticated_ca_signed_devices() {
        let chain = CaChain::generate(&ChainSpec::default()).unwrap();
        let stranger = CaChain::generate(&ChainSpec::default()).unwrap();
        let r = Registry::new();
        r.insert_ca("root", chain.root().cert().clone(), true, None)
            .unwrap();
        let certs = presented(&chain, "dev-9", Validity::default());
        assert!(matches!(
            r.authenticate(&certs, "dev-9"),
            Err(Refusal::UnknownDevice(_))
        ));
        r.register_ca_signed_on_demand();
        assert!(matches!(
            r.authenticate(&certs, "dev-8"),
            Err(Refusal::IdentityMismatch(_))
        ));
        let other = presented(&stranger, "dev-7", Validity::default());
        assert!(matches!(
            r.authenticate(&other, "dev-7"),
            Err(Refusal::UnknownCa { presented: 2 })
        ));
        assert_eq!(r.device_count(), 0, "refused devices are not registered");
        let first = r.authenticate(&certs, "dev-9").unwrap();
        first.count_message();
        let again = r.authenticate(&certs, "dev-9").unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!((r.device_count(), r.received("dev-9")), (1, 1));
    }

    #[test]
    fn a_verified_chain_is_remembered_for_its_ca_generation_and_validity() {
        let chain = CaChain::generate(&ChainSpec::default()).unwrap();
        let r = registry(&chain, true);
        let certs = presented(&chain, "dev-1", Validity::default());
        r.authenticate(&certs, "dev-1").unwrap();
        let key = VerifiedChains::key(&certs);
        let generation = r.inner.read().generation;
        let now = UnixTime::now().as_secs();
        let remembered = r.verified.get(&key, generation, now);
        assert_eq!(
            remembered.map(|(cn, ca)| (cn.to_string(), ca.to_string())),
            Some(("dev-1".to_owned(), "root".to_owned()))
        );
        // Remembered or checked afresh, the verifying CA is named.
        assert_eq!(&*r.authenticate_by(&certs, "dev-1").unwrap().1, "root");
        // A remembered chain still may not claim another device's id.
        assert!(matches!(
            r.authenticate(&certs, "dev-2"),
            Err(Refusal::IdentityMismatch(_))
        ));
        // Out of the chain's validity, or after the CAs changed, it is checked again.
        assert!(r
            .verified
            .get(&key, generation, now + 31 * 86_400)
            .is_none());
        assert!(r.verified.get(&key, generation + 1, now).is_none());
        r.add_ca(
            "other",
            CaChain::generate(&ChainSpec::default())
                .unwrap()
                .root()
                .cert()
                .clone(),
        )
        .unwrap();
        assert!(r.inner.read().generation > generation);
        r.authenticate(&certs, "dev-1").unwrap();
    }

    #[test]
    fn refusals_are_not_remembered() {
        let chain = CaChain::generate(&ChainSpec::default()).unwrap();
        let r = registry(&chain, false);
        let certs = presented(&chain, "dev-1", Validity::default());
        for _ in 0..2 {
            assert_eq!(
                r.authenticate(&certs, "dev-1").unwrap_err(),
                Refusal::CaUnverified("root".into())
            );
        }
        assert!(r.verified.map.lock().is_empty());
    }

    #[test]
    fn validity_is_the_intersection_of_the_chain() {
        let chain = CaChain::generate(&ChainSpec::default()).unwrap();
        let short = Validity::days_from_now(1);
        let certs = presented(&chain, "dev-1", short);
        let (from, to) = validity_of(&certs).unwrap();
        assert_eq!(from, short.not_before.unix_timestamp() as u64);
        assert_eq!(to, short.not_after.unix_timestamp() as u64);
        assert!(validity_of(&[CertificateDer::from(vec![1, 2, 3])]).is_none());
    }
}
