//! Issue 17: the TLS choices people weigh (crypto provider, key-exchange groups including the
//! hybrid post-quantum ones, ML-DSA certificates) through the binary against the embedded hub
//! and `hub serve`.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::support::hub_serve::HubServe;
use crate::support::hub_state;
use crate::support::walkthrough::{fleetbench, take_summary, text};

/// Runs an inline scenario from `dir`; the output and, when it ran, its summary.json.
pub(crate) fn run(dir: &Path, toml: &str, extra: &[&str]) -> (Output, Option<Value>) {
    let path = dir.join("s.toml");
    std::fs::write(&path, toml).unwrap();
    let mut args = vec!["run", "--quiet", "--results", "results", "s.toml"];
    args.extend_from_slice(extra);
    let out = fleetbench(dir, &args, &[]);
    let summary = dir.join("results").exists().then(|| take_summary(dir));
    (out, summary)
}

/// An embedded-hub scenario of `devices` devices, one message each, with `tls` and `fleet`
/// lines added.
fn scenario(devices: u64, tls: &str, fleet: &str) -> String {
    format!(
        "name = \"t\"\n[target]\nhub = \"embedded\"\n[tls]\n{tls}\n[fleet]\ndevices = {devices}\n\
         {fleet}\n[connect]\nrate = 200.0\n[messages]\ncount = 1\ninterval = \"10ms\"\n"
    )
}

/// A run that must pass; its summary.
pub(crate) fn passing(dir: &Path, toml: &str, extra: &[&str]) -> Value {
    let (out, summary) = run(dir, toml, extra);
    assert_eq!(out.status.code(), Some(0), "{toml}\n{}", text(&out));
    summary.unwrap()
}

pub(crate) fn full(s: &Value) -> &Value {
    &s["handshake"]["full"]
}

#[test]
fn every_group_completes_a_mutual_tls_fleet_run_and_post_quantum_shares_show_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("ring", "x25519"),
        ("ring", "secp256r1"),
        ("ring", "secp384r1"),
        ("aws-lc-rs", "x25519"),
        ("aws-lc-rs", "secp256r1"),
        ("aws-lc-rs", "secp384r1"),
        ("aws-lc-rs", "X25519MLKEM768"),
        ("aws-lc-rs", "SECP256R1MLKEM768"),
    ];
    let mut up = std::collections::BTreeMap::new();
    for (provider, group) in cases {
        let tls = format!("provider = \"{provider}\"\ngroups = [\"{group}\"]");
        let s = passing(dir.path(), &scenario(3, &tls, ""), &[]);
        let f = full(&s);
        assert_eq!(f["count"], 3, "{provider} {group}: {f}");
        assert_eq!(f["round_trips"]["max"], 1, "{provider} {group}: {f}");
        assert_eq!(f["hello_retries"], 0, "{provider} {group}: {f}");
        up.insert(
            (provider, group),
            f["bytes_to_server"]["median"].as_u64().unwrap(),
        );
    }
    // ML-KEM-768's encapsulation key (1,184 bytes) rides in the ClientHello: the hybrid group
    // was really used.
    let x25519 = up[&("aws-lc-rs", "x25519")];
    assert!(
        up[&("aws-lc-rs", "X25519MLKEM768")] > x25519 + 1_100,
        "{up:?}"
    );
    assert!(
        up[&("aws-lc-rs", "SECP256R1MLKEM768")] > x25519 + 1_100,
        "{up:?}"
    );
}

#[test]
fn a_post_quantum_group_with_ring_is_a_scenario_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for field in ["groups", "hub-groups"] {
        let (out, summary) = run(
            dir.path(),
            &scenario(1, &format!("{field} = [\"X25519MLKEM768\"]"), ""),
            &[],
        );
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{t}");
        assert!(t.contains(&format!("tls.{field}")), "{t}");
        assert!(t.contains("tls.provider = \"aws-lc-rs\""), "{t}");
        assert!(!t.contains("panicked"), "{t}");
        assert!(summary.is_none());
    }
}

#[test]
fn ml_dsa_certificates_complete_mutual_tls_and_their_chains_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let tls = "provider = \"aws-lc-rs\"";
    let base = passing(dir.path(), &scenario(2, tls, ""), &[]);
    let ecdsa_chain = full(&base)["chain_sent_bytes"].as_f64().unwrap();
    let mut last = ecdsa_chain;
    for k in ["ml-dsa-44", "ml-dsa-65", "ml-dsa-87"] {
        let fleet = format!("key-type = \"{k}\"\nca-key-type = \"{k}\"");
        let s = passing(dir.path(), &scenario(2, tls, &fleet), &[]);
        let f = full(&s);
        assert_eq!(f["count"], 2, "{k}: {f}");
        // Every certificate carries an ML-DSA key and signature of kilobytes.
        let chain = f["chain_sent_bytes"].as_f64().unwrap();
        assert!(chain > last + 1_000.0, "{k}: chain {chain} after {last}");
        assert!(
            f["bytes_to_server"]["median"].as_f64().unwrap() > chain,
            "{k}: {f}"
        );
        assert_eq!(f["round_trips"]["max"], 1, "{k}: {f}");
        last = chain;
    }
    let (out, _) = run(
        dir.path(),
        &scenario(1, "", "key-type = \"ml-dsa-44\""),
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("tls.provider"), "{}", text(&out));
}

#[test]
fn an_ml_dsa_ca_written_by_pki_init_is_refused_on_reading_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let init = ["pki", "init", "--out", "ca", "--key-type", "ml-dsa-44"];
    let out = fleetbench(d, &init, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = fleetbench(d, &crate::support::pki_devices("ca", "1", "d"), &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("ml-dsa-44 key, which cannot be read back"),
        "{t}"
    );
}

#[test]
fn hub_serve_offers_the_provider_and_groups_its_flags_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = |args: &[&str]| {
        let out = fleetbench(d, args, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    };
    ok(&["pki", "init", "--out", "ca"]);
    // The hub's own identity is ML-DSA-44: it signs its CertificateVerify with it.
    ok(&["hub", "init", "--state", "hub", "--key-type", "ml-dsa-44"]);
    hub_state::add_verified_ca(d, "hub", "t", "ca/root.cer");
    hub_state::register_devices(d, "hub", 2);
    // A group ring lacks is refused at start, naming it.
    let bad = ["hub", "serve", "--state", "hub", "--mqtt", "127.0.0.1:0"];
    let out = fleetbench(
        d,
        &[&bad[..], &["--tls-groups", "X25519MLKEM768"]].concat(),
        &[],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("X25519MLKEM768") && t.contains("aws-lc-rs"),
        "{t}"
    );
    let out = fleetbench(d, &bad, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("ml-dsa-44 key needs the aws-lc-rs provider"),
        "{t}"
    );

    let mut cmd = HubServe::ephemeral("hub");
    cmd.current_dir(d)
        .args([
            "--tls-provider",
            "aws-lc-rs",
            "--tls-groups",
            "X25519MLKEM768",
        ])
        .stderr(std::process::Stdio::null());
    let hub = HubServe::start(cmd);
    let mqtt = hub.mqtt();
    let toml = |groups: &str| {
        format!(
            "name = \"t\"\n[target]\nhub = \"remote\"\naddress = \"{mqtt}\"\nserver-name = \"localhost\"\n\
             ca-file = \"hub/server-root.pem\"\n[tls]\nprovider = \"aws-lc-rs\"\ngroups = [{groups}]\n\
             [fleet]\ndevices = 2\nca-dir = \"ca\"\n[connect]\nrate = 100.0\n[messages]\ncount = 1\n\
             interval = \"10ms\"\n"
        )
    };
    let (pq, pq_summary) = run(d, &toml("\"X25519MLKEM768\""), &[]);
    let (classic, classic_summary) = run(d, &toml("\"x25519\""), &[]);
    hub.interrupt();
    assert_eq!(pq.status.code(), Some(0), "{}", text(&pq));
    let pq_summary = pq_summary.unwrap();
    assert_eq!(full(&pq_summary)["count"], 2);
    let hub_chain = full(&pq_summary)["chain_received_bytes"].as_f64().unwrap();
    assert!(
        hub_chain > 3_700.0,
        "an ML-DSA-44 key and signature: {hub_chain}"
    );
    // The hub offers only the hybrid group: a classical-only device cannot agree on one.
    assert_eq!(classic.status.code(), Some(1), "{}", text(&classic));
    assert!(classic_summary.unwrap()["handshake"].is_null());
}
