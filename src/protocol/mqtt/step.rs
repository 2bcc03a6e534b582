//! What one packet from the broker means to the acknowledgement loop, in either MQTT version.

use rumqttc::mqttbytes::v4::Packet;

/// What one packet from the broker means to [`super::MqttSession::next_ack`], in either version.
/// A refusal text is carried by a v5 reason code of 0x80 or more.
#[derive(Debug)]
pub(super) enum Step {
    PubAck(u16, Option<String>),
    PubRec(u16, Option<String>),
    PubComp(u16, Option<String>),
    Ping,
    Unexpected(String),
}

impl Step {
    pub(super) fn of_v4(packet: Packet) -> Self {
        match packet {
            Packet::PubAck(a) => Self::PubAck(a.pkid, None),
            Packet::PubRec(r) => Self::PubRec(r.pkid, None),
            Packet::PubComp(c) => Self::PubComp(c.pkid, None),
            Packet::PingResp => Self::Ping,
            other => Self::Unexpected(format!("{other:?}")),
        }
    }

    /// The packet, in words, for an error.
    pub(super) fn describe(self) -> String {
        match self {
            Self::PubAck(pkid, _) => format!("PUBACK for packet id {pkid}"),
            Self::PubRec(pkid, _) => format!("PUBREC for packet id {pkid}"),
            Self::PubComp(pkid, _) => format!("PUBCOMP for packet id {pkid}"),
            Self::Ping => "PINGRESP".to_owned(),
            Self::Unexpected(packet) => packet,
        }
    }
}
