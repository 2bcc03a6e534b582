//! Key types: the algorithms devices and CAs use, and their generation.

use std::fmt;
use std::str::FromStr;

use rcgen::{KeyPair, RsaKeySize, SignatureAlgorithm};
use serde::{Deserialize, Serialize};

use super::PkiError;

/// The key algorithm of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    /// ECDSA on NIST P-256 with SHA-256 (the default: fast to mint and to verify).
    #[default]
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
    /// RSA 2048 with SHA-256.
    Rsa2048,
    /// RSA 3072 with SHA-256.
    Rsa3072,
    /// RSA 4096 with SHA-256.
    Rsa4096,
    /// ML-DSA-44 (FIPS 204), post-quantum; needs the aws-lc-rs provider and TLS 1.3.
    MlDsa44,
    /// ML-DSA-65 (FIPS 204), post-quantum; needs the aws-lc-rs provider and TLS 1.3.
    MlDsa65,
    /// ML-DSA-87 (FIPS 204), post-quantum; needs the aws-lc-rs provider and TLS 1.3.
    MlDsa87,
}

impl KeyType {
    /// The post-quantum key types: rustls can use them only with aws-lc-rs and TLS 1.3, and
    /// OpenSSL 3.0 cannot read them (so they are apart from [`KeyType::ALL`]).
    pub const POST_QUANTUM: [Self; 3] = [Self::MlDsa44, Self::MlDsa65, Self::MlDsa87];

    /// Every classical key type, for help texts and benchmarks.
    pub const ALL: [Self; 6] = [
        Self::EcdsaP256,
        Self::EcdsaP384,
        Self::Ed25519,
        Self::Rsa2048,
        Self::Rsa3072,
        Self::Rsa4096,
    ];

    /// The name used in scenario files and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
            Self::Ed25519 => "ed25519",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
            Self::MlDsa44 => "ml-dsa-44",
            Self::MlDsa65 => "ml-dsa-65",
            Self::MlDsa87 => "ml-dsa-87",
        }
    }

    /// Whether this is an ML-DSA (post-quantum) key type.
    pub const fn is_post_quantum(self) -> bool {
        matches!(self, Self::MlDsa44 | Self::MlDsa65 | Self::MlDsa87)
    }

    fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
            Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
            Self::MlDsa44 => &rcgen::PKCS_ML_DSA_44,
            Self::MlDsa65 => &rcgen::PKCS_ML_DSA_65,
            Self::MlDsa87 => &rcgen::PKCS_ML_DSA_87,
        }
    }

    /// Generates a fresh key pair of this type. RSA keys come from aws-lc-rs (ring cannot
    /// generate them), which is why rcgen is built with its `aws_lc_rs` backend.
    pub fn generate(self) -> Result<KeyPair, PkiError> {
        let rsa = |size| KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size);
        match self {
            Self::Rsa2048 => rsa(RsaKeySize::_2048),
            Self::Rsa3072 => rsa(RsaKeySize::_3072),
            Self::Rsa4096 => rsa(RsaKeySize::_4096),
            _ => KeyPair::generate_for(self.algorithm()),
        }
        .map_err(|source| PkiError::Mint {
            what: format!("a {} key", self.name()),
            source,
        })
    }

    /// The ML-DSA key type of a PKCS#8 key, found by its algorithm identifier (FIPS 204 OIDs
    /// 2.16.840.1.101.3.4.3.17-19), for saying why such a key cannot be read back.
    pub fn ml_dsa_in_pkcs8(der: &[u8]) -> Option<Self> {
        const OID: [u8; 10] = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03];
        let at = der.windows(OID.len() + 1).find(|w| w[..OID.len()] == OID)?;
        match at[OID.len()] {
            0x11 => Some(Self::MlDsa44),
            0x12 => Some(Self::MlDsa65),
            0x13 => Some(Self::MlDsa87),
            _ => None,
        }
    }

    /// Whether the tutorial's .NET device can load this key type from a PFX.
    pub const fn fits_dotnet_pfx(self) -> bool {
        !matches!(self, Self::Ed25519) && !self.is_post_quantum()
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let every = || Self::ALL.into_iter().chain(Self::POST_QUANTUM);
        every().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<_> = every().map(|k| k.name()).collect();
            format!(
                "unknown key type {s:?}, expected one of {}",
                names.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ml_dsa_keys_generate_and_parse_by_name() {
        for k in KeyType::POST_QUANTUM {
            assert_eq!(k.name().parse::<KeyType>(), Ok(k));
            let key = k.generate().unwrap();
            assert_eq!(key.algorithm(), k.algorithm());
            assert!(!k.fits_dotnet_pfx());
            assert_eq!(KeyType::ml_dsa_in_pkcs8(&key.serialize_der()), Some(k));
        }
        let p256 = KeyType::EcdsaP256.generate().unwrap();
        assert_eq!(KeyType::ml_dsa_in_pkcs8(&p256.serialize_der()), None);
        assert!("ml-dsa-1"
            .parse::<KeyType>()
            .unwrap_err()
            .contains("ml-dsa-65"));
    }
}
