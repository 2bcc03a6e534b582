//! Issue 3: bad input to the `pki` commands is a clear error naming the file or value, exit
//! status 2, never a panic; keys written by other tools are read.

use crate::pki::{fleetbench, ok, openssl, p};

fn fails(args: &[&str]) -> String {
    let out = fleetbench(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn bad_input_is_a_clear_error_naming_the_file_or_value() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    ok(&fleetbench(&["pki", "init", "--out", p(&ca)]));
    let out = dir.path().join("out");

    // Refuses to overwrite a CA.
    let err = fails(&["pki", "init", "--out", p(&ca)]);
    assert!(
        err.contains("root.key.pem") && err.contains("already holds"),
        "{err}"
    );

    // A code a CN cannot hold.
    let err = fails(&["pki", "prove", "--ca", p(&ca), "--code", "ABC;DEF"]);
    assert!(err.contains("\"ABC;DEF\"") && err.contains("';'"), "{err}");
    let long = "A".repeat(65);
    let err = fails(&["pki", "prove", "--ca", p(&ca), "--code", &long]);
    assert!(err.contains("at most 64"), "{err}");

    // A PFX password on a key type the tutorial's PFX cannot carry.
    let err = fails(&[
        "pki",
        "devices",
        "--ca",
        p(&ca),
        "--count",
        "1",
        "--out",
        p(&out),
        "--key-type",
        "ed25519",
        "--pfx-password",
        "1234",
    ]);
    assert!(err.contains("ed25519") && err.contains("PFX"), "{err}");

    // A mismatched key.
    let key = ca.join("intermediate-1.key.pem");
    let good = std::fs::read(&key).unwrap();
    std::fs::copy(ca.join("root.key.pem"), &key).unwrap();
    let err = fails(&[
        "pki",
        "devices",
        "--ca",
        p(&ca),
        "--count",
        "1",
        "--out",
        p(&out),
    ]);
    assert!(
        err.contains("intermediate-1.key.pem") && err.contains("does not belong"),
        "{err}"
    );

    // A corrupt key.
    std::fs::write(&key, "not a key\n").unwrap();
    let err = fails(&[
        "pki",
        "devices",
        "--ca",
        p(&ca),
        "--count",
        "1",
        "--out",
        p(&out),
    ]);
    assert!(
        err.contains("intermediate-1.key.pem") && err.contains("not a valid private key"),
        "{err}"
    );

    // A missing key.
    std::fs::remove_file(&key).unwrap();
    let err = fails(&["pki", "prove", "--ca", p(&ca), "--code", "ABC"]);
    assert!(
        err.contains("intermediate-1.key.pem") && err.contains("missing"),
        "{err}"
    );
    std::fs::write(&key, good).unwrap();

    // Not a CA directory at all.
    let err = fails(&[
        "pki",
        "devices",
        "--ca",
        p(dir.path()),
        "--count",
        "1",
        "--out",
        p(&out),
    ]);
    assert!(
        err.contains("root.cert.pem") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn a_pkcs1_rsa_key_from_openssl_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    ok(&fleetbench(&[
        "pki",
        "init",
        "--out",
        p(&ca),
        "--intermediates",
        "0",
        "--key-type",
        "rsa-2048",
    ]));
    let key = ca.join("root.key.pem");
    let pkcs1 = dir.path().join("pkcs1.pem");
    ok(&openssl(&[
        "rsa",
        "-in",
        p(&key),
        "-traditional",
        "-out",
        p(&pkcs1),
    ]));
    assert!(std::fs::read_to_string(&pkcs1)
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    std::fs::copy(&pkcs1, &key).unwrap();
    ok(&fleetbench(&[
        "pki",
        "devices",
        "--ca",
        p(&ca),
        "--count",
        "1",
        "--out",
        p(&dir.path().join("d")),
    ]));
}
