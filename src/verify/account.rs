//! Matching what a receiver read against what the devices sent: per device a bitset of the
//! message numbers seen, then, once the load has said what it sent and which numbers were
//! acknowledged, lost, duplicated, out-of-order and unacknowledged-yet-delivered counts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::Received;
use crate::metrics::{Delivery, DeviceDelivery, Phase, Recorder, MAX_DELIVERY_DEVICES};
use crate::protocol::stamp::{self, StampedDevice, SENT_PROPERTY};

/// Highest message number tracked per device: a bogus stamp cannot grow a bitset past 2 MiB.
const MAX_SEQ: u32 = 1 << 24;
/// The property that names the run (`fleetbench-run`, 16 hex digits; the hub counts by it too).
const RUN_PROPERTY: &str = "fleetbench-run";

/// What one device sent, as the load reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Its index in the run (the binary stamp's device number).
    pub index: u32,
    /// Its id.
    pub device: String,
    /// Messages sent, numbered `0..sent`.
    pub sent: u32,
    /// Every send was settled on write (QoS 0, pre-settled AMQP): none was acknowledged.
    pub settled: bool,
    /// The numbers sent and never acknowledged, sorted.
    pub unacked: Vec<u32>,
}

impl Sent {
    fn acked(&self, seq: u32) -> bool {
        !self.settled && seq < self.sent && self.unacked.binary_search(&seq).is_err()
    }
}

/// How a message names its device before the load's list is known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Index(u32),
    Id(String),
}

/// One device's receipts.
#[derive(Debug, Default)]
struct Seen {
    bits: Vec<u64>,
    max: Option<u32>,
    copies: u64,
    out_of_order: u64,
}

impl Seen {
    fn has(&self, seq: u32) -> bool {
        self.bits
            .get(seq as usize / 64)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    /// Notes `seq`; whether it is new.
    fn note(&mut self, seq: u32) -> bool {
        let word = seq as usize / 64;
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        let bit = 1u64 << (seq % 64);
        if self.bits[word] & bit != 0 {
            self.copies += 1;
            return false;
        }
        self.bits[word] |= bit;
        if self.max.is_some_and(|m| seq < m) {
            self.out_of_order += 1;
        }
        self.max = Some(self.max.map_or(seq, |m| m.max(seq)));
        true
    }

    fn absorb(&mut self, o: Self) {
        for (i, w) in o.bits.iter().enumerate() {
            for b in 0..64 {
                if w & (1 << b) != 0 {
                    self.note((i * 64 + b) as u32);
                }
            }
        }
        self.copies += o.copies;
        self.out_of_order += o.out_of_order;
    }

    fn count(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// What the load sent, indexed for matching.
#[derive(Debug)]
struct Expected {
    by_id: HashMap<String, u32>,
    sent: HashMap<u32, Sent>,
    /// Acknowledged messages not yet seen.
    missing: u64,
}

/// The accounting of one run's receivers.
#[derive(Debug)]
pub struct Account {
    run: u64,
    recorder: Arc<Recorder>,
    seen: HashMap<Key, Seen>,
    expected: Option<Expected>,
    received: u64,
    foreign: u64,
}

impl Account {
    /// An empty accounting for run `run`, recording delivery latency into `recorder`.
    pub fn new(run: u64, recorder: Arc<Recorder>) -> Self {
        Self {
            run,
            recorder,
            seen: HashMap::new(),
            expected: None,
            received: 0,
            foreign: 0,
        }
    }

    /// Takes one message.
    pub fn take(&mut self, r: &Received) {
        let Some((key, seq, sent_us)) = self.identify(r) else {
            self.foreign += 1;
            return;
        };
        self.received += 1;
        if let Some(us) = sent_us {
            let delivered = stamp::unix_micros(r.at).saturating_sub(us);
            let shard = match key {
                Key::Index(i) => i as usize,
                Key::Id(_) => 0,
            };
            self.recorder
                .record(Phase::Deliver, shard, Duration::from_micros(delivered));
        }
        let key = match (&self.expected, key) {
            (Some(e), Key::Id(id)) => e.by_id.get(&id).map_or(Key::Id(id), |i| Key::Index(*i)),
            (_, key) => key,
        };
        if seq >= MAX_SEQ {
            return;
        }
        let new = self.seen.entry(key.clone()).or_default().note(seq);
        if let (true, Some(e), Key::Index(i)) = (new, &mut self.expected, &key) {
            if e.sent.get(i).is_some_and(|s| s.acked(seq)) {
                e.missing = e.missing.saturating_sub(1);
            }
        }
    }

    /// The device, message number and send instant of a message of this run; `None` for
    /// another run's or an unstamped one.
    fn identify(&self, r: &Received) -> Option<(Key, u32, Option<u64>)> {
        if let Some(s) = stamp::read(&r.body) {
            if s.run != self.run {
                return None;
            }
            let key = match s.device {
                StampedDevice::Index(i) => Key::Index(i),
                StampedDevice::Id(id) => Key::Id(r.device.clone().unwrap_or(id)),
            };
            return Some((key, s.seq, Some(s.sent_us)));
        }
        let property = |name: &str| {
            r.properties
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if let Some(run) = property(RUN_PROPERTY) {
            if u64::from_str_radix(run, 16).ok() != Some(self.run) {
                return None;
            }
        }
        let (device, seq) = stamp::split_message_id(r.message_id.as_deref()?)?;
        let device = r.device.clone().unwrap_or_else(|| device.to_owned());
        let sent = property(SENT_PROPERTY).and_then(|v| v.parse().ok());
        Some((Key::Id(device), seq, sent))
    }

    /// What the load sent: from now on the accounting knows what is still missing.
    pub fn expect(&mut self, sents: Vec<Sent>) {
        let by_id: HashMap<String, u32> =
            sents.iter().map(|s| (s.device.clone(), s.index)).collect();
        for (id, i) in &by_id {
            if let Some(s) = self.seen.remove(&Key::Id(id.clone())) {
                self.seen.entry(Key::Index(*i)).or_default().absorb(s);
            }
        }
        let mut missing = 0;
        for s in &sents {
            let seen = self.seen.get(&Key::Index(s.index));
            missing += (0..s.sent)
                .filter(|q| s.acked(*q) && !seen.is_some_and(|x| x.has(*q)))
                .count() as u64;
        }
        self.expected = Some(Expected {
            by_id,
            sent: sents.into_iter().map(|s| (s.index, s)).collect(),
            missing,
        });
    }

    /// Whether every acknowledged message has arrived (false before [`Self::expect`]).
    pub fn complete(&self) -> bool {
        self.expected.as_ref().is_some_and(|e| e.missing == 0)
    }

    /// The accounting, for `summary.json`.
    pub fn finish(mut self, receiver: String, strict: bool, settle: Duration) -> Delivery {
        let mut d = Delivery {
            receiver,
            run_ids: vec![hex(self.run)],
            received: self.received,
            foreign: self.foreign,
            strict,
            settle_ms: settle.as_millis() as u64,
            complete: self.complete(),
            ..Delivery::default()
        };
        let expected = self.expected.take().map(|e| e.sent).unwrap_or_default();
        let mut sents: Vec<&Sent> = expected.values().collect();
        sents.sort_unstable_by_key(|s| s.index);
        for s in sents {
            let seen = self.seen.remove(&Key::Index(s.index)).unwrap_or_default();
            let mut dev = DeviceDelivery {
                device: s.device.clone(),
                duplicated: seen.copies,
                out_of_order: seen.out_of_order,
                ..DeviceDelivery::default()
            };
            for q in 0..s.sent {
                match (s.settled, s.acked(q), seen.has(q)) {
                    (true, _, true) => d.settled_delivered += 1,
                    (true, _, false) => d.settled_missing += 1,
                    (false, true, true) => d.delivered += 1,
                    (false, true, false) => dev.lost += 1,
                    (false, false, true) => dev.unacked_delivered += 1,
                    (false, false, false) => d.unacked_missing += 1,
                }
                d.acked += u64::from(s.acked(q));
            }
            // Numbers past what the device sent.
            d.unexpected += seen.count() - (0..s.sent).filter(|q| seen.has(*q)).count() as u64;
            d.lost += dev.lost;
            d.duplicated += dev.duplicated;
            d.out_of_order += dev.out_of_order;
            d.unacked_delivered += dev.unacked_delivered;
            if dev.lost + dev.duplicated + dev.out_of_order + dev.unacked_delivered > 0 {
                if d.devices.len() < MAX_DELIVERY_DEVICES {
                    d.devices.push(dev);
                } else {
                    d.devices_more += 1;
                }
            }
        }
        // Devices the load never reported sending anything.
        for seen in self.seen.values() {
            d.unexpected += seen.count();
            d.duplicated += seen.copies;
        }
        d
    }
}

/// A run id as text: 16 lowercase hex digits.
pub fn hex(run: u64) -> String {
    let mut out = Vec::with_capacity(16);
    stamp::push_hex(&mut out, run);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
