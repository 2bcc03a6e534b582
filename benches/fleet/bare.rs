//! The bare clients the generator is measured against: tokio-rustls streams with rumqttc's
//! `mqttbytes` v4 codec for MQTT, fe2o3 directly for AMQP. No scheduler, no recording, no
//! timeouts: what a hand-written client doing the same exchange costs.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use fe2o3_amqp::types::messaging::{ApplicationProperties, Data, Message, Properties};
use fe2o3_amqp::types::primitives::{Binary, Symbol, Value};
use fleetbench::pki::{CaChain, KeyType, Validity};
use rumqttc::mqttbytes::v4::{Connect, Login, Packet, Publish};
use rumqttc::mqttbytes::QoS;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{client_tls, ids_from};

/// A device of a bare client: its id and TLS configuration (fleetbench's own `for_device`, so
/// both sides present the same certificates and offer the same suites and resumption cache).
pub(crate) type Device = (String, Arc<ClientConfig>);

/// Mints `n` devices from `bench-{first + 1}` and their client configurations (both sides mint
/// inside their rounds, so resumption starts each round from empty session caches on both).
pub(crate) fn devices(
    chain: &CaChain,
    root: &CertificateDer<'static>,
    (n, first): (u64, u64),
    resumption: bool,
) -> Arc<Vec<Device>> {
    let tls = client_tls(root, resumption);
    let ids = ids_from(n, first);
    Arc::new(
        (0..n as usize)
            .map(|i| {
                let id = ids.id(i);
                let d = chain
                    .mint_device(&id, KeyType::EcdsaP256, Validity::default())
                    .unwrap();
                (id, tls.for_device(&d).unwrap())
            })
            .collect(),
    )
}

/// TCP connect (no delay) and the TLS handshake.
pub(crate) async fn tls(port: u16, cfg: &Arc<ClientConfig>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(cfg.clone())
        .connect(name, tcp)
        .await
        .unwrap()
}

const MAX: usize = 1 << 20;

/// The IoT Hub CONNECT of an X.509 device, with the same fields as fleetbench's.
fn connect_packet(id: &str) -> Packet {
    let mut c = Connect::new(id);
    c.keep_alive = 60;
    c.clean_session = false;
    c.login = Some(Login::new(
        format!("localhost/{id}/?api-version=2021-04-12&DeviceClientType=fleetbench%2F0.1.0"),
        "",
    ));
    Packet::Connect(c)
}

/// The next MQTT packet, reading as needed; `None` at the end of the stream.
pub(crate) async fn next(s: &mut TlsStream<TcpStream>, buf: &mut BytesMut) -> Option<Packet> {
    loop {
        match Packet::read(buf, MAX) {
            Ok(p) => return Some(p),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(n)) => {
                buf.reserve(n.max(64));
                if s.read_buf(buf).await.ok()? == 0 {
                    return None;
                }
            }
            Err(e) => panic!("bad packet from the hub: {e}"),
        }
    }
}

/// CONNECT, then CONNACK (accepted).
pub(crate) async fn mqtt_connect(s: &mut TlsStream<TcpStream>, id: &str, read: &mut BytesMut) {
    let mut w = BytesMut::with_capacity(256);
    connect_packet(id).write(&mut w, MAX).unwrap();
    s.write_all(&w).await.unwrap();
    match next(s, read).await {
        Some(Packet::ConnAck(a)) => {
            assert_eq!(a.code, rumqttc::mqttbytes::v4::ConnectReturnCode::Success);
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// DISCONNECT sealed in a record ahead of close_notify (one write), then shutdown.
pub(crate) async fn mqtt_close(mut s: TlsStream<TcpStream>) {
    std::io::Write::write_all(&mut s.get_mut().1.writer(), &[0xE0, 0]).unwrap();
    let _ = s.shutdown().await;
}

/// One whole MQTT session without messages: TCP, TLS, CONNECT/CONNACK, DISCONNECT.
pub(crate) async fn mqtt_session(port: u16, devices: Arc<Vec<Device>>, i: usize) {
    let (id, cfg) = &devices[i];
    let mut s = tls(port, cfg).await;
    let mut read = BytesMut::with_capacity(512);
    mqtt_connect(&mut s, id, &mut read).await;
    mqtt_close(s).await;
}

/// One whole MQTT session as `mqtt_session`, but through fleetbench's own transport and MQTT
/// session (`FLEETBENCH_BENCH_BARE=stack`): what those layers cost apart from the load engine.
pub(crate) async fn mqtt_session_stack(
    port: u16,
    devices: Arc<Vec<Device>>,
    i: usize,
    opts: fleetbench::protocol::MqttOptions,
) {
    let (id, cfg) = &devices[i];
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let tcp = fleetbench::transport::tcp_connect(addr, None)
        .await
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let (tls, _wire) = Box::pin(fleetbench::transport::tls_handshake_counted(
        cfg.clone(),
        name,
        tcp,
        false,
    ))
    .await
    .unwrap();
    let s = Box::pin(fleetbench::protocol::MqttSession::connect(
        fleetbench::transport::MaybeWs::Plain(tls),
        opts,
        id,
        "localhost",
    ))
    .await
    .unwrap();
    Box::pin(s.close()).await;
}

/// Readings in hundredths from a random `r`: temperature 20..35, humidity 60..80.
fn readings(r: u32) -> (u32, u32, &'static str) {
    let (t, h) = (2000 + r % 1501, 6000 + (r / 1501) % 2001);
    (t, h, if t > 3000 { "true" } else { "false" })
}

/// The tutorial's message `n` of device `id` as fleetbench sends it over MQTT: the same topic
/// with its property bag, the same JSON body (readings from `r`).
pub(crate) fn tutorial_publish(id: &str, n: u32, r: u32, pkid: u16) -> Publish {
    let (t, h, alert) = readings(r);
    let topic = format!(
        "devices/{id}/messages/events/%24.mid={id}-{n}&%24.ct=application%2Fjson&%24.ce=utf-8&temperatureAlert={alert}"
    );
    let mut p = Publish::from_bytes(topic, QoS::AtLeastOnce, body(id, n, t, h));
    p.pkid = pkid;
    p
}

/// The tutorial's JSON body, readings in hundredths.
fn body(id: &str, n: u32, t: u32, h: u32) -> Bytes {
    Bytes::from(format!(
        r#"{{"deviceId":"{id}","messageId":{n},"temperature":{}.{:02},"humidity":{}.{:02}}}"#,
        t / 100,
        t % 100,
        h / 100,
        h % 100
    ))
}

/// The tutorial's message as the IoT Hub SDKs send it over AMQP (as fleetbench does).
pub(crate) fn tutorial_message(id: &str, n: u32, r: u32) -> Message<Data> {
    let (t, h, alert) = readings(r);
    Message::builder()
        .properties(
            Properties::builder()
                .message_id(format!("{id}-{n}"))
                .content_type("application/json")
                .content_encoding("utf-8")
                .build(),
        )
        .application_properties(
            ApplicationProperties::builder()
                .insert("temperatureAlert", alert)
                .build(),
        )
        .data(Binary::from(body(id, n, t, h).to_vec()))
        .build()
}

/// An attached AMQP sender with its session and connection.
pub(crate) struct AmqpLink {
    pub(crate) connection: fe2o3_amqp::connection::ConnectionHandle<()>,
    pub(crate) session: fe2o3_amqp::session::SessionHandle<()>,
    pub(crate) sender: fe2o3_amqp::Sender,
}

/// IoT Hub's AMQP open/begin/attach over `stream`, as fleetbench's sessions do.
pub(crate) async fn amqp_attach<S>(stream: S, id: &str) -> AmqpLink
where
    S: AsyncRead + AsyncWrite + std::fmt::Debug + Send + Unpin + 'static,
{
    let mut connection = fe2o3_amqp::Connection::builder()
        .container_id(id)
        .hostname("localhost")
        .max_frame_size(65_536u32)
        .channel_max(8_191u16)
        .open_with_stream(stream)
        .await
        .unwrap();
    let mut session = fe2o3_amqp::Session::builder()
        .begin(&mut connection)
        .await
        .unwrap();
    let mut props = fe2o3_amqp::types::definitions::Fields::new();
    props.insert(
        Symbol::from("com.microsoft:client-version"),
        Value::String("fleetbench/0.1.0".into()),
    );
    props.insert(
        Symbol::from("com.microsoft:api-version"),
        Value::String("2021-04-12".into()),
    );
    let sender = fe2o3_amqp::Sender::builder()
        .name(format!("link-snd-{id}"))
        .target(format!("/devices/{id}/messages/events"))
        .sender_settle_mode(fe2o3_amqp::types::definitions::SenderSettleMode::Unsettled)
        .properties(props)
        .attach(&mut session)
        .await
        .unwrap();
    AmqpLink {
        connection,
        session,
        sender,
    }
}

impl AmqpLink {
    /// Detach, end, close (as fleetbench's close).
    pub(crate) async fn close(mut self) {
        let _ = self.sender.close().await;
        let _ = self.session.end().await;
        let _ = self.connection.close().await;
    }
}

/// One whole AMQP session without messages: TCP, TLS, open/begin/attach, then detach/end/close
/// in a task of `closing` (fe2o3's close waits for the hub's answers), so that the caller's next
/// session starts at once, as fleetbench's next does once a session is connected.
pub(crate) async fn amqp_session(
    port: u16,
    devices: Arc<Vec<Device>>,
    i: usize,
    closing: tokio_util::task::TaskTracker,
) {
    let (id, cfg) = &devices[i];
    let s = tls(port, cfg).await;
    closing.spawn(amqp_attach(s, id).await.close());
}

/// Counts of a stream's writes and flushes.
#[derive(Debug, Default)]
pub(crate) struct IoCounts {
    pub(crate) writes: AtomicU64,
    pub(crate) flushes: AtomicU64,
}

/// A stream that counts the writes and flushes made on it (the AMQP engine's pattern).
#[derive(Debug)]
pub(crate) struct Counting<S> {
    pub(crate) inner: S,
    pub(crate) counts: Arc<IoCounts>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(_))) {
            self.counts.writes.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            self.counts.flushes.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
