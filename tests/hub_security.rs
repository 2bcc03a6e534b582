//! Issue 8: the embedded hub's security matrix. Each hostile session is refused the way IoT Hub
//! refuses it, counted by kind, and the hub keeps serving well-behaved devices.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fleetbench::command::run::EmbeddedHub;
use fleetbench::hub::{DeviceAuth, HubConfig};
use fleetbench::pki::{CaChain, DeviceIdentity, KeyType, LeafUsage, Validity};
use fleetbench::protocol::{MqttOptions, QoS};
use fleetbench::transport::{self, ClientTls, ServerVerification, TlsVersion};
use futures::{SinkExt as _, StreamExt as _};
use rand::{Rng as _, SeedableRng as _};
use rumqttc::mqttbytes::v4::{Codec, ConnectReturnCode, Packet, Publish};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Framed;

use crate::support;

type Conn = Framed<TlsStream<TcpStream>, Codec>;

struct Lab {
    ca: Arc<CaChain>,
    hub: EmbeddedHub,
}

impl Lab {
    async fn new() -> Self {
        Self::with(HubConfig::default()).await
    }

    async fn with(config: HubConfig) -> Self {
        let ca = support::chain();
        let hub = EmbeddedHub::start(&ca, config).await.unwrap();
        hub.hub
            .registry
            .add_verified_ca("root", ca.root().cert().clone())
            .unwrap();
        Self { ca, hub }
    }

    fn device(&self, id: &str) -> DeviceIdentity {
        self.hub.hub.registry.register_ca_signed([id.to_owned()]);
        self.ca
            .mint_device(id, KeyType::EcdsaP256, Validity::default())
            .unwrap()
    }

    fn client(&self, device: Option<&DeviceIdentity>) -> Arc<rustls::ClientConfig> {
        let roots = ClientTls::roots(std::slice::from_ref(self.ca.root().cert())).unwrap();
        match device {
            Some(d) => ClientTls::new(TlsVersion::Tls13, ServerVerification::Roots(roots), false)
                .for_device(d)
                .unwrap(),
            None => Arc::new(
                rustls::ClientConfig::builder_with_provider(transport::tls::provider())
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            ),
        }
    }

    async fn tls(&self, device: Option<&DeviceIdentity>) -> TlsStream<TcpStream> {
        self.tls_to(self.hub.mqtt, device).await
    }

    async fn tls_to(
        &self,
        addr: std::net::SocketAddr,
        device: Option<&DeviceIdentity>,
    ) -> TlsStream<TcpStream> {
        let tcp = transport::tcp_connect(addr, None).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap().to_owned();
        transport::tls_handshake(self.client(device), name, tcp)
            .await
            .unwrap()
            .0
    }

    /// CONNECT as `client_id` with an IoT Hub username naming `user_id`; the CONNACK code.
    async fn connect_as(
        &self,
        device: Option<&DeviceIdentity>,
        client_id: &str,
        user_id: &str,
    ) -> (Conn, ConnectReturnCode) {
        let mut conn = Framed::new(
            self.tls(device).await,
            Codec {
                max_incoming_size: 1 << 20,
                max_outgoing_size: 1 << 20,
            },
        );
        let mut connect = iot_hub().connect_packet(user_id, "localhost");
        connect.client_id = client_id.to_owned();
        conn.send(Packet::Connect(connect)).await.unwrap();
        let code = match conn.next().await {
            Some(Ok(Packet::ConnAck(a))) => a.code,
            other => panic!("expected CONNACK, got {other:?}"),
        };
        (conn, code)
    }

    async fn connect(&self, device: &DeviceIdentity) -> (Conn, ConnectReturnCode) {
        self.connect_as(Some(device), &device.id, &device.id).await
    }

    fn refusals(&self, reason: &str) -> u64 {
        self.hub
            .hub
            .stats
            .refusals()
            .iter()
            .find(|(k, _)| k == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// A well-behaved device still connects and gets its message acknowledged.
    async fn still_serves(&self) {
        let id = format!("bystander-{}", rand::random::<u32>());
        let dev = self.device(&id);
        let (mut conn, code) = self.connect(&dev).await;
        assert_eq!(code, ConnectReturnCode::Success);
        let mut p = Publish::new(
            format!("devices/{id}/messages/events/"),
            QoS::AtLeastOnce,
            "{}",
        );
        p.pkid = 1;
        conn.send(Packet::Publish(p)).await.unwrap();
        assert!(matches!(conn.next().await, Some(Ok(Packet::PubAck(a))) if a.pkid == 1));
    }
}

fn iot_hub() -> MqttOptions {
    support::iot_hub_mqtt()
}

/// Reads until the hub closes the connection; true if it did (rather than sending something).
async fn closed_by_hub(conn: &mut Conn) -> bool {
    loop {
        match conn.next().await {
            None | Some(Err(_)) => return true,
            Some(Ok(Packet::PubAck(_) | Packet::PingResp)) => {}
            Some(Ok(_)) => return false,
        }
    }
}

#[tokio::test]
async fn no_client_certificate_gets_connack_5() {
    let lab = Lab::new().await;
    lab.device("d1");
    let (_, code) = lab.connect_as(None, "d1", "d1").await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
    assert_eq!(lab.refusals("no_certificate"), 1);
    lab.still_serves().await;
}

#[tokio::test]
async fn registered_but_unverified_ca_gets_connack_5() {
    let lab = Lab::new().await;
    let other = support::chain();
    lab.hub
        .hub
        .registry
        .add_ca("pending", other.root().cert().clone())
        .unwrap();
    lab.hub.hub.registry.register_ca_signed(["p1".to_owned()]);
    let dev = other
        .mint_device("p1", KeyType::EcdsaP256, Validity::default())
        .unwrap();
    let (_, code) = lab.connect(&dev).await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
    assert_eq!(lab.refusals("ca_unverified"), 1);
    lab.still_serves().await;
}

#[tokio::test]
async fn expired_and_not_yet_valid_certificates_get_connack_5() {
    let lab = Lab::new().await;
    let now = time::OffsetDateTime::now_utc();
    let day = Duration::from_secs(86_400);
    for (id, validity) in [
        (
            "expired",
            Validity {
                not_before: now - day * 10,
                not_after: now - day,
            },
        ),
        (
            "future",
            Validity {
                not_before: now + day,
                not_after: now + day * 10,
            },
        ),
    ] {
        lab.hub.hub.registry.register_ca_signed([id.to_owned()]);
        let dev = lab
            .ca
            .mint_device(id, KeyType::EcdsaP256, validity)
            .unwrap();
        let (_, code) = lab.connect(&dev).await;
        assert_eq!(code, ConnectReturnCode::NotAuthorized, "{id}");
    }
    assert_eq!(lab.refusals("invalid_certificate"), 2);
    lab.still_serves().await;
}

#[tokio::test]
async fn leaf_without_client_auth_gets_connack_5() {
    let lab = Lab::new().await;
    lab.hub.hub.registry.register_ca_signed(["srv".to_owned()]);
    let dev = lab
        .ca
        .mint_device_with(
            "srv",
            KeyType::EcdsaP256,
            Validity::default(),
            LeafUsage::Server,
        )
        .unwrap();
    let (_, code) = lab.connect(&dev).await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
    assert_eq!(lab.refusals("invalid_certificate"), 1);
    lab.still_serves().await;
}

#[tokio::test]
async fn username_naming_another_device_gets_connack_5() {
    let lab = Lab::new().await;
    let dev = lab.device("alice");
    lab.device("bob");
    let (_, code) = lab.connect_as(Some(&dev), "alice", "bob").await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
    assert_eq!(lab.refusals("identity_mismatch"), 1);
    lab.still_serves().await;
}

#[tokio::test]
async fn self_signed_device_is_matched_by_thumbprint() {
    let lab = Lab::new().await;
    let own = support::chain();
    let dev = own
        .mint_device("thumb", KeyType::EcdsaP256, Validity::default())
        .unwrap();
    let sha256: String = ring::digest::digest(&ring::digest::SHA256, &dev.leaf)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    lab.hub.hub.registry.register_devices([(
        "thumb".to_owned(),
        DeviceAuth::SelfSigned {
            primary: sha256,
            secondary: None,
        },
    )]);
    let (_, code) = lab.connect(&dev).await;
    assert_eq!(code, ConnectReturnCode::Success);
    lab.hub.hub.registry.register_devices([(
        "thumb".to_owned(),
        DeviceAuth::SelfSigned {
            primary: "00".repeat(32),
            secondary: None,
        },
    )]);
    let (_, code) = lab.connect(&dev).await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
    assert_eq!(lab.refusals("thumbprint_mismatch"), 1);
}

#[tokio::test]
async fn publish_to_another_devices_topic_closes_the_connection() {
    let lab = Lab::new().await;
    let dev = lab.device("d1");
    let (mut conn, _) = lab.connect(&dev).await;
    let mut p = Publish::new("devices/d2/messages/events/", QoS::AtLeastOnce, "x");
    p.pkid = 1;
    conn.send(Packet::Publish(p)).await.unwrap();
    assert!(closed_by_hub(&mut conn).await);
    assert_eq!(lab.hub.hub.registry.received("d2"), 0);
    lab.still_serves().await;
}

#[tokio::test]
async fn qos_2_closes_the_connection() {
    let lab = Lab::new().await;
    let dev = lab.device("d1");
    let (mut conn, _) = lab.connect(&dev).await;
    let mut p = Publish::new("devices/d1/messages/events/", QoS::ExactlyOnce, "x");
    p.pkid = 1;
    conn.send(Packet::Publish(p)).await.unwrap();
    assert!(closed_by_hub(&mut conn).await);
    assert_eq!(lab.hub.hub.registry.received("d1"), 0);
    lab.still_serves().await;
}

#[tokio::test]
async fn message_over_256_kib_closes_the_connection() {
    let lab = Lab::new().await;
    let dev = lab.device("d1");
    let (mut conn, _) = lab.connect(&dev).await;
    let mut ok = Publish::from_bytes(
        "devices/d1/messages/events/",
        QoS::AtLeastOnce,
        Bytes::from(vec![b'a'; 256 * 1024 - 16]),
    );
    ok.pkid = 1;
    conn.send(Packet::Publish(ok)).await.unwrap();
    assert!(matches!(conn.next().await, Some(Ok(Packet::PubAck(_)))));
    let mut big = Publish::from_bytes(
        "devices/d1/messages/events/",
        QoS::AtLeastOnce,
        Bytes::from(vec![b'a'; 256 * 1024 + 1]),
    );
    big.pkid = 2;
    conn.send(Packet::Publish(big)).await.unwrap();
    assert!(closed_by_hub(&mut conn).await);
    assert_eq!(lab.hub.hub.registry.received("d1"), 1);
    lab.still_serves().await;
}

#[tokio::test]
async fn a_second_connection_for_a_device_drops_the_older_one() {
    let lab = Lab::new().await;
    let dev = lab.device("twin");
    let (mut first, code) = lab.connect(&dev).await;
    assert_eq!(code, ConnectReturnCode::Success);
    let (mut second, code) = lab.connect(&dev).await;
    assert_eq!(code, ConnectReturnCode::Success);
    assert!(closed_by_hub(&mut first).await);
    let mut p = Publish::new("devices/twin/messages/events/", QoS::AtLeastOnce, "x");
    p.pkid = 7;
    second.send(Packet::Publish(p)).await.unwrap();
    assert!(matches!(second.next().await, Some(Ok(Packet::PubAck(a))) if a.pkid == 7));
    assert_eq!(lab.hub.hub.stats.snapshot().taken_over, 1);
}

#[tokio::test]
async fn an_unparseable_packet_closes_the_connection() {
    let lab = Lab::new().await;
    let dev = lab.device("d1");
    let (conn, _) = lab.connect(&dev).await;
    let mut tls = conn.into_inner();
    // Packet type 0 is reserved; then a remaining length that never ends.
    tls.write_all(&[0x00, 0xff, 0xff, 0xff, 0xff, 0x7f])
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(tls.read(&mut buf).await, Ok(0) | Err(_)));
    lab.still_serves().await;
}

#[tokio::test]
async fn random_bytes_after_the_handshake_close_the_connection() {
    let lab = Lab::with(HubConfig {
        connect_timeout: Duration::from_secs(1),
        ..HubConfig::default()
    })
    .await;
    lab.device("d1");
    let mut tls = lab.tls(Some(&lab.device("d1"))).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(tls.read(&mut buf).await, Ok(0) | Err(_)));
    assert!(lab.hub.hub.stats.snapshot().violations >= 1);
    lab.still_serves().await;
}

#[tokio::test]
async fn a_client_hello_followed_by_silence_is_timed_out() {
    let lab = Lab::with(HubConfig {
        handshake_timeout: Duration::from_millis(300),
        ..HubConfig::default()
    })
    .await;
    let mut tcp = TcpStream::connect(lab.hub.mqtt).await.unwrap();
    // The first bytes of a TLS record header for a ClientHello, then nothing.
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    // The hub frees the slot: the connection ends without us doing anything more.
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "hub kept a silent handshake open");
    assert_eq!(lab.hub.hub.stats.snapshot().tls_failures, 1);
    lab.still_serves().await;
}

#[tokio::test]
async fn arbitrary_bytes_never_bring_the_hub_down() {
    // A bounded property test: 64 seeded random streams to each endpoint (MQTT and AMQP), after
    // the handshake and before it; some start with a valid AMQP header so the frame parser runs.
    let lab = Lab::new().await;
    let dev = lab.device("fuzz");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5eed);
    for case in 0..128 {
        let len = rng.random_range(1..2048);
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes[..]);
        let addr = if case % 4 < 2 {
            lab.hub.mqtt
        } else {
            lab.hub.amqp
        };
        if case % 8 == 2 {
            let header = [b'A', b'M', b'Q', b'P', 0, 1, 0, 0];
            bytes.splice(0..0, header);
        } else if case % 8 == 6 {
            let header = [b'A', b'M', b'Q', b'P', 3, 1, 0, 0];
            bytes.splice(0..0, header);
        }
        if case % 2 == 0 {
            let mut tls = lab.tls_to(addr, Some(&dev)).await;
            let _ = tls.write_all(&bytes).await;
            let _ = tls.shutdown().await;
            let mut sink = Vec::new();
            let _ = tls.read_to_end(&mut sink).await;
        } else {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            let _ = tcp.write_all(&bytes).await;
            let _ = tcp.shutdown().await;
            let mut sink = Vec::new();
            let _ = tcp.read_to_end(&mut sink).await;
        }
    }
    lab.still_serves().await;
}
