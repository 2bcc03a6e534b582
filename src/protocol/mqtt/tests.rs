//! Unit tests of the MQTT session: CONNECT forms, topics, the QoS 2 exchange.

use super::*;

fn iot_hub() -> MqttOptions {
    MqttOptions {
        dialect: MqttDialect::IotHub {
            api_version: "2021-04-12".into(),
        },
        version: MqttVersion::V311,
        qos: QoS::AtLeastOnce,
        keep_alive_secs: 60,
        clean_session: false,
        run_id: None,
    }
}

#[test]
fn iot_hub_username_and_client_id() {
    let c = iot_hub().connect_packet("dev1", "hub.azure-devices.net");
    assert_eq!(c.client_id, "dev1");
    let login = c.login.unwrap();
    assert!(login.username.starts_with(
        "hub.azure-devices.net/dev1/?api-version=2021-04-12&DeviceClientType=fleetbench%2F"
    ));
    assert!(login.password.is_empty());
    assert!(!c.clean_session);
}

#[test]
fn iot_hub_topic_has_the_encoded_property_bag() {
    let o = iot_hub();
    let msg = Telemetry {
        message_id: "m-1".into(),
        body: bytes::Bytes::new(),
        content_type: Some("application/json"),
        content_encoding: Some("utf-8"),
        properties: &[("temperatureAlert", "true")],
        sent_us: None,
    };
    assert_eq!(
        o.topic(&o.topic_base("dev1"), &msg),
        "devices/dev1/messages/events/%24.mid=m-1&%24.ct=application%2Fjson&%24.ce=utf-8&temperatureAlert=true"
    );
    let o = MqttOptions {
        run_id: Some("00ff00ff00ff00ff".into()),
        ..iot_hub()
    };
    assert!(o
        .topic(&o.topic_base("dev1"), &msg)
        .starts_with("devices/dev1/messages/events/%24.mid=m-1&fleetbench-run=00ff00ff00ff00ff&"));
    let stamped = Telemetry {
        sent_us: Some(1_700_000_000_123_456),
        ..msg
    };
    assert!(o
        .topic(&o.topic_base("dev1"), &stamped)
        .ends_with("&temperatureAlert=true&fleetbench-sent=1700000000123456"));
}

#[test]
fn generic_templates_render_the_device_id() {
    let o = MqttOptions {
        dialect: MqttDialect::Generic {
            topic: "fleet/{device_id}/telemetry".into(),
            client_id: "{device_id}".into(),
            username: None,
            password: None,
        },
        ..iot_hub()
    };
    assert_eq!(o.topic_base("d7"), "fleet/d7/telemetry");
    assert!(o.connect_packet("d7", "h").login.is_none());
}

#[test]
fn generic_username_and_password_render_the_device_id() {
    let o = MqttOptions {
        dialect: MqttDialect::Generic {
            topic: "t".into(),
            client_id: "{device_id}".into(),
            username: Some("user-{device_id}".into()),
            password: Some(Password("pw-{device_id}".into())),
        },
        ..iot_hub()
    };
    let login = o.connect_packet("d7", "h").login.unwrap();
    assert_eq!(
        (login.username.as_str(), login.password.as_str()),
        ("user-d7", "pw-d7")
    );
    assert_eq!(format!("{:?}", Password("s3cret".into())), "Password(..)");
}

/// The broker side of a QoS 2 exchange, packet by packet, over an in-memory pipe: the
/// session answers PUBREC with PUBREL (also after a cancelled `next_ack`) and acknowledges
/// on PUBCOMP only.
#[tokio::test]
async fn qos_2_acknowledges_on_pubcomp_after_answering_pubrec() {
    use rumqttc::mqttbytes::v4::{PubAck, PubComp, PubRec};

    let (client, broker) = tokio::io::duplex(4096);
    let mut broker = Wire::new(broker);
    let o = MqttOptions {
        qos: QoS::ExactlyOnce,
        ..iot_hub()
    };
    let answer = async {
        assert!(matches!(broker.next().await, Some(Ok(Packet::Connect(_)))));
        broker
            .send(&Packet::ConnAck(ConnAck::new(
                ConnectReturnCode::Success,
                false,
            )))
            .await
            .unwrap();
    };
    let (session, ()) = tokio::join!(MqttSession::connect(client, o, "d1", "h"), answer);
    let mut session = session.unwrap();
    let msg = Telemetry {
        message_id: "m".into(),
        body: bytes::Bytes::from_static(b"x"),
        content_type: None,
        content_encoding: None,
        properties: &[],
        sent_us: None,
    };
    assert_eq!(session.send(&msg).unwrap(), (0, false));
    session.flush().await.unwrap();
    let Some(Ok(Packet::Publish(p))) = broker.next().await else {
        panic!()
    };
    assert_eq!(p.qos, QoS::ExactlyOnce);
    broker
        .send(&Packet::PubRec(PubRec::new(p.pkid)))
        .await
        .unwrap();
    // No acknowledgement yet: the session answers PUBREC with PUBREL, and this `next_ack`
    // is cut off once the broker has it (as `select!` in the device loop may).
    let rel = tokio::select! {
        ack = session.next_ack() => panic!("acknowledged before PUBCOMP: {ack:?}"),
        rel = broker.next() => rel,
    };
    let Some(Ok(Packet::PubRel(rel))) = rel else {
        panic!("{rel:?}")
    };
    assert_eq!(rel.pkid, p.pkid);
    broker
        .send(&Packet::PubComp(PubComp::new(p.pkid)))
        .await
        .unwrap();
    let ack = session.next_ack().await.unwrap();
    assert_eq!((ack.seq, ack.outcome), (0, Outcome::Accepted));

    // A PUBACK is not how QoS 2 ends.
    session.send(&msg).unwrap();
    session.flush().await.unwrap();
    let Some(Ok(Packet::Publish(p))) = broker.next().await else {
        panic!()
    };
    broker
        .send(&Packet::PubAck(PubAck::new(p.pkid)))
        .await
        .unwrap();
    assert!(matches!(
        session.next_ack().await,
        Err(SessionError::Protocol(_))
    ));
}

#[test]
fn property_values_are_encoded_as_the_encoder_does_with_or_without_escapes() {
    for v in [
        "dev-01_a.b!~*'()",
        "application/json",
        "utf-8",
        "a b&c=d%e",
        "temp\u{e9}rature",
        "",
    ] {
        let mut fast = String::new();
        push_encoded(&mut fast, v);
        let slow: String = utf8_percent_encode(v, PROPERTY_BAG).collect();
        assert_eq!(fast, slow, "{v}");
    }
}

/// The size of the future `f` returns.
fn future_size<A, R, F: FnOnce(A) -> R>(_: &F) -> usize {
    size_of::<R>()
}

/// A session's close is boxed, so copied whole once when made: an MQTT session's must not
/// carry the room of fe2o3's AMQP close (some 5 KB), nor a session the room of an AMQP one.
#[test]
fn an_mqtt_close_does_not_carry_amqp_room() {
    type S = crate::transport::DeviceStream;
    let mqtt = future_size(&MqttSession::<S>::close);
    let any = future_size(&crate::protocol::Session::<S>::close);
    assert!(
        any < mqtt + 1024,
        "a session's close is {any} bytes, MQTT's {mqtt}"
    );
    let session = size_of::<crate::protocol::Session<S>>();
    assert!(
        session <= size_of::<MqttSession<S>>() + 16,
        "a session is {session} bytes"
    );
}
