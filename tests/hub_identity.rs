//! Issue 16: a hub identity that never changes behind the user's back. `hub init` makes it
//! (names, key type, validity chosen), `hub serve` makes one only in a directory with none and
//! says so, and refuses incomplete or inconsistent identities naming the file.

use std::path::Path;
use std::process::{Output, Stdio};

use rustls::pki_types::pem::PemObject as _;

use crate::pki::{fleetbench, ok, p};
use crate::support::hub_serve::HubServe;

fn refused(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{text}");
    text
}

/// `hub serve` until its first stdout line; its (line, stderr).
fn serve_first_line(state: &Path) -> (String, String) {
    let mut cmd = HubServe::ephemeral(p(state));
    cmd.stderr(Stdio::piped());
    let hub = HubServe::start(cmd);
    let line = hub.line.clone();
    (line, hub.kill_with_log())
}

fn serve_refused(state: &Path) -> String {
    refused(&fleetbench(&[
        "hub",
        "serve",
        "--mqtt",
        "127.0.0.1:0",
        "--state",
        p(state),
    ]))
}

fn files(state: &Path) -> Vec<Vec<u8>> {
    ["server-root.pem", "server.pem", "server.key.pem"]
        .iter()
        .map(|f| std::fs::read(state.join(f)).unwrap_or_default())
        .collect()
}

#[test]
fn hub_init_makes_the_identity_asked_for_and_never_replaces_it_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("hub");
    let made = ok(&fleetbench(&[
        "hub",
        "init",
        "--state",
        p(&state),
        "--name",
        "hub.example.test",
        "--name",
        "localhost",
        "--ip",
        "127.0.0.2",
        "--key-type",
        "rsa-2048",
        "--days",
        "400",
    ]));
    assert!(
        made.contains("hub.example.test, localhost, 127.0.0.2 (rsa-2048)"),
        "{made}"
    );
    let before = files(&state);
    let again = refused(&fleetbench(&["hub", "init", "--state", p(&state)]));
    assert!(
        again.contains("server-root.pem already exists") && again.contains("--force"),
        "{again}"
    );
    assert_eq!(files(&state), before, "refused init changed nothing");

    // What serve presents is what init made: the first line names the root, and no "made".
    let (line, err) = serve_first_line(&state);
    assert!(line.contains("clients trust"), "{line}");
    assert!(!err.contains("made a new one"), "{err}");
    assert_eq!(files(&state), before, "serve kept the identity");
    let cert = std::fs::read(state.join("server.pem")).unwrap();
    let ders: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<_, _>>()
        .unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&ders[0]).unwrap();
    let days =
        (leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp()) / 86_400;
    assert!((399..=401).contains(&days), "{days} days");
    assert!(
        leaf.public_key().algorithm.algorithm.to_id_string() == "1.2.840.113549.1.1.1",
        "an RSA key"
    );

    let forced = ok(&fleetbench(&[
        "hub",
        "init",
        "--state",
        p(&state),
        "--force",
    ]));
    assert!(forced.contains("(ecdsa-p256)"), "{forced}");
    assert_ne!(files(&state), before);
}

#[test]
fn hub_serve_refuses_missing_or_inconsistent_identity_files_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let init = |name: &str| {
        let state = dir.path().join(name);
        ok(&fleetbench(&["hub", "init", "--state", p(&state)]));
        state
    };
    // The reported case: the key gone. Before, serve minted a new identity silently.
    let keyless = init("keyless");
    std::fs::remove_file(keyless.join("server.key.pem")).unwrap();
    let err = serve_refused(&keyless);
    assert!(
        err.contains("server.key.pem is missing") && err.contains("--force"),
        "{err}"
    );
    assert!(!keyless.join("server.key.pem").exists(), "nothing minted");

    let junk = init("junk");
    std::fs::write(junk.join("server-root.pem"), "not a certificate\n").unwrap();
    let err = serve_refused(&junk);
    assert!(
        err.contains("server-root.pem is not a valid root certificate"),
        "{err}"
    );

    let other = init("other");
    let mixed = init("mixed");
    std::fs::copy(other.join("server.key.pem"), mixed.join("server.key.pem")).unwrap();
    let err = serve_refused(&mixed);
    assert!(
        err.contains("server.key.pem: this key is not the one of the certificate"),
        "{err}"
    );

    let foreign = init("foreign");
    std::fs::copy(
        other.join("server-root.pem"),
        foreign.join("server-root.pem"),
    )
    .unwrap();
    let err = serve_refused(&foreign);
    assert!(
        err.contains("server-root.pem: this root did not sign the server certificate"),
        "{err}"
    );
}

#[test]
fn hub_serve_says_when_it_makes_an_identity_and_warns_before_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh");
    let (line, err) = serve_first_line(&fresh);
    assert!(line.starts_with("hub listening on mqtts://"), "{line}");
    assert!(
        err.contains("had no server identity: made a new one")
            && err.contains("localhost, 127.0.0.1")
            && err.contains("hub init"),
        "{err}"
    );
    let (_, err) = serve_first_line(&fresh);
    assert!(!err.contains("made a new one"), "second start: {err}");

    let short = dir.path().join("short");
    ok(&fleetbench(&[
        "hub",
        "init",
        "--state",
        p(&short),
        "--days",
        "10",
    ]));
    let (_, err) = serve_first_line(&short);
    assert!(
        err.contains("warning: the hub's server certificate") && err.contains("expires on"),
        "{err}"
    );

    let help = ok(&fleetbench(&["hub", "serve", "--help"]));
    assert!(
        help.contains("AMQP 1.0") && help.contains("localhost"),
        "{help}"
    );
}
