//! Integration tests, one binary (ripgrep style). Each module talks to real servers over real
//! TLS on loopback, on ephemeral ports; none sleeps to synchronise.

// Test code may unwrap (fixtures outside #[test] functions included), and a test that skips
// because a broker is not installed says so on stderr.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

// Fixtures: inline scenarios, test PKI, hub on 127.0.0.1:0.
mod support;

// Issue 2: MQTT fleets against the embedded hub, refusals, summary.json.
mod run_mqtt;
// Issue 4: AMQP 1.0 fleets against the embedded hub and RabbitMQ, attach refusals.
mod run_amqp;
// Issue 2: the binary's exit codes and scenario error messages.
mod cli;
