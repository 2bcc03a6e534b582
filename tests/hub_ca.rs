//! Issue 3: the tutorial's CA workflow on the embedded hub (the portal's part), in-process and
//! as separate `hub serve` / `run` processes.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use fleetbench::hub::StateDir;
use fleetbench::metrics::FailureKind;
use fleetbench::pki::store::{load_ca_dir, write_ca_dir};
use fleetbench::pki::{CaChain, ChainSpec, KeyType};

use crate::support;
use crate::support::hub_serve::HubServe;
use crate::support::results as run_results;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorial_add_ca_refused_prove_verified_connect() {
    let plan = support::plan("[messages]\ncount = 2\ninterval = \"5ms\"\n");
    // `pki init`, then everything from the directory, as a user would.
    let dir = tempfile::tempdir().unwrap();
    write_ca_dir(
        dir.path(),
        &CaChain::generate(&ChainSpec::default()).unwrap(),
    )
    .unwrap();
    let ca = Arc::new(load_ca_dir(dir.path()).unwrap());
    let server_ca = support::chain();
    let hub = support::hub(&server_ca, &[]).await;
    let registry = &hub.hub.registry;

    // Upload: unverified, with a code.
    let code = registry
        .add_ca("tutorial", ca.root().cert().clone())
        .unwrap();
    let listed = registry.cas();
    assert_eq!(
        (listed[0].verified, listed[0].verification_code.as_str()),
        (false, code.as_str())
    );
    let ids = support::ids("device", 5);
    registry.register_ca_signed(ids.iter());

    // Devices chained to an unverified CA are refused with CONNACK 5.
    let (rec, _) = support::fleet(&plan, &hub, &server_ca, ca.clone(), ids.clone()).await;
    let snap = rec.snapshot();
    assert_eq!((snap.sessions_connected, snap.sessions_failed), (0, 5));
    let failures = rec.failures();
    assert!(
        failures[0].is(FailureKind::Refused) && failures[0].sample.contains("CONNACK 5"),
        "{failures:?}"
    );
    assert!(hub
        .hub
        .stats
        .refusals()
        .contains(&("ca_unverified".to_owned(), 5)));

    // A proof with the wrong code, or from another CA's key, does not verify.
    let other = support::chain();
    let wrong = CaChain::mint_verification(other.root(), &code, KeyType::EcdsaP256).unwrap();
    assert!(registry.verify_ca("tutorial", &wrong).is_err());
    let wrong_code = CaChain::mint_verification(ca.root(), "0000", KeyType::EcdsaP256).unwrap();
    assert!(registry.verify_ca("tutorial", &wrong_code).is_err());
    assert!(!registry.cas()[0].verified);

    // Prove possession with the code: verified.
    let proof = CaChain::mint_verification(ca.root(), &code, KeyType::EcdsaP256).unwrap();
    registry.verify_ca("tutorial", &proof).unwrap();
    assert!(registry.cas()[0].verified);

    // The same devices now connect and send.
    let (rec, result) = support::fleet(&plan, &hub, &server_ca, ca.clone(), ids.clone()).await;
    let snap = rec.snapshot();
    assert_eq!((snap.sessions_connected, snap.messages_acked), (5, 10));
    assert_eq!(
        fleetbench::command::run::account(&hub.hub, &ids, &result).lost,
        0
    );
    hub.stop().await;
}

#[test]
fn a_state_directory_keeps_codes_and_flags_and_a_serving_hub_syncs_changes() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    let ca = support::chain();
    let cli = state.load().unwrap();
    let code = cli.add_ca("tutorial", ca.root().cert().clone()).unwrap();
    cli.register_ca_signed(["d1".to_owned(), "d2".to_owned()]);
    state.save(&cli).unwrap();

    let serving = state.load().unwrap();
    assert_eq!(serving.cas()[0].verification_code, code);
    assert!(!serving.cas()[0].verified);
    assert_eq!(serving.device_count(), 2);

    // Another process verifies and adds a device; the serving registry picks it up.
    let cli = state.load().unwrap();
    let proof = CaChain::mint_verification(ca.root(), &code, KeyType::EcdsaP256).unwrap();
    cli.verify_ca("tutorial", &proof).unwrap();
    cli.register_ca_signed(["d3".to_owned()]);
    state.save(&cli).unwrap();
    serving.device("d1").unwrap().count_message();
    state.sync(&serving).unwrap();
    assert!(serving.cas()[0].verified);
    assert_eq!(serving.device_count(), 3);
    assert_eq!(
        serving.received("d1"),
        1,
        "known devices keep their counters"
    );
}

fn fleetbench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{args:?}: {text}");
    text
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn hub_and_load_in_separate_processes_walk_the_tutorial() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, state) = (dir.path().join("ca"), dir.path().join("hub"));
    fleetbench(&["pki", "init", "--out", p(&ca)]);
    let added = fleetbench(&[
        "hub",
        "ca",
        "add",
        "--state",
        p(&state),
        "--name",
        "tutorial",
        "--cert",
        p(&ca.join("root.cer")),
    ]);
    let code = added
        .lines()
        .find_map(|l| l.strip_prefix("verification code "))
        .unwrap()
        .trim()
        .to_owned();
    assert!(fleetbench(&["hub", "ca", "list", "--state", p(&state)]).contains("unverified"));
    fleetbench(&["pki", "prove", "--ca", p(&ca), "--code", &code]);
    fleetbench(&[
        "hub",
        "ca",
        "verify",
        "--state",
        p(&state),
        "--name",
        "tutorial",
        "--cert",
        p(&ca.join("verification-code.cert.pem")),
    ]);
    assert!(fleetbench(&["hub", "ca", "list", "--state", p(&state)]).contains(" verified"));
    let import = dir.path().join("devices.txt");
    fleetbench(&["pki", "registry", "--count", "20", "--out", p(&import)]);
    fleetbench(&[
        "hub",
        "device",
        "add",
        "--state",
        p(&state),
        "--import",
        p(&import),
    ]);
    assert_eq!(
        fleetbench(&["hub", "device", "list", "--state", p(&state)])
            .lines()
            .count(),
        20
    );

    let hub = HubServe::start(HubServe::ephemeral(p(&state)));
    let addr = hub.mqtt();

    let scenario = dir.path().join("remote.toml");
    std::fs::write(
        &scenario,
        format!(
            "[target]\nhub = \"remote\"\naddress = \"{addr}\"\nserver-name = \"localhost\"\nca-file = \"{}\"\n\
             [fleet]\ndevices = 20\n[messages]\ncount = 2\ninterval = \"5ms\"\n",
            state.join("server-root.pem").display()
        ),
    )
    .unwrap();
    let results = dir.path().join("results");
    let out = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .args([
            "run",
            "--quiet",
            "--results",
            p(&results),
            "--ca",
            p(&ca),
            p(&scenario),
        ])
        .output()
        .unwrap();
    hub.kill();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = run_results::summary_json(&run_results::run_dir(&results));
    assert_eq!(json["counts"]["sessions_connected"], 20, "{stdout}");
    assert_eq!(json["counts"]["messages_acked"], 40, "{stdout}");
    assert_eq!(json["scenario"]["fleet"]["ca-dir"], p(&ca));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_mints_devices_from_a_ca_directory_and_checks_its_depth() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ChainSpec {
        intermediates: 2,
        key_type: KeyType::EcdsaP384,
        ..ChainSpec::default()
    };
    write_ca_dir(dir.path(), &CaChain::generate(&spec).unwrap()).unwrap();
    let fleet = format!(
        "[fleet]\ndevices = 10\nkey-type = \"ed25519\"\nca-dir = \"{}\"\n[messages]\ncount = 1\n",
        dir.path().display()
    );
    let (report, _results) = support::run(&support::plan(&fleet)).await;
    assert_eq!(report.summary.counts.sessions_connected, 10);
    assert_eq!(report.summary.counts.messages_acked, 10);

    let mut wrong = support::plan(&fleet);
    if let Some(ca) = wrong.fleet.ca_dir.as_mut() {
        ca.intermediates = Some(1);
    }
    let results = tempfile::tempdir().unwrap();
    let options = fleetbench::command::run::RunOptions {
        results_root: results.path().to_owned(),
        quiet: true,
        interrupt: tokio_util::sync::CancellationToken::new(),
        abort: tokio_util::sync::CancellationToken::new(),
        hub: fleetbench::hub::HubConfig::default(),
        metrics: None,
        shard: None,
        start_at: None,
        ca: None,
    };
    let err = fleetbench::command::run::run_plan(&wrong, &options)
        .await
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("fleet.intermediates = 1") && err.contains("holds 2"),
        "{err}"
    );
}
