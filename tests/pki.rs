//! Issue 3: the tutorial's certificate exports, checked by the real `openssl` CLI.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use fleetbench::pki::export::DeviceExport;
use fleetbench::pki::store::{load_ca_dir, write_ca_dir};
use fleetbench::pki::{CaChain, ChainSpec, DeviceIds, IdTemplate, KeyType, Validity};

use crate::support::pki_cli::assert_openssl_verifies;
pub(crate) use crate::support::pki_cli::{fleetbench, ok, openssl, p};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Writes a CA directory and `devices` devices into `dir/ca` and `dir/devices`.
fn export(dir: &Path, key_type: KeyType, intermediates: u8, devices: u64, pfx: Option<&str>) {
    let spec = ChainSpec {
        key_type,
        intermediates,
        ..ChainSpec::default()
    };
    let chain = CaChain::generate(&spec).unwrap();
    write_ca_dir(&dir.join("ca"), &chain).unwrap();
    let loaded = Arc::new(load_ca_dir(&dir.join("ca")).unwrap());
    std::fs::create_dir_all(dir.join("devices")).unwrap();
    let ids = DeviceIds::new(IdTemplate::parse("device-{n:05}").unwrap(), devices, 0, 1);
    let export = DeviceExport {
        dir: dir.join("devices"),
        ca: Some(loaded),
        key_type,
        validity: Validity::default(),
        pfx_password: pfx.map(str::to_owned),
    };
    export.run(&ids, 2).unwrap();
}

#[test]
fn openssl_verifies_devices_of_every_key_type_and_chain_depth() {
    for key_type in KeyType::ALL {
        for depth in 0..=2 {
            let dir = tempfile::tempdir().unwrap();
            export(dir.path(), key_type, depth, 2, None);
            let (ca, dev) = (dir.path().join("ca"), dir.path().join("devices"));
            for n in ["device-00001", "device-00002"] {
                let out = openssl(&[
                    "verify",
                    "-purpose",
                    "sslclient",
                    "-CAfile",
                    p(&ca.join("root.cert.pem")),
                    "-untrusted",
                    p(&dev.join(format!("{n}.chain.pem"))),
                    p(&dev.join(format!("{n}.cert.pem"))),
                ]);
                let text = ok(&out);
                assert!(text.contains(": OK"), "{key_type} depth {depth}: {text}");
                assert_eq!(mode(&dev.join(format!("{n}.key.pem"))), 0o600);
            }
            // The DER upload file is the same certificate as the PEM.
            let out = openssl(&[
                "x509",
                "-inform",
                "DER",
                "-in",
                p(&ca.join("root.cer")),
                "-noout",
                "-subject",
            ]);
            assert!(ok(&out).contains("Root CA"), "{key_type}");
            for level in 0..=depth {
                let name = if level == 0 {
                    "root".to_owned()
                } else {
                    format!("intermediate-{level}")
                };
                assert_eq!(mode(&ca.join(format!("{name}.key.pem"))), 0o600, "{name}");
            }
        }
    }
}

#[test]
fn openssl_opens_the_pfx_with_the_tutorials_password() {
    for key_type in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa2048] {
        let dir = tempfile::tempdir().unwrap();
        export(dir.path(), key_type, 1, 1, Some("1234"));
        let pfx = dir.path().join("devices/device-00001.pfx");
        assert_eq!(mode(&pfx), 0o600);
        let certs = ok(&openssl(&[
            "pkcs12",
            "-in",
            p(&pfx),
            "-passin",
            "pass:1234",
            "-nokeys",
        ]));
        assert!(
            certs.contains("CN = device-00001") || certs.contains("CN=device-00001"),
            "{certs}"
        );
        assert!(
            certs.contains("Intermediate 1 CA"),
            "the PFX carries the chain: {certs}"
        );
        let key = ok(&openssl(&[
            "pkcs12",
            "-in",
            p(&pfx),
            "-passin",
            "pass:1234",
            "-nocerts",
            "-nodes",
        ]));
        assert!(key.contains("PRIVATE KEY"), "{key_type}: {key}");
        let wrong = openssl(&["pkcs12", "-in", p(&pfx), "-passin", "pass:4321", "-nokeys"]);
        assert!(!wrong.status.success(), "a wrong password must not open it");
    }
}

#[test]
fn the_cli_walks_init_prove_devices_and_openssl_checks_each_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let init = ok(&fleetbench(&[
        "pki",
        "init",
        "--out",
        p(&ca),
        "--intermediates",
        "2",
        "--key-type",
        "rsa-2048",
    ]));
    assert!(init.contains("intermediate-2"), "{init}");
    assert_openssl_verifies(
        &ca.join("root.cert.pem"),
        &ca.join("chain.pem"),
        &ca.join("intermediate-2.cert.pem"),
    );

    let code = "47292AB6260DB02CCD2D07C601B7303DD49858B6";
    ok(&fleetbench(&[
        "pki",
        "prove",
        "--ca",
        p(&ca),
        "--code",
        code,
    ]));
    let vc = ca.join("verification-code.cert.pem");
    assert!(ok(&openssl(&[
        "verify",
        "-CAfile",
        p(&ca.join("root.cert.pem")),
        p(&vc)
    ]))
    .contains(": OK"));
    let subject = ok(&openssl(&["x509", "-in", p(&vc), "-noout", "-subject"]));
    assert!(subject.contains(code), "{subject}");

    // Proof for the intermediate (the current tutorial uploads the subordinate CA).
    let vc2 = dir.path().join("vc-int.pem");
    ok(&fleetbench(&[
        "pki",
        "prove",
        "--ca",
        p(&ca),
        "--code",
        code,
        "--signer",
        "intermediate-1",
        "--out",
        p(&vc2),
    ]));
    let partial = ok(&openssl(&[
        "verify",
        "-partial_chain",
        "-CAfile",
        p(&ca.join("intermediate-1.cert.pem")),
        p(&vc2),
    ]));
    assert!(partial.contains(": OK"), "{partial}");

    let devices = dir.path().join("devices");
    let out = ok(&fleetbench(&[
        "pki",
        "devices",
        "--ca",
        p(&ca),
        "--count",
        "3",
        "--id",
        "dev-{n:03}",
        "--out",
        p(&devices),
        "--pfx-password",
        "1234",
    ]));
    assert!(out.contains("3 ecdsa-p256 devices"), "{out}");
    assert_openssl_verifies(
        &ca.join("root.cert.pem"),
        &devices.join("dev-002.chain.pem"),
        &devices.join("dev-002.cert.pem"),
    );
    let full = std::fs::read_to_string(devices.join("dev-002.full-chain.pem")).unwrap();
    assert_eq!(
        full.matches("BEGIN CERTIFICATE").count(),
        4,
        "leaf, two intermediates, root"
    );
    ok(&openssl(&[
        "pkcs12",
        "-in",
        p(&devices.join("dev-003.pfx")),
        "-passin",
        "pass:1234",
        "-nokeys",
    ]));
    let csv = std::fs::read_to_string(devices.join("thumbprints.csv")).unwrap();
    let fp = ok(&openssl(&[
        "x509",
        "-in",
        p(&devices.join("dev-001.cert.pem")),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]));
    let fp = fp.trim().rsplit('=').next().unwrap().replace(':', "");
    assert!(csv.contains("dev-001,") && csv.contains(&fp), "{csv}\n{fp}");
}

#[test]
fn a_bulk_import_file_of_10000_devices_is_quick_and_every_line_is_the_documented_format() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("devices.txt");
    let start = Instant::now();
    ok(&fleetbench(&[
        "pki",
        "registry",
        "--count",
        "10000",
        "--out",
        p(&file),
    ]));
    let elapsed = start.elapsed();
    println!("bulk import file of 10,000 devices (whole process): {elapsed:?}");
    assert!(elapsed.as_secs_f64() < 5.0, "{elapsed:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 10_000);
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["id"], format!("device-{:05}", i + 1));
        assert_eq!(v["importMode"], "create");
        assert_eq!(v["status"], "enabled");
        assert_eq!(
            v["authentication"],
            serde_json::json!({"type": "certificateAuthority"})
        );
        assert_eq!(v.as_object().unwrap().len(), 4, "{line}");
    }
}

#[test]
fn self_signed_devices_get_sha256_thumbprints_in_the_import_file() {
    let dir = tempfile::tempdir().unwrap();
    let devices = dir.path().join("devices");
    ok(&fleetbench(&[
        "pki",
        "devices",
        "--self-signed",
        "--count",
        "2",
        "--out",
        p(&devices),
    ]));
    let text = ok(&fleetbench(&[
        "pki",
        "registry",
        "--count",
        "2",
        "--self-signed",
        "--devices",
        p(&devices),
    ]));
    let line: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(line["authentication"]["type"], "selfSigned");
    let primary = line["authentication"]["x509Thumbprint"]["primaryThumbprint"]
        .as_str()
        .unwrap();
    let fp = ok(&openssl(&[
        "x509",
        "-in",
        p(&devices.join("device-00002.cert.pem")),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]));
    assert_eq!(
        primary,
        fp.trim().rsplit('=').next().unwrap().replace(':', "")
    );
    // Self-signed: it verifies against itself.
    let cert = devices.join("device-00002.cert.pem");
    assert!(ok(&openssl(&["verify", "-CAfile", p(&cert), p(&cert)])).contains(": OK"));
}
