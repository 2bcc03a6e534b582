//! Issue 16: `pki server` mints a server certificate any broker can present, accepted by a
//! strict client for the names it was made for and for no other.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use crate::pki::{fleetbench, ok, openssl, p};
use crate::pki_strict::strict;
use crate::support;

/// A rustls server presenting `chain`/`key` on 127.0.0.1:0 for `handshakes` handshakes.
fn tls_server(chain: &Path, key: &Path, handshakes: usize) -> (u16, std::thread::JoinHandle<()>) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<_> = CertificateDer::pem_file_iter(chain)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        for _ in 0..handshakes {
            let (mut tcp, _) = listener.accept().unwrap();
            let mut conn = rustls::ServerConnection::new(config.clone()).unwrap();
            while conn.is_handshaking() {
                if conn.complete_io(&mut tcp).is_err() {
                    break;
                }
            }
        }
    });
    (port, thread)
}

const PY_TLS_CLIENT: &str = r#"
import socket, ssl, sys
port, root = sys.argv[1:3]
ctx = ssl.create_default_context(cafile=root)
ctx.verify_flags |= ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
for host in sys.argv[3:]:
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as tls:
                print(host, "accepted", tls.version())
    except ssl.SSLError as e:
        print(host, "refused", e)
"#;

#[test]
fn pki_server_mints_a_certificate_a_strict_client_accepts_for_its_names_only() {
    if !support::have("openssl") || !support::have("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, srv) = (dir.path().join("ca"), dir.path().join("broker"));
    ok(&fleetbench(&[
        "pki",
        "init",
        "--out",
        p(&ca),
        "--key-type",
        "rsa-2048",
    ]));
    let minted = ok(&fleetbench(&[
        "pki",
        "server",
        "--ca",
        p(&ca),
        "--name",
        "localhost",
        "--name",
        "broker.test",
        "--ip",
        "127.0.0.1",
        "--key-type",
        "rsa-2048",
        "--days",
        "400",
        "--out",
        p(&srv),
    ]));
    assert!(minted.contains("root.cert.pem"), "{minted}");
    let (cert, chain, key) = (
        srv.join("server.cert.pem"),
        srv.join("server.chain.pem"),
        srv.join("server.key.pem"),
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let root = ca.join("root.cert.pem");
    strict(&root, Some(&chain), &cert, Some("sslserver"), "pki server");
    let text = ok(&openssl(&[
        "x509",
        "-in",
        p(&cert),
        "-noout",
        "-ext",
        "subjectAltName,extendedKeyUsage",
    ]));
    for want in [
        "DNS:localhost",
        "DNS:broker.test",
        "IP Address:127.0.0.1",
        "TLS Web Server Authentication",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    assert_eq!(
        std::fs::read_to_string(&chain)
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );

    let hosts = ["localhost", "broker.test", "127.0.0.1", "other.test"];
    let (port, server) = tls_server(&chain, &key, hosts.len());
    let out = Command::new("python3")
        .args(["-c", PY_TLS_CLIENT, &port.to_string(), p(&root)])
        .args(hosts)
        .output()
        .unwrap();
    server.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("python strict client against a pki server certificate:\n{text}");
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for host in &hosts[..3] {
        assert!(
            text.contains(&format!("{host} accepted TLSv1.3")),
            "{host}: {text}"
        );
    }
    assert!(text.contains("other.test refused"), "{text}");
}
