//! A standalone hub's state directory: the registries as `registry.json` (CAs with their
//! verified flag and verification code, devices) and the hub's own server certificate
//! (`server-root.pem` for clients to trust, `server.pem`, `server.key.pem` with mode 0600),
//! minted on first use. Commands change the file; a serving hub picks changes up with
//! [`StateDir::sync`].

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use super::registry::{DeviceAuth, Registry, RegistryError};
use crate::pki::store::{pem, write_private, write_public, StoreError};
use crate::pki::{CaChain, ChainSpec, KeyType, PkiError, ServerIdentity, Validity};

/// Errors reading or writing a state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Files.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `registry.json` does not parse.
    #[error("{} is not a valid hub state file", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A saved CA was refused by the registry.
    #[error("{}: CA {name:?}", path.display())]
    Ca {
        /// The state file.
        path: PathBuf,
        /// CA name.
        name: String,
        /// Why.
        #[source]
        source: RegistryError,
    },
    /// Minting the server certificate.
    #[error("minting the hub's server certificate")]
    Pki(#[from] PkiError),
}

/// What `registry.json` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    cas: Vec<SavedCa>,
    devices: Vec<SavedDevice>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedCa {
    name: String,
    verified: bool,
    verification_code: String,
    certificate: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedDevice {
    id: String,
    auth: DeviceAuth,
}

/// A hub state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Opens (creating if needed) a state directory.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Write {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn file(&self) -> PathBuf {
        self.dir.join("registry.json")
    }

    /// The root certificate clients trust for the hub (`target.ca-file`).
    pub fn server_root(&self) -> PathBuf {
        self.dir.join("server-root.pem")
    }

    /// When `registry.json` last changed (`None` if it does not exist yet).
    pub fn modified(&self) -> Option<SystemTime> {
        std::fs::metadata(self.file())
            .and_then(|m| m.modified())
            .ok()
    }

    /// A registry holding the saved CAs and devices.
    pub fn load(&self) -> Result<Registry, StateError> {
        let registry = Registry::new();
        self.sync(&registry)?;
        Ok(registry)
    }

    /// Brings `registry` up to date with the file: adds CAs and devices it lacks and marks CAs
    /// verified. Counters and sessions of known devices are kept.
    pub fn sync(&self, registry: &Registry) -> Result<(), StateError> {
        let path = self.file();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(StoreError::Read { path, source }.into()),
        };
        let saved: Saved = serde_json::from_str(&text).map_err(|source| StateError::Corrupt {
            path: path.clone(),
            source,
        })?;
        for ca in saved.cas {
            let cert = CertificateDer::from_pem_slice(ca.certificate.as_bytes()).map_err(|e| {
                StoreError::Corrupt {
                    path: path.clone(),
                    what: "CA certificate",
                    reason: format!("CA {:?}: {e}", ca.name),
                }
            })?;
            registry
                .restore_ca(&ca.name, cert, ca.verified, ca.verification_code)
                .map_err(|source| StateError::Ca {
                    path: path.clone(),
                    name: ca.name.clone(),
                    source,
                })?;
        }
        // Collected first: `register_devices` holds the registry's write lock while it iterates.
        let changed: Vec<_> = saved
            .devices
            .into_iter()
            .filter(|d| {
                registry
                    .device(&d.id)
                    .is_none_or(|known| known.auth != d.auth)
            })
            .map(|d| (d.id, d.auth))
            .collect();
        registry.register_devices(changed);
        Ok(())
    }

    /// Saves `registry` (written to a temporary file, then renamed over the old one).
    pub fn save(&self, registry: &Registry) -> Result<(), StateError> {
        let saved = Saved {
            cas: registry
                .ca_entries()
                .into_iter()
                .map(|c| SavedCa {
                    certificate: pem("CERTIFICATE", &c.cert),
                    name: c.name,
                    verified: c.verified,
                    verification_code: c.verification_code,
                })
                .collect(),
            devices: registry
                .devices()
                .into_iter()
                .map(|(id, auth)| SavedDevice { id, auth })
                .collect(),
        };
        let path = self.file();
        let tmp = self.dir.join(".registry.json.tmp");
        // Invariant: these types always serialize.
        let text = serde_json::to_string_pretty(&saved).unwrap_or_default();
        write_public(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, &path).map_err(|source| StoreError::Write { path, source })?;
        Ok(())
    }

    /// The hub's server identity: loaded, or minted (with its own root) on first use.
    pub fn server_identity(&self, names: &[String]) -> Result<ServerIdentity, StateError> {
        let (cert, key) = (self.dir.join("server.pem"), self.dir.join("server.key.pem"));
        if cert.exists() && key.exists() {
            let chain = CertificateDer::pem_file_iter(&cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| StoreError::Corrupt {
                    path: cert.clone(),
                    what: "certificate chain",
                    reason: e.to_string(),
                })?;
            let key_der = PrivateKeyDer::from_pem_file(&key).map_err(|e| StoreError::Corrupt {
                path: key.clone(),
                what: "private key",
                reason: e.to_string(),
            })?;
            return Ok(ServerIdentity {
                chain,
                key: key_der,
            });
        }
        let spec = ChainSpec {
            key_type: KeyType::EcdsaP256,
            intermediates: 0,
            validity: Validity::days_from_now(365),
            name: "fleetbench hub".into(),
        };
        let root = CaChain::generate(&spec)?;
        let identity = root.mint_server(names, KeyType::EcdsaP256)?;
        write_public(
            &self.server_root(),
            pem("CERTIFICATE", root.root().cert()).as_bytes(),
        )?;
        let chain: String = identity
            .chain
            .iter()
            .map(|c| pem("CERTIFICATE", c))
            .collect();
        write_public(&cert, chain.as_bytes())?;
        write_private(
            &key,
            pem("PRIVATE KEY", identity.key.secret_der()).as_bytes(),
        )?;
        Ok(identity)
    }
}
