//! Server certificates: the hub's, and `pki server`'s for any broker (Mosquitto, RabbitMQ, …).
//!
//! The profile is the serverAuth one strict verifiers accept (RFC 5280): CA:false (critical),
//! digitalSignature (and keyEncipherment for RSA keys, for TLS 1.2 RSA key exchange),
//! serverAuth, subject and authority key identifiers, and one SAN per name and address.

use std::net::IpAddr;

use rcgen::{ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{base_params, CaChain, KeyType, PkiError, ServerIdentity, Validity};

/// A name a server certificate cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerNameError {
    /// No name and no address.
    #[error("a server certificate needs at least one host name or IP address")]
    Empty,
    /// An address given as a host name.
    #[error("{0:?} is an IP address, not a host name: pass it with --ip")]
    AddressAsName(String),
    /// Not a DNS host name.
    #[error("{name:?} is not a host name: {reason}")]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// The subject alternative names of a server certificate: DNS names, then IP addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerNames {
    dns: Vec<String>,
    ips: Vec<IpAddr>,
}

impl ServerNames {
    /// Host names (checked: letters, digits and `-` in labels of 1 to 63 characters, at most
    /// 253 in all, `*.` allowed as the leftmost label) and addresses. At least one of either.
    pub fn new(dns: Vec<String>, ips: Vec<IpAddr>) -> Result<Self, ServerNameError> {
        if dns.is_empty() && ips.is_empty() {
            return Err(ServerNameError::Empty);
        }
        for name in &dns {
            check_dns_name(name)?;
        }
        Ok(Self { dns, ips })
    }

    /// Names given in one list, as the hub does: those that parse as IP addresses are
    /// addresses, the others host names.
    pub fn mixed(names: &[String]) -> Result<Self, ServerNameError> {
        let (ips, dns): (Vec<_>, Vec<_>) = names.iter().partition(|n| n.parse::<IpAddr>().is_ok());
        Self::new(
            dns.into_iter().cloned().collect(),
            ips.iter().filter_map(|n| n.parse().ok()).collect(),
        )
    }

    /// The subject common name: the first host name, else the first address.
    fn common_name(&self) -> String {
        self.dns
            .first()
            .cloned()
            .or_else(|| self.ips.first().map(IpAddr::to_string))
            .unwrap_or_default()
    }

    fn sans(&self) -> Result<Vec<SanType>, rcgen::Error> {
        let mut sans = Vec::with_capacity(self.dns.len() + self.ips.len());
        for name in &self.dns {
            sans.push(SanType::DnsName(name.clone().try_into()?));
        }
        sans.extend(self.ips.iter().copied().map(SanType::IpAddress));
        Ok(sans)
    }
}

fn check_dns_name(name: &str) -> Result<(), ServerNameError> {
    let bad = |reason: &str| ServerNameError::BadName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.parse::<IpAddr>().is_ok() {
        return Err(ServerNameError::AddressAsName(name.to_owned()));
    }
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        if i == 0 && *label == "*" && labels.len() > 1 {
            continue;
        }
        if label.is_empty() {
            return Err(bad("it has an empty label (two dots, or a dot at an end)"));
        }
        if label.len() > 63 {
            return Err(bad("a label is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(bad(&format!(
                "{c:?} is not allowed (letters, digits, '-' and '.'; '*.' only in front)"
            )));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
    }
    Ok(())
}

impl CaChain {
    /// Mints a server certificate for the hub with the given DNS names / IP addresses (those
    /// that parse as addresses are addresses), valid for [`Validity::default`].
    pub fn mint_server(
        &self,
        names: &[String],
        key_type: KeyType,
    ) -> Result<ServerIdentity, PkiError> {
        self.mint_server_for(&ServerNames::mixed(names)?, key_type, Validity::default())
    }

    /// Mints a serverAuth certificate for `names`, signed by the issuing CA. The identity's
    /// chain is the leaf, then the intermediates (what a server presents).
    pub fn mint_server_for(
        &self,
        names: &ServerNames,
        key_type: KeyType,
        validity: Validity,
    ) -> Result<ServerIdentity, PkiError> {
        let mint_err = |what: &str| {
            let what = what.to_owned();
            move |source| PkiError::Mint { what, source }
        };
        let key = key_type.generate()?;
        let mut params = base_params(&names.common_name(), validity);
        params.subject_alt_names = names.sans().map_err(mint_err("server certificate names"))?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if matches!(
            key_type,
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096
        ) {
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.issuing().issuer)
            .map_err(mint_err("server certificate"))?;
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.device_chain_tail());
        Ok(ServerIdentity {
            chain,
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_addresses_sent_to_ip() {
        let ok = |n: &str| ServerNames::new(vec![n.into()], vec![]).map(|_| ());
        assert_eq!(ok("broker.example.com"), Ok(()));
        assert_eq!(ok("*.example.com"), Ok(()));
        assert_eq!(ok("localhost"), Ok(()));
        assert!(matches!(
            ok("127.0.0.1"),
            Err(ServerNameError::AddressAsName(_))
        ));
        for bad in ["", "a..b", "b.", "-a", "a_b", "a b", "a.*.b", "*"] {
            assert!(
                matches!(ok(bad), Err(ServerNameError::BadName { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            ServerNames::new(vec![], vec![]),
            Err(ServerNameError::Empty)
        );
        let mixed = ServerNames::mixed(&["localhost".into(), "::1".into()]).unwrap();
        assert_eq!(mixed.ips, vec!["::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(mixed.common_name(), "localhost");
    }
}
