//! `[fleet]`: how many devices, their ids, keys, chain and validity, or the CA directory that
//! signs them.

use std::path::PathBuf;

use crate::pki::{IdTemplate, KeyType, Validity};
use crate::scenario::problems::{Overrides, Problems};
use crate::scenario::Scenario;

/// The fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetPlan {
    /// Devices (whole fleet).
    pub devices: u64,
    /// Id template.
    pub ids: IdTemplate,
    /// Device key type.
    pub key_type: KeyType,
    /// CA key type.
    pub ca_key_type: KeyType,
    /// Intermediates.
    pub intermediates: u8,
    /// Device certificate validity, days.
    pub validity_days: u32,
    /// An existing CA directory signs the devices (`None`: a chain is minted for the run).
    pub ca_dir: Option<CaDirPlan>,
}

/// Devices signed by an existing CA directory.
#[derive(Debug, Clone, PartialEq)]
pub struct CaDirPlan {
    /// The directory.
    pub path: PathBuf,
    /// `fleet.intermediates` when the scenario states it: the directory must hold that many.
    pub intermediates: Option<u8>,
}

pub(super) fn key_type(value: Option<&String>, field: &str, p: &mut Problems<'_>) -> KeyType {
    match value.map(|v| v.parse::<KeyType>()) {
        None => KeyType::EcdsaP256,
        Some(Ok(k)) => k,
        Some(Err(e)) => {
            p.add(field, e);
            KeyType::EcdsaP256
        }
    }
}

pub(super) fn fleet(s: &Scenario, o: &Overrides, p: &mut Problems<'_>) -> Option<FleetPlan> {
    let f = &s.fleet;
    let devices = o.devices.or(f.devices).unwrap_or(100);
    if devices == 0 {
        p.add(
            "fleet.devices",
            "0 is not valid: a fleet needs at least one device",
        );
    }
    if devices > 10_000_000 {
        p.add(
            "fleet.devices",
            format!("{devices} is not valid: at most 10,000,000 (IoT Hub holds 1,000,000 per hub)"),
        );
    }
    let ids = match IdTemplate::parse(f.id.as_deref().unwrap_or("device-{n:05}")) {
        Ok(t) => Some(t),
        Err(e) => {
            p.add("fleet.id", e.to_string());
            None
        }
    };
    let key = key_type(f.key_type.as_ref(), "fleet.key-type", p);
    let ca_key = key_type(f.ca_key_type.as_ref(), "fleet.ca-key-type", p);
    let ca_dir = o
        .ca_dir
        .clone()
        .or_else(|| f.ca_dir.clone())
        .map(|path| CaDirPlan {
            path,
            intermediates: f.intermediates,
        });
    if ca_dir.is_some() && f.ca_key_type.is_some() {
        p.add(
            "fleet.ca-key-type",
            "only applies without a CA directory; the CA directory's keys fix it",
        );
    }
    let intermediates = f.intermediates.unwrap_or(1);
    if intermediates > 8 {
        p.add(
            "fleet.intermediates",
            format!("{intermediates} is not valid: at most 8"),
        );
    }
    let validity_days = f.validity_days.unwrap_or(30);
    if let Err(e) = Validity::check_days(u64::from(validity_days)) {
        p.add("fleet.validity-days", e.to_string());
    }
    Some(FleetPlan {
        devices,
        ids: ids?,
        key_type: key,
        ca_key_type: ca_key,
        intermediates,
        validity_days,
        ca_dir,
    })
}
