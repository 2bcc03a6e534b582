//! Issue 3: bad input to the `pki` commands is a clear error naming the file or value, exit
//! status 2, never a panic; keys written by other tools are read.

use crate::pki::{fleetbench, ok, openssl, p};

fn fails(args: &[&str]) -> String {
    crate::support::pki_cli::refused(&fleetbench(args))
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
    let err = fails(&crate::support::pki_devices(p(&ca), "1", p(&out)));
    assert!(
        err.contains("intermediate-1.key.pem") && err.contains("does not belong"),
        "{err}"
    );

    // A corrupt key.
    std::fs::write(&key, "not a key\n").unwrap();
    let err = fails(&crate::support::pki_devices(p(&ca), "1", p(&out)));
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
    let err = fails(&crate::support::pki_devices(p(dir.path()), "1", p(&out)));
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
    ok(&fleetbench(&crate::support::pki_devices(
        p(&ca),
        "1",
        p(&dir.path().join("d")),
    )));
}

/// Issue 16: one overwrite rule for every `pki` command: refuse what exists, `--force` replaces.
#[test]
fn every_pki_command_refuses_to_overwrite_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, devices) = (dir.path().join("ca"), dir.path().join("devices"));
    ok(&fleetbench(&[
        "pki",
        "init",
        "--out",
        p(&ca),
        "--intermediates",
        "2",
    ]));
    let root = std::fs::read(ca.join("root.cer")).unwrap();

    // devices: the second export names the first file it would replace; the keys are kept.
    let devs = crate::support::pki_devices(p(&ca), "3", p(&devices));
    ok(&fleetbench(&devs));
    let key = devices.join("device-00002.key.pem");
    let before = std::fs::read(&key).unwrap();
    let err = fails(&devs);
    assert!(
        err.contains("already exists")
            && err.contains("--force")
            && err.contains("device-00001.cert.pem"),
        "{err}"
    );
    assert!(err.contains("more files"), "{err}");
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "a refused export keeps the keys"
    );
    // Other devices would still replace the directory's thumbprints.csv.
    let err = fails(&[&devs[..], &["--id", "other-{n}"]].concat());
    assert!(
        err.contains("thumbprints.csv") && !err.contains("more"),
        "{err}"
    );
    ok(&fleetbench(&[&devs[..], &["--force"]].concat()));
    assert_ne!(
        std::fs::read(&key).unwrap(),
        before,
        "--force replaced the key"
    );

    // prove: the default file and --out.
    let prove = ["pki", "prove", "--ca", p(&ca), "--code", "ABC"];
    ok(&fleetbench(&prove));
    let err = fails(&prove);
    assert!(
        err.contains("verification-code.cert.pem") && err.contains("--force"),
        "{err}"
    );
    ok(&fleetbench(&[&prove[..], &["--force"]].concat()));
    let vc = dir.path().join("vc.pem");
    ok(&fleetbench(&[&prove[..], &["--out", p(&vc)]].concat()));
    assert!(fails(&[&prove[..], &["--out", p(&vc)]].concat()).contains("vc.pem"));

    // registry --out.
    let import = dir.path().join("import.txt");
    let registry = ["pki", "registry", "--count", "2", "--out", p(&import)];
    ok(&fleetbench(&registry));
    assert!(fails(&registry).contains("import.txt"));
    ok(&fleetbench(&[&registry[..], &["--force"]].concat()));

    // server.
    let srv = dir.path().join("srv");
    let server = [
        "pki",
        "server",
        "--ca",
        p(&ca),
        "--name",
        "localhost",
        "--out",
        p(&srv),
    ];
    ok(&fleetbench(&server));
    assert!(fails(&server).contains("server.cert.pem"));
    ok(&fleetbench(&[&server[..], &["--force"]].concat()));

    // init: refused, then replaced; a shallower chain leaves no stale intermediate behind.
    let err = fails(&["pki", "init", "--out", p(&ca)]);
    assert!(err.contains("--force"), "{err}");
    ok(&fleetbench(&[
        "pki",
        "init",
        "--out",
        p(&ca),
        "--intermediates",
        "1",
        "--force",
    ]));
    assert_ne!(std::fs::read(ca.join("root.cer")).unwrap(), root);
    assert!(!ca.join("intermediate-2.cert.pem").exists());
    assert!(!ca.join("intermediate-2.key.pem").exists());
    crate::support::pki_cli::assert_openssl_verifies(
        &ca.join("root.cert.pem"),
        &ca.join("chain.pem"),
        &ca.join("intermediate-1.cert.pem"),
    );
    ok(&fleetbench(&crate::support::pki_devices(
        p(&ca),
        "1",
        p(&dir.path().join("d2")),
    )));
}

/// Issue 16: clap turned `{n}` in the help into a line break.
#[test]
fn devices_help_shows_the_id_placeholder() {
    let help = ok(&fleetbench(&["pki", "devices", "--help"]));
    let line = help
        .lines()
        .find(|l| l.trim_start().starts_with("--id"))
        .unwrap_or_else(|| panic!("{help}"));
    assert!(
        line.contains("{n:05} is the device number") && line.contains("{n:0W}"),
        "{help}"
    );
    assert!(
        !help
            .lines()
            .any(|l| l.trim_start().starts_with("is the device number")),
        "{help}"
    );
}
