//! The endpoint's request/response nodes, as the Event Hubs clients use them: CBS `put-token`
//! on `$cbs` and `READ` of `com.microsoft:eventhub` on `$management` (AMQP management pattern:
//! a sender link to the node, a receiver link from it, `reply-to` naming the receiver's target).

use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::messaging::{ApplicationProperties, Body, Message, Outcome, Properties};
use fe2o3_amqp::types::primitives::{SimpleValue, Value};
use fe2o3_amqp::{Receiver, Sender};

use super::super::amqp::ReceiverError;

/// The CBS token type of a shared access signature.
const SAS_TOKEN_TYPE: &str = "servicebus.windows.net:sastoken";

/// CBS `put-token` of `token` for `audience` (AMQP CBS draft; Service Bus protocol guide).
pub(super) async fn put_token(
    session: &mut SessionHandle<()>,
    audience: &str,
    token: &str,
) -> Result<(), ReceiverError> {
    let props = ApplicationProperties::builder()
        .insert("operation", "put-token")
        .insert("type", SAS_TOKEN_TYPE)
        .insert("name", audience)
        .build();
    let (status, why, _) = request(session, "$cbs", props, Value::String(token.into())).await?;
    if !(200..300).contains(&status) {
        return Err(ReceiverError::EventHubs(format!(
            "the endpoint refused the token for {audience}: status {status} {why}"
        )));
    }
    Ok(())
}

/// The `partition_ids` of `entity` from a `READ` of `com.microsoft:eventhub` on `$management`.
pub(super) async fn partition_ids(
    session: &mut SessionHandle<()>,
    entity: &str,
    token: &str,
) -> Result<Vec<String>, ReceiverError> {
    let props = ApplicationProperties::builder()
        .insert("operation", "READ")
        .insert("type", "com.microsoft:eventhub")
        .insert("name", entity)
        .insert("security_token", token)
        .build();
    let (status, why, body) = request(session, "$management", props, Value::Null).await?;
    if !(200..300).contains(&status) {
        return Err(ReceiverError::EventHubs(format!(
            "reading the partitions of {entity:?}: status {status} {why}"
        )));
    }
    let ids = match body {
        Body::Value(v) => match v.0 {
            Value::Map(map) => map
                .into_iter()
                .find(|(k, _)| key_is(k, "partition_ids"))
                .map(|(_, v)| v),
            _ => None,
        },
        _ => None,
    };
    let list: Vec<Value> = match ids {
        Some(Value::Array(a)) => a.into_inner(),
        Some(Value::List(l)) => l,
        _ => Vec::new(),
    };
    let ids: Vec<String> = list
        .into_iter()
        .filter_map(|v| match v {
            Value::String(s) => Some(s),
            _ => None,
        })
        .collect();
    if ids.is_empty() {
        return Err(ReceiverError::EventHubs(format!(
            "the endpoint named no partitions for {entity:?}"
        )));
    }
    Ok(ids)
}

/// One request/response exchange on `node` (AMQP management pattern): a sender link to the
/// node, a receiver link from it whose target is the request's reply-to. Returns the reply's
/// `status-code`, `status-description` and body.
async fn request(
    session: &mut SessionHandle<()>,
    node: &str,
    props: ApplicationProperties,
    body: Value,
) -> Result<(i64, String, Body<Value>), ReceiverError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        ReceiverError::EventHubs(format!("{node}: {what}: {e}"))
    };
    let reply_to = format!("{node}-reply-{:08x}", rand::random::<u32>());
    let mut sender = Sender::builder()
        .name(format!("{node}-request"))
        .target(node)
        .attach(session)
        .await
        .map_err(|e| fail("attaching the request link", &e))?;
    let mut receiver = Receiver::builder()
        .name(format!("{node}-response"))
        .source(node)
        .target(reply_to.clone())
        .attach(session)
        .await
        .map_err(|e| fail("attaching the response link", &e))?;
    let id = format!("{:016x}", rand::random::<u64>());
    let message = Message::builder()
        .properties(
            Properties::builder()
                .message_id(id)
                .reply_to(reply_to)
                .build(),
        )
        .application_properties(props)
        .value(body)
        .build();
    match sender.send(message).await {
        Ok(Outcome::Accepted(_)) => {}
        Ok(other) => return Err(fail("the request was not accepted", &format!("{other:?}"))),
        Err(e) => return Err(fail("sending the request", &e)),
    }
    let reply = receiver
        .recv::<Body<Value>>()
        .await
        .map_err(|e| fail("receiving the response", &e))?;
    let _ = receiver.accept(&reply).await;
    let _ = sender.close().await;
    let _ = receiver.close().await;
    let message = reply.into_message();
    let app = message.application_properties.map(|p| p.0);
    let get = |name: &str| app.as_ref().and_then(|m| m.get(name)).cloned();
    let status = match get("status-code") {
        Some(SimpleValue::Int(n)) => i64::from(n),
        Some(SimpleValue::Long(n)) => n,
        Some(SimpleValue::Uint(n)) => i64::from(n),
        Some(SimpleValue::Short(n)) => i64::from(n),
        _ => 0,
    };
    let why = match get("status-description") {
        Some(SimpleValue::String(s)) => s,
        _ => String::new(),
    };
    Ok((status, why, message.body))
}

fn key_is(key: &Value, name: &str) -> bool {
    match key {
        Value::String(s) => s == name,
        Value::Symbol(s) => s.as_str() == name,
        _ => false,
    }
}
