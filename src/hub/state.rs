//! A standalone hub's state directory: the registries as `registry.json` (CAs with their
//! verified flag and verification code, devices) and the hub's own server identity (see
//! [`super::identity`]). Commands change the file under the directory's lock
//! ([`StateDir::lock`]), writing it atomically; a serving hub picks changes up with
//! [`StateDir::sync`].

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use super::identity::{self, HubIdentity, IdentityError, IdentitySpec};
use super::registry::{DeviceAuth, Registry, RegistryError};
use crate::pki::store::{pem, write_public, StoreError};

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
    /// A reading command named a directory that does not exist.
    #[error(
        "{} is not a hub state directory (it does not exist); make one with `fleetbench hub \
         init --state {}` or `hub ca add`",
        .0.display(), .0.display()
    )]
    NoState(PathBuf),
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
    /// An existing state directory (for commands that only read: they never create state).
    pub fn existing(dir: &Path) -> Result<Self, StateError> {
        if !dir.is_dir() {
            return Err(StateError::NoState(dir.to_owned()));
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

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

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self) -> PathBuf {
        self.dir.join("registry.json")
    }

    /// The root certificate clients trust for the hub (`target.ca-file`).
    pub fn server_root(&self) -> PathBuf {
        self.dir.join("server-root.pem")
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
        let tmp = self
            .dir
            .join(format!(".registry.json.{}.tmp", std::process::id()));
        // Invariant: these types always serialize.
        let text = serde_json::to_string_pretty(&saved).unwrap_or_default();
        write_public(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, &path).map_err(|source| StoreError::Write { path, source })?;
        Ok(())
    }

    /// The hub's server identity, checked (`None` if the directory has none yet).
    pub fn identity(&self) -> Result<Option<HubIdentity>, IdentityError> {
        identity::load(&self.dir)
    }

    /// Makes the hub's server identity (refused over an existing one unless `force`).
    pub fn create_identity(
        &self,
        spec: &IdentitySpec,
        force: bool,
    ) -> Result<HubIdentity, IdentityError> {
        identity::create(&self.dir, spec, force)
    }

    /// Takes the state directory's write lock (`.lock`, an exclusive advisory lock), held
    /// until the guard is dropped: commands that read, change and save the registry hold it
    /// so that concurrent writers lose nothing.
    pub fn lock(&self) -> Result<StateLock, StateError> {
        let path = self.dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StoreError::Write {
                path: path.clone(),
                source,
            })?;
        file.lock()
            .map_err(|source| StoreError::Write { path, source })?;
        Ok(StateLock { _file: file })
    }

    /// What `registry.json` is now (size, modification time, inode), to tell whether it
    /// changed since a [`StateDir::sync`]; `None` if it does not exist.
    pub fn stamp(&self) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(self.file()).ok()?;
        Some(FileStamp {
            len: m.len(),
            modified: m.modified().ok(),
            inode: m.ino(),
        })
    }
}

/// The write lock of a state directory (released when dropped).
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

/// See [`StateDir::stamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}
