//! rustls configurations built from `pki` types; mutual TLS lives only here.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use serde::{Deserialize, Serialize};

pub use super::provider::{Provider, UnknownName};
use crate::pki::{DeviceIdentity, KeyType, ServerIdentity};

/// Errors building a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// rustls refused the certificates, key or versions.
    #[error("invalid TLS configuration for {what}")]
    Rustls {
        /// Whose configuration.
        what: String,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
    /// A trust root could not be added.
    #[error("trust root is not a usable CA certificate")]
    BadRoot(#[source] rustls::Error),
    /// The hub's key is ML-DSA, which ring cannot sign with.
    #[error("the hub's {0} key needs the aws-lc-rs provider (hub serve --tls-provider aws-lc-rs)")]
    NeedsAwsLcRs(KeyType),
    /// A cipher suite or group the provider lacks.
    #[error(transparent)]
    Unknown(#[from] UnknownName),
}

/// TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 only.
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only (the default).
    #[default]
    #[serde(rename = "1.3")]
    Tls13,
}

impl std::fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tls12 => "1.2",
            Self::Tls13 => "1.3",
        })
    }
}

/// A cipher suite of ring by its rustls name, e.g. `TLS13_AES_128_GCM_SHA256`.
pub fn cipher_suite(name: &str) -> Option<rustls::SupportedCipherSuite> {
    Provider::Ring.cipher_suite(name)
}

/// A key-exchange group of ring by name: `x25519`, `secp256r1`, `secp384r1`.
pub fn group(name: &str) -> Option<&'static dyn rustls::crypto::SupportedKxGroup> {
    Provider::Ring.group(name)
}

impl TlsVersion {
    /// The rustls version.
    pub fn rustls(self) -> rustls::ProtocolVersion {
        match self {
            Self::Tls12 => rustls::ProtocolVersion::TLSv1_2,
            Self::Tls13 => rustls::ProtocolVersion::TLSv1_3,
        }
    }

    fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            Self::Tls12 => &TLS12,
            Self::Tls13 => &TLS13,
        }
    }
}

/// The default crypto provider (ring, rustls's default suites and groups).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(Provider::Ring.crypto())
}

/// Settings shared by every device's client configuration.
#[derive(Debug, Clone)]
pub struct ClientTls {
    provider: Arc<CryptoProvider>,
    version: TlsVersion,
    verifier: ServerVerification,
    resumption: bool,
}

/// How devices check the hub's certificate.
#[derive(Debug, Clone)]
pub enum ServerVerification {
    /// Against these roots, with the server name (the default).
    Roots(Arc<RootCertStore>),
    /// Not at all: saves a chain verification per handshake; for pricing handshakes only.
    Skip,
}

impl ClientTls {
    /// Client settings with the given server verification.
    pub fn new(version: TlsVersion, verifier: ServerVerification, resumption: bool) -> Self {
        Self {
            provider: provider(),
            version,
            verifier,
            resumption,
        }
    }

    /// Uses `provider` offering only these suites and groups (empty lists keep rustls's
    /// defaults); an unknown name is an error naming it.
    pub fn with_provider(
        mut self,
        provider: Provider,
        suites: &[String],
        groups: &[String],
    ) -> Result<Self, UnknownName> {
        self.provider = provider.restricted(suites, groups)?;
        Ok(self)
    }

    /// A root store holding `roots`.
    pub fn roots(roots: &[CertificateDer<'_>]) -> Result<Arc<RootCertStore>, TlsConfigError> {
        let mut store = RootCertStore::empty();
        for r in roots {
            store
                .add(r.clone().into_owned())
                .map_err(TlsConfigError::BadRoot)?;
        }
        Ok(Arc::new(store))
    }

    /// The provider, versions and server verification every client configuration shares.
    fn builder(
        &self,
        what: &str,
    ) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, TlsConfigError>
    {
        let builder = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(self.version.versions())
            .map_err(|source| TlsConfigError::Rustls {
                what: what.to_owned(),
                source,
            })?;
        Ok(match &self.verifier {
            ServerVerification::Roots(roots) => builder.with_root_certificates(roots.clone()),
            ServerVerification::Skip => {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoServerVerification(
                        HandshakeSignatures(self.provider.clone()),
                    )))
            }
        })
    }

    /// The client configuration of one device: its own certificate chain and key.
    pub fn for_device(&self, device: &DeviceIdentity) -> Result<Arc<ClientConfig>, TlsConfigError> {
        let what = format!("device {}", device.id);
        let mut config = self
            .builder(&what)?
            .with_client_auth_cert(device.presented_chain(), device.key.clone_key())
            .map_err(|source| TlsConfigError::Rustls { what, source })?;
        config.resumption = if self.resumption {
            // One device reconnects to one hub: a tiny cache is enough.
            Resumption::in_memory_sessions(4)
        } else {
            Resumption::disabled()
        };
        Ok(Arc::new(config))
    }

    /// A configuration that verifies the server as the devices do but presents no certificate:
    /// for endpoints that authenticate by token (an Event Hubs-compatible endpoint).
    pub fn without_client_auth(&self) -> Result<Arc<ClientConfig>, TlsConfigError> {
        Ok(Arc::new(
            self.builder("a client without a certificate")?
                .with_no_client_auth(),
        ))
    }
}

/// Checks the handshake's own signatures (CertificateVerify) with a provider's algorithms: the
/// part of peer verification both of our custom verifiers keep.
#[derive(Debug)]
struct HandshakeSignatures(Arc<CryptoProvider>);

impl HandshakeSignatures {
    fn algorithms(&self) -> &rustls::crypto::WebPkiSupportedAlgorithms {
        &self.0.signature_verification_algorithms
    }
}

/// The three handshake-signature methods that [`ServerCertVerifier`] and [`ClientCertVerifier`]
/// both require, checked by the verifier's [`HandshakeSignatures`] field `$field`.
macro_rules! handshake_signatures {
    ($field:tt) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, self.$field.algorithms())
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, self.$field.algorithms())
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.$field.algorithms().supported_schemes()
        }
    };
}

/// Accepts any server certificate (verification off), still checking handshake signatures.
#[derive(Debug)]
struct NoServerVerification(HandshakeSignatures);

impl ServerCertVerifier for NoServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!(0);
}

/// The hub's client-certificate policy, as IoT Hub's: request a certificate in the handshake but
/// do not require one, and check only that the client holds the key of the certificate it
/// presents (the CertificateVerify signature). Whether the chain ends at a registered, verified CA
/// is decided at MQTT CONNECT or AMQP attach, where the refusal can be a CONNACK 5 or
/// `amqp:unauthorized-access` rather than a TLS alert.
#[derive(Debug)]
pub struct DeferredClientAuth {
    signatures: HandshakeSignatures,
}

impl ClientCertVerifier for DeferredClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures!(signatures);
}

/// The hub's crypto: its provider and the groups it offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubTls {
    /// The crypto provider.
    pub provider: Provider,
    /// Groups offered, by name; empty = every group the provider has (post-quantum first).
    pub groups: Vec<String>,
}

impl HubTls {
    /// The provider with the hub's groups, or the first group name it lacks.
    pub fn crypto(&self) -> Result<Arc<CryptoProvider>, UnknownName> {
        if self.groups.is_empty() {
            let mut crypto = self.provider.crypto();
            crypto.kx_groups = self.provider.hub_groups();
            Ok(Arc::new(crypto))
        } else {
            self.provider.restricted(&[], &self.groups)
        }
    }
}

/// The hub's server configuration with ring and its groups: see [`hub_server_config_for`].
pub fn hub_server_config(identity: &ServerIdentity) -> Result<Arc<ServerConfig>, TlsConfigError> {
    hub_server_config_for(identity, &HubTls::default())
}

/// The hub's server configuration: TLS 1.2 and 1.3, client certificates requested, not
/// required, with the provider and groups of `tls`.
pub fn hub_server_config_for(
    identity: &ServerIdentity,
    tls: &HubTls,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let provider = tls.crypto()?;
    if tls.provider == Provider::Ring {
        if let Some(k) = KeyType::ml_dsa_in_pkcs8(identity.key.secret_der()) {
            return Err(TlsConfigError::NeedsAwsLcRs(k));
        }
    }
    let err = |source| TlsConfigError::Rustls {
        what: "the hub".into(),
        source,
    };
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(err)?
        .with_client_cert_verifier(Arc::new(DeferredClientAuth {
            signatures: HandshakeSignatures(provider),
        }))
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(err)?;
    // A modest cache: rustls scans the whole cache on eviction (see docs/tls-costs.md).
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    config.send_tls13_tickets = 1;
    Ok(Arc::new(config))
}
