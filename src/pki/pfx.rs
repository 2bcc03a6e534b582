//! PKCS#12 (PFX) files for devices, as the tutorial's .NET device loads them
//! (`new X509Certificate2("device.pfx", "1234")`) and OpenSSL 3 opens them.

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};
use rustls::pki_types::PrivateKeyDer;

use super::{DeviceIdentity, KeyType};

/// OpenSSL 3's defaults for `openssl pkcs12 -export`: PBES2/PBKDF2/AES-256-CBC and an
/// HMAC-SHA256 MAC, 2048 iterations each.
const ITERATIONS: u32 = 2048;

/// Why a PFX was not written.
#[derive(Debug, thiserror::Error)]
pub enum PfxError {
    /// The key type cannot travel in a PFX the tutorial's device can open.
    #[error(
        "a PFX cannot carry {0} keys for the tutorial's .NET device (.NET has no Ed25519 keys); \
         use ecdsa-p256, ecdsa-p384 or rsa-2048/3072/4096, or leave out --pfx-password"
    )]
    KeyType(KeyType),
    /// The device key is not PKCS#8.
    #[error("device {0:?}: the key is not PKCS#8")]
    NotPkcs8(String),
    /// The PKCS#12 encoder failed.
    #[error("device {id:?}: cannot encode the PFX")]
    Encode {
        /// Device id.
        id: String,
        /// The encoder's error.
        #[source]
        source: p12_keystore::error::Error,
    },
}

/// A PFX holding the device's key, its leaf and the intermediates it presents, encrypted with
/// `password`. `key_type` is checked first so that a bad combination fails before minting.
pub fn pfx(
    device: &DeviceIdentity,
    key_type: KeyType,
    password: &str,
) -> Result<Vec<u8>, PfxError> {
    check_key_type(key_type)?;
    let encode = |source| PfxError::Encode {
        id: device.id.clone(),
        source,
    };
    let PrivateKeyDer::Pkcs8(pkcs8) = device.key.as_ref() else {
        return Err(PfxError::NotPkcs8(device.id.clone()));
    };
    let key = PrivateKey::from_der(pkcs8.secret_pkcs8_der()).map_err(encode)?;
    let certs = device
        .presented_chain()
        .iter()
        .map(|c| Certificate::from_der(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(encode)?;
    // The local key id ties the key bag to the leaf's certificate bag; any unique bytes do.
    let key_id = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &device.leaf);
    let chain = PrivateKeyChain::new(key_id.as_ref().to_vec(), key, certs);
    let mut store = KeyStore::new();
    store.add_entry(&device.id, KeyStoreEntry::PrivateKeyChain(chain));
    store
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(encode)
}

/// Refuses key types a PFX for the tutorial's device cannot carry.
pub fn check_key_type(key_type: KeyType) -> Result<(), PfxError> {
    if key_type.fits_dotnet_pfx() {
        Ok(())
    } else {
        Err(PfxError::KeyType(key_type))
    }
}
