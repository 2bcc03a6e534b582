//! MQTT 3.1.1 and 5 device sessions framed with rumqttc's `mqttbytes` codec over our own stream, so
//! that TCP, TLS and CONNACK are timed apart and the source address can be chosen.

use std::fmt;
use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rumqttc::mqttbytes::v4::{ConnAck, Connect, ConnectReturnCode, Login, Packet, PubRel, Publish};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};

pub use rumqttc::mqttbytes::QoS;

mod step;
mod v5;
mod wire;
use step::Step;
pub use v5::{reason_name, reason_text, V5Options};
use wire::Wire;

use super::{Ack, Outcome, SessionError, Telemetry};

/// Characters left as they are in an IoT Hub property bag (those of `encodeURIComponent`).
const PROPERTY_BAG: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Largest packet accepted from the hub: IoT Hub's 256 KiB message limit plus headers.
const MAX_INCOMING: usize = 300 * 1024;
/// Largest packet we write: the same bound, so an oversize test message still goes out.
const MAX_OUTGOING: usize = 1024 * 1024;

/// How topic, client id and username are formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MqttDialect {
    /// A generic broker: templates with `{device_id}`.
    Generic {
        /// Topic template, e.g. `fleet/{device_id}/telemetry`.
        topic: String,
        /// Client id template (default `{device_id}`).
        client_id: String,
        /// Username template, if a username is sent.
        username: Option<String>,
        /// Password template, sent with the username (brokers that want both).
        password: Option<Password>,
    },
    /// Azure IoT Hub's device conventions.
    IotHub {
        /// The `api-version` query value in the username.
        api_version: String,
    },
}

/// A password template (`{device_id}` is replaced). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// The MQTT protocol version a session speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MqttVersion {
    /// MQTT 3.1.1 (rumqttc's v4 codec).
    V311,
    /// MQTT 5 (rumqttc's v5 codec), with its CONNECT properties.
    V5(V5Options),
}

/// MQTT settings of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttOptions {
    /// Dialect.
    pub dialect: MqttDialect,
    /// Protocol version.
    pub version: MqttVersion,
    /// QoS of telemetry.
    pub qos: QoS,
    /// Keep-alive in seconds (0 = off).
    pub keep_alive_secs: u16,
    /// Clean-session flag (IoT Hub SDKs send false; the generic dialect defaults to true).
    pub clean_session: bool,
    /// The run's id, sent as the `fleetbench-run` property (IoT Hub dialect only: a generic
    /// MQTT 3.1.1 message has no properties).
    pub run_id: Option<Arc<str>>,
}

/// The IoT Hub username's `DeviceClientType`, percent-encoded once.
fn client_type() -> &'static str {
    static ENCODED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ENCODED.get_or_init(|| {
        utf8_percent_encode(
            concat!("fleetbench/", env!("CARGO_PKG_VERSION")),
            PROPERTY_BAG,
        )
        .to_string()
    })
}

/// Replaces `{device_id}` in a template.
pub fn render(template: &str, device_id: &str) -> String {
    template.replace("{device_id}", device_id)
}

impl MqttOptions {
    /// The CONNECT packet of `device_id` connecting to `host`.
    pub fn connect_packet(&self, device_id: &str, host: &str) -> Connect {
        let (client_id, username, password) = match &self.dialect {
            MqttDialect::IotHub { api_version } => (
                device_id.to_owned(),
                Some(format!(
                    "{host}/{device_id}/?api-version={api_version}&DeviceClientType={}",
                    client_type()
                )),
                // X.509 devices send a username and no password.
                String::new(),
            ),
            MqttDialect::Generic {
                client_id,
                username,
                password,
                ..
            } => (
                render(client_id, device_id),
                username.as_deref().map(|u| render(u, device_id)),
                password
                    .as_ref()
                    .map_or_else(String::new, |p| render(&p.0, device_id)),
            ),
        };
        let mut connect = Connect::new(client_id);
        connect.keep_alive = self.keep_alive_secs;
        connect.clean_session = self.clean_session;
        connect.login = username.map(|u| Login::new(u, password));
        connect
    }

    /// The part of the telemetry topic that does not change between messages.
    pub fn topic_base(&self, device_id: &str) -> String {
        match &self.dialect {
            MqttDialect::IotHub { .. } => format!("devices/{device_id}/messages/events/"),
            MqttDialect::Generic { topic, .. } => render(topic, device_id),
        }
    }

    /// The topic of one message: for IoT Hub, the base plus the property bag.
    fn topic(&self, base: &str, msg: &Telemetry) -> String {
        match self.dialect {
            MqttDialect::Generic { .. } => base.to_owned(),
            MqttDialect::IotHub { .. } => {
                let mut topic = String::with_capacity(base.len() + 96);
                topic.push_str(base);
                topic.push_str("%24.mid=");
                push_encoded(&mut topic, &msg.message_id);
                if let Some(run) = &self.run_id {
                    topic.push_str("&fleetbench-run=");
                    push_encoded(&mut topic, run);
                }
                if let Some(ct) = msg.content_type {
                    topic.push_str("&%24.ct=");
                    push_encoded(&mut topic, ct);
                }
                if let Some(ce) = msg.content_encoding {
                    topic.push_str("&%24.ce=");
                    push_encoded(&mut topic, ce);
                }
                for (k, v) in msg.properties {
                    topic.push('&');
                    push_encoded(&mut topic, k);
                    topic.push('=');
                    push_encoded(&mut topic, v);
                }
                if let Some(us) = msg.sent_us {
                    topic.push_str("&fleetbench-sent=");
                    topic.push_str(itoa::Buffer::new().format(us));
                }
                topic
            }
        }
    }
}

/// Appends `s` percent-encoded for a property bag. Built for every message: a value that needs
/// no escape (message ids, numbers, `utf-8`, most property names) is copied whole, and the
/// tutorial's content type is a constant; the encoder walks the rest.
fn push_encoded(topic: &mut String, s: &str) {
    if s.bytes().all(is_unreserved) {
        topic.push_str(s);
    } else if s == "application/json" {
        topic.push_str("application%2Fjson");
    } else {
        topic.extend(utf8_percent_encode(s, PROPERTY_BAG));
    }
}

/// The bytes [`PROPERTY_BAG`] leaves as they are.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// A connected MQTT session.
pub struct MqttSession<S> {
    wire: Wire<S>,
    /// The run's, shared by its sessions.
    options: Arc<MqttOptions>,
    topic_base: String,
    next_pkid: u16,
    next_seq: u64,
    /// The publishes awaiting their acknowledgement (PUBACK; QoS 2: PUBREC, then PUBCOMP).
    /// Few at a time.
    inflight: Vec<Inflight>,
    /// MQTT 5: what the broker's CONNACK granted; `None` for 3.1.1.
    v5: Option<v5::Granted>,
}

/// One publish awaiting its acknowledgement.
#[derive(Debug, Clone, Copy)]
struct Inflight {
    pkid: u16,
    seq: u64,
    /// QoS 2: PUBREC came and PUBREL was queued; PUBCOMP ends the exchange.
    released: bool,
}

impl<S> fmt::Debug for MqttSession<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttSession")
            .field("topic_base", &self.topic_base)
            .field("inflight", &self.inflight.len())
            .finish_non_exhaustive()
    }
}

/// The words for a CONNACK return code.
pub fn connack_text(code: ConnectReturnCode) -> String {
    let words = match code {
        ConnectReturnCode::Success => "accepted",
        ConnectReturnCode::RefusedProtocolVersion => "unacceptable protocol version",
        ConnectReturnCode::BadClientId => "identifier rejected",
        ConnectReturnCode::ServiceUnavailable => "server unavailable",
        ConnectReturnCode::BadUserNamePassword => "bad user name or password",
        ConnectReturnCode::NotAuthorized => "not authorized",
    };
    format!("CONNACK {} ({words})", code as u8)
}

fn codec_error(e: rumqttc::mqttbytes::Error) -> SessionError {
    SessionError::Protocol(e.to_string())
}

impl<S> MqttSession<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Sends CONNECT and waits for CONNACK; a non-zero return code is a refusal.
    pub async fn connect(
        stream: S,
        options: impl Into<Arc<MqttOptions>>,
        device_id: &str,
        host: &str,
    ) -> Result<Self, SessionError> {
        let options = options.into();
        let mut wire = Wire::new(stream);
        let v5 = match &options.version {
            // Boxed: MQTT 5's CONNECT and CONNACK, with their properties, would otherwise
            // widen every session's connect.
            MqttVersion::V5(o) => {
                let connect = options.connect_packet(device_id, host);
                Some(Box::pin(v5::connect(&mut wire, o, connect, options.qos)).await?)
            }
            MqttVersion::V311 => {
                // Encoded before the first await, so the packet is not held across it.
                wire.queue(&Packet::Connect(options.connect_packet(device_id, host)))?;
                Self::connack_v4(&mut wire).await?;
                None
            }
        };
        let topic_base = options.topic_base(device_id);
        Ok(Self {
            wire,
            options,
            topic_base,
            next_pkid: 1,
            next_seq: 0,
            // Grown by the first PUBLISH: a session without messages (churn) allocates none.
            inflight: Vec::new(),
            v5,
        })
    }

    /// Writes the queued MQTT 3.1.1 CONNECT and reads its CONNACK.
    async fn connack_v4(wire: &mut Wire<S>) -> Result<(), SessionError> {
        wire.flush().await?;
        match wire.next().await {
            Some(Ok(Packet::ConnAck(ConnAck { code, .. }))) => {
                if code != ConnectReturnCode::Success {
                    return Err(SessionError::Refused(connack_text(code)));
                }
            }
            Some(Ok(other)) => {
                return Err(SessionError::Protocol(format!(
                    "expected CONNACK, got {other:?}"
                )))
            }
            Some(Err(e)) => return Err(e),
            None => return Err(SessionError::Closed),
        }
        Ok(())
    }

    /// How many QoS 1 and 2 messages may await acknowledgement at once: an MQTT 5 broker's
    /// receive maximum (CONNACK); unbounded here for 3.1.1 and QoS 0.
    pub fn inflight_cap(&self) -> usize {
        match &self.v5 {
            Some(g) if self.options.qos != QoS::AtMostOnce => g.receive_maximum.into(),
            _ => usize::MAX,
        }
    }

    /// Queues one message; it goes out at the next [`Self::flush`]. QoS 0 messages are
    /// settled on write.
    pub fn send(&mut self, msg: &Telemetry) -> Result<(u64, bool), SessionError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let topic = self.options.topic(&self.topic_base, msg);
        let settled = self.options.qos == QoS::AtMostOnce;
        let pkid = if settled { 0 } else { self.next_pkid };
        match &mut self.v5 {
            Some(g) => {
                let publish = g.publish(topic, msg, self.options.qos, pkid);
                self.wire.queue(&publish)?;
            }
            None => {
                let mut publish = Publish::from_bytes(topic, self.options.qos, msg.body.clone());
                publish.pkid = pkid;
                self.wire.queue(&Packet::Publish(publish))?;
            }
        }
        if !settled {
            self.inflight.push(Inflight {
                pkid,
                seq,
                released: false,
            });
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        }
        Ok((seq, settled))
    }

    /// Writes every queued message.
    pub async fn flush(&mut self) -> Result<(), SessionError> {
        self.wire.flush().await
    }

    /// Waits for the next acknowledgement: PUBACK at QoS 1; at QoS 2 the whole exchange
    /// (PUBREC is answered with PUBREL here, PUBCOMP acknowledges). PINGRESP is absorbed.
    /// Cancel-safe: a PUBREL not yet written stays queued and goes out with the next flush.
    pub async fn next_ack(&mut self) -> Result<Ack, SessionError> {
        loop {
            // A PUBREL queued by an earlier (possibly cancelled) call goes out first.
            if self.wire.unflushed {
                self.wire.flush().await?;
            }
            let step = match &self.v5 {
                Some(g) => match self
                    .wire
                    .next_frame::<v5::Incoming>(g.max_packet_size)
                    .await
                {
                    Some(Ok(p)) => v5::step(p)?,
                    Some(Err(e)) => return Err(e),
                    None => return Err(SessionError::Closed),
                },
                None => match self.wire.next().await {
                    Some(Ok(p)) => Step::of_v4(p),
                    Some(Err(e)) => return Err(e),
                    None => return Err(SessionError::Closed),
                },
            };
            let exactly_once = self.options.qos == QoS::ExactlyOnce;
            match step {
                Step::PubAck(pkid, refused) if !exactly_once => {
                    let i = self.position(pkid, "PUBACK")?;
                    return Ok(self.take(i, refused));
                }
                Step::PubComp(pkid, refused) if exactly_once => {
                    let i = self.position(pkid, "PUBCOMP")?;
                    if !self.inflight[i].released {
                        return Err(SessionError::Protocol(format!(
                            "PUBCOMP before PUBREC for packet id {pkid}"
                        )));
                    }
                    return Ok(self.take(i, refused));
                }
                // MQTT 5: a PUBREC with a failure code ends the exchange (no PUBREL).
                Step::PubRec(pkid, Some(refused)) if exactly_once => {
                    let i = self.position(pkid, "PUBREC")?;
                    return Ok(self.take(i, Some(refused)));
                }
                Step::PubRec(pkid, None) if exactly_once => {
                    let i = self.position(pkid, "PUBREC")?;
                    // A repeated PUBREC is answered again (MQTT 3.1.1, 4.3.3).
                    self.inflight[i].released = true;
                    match self.v5 {
                        Some(_) => self.wire.queue(&v5::pubrel(pkid))?,
                        None => self.wire.queue(&Packet::PubRel(PubRel::new(pkid)))?,
                    }
                }
                Step::Ping => {}
                other => {
                    return Err(SessionError::Protocol(format!(
                        "unexpected packet from the hub: {}",
                        other.describe()
                    )))
                }
            }
        }
    }

    /// Where the publish with `pkid` is in flight; a protocol error if nothing awaits `what`.
    fn position(&self, pkid: u16, what: &str) -> Result<usize, SessionError> {
        self.inflight
            .iter()
            .position(|f| f.pkid == pkid)
            .ok_or_else(|| SessionError::Protocol(format!("{what} for unknown packet id {pkid}")))
    }

    /// Ends the exchange of the publish at `i`: its message is acknowledged, or refused
    /// with the reason given.
    fn take(&mut self, i: usize, refused: Option<String>) -> Ack {
        let f = self.inflight.swap_remove(i);
        Ack {
            seq: f.seq,
            outcome: refused.map_or(Outcome::Accepted, Outcome::Refused),
        }
    }

    /// Sends PINGREQ.
    pub async fn ping(&mut self) -> Result<(), SessionError> {
        match self.v5 {
            Some(_) => self.wire.send(&v5::ping()).await,
            None => self.wire.send(&Packet::PingReq).await,
        }
    }
}

/// A stream that can carry a last packet in the same write as its shutdown: a TLS stream
/// seals it in a record ahead of its close_notify, so that a DISCONNECT costs no write (and
/// no wake-up of the hub) of its own.
pub trait CloseWith {
    /// Takes `bytes` to go out with the shutdown; `false` if they must be written first.
    fn close_with(&mut self, bytes: &[u8]) -> bool;
}

impl<IO> CloseWith for tokio_rustls::client::TlsStream<IO> {
    fn close_with(&mut self, bytes: &[u8]) -> bool {
        std::io::Write::write_all(&mut self.get_mut().1.writer(), bytes).is_ok()
    }
}

impl<S: CloseWith + ?Sized> CloseWith for Box<S> {
    fn close_with(&mut self, bytes: &[u8]) -> bool {
        (**self).close_with(bytes)
    }
}

/// Over WebSockets the last packet goes in a binary message of its own: written first.
impl<S: CloseWith> CloseWith for crate::transport::MaybeWs<S> {
    fn close_with(&mut self, bytes: &[u8]) -> bool {
        match self {
            Self::Plain(s) => s.close_with(bytes),
            Self::Ws(_) => false,
        }
    }
}

impl<S> MqttSession<S>
where
    S: AsyncRead + AsyncWrite + CloseWith + Unpin + Send,
{
    /// Sends DISCONNECT and shuts the stream down.
    pub async fn close(mut self) {
        let queued = match self.v5 {
            Some(_) => self.wire.queue(&v5::disconnect()),
            None => self.wire.queue(&Packet::Disconnect),
        };
        if queued.is_err() {
            return;
        }
        if self.wire.io.close_with(&self.wire.write) {
            self.wire.write.clear();
        } else if self.wire.flush().await.is_err() {
            return;
        }
        let _ = self.wire.io.shutdown().await;
    }
}

#[cfg(test)]
mod tests;
