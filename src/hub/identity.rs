//! The hub's own server identity in a state directory: `server-root.pem` (what clients trust),
//! `server.pem` (the server certificate, then any intermediates) and `server.key.pem` (0600).
//!
//! Made once (`hub init`, or `hub serve`'s first run, which says so) and never replaced behind
//! the user's back: a directory with some of the files missing, or files that do not belong
//! together (the key is not the certificate's, the root did not sign it), is refused with the
//! file named, and only `--force` replaces an identity.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use time::OffsetDateTime;

use crate::pki::store::{pem, pem_problem, write_private, write_public, StoreError};
use crate::pki::{CaChain, ChainSpec, KeyType, PkiError, ServerIdentity, ServerNames, Validity};

/// The identity's files, in the order they are checked.
pub const FILES: [&str; 3] = ["server-root.pem", "server.pem", "server.key.pem"];

/// Why a state directory's identity cannot be used or made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Some identity files exist, this one does not.
    #[error(
        "{} is missing while {present} exist: the hub's identity is incomplete. Restore the file, \
         or make a new identity with `fleetbench hub init --state {} --force` (clients must then \
         trust the new server-root.pem)",
        path.display(), dir.display()
    )]
    Missing {
        /// The missing file.
        path: PathBuf,
        /// The state directory.
        dir: PathBuf,
        /// The files that exist.
        present: String,
    },
    /// A file does not hold what it should.
    #[error("{} is not a valid {what}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
        /// Why not.
        reason: String,
    },
    /// The files exist but do not belong together, or the certificate is unusable.
    #[error(
        "{}: {reason}; make a new identity with `fleetbench hub init --state {} --force` \
         (clients must then trust the new server-root.pem)",
        path.display(), dir.display()
    )]
    Inconsistent {
        /// The file at fault.
        path: PathBuf,
        /// The state directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `hub init` without `--force` on a directory that has an identity.
    #[error(
        "{} already exists: the hub's identity is kept (clients trust its server-root.pem); \
         pass --force to replace it",
        path.display()
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// Names.
    #[error(transparent)]
    Names(#[from] crate::pki::ServerNameError),
    /// Minting.
    #[error("minting the hub's server certificate")]
    Pki(#[from] PkiError),
    /// Writing.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the hub's server certificate is made with.
#[derive(Debug, Clone)]
pub struct IdentitySpec {
    /// Host names and addresses (SANs).
    pub names: ServerNames,
    /// Key type of the root and the server key (IoT Hub presents RSA-2048).
    pub key_type: KeyType,
    /// Validity in days.
    pub days: u32,
}

/// A loaded (checked) identity.
#[derive(Debug)]
pub struct HubIdentity {
    /// What the hub presents.
    pub server: ServerIdentity,
    /// When the server certificate expires.
    pub not_after: OffsetDateTime,
    /// Its subject alternative names, as text.
    pub names: Vec<String>,
}

/// Loads and checks the identity in `dir`; `None` if none of its files exist.
pub fn load(dir: &Path) -> Result<Option<HubIdentity>, IdentityError> {
    let paths: Vec<PathBuf> = FILES.iter().map(|f| dir.join(f)).collect();
    let present: Vec<&str> = FILES
        .iter()
        .zip(&paths)
        .filter(|(_, p)| p.exists())
        .map(|(f, _)| *f)
        .collect();
    if present.is_empty() {
        return Ok(None);
    }
    if let Some(missing) = paths.iter().find(|p| !p.exists()) {
        return Err(IdentityError::Missing {
            path: missing.clone(),
            dir: dir.to_owned(),
            present: present.join(" and "),
        });
    }
    let root = read_certs(&paths[0], "root certificate")?;
    let chain = read_certs(&paths[1], "server certificate chain")?;
    let key = PrivateKeyDer::from_pem_file(&paths[2]).map_err(|e| IdentityError::Corrupt {
        path: paths[2].clone(),
        what: "private key",
        reason: pem_problem(&e),
    })?;
    let inconsistent = |path: &PathBuf, reason: String| IdentityError::Inconsistent {
        path: path.clone(),
        dir: dir.to_owned(),
        reason,
    };
    // aws-lc-rs reads every key type ring does and ML-DSA too; which provider serves is the
    // hub's TLS configuration's business.
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|e| inconsistent(&paths[2], format!("the key is not usable ({e})")))?;
    rustls::sign::CertifiedKey::new(chain.clone(), signing)
        .keys_match()
        .or_else(|e| match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown) => Ok(()),
            other => Err(other),
        })
        .map_err(|_| {
            inconsistent(
                &paths[2],
                "this key is not the one of the certificate in server.pem".into(),
            )
        })?;
    let (not_after, names) = describe(&chain[0]).ok_or_else(|| IdentityError::Corrupt {
        path: paths[1].clone(),
        what: "server certificate",
        reason: "it does not parse as X.509".into(),
    })?;
    if not_after <= OffsetDateTime::now_utc() {
        return Err(inconsistent(
            &paths[1],
            format!("the server certificate expired on {}", day(not_after)),
        ));
    }
    signed_by(&chain, &root[0]).map_err(|reason| inconsistent(&paths[0], reason))?;
    Ok(Some(HubIdentity {
        server: ServerIdentity { chain, key },
        not_after,
        names,
    }))
}

/// Makes a new identity in `dir` (a new root and a server certificate it signs). Refuses to
/// replace existing files unless `force`.
pub fn create(dir: &Path, spec: &IdentitySpec, force: bool) -> Result<HubIdentity, IdentityError> {
    if !force {
        if let Some(path) = FILES.iter().map(|f| dir.join(f)).find(|p| p.exists()) {
            return Err(IdentityError::Exists { path });
        }
    }
    let validity = Validity::days_from_now(spec.days);
    let root = CaChain::generate(&ChainSpec {
        key_type: spec.key_type,
        intermediates: 0,
        validity,
        name: "fleetbench hub".into(),
    })?;
    let server = root.mint_server_for(&spec.names, spec.key_type, validity)?;
    let chain: String = server.chain.iter().map(|c| pem("CERTIFICATE", c)).collect();
    write_public(
        &dir.join(FILES[0]),
        pem("CERTIFICATE", root.root().cert()).as_bytes(),
    )?;
    write_public(&dir.join(FILES[1]), chain.as_bytes())?;
    write_private(
        &dir.join(FILES[2]),
        pem("PRIVATE KEY", server.key.secret_der()).as_bytes(),
    )?;
    let (not_after, names) = describe(&server.chain[0]).unwrap_or((validity.not_after, vec![]));
    Ok(HubIdentity {
        server,
        not_after,
        names,
    })
}

/// `2027-11-30` for a time.
pub fn day(t: OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let corrupt = |reason: String| IdentityError::Corrupt {
        path: path.to_owned(),
        what,
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| corrupt(pem_problem(&e)))?;
    if certs.is_empty() {
        return Err(corrupt("it holds no PEM certificate".into()));
    }
    if certs
        .iter()
        .any(|c| x509_parser::parse_x509_certificate(c).is_err())
    {
        return Err(corrupt(
            "a certificate in it does not parse as X.509".into(),
        ));
    }
    Ok(certs)
}

/// The certificate's expiry and SANs.
fn describe(cert: &CertificateDer<'_>) -> Option<(OffsetDateTime, Vec<String>)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let not_after = parsed.validity().not_after.to_datetime();
    let names = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => (*d).to_owned(),
                    x509_parser::extensions::GeneralName::IPAddress(b) => ip_text(b),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Some((not_after, names))
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => format!("{bytes:02x?}"),
    }
}

/// Whether `root` signed the server certificate (through the chain's intermediates).
fn signed_by(chain: &[CertificateDer<'static>], root: &CertificateDer<'_>) -> Result<(), String> {
    let anchor = webpki::anchor_from_trusted_cert(root)
        .map_err(|e| format!("not a usable root certificate ({e:?})"))?;
    let ee = webpki::EndEntityCert::try_from(&chain[0])
        .map_err(|e| format!("server.pem does not parse ({e:?})"))?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &chain[1..],
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map(drop)
    .map_err(|e| {
        tracing::debug!(error = ?e, "server.pem does not verify against server-root.pem");
        "this root did not sign the server certificate in server.pem: clients trusting it \
         would refuse the hub"
            .to_owned()
    })
}
