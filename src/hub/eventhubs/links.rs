//! One AMQP connection's links to the endpoint: the `$cbs` and `$management` request/response
//! nodes and the partition receivers. The hub's AMQP session loop hands over every attach that
//! [`claims`] recognises; the rest stay device links.

use std::collections::HashSet;
use std::sync::Arc;

use fe2o3_amqp::acceptor::{LinkAcceptor, LinkEndpoint, ListenerSessionHandle};
use fe2o3_amqp::types::definitions::{self, AmqpError, Role};
use fe2o3_amqp::types::messaging::{AmqpValue, Message, Source, TargetArchetype};
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::Value;
use fe2o3_amqp::{Sendable, Sender};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::requests::{replies, requests, Handler};
use super::sas::PlainAuth;
use super::Partition;
use crate::hub::Hub;

/// Events sent per look at a partition's buffer.
const BATCH: usize = 256;

/// Replies a request node may have waiting for its reply link: clients wait for each answer,
/// so a handful is plenty; a client that floods requests without reading is slowed, not
/// buffered.
const REPLIES: usize = 16;

/// A request node's answer.
pub(super) type Reply = Message<AmqpValue<Value>>;

/// A request node's reply channel; the receiving half is taken by its reply link.
type ReplySlot = (mpsc::Sender<Reply>, Option<mpsc::Receiver<Reply>>);

/// What an attach addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    Cbs,
    Management,
    /// `{entity}/ConsumerGroups/{group}/Partitions/{id}`.
    Partition {
        entity: String,
        id: String,
    },
}

/// The node an address names, relative or `amqps://host[:port]/...`.
fn node(address: &str) -> Option<Node> {
    let path = match address.strip_prefix("amqps://") {
        Some(rest) => rest.split_once('/').map_or("", |(_, p)| p),
        None => address,
    };
    let path = path.trim_start_matches('/');
    if path == "$cbs" {
        return Some(Node::Cbs);
    }
    if path == "$management" || path.ends_with("/$management") {
        return Some(Node::Management);
    }
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [entity, cg, _group, p, id]
            if cg.eq_ignore_ascii_case("consumergroups")
                && p.eq_ignore_ascii_case("partitions") =>
        {
            Some(Node::Partition {
                entity: (*entity).to_owned(),
                id: (*id).to_owned(),
            })
        }
        _ => None,
    }
}

/// The address an attach is about: the source of a link the client receives on, the target of
/// one it sends on.
fn address(attach: &Attach) -> Option<String> {
    match attach.role {
        Role::Receiver => attach.source.as_ref().and_then(|s| s.address.clone()),
        Role::Sender => match attach.target.as_deref() {
            Some(TargetArchetype::Target(t)) => t.address.clone(),
            _ => None,
        },
    }
}

/// Whether an attach is for the Event Hubs endpoint rather than a device's events.
pub(in crate::hub) fn claims(attach: &Attach) -> bool {
    address(attach).as_deref().and_then(node).is_some()
}

/// A connection's endpoint links.
pub(in crate::hub) struct Links {
    hub: Arc<Hub>,
    plain: PlainAuth,
    /// Entities a CBS token was put for on this connection (lower case).
    tokens: Arc<Mutex<HashSet<String>>>,
    /// Reply channels of the request nodes, taken by the node's reply link.
    replies: [ReplySlot; 2],
    tasks: JoinSet<()>,
}

impl Links {
    pub(in crate::hub) fn new(hub: Arc<Hub>, plain: PlainAuth) -> Self {
        let reply = || {
            let (tx, rx) = mpsc::channel(REPLIES);
            (tx, Some(rx))
        };
        Self {
            hub,
            plain,
            tokens: Arc::default(),
            replies: [reply(), reply()],
            tasks: JoinSet::new(),
        }
    }

    fn authorized(&self, entity: &str) -> bool {
        self.plain.granted() || self.tokens.lock().contains(&entity.to_ascii_lowercase())
    }

    /// Accepts or refuses an attach that [`claims`] recognised.
    pub(in crate::hub) async fn attach(
        &mut self,
        session: &mut ListenerSessionHandle,
        attach: Attach,
    ) {
        let Some(node) = address(&attach).as_deref().and_then(node) else {
            return;
        };
        if matches!(node, Node::Partition { .. }) && attach.role == Role::Sender {
            let why = "partitions are read here; devices send to /devices/{id}/messages/events";
            return refuse(session, attach, AmqpError::NotAllowed, why).await;
        }
        let eh = &self.hub.eventhubs;
        let start = match &node {
            Node::Partition { entity, id } => {
                if !self.authorized(entity) {
                    let why = "put a token for the Event Hub on $cbs first (or use SASL PLAIN)";
                    return refuse(session, attach, AmqpError::UnauthorizedAccess, why).await;
                }
                let Some(p) = eh
                    .partition(id)
                    .filter(|_| entity.eq_ignore_ascii_case(&eh.entity))
                else {
                    let why = format!("no partition {id:?} of {entity:?}");
                    return refuse(session, attach, AmqpError::NotFound, &why).await;
                };
                Some(start_of(p, attach.source.as_deref()))
            }
            _ => None,
        };
        let slot = usize::from(node == Node::Management);
        let links = LinkAcceptor::builder().build();
        match (links.accept_incoming_attach(attach, session).await, node) {
            (Ok(LinkEndpoint::Sender(s)), Node::Partition { id, .. }) => {
                let hub = self.hub.clone();
                self.tasks.spawn(pump(s, hub, id, start.unwrap_or(0)));
            }
            (Ok(LinkEndpoint::Sender(s)), _) => match self.replies[slot].1.take() {
                Some(rx) => {
                    self.tasks.spawn(replies(s, rx));
                }
                None => {
                    let _ = s.close().await;
                }
            },
            (Ok(LinkEndpoint::Receiver(r)), node) => {
                let handler = Handler {
                    hub: self.hub.clone(),
                    tokens: self.tokens.clone(),
                    plain: self.plain.granted(),
                    node,
                };
                self.tasks
                    .spawn(requests(r, handler, self.replies[slot].0.clone()));
            }
            (Err(_), _) => {}
        }
    }
}

/// The first sequence number a partition link starts at: after the enqueued time its selector
/// filter names (`amqp.annotation.x-opt-enqueued-time > '{ms}'`), else the next event.
fn start_of(p: &Partition, source: Option<&Source>) -> u64 {
    let selector = source.and_then(|s| s.filter.as_ref()).and_then(|f| {
        f.iter().find_map(|(_, v)| match v {
            Value::Described(d) => match &d.value {
                Value::String(s) => Some(s.clone()),
                _ => None,
            },
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
    });
    match selector.as_deref().and_then(enqueued_after) {
        Some(ms) => p.first_after(ms),
        None => p.first_after(i64::MAX),
    }
}

/// The time in `amqp.annotation.x-opt-enqueued-time > '123'` (`>=` means after 122).
fn enqueued_after(selector: &str) -> Option<i64> {
    let rest = selector
        .trim()
        .strip_prefix("amqp.annotation.x-opt-enqueued-time")?
        .trim();
    let (inclusive, rest) = match rest.strip_prefix(">=") {
        Some(r) => (true, r),
        None => (false, rest.strip_prefix('>')?),
    };
    let ms: i64 = rest.trim().trim_matches('\'').trim().parse().ok()?;
    Some(if inclusive { ms - 1 } else { ms })
}

async fn refuse(
    session: &mut ListenerSessionHandle,
    mut attach: Attach,
    condition: AmqpError,
    why: &str,
) {
    tracing::debug!(link = %attach.name, why, "hub refused an Event Hubs attach");
    attach.source = None;
    attach.target = None;
    let error = definitions::Error::new(condition, why.to_owned(), None);
    match LinkAcceptor::builder()
        .build()
        .accept_incoming_attach(attach, session)
        .await
    {
        Ok(LinkEndpoint::Sender(s)) => {
            let _ = s.close_with_error(error).await;
        }
        Ok(LinkEndpoint::Receiver(r)) => {
            let _ = r.close_with_error(error).await;
        }
        Err(_) => {}
    }
}

/// Sends a partition's events from `next` on, waiting for new ones, until the link fails.
async fn pump(mut sender: Sender, hub: Arc<Hub>, id: String, mut next: u64) {
    let eh = &hub.eventhubs;
    let Some(p) = eh.partition(&id) else { return };
    loop {
        let woken = p.notify.notified();
        let batch = p.read(next, BATCH);
        if batch.is_empty() {
            woken.await;
            continue;
        }
        for event in batch {
            let sendable = Sendable::builder()
                .message(event.to_message())
                .settled(true)
                .build();
            // Batchable: the engine may coalesce transfers into one write; pre-settled (the
            // reader asked for settled), so there is no outcome to wait for.
            if sender.send_batchable(sendable).await.is_err() {
                return;
            }
            next = event.seq + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_the_endpoint_nodes() {
        assert_eq!(node("$cbs"), Some(Node::Cbs));
        assert_eq!(node("$management"), Some(Node::Management));
        assert_eq!(node("fleetbench/$management"), Some(Node::Management));
        let p = Some(Node::Partition {
            entity: "fleetbench".into(),
            id: "3".into(),
        });
        assert_eq!(node("fleetbench/ConsumerGroups/$Default/Partitions/3"), p);
        assert_eq!(
            node("amqps://localhost:5671/fleetbench/consumergroups/$default/partitions/3"),
            p
        );
        assert_eq!(node("/devices/d1/messages/events"), None);
        assert_eq!(node("fleetbench/Partitions/3"), None);
    }

    #[test]
    fn the_selector_names_the_enqueued_time_to_start_after() {
        assert_eq!(
            enqueued_after("amqp.annotation.x-opt-enqueued-time > '1700000000123'"),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            enqueued_after("amqp.annotation.x-opt-enqueued-time >= 5"),
            Some(4)
        );
        assert_eq!(
            enqueued_after("amqp.annotation.x-opt-offset > '@latest'"),
            None
        );
    }
}
