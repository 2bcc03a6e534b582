//! `[tls]`: version, resumption, crypto provider, cipher suites and groups (the devices' and the
//! embedded hub's).

use crate::pki::KeyType;
use crate::scenario::problems::Problems;
use crate::scenario::Scenario;
use crate::transport::tls::HubTls;
use crate::transport::{Provider, TlsVersion};

/// TLS settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsPlan {
    /// Version.
    pub version: TlsVersion,
    /// Session resumption offered on reconnects.
    pub resumption: bool,
    /// The devices' crypto provider.
    pub provider: Provider,
    /// Cipher suites offered (rustls names); empty = the provider's defaults.
    pub cipher_suites: Vec<String>,
    /// Key-exchange groups offered; empty = the provider's defaults.
    pub groups: Vec<String>,
    /// The embedded hub's provider and groups.
    pub hub: HubTls,
}

pub(super) fn tls(s: &Scenario, p: &mut Problems<'_>) -> TlsPlan {
    let t = &s.tls;
    let version = t.version.unwrap_or_default();
    let provider = t.provider.unwrap_or_default();
    let cipher_suites = t.cipher_suites.clone().unwrap_or_default();
    for name in &cipher_suites {
        match provider.check_suite(name) {
            Err(e) => p.add("tls.cipher-suites", e.to_string()),
            Ok(suite) if suite.version().version != version.rustls() => p.add(
                "tls.cipher-suites",
                format!(
                    "{name:?} is a TLS {} suite, but tls.version is {}",
                    suite_version(suite),
                    version
                ),
            ),
            Ok(_) => {}
        }
    }
    let groups = t.groups.clone().unwrap_or_default();
    check_groups(p, "tls.groups", provider, version, &groups);
    let hub = HubTls {
        provider: t.hub_provider.unwrap_or(provider),
        groups: t.hub_groups.clone().unwrap_or_default(),
    };
    check_groups(p, "tls.hub-groups", hub.provider, version, &hub.groups);
    if matches!(s.target.hub, Some(crate::scenario::HubKind::Remote)) {
        for (field, set) in [
            ("tls.hub-provider", t.hub_provider.is_some()),
            ("tls.hub-groups", t.hub_groups.is_some()),
        ] {
            if set {
                p.add(
                    field,
                    "applies to the embedded hub only, but target.hub is \"remote\"",
                );
            }
        }
    }
    check_post_quantum_keys(s, p, provider, &hub, version);
    TlsPlan {
        version,
        resumption: t.resumption.unwrap_or(false),
        provider,
        cipher_suites,
        groups,
        hub,
    }
}

/// Each group must be the provider's, and a TLS 1.3-only group needs `tls.version = "1.3"`.
fn check_groups(
    p: &mut Problems<'_>,
    field: &str,
    provider: Provider,
    version: TlsVersion,
    groups: &[String],
) {
    for name in groups {
        match provider.check_group(name) {
            Err(e) => p.add(field, e.to_string()),
            Ok(g) if !g.usable_for_version(version.rustls()) => p.add(
                field,
                format!("{name:?} is a TLS 1.3 group, but tls.version is {version}"),
            ),
            Ok(_) => {}
        }
    }
}

/// ML-DSA certificates: rustls signs and verifies them only with aws-lc-rs and in TLS 1.3 (the
/// devices' keys on both sides; a CA's signatures on the devices' side).
fn check_post_quantum_keys(
    s: &Scenario,
    p: &mut Problems<'_>,
    provider: Provider,
    hub: &HubTls,
    version: TlsVersion,
) {
    let pq = |v: &Option<String>| {
        v.as_deref()
            .and_then(|k| k.parse::<KeyType>().ok())
            .filter(|k| k.is_post_quantum())
    };
    let (device, ca) = (pq(&s.fleet.key_type), pq(&s.fleet.ca_key_type));
    let Some(first) = device.or(ca) else {
        return;
    };
    if provider != Provider::AwsLcRs {
        p.add(
            "tls.provider",
            format!("{first} certificates need provider = \"aws-lc-rs\" (ring has no ML-DSA)"),
        );
    }
    if let Some(k) = device.filter(|_| hub.provider != Provider::AwsLcRs) {
        p.add(
            "tls.hub-provider",
            format!("the hub cannot check {k} device signatures with ring; use \"aws-lc-rs\""),
        );
    }
    if version != TlsVersion::Tls13 {
        p.add(
            "tls.version",
            format!("{first} certificates are TLS 1.3 only, but tls.version is {version}"),
        );
    }
}

pub(super) fn suite_version(suite: rustls::SupportedCipherSuite) -> &'static str {
    match suite {
        rustls::SupportedCipherSuite::Tls12(_) => "1.2",
        rustls::SupportedCipherSuite::Tls13(_) => "1.3",
    }
}

#[cfg(test)]
mod tests {
    fn problems(toml: &str) -> String {
        match crate::scenario::test_plan(toml) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_post_quantum_group_with_ring_names_the_field_and_the_provider_it_needs() {
        let e = problems("[fleet]\ndevices = 1\n[tls]\ngroups = [\"X25519MLKEM768\"]\n");
        assert!(e.contains("tls.groups"), "{e}");
        assert!(e.contains("tls.provider = \"aws-lc-rs\""), "{e}");
        let ok = "[fleet]\ndevices = 1\n[tls]\nprovider = \"aws-lc-rs\"\ngroups = [\"X25519MLKEM768\"]\n";
        assert_eq!(problems(ok), "");
    }

    #[test]
    fn ml_dsa_certificates_need_aws_lc_rs_and_tls_1_3() {
        let e =
            problems("[fleet]\ndevices = 1\nkey-type = \"ml-dsa-65\"\n[tls]\nversion = \"1.2\"\n");
        assert!(e.contains("tls.provider") && e.contains("ml-dsa-65"), "{e}");
        assert!(
            e.contains("tls.hub-provider") && e.contains("tls.version"),
            "{e}"
        );
        let ok = "[fleet]\ndevices = 1\nkey-type = \"ml-dsa-44\"\nca-key-type = \"ml-dsa-87\"\n[tls]\nprovider = \"aws-lc-rs\"\n";
        assert_eq!(problems(ok), "");
    }

    #[test]
    fn hub_settings_with_a_remote_target_are_an_error() {
        let e = problems("[target]\nhub = \"remote\"\naddress = \"127.0.0.1:1\"\n[fleet]\ndevices = 1\n[tls]\nhub-groups = [\"x25519\"]\n");
        assert!(
            e.contains("tls.hub-groups: applies to the embedded hub only"),
            "{e}"
        );
    }

    #[test]
    fn hub_groups_are_checked_against_the_hub_provider_and_the_version() {
        let e = problems("[fleet]\ndevices = 1\n[tls]\nprovider = \"aws-lc-rs\"\nversion = \"1.2\"\nhub-groups = [\"SECP256R1MLKEM768\"]\n");
        assert!(e.contains("tls.hub-groups"), "{e}");
        assert!(e.contains("TLS 1.3 group"), "{e}");
    }
}
