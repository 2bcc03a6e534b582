//! Files on disk: CA directories written by `pki init` and read back (by `pki prove`,
//! `pki devices`, `run --ca`), and the PEM/DER helpers the exports share.
//!
//! A CA directory holds, for the root and each intermediate `intermediate-N`:
//! `NAME.cert.pem`, `NAME.cer` (DER, what the portal uploads) and `NAME.key.pem` (PKCS#8,
//! mode 0600), plus `chain.pem` (issuing CA first, root last). Keys are written only here, on
//! an explicit export, and never over an existing CA.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::KeyPair;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{Authority, CaChain, KeyType, PkiError};

/// Errors reading or writing PKI files. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file that must exist does not.
    #[error("{} is missing: {why}", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// What it is needed for.
        why: &'static str,
    },
    /// A file exists but does not hold what it should.
    #[error("{} is not a valid {what}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A key that does not belong to its certificate.
    #[error("key {} does not belong to certificate {}", key.display(), cert.display())]
    Mismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// Refusing to overwrite a CA.
    #[error(
        "{} already holds a CA key; choose another directory, or pass --force to replace the CA",
        path.display()
    )]
    Exists {
        /// The existing key file.
        path: PathBuf,
    },
    /// Refusing to replace files (every `pki` command refuses unless told `--force`).
    #[error("{} already exists{}; pass --force to replace", path.display(),
        if *more == 0 { String::new() } else { format!(" (and {more} more files it would write)") })]
    WouldOverwrite {
        /// The first existing file.
        path: PathBuf,
        /// How many more would be replaced.
        more: usize,
    },
    /// Minting failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// The file stem of chain level `level` (0 = root).
pub fn level_name(level: usize) -> String {
    if level == 0 {
        "root".to_owned()
    } else {
        format!("intermediate-{level}")
    }
}

/// Refuses when any of `paths` exists, naming the first and counting the others.
pub fn refuse_existing(paths: &[PathBuf]) -> Result<(), StoreError> {
    let mut existing = paths.iter().filter(|p| p.exists());
    match existing.next() {
        None => Ok(()),
        Some(first) => Err(StoreError::WouldOverwrite {
            path: first.clone(),
            more: existing.count(),
        }),
    }
}

/// The certificate (PEM, DER) and key files of chain level `level`.
fn level_files(dir: &Path, level: usize) -> [PathBuf; 3] {
    let name = level_name(level);
    ["cert.pem", "cer", "key.pem"].map(|ext| dir.join(format!("{name}.{ext}")))
}

/// The files [`write_ca_dir`] writes for a chain of `levels` authorities.
fn ca_files(dir: &Path, levels: usize) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (0..levels).flat_map(|l| level_files(dir, l)).collect();
    files.push(dir.join("chain.pem"));
    files
}

/// Writes `chain` into `dir` (created if needed), refusing a directory that already holds any
/// of the files. Returns the files written.
pub fn write_ca_dir(dir: &Path, chain: &CaChain) -> Result<Vec<PathBuf>, StoreError> {
    write_ca_dir_with(dir, chain, false)
}

/// [`write_ca_dir`], or with `force` replacing what is there: the files of a deeper old chain
/// (`intermediate-N` past the new chain's depth) are removed, so that the directory loads back
/// as the new chain.
pub fn write_ca_dir_with(
    dir: &Path,
    chain: &CaChain,
    force: bool,
) -> Result<Vec<PathBuf>, StoreError> {
    let root_key = dir.join("root.key.pem");
    if !force {
        if root_key.exists() {
            return Err(StoreError::Exists { path: root_key });
        }
        refuse_existing(&ca_files(dir, chain.authorities().len()))?;
    }
    fs::create_dir_all(dir).map_err(|source| StoreError::Write {
        path: dir.to_owned(),
        source,
    })?;
    for level in chain.authorities().len().. {
        let stale = level_files(dir, level);
        if !stale.iter().any(|p| p.exists()) {
            break;
        }
        for path in stale.iter().filter(|p| p.exists()) {
            fs::remove_file(path).map_err(|source| StoreError::Write {
                path: path.clone(),
                source,
            })?;
        }
    }
    let mut written = Vec::new();
    for (level, ca) in chain.authorities().iter().enumerate() {
        let name = level_name(level);
        let cert = dir.join(format!("{name}.cert.pem"));
        write_public(&cert, pem("CERTIFICATE", ca.cert()).as_bytes())?;
        let cer = dir.join(format!("{name}.cer"));
        write_public(&cer, ca.cert())?;
        let key = dir.join(format!("{name}.key.pem"));
        write_private(
            &key,
            pem("PRIVATE KEY", &ca.key().serialize_der()).as_bytes(),
        )?;
        written.extend([cert, cer, key]);
    }
    let chain_file = dir.join("chain.pem");
    let text: String = chain
        .authorities()
        .iter()
        .rev()
        .map(|a| pem("CERTIFICATE", a.cert()))
        .collect();
    write_public(&chain_file, text.as_bytes())?;
    written.push(chain_file);
    Ok(written)
}

/// Reads a CA directory back: the root, then `intermediate-1`, `intermediate-2`, … while their
/// certificates exist. Every key must be present and match its certificate.
pub fn load_ca_dir(dir: &Path) -> Result<CaChain, StoreError> {
    let mut authorities = Vec::new();
    for level in 0.. {
        let name = level_name(level);
        let cert_path = dir.join(format!("{name}.cert.pem"));
        if level > 0 && !cert_path.exists() {
            break;
        }
        if !cert_path.exists() {
            return Err(StoreError::Missing {
                path: cert_path,
                why: "a CA directory needs its root certificate (make one with `fleetbench pki init`)",
            });
        }
        let cert = read_cert(&cert_path)?;
        let key_path = dir.join(format!("{name}.key.pem"));
        if !key_path.exists() {
            return Err(StoreError::Missing {
                path: key_path,
                why: "the CA's private key is needed to sign",
            });
        }
        let key = read_key(&key_path)?;
        let authority = Authority::from_parts(cert, key).map_err(|e| match e {
            PkiError::KeyMismatch(_) => StoreError::Mismatch {
                key: key_path.clone(),
                cert: cert_path.clone(),
            },
            other => StoreError::Pki(other),
        })?;
        authorities.push(authority);
    }
    // Invariant: the loop returns an error unless the root was pushed.
    CaChain::from_authorities(authorities).ok_or_else(|| StoreError::Missing {
        path: dir.join("root.cert.pem"),
        why: "a CA directory needs its root certificate",
    })
}

/// Reads the first certificate of a PEM file, or a DER (`.cer`) file.
pub fn read_cert(path: &Path) -> Result<CertificateDer<'static>, StoreError> {
    let bytes = read(path)?;
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.to_owned(),
        what: "certificate",
        reason,
    };
    let der = if bytes.starts_with(b"-----") || bytes.trim_ascii_start().starts_with(b"-----") {
        CertificateDer::from_pem_slice(&bytes).map_err(|e| corrupt(pem_problem(&e)))?
    } else {
        CertificateDer::from(bytes)
    };
    x509_parser::parse_x509_certificate(&der).map_err(|e| corrupt(format!("{e}")))?;
    Ok(der)
}

/// Reads a private key: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1
/// (`EC PRIVATE KEY`) PEM. Encrypted keys are refused with a hint.
pub fn read_key(path: &Path) -> Result<KeyPair, StoreError> {
    let bytes = read(path)?;
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.to_owned(),
        what: "private key",
        reason,
    };
    if bytes
        .windows(b"ENCRYPTED PRIVATE KEY".len())
        .any(|w| w == b"ENCRYPTED PRIVATE KEY")
        || bytes
            .windows(b"Proc-Type: 4,ENCRYPTED".len())
            .any(|w| w == b"Proc-Type: 4,ENCRYPTED")
    {
        return Err(corrupt(
            "it is encrypted; decrypt it first: openssl pkey -in KEY -out KEY.plain.pem".into(),
        ));
    }
    let der = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            corrupt("no PKCS#8, PKCS#1 or SEC1 PEM key in it".into())
        }
        e => corrupt(pem_problem(&e)),
    })?;
    KeyPair::try_from(&der).map_err(|e| {
        corrupt(match KeyType::ml_dsa_in_pkcs8(der.secret_der()) {
            Some(k) => format!(
                "a {k} key, which cannot be read back (rcgen 0.14 parses no ML-DSA PKCS#8 key); \
                 mint ML-DSA fleets within `run`, without fleet.ca-dir"
            ),
            None => e.to_string(),
        })
    })
}

/// What is wrong with a PEM file, in words: the section a cut-short file leaves open, the line
/// that starts a section badly, rather than the parser's byte arrays.
pub fn pem_problem(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { end_marker } => format!(
            "the {} section has no END line (is the file cut short?)",
            String::from_utf8_lossy(end_marker)
        ),
        Error::IllegalSectionStart { line } => format!(
            "a malformed BEGIN line: {:?}",
            String::from_utf8_lossy(line).trim()
        ),
        Error::Base64Decode(why) => format!("a section's body is not valid base64 ({why})"),
        Error::NoItemsFound => "no PEM section of the expected kind".into(),
        e => e.to_string(),
    }
}

/// PEM text of one DER object.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str(&format!("-----BEGIN {label}-----\n"));
    for line in b64.as_bytes().chunks(64) {
        // Invariant: base64 output is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes a file anyone may read.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    fs::write(path, bytes).map_err(|source| StoreError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Writes a secret (a key, a PFX): mode 0600 from creation on, also when replacing a file.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let err = |source| StoreError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600);
        let mut file = options.open(path).map_err(err)?;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(err)?;
        file.write_all(bytes).map_err(err)
    }
    #[cfg(not(unix))]
    {
        options
            .open(path)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(err)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, StoreError> {
    fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            StoreError::Missing {
                path: path.to_owned(),
                why: "no such file",
            }
        } else {
            StoreError::Read {
                path: path.to_owned(),
                source,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::ChainSpec;

    #[test]
    fn a_written_ca_dir_loads_back_with_the_same_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let chain = CaChain::generate(&ChainSpec::default()).unwrap();
        write_ca_dir(dir.path(), &chain).unwrap();
        let back = load_ca_dir(dir.path()).unwrap();
        assert_eq!(back.authorities().len(), 2);
        assert_eq!(back.root().cert(), chain.root().cert());
        assert_eq!(back.issuing().cert(), chain.issuing().cert());
        assert!(matches!(
            write_ca_dir(dir.path(), &chain),
            Err(StoreError::Exists { .. })
        ));
    }

    #[test]
    fn a_swapped_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let chain = CaChain::generate(&ChainSpec::default()).unwrap();
        write_ca_dir(dir.path(), &chain).unwrap();
        fs::copy(
            dir.path().join("root.key.pem"),
            dir.path().join("intermediate-1.key.pem"),
        )
        .unwrap();
        let err = load_ca_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("intermediate-1.key.pem"), "{err}");
        assert!(err.contains("does not belong"), "{err}");
    }
}
