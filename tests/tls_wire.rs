//! Issue 17: bytes and round trips per TLS handshake, counted on the devices' TCP streams, against
//! independent counts: a counting TCP relay in between, rustls's own account of a
//! HelloRetryRequest, and the round trips each protocol version takes.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use fleetbench::pki::store::{pem, write_ca_dir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support;
use crate::support::walkthrough::text;
use crate::tls_choices::{full, passing, run};

#[test]
fn the_hrr_scenario_counts_one_hello_retry_per_full_handshake_and_a_round_trip_more() {
    let dir = tempfile::tempdir().unwrap();
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/handshake-hrr.toml");
    let body = std::fs::read_to_string(committed).unwrap();
    let s = passing(dir.path(), &body, &["--devices", "8"]);
    let f = full(&s);
    assert_eq!(
        (f["count"].as_u64(), f["hello_retries"].as_u64()),
        (Some(8), Some(8)),
        "{f}"
    );
    assert_eq!(f["round_trips"]["median"], 2, "{f}");
    // The text report says so on its "On the wire" line.
    let (out, _) = run(dir.path(), &body, &["--devices", "4"]);
    let report = text(&out);
    assert!(
        report.contains("2 RTT") && report.contains("4 HelloRetryRequest"),
        "{report}"
    );
    // The same fleet with the hub offering the devices' first choice: no retry, one round trip.
    let offered = body.replace(
        "hub-groups = [\"secp256r1\"]",
        "hub-groups = [\"secp256r1\", \"X25519MLKEM768\"]",
    );
    assert_ne!(offered, body);
    let s = passing(dir.path(), &offered, &["--devices", "8"]);
    let f = full(&s);
    assert_eq!(
        (
            f["hello_retries"].as_u64(),
            f["round_trips"]["max"].as_u64()
        ),
        (Some(0), Some(1)),
        "{f}"
    );
}

#[test]
fn round_trips_tls_1_2_full_two_and_resumed_one_tls_1_3_resumed_one() {
    let dir = tempfile::tempdir().unwrap();
    for (version, full_rtt) in [("1.2", 2), ("1.3", 1)] {
        let toml = format!(
            "name = \"t\"\n[target]\nhub = \"embedded\"\n[tls]\nversion = \"{version}\"\n\
             resumption = true\n[fleet]\ndevices = 2\n[connect]\nrate = 200.0\n\
             [churn]\nduration = \"300ms\"\nmessages = 0\n"
        );
        let s = passing(dir.path(), &toml, &[]);
        let (f, r) = (full(&s), &s["handshake"]["resumed"]);
        assert_eq!(f["round_trips"]["median"], full_rtt, "TLS {version}: {f}");
        assert_eq!(f["round_trips"]["max"], full_rtt, "TLS {version}: {f}");
        assert!(r["count"].as_u64().unwrap() >= 1, "TLS {version}: {r}");
        assert_eq!(r["round_trips"]["max"], 1, "TLS {version}: {r}");
        // No certificates cross in a resumed handshake: far fewer bytes.
        assert_eq!(r["chain_sent_bytes"], 0.0, "{r}");
        let (fb, rb) = (
            f["bytes_to_client"]["median"].as_u64().unwrap(),
            r["bytes_to_client"]["median"].as_u64().unwrap(),
        );
        assert!(
            rb + 500 < fb,
            "TLS {version}: resumed {rb} B vs full {fb} B"
        );
    }
}

/// Relays every connection to `to`, counting the bytes each way; returns its address and a task
/// that ends after `sessions` connections closed, with the totals (up, down).
async fn counting_relay(
    to: SocketAddr,
    sessions: usize,
) -> (SocketAddr, tokio::task::JoinHandle<(u64, u64)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut pipes = Vec::new();
        for _ in 0..sessions {
            let (client, _) = listener.accept().await.unwrap();
            let server = TcpStream::connect(to).await.unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            pipes.push(tokio::spawn(pipe(cr, sw)));
            pipes.push(tokio::spawn(pipe(sr, cw)));
        }
        let mut totals = (0, 0);
        for (i, p) in pipes.into_iter().enumerate() {
            let n = p.await.unwrap();
            if i % 2 == 0 {
                totals.0 += n;
            } else {
                totals.1 += n;
            }
        }
        totals
    });
    (addr, task)
}

/// Copies until EOF or an error, then shuts the writer; the bytes copied.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                total += n as u64;
            }
        }
    }
    let _ = to.shutdown().await;
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_per_session_equal_what_a_relay_counted_in_between() {
    const DEVICES: u64 = 6;
    let dir = tempfile::tempdir().unwrap();
    let ca = support::chain();
    write_ca_dir(&dir.path().join("ca"), &ca).unwrap();
    let server_ca = support::chain();
    let hub = support::hub(&server_ca, &[ca.as_ref()]).await;
    hub.hub
        .registry
        .register_ca_signed(support::ids("device", DEVICES).iter());
    let roots = dir.path().join("server-root.pem");
    std::fs::write(&roots, pem("CERTIFICATE", server_ca.root().cert())).unwrap();
    let (relay, counted) = counting_relay(hub.mqtt, DEVICES as usize).await;
    let toml = format!(
        "name = \"relayed\"\n[target]\nhub = \"remote\"\naddress = \"{relay}\"\n\
         server-name = \"localhost\"\nca-file = \"{}\"\n[fleet]\ndevices = {DEVICES}\n\
         id = \"device-{{n:05}}\"\nca-dir = \"ca\"\n[connect]\nrate = 200.0\n\
         [messages]\ncount = 3\ninterval = \"5ms\"\n",
        roots.display()
    );
    let d = dir.path().to_owned();
    let (out, summary) = tokio::task::spawn_blocking(move || run(&d, &toml, &[]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (up, down) = tokio::time::timeout(Duration::from_secs(30), counted)
        .await
        .expect("the relay's connections close")
        .unwrap();
    let f = summary.unwrap()["handshake"]["full"].clone();
    assert_eq!(f["sessions"], DEVICES, "{f}");
    assert_eq!(f["session_bytes_to_server"].as_u64(), Some(up), "{f}");
    assert_eq!(f["session_bytes_to_client"].as_u64(), Some(down), "{f}");
    // The handshakes are part of the sessions, and the chains part of the handshakes.
    let hs_up = f["bytes_to_server"]["total"].as_u64().unwrap();
    assert!(
        hs_up < up && f["chain_sent_bytes"].as_f64().unwrap() * 6.0 < hs_up as f64,
        "{f}"
    );
    hub.stop().await;
}

/// The adapter's HelloRetryRequest (read from the record bytes) against rustls's own account of
/// the handshake, and the group rustls negotiated, for a hub offering only `hub_groups`.
async fn handshake_with(
    client_groups: &[&str],
    hub_groups: &[&str],
) -> (
    fleetbench::transport::HandshakeWire,
    Option<rustls::HandshakeKind>,
    String,
) {
    use fleetbench::command::run::EmbeddedHub;
    use fleetbench::hub::HubConfig;
    use fleetbench::pki::{KeyType, Validity};
    use fleetbench::transport::tls::HubTls;
    use fleetbench::transport::{self, ClientTls, Provider, ServerVerification, TlsVersion};
    let strings = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let ca = support::chain();
    let config = HubConfig {
        tls: HubTls {
            provider: Provider::AwsLcRs,
            groups: strings(hub_groups),
        },
        ..HubConfig::default()
    };
    let hub = EmbeddedHub::start(&ca, config).await.unwrap();
    let device = ca
        .mint_device("d", KeyType::EcdsaP256, Validity::default())
        .unwrap();
    let roots = ClientTls::roots(std::slice::from_ref(ca.root().cert())).unwrap();
    let tls = ClientTls::new(TlsVersion::Tls13, ServerVerification::Roots(roots), false)
        .with_provider(Provider::AwsLcRs, &[], &strings(client_groups))
        .unwrap()
        .for_device(&device)
        .unwrap();
    let tcp = transport::tcp_connect(hub.mqtt, None).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let (stream, wire) = transport::tls_handshake_counted(tls, name, tcp, true)
        .await
        .unwrap();
    let conn = stream.get_ref().1;
    let group = format!("{:?}", conn.negotiated_key_exchange_group().unwrap().name());
    let kind = conn.handshake_kind();
    drop(stream);
    hub.stop().await;
    (wire, kind, group)
}

#[tokio::test]
async fn hello_retry_read_from_the_records_agrees_with_rustls() {
    let (wire, kind, group) =
        handshake_with(&["X25519MLKEM768", "secp256r1"], &["secp256r1"]).await;
    assert!(wire.counts.hello_retry, "{wire:?}");
    assert_eq!(kind, Some(rustls::HandshakeKind::FullWithHelloRetryRequest));
    assert_eq!((group.as_str(), wire.counts.round_trips), ("secp256r1", 2));
    let (wire, kind, group) = handshake_with(&["X25519MLKEM768", "secp256r1"], &[]).await;
    assert!(!wire.counts.hello_retry, "{wire:?}");
    assert_eq!(kind, Some(rustls::HandshakeKind::Full));
    assert_eq!(
        (group.as_str(), wire.counts.round_trips),
        ("X25519MLKEM768", 1)
    );
    assert!(wire.chain_sent > 0 && wire.chain_received > 0, "{wire:?}");
}
