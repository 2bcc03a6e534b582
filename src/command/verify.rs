//! `run`'s verifying receiver, wired: its own identity, its subscription confirmed before the
//! first device connects, and after the load its accounting in the summary.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::load::FleetResult;
use crate::metrics::{Recorder, Summary};
use crate::pki::{CaChain, DeviceIdentity, DeviceIds, Validity};
use crate::protocol::stamp::Stamp;
use crate::protocol::{AmqpDialect, MqttDialect, QoS, SaslMechanism, SettleMode};
use crate::scenario::{Plan, ProtocolPlan, VerifyIdentity, VerifyKind};
use crate::transport::{ClientTls, Endpoint};
use crate::verify::{self, Sent, Verifier};

/// A run's receivers while the load runs.
#[derive(Debug)]
pub(super) struct Verifying {
    verifier: Verifier,
}

/// Whether the devices' sends are settled on write (nothing to acknowledge).
fn settled(plan: &Plan) -> bool {
    match &plan.protocol {
        ProtocolPlan::Mqtt(m) => m.qos == QoS::AtMostOnce,
        ProtocolPlan::Amqp(a) => a.settle == SettleMode::Settled,
    }
}

/// Starts `plan`'s receivers, if it names any, and has `local`'s devices stamp their messages
/// with `run`. Every subscription is confirmed when this returns.
pub(super) async fn start(
    plan: &Plan,
    local: &mut Plan,
    run: u64,
    chain: &CaChain,
    endpoint: &Endpoint,
    tls: &ClientTls,
    recorder: &Arc<Recorder>,
) -> anyhow::Result<Option<Verifying>> {
    let Some(v) = &plan.verify else {
        return Ok(None);
    };
    let in_payload = matches!(&plan.protocol, ProtocolPlan::Mqtt(m) if matches!(m.dialect, MqttDialect::Generic { .. }));
    local.messages.stamp = Some(Stamp { run, in_payload });
    let identity = match &v.identity {
        VerifyIdentity::Minted => chain
            .mint_device(
                &v.client_id,
                plan.fleet.key_type,
                Validity::days_from_now(1),
            )
            .context("minting the verifying receiver's certificate")?,
        VerifyIdentity::Files { cert, key } => from_files(&v.client_id, cert, key)?,
    };
    let config = tls
        .for_device(&identity)
        .context("the verifying receiver's TLS configuration")?;
    let setup = verify::Setup {
        endpoint: endpoint.clone(),
        tls: config,
        tls_anonymous: tls
            .without_client_auth()
            .context("the verifying receiver's TLS configuration")?,
        sasl: match &plan.protocol {
            ProtocolPlan::Amqp(a) => match &a.dialect {
                AmqpDialect::Generic { sasl, .. } => *sasl,
                AmqpDialect::IotHub { .. } => SaslMechanism::None,
            },
            ProtocolPlan::Mqtt(_) => SaslMechanism::External,
        },
        connection_string: connection_string(&v.kind)?,
    };
    let verifier = verify::start(v, &setup, run, recorder.clone())
        .await
        .with_context(|| {
            format!(
                "[verify] receiver {:?} could not connect and subscribe or attach at {}",
                v.client_id, endpoint.addr
            )
        })?;
    tracing::info!(
        "verifying receiver ready; run id {}",
        verify::account::hex(run)
    );
    Ok(Some(Verifying { verifier }))
}

/// The Event Hubs-compatible endpoint's connection string, from the variable the plan names.
fn connection_string(kind: &VerifyKind) -> anyhow::Result<Option<String>> {
    let VerifyKind::EventHubs {
        connection_string_env,
        ..
    } = kind
    else {
        return Ok(None);
    };
    match std::env::var(connection_string_env) {
        Ok(text) if !text.is_empty() => Ok(Some(text)),
        _ => anyhow::bail!(
            "verify.connection-string-env: the environment variable {connection_string_env} is not set (it should hold the endpoint's connection string: `hub serve --amqp ADDR` prints it on stderr)"
        ),
    }
}

/// The receiver's identity from `verify.cert-file` and `verify.key-file`.
fn from_files(id: &str, cert: &Path, key: &Path) -> anyhow::Result<DeviceIdentity> {
    let mut certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading verify.cert-file {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow::anyhow!(
                "verify.cert-file {}: {}",
                cert.display(),
                crate::pki::store::pem_problem(&e)
            )
        })?;
    anyhow::ensure!(
        !certs.is_empty(),
        "verify.cert-file {} holds no certificate",
        cert.display()
    );
    let leaf = certs.remove(0);
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        anyhow::anyhow!(
            "verify.key-file {}: {}",
            key.display(),
            crate::pki::store::pem_problem(&e)
        )
    })?;
    Ok(DeviceIdentity {
        id: id.to_owned(),
        leaf,
        chain_tail: certs.into(),
        key: Arc::new(key),
    })
}

/// After the load: reads on for the rest (at most the settle time), then puts the accounting
/// into `summary` and judges it again.
pub(super) async fn finish(
    verifying: Option<Verifying>,
    plan: &Plan,
    ids: &DeviceIds,
    result: &FleetResult,
) -> Option<crate::metrics::Delivery> {
    let verifying = verifying?;
    let settled = settled(plan);
    let sents = result
        .sends
        .iter()
        .map(|d| {
            let mut unacked = d.unacked.clone();
            unacked.sort_unstable();
            Sent {
                index: d.index as u32,
                device: ids.id(d.index),
                sent: d.sent,
                settled,
                unacked,
            }
        })
        .collect();
    Some(verifying.verifier.finish(sents, !settled).await)
}

/// Puts the accounting into the summary; the verdict counts its losses and copies.
pub(super) fn record(summary: &mut Summary, delivery: Option<crate::metrics::Delivery>) {
    if delivery.is_some() {
        summary.delivery = delivery;
        summary.verdict = Some(summary.judge());
    }
}
