//! Unit tests of MQTT 5 sessions over an in-memory pipe: CONNECT properties, the receive
//! maximum as the in-flight cap, user properties and the topic alias, reason codes.

use rumqttc::v5::mqttbytes::v5::{ConnAckProperties, PubAck, PubAckReason};

use super::super::{MqttDialect, MqttOptions, MqttSession, MqttVersion};
use super::*;
use crate::protocol::Outcome;

fn options(qos: QoS) -> MqttOptions {
    MqttOptions {
        dialect: MqttDialect::Generic {
            topic: "fleet/{device_id}/telemetry".into(),
            client_id: "{device_id}".into(),
            username: None,
            password: None,
        },
        version: MqttVersion::V5(V5Options {
            session_expiry_secs: 30,
            receive_maximum: 100,
            max_packet_size: 4096,
            topic_alias: true,
        }),
        qos,
        keep_alive_secs: 60,
        clean_session: true,
        run_id: None,
    }
}

fn connack(code: ConnectReturnCode, receive_max: Option<u16>) -> Packet {
    let properties = ConnAckProperties {
        session_expiry_interval: None,
        receive_max,
        max_qos: None,
        retain_available: None,
        max_packet_size: None,
        assigned_client_identifier: None,
        topic_alias_max: Some(10),
        reason_string: None,
        user_properties: Vec::new(),
        wildcard_subscription_available: None,
        subscription_identifiers_available: None,
        shared_subscription_available: None,
        server_keep_alive: None,
        response_information: None,
        server_reference: None,
        authentication_method: None,
        authentication_data: None,
    };
    Packet::ConnAck(ConnAck {
        session_present: false,
        code,
        properties: Some(properties),
    })
}

const MSG_PROPERTIES: &[(&str, &str)] = &[("temperatureAlert", "true")];

fn message() -> Telemetry {
    Telemetry {
        message_id: "m-1".into(),
        body: bytes::Bytes::from_static(b"{}"),
        content_type: Some("application/json"),
        content_encoding: Some("utf-8"),
        properties: MSG_PROPERTIES,
        sent_us: None,
    }
}

/// The next packet the broker side reads (none of them an acknowledgement).
async fn packet(broker: &mut Wire<tokio::io::DuplexStream>) -> Packet {
    match broker.next_frame::<Incoming>(4096).await {
        Some(Ok(Incoming::Packet(p))) => *p,
        other => panic!("{other:?}"),
    }
}

/// Connects a session to an in-memory broker that answers CONNACK with `code`.
async fn connected(
    code: ConnectReturnCode,
    receive_max: Option<u16>,
) -> (
    Result<MqttSession<tokio::io::DuplexStream>, SessionError>,
    Wire<tokio::io::DuplexStream>,
) {
    let (client, broker) = tokio::io::duplex(8192);
    let mut broker = Wire::new(broker);
    let answer = async {
        let Packet::Connect(c, _, _) = packet(&mut broker).await else {
            panic!("no CONNECT")
        };
        let p = c.properties.unwrap();
        assert_eq!(
            (
                p.session_expiry_interval,
                p.receive_maximum,
                p.max_packet_size
            ),
            (Some(30), Some(100), Some(4096))
        );
        broker.send(&connack(code, receive_max)).await.unwrap();
    };
    let o = options(QoS::AtLeastOnce);
    let (session, ()) = tokio::join!(MqttSession::connect(client, o, "d1", "h"), answer);
    (session, broker)
}

#[tokio::test]
async fn properties_alias_receive_maximum_and_puback_codes() {
    let (session, mut broker) = connected(ConnectReturnCode::Success, Some(2)).await;
    let mut session = session.unwrap();
    assert_eq!(session.inflight_cap(), 2);
    for _ in 0..3 {
        session.send(&message()).unwrap();
    }
    session.flush().await.unwrap();
    let mut pkids = Vec::new();
    for i in 0..3 {
        let Packet::Publish(p) = packet(&mut broker).await else {
            panic!("no PUBLISH")
        };
        let props = p.properties.unwrap();
        // The topic goes out once; the alias stands for it after that.
        let topic = if i == 0 {
            &b"fleet/d1/telemetry"[..]
        } else {
            b""
        };
        assert_eq!((&p.topic[..], props.topic_alias), (topic, Some(1)));
        assert_eq!(props.content_type.as_deref(), Some("application/json"));
        assert!(props
            .user_properties
            .contains(&("temperatureAlert".into(), "true".into())));
        pkids.push(p.pkid);
    }
    // 0x10 no matching subscribers is a success; 0x87 and 0x97 are refusals by code, 0x97
    // (quota exceeded) as throttling.
    for (pkid, reason) in pkids.iter().zip([
        PubAckReason::NoMatchingSubscribers,
        PubAckReason::NotAuthorized,
        PubAckReason::QuotaExceeded,
    ]) {
        let mut ack = PubAck::new(*pkid, None);
        ack.reason = reason;
        broker.send(&Packet::PubAck(ack)).await.unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(session.next_ack().await.unwrap().outcome);
    }
    assert_eq!(
        got,
        [
            Outcome::Accepted,
            Outcome::Refused("PUBACK 0x87 (not authorized)".into()),
            Outcome::Refused("PUBACK 0x97 (quota exceeded: throttled)".into()),
        ]
    );
    // A code outside rumqttc's table (Mosquitto's answer to an oversize PUBLISH) is counted
    // by its code too.
    session.send(&message()).unwrap();
    session.flush().await.unwrap();
    let Packet::Publish(p) = packet(&mut broker).await else {
        panic!("no PUBLISH")
    };
    let [hi, lo] = p.pkid.to_be_bytes();
    tokio::io::AsyncWriteExt::write_all(&mut broker.io, &[0x40, 0x03, hi, lo, 0x95])
        .await
        .unwrap();
    assert_eq!(
        session.next_ack().await.unwrap().outcome,
        Outcome::Refused("PUBACK 0x95 (packet too large)".into())
    );
    // A broker's DISCONNECT with a throttling code is throttling. It ends after its reason
    // code, as MQTT 5 allows (rumqttc's own writer adds a byte its length does not count).
    tokio::io::AsyncWriteExt::write_all(&mut broker.io, &[0xE0, 0x01, 0x89])
        .await
        .unwrap();
    let e = session.next_ack().await.unwrap_err();
    assert!(
        matches!(&e, SessionError::Throttled(t) if t == "DISCONNECT 0x89 (server busy: throttled)"),
        "{e:?}"
    );
}

#[tokio::test]
async fn connack_codes_refuse_and_throttle_by_code() {
    let (session, _broker) = connected(ConnectReturnCode::NotAuthorized, None).await;
    let e = session.unwrap_err();
    assert!(
        matches!(&e, SessionError::Refused(t) if t == "CONNACK 0x87 (not authorized)"),
        "{e:?}"
    );
    let (session, _broker) = connected(ConnectReturnCode::ConnectionRateExceeded, None).await;
    let e = session.unwrap_err();
    assert_eq!(e.kind(), crate::metrics::FailureKind::Throttled, "{e:?}");
    // No receive maximum in CONNACK: 65,535.
    let (session, _broker) = connected(ConnectReturnCode::Success, None).await;
    assert_eq!(session.unwrap().inflight_cap(), 65_535);
}
