//! Events in and out: the properties of what a device sent (an MQTT property bag, an AMQP
//! message's sections), and the AMQP message a reader of the endpoint receives, with IoT Hub's
//! annotations (`iothub-connection-device-id`, `iothub-enqueuedtime`, ...) and Event Hubs'
//! (`x-opt-sequence-number`, `x-opt-offset`, `x-opt-enqueued-time`).

use bytes::Bytes;
use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::message::__private::Deserializable;
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Body, Data, Message, MessageAnnotations, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Symbol, Timestamp, Value};
use percent_encoding::percent_decode_str;

use super::Event;

/// IoT Hub's batched message format (C SDK `AMQP_BATCHING_FORMAT_CODE`).
const BATCHED_FORMAT: u32 = 0x8001_3700;

/// What IoT Hub stamps as the authentication method of an X.509 device (its documented form).
const AUTH_METHOD: &str = r#"{"scope":"device","type":"x509","issuer":"iothub"}"#;

/// A message's properties as received: an MQTT bag kept raw until a reader needs it.
#[derive(Debug, Clone)]
pub(super) enum Props {
    /// The topic after `devices/{id}/messages/events` (`/` and the `&`-joined bag).
    Bag(Box<str>),
    /// Already parsed (AMQP).
    Parsed(Box<Parsed>),
}

/// The properties a reader receives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Parsed {
    pub(super) message_id: Option<String>,
    pub(super) content_type: Option<String>,
    pub(super) content_encoding: Option<String>,
    pub(super) properties: Vec<(String, String)>,
}

impl Props {
    pub(super) fn parse(&self) -> Parsed {
        match self {
            Self::Parsed(p) => (**p).clone(),
            Self::Bag(bag) => parse_bag(bag),
        }
    }
}

/// IoT Hub's property bag: `$.mid`, `$.ct`, `$.ce` (also `%24.`) are system properties, the rest
/// application properties; names and values percent-decoded once.
fn parse_bag(bag: &str) -> Parsed {
    let mut out = Parsed::default();
    let bag = bag.trim_start_matches('/').trim_end_matches('/');
    for kv in bag.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let k = percent_decode_str(k).decode_utf8_lossy().into_owned();
        let v = percent_decode_str(v).decode_utf8_lossy().into_owned();
        match k.as_str() {
            "$.mid" => out.message_id = Some(v),
            "$.ct" => out.content_type = Some(v),
            "$.ce" => out.content_encoding = Some(v),
            s if s.starts_with("$.") => {}
            _ => out.properties.push((k, v)),
        }
    }
    out
}

impl Event {
    /// The events of an AMQP delivery: one, or one per data section of an IoT Hub batch (each
    /// section is an encoded message: its body and properties are read from it).
    pub(crate) fn amqp(
        device: &str,
        message: &Message<Body<Value>>,
        format: Option<u32>,
    ) -> Vec<Self> {
        if let (Some(BATCHED_FORMAT), Body::Data(batch)) = (format, &message.body) {
            return batch
                .iter()
                .map(|d| {
                    match serde_amqp::from_slice::<Deserializable<Message<Body<Value>>>>(&d.0) {
                        Ok(Deserializable(inner)) => Self::amqp_one(device, &inner),
                        Err(_) => Self::new(
                            device,
                            Props::Parsed(Box::default()),
                            Bytes::copy_from_slice(&d.0),
                        ),
                    }
                })
                .collect();
        }
        vec![Self::amqp_one(device, message)]
    }

    fn amqp_one(device: &str, message: &Message<Body<Value>>) -> Self {
        let p = message.properties.as_ref();
        let parsed = Parsed {
            message_id: p.and_then(|p| p.message_id.as_ref()).map(|id| match id {
                MessageId::String(s) => s.clone(),
                MessageId::Ulong(n) => n.to_string(),
                other => format!("{other:?}"),
            }),
            content_type: p
                .and_then(|p| p.content_type.as_ref())
                .map(|s| s.as_str().to_owned()),
            content_encoding: p
                .and_then(|p| p.content_encoding.as_ref())
                .map(|s| s.as_str().to_owned()),
            properties: message
                .application_properties
                .as_ref()
                .map(|a| {
                    a.0.iter()
                        .filter_map(|(k, v)| match v {
                            SimpleValue::String(s) => Some((k.clone(), s.clone())),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        let body = match &message.body {
            Body::Data(batch) => {
                let mut out = Vec::new();
                for d in batch.iter() {
                    out.extend_from_slice(&d.0);
                }
                Bytes::from(out)
            }
            _ => Bytes::new(),
        };
        Self::new(device, Props::Parsed(Box::new(parsed)), body)
    }

    /// The message a reader of the endpoint receives.
    pub(super) fn to_message(&self) -> Message<Data> {
        let parsed = self.props.parse();
        let at = Value::Timestamp(Timestamp::from_milliseconds(self.enqueued_ms));
        let mut annotations = MessageAnnotations::builder();
        for (k, v) in [
            (
                "iothub-connection-device-id",
                Value::String(self.device.to_string()),
            ),
            (
                "iothub-connection-auth-method",
                Value::String(AUTH_METHOD.into()),
            ),
            (
                "iothub-connection-auth-generation-id",
                Value::String("0".into()),
            ),
            ("iothub-enqueuedtime", at.clone()),
            ("iothub-message-source", Value::String("Telemetry".into())),
            ("x-opt-sequence-number", Value::Long(self.seq as i64)),
            ("x-opt-offset", Value::String(self.seq.to_string())),
            ("x-opt-enqueued-time", at),
        ] {
            annotations = annotations.insert(OwnedKey::Symbol(Symbol::from(k)), v);
        }
        let mut props = Properties::builder();
        if let Some(id) = parsed.message_id {
            props = props.message_id(id);
        }
        if let Some(ct) = parsed.content_type {
            props = props.content_type(ct);
        }
        if let Some(ce) = parsed.content_encoding {
            props = props.content_encoding(ce);
        }
        let mut app = ApplicationProperties::builder();
        for (k, v) in parsed.properties {
            app = app.insert(k, v);
        }
        Message::builder()
            .message_annotations(annotations.build())
            .properties(props.build())
            .application_properties(app.build())
            .data(Binary::from(self.body.to_vec()))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_property_bag_splits_into_system_and_application_properties() {
        let p = parse_bag("/%24.mid=d1-7&%24.ct=application%2Fjson&fleetbench-run=ab12&x=a%20b/");
        assert_eq!(p.message_id.as_deref(), Some("d1-7"));
        assert_eq!(p.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            p.properties,
            vec![
                ("fleetbench-run".to_owned(), "ab12".to_owned()),
                ("x".to_owned(), "a b".to_owned())
            ]
        );
        assert_eq!(parse_bag(""), Parsed::default());
    }
}
