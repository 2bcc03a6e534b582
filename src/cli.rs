//! The command line (clap derive only). No clap type leaves this file: commands receive plain
//! values.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};

use crate::pki::KeyType;
use crate::scenario::Shard;

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
    /// Merge the results of the shards of one fleet (directories, summary.json files or logs
    /// holding `run --print-summary` lines) and judge the thresholds on the merge.
    Merge(MergeArgs),
    /// The tutorial's certificates: CA chains, proof of possession, device exports, bulk import.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// The embedded hub as a standalone server, and its CA and device registries (the portal).
    #[command(subcommand)]
    Hub(HubCommand),
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
    /// CA directory (from `pki init`) that signs the devices, minted at run time
    /// (overrides fleet.ca-dir).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Where results directories are made.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// No progress display.
    #[arg(short, long)]
    pub quiet: bool,
    /// Serve live metrics (OpenMetrics text) on this address, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Run shard K of N of the fleet (K from 0), e.g. 2/8: a disjoint slice of the devices at
    /// 1/N of the rates. Needs a shared CA (--ca or fleet.ca-dir).
    #[arg(long, env = "FLEETBENCH_SHARD", value_name = "K/N")]
    pub shard: Option<Shard>,
    /// The shard index K alone (a Kubernetes Indexed Job sets JOB_COMPLETION_INDEX); needs
    /// --shards.
    #[arg(long, env = "JOB_COMPLETION_INDEX", value_name = "K")]
    pub shard_index: Option<u64>,
    /// The shard count N, with --shard-index.
    #[arg(long, env = "FLEETBENCH_SHARDS", value_name = "N")]
    pub shards: Option<u64>,
    /// Begin the schedule at this wall-clock instant (RFC 3339 UTC, e.g. 2025-06-01T12:00:00Z),
    /// so that shards started seconds apart ramp together.
    #[arg(long, env = "FLEETBENCH_START_AT", value_name = "TIME", value_parser = parse_instant)]
    pub start_at: Option<SystemTime>,
    /// Read the CPU time of this server process (on the same host, e.g. Mosquitto or
    /// `fleetbench hub serve`) over the run, for the server's CPU per handshake.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Also print summary.json as one line on stdout, for `merge` to read from logs.
    #[arg(long, env = "FLEETBENCH_PRINT_SUMMARY")]
    pub print_summary: bool,
}

/// `fleetbench pki …`
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create a root CA and intermediates in a new directory (PEM, DER .cer, PKCS#8 keys 0600).
    Init(PkiInitArgs),
    /// Make the proof-of-possession certificate: CN = the hub's verification code, signed by a CA.
    Prove(PkiProveArgs),
    /// Mint device certificates and keys (PEM, chains, PFX) on every core.
    Devices(PkiDevicesArgs),
    /// Write IoT Hub's bulk import file (one JSON object per line).
    Registry(PkiRegistryArgs),
    /// Mint a server certificate (serverAuth, SANs) for any broker, signed by a CA directory.
    Server(PkiServerArgs),
}

/// `fleetbench pki init`
#[derive(Debug, Args)]
pub struct PkiInitArgs {
    /// Directory to create the CA in (refused if it already holds one, unless --force).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the CA files already in --out (devices signed by the old CA stop verifying).
    #[arg(long)]
    pub force: bool,
    /// Intermediate CAs below the root (0 = devices signed by the root).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=8))]
    pub intermediates: u8,
    /// Key type of every CA in the chain.
    #[arg(long, default_value = "ecdsa-p256")]
    pub key_type: KeyType,
    /// Validity in days (ending by 9999-12-31, RFC 5280's latest expiry).
    #[arg(long, default_value_t = 30, value_parser = parse_days)]
    pub days: u32,
    /// Common-name prefix of the CAs.
    #[arg(long, default_value = "fleetbench")]
    pub name: String,
}

/// `fleetbench pki prove`
#[derive(Debug, Args)]
pub struct PkiProveArgs {
    /// CA directory.
    #[arg(long)]
    pub ca: PathBuf,
    /// The verification code the hub gave for the uploaded CA.
    #[arg(long)]
    pub code: String,
    /// Which CA of the chain was uploaded: root, intermediate-1, …
    #[arg(long, default_value = "root")]
    pub signer: String,
    /// Output file (default: CA_DIR/verification-code.cert.pem); refused if it exists, unless
    /// --force.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `fleetbench pki devices`
#[derive(Debug, Args)]
pub struct PkiDevicesArgs {
    /// CA directory that signs the devices.
    #[arg(
        long,
        required_unless_present = "self_signed",
        conflicts_with = "self_signed"
    )]
    pub ca: Option<PathBuf>,
    /// Self-signed devices (registered by thumbprint) instead of CA-signed ones.
    #[arg(long)]
    pub self_signed: bool,
    /// How many devices.
    #[arg(long)]
    pub count: u64,
    // clap turns the two characters `{n}` into a line break in help text: the help names the
    // placeholder as `{n:05}` and `{n:W}` only.
    /// Device id template: {n:05} is the device number from 1 zero-padded to 5 digits, {n:0W}
    /// to W digits; the placeholder n in braces without :0W does not pad.
    #[arg(long, default_value = "device-{n:05}")]
    pub id: String,
    /// Output directory (created if needed); files of the same devices already there are refused,
    /// unless --force.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the files of devices already in --out (their old keys are lost).
    #[arg(long)]
    pub force: bool,
    /// Also write ID.pfx, encrypted with this password (the tutorial uses 1234).
    #[arg(long)]
    pub pfx_password: Option<String>,
    /// Device key type.
    #[arg(long, default_value = "ecdsa-p256")]
    pub key_type: KeyType,
    /// Validity in days (ending by 9999-12-31, RFC 5280's latest expiry).
    #[arg(long, default_value_t = 30, value_parser = parse_days)]
    pub days: u32,
}

/// `fleetbench pki registry`
#[derive(Debug, Args)]
pub struct PkiRegistryArgs {
    /// CA directory the devices chain to (checked to load; its thumbprint is printed).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// How many devices.
    #[arg(long)]
    pub count: u64,
    /// Device id template.
    #[arg(long, default_value = "device-{n:05}")]
    pub id: String,
    /// Self-signed devices: thumbprints from the certificates in --devices.
    #[arg(long, requires = "devices")]
    pub self_signed: bool,
    /// Directory of exported device certificates (`pki devices --out`).
    #[arg(long)]
    pub devices: Option<PathBuf>,
    /// Output file (default: standard output); refused if it exists, unless --force.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `fleetbench pki server`
#[derive(Debug, Args)]
pub struct PkiServerArgs {
    /// CA directory (from `pki init`) whose issuing CA signs the certificate.
    #[arg(long)]
    pub ca: PathBuf,
    /// Host name the server is reached by (a DNS SAN; repeatable; the first is also the CN).
    #[arg(long = "name", value_name = "HOST", required_unless_present = "ips")]
    pub names: Vec<String>,
    /// IP address the server is reached by (an IP SAN; repeatable).
    #[arg(long = "ip", value_name = "ADDR")]
    pub ips: Vec<std::net::IpAddr>,
    /// Key type of the server key (IoT Hub presents rsa-2048).
    #[arg(long, default_value = "ecdsa-p256")]
    pub key_type: KeyType,
    /// Validity in days (ending by 9999-12-31, RFC 5280's latest expiry).
    #[arg(long, default_value_t = 30, value_parser = parse_days)]
    pub days: u32,
    /// Output directory (created if needed): server.cert.pem, server.chain.pem, server.key.pem.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace those files if they exist.
    #[arg(long)]
    pub force: bool,
}

/// `fleetbench hub …`
#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Make the hub's server identity in a state directory (its root, certificate and key).
    Init(HubInitArgs),
    /// Serve MQTT (and AMQP 1.0 with --amqp) over mutual TLS with the registries and the
    /// server identity kept in a state directory.
    Serve(HubServeArgs),
    /// CA certificates: add (unverified, prints the verification code), verify, list.
    #[command(subcommand)]
    Ca(HubCaCommand),
    /// Devices: add, list.
    #[command(subcommand)]
    Device(HubDeviceCommand),
}

/// `fleetbench hub init`
#[derive(Debug, Args)]
pub struct HubInitArgs {
    /// State directory (created if needed): server-root.pem (what clients trust), server.pem,
    /// server.key.pem (0600).
    #[arg(long)]
    pub state: PathBuf,
    /// Host name clients reach the hub by (a DNS SAN; repeatable; the first is the CN).
    #[arg(long = "name", value_name = "HOST", default_value = "localhost")]
    pub names: Vec<String>,
    /// IP address clients reach the hub by (an IP SAN; repeatable).
    #[arg(long = "ip", value_name = "ADDR", default_value = "127.0.0.1")]
    pub ips: Vec<std::net::IpAddr>,
    /// Key type of the hub's root and server key (IoT Hub presents rsa-2048).
    #[arg(long, default_value = "ecdsa-p256")]
    pub key_type: KeyType,
    /// Validity in days of the root and the server certificate.
    #[arg(long, default_value_t = 365, value_parser = parse_days)]
    pub days: u32,
    /// Replace an existing identity (clients must then trust the new server-root.pem).
    #[arg(long)]
    pub force: bool,
}

/// `fleetbench hub serve`
#[derive(Debug, Args)]
pub struct HubServeArgs {
    /// State directory (registries, the hub's server identity). Without an identity (no
    /// server-root.pem, server.pem, server.key.pem) one is made, as `hub init` with its
    /// defaults would (localhost, 127.0.0.1 and the --mqtt address; ecdsa-p256; 365 days),
    /// and announced on stderr; an incomplete or inconsistent one is refused.
    #[arg(long)]
    pub state: PathBuf,
    /// MQTT listen address.
    #[arg(long, default_value = "127.0.0.1:8883")]
    pub mqtt: SocketAddr,
    /// AMQP 1.0 listen address (IoT Hub: 5671); none unless given.
    #[arg(long)]
    pub amqp: Option<SocketAddr>,
    /// MQTT over WebSockets listen address (IoT Hub: 443, path `/$iothub/websocket`,
    /// subprotocol `mqtt`, inside mutual TLS); none unless given.
    #[arg(long, value_name = "ADDR")]
    pub mqtt_ws: Option<SocketAddr>,
    /// AMQP over WebSockets listen address (IoT Hub: 443, path `/$iothub/websocket`,
    /// subprotocol `AMQPWSB10`, inside mutual TLS); none unless given.
    #[arg(long, value_name = "ADDR")]
    pub amqp_ws: Option<SocketAddr>,
    /// Serve live counts (received by protocol and CA, sessions accepted and refused) as
    /// OpenMetrics text on GET /metrics at this address (port 0: any free port; the bound
    /// address is announced on stderr).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// The shared access key of the built-in Event Hubs-compatible endpoint on the AMQP
    /// listener (policy `service`, entity `fleetbench`; docs/eventhubs-endpoint.md). Without it
    /// a random key is made at each start. The endpoint's connection string is printed on
    /// stderr at start.
    #[arg(
        long,
        value_name = "KEY",
        env = "FLEETBENCH_EVENTHUBS_KEY",
        hide_env_values = true
    )]
    pub eventhubs_key: Option<String>,
    /// Fault injection for tests only: the Event Hubs endpoint drops every N-th accepted
    /// message (the devices still get their acknowledgement).
    #[arg(
        long,
        value_name = "N",
        hide = true,
        env = "FLEETBENCH_FAULT_EVENTHUBS_DROP_EVERY"
    )]
    pub fault_eventhubs_drop_every: Option<std::num::NonZeroU64>,
    /// Crypto provider of the hub's TLS: ring or aws-lc-rs (which adds the post-quantum
    /// groups X25519MLKEM768 and SECP256R1MLKEM768 and ML-DSA certificates).
    #[arg(long, default_value = "ring", value_name = "PROVIDER")]
    pub tls_provider: crate::transport::Provider,
    /// Key-exchange groups the hub offers, comma-separated (e.g. secp256r1,x25519); default:
    /// every group of the provider, post-quantum first.
    #[arg(long, value_delimiter = ',', value_name = "GROUPS")]
    pub tls_groups: Vec<String>,
}

/// `fleetbench hub ca …`
#[derive(Debug, Subcommand)]
pub enum HubCaCommand {
    /// Upload a CA certificate (PEM or DER); it is unverified until proven.
    Add {
        /// State directory.
        #[arg(long)]
        state: PathBuf,
        /// Name of the CA in the hub.
        #[arg(long)]
        name: String,
        /// The CA certificate file.
        #[arg(long)]
        cert: PathBuf,
        /// Mark it verified on upload (the portal's checkbox).
        #[arg(long)]
        verified: bool,
    },
    /// Verify a CA with the proof-of-possession certificate from `pki prove`.
    Verify {
        /// State directory.
        #[arg(long)]
        state: PathBuf,
        /// Name of the CA in the hub.
        #[arg(long)]
        name: String,
        /// The verification certificate.
        #[arg(long)]
        cert: PathBuf,
    },
    /// List the CAs with their verified flag, code and thumbprint.
    List {
        /// State directory.
        #[arg(long)]
        state: PathBuf,
    },
}

/// `fleetbench hub device …`
#[derive(Debug, Subcommand)]
pub enum HubDeviceCommand {
    /// Register devices: a numbered range as "X.509 CA signed", or a bulk import file.
    Add {
        /// State directory.
        #[arg(long)]
        state: PathBuf,
        /// How many devices (CA-signed; 1 or more).
        #[arg(long, required_unless_present = "import", conflicts_with = "import")]
        count: Option<u64>,
        /// Device id template.
        #[arg(long, default_value = "device-{n:05}")]
        id: String,
        /// A bulk import file (`pki registry`). Ids repeated in the file are refused;
        /// importMode create refuses ids already registered, createOrUpdate and update
        /// replace them.
        #[arg(long)]
        import: Option<PathBuf>,
    },
    /// List the registered devices.
    List {
        /// State directory.
        #[arg(long)]
        state: PathBuf,
    },
}

/// `fleetbench report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results directory (its report.txt and report.html are rewritten) or a summary.json.
    pub dir: PathBuf,
}

/// `fleetbench merge`
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shard results: results directories, summary.json files, or logs (`kubectl logs`) with one
    /// `run --print-summary` line per shard.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// The merged results directory to write (created; refused if it holds a summary already).
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `fleetbench compare`
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a results directory or summary.json.
    pub base: PathBuf,
    /// The run to judge: a results directory or summary.json.
    pub new: PathBuf,
    /// How much worse NEW may be than BASE (latency and error rate up, throughput down):
    /// `10%` is a percentage, a bare number from 0 to 1 a fraction (0.1 = 10%).
    #[arg(long, default_value = "10%", value_parser = parse_tolerance)]
    pub tolerance: f64,
    /// Latency changes at or below this are noise, however large relatively, e.g. 100us, 1ms.
    #[arg(long, default_value = "100us", value_parser = parse_duration)]
    pub noise_floor: Duration,
    /// Print the comparison as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A tolerance: `10%` is a percentage; a bare number is a fraction from 0 to 1 (0.1 = 10%).
fn parse_tolerance(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (number, percent) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (t, false),
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 && percent => Ok(n / 100.0),
        Ok(n) if n.is_finite() && (0.0..=1.0).contains(&n) => Ok(n),
        Ok(n) if n.is_finite() && n > 1.0 => Err(format!(
            "{s:?} is ambiguous: a bare number is a fraction from 0 to 1 (0.1 = 10%); \
             write {n}% for a percentage"
        )),
        _ => Err(format!("{s:?} is not a tolerance such as 10%, 2.5% or 0.1")),
    }
}

fn parse_days(s: &str) -> Result<u32, String> {
    let days = s.trim().parse::<u64>().map_err(|_| {
        format!(
            "{s:?} is not a number of days from 1 to {} (9999-12-31)",
            crate::pki::Validity::max_days()
        )
    })?;
    crate::pki::Validity::check_days(days).map_err(|e| e.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration such as 500ms or 2s: {e}"))
}

fn parse_instant(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(s.trim())
        .map_err(|e| format!("{s:?} is not an RFC 3339 instant such as 2025-06-01T12:00:00Z: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_tolerance_is_a_fraction_and_a_percent_sign_a_percentage() {
        assert_eq!(parse_tolerance("0.1"), Ok(0.1));
        assert_eq!(parse_tolerance("10%"), Ok(0.1));
        assert_eq!(parse_tolerance("2.5 %"), Ok(0.025));
        assert_eq!(parse_tolerance("1"), Ok(1.0));
        assert!(parse_tolerance("10").unwrap_err().contains("write 10%"));
        assert!(parse_tolerance("-1%").is_err());
        assert!(parse_tolerance("ten").is_err());
    }

    #[test]
    fn days_past_9999_are_refused_with_the_largest_value() {
        assert_eq!(parse_days("30"), Ok(30));
        let e = parse_days("100000000").unwrap_err();
        assert!(e.contains("9999-12-31") && e.contains("at most"), "{e}");
        assert!(parse_days("0").is_err());
        assert!(parse_days("99999999999999999999").is_err());
    }
}
