//! Shared test fixtures: scenarios from inline TOML, a PKI minted in the test, an embedded hub
//! on 127.0.0.1:0, and fleet runs driven in-process.

#![allow(dead_code, unreachable_pub)]

pub mod rabbitmq;

use std::path::Path;
use std::sync::Arc;

use fleetbench::command::run::{run_plan, EmbeddedHub, RunOptions, RunReport};
use fleetbench::hub::HubConfig;
use fleetbench::load::{self, Fleet, FleetResult};
use fleetbench::metrics::Recorder;
use fleetbench::pki::{CaChain, ChainSpec, DeviceIds, IdTemplate, KeyType, Validity};
use fleetbench::scenario::{Overrides, Plan, Scenario};
use fleetbench::transport::{ClientTls, Endpoint, ServerVerification, TlsVersion};
use rustls::pki_types::ServerName;
use tokio_util::sync::CancellationToken;

/// A validated plan from inline TOML.
pub fn plan(toml: &str) -> Plan {
    let s = Scenario::parse(toml, Path::new("inline.toml")).expect("scenario parses");
    Plan::new(
        &s,
        toml,
        Path::new("inline.toml"),
        "test",
        &Overrides::default(),
    )
    .expect("plan is valid")
}

/// Runs a plan end to end (its own PKI and embedded hub), results in a temporary directory.
pub async fn run(plan: &Plan) -> (RunReport, tempfile::TempDir) {
    run_with(plan, HubConfig::default()).await
}

/// As [`run`], with hub behaviour.
pub async fn run_with(plan: &Plan, hub: HubConfig) -> (RunReport, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = RunOptions {
        results_root: dir.path().to_owned(),
        quiet: true,
        interrupt: CancellationToken::new(),
        hub,
    };
    let report = run_plan(plan, &options).await.expect("run completes");
    (report, dir)
}

/// A fresh CA chain (root -> one intermediate), ECDSA P-256.
pub fn chain() -> Arc<CaChain> {
    Arc::new(CaChain::generate(&ChainSpec::default()).expect("chain mints"))
}

/// A hub whose server certificate comes from `server_ca`, with `registered` CAs verified.
pub async fn hub(server_ca: &CaChain, registered: &[&CaChain]) -> EmbeddedHub {
    let hub = EmbeddedHub::start(server_ca, HubConfig::default())
        .await
        .expect("hub starts");
    for (i, ca) in registered.iter().enumerate() {
        hub.hub
            .registry
            .add_verified_ca(&format!("ca-{i}"), ca.root().cert().clone())
            .expect("ca registers");
    }
    hub
}

/// Device ids `prefix-{n:05}`, `count` of them.
pub fn ids(prefix: &str, count: u64) -> DeviceIds {
    DeviceIds::new(
        IdTemplate::parse(&format!("{prefix}-{{n:05}}")).expect("template"),
        count,
        0,
        1,
    )
}

/// Runs `ids` (signed by `ca`) against `hub` per `plan`, in-process, on the hub's port for the
/// plan's protocol. `trust` signs the hub's server certificate.
pub async fn fleet(
    plan: &Plan,
    hub: &EmbeddedHub,
    trust: &CaChain,
    ca: Arc<CaChain>,
    ids: DeviceIds,
) -> (Arc<Recorder>, FleetResult) {
    fleet_at(plan, hub.addr_for(&plan.protocol), trust, ca, ids).await
}

/// Runs `ids` (signed by `ca`) against the server at `addr` (certificate for `localhost`, signed
/// by `trust`) per `plan`, in-process.
pub async fn fleet_at(
    plan: &Plan,
    addr: std::net::SocketAddr,
    trust: &CaChain,
    ca: Arc<CaChain>,
    ids: DeviceIds,
) -> (Arc<Recorder>, FleetResult) {
    let endpoint = Endpoint {
        addr,
        server_name: ServerName::try_from("localhost").expect("name").to_owned(),
        host: "localhost".into(),
    };
    let roots = ClientTls::roots(std::slice::from_ref(trust.root().cert())).expect("roots");
    let tls = ClientTls::new(TlsVersion::Tls13, ServerVerification::Roots(roots), false);
    let fleet = Fleet {
        ca,
        ids,
        key_type: KeyType::EcdsaP256,
        validity: Validity::default(),
    };
    let recorder = Arc::new(Recorder::new());
    let result = load::run(
        plan,
        fleet,
        endpoint,
        tls,
        recorder.clone(),
        CancellationToken::new(),
    )
    .await
    .expect("fleet runs");
    (recorder, result)
}
