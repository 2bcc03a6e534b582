//! The command line (clap derive only). No clap type leaves this file: commands receive plain
//! values.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Load-test fleets of X.509-authenticated IoT devices over MQTT and AMQP with mutual TLS.
#[derive(Debug, Parser)]
#[command(name = "fleetbench", version, about, long_about = None)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario (against the embedded hub unless the scenario names another).
    Run(RunArgs),
    /// Re-render the text report of a results directory.
    Report(ReportArgs),
}

/// `fleetbench run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file (TOML).
    pub scenario: PathBuf,
    /// Devices in the fleet (overrides fleet.devices).
    #[arg(long)]
    pub devices: Option<u64>,
    /// New sessions per second (overrides connect.rate).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Messages per device (overrides messages.count).
    #[arg(long)]
    pub messages: Option<u32>,
    /// Time between a device's messages, e.g. 500ms (overrides messages.interval).
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Handshakes in flight at most (overrides connect.max-handshakes).
    #[arg(long)]
    pub max_handshakes: Option<u32>,
    /// Where results directories are made.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// No progress display.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `fleetbench report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results directory or summary.json.
    pub dir: PathBuf,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration such as 500ms or 2s: {e}"))
}
