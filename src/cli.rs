//! The command line (clap derive only). No clap type leaves this file: commands receive plain
//! values.

use std::net::SocketAddr;
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
    /// Re-render the text and HTML reports of a results directory.
    Report(ReportArgs),
    /// Compare two runs; exit 1 when NEW regressed beyond the tolerance.
    Compare(CompareArgs),
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
    /// Serve live metrics (OpenMetrics text) on this address, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

/// `fleetbench report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results directory (its report.txt and report.html are rewritten) or a summary.json.
    pub dir: PathBuf,
}

/// `fleetbench compare`
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a results directory or summary.json.
    pub base: PathBuf,
    /// The run to judge: a results directory or summary.json.
    pub new: PathBuf,
    /// How much worse NEW may be than BASE, e.g. 10% (latency and error rate up, throughput
    /// down).
    #[arg(long, default_value = "10%", value_parser = parse_tolerance)]
    pub tolerance: f64,
}

fn parse_tolerance(s: &str) -> Result<f64, String> {
    let number = s.trim().strip_suffix('%').unwrap_or(s.trim());
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n / 100.0),
        _ => Err(format!("{s:?} is not a tolerance such as 10% or 2.5%")),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration such as 500ms or 2s: {e}"))
}
