//! A verifying receiver's accounting as `summary.json` holds it: what arrived, matched
//! against what the devices sent and had acknowledged, per device and in total.

use serde::{Deserialize, Serialize};

/// Devices listed by name in [`Delivery::devices`]; the rest are counted.
pub const MAX_DELIVERY_DEVICES: usize = 20;

/// What a verifying receiver read, matched to what was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The receiver, in words (`mqtt fleet/+/telemetry, 1 receiver`).
    pub receiver: String,
    /// The run ids whose messages were counted (one per shard in a merge).
    pub run_ids: Vec<String>,
    /// Messages of this run read, copies included.
    pub received: u64,
    /// Messages the devices saw acknowledged.
    pub acked: u64,
    /// Acknowledged messages that arrived (each counted once).
    pub delivered: u64,
    /// Acknowledged messages that never arrived.
    pub lost: u64,
    /// Messages sent and never acknowledged that arrived all the same.
    pub unacked_delivered: u64,
    /// Messages sent and never acknowledged that did not arrive.
    pub unacked_missing: u64,
    /// Extra copies of messages that had already arrived.
    pub duplicated: u64,
    /// Messages that arrived after a later message of the same device.
    pub out_of_order: u64,
    /// Sends settled on write (MQTT QoS 0, pre-settled AMQP) that arrived.
    pub settled_delivered: u64,
    /// Sends settled on write that did not arrive.
    pub settled_missing: u64,
    /// Messages stamped with this run that no device sent (unknown device or number).
    pub unexpected: u64,
    /// Messages without this run's stamp (another run's, or unstamped), ignored.
    pub foreign: u64,
    /// Whether losses and copies fail the run: devices and receiver both at least once.
    pub strict: bool,
    /// How long the receiver read after the load ended, ms.
    pub settle_ms: u64,
    /// Whether every acknowledged message had arrived when it stopped.
    pub complete: bool,
    /// Devices with something wrong (lost, duplicated, out of order, unacknowledged yet
    /// delivered), the first [`MAX_DELIVERY_DEVICES`] by id.
    pub devices: Vec<DeviceDelivery>,
    /// How many more devices had something wrong.
    pub devices_more: u64,
    /// What went wrong with the receivers themselves (a receiver that stopped early).
    #[serde(default)]
    pub errors: Vec<String>,
}

/// One device's delivery faults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDelivery {
    /// Device id.
    pub device: String,
    /// Acknowledged and never delivered.
    pub lost: u64,
    /// Extra copies.
    pub duplicated: u64,
    /// Delivered after a later message.
    pub out_of_order: u64,
    /// Unacknowledged and delivered.
    pub unacked_delivered: u64,
}

impl Delivery {
    /// Why this accounting fails the run, if it does: `lost` or `duplicated` when strict.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.strict && self.lost > 0 {
            out.push(format!(
                "{} acknowledged messages never delivered to the receiver",
                self.lost
            ));
        }
        if self.strict && self.duplicated > 0 {
            out.push(format!(
                "{} messages delivered more than once",
                self.duplicated
            ));
        }
        out
    }

    /// Adds another shard's accounting (each shard reads with its own receiver).
    pub fn add(&mut self, o: &Self) {
        if self.receiver.is_empty() {
            self.receiver.clone_from(&o.receiver);
        }
        self.run_ids.extend(o.run_ids.iter().cloned());
        self.received += o.received;
        self.acked += o.acked;
        self.delivered += o.delivered;
        self.lost += o.lost;
        self.unacked_delivered += o.unacked_delivered;
        self.unacked_missing += o.unacked_missing;
        self.duplicated += o.duplicated;
        self.out_of_order += o.out_of_order;
        self.settled_delivered += o.settled_delivered;
        self.settled_missing += o.settled_missing;
        self.unexpected += o.unexpected;
        self.foreign += o.foreign;
        self.strict |= o.strict;
        self.settle_ms = self.settle_ms.max(o.settle_ms);
        self.complete &= o.complete;
        for d in &o.devices {
            if self.devices.len() < MAX_DELIVERY_DEVICES {
                self.devices.push(d.clone());
            } else {
                self.devices_more += 1;
            }
        }
        self.devices_more += o.devices_more;
        self.errors.extend(o.errors.iter().cloned());
    }

    /// The shards' accountings summed; `None` unless every shard ran a receiver.
    pub fn merge<'a>(all: impl IntoIterator<Item = Option<&'a Self>>) -> Option<Self> {
        let mut out: Option<Self> = None;
        for d in all {
            let d = d?;
            match &mut out {
                None => out = Some(d.clone()),
                Some(m) => m.add(d),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_add_up_and_fail_on_loss() {
        let a = Delivery {
            run_ids: vec!["a".into()],
            acked: 10,
            delivered: 10,
            strict: true,
            complete: true,
            ..Delivery::default()
        };
        let b = Delivery {
            run_ids: vec!["b".into()],
            acked: 10,
            delivered: 8,
            lost: 2,
            strict: true,
            devices: vec![DeviceDelivery {
                device: "d".into(),
                lost: 2,
                ..DeviceDelivery::default()
            }],
            ..Delivery::default()
        };
        let m = Delivery::merge([Some(&a), Some(&b)]).unwrap();
        assert_eq!((m.acked, m.delivered, m.lost), (20, 18, 2));
        assert!(!m.complete);
        assert_eq!(m.run_ids, ["a", "b"]);
        assert_eq!(m.failures().len(), 1);
        assert!(Delivery::merge([Some(&a), None]).is_none());
    }
}
