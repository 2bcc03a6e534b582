//! Issue 16: every certificate fleetbench makes passes RFC 5280 strict checks (`openssl verify
//! -x509_strict`, Python 3.13's default TLS context).

use std::path::Path;
use std::process::Command;

use fleetbench::pki::KeyType;

use crate::pki::{fleetbench, ok, openssl, p};
use crate::support;
use crate::support::hub_serve::HubServe;

/// `openssl verify -x509_strict` of `cert` against `root`, with `untrusted` intermediates.
pub(crate) fn strict(
    root: &Path,
    untrusted: Option<&Path>,
    cert: &Path,
    purpose: Option<&str>,
    what: &str,
) {
    let mut args = vec!["verify", "-x509_strict", "-CAfile", p(root)];
    if let Some(chain) = untrusted {
        args.extend(["-untrusted", p(chain)]);
    }
    if let Some(purpose) = purpose {
        args.extend(["-purpose", purpose]);
    }
    args.push(p(cert));
    let out = openssl(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains(": OK"),
        "{what}: openssl verify -x509_strict: {text}"
    );
}

#[test]
fn every_certificate_kind_and_key_type_passes_openssl_x509_strict() {
    if !support::have("openssl") {
        return;
    }
    for key_type in KeyType::ALL {
        for depth in 0..=2u8 {
            let dir = tempfile::tempdir().unwrap();
            let (ca, devices, srv) = (
                dir.path().join("ca"),
                dir.path().join("devices"),
                dir.path().join("server"),
            );
            let kt = key_type.name();
            let what = |kind: &str| format!("{kind}, {kt}, {depth} intermediates");
            let d = depth.to_string();
            let init = ["pki", "init", "--out", p(&ca), "--key-type", kt];
            ok(&fleetbench(&[&init[..], &["--intermediates", &d]].concat()));
            let root = ca.join("root.cert.pem");
            let chain = ca.join("chain.pem");
            strict(&root, None, &root, None, &what("root"));
            for level in 1..=depth {
                let cert = ca.join(format!("intermediate-{level}.cert.pem"));
                strict(&root, Some(&chain), &cert, None, &what("intermediate"));
            }

            ok(&fleetbench(&[
                "pki",
                "devices",
                "--ca",
                p(&ca),
                "--count",
                "1",
                "--key-type",
                kt,
                "--out",
                p(&devices),
            ]));
            strict(
                &root,
                Some(&devices.join("device-00001.chain.pem")),
                &devices.join("device-00001.cert.pem"),
                Some("sslclient"),
                &what("device leaf"),
            );

            // The proof of possession, signed by the issuing CA (the one uploaded last).
            let signer = if depth == 0 {
                "root".to_owned()
            } else {
                format!("intermediate-{depth}")
            };
            let proof = dir.path().join("proof.pem");
            ok(&fleetbench(&[
                "pki",
                "prove",
                "--ca",
                p(&ca),
                "--code",
                "4729",
                "--signer",
                &signer,
                "--out",
                p(&proof),
            ]));
            strict(&root, Some(&chain), &proof, None, &what("verification"));

            ok(&fleetbench(&[
                "pki",
                "server",
                "--ca",
                p(&ca),
                "--name",
                "localhost",
                "--ip",
                "127.0.0.1",
                "--key-type",
                kt,
                "--out",
                p(&srv),
            ]));
            strict(
                &root,
                Some(&srv.join("server.chain.pem")),
                &srv.join("server.cert.pem"),
                Some("sslserver"),
                &what("server"),
            );
        }
    }
}

#[test]
fn self_signed_devices_pass_openssl_x509_strict() {
    if !support::have("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for key_type in [KeyType::EcdsaP256, KeyType::Rsa2048, KeyType::Ed25519] {
        let out = dir.path().join(key_type.name());
        ok(&fleetbench(&[
            "pki",
            "devices",
            "--self-signed",
            "--count",
            "1",
            "--key-type",
            key_type.name(),
            "--out",
            p(&out),
        ]));
        let cert = out.join("device-00001.cert.pem");
        strict(&cert, None, &cert, Some("sslclient"), key_type.name());
    }
}

/// A Python client as Python 3.13 makes it by default (`create_default_context` sets
/// VERIFY_X509_STRICT and VERIFY_X509_PARTIAL_CHAIN there; older Pythons get them set here),
/// presenting a device chain: the TLS handshake, then an MQTT CONNECT; prints the CONNACK code.
const PY_MQTT_CLIENT: &str = r#"
import socket, ssl, sys
host, port, root, chain, key, device = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=root)
ctx.verify_flags |= ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
ctx.load_cert_chain(chain, key)
with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname=host) as tls:
        def s(text):
            b = text.encode()
            return len(b).to_bytes(2, "big") + b
        body = s("MQTT") + bytes([4, 0x82, 0, 60]) + s(device) + s(f"{host}/{device}/?api-version=2021-04-12")
        tls.sendall(bytes([0x10, len(body)]) + body)
        connack = tls.recv(4)
        print("handshake", tls.version(), "connack", connack[3] if len(connack) == 4 else connack)
"#;

fn python(args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg("-c")
        .arg(PY_MQTT_CLIENT)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_python_default_context_client_connects_to_hub_serve_with_a_device_chain() {
    if !support::have("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, state, devices) = (
        dir.path().join("ca"),
        dir.path().join("hub"),
        dir.path().join("devices"),
    );
    let st = p(&state);
    ok(&fleetbench(&[
        "pki",
        "init",
        "--out",
        p(&ca),
        "--intermediates",
        "2",
    ]));
    let root = ca.join("root.cer");
    let added = ok(&fleetbench(&[
        "hub",
        "ca",
        "add",
        "--state",
        st,
        "--name",
        "mine",
        "--cert",
        p(&root),
    ]));
    let code = added
        .lines()
        .find_map(|l| l.strip_prefix("verification code "))
        .unwrap()
        .trim()
        .to_owned();
    let proof = dir.path().join("proof.pem");
    ok(&fleetbench(&[
        "pki",
        "prove",
        "--ca",
        p(&ca),
        "--code",
        &code,
        "--out",
        p(&proof),
    ]));
    ok(&fleetbench(&[
        "hub",
        "ca",
        "verify",
        "--state",
        st,
        "--name",
        "mine",
        "--cert",
        p(&proof),
    ]));
    ok(&fleetbench(&[
        "hub", "device", "add", "--state", st, "--count", "1",
    ]));
    ok(&fleetbench(&support::pki_devices(p(&ca), "1", p(&devices))));

    let hub = HubServe::start(HubServe::ephemeral(st));
    let port = hub.mqtt_addr().port().to_string();
    let server_root = hub.server_root();
    let out = python(&[
        "localhost",
        &port,
        &server_root,
        p(&devices.join("device-00001.chain.pem")),
        p(&devices.join("device-00001.key.pem")),
        "device-00001",
    ]);
    hub.kill();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("python strict client against hub serve: {text}");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("handshake TLSv1.3 connack 0"), "{text}");
}
