//! The `$cbs` and `$management` request nodes of one connection: CBS `put-token` (a shared
//! access signature for the Event Hub) and `READ` of `com.microsoft:eventhub` and
//! `com.microsoft:partition`, answered on the node's reply link (AMQP management pattern).

use std::collections::HashSet;
use std::sync::Arc;

use fe2o3_amqp::types::messaging::{ApplicationProperties, Body, Message, Properties};
use fe2o3_amqp::types::primitives::{Array, OrderedMap, SimpleValue, Timestamp, Value};
use fe2o3_amqp::{Receiver, Sender};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::links::{Node, Reply};
use super::sas::{covers, verify};
use super::{EventHubs, Partition};
use crate::hub::Hub;

/// Sends a request node's replies on its reply link.
pub(super) async fn replies(mut sender: Sender, mut rx: mpsc::Receiver<Reply>) {
    while let Some(reply) = rx.recv().await {
        if sender.send(reply).await.is_err() {
            return;
        }
    }
}

/// What answers requests on `$cbs` or `$management`.
pub(super) struct Handler {
    pub(super) hub: Arc<Hub>,
    pub(super) tokens: Arc<Mutex<HashSet<String>>>,
    pub(super) plain: bool,
    pub(super) node: Node,
}

/// Answers each request on a request link through the node's reply channel.
pub(super) async fn requests(mut receiver: Receiver, handler: Handler, reply: mpsc::Sender<Reply>) {
    while let Ok(delivery) = receiver.recv::<Body<Value>>().await {
        let _ = receiver.accept(&delivery).await;
        let request = delivery.into_message();
        let app = request
            .application_properties
            .map(|a| a.0)
            .unwrap_or_default();
        let text = |k: &str| match app.get(k) {
            Some(SimpleValue::String(s)) => s.clone(),
            Some(SimpleValue::Symbol(s)) => s.as_str().to_owned(),
            _ => String::new(),
        };
        let body = match request.body {
            Body::Value(v) => v.0,
            _ => Value::Null,
        };
        let (status, why, value) = match handler.node {
            Node::Cbs => handler.put_token(&text("operation"), &text("name"), &body),
            _ => handler.read(
                &text("operation"),
                &text("type"),
                &text("name"),
                &text("partition"),
                &text("security_token"),
            ),
        };
        let props = request.properties.unwrap_or_default();
        let mut answer = Properties::builder();
        if let Some(id) = props.message_id {
            answer = answer.correlation_id(id);
        }
        if let Some(to) = props.reply_to {
            answer = answer.to(to);
        }
        let message = Message::builder()
            .properties(answer.build())
            .application_properties(
                ApplicationProperties::builder()
                    .insert("status-code", SimpleValue::Int(status))
                    .insert("status-description", why)
                    .build(),
            )
            .value(value)
            .build();
        if reply.send(message).await.is_err() {
            return;
        }
    }
}

impl Handler {
    /// CBS `put-token`: a shared access signature for the Event Hub (or the namespace).
    fn put_token(&self, operation: &str, name: &str, token: &Value) -> (i32, String, Value) {
        let eh = &self.hub.eventhubs;
        let Value::String(token) = token else {
            return (400, "the token is not a string".into(), Value::Null);
        };
        if operation != "put-token" {
            return (400, format!("unknown operation {operation:?}"), Value::Null);
        }
        match verify(token, &eh.key_name, &eh.key) {
            Ok(audience) if covers(&audience, &eh.entity) && covers(name, &eh.entity) => {
                self.tokens.lock().insert(eh.entity.to_ascii_lowercase());
                (202, "Accepted".into(), Value::Null)
            }
            Ok(audience) => (
                404,
                format!("the token's audience {audience:?} is not {:?}", eh.entity),
                Value::Null,
            ),
            Err(e) => (401, e.describe().into(), Value::Null),
        }
    }

    /// `$management` READ of `com.microsoft:eventhub` or `com.microsoft:partition`.
    fn read(
        &self,
        operation: &str,
        kind: &str,
        name: &str,
        partition: &str,
        token: &str,
    ) -> (i32, String, Value) {
        let eh = &self.hub.eventhubs;
        let token_ok = verify(token, &eh.key_name, &eh.key).is_ok_and(|a| covers(&a, &eh.entity));
        if !(self.plain || token_ok || self.tokens.lock().contains(&eh.entity.to_ascii_lowercase()))
        {
            return (401, "no valid security_token".into(), Value::Null);
        }
        if operation != "READ" || !name.eq_ignore_ascii_case(&eh.entity) {
            return (404, format!("no {operation} of {name:?} here"), Value::Null);
        }
        match kind {
            "com.microsoft:eventhub" => (200, "OK".into(), eventhub_info(eh)),
            "com.microsoft:partition" => match eh.partition(partition) {
                Some(p) => (200, "OK".into(), partition_info(eh, partition, p)),
                None => (404, format!("no partition {partition:?}"), Value::Null),
            },
            other => (404, format!("unknown type {other:?}"), Value::Null),
        }
    }
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    let mut m = OrderedMap::new();
    for (k, v) in entries {
        m.insert(Value::String(k.to_owned()), v);
    }
    Value::Map(m)
}

fn eventhub_info(eh: &EventHubs) -> Value {
    let ids: Vec<Value> = (0..eh.partition_count())
        .map(|i| Value::String(i.to_string()))
        .collect();
    map(vec![
        ("name", Value::String(eh.entity.clone())),
        ("type", Value::String("com.microsoft:eventhub".into())),
        (
            "created_at",
            Value::Timestamp(Timestamp::from_milliseconds(eh.created_ms)),
        ),
        (
            "partition_count",
            Value::Int(i32::try_from(ids.len()).unwrap_or(i32::MAX)),
        ),
        ("partition_ids", Value::Array(Array::from(ids))),
    ])
}

fn partition_info(eh: &EventHubs, id: &str, p: &Partition) -> Value {
    let (first, last) = p.state();
    let (last_seq, last_ms) = last.map_or((-1, 0), |e| (e.seq as i64, e.enqueued_ms));
    map(vec![
        ("name", Value::String(eh.entity.clone())),
        ("type", Value::String("com.microsoft:partition".into())),
        ("partition", Value::String(id.to_owned())),
        ("begin_sequence_number", Value::Long(first as i64)),
        ("last_enqueued_sequence_number", Value::Long(last_seq)),
        (
            "last_enqueued_offset",
            Value::String(last_seq.max(0).to_string()),
        ),
        (
            "last_enqueued_time_utc",
            Value::Timestamp(Timestamp::from_milliseconds(last_ms)),
        ),
        ("is_partition_empty", Value::Bool(last_seq < 0)),
    ])
}
