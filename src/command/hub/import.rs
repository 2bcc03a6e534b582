//! `hub device add --import`: IoT Hub's bulk import file, checked line by line as IoT Hub
//! would (device ids, import modes, ids repeated).

use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::Path;

use anyhow::Context as _;

use super::thousands;
use crate::hub::names::check_device_id;
use crate::hub::registry::MAX_DEVICES;
use crate::hub::DeviceAuth;
use crate::pki::export::{ImportAuth, ImportDevice};

/// One device of a bulk import file.
pub(super) struct ImportLine {
    pub(super) id: String,
    pub(super) auth: DeviceAuth,
    /// importMode `create`: an id already registered is a conflict.
    pub(super) create_only: bool,
}

/// Reads a bulk import file (one JSON object per line), line by line; more lines than a hub
/// can hold are refused before they are all read, and so are invalid ids and ids repeated.
pub(super) fn read_import(file: &Path) -> anyhow::Result<Vec<ImportLine>> {
    let reader = std::fs::File::open(file)
        .map(std::io::BufReader::new)
        .with_context(|| format!("reading {}", file.display()))?;
    let mut devices = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (n, line) in reader.lines().enumerate() {
        let at = || format!("{}:{}", file.display(), n + 1);
        let line = line.with_context(|| format!("reading {}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        anyhow::ensure!(
            (devices.len() as u64) < MAX_DEVICES,
            "{}: more than {} devices, IoT Hub's limit per hub",
            at(),
            thousands(MAX_DEVICES)
        );
        let d: ImportDevice = serde_json::from_str(&line)
            .with_context(|| format!("{}: not a bulk import line", at()))?;
        check_device_id(&d.id).with_context(at)?;
        let create_only = match d.import_mode.as_str() {
            "create" => true,
            "createOrUpdate" | "update" => false,
            other => anyhow::bail!(
                "{}: importMode {other:?} is not supported (create, createOrUpdate, update)",
                at()
            ),
        };
        if let Some(first) = seen.insert(d.id.clone(), n + 1) {
            anyhow::bail!(
                "{}: device {:?} is already on line {first}; IoT Hub reports a conflict",
                at(),
                d.id
            );
        }
        let auth = match d.authentication {
            ImportAuth::CertificateAuthority => DeviceAuth::CertificateAuthority,
            ImportAuth::SelfSigned { x509_thumbprint } => DeviceAuth::SelfSigned {
                primary: x509_thumbprint.primary_thumbprint,
                secondary: x509_thumbprint.secondary_thumbprint,
            },
        };
        devices.push(ImportLine {
            id: d.id,
            auth,
            create_only,
        });
    }
    Ok(devices)
}
