//! A hub state directory and the device CA it trusts, made the two ways tests need: in-process
//! (fast, any ids) or through the binary as the README's walkthrough does.

use std::path::Path;

use fleetbench::hub::state::StateDir;
use fleetbench::pki::store::write_ca_dir;
use fleetbench::pki::{CaChain, ChainSpec};

use super::walkthrough::{fleetbench, text};

/// In-process: a fresh CA chain written to the CA directory `dir/ca`, and the hub state `dir/hub`
/// with that CA verified (as "fleet") and `ids` registered as "X.509 CA signed".
pub fn with_ca_signed(dir: &Path, ids: impl IntoIterator<Item = String>) -> CaChain {
    let ca = CaChain::generate(&ChainSpec::default()).expect("chain mints");
    write_ca_dir(&dir.join("ca"), &ca).expect("CA directory");
    let state = StateDir::open(&dir.join("hub")).expect("state directory");
    let registry = state.load().expect("state loads");
    registry
        .add_verified_ca("fleet", ca.root().cert().clone())
        .expect("CA registers");
    registry.register_ca_signed(ids);
    state.save(&registry).expect("state saves");
    ca
}

/// Runs the binary in `dir` and asserts it succeeds.
pub fn ok(dir: &Path, args: &[&str]) {
    let out = fleetbench(dir, args, &[]);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
}

/// Through the binary, in `dir`: `hub ca add --state STATE --name NAME --cert CERT --verified`.
pub fn add_verified_ca(dir: &Path, state: &str, name: &str, cert: &str) {
    ok(
        dir,
        &[
            "hub",
            "ca",
            "add",
            "--state",
            state,
            "--name",
            name,
            "--cert",
            cert,
            "--verified",
        ],
    );
}

/// Through the binary, in `dir`: `pki registry --count COUNT --out devices.txt` and
/// `hub device add --state STATE --import devices.txt`.
pub fn register_devices(dir: &Path, state: &str, count: u64) {
    let count = count.to_string();
    ok(
        dir,
        &["pki", "registry", "--count", &count, "--out", "devices.txt"],
    );
    ok(
        dir,
        &[
            "hub",
            "device",
            "add",
            "--state",
            state,
            "--import",
            "devices.txt",
        ],
    );
}

/// Through the binary, in `dir`: the device CA `ca` (`pki init`), verified on the hub state
/// `state` as `name`, and `count` devices registered.
pub fn walkthrough(dir: &Path, state: &str, name: &str, count: u64) {
    ok(dir, &["pki", "init", "--out", "ca"]);
    add_verified_ca(dir, state, name, "ca/root.cer");
    register_devices(dir, state, count);
}
