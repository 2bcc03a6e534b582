//! MQTT 5 on the same wire as 3.1.1, with rumqttc's v5 codec: CONNECT properties, the
//! message's properties as user properties, an optional topic alias, and reason codes named
//! and counted by code. Throttling codes (server busy, message rate too high, quota exceeded,
//! connection rate exceeded) are throttling, as IoT Hub's AMQP throttling condition is.

use bytes::{Buf as _, BytesMut};
use rumqttc::v5::mqttbytes::v5::{
    check, ConnAck, Connect, ConnectProperties, ConnectReturnCode, Disconnect,
    DisconnectReasonCode, Login, Packet, PubRel, Publish, PublishProperties,
};
use rumqttc::v5::mqttbytes::QoS as QoS5;

use super::wire::{Decode, Wire};
use super::{QoS, Step};
use crate::metrics::mqtt5_throttling;
use crate::protocol::{SessionError, Telemetry};

/// The MQTT 5 settings of a session (scenario keys under `[protocol]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V5Options {
    /// CONNECT session expiry interval, seconds (0: the session ends with the connection).
    pub session_expiry_secs: u32,
    /// CONNECT receive maximum: QoS 1 and 2 PUBLISHes the broker may have in flight to us.
    pub receive_maximum: u16,
    /// CONNECT maximum packet size: the largest packet we accept from the broker.
    pub max_packet_size: u32,
    /// Publish with a topic alias (when the broker's CONNACK allows one).
    pub topic_alias: bool,
}

/// What a session learnt from the broker's CONNACK.
#[derive(Debug, Clone)]
pub(super) struct Granted {
    /// The broker's receive maximum: QoS 1 and 2 PUBLISHes it takes unacknowledged.
    pub(super) receive_maximum: u16,
    /// The topic alias in use, and the topic the broker was last told it stands for.
    alias: Option<(u16, Option<String>)>,
    /// The largest packet we accept.
    pub(super) max_packet_size: usize,
}

/// The error for a packet the v5 codec refused.
pub(super) fn codec_error(e: rumqttc::v5::mqttbytes::Error) -> SessionError {
    SessionError::Protocol(e.to_string())
}

/// The words for an MQTT 5 reason code (MQTT 5.0, 2.4).
pub fn reason_name(code: u8) -> &'static str {
    match code {
        0x00 => "success",
        0x04 => "disconnect with will message",
        0x10 => "no matching subscribers",
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x83 => "implementation specific error",
        0x84 => "unsupported protocol version",
        0x85 => "client identifier not valid",
        0x86 => "bad user name or password",
        0x87 => "not authorized",
        0x88 => "server unavailable",
        0x89 => "server busy",
        0x8A => "banned",
        0x8B => "server shutting down",
        0x8C => "bad authentication method",
        0x8D => "keep alive timeout",
        0x8E => "session taken over",
        0x90 => "topic name invalid",
        0x91 => "packet identifier in use",
        0x92 => "packet identifier not found",
        0x93 => "receive maximum exceeded",
        0x94 => "topic alias invalid",
        0x95 => "packet too large",
        0x96 => "message rate too high",
        0x97 => "quota exceeded",
        0x98 => "administrative action",
        0x99 => "payload format invalid",
        0x9A => "retain not supported",
        0x9B => "QoS not supported",
        0x9C => "use another server",
        0x9D => "server moved",
        0x9F => "connection rate exceeded",
        0xA0 => "maximum connect time",
        _ => "unknown reason code",
    }
}

/// `"<packet> 0x<code> (<words>)"`; a throttling code says `throttled` (which is how the
/// load loop and the failure counts recognise it).
pub fn reason_text(packet: &str, code: u8) -> String {
    let words = reason_name(code);
    if mqtt5_throttling(code) {
        format!("{packet} 0x{code:02X} ({words}: throttled)")
    } else {
        format!("{packet} 0x{code:02X} ({words})")
    }
}

/// A refusal of the session by reason code: throttling or not.
fn refusal(packet: &str, code: u8) -> SessionError {
    let text = reason_text(packet, code);
    if mqtt5_throttling(code) {
        SessionError::Throttled(text)
    } else {
        SessionError::Refused(text)
    }
}

/// The code of a CONNACK reason (rumqttc keeps its own table private).
fn connack_code(code: ConnectReturnCode) -> u8 {
    use ConnectReturnCode as C;
    match code {
        C::Success => 0x00,
        C::UnspecifiedError => 0x80,
        C::MalformedPacket => 0x81,
        C::ProtocolError => 0x82,
        C::ImplementationSpecificError => 0x83,
        C::UnsupportedProtocolVersion | C::RefusedProtocolVersion => 0x84,
        C::ClientIdentifierNotValid | C::BadClientId => 0x85,
        C::BadUserNamePassword => 0x86,
        C::NotAuthorized => 0x87,
        C::ServerUnavailable | C::ServiceUnavailable => 0x88,
        C::ServerBusy => 0x89,
        C::Banned => 0x8A,
        C::BadAuthenticationMethod => 0x8C,
        C::TopicNameInvalid => 0x90,
        C::PacketTooLarge => 0x95,
        C::QuotaExceeded => 0x97,
        C::PayloadFormatInvalid => 0x99,
        C::RetainNotSupported => 0x9A,
        C::QoSNotSupported => 0x9B,
        C::UseAnotherServer => 0x9C,
        C::ServerMoved => 0x9D,
        C::ConnectionRateExceeded => 0x9F,
    }
}

/// A refusal text for an acknowledgement's code; `None` for success (below 0x80, e.g.
/// 0x10 no matching subscribers: the broker took the message).
fn refused(packet: &str, code: u8) -> Option<String> {
    (code >= 0x80).then(|| reason_text(packet, code))
}

fn qos5(qos: QoS) -> QoS5 {
    match qos {
        QoS::AtMostOnce => QoS5::AtMostOnce,
        QoS::AtLeastOnce => QoS5::AtLeastOnce,
        QoS::ExactlyOnce => QoS5::ExactlyOnce,
    }
}

/// The v5 CONNECT of the 3.1.1 one `v4` (same client id, login, keep-alive, clean flag) with
/// the properties of `o`.
pub(super) fn connect_packet(o: &V5Options, v4: rumqttc::mqttbytes::v4::Connect) -> Packet {
    let mut properties = ConnectProperties::new();
    properties.session_expiry_interval = Some(o.session_expiry_secs);
    properties.receive_maximum = Some(o.receive_maximum);
    properties.max_packet_size = Some(o.max_packet_size);
    let connect = Connect {
        keep_alive: v4.keep_alive,
        client_id: v4.client_id,
        clean_start: v4.clean_session,
        properties: Some(properties),
    };
    let login = v4.login.map(|l| Login::new(l.username, l.password));
    Packet::Connect(connect, None, login)
}

/// Sends CONNECT and reads CONNACK: a reason code of 0x80 or more refuses the session
/// (throttling codes as throttling); a maximum QoS below ours is refused here rather than
/// by a disconnect at the first message.
pub(super) async fn connect<S>(
    wire: &mut Wire<S>,
    o: &V5Options,
    v4: rumqttc::mqttbytes::v4::Connect,
    qos: QoS,
) -> Result<Granted, SessionError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    wire.send(&connect_packet(o, v4)).await?;
    let max = o.max_packet_size as usize;
    let ConnAck {
        code, properties, ..
    } = match wire.next_frame::<Incoming>(max).await {
        Some(Ok(Incoming::Packet(p))) => match *p {
            Packet::ConnAck(ack) => ack,
            other => {
                return Err(SessionError::Protocol(format!(
                    "expected CONNACK, got {other:?}"
                )))
            }
        },
        Some(Ok(other)) => {
            return Err(SessionError::Protocol(format!(
                "expected CONNACK, got {other:?}"
            )))
        }
        Some(Err(e)) => return Err(e),
        None => return Err(SessionError::Closed),
    };
    let code = connack_code(code);
    if code >= 0x80 {
        return Err(refusal("CONNACK", code));
    }
    let p = properties.as_ref();
    if let Some(m) = p.and_then(|p| p.max_qos).filter(|m| *m < qos as u8) {
        return Err(SessionError::Refused(format!(
            "CONNACK maximum QoS {m} is below the scenario's qos = {}",
            qos as u8
        )));
    }
    let alias_max = p.and_then(|p| p.topic_alias_max).unwrap_or(0);
    Ok(Granted {
        // Absent means 65,535 (MQTT 5.0, 3.2.2.3.3); zero is a protocol error we tolerate as 1.
        receive_maximum: p.and_then(|p| p.receive_max).unwrap_or(u16::MAX).max(1),
        alias: (o.topic_alias && alias_max >= 1).then_some((1, None)),
        max_packet_size: max,
    })
}

impl Granted {
    /// The PUBLISH of `msg` on `topic`: the message's content type as its content type, its
    /// application properties (and content encoding and id) as user properties. With a topic
    /// alias, a topic goes out once and the alias alone after it while the topic stays.
    pub(super) fn publish(
        &mut self,
        topic: String,
        msg: &Telemetry,
        qos: QoS,
        pkid: u16,
    ) -> Packet {
        let mut user_properties: Vec<(String, String)> = msg
            .properties
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        user_properties.push(("message-id".to_owned(), msg.message_id.clone()));
        if let Some(ce) = msg.content_encoding {
            user_properties.push(("content-encoding".to_owned(), ce.to_owned()));
        }
        let mut topic = topic;
        let topic_alias = self.alias.as_mut().map(|(alias, told)| {
            // The same topic as last time goes as the alias alone; another one rebinds it.
            if told.as_ref() == Some(&topic) {
                topic.clear();
            } else {
                *told = Some(topic.clone());
            }
            *alias
        });
        let properties = PublishProperties {
            content_type: msg.content_type.map(str::to_owned),
            user_properties,
            topic_alias,
            ..PublishProperties::default()
        };
        let mut publish = Publish::new(topic, qos5(qos), msg.body.clone(), Some(properties));
        publish.pkid = pkid;
        Packet::Publish(publish)
    }
}

/// A packet from the broker as a v5 session reads it: acknowledgements with their reason code
/// as sent (rumqttc refuses codes outside its tables, and Mosquitto 2.0 answers an oversize
/// PUBLISH with PUBACK 0x95), the rest through rumqttc.
#[derive(Debug)]
pub(super) enum Incoming {
    /// PUBACK (0x40), PUBREC (0x50) or PUBCOMP (0x70): first byte, packet id, reason code.
    Ack(u8, u16, u8),
    /// Any other packet (boxed: rare, and ten times an acknowledgement's size).
    Packet(Box<Packet>),
}

impl Decode for Incoming {
    fn decode(buf: &mut BytesMut, max: usize) -> Result<Self, Result<usize, SessionError>> {
        use rumqttc::v5::mqttbytes::Error;
        if let Some(d) = short_disconnect(buf) {
            return Ok(Self::Packet(Box::new(d)));
        }
        // Whether the frame is whole is asked first: rumqttc's readers also say "insufficient
        // bytes" for a whole packet they find short inside, which must not wait for more.
        let max = u32::try_from(max).ok();
        let header = match check(buf.iter(), max) {
            Ok(h) => h,
            Err(Error::InsufficientBytes(n)) => return Err(Ok(n)),
            Err(e) => return Err(Err(codec_error(e))),
        };
        let first = buf[0];
        if !matches!(first, 0x40 | 0x50 | 0x70) {
            return Packet::read(buf, max)
                .map(|p| Self::Packet(Box::new(p)))
                .map_err(|e| Err(codec_error(e)));
        }
        let frame = buf.split_to(header.frame_length());
        // The remaining length's bytes end at the first without the continuation bit; `check`
        // found them well formed and the frame whole.
        let start = 2 + frame[1..].iter().position(|b| b & 0x80 == 0).unwrap_or(0);
        match frame[start..] {
            // No reason code: success (MQTT 5.0, 3.4.2.1).
            [hi, lo] => Ok(Self::Ack(first, u16::from_be_bytes([hi, lo]), 0)),
            [hi, lo, code, ..] => Ok(Self::Ack(first, u16::from_be_bytes([hi, lo]), code)),
            _ => Err(Err(SessionError::Protocol(format!(
                "acknowledgement 0x{first:02X} without a packet id"
            )))),
        }
    }
}

/// What one packet from the broker means to the acknowledgement loop.
pub(super) fn step(packet: Incoming) -> Result<Step, SessionError> {
    let packet = match packet {
        Incoming::Ack(0x40, pkid, code) => return Ok(Step::PubAck(pkid, refused("PUBACK", code))),
        Incoming::Ack(0x50, pkid, code) => return Ok(Step::PubRec(pkid, refused("PUBREC", code))),
        Incoming::Ack(_, pkid, code) => return Ok(Step::PubComp(pkid, refused("PUBCOMP", code))),
        Incoming::Packet(p) => *p,
    };
    Ok(match packet {
        Packet::PingResp(_) => Step::Ping,
        // A normal disconnection by the broker is a close; a failure code says why.
        Packet::Disconnect(d) => match d.reason_code as u8 {
            code @ 0x80.. => return Err(refusal("DISCONNECT", code)),
            _ => return Err(SessionError::Closed),
        },
        other => Step::Unexpected(format!("{other:?}")),
    })
}

/// A DISCONNECT of at most a reason code, taken from the front of `buf`. MQTT 5 lets one end
/// after its reason code (3.14.2.2.1) or carry nothing (normal disconnection), and rumqttc
/// 0.25 reads neither form.
fn short_disconnect(buf: &mut BytesMut) -> Option<Packet> {
    let (code, len) = match buf.get(..2)? {
        [0xE0, 0] => (0, 2),
        [0xE0, 1] => (*buf.get(2)?, 3),
        _ => return None,
    };
    let reason = DisconnectReasonCode::try_from(code).ok()?;
    buf.advance(len);
    Some(Packet::Disconnect(Disconnect::new(reason)))
}

/// The PUBREL answering a PUBREC.
pub(super) fn pubrel(pkid: u16) -> Packet {
    Packet::PubRel(PubRel::new(pkid, None))
}

/// The polite DISCONNECT.
pub(super) fn disconnect() -> Packet {
    Packet::Disconnect(Disconnect::new(DisconnectReasonCode::NormalDisconnection))
}

/// PINGREQ.
pub(super) fn ping() -> Packet {
    Packet::PingReq(rumqttc::v5::mqttbytes::v5::PingReq)
}

#[cfg(test)]
mod tests;
