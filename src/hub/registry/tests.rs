//! Unit tests of the registries: on-demand registration and the verified-chain memory.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};

use super::verified::{validity_of, VerifiedChains};
use super::{Refusal, Registry};
use crate::pki::{CaChain, ChainSpec, KeyType, Validity};

fn presented(chain: &CaChain, id: &str, validity: Validity) -> Vec<CertificateDer<'static>> {
    let d = chain.mint_device(id, KeyType::EcdsaP256, validity).unwrap();
    std::iter::once(d.leaf)
        .chain(d.chain_tail.iter().cloned())
        .collect()
}

fn registry(chain: &CaChain, verified: bool) -> Registry {
    let r = Registry::new();
    r.insert_ca("root", chain.root().cert().clone(), verified, None)
        .unwrap();
    r.register_ca_signed(["dev-1".to_owned(), "dev-2".to_owned()]);
    r
}

#[test]
fn on_demand_registration_takes_only_authenticated_ca_signed_devices() {
    let chain = CaChain::generate(&ChainSpec::default()).unwrap();
    let stranger = CaChain::generate(&ChainSpec::default()).unwrap();
    let r = Registry::new();
    r.insert_ca("root", chain.root().cert().clone(), true, None)
        .unwrap();
    let certs = presented(&chain, "dev-9", Validity::default());
    assert!(matches!(
        r.authenticate(&certs, "dev-9"),
        Err(Refusal::UnknownDevice(_))
    ));
    r.register_ca_signed_on_demand();
    assert!(matches!(
        r.authenticate(&certs, "dev-8"),
        Err(Refusal::IdentityMismatch(_))
    ));
    let other = presented(&stranger, "dev-7", Validity::default());
    assert!(matches!(
        r.authenticate(&other, "dev-7"),
        Err(Refusal::UnknownCa { presented: 2 })
    ));
    assert_eq!(r.device_count(), 0, "refused devices are not registered");
    let first = r.authenticate(&certs, "dev-9").unwrap();
    first.count_message();
    let again = r.authenticate(&certs, "dev-9").unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!((r.device_count(), r.received("dev-9")), (1, 1));
}

#[test]
fn a_verified_chain_is_remembered_for_its_ca_generation_and_validity() {
    let chain = CaChain::generate(&ChainSpec::default()).unwrap();
    let r = registry(&chain, true);
    let certs = presented(&chain, "dev-1", Validity::default());
    r.authenticate(&certs, "dev-1").unwrap();
    let key = VerifiedChains::key(&certs);
    let generation = r.inner.read().generation;
    let now = UnixTime::now().as_secs();
    let remembered = r.verified.get(&key, generation, now);
    assert_eq!(
        remembered.map(|(cn, ca)| (cn.to_string(), ca.to_string())),
        Some(("dev-1".to_owned(), "root".to_owned()))
    );
    // Remembered or checked afresh, the verifying CA is named.
    assert_eq!(&*r.authenticate_by(&certs, "dev-1").unwrap().1, "root");
    // A remembered chain still may not claim another device's id.
    assert!(matches!(
        r.authenticate(&certs, "dev-2"),
        Err(Refusal::IdentityMismatch(_))
    ));
    // Out of the chain's validity, or after the CAs changed, it is checked again.
    assert!(r
        .verified
        .get(&key, generation, now + 31 * 86_400)
        .is_none());
    assert!(r.verified.get(&key, generation + 1, now).is_none());
    r.add_ca(
        "other",
        CaChain::generate(&ChainSpec::default())
            .unwrap()
            .root()
            .cert()
            .clone(),
    )
    .unwrap();
    assert!(r.inner.read().generation > generation);
    r.authenticate(&certs, "dev-1").unwrap();
}

#[test]
fn refusals_are_not_remembered() {
    let chain = CaChain::generate(&ChainSpec::default()).unwrap();
    let r = registry(&chain, false);
    let certs = presented(&chain, "dev-1", Validity::default());
    for _ in 0..2 {
        assert_eq!(
            r.authenticate(&certs, "dev-1").unwrap_err(),
            Refusal::CaUnverified("root".into())
        );
    }
    assert!(r.verified.map.lock().is_empty());
}

#[test]
fn validity_is_the_intersection_of_the_chain() {
    let chain = CaChain::generate(&ChainSpec::default()).unwrap();
    let short = Validity::days_from_now(1);
    let certs = presented(&chain, "dev-1", short);
    let (from, to) = validity_of(&certs).unwrap();
    assert_eq!(from, short.not_before.unix_timestamp() as u64);
    assert_eq!(to, short.not_after.unix_timestamp() as u64);
    assert!(validity_of(&[CertificateDer::from(vec![1, 2, 3])]).is_none());
}
