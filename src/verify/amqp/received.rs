//! A delivery as the accounting sees it: the device from IoT Hub's annotation, the message id,
//! the application properties as strings and the body's bytes.

use std::time::Instant;

use fe2o3_amqp::link::delivery::Delivery;
use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::{Body, Message, MessageId};
use fe2o3_amqp::types::primitives::{SimpleValue, Value};

use crate::verify::Received;

/// The annotation IoT Hub stamps with the sending device's id.
const DEVICE_ANNOTATION: &str = "iothub-connection-device-id";

/// A delivery as the accounting sees it.
pub(in crate::verify) fn to_received(delivery: &Delivery<Body<Value>>) -> Received {
    let at = Instant::now();
    let message = delivery.message();
    Received {
        device: annotation(message, DEVICE_ANNOTATION).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Symbol(s) => Some(s.as_str().to_owned()),
            _ => None,
        }),
        message_id: message
            .properties
            .as_ref()
            .and_then(|p| p.message_id.as_ref())
            .map(message_id_text),
        properties: message
            .application_properties
            .as_ref()
            .map(|p| {
                p.0.iter()
                    .map(|(k, v)| (k.clone(), simple_text(v)))
                    .collect()
            })
            .unwrap_or_default(),
        body: body_bytes(&message.body),
        at,
    }
}

fn annotation<'a>(message: &'a Message<Body<Value>>, name: &str) -> Option<&'a Value> {
    message
        .message_annotations
        .as_ref()?
        .0
        .iter()
        .find(|(k, _)| matches!(k, OwnedKey::Symbol(s) if s.as_str() == name))
        .map(|(_, v)| v)
}

/// A message id as text: strings as they are, numbers in decimal, UUIDs and binary in hex.
fn message_id_text(id: &MessageId) -> String {
    match id {
        MessageId::String(s) => s.clone(),
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => hex(u.as_inner()),
        MessageId::Binary(b) => hex(b),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An application property value as text (IoT Hub's are all strings).
fn simple_text(v: &SimpleValue) -> String {
    match v {
        SimpleValue::String(s) => s.clone(),
        SimpleValue::Symbol(s) => s.as_str().to_owned(),
        SimpleValue::Bool(b) => b.to_string(),
        SimpleValue::Ubyte(n) => n.to_string(),
        SimpleValue::Ushort(n) => n.to_string(),
        SimpleValue::Uint(n) => n.to_string(),
        SimpleValue::Ulong(n) => n.to_string(),
        SimpleValue::Byte(n) => n.to_string(),
        SimpleValue::Short(n) => n.to_string(),
        SimpleValue::Int(n) => n.to_string(),
        SimpleValue::Long(n) => n.to_string(),
        SimpleValue::Binary(b) => hex(b),
        other => format!("{other:?}"),
    }
}

/// The body's bytes: data sections concatenated; a binary or string value as its bytes.
fn body_bytes(body: &Body<Value>) -> bytes::Bytes {
    match body {
        Body::Data(batch) => {
            let mut out = Vec::with_capacity(batch.iter().map(|d| d.0.len()).sum());
            for d in batch.iter() {
                out.extend_from_slice(&d.0);
            }
            out.into()
        }
        Body::Value(v) => match &v.0 {
            Value::Binary(b) => bytes::Bytes::copy_from_slice(b),
            Value::String(s) => bytes::Bytes::copy_from_slice(s.as_bytes()),
            _ => bytes::Bytes::new(),
        },
        _ => bytes::Bytes::new(),
    }
}
