//! fleetbench: a load-testing harness for fleets of X.509-authenticated IoT devices.
//!
//! Modules, with dependencies pointing one way (`command -> scenario -> {load, report}`,
//! `load -> {protocol, metrics}`, `protocol -> transport -> pki`, `hub -> {transport, pki}`):
//!
//! - [`cli`]: the command line (clap), nothing else.
//! - [`command`]: what each subcommand does; the only place that wires modules together.
//! - [`scenario`]: scenario files, the validated [`scenario::Plan`] and its schedules.
//! - [`pki`]: CA chains and device certificates minted in memory (rcgen).
//! - [`transport`]: TCP connect and mutual TLS (rustls), timed apart.
//! - [`protocol`]: MQTT (and AMQP) device sessions over that transport.
//! - [`load`]: the device lifecycle and the fleet run, driven by the plan's schedule.
//! - [`metrics`]: the hot-path recorder, histograms, the summary.
//! - [`report`]: text report, results directory, progress display.
//! - [`hub`]: the embedded IoT-Hub-like server.

pub mod cli;
pub mod command;
pub mod hub;
pub mod load;
pub mod metrics;
pub mod pki;
pub mod protocol;
pub mod report;
pub mod scenario;
pub mod transport;
pub mod verify;

/// How a command ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Completed, every check passed (exit 0).
    Success,
    /// Completed, but a check failed: a threshold, or acknowledged messages lost (exit 1).
    ChecksFailed,
}

/// Runs a parsed command line.
pub async fn run(cli: cli::Cli) -> anyhow::Result<Outcome> {
    command::dispatch(cli).await
}
