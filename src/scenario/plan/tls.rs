//! `[tls]`: version, resumption, cipher suites and groups.

use crate::scenario::problems::Problems;
use crate::scenario::Scenario;
use crate::transport::TlsVersion;

/// TLS settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsPlan {
    /// Version.
    pub version: TlsVersion,
    /// Session resumption offered on reconnects.
    pub resumption: bool,
    /// Cipher suites offered (rustls names); empty = the provider's defaults.
    pub cipher_suites: Vec<String>,
    /// Key-exchange groups offered; empty = the provider's defaults.
    pub groups: Vec<String>,
}

pub(super) fn tls(s: &Scenario, p: &mut Problems<'_>) -> TlsPlan {
    let t = &s.tls;
    let version = t.version.unwrap_or_default();
    let cipher_suites = t.cipher_suites.clone().unwrap_or_default();
    for name in &cipher_suites {
        match crate::transport::tls::cipher_suite(name) {
            None => p.add(
                "tls.cipher-suites",
                format!(
                    "unknown cipher suite {name:?}; known: {}",
                    crate::transport::tls::cipher_suite_names().join(", ")
                ),
            ),
            Some(suite) if suite.version().version != version.rustls() => p.add(
                "tls.cipher-suites",
                format!(
                    "{name:?} is a TLS {} suite, but tls.version is {}",
                    suite_version(suite),
                    version
                ),
            ),
            Some(_) => {}
        }
    }
    let groups = t.groups.clone().unwrap_or_default();
    for name in &groups {
        if crate::transport::tls::group(name).is_none() {
            p.add(
                "tls.groups",
                format!("unknown key-exchange group {name:?}; known: x25519, secp256r1, secp384r1"),
            );
        }
    }
    TlsPlan {
        version,
        resumption: t.resumption.unwrap_or(false),
        cipher_suites,
        groups,
    }
}

pub(super) fn suite_version(suite: rustls::SupportedCipherSuite) -> &'static str {
    match suite {
        rustls::SupportedCipherSuite::Tls12(_) => "1.2",
        rustls::SupportedCipherSuite::Tls13(_) => "1.3",
    }
}
