//! The crypto provider behind every TLS configuration (ring or aws-lc-rs), and its cipher
//! suites and key-exchange groups by name.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::SupportedCipherSuite;
use serde::{Deserialize, Serialize};

/// A rustls crypto provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Provider {
    /// ring (the default): classical groups only.
    #[default]
    #[serde(rename = "ring")]
    Ring,
    /// aws-lc-rs: also the hybrid post-quantum groups and ML-DSA signatures.
    #[serde(rename = "aws-lc-rs")]
    AwsLcRs,
}

/// A cipher suite or group name the chosen provider does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownName {
    /// Not a cipher suite of the provider.
    #[error("{provider} has no cipher suite {name:?}; known: {known}")]
    Suite {
        /// The provider.
        provider: Provider,
        /// The name asked for.
        name: String,
        /// The names it knows, comma-separated.
        known: String,
    },
    /// Not a key-exchange group of the provider.
    #[error("{provider} has no key-exchange group {name:?}{hint}; known: {known}")]
    Group {
        /// The provider.
        provider: Provider,
        /// The name asked for.
        name: String,
        /// Set when the other provider has it.
        hint: String,
        /// The names it knows, comma-separated.
        known: String,
    },
}

/// Key-exchange groups by name, with the aliases people write (`p-256`, `p384`).
const GROUP_NAMES: [(&str, &[&str]); 5] = [
    ("x25519", &[]),
    ("secp256r1", &["p256", "p-256"]),
    ("secp384r1", &["p384", "p-384"]),
    ("X25519MLKEM768", &[]),
    ("SECP256R1MLKEM768", &[]),
];

impl Provider {
    /// Both providers.
    pub const ALL: [Self; 2] = [Self::Ring, Self::AwsLcRs];

    /// The name used in scenario files and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ring => "ring",
            Self::AwsLcRs => "aws-lc-rs",
        }
    }

    /// The provider with rustls's default suites and groups.
    pub fn crypto(self) -> CryptoProvider {
        match self {
            Self::Ring => rustls::crypto::ring::default_provider(),
            Self::AwsLcRs => rustls::crypto::aws_lc_rs::default_provider(),
        }
    }

    fn all_suites(self) -> &'static [SupportedCipherSuite] {
        match self {
            Self::Ring => rustls::crypto::ring::ALL_CIPHER_SUITES,
            Self::AwsLcRs => rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES,
        }
    }

    /// A cipher suite by its rustls name, e.g. `TLS13_AES_128_GCM_SHA256` (any case).
    pub fn cipher_suite(self, name: &str) -> Option<SupportedCipherSuite> {
        self.all_suites()
            .iter()
            .find(|s| format!("{:?}", s.suite()).eq_ignore_ascii_case(name))
            .copied()
    }

    /// Every cipher suite name the provider knows.
    pub fn cipher_suite_names(self) -> Vec<String> {
        self.all_suites()
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect()
    }

    /// A key-exchange group by name (any case): `x25519`, `secp256r1` (`p-256`), `secp384r1`
    /// (`p-384`), and with aws-lc-rs `X25519MLKEM768` and `SECP256R1MLKEM768`.
    pub fn group(self, name: &str) -> Option<&'static dyn SupportedKxGroup> {
        let canonical = GROUP_NAMES.iter().find(|(n, aliases)| {
            n.eq_ignore_ascii_case(name) || aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
        })?;
        self.group_by_canonical(canonical.0)
    }

    fn group_by_canonical(self, name: &str) -> Option<&'static dyn SupportedKxGroup> {
        match (self, name) {
            (Self::Ring, "x25519") => Some(rustls::crypto::ring::kx_group::X25519),
            (Self::Ring, "secp256r1") => Some(rustls::crypto::ring::kx_group::SECP256R1),
            (Self::Ring, "secp384r1") => Some(rustls::crypto::ring::kx_group::SECP384R1),
            (Self::AwsLcRs, n) => {
                use rustls::crypto::aws_lc_rs::kx_group as g;
                match n {
                    "x25519" => Some(g::X25519),
                    "secp256r1" => Some(g::SECP256R1),
                    "secp384r1" => Some(g::SECP384R1),
                    "X25519MLKEM768" => Some(g::X25519MLKEM768),
                    "SECP256R1MLKEM768" => Some(g::SECP256R1MLKEM768),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Every group name the provider knows, in the order [`Provider::hub_groups`] offers them.
    pub fn group_names(self) -> Vec<&'static str> {
        let mut names: Vec<&str> = GROUP_NAMES
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| self.group_by_canonical(n).is_some())
            .collect();
        // Post-quantum first, as a server that prefers them would list them.
        names.sort_by_key(|n| !n.contains("MLKEM"));
        names
    }

    /// The groups a hub offers by default: every group the provider has by name (so that a
    /// client's choice decides; rustls's server follows the client's order).
    pub fn hub_groups(self) -> Vec<&'static dyn SupportedKxGroup> {
        self.group_names()
            .into_iter()
            .filter_map(|n| self.group_by_canonical(n))
            .collect()
    }

    /// Checks a suite name, saying what the provider knows when it does not.
    pub fn check_suite(self, name: &str) -> Result<SupportedCipherSuite, UnknownName> {
        self.cipher_suite(name).ok_or_else(|| UnknownName::Suite {
            provider: self,
            name: name.into(),
            known: self.cipher_suite_names().join(", "),
        })
    }

    /// Checks a group name, saying when the other provider has it.
    pub fn check_group(self, name: &str) -> Result<&'static dyn SupportedKxGroup, UnknownName> {
        self.group(name).ok_or_else(|| {
            let other = match self {
                Self::Ring => Self::AwsLcRs,
                Self::AwsLcRs => Self::Ring,
            };
            UnknownName::Group {
                provider: self,
                name: name.into(),
                hint: if other.group(name).is_some() {
                    format!(" (it needs tls.provider = \"{other}\")")
                } else {
                    String::new()
                },
                known: self.group_names().join(", "),
            }
        })
    }

    /// The provider restricted to these suites and groups (empty lists keep rustls's
    /// defaults), or the first name it does not know.
    pub fn restricted(
        self,
        suites: &[String],
        groups: &[String],
    ) -> Result<Arc<CryptoProvider>, UnknownName> {
        let mut crypto = self.crypto();
        if !suites.is_empty() {
            crypto.cipher_suites = suites
                .iter()
                .map(|n| self.check_suite(n))
                .collect::<Result<_, _>>()?;
        }
        if !groups.is_empty() {
            crypto.kx_groups = groups
                .iter()
                .map(|n| self.check_group(n))
                .collect::<Result<_, _>>()?;
        }
        Ok(Arc::new(crypto))
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown crypto provider {s:?}, expected ring or aws-lc-rs"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_quantum_groups_are_aws_lc_rs_only_and_the_error_says_so() {
        assert!(Provider::AwsLcRs.group("x25519mlkem768").is_some());
        assert!(Provider::AwsLcRs.group("SECP256R1MLKEM768").is_some());
        let e = Provider::Ring.check_group("X25519MLKEM768").unwrap_err();
        assert!(e.to_string().contains("aws-lc-rs"), "{e}");
        assert!(Provider::Ring.check_group("p-256").is_ok());
        let e = Provider::AwsLcRs.check_group("ffdhe2048").unwrap_err();
        assert!(!e.to_string().contains("needs"), "{e}");
    }

    #[test]
    fn each_provider_knows_its_suites_by_name() {
        for p in Provider::ALL {
            assert!(p.check_suite("tls13_aes_128_gcm_sha256").is_ok(), "{p}");
            assert!(p.check_suite("nope").is_err());
        }
    }

    #[test]
    fn a_hub_offers_every_named_group_post_quantum_first() {
        let names = |p: Provider| -> Vec<String> {
            p.hub_groups()
                .iter()
                .map(|g| format!("{:?}", g.name()))
                .collect()
        };
        assert_eq!(names(Provider::Ring).len(), 3);
        let aws = names(Provider::AwsLcRs);
        assert_eq!(aws.len(), 5);
        assert!(aws[0].contains("MLKEM"), "{aws:?}");
    }
}
