//! The hub's built-in Event Hubs-compatible endpoint, as IoT Hub's `messages/events`: every
//! telemetry message the hub accepts (MQTT or AMQP) is also put on one of N partitions (by a hash
//! of the device id), kept in a bounded in-memory buffer, and delivered to receiver links on
//! `{entity}/ConsumerGroups/{group}/Partitions/{id}` with IoT Hub's annotations, the message's
//! properties and its body. See docs/eventhubs-endpoint.md for the addressing and the
//! authentication (SASL PLAIN with the key, or SASL ANONYMOUS and a CBS token) and its sources.
//!
//! Publishing is cheap on the hub's hot path: an MQTT message keeps its raw property bag, parsed
//! only when a reader is sent it. A reader slower than the buffer loses the oldest events (as a
//! reader of a real Event Hub past the retention).
//!
//! Fault injection for tests: [`EventHubsConfig::fault_drop_every`] makes the endpoint drop every
//! N-th accepted message (counted and listed in [`EventHubs::dropped`]), so a test can check that
//! a verifying receiver counts exactly those as lost.

mod links;
mod message;
mod requests;
mod sas;

use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

pub(super) use links::{claims, Links};
pub(super) use sas::PlainAuth;

/// Partitions unless told otherwise (IoT Hub's minimum is 2, its default 4).
pub const DEFAULT_PARTITIONS: u32 = 4;
/// Events kept per partition.
pub const DEFAULT_BUFFER: usize = 16_384;
/// The shared access policy name the hub's key belongs to (IoT Hub has `service`).
pub const DEFAULT_KEY_NAME: &str = "service";
/// The Event Hub-compatible name (`EntityPath`).
pub const DEFAULT_ENTITY: &str = "fleetbench";
/// The environment variable `hub serve` reads for the test-only drop fault.
pub const DROP_EVERY_ENV: &str = "FLEETBENCH_FAULT_EVENTHUBS_DROP_EVERY";

/// How the endpoint behaves.
#[derive(Debug, Clone)]
pub struct EventHubsConfig {
    /// The Event Hub-compatible name (`EntityPath`).
    pub entity: String,
    /// The shared access policy name of [`Self::key`].
    pub key_name: String,
    /// The shared access key (text, as in a connection string); a random one when `None`.
    pub key: Option<String>,
    /// Number of partitions (partition ids `0`..`N-1`).
    pub partitions: u32,
    /// Events kept per partition.
    pub buffer: usize,
    /// Fault injection (tests only): drop every N-th accepted message instead of publishing it.
    pub fault_drop_every: Option<NonZeroU64>,
}

impl Default for EventHubsConfig {
    fn default() -> Self {
        Self {
            entity: DEFAULT_ENTITY.to_owned(),
            key_name: DEFAULT_KEY_NAME.to_owned(),
            key: None,
            partitions: DEFAULT_PARTITIONS,
            buffer: DEFAULT_BUFFER,
            fault_drop_every: None,
        }
    }
}

/// A message the fault injector dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The sending device.
    pub device: String,
    /// Its message id, when it had one.
    pub message_id: Option<String>,
}

/// The endpoint's partitions and credentials.
pub struct EventHubs {
    entity: String,
    key_name: String,
    key: String,
    partitions: Vec<Partition>,
    accepted: AtomicU64,
    published: AtomicU64,
    drop_every: Option<NonZeroU64>,
    dropped: Mutex<Vec<Dropped>>,
    created_ms: i64,
}

impl std::fmt::Debug for EventHubs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHubs")
            .field("entity", &self.entity)
            .field("partitions", &self.partitions.len())
            .field("drop_every", &self.drop_every)
            .finish_non_exhaustive()
    }
}

impl EventHubs {
    /// An endpoint with empty partitions.
    pub fn new(config: &EventHubsConfig) -> Self {
        let key = config.key.clone().unwrap_or_else(|| {
            base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
        });
        let buffer = config.buffer.max(1);
        Self {
            entity: config.entity.clone(),
            key_name: config.key_name.clone(),
            key,
            partitions: (0..config.partitions.max(1))
                .map(|_| Partition::new(buffer))
                .collect(),
            accepted: AtomicU64::new(0),
            published: AtomicU64::new(0),
            drop_every: config.fault_drop_every,
            dropped: Mutex::new(Vec::new()),
            created_ms: unix_ms(),
        }
    }

    /// The Event Hub-compatible name.
    pub fn entity(&self) -> &str {
        &self.entity
    }

    /// The shared access policy name.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// The shared access key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// The connection string of this endpoint at `authority` (`host:port` of the AMQP listener).
    pub fn connection_string(&self, authority: &str) -> String {
        format!(
            "Endpoint=sb://{authority}/;SharedAccessKeyName={};SharedAccessKey={};EntityPath={}",
            self.key_name, self.key, self.entity
        )
    }

    /// Messages put on a partition so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Messages the fault injector dropped, in the order it dropped them.
    pub fn dropped(&self) -> Vec<Dropped> {
        self.dropped.lock().clone()
    }

    /// The partition a device's messages go to (FNV-1a of the id: stable across runs).
    pub fn partition_of(&self, device: &str) -> usize {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in device.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // The modulus is a partition count, so the result fits a usize.
        (h % self.partitions.len() as u64) as usize
    }

    /// Puts an accepted message on its device's partition, unless the fault injector drops it.
    pub(crate) fn publish(&self, event: Event) {
        let n = self.accepted.fetch_add(1, Ordering::Relaxed) + 1;
        if self.drop_every.is_some_and(|k| n.is_multiple_of(k.get())) {
            self.dropped.lock().push(Dropped {
                device: event.device.to_string(),
                message_id: event.message_id(),
            });
            return;
        }
        self.partitions[self.partition_of(&event.device)].push(event);
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    fn partition(&self, id: &str) -> Option<&Partition> {
        id.parse::<usize>()
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}

/// Milliseconds since the Unix epoch, now.
fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What a device sent, as the endpoint keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    device: Arc<str>,
    props: message::Props,
    body: Bytes,
    /// Assigned when the event is put on a partition.
    seq: u64,
    enqueued_ms: i64,
}

impl Event {
    /// An MQTT message: `bag` is the topic's part after `devices/{id}/messages/events`.
    pub(crate) fn mqtt(device: &str, bag: &str, body: Bytes) -> Self {
        Self::new(device, message::Props::Bag(bag.into()), body)
    }

    fn new(device: &str, props: message::Props, body: Bytes) -> Self {
        Self {
            device: device.into(),
            props,
            body,
            seq: 0,
            enqueued_ms: 0,
        }
    }

    fn message_id(&self) -> Option<String> {
        self.props.parse().message_id
    }
}

/// One partition: a bounded buffer of events and a wake-up for its readers.
struct Partition {
    ring: Mutex<Ring>,
    notify: Notify,
}

struct Ring {
    /// Sequence number of `events[0]`.
    first: u64,
    last_ms: i64,
    cap: usize,
    events: VecDeque<Arc<Event>>,
}

impl Partition {
    fn new(cap: usize) -> Self {
        Self {
            ring: Mutex::new(Ring {
                first: 0,
                last_ms: 0,
                cap,
                events: VecDeque::with_capacity(cap.min(1024)),
            }),
            notify: Notify::new(),
        }
    }

    fn push(&self, mut event: Event) {
        {
            let mut ring = self.ring.lock();
            // Enqueued times never go backwards within a partition.
            let ms = unix_ms().max(ring.last_ms);
            ring.last_ms = ms;
            event.enqueued_ms = ms;
            event.seq = ring.first + ring.events.len() as u64;
            if ring.events.len() == ring.cap {
                ring.events.pop_front();
                ring.first += 1;
            }
            ring.events.push_back(Arc::new(event));
        }
        self.notify.notify_waiters();
    }

    /// The sequence number of the first event enqueued after `ms` (or the next one to come).
    fn first_after(&self, ms: i64) -> u64 {
        let ring = self.ring.lock();
        let i = ring.events.partition_point(|e| e.enqueued_ms <= ms);
        ring.first + i as u64
    }

    /// Up to `max` events from sequence number `from` (or the oldest kept, if that is later).
    fn read(&self, from: u64, max: usize) -> Vec<Arc<Event>> {
        let ring = self.ring.lock();
        let start = usize::try_from(from.saturating_sub(ring.first)).unwrap_or(usize::MAX);
        ring.events.iter().skip(start).take(max).cloned().collect()
    }

    /// Sequence numbers kept and the newest event, for `$management` partition reads.
    fn state(&self) -> (u64, Option<Arc<Event>>) {
        let ring = self.ring.lock();
        (ring.first, ring.events.back().cloned())
    }
}
