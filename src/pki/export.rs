//! Device exports for the tutorial's devices: certificate, key, chains and PFX per device,
//! minted on every core; self-signed devices; thumbprints; verification codes; IoT Hub's bulk
//! import lines.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::CertificateParams;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

use super::store::{pem, write_private, write_public, StoreError};
use super::{
    check_pfx_key_type, leaf_params, pfx, CaChain, DeviceIdentity, DeviceIds, KeyType, LeafUsage,
    PfxError, PkiError, Validity,
};

/// SHA-1 and SHA-256 thumbprints of a certificate, upper-case hex without colons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thumbprints {
    /// SHA-1 (40 hex digits; what the portal shows for CAs).
    pub sha1: String,
    /// SHA-256 (64 hex digits; what the Azure CLI now uses).
    pub sha256: String,
}

impl Thumbprints {
    /// Thumbprints of a DER certificate.
    pub fn of(der: &[u8]) -> Self {
        let hex = |d: ring::digest::Digest| d.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        Self {
            sha1: hex(ring::digest::digest(
                &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
                der,
            )),
            sha256: hex(ring::digest::digest(&ring::digest::SHA256, der)),
        }
    }
}

/// A code that cannot be a certificate's common name.
#[derive(Debug, thiserror::Error)]
#[error("verification code {code:?} cannot be a certificate common name: {reason}")]
pub struct CodeError {
    /// The code as given.
    pub code: String,
    /// What is wrong.
    pub reason: String,
}

/// Checks a verification code: 1 to 64 characters (X.520's upper bound for a CN) of the
/// PrintableString alphabet (letters, digits, space and `' ( ) + , - . / : = ?`). IoT Hub's
/// codes are hex.
pub fn check_code(code: &str) -> Result<(), CodeError> {
    let fail = |reason: String| CodeError {
        code: code.to_owned(),
        reason,
    };
    if code.is_empty() {
        return Err(fail("it is empty".into()));
    }
    if code.chars().count() > 64 {
        return Err(fail(format!(
            "{} characters, at most 64",
            code.chars().count()
        )));
    }
    if let Some(c) = code
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(*c)))
    {
        return Err(fail(format!(
            "{c:?} is not allowed (letters, digits, space and ' ( ) + , - . / : = ? are)"
        )));
    }
    Ok(())
}

/// Mints a self-signed device certificate (CN = id, clientAuth), registered by thumbprint.
pub fn mint_self_signed(
    id: &str,
    key_type: KeyType,
    validity: Validity,
) -> Result<DeviceIdentity, PkiError> {
    let key = key_type.generate()?;
    let params: CertificateParams = leaf_params(id, validity, LeafUsage::Client);
    let cert = params.self_signed(&key).map_err(|source| PkiError::Mint {
        what: format!("self-signed certificate {id:?}"),
        source,
    })?;
    Ok(DeviceIdentity {
        id: id.to_owned(),
        leaf: cert.der().clone(),
        chain_tail: Arc::from(Vec::<CertificateDer<'static>>::new()),
        key: Arc::new(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        ))),
    })
}

/// Errors exporting devices.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Files.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Minting.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// PFX encoding.
    #[error(transparent)]
    Pfx(#[from] PfxError),
}

/// The suffixes of the files written per device (after its id).
const DEVICE_FILES: [&str; 5] = [
    ".cert.pem",
    ".key.pem",
    ".chain.pem",
    ".full-chain.pem",
    ".pfx",
];

/// A device written: its index in the fleet, id and thumbprints.
type Exported = (usize, String, Thumbprints);

/// What to export for each device.
#[derive(Debug, Clone)]
pub struct DeviceExport {
    /// Output directory (must exist).
    pub dir: PathBuf,
    /// Signing chain, or `None` for self-signed devices.
    pub ca: Option<Arc<CaChain>>,
    /// Device key type.
    pub key_type: KeyType,
    /// Validity of device certificates.
    pub validity: Validity,
    /// Write `ID.pfx` with this password.
    pub pfx_password: Option<String>,
}

impl DeviceExport {
    /// Mints and writes every device in `ids`, on `workers` threads. Returns the
    /// thumbprints in `ids` order.
    pub fn run(
        &self,
        ids: &DeviceIds,
        workers: usize,
    ) -> Result<Vec<(String, Thumbprints)>, ExportError> {
        if self.pfx_password.is_some() {
            check_pfx_key_type(self.key_type)?;
        }
        let workers = workers.clamp(1, ids.len().max(1));
        let parts: Vec<Result<Vec<Exported>, ExportError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    s.spawn(move || {
                        (w..ids.len())
                            .step_by(workers)
                            .map(|i| {
                                let id = ids.id(i);
                                let t = self.one(&id)?;
                                Ok((i, id, t))
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut all = Vec::with_capacity(ids.len());
        for part in parts {
            all.extend(part?);
        }
        all.sort_by_key(|(i, _, _)| *i);
        Ok(all.into_iter().map(|(_, id, t)| (id, t)).collect())
    }

    /// The files of these devices (and `thumbprints.csv`) already in the output directory:
    /// what [`DeviceExport::run`] would replace. One directory listing, then set lookups.
    pub fn existing_files(&self, ids: &DeviceIds) -> Result<Vec<PathBuf>, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let names: HashSet<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        for i in 0..ids.len() {
            let id = ids.id(i);
            for suffix in DEVICE_FILES {
                let name = format!("{id}{suffix}");
                if names.contains(&name) {
                    found.push(self.dir.join(name));
                }
            }
        }
        if names.contains("thumbprints.csv") {
            found.push(self.dir.join("thumbprints.csv"));
        }
        Ok(found)
    }

    fn one(&self, id: &str) -> Result<Thumbprints, ExportError> {
        let device = match &self.ca {
            Some(ca) => ca.mint_device(id, self.key_type, self.validity)?,
            None => mint_self_signed(id, self.key_type, self.validity)?,
        };
        self.write(&device)?;
        Ok(Thumbprints::of(&device.leaf))
    }

    fn write(&self, device: &DeviceIdentity) -> Result<(), ExportError> {
        let path = |suffix: &str| self.dir.join(format!("{}{suffix}", device.id));
        let leaf = pem("CERTIFICATE", &device.leaf);
        write_public(&path(".cert.pem"), leaf.as_bytes())?;
        let key = match device.key.as_ref() {
            PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der(),
            _ => &[],
        };
        write_private(&path(".key.pem"), pem("PRIVATE KEY", key).as_bytes())?;
        // What the device presents: leaf, then intermediates, up to but not including the root.
        let mut chain = leaf;
        for c in device.chain_tail.iter() {
            chain.push_str(&pem("CERTIFICATE", c));
        }
        write_public(&path(".chain.pem"), chain.as_bytes())?;
        if let Some(ca) = &self.ca {
            chain.push_str(&pem("CERTIFICATE", ca.root().cert()));
            write_public(&path(".full-chain.pem"), chain.as_bytes())?;
        }
        if let Some(password) = &self.pfx_password {
            write_private(&path(".pfx"), &pfx(device, self.key_type, password)?)?;
        }
        Ok(())
    }
}

/// One line of IoT Hub's bulk import file (`ExportImportDevice`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportDevice {
    /// Device id.
    pub id: String,
    /// `create`.
    pub import_mode: String,
    /// `enabled`.
    pub status: String,
    /// How the device authenticates.
    pub authentication: ImportAuth,
}

/// `authentication` of an import line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum ImportAuth {
    /// "X.509 CA signed".
    CertificateAuthority,
    /// Self-signed, matched by thumbprint.
    #[serde(rename_all = "camelCase")]
    SelfSigned {
        /// Thumbprints.
        x509_thumbprint: X509Thumbprint,
    },
}

/// `x509Thumbprint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct X509Thumbprint {
    /// Primary (SHA-256 hex).
    pub primary_thumbprint: String,
    /// Secondary (SHA-256 hex of a rollover certificate), or null.
    pub secondary_thumbprint: Option<String>,
}

impl ImportDevice {
    /// A `create`, `enabled` line.
    pub fn create(id: String, authentication: ImportAuth) -> Self {
        Self {
            id,
            import_mode: "create".into(),
            status: "enabled".into(),
            authentication,
        }
    }
}

/// Thumbprints of exported device certificates `DIR/ID.cert.pem`, for self-signed import lines,
/// read one certificate at a time as the iterator is advanced.
pub fn thumbprints<'a>(
    dir: &'a Path,
    ids: impl Iterator<Item = String> + 'a,
) -> impl Iterator<Item = Result<(String, Thumbprints), StoreError>> + 'a {
    ids.map(move |id| {
        let cert = super::store::read_cert(&dir.join(format!("{id}.cert.pem")))?;
        Ok((id, Thumbprints::of(&cert)))
    })
}
