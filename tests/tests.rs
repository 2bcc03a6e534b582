//! Integration tests, one binary (ripgrep style). Each module talks to real servers over real
//! TLS on loopback, on ephemeral ports; none sleeps to synchronise.

// Helpers outside #[test] functions unwrap too; a failure there is a failed test.
#![allow(clippy::unwrap_used)]

// Fixtures: inline scenarios, test PKI, hub on 127.0.0.1:0.
mod support;

// Issue 2: MQTT fleets against the embedded hub, refusals, summary.json.
mod run_mqtt;
// Issue 2: the binary's exit codes and scenario error messages.
mod cli;
// Issue 3: certificate exports checked by the openssl CLI; bulk import; bad input.
mod pki;
// Issue 3: bad CA directories, codes and PFX key types; PKCS#1 keys.
mod pki_errors;
// Issue 3: the CA workflow on the embedded hub (portal steps, state directory, hub serve).
mod hub_ca;
