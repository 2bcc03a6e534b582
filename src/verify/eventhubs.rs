//! The Event Hubs verifying receiver: IoT Hub's built-in Event Hubs-compatible endpoint (and the
//! embedded hub's copy of it) read over AMQP 1.0, every partition, from "now".
//!
//! The steps are those of Microsoft's Event Hubs clients (docs/eventhubs-endpoint.md has each
//! with its source): TLS with server verification only, SASL ANONYMOUS, a CBS `put-token` on
//! `$cbs` with a shared access signature for `sb://{host}/{entity}`, a `READ` of
//! `com.microsoft:eventhub` on `$management` for the partition ids, then one receiver link per
//! partition on `{entity}/ConsumerGroups/{group}/Partitions/{id}` whose source filter selects
//! `amqp.annotation.x-opt-enqueued-time > '{unix ms}'`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use fe2o3_amqp::types::definitions::SenderSettleMode;
use fe2o3_amqp::types::primitives::Value;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod cbs;

use super::amqp::{connect, AmqpReceiver, ReceiveReport, ReceiverError};
use super::Received;
use crate::protocol::amqp::{open_connection, SaslMechanism};

/// The Event Hubs port (AMQP over TLS).
pub const DEFAULT_PORT: u16 = 5671;
/// The consumer group every Event Hub has.
pub const DEFAULT_CONSUMER_GROUP: &str = "$Default";
/// How long the receiver's token is valid unless told otherwise (the SDKs' default: one hour).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// A parsed Event Hubs connection string
/// (`Endpoint=sb://{host}/;SharedAccessKeyName={name};SharedAccessKey={key};EntityPath={entity}`).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// Host name from `Endpoint`.
    pub host: String,
    /// Port from `Endpoint` (5671 when it names none).
    pub port: u16,
    /// `SharedAccessKeyName`.
    pub key_name: String,
    /// `SharedAccessKey`, as written (the signature uses its text, not its decoded bytes).
    pub key: String,
    /// `EntityPath`: the Event Hub-compatible name.
    pub entity: String,
}

impl std::fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionString")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("key_name", &self.key_name)
            .field("entity", &self.entity)
            .finish_non_exhaustive()
    }
}

impl ConnectionString {
    /// Parses a connection string; keys are matched without regard to case, as the SDKs do.
    pub fn parse(text: &str) -> Result<Self, ReceiverError> {
        let bad = |why: String| ReceiverError::EventHubs(format!("connection string: {why}"));
        let mut endpoint = None;
        let (mut key_name, mut key, mut entity) = (None, None, None);
        for part in text.trim().split(';').filter(|p| !p.trim().is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not Key=Value")))?;
            let v = v.trim().to_owned();
            match k.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(v),
                "sharedaccesskeyname" => key_name = Some(v),
                "sharedaccesskey" => key = Some(v),
                "entitypath" => entity = Some(v),
                _ => {}
            }
        }
        let endpoint = endpoint.ok_or_else(|| bad("no Endpoint=sb://{host}/".into()))?;
        let authority = endpoint
            .strip_prefix("sb://")
            .or_else(|| endpoint.strip_prefix("amqps://"))
            .ok_or_else(|| bad(format!("Endpoint {endpoint:?} does not start with sb://")))?
            .trim_end_matches('/');
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => {
                let port = p
                    .parse()
                    .map_err(|_| bad(format!("Endpoint {endpoint:?} has a bad port {p:?}")))?;
                (h.to_owned(), port)
            }
            None => (authority.to_owned(), DEFAULT_PORT),
        };
        if host.is_empty() || host.contains('/') {
            return Err(bad(format!("Endpoint {endpoint:?} names no host")));
        }
        let need = |v: Option<String>, name: &str| {
            v.filter(|v| !v.is_empty())
                .ok_or_else(|| bad(format!("no {name}=")))
        };
        Ok(Self {
            host,
            port,
            key_name: need(key_name, "SharedAccessKeyName")?,
            key: need(key, "SharedAccessKey")?,
            entity: need(entity, "EntityPath")?,
        })
    }

    /// The token audience of the Event Hub: `sb://{host}/{entity}`.
    pub fn audience(&self) -> String {
        format!("sb://{}/{}", self.host, self.entity)
    }
}

/// What `quote_plus` leaves alone (the Python SDK's encoding of `sr` and `skn`).
const QUOTE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A shared access signature for `audience`, valid until `expiry` (unix seconds):
/// `SharedAccessSignature sr={enc(audience)}&sig={enc(b64(HMAC-SHA256(key, enc(audience) + "\n" + expiry)))}&se={expiry}&skn={enc(key_name)}`,
/// with the key's text (not its base64-decoded bytes) as the HMAC key.
pub fn sas_token(audience: &str, key_name: &str, key: &str, expiry: u64) -> String {
    let sr = utf8_percent_encode(audience, QUOTE).to_string();
    let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let signed = ring::hmac::sign(&hmac, format!("{sr}\n{expiry}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(signed.as_ref());
    format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry}&skn={}",
        utf8_percent_encode(&sig, QUOTE),
        utf8_percent_encode(key_name, QUOTE)
    )
}

/// Where and how the Event Hubs receiver connects.
#[derive(Debug, Clone)]
pub struct EventHubsOptions {
    /// The endpoint's connection string.
    pub connection: ConnectionString,
    /// TCP address to connect to instead of resolving the connection string's host (the host
    /// stays the TLS server name and the token's audience).
    pub addr: Option<SocketAddr>,
    /// Server verification only (no client certificate): the endpoint authenticates by token.
    pub tls: Arc<rustls::ClientConfig>,
    /// Consumer group (`$Default` unless the hub has others).
    pub consumer_group: String,
    /// Only events enqueued after this instant are delivered ("from now").
    pub from: SystemTime,
    /// Link credit per partition.
    pub credit: u32,
    /// Time allowed to connect, authenticate, discover partitions and attach.
    pub timeout: Duration,
    /// How long the CBS token is valid. The endpoint drops the links when it expires and the
    /// receiver does not renew it: make it longer than the receiver runs.
    pub token_lifetime: Duration,
    /// Connections the partitions are spread over (round robin; at least 1, at most one per
    /// partition): each connection is one AMQP engine task on each side, so more connections
    /// use more cores.
    pub connections: usize,
}

/// A TLS client configuration that verifies the endpoint against `roots` and presents no
/// certificate.
pub fn tls_config(
    roots: &[rustls::pki_types::CertificateDer<'_>],
) -> Result<Arc<rustls::ClientConfig>, crate::transport::TlsConfigError> {
    let store = crate::transport::ClientTls::roots(roots)?;
    let config = rustls::ClientConfig::builder_with_provider(crate::transport::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| crate::transport::TlsConfigError::Rustls {
            what: "the verifying receiver".into(),
            source,
        })?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Connections to the endpoint with a receiver link on every partition.
#[derive(Debug)]
pub struct EventHubsReceiver {
    receivers: Vec<AmqpReceiver>,
    partitions: Vec<String>,
}

impl EventHubsReceiver {
    /// Connects, authenticates with a CBS token, reads the partition ids and attaches to each.
    pub async fn open(options: &EventHubsOptions) -> Result<Self, ReceiverError> {
        tokio::time::timeout(options.timeout, Self::open_now(options))
            .await
            .map_err(|_| ReceiverError::Timeout {
                what: "connecting to the Event Hubs endpoint and attaching",
                after: options.timeout,
            })?
    }

    async fn open_now(options: &EventHubsOptions) -> Result<Self, ReceiverError> {
        let cs = &options.connection;
        let addr = match options.addr {
            Some(a) => a,
            None => resolve(&cs.host, cs.port).await?,
        };
        let expiry = unix_seconds(SystemTime::now() + options.token_lifetime);
        let token = sas_token(&cs.audience(), &cs.key_name, &cs.key, expiry);
        let mut first = authenticated(options, addr, &token).await?;
        let partitions = cbs::partition_ids(first.session(), &cs.entity, &token).await?;
        let n = options.connections.clamp(1, partitions.len());
        let mut receivers = vec![first];
        while receivers.len() < n {
            receivers.push(authenticated(options, addr, &token).await?);
        }
        let after = options
            .from
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let selector = format!("amqp.annotation.x-opt-enqueued-time > '{after}'");
        for (i, id) in partitions.iter().enumerate() {
            let address = format!(
                "{}/ConsumerGroups/{}/Partitions/{id}",
                cs.entity, options.consumer_group
            );
            receivers[i % n]
                .attach(
                    &address,
                    options.credit,
                    vec![selector_filter(&selector)],
                    Some(SenderSettleMode::Settled),
                )
                .await?;
        }
        Ok(Self {
            receivers,
            partitions,
        })
    }

    /// The partition ids the endpoint named, one link each.
    pub fn partitions(&self) -> &[String] {
        &self.partitions
    }

    /// Receives on every partition until `stop` is cancelled, `max` has passed or `out` is
    /// closed.
    pub async fn run(
        self,
        out: mpsc::Sender<Received>,
        stop: CancellationToken,
        max: Duration,
    ) -> ReceiveReport {
        let runs = self
            .receivers
            .into_iter()
            .map(|r| r.run(out.clone(), stop.clone(), max));
        let reports = futures::future::join_all(runs).await;
        drop(out);
        let mut links: Vec<_> = reports.into_iter().flat_map(|r| r.links).collect();
        links.sort_by(|a, b| {
            a.address
                .len()
                .cmp(&b.address.len())
                .then(a.address.cmp(&b.address))
        });
        ReceiveReport { links }
    }
}

/// One connection: TLS, SASL ANONYMOUS, OPEN, BEGIN and a CBS token for the Event Hub.
async fn authenticated(
    options: &EventHubsOptions,
    addr: SocketAddr,
    token: &str,
) -> Result<AmqpReceiver, ReceiverError> {
    let cs = &options.connection;
    let stream = connect(addr, &cs.host, &options.tls).await?;
    let container = format!("fleetbench-verify-{:016x}", rand::random::<u64>());
    let connection = open_connection(stream, SaslMechanism::Anonymous, &container, &cs.host)
        .await
        .map_err(|source| ReceiverError::Open { addr, source })?;
    let mut receiver = AmqpReceiver::begin(connection).await?;
    cbs::put_token(receiver.session(), &cs.audience(), token).await?;
    Ok(receiver)
}

/// The source filter selecting events by an `apache.org:selector-filter:string` expression.
fn selector_filter(selector: &str) -> (String, Value) {
    let name = "apache.org:selector-filter:string";
    let described = serde_amqp::described::Described {
        descriptor: serde_amqp::descriptor::Descriptor::Name(name.into()),
        value: Value::String(selector.to_owned()),
    };
    (name.to_owned(), Value::Described(Box::new(described)))
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, ReceiverError> {
    let found = tokio::net::lookup_host((host, port)).await;
    found.ok().and_then(|mut a| a.next()).ok_or_else(|| {
        ReceiverError::EventHubs(format!("cannot resolve the endpoint host {host:?}"))
    })
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_parse_as_the_portal_writes_them() {
        let cs = ConnectionString::parse(
            "Endpoint=sb://iothub-ns-h-1234.servicebus.windows.net/;SharedAccessKeyName=iothubowner;SharedAccessKey=a2V5;EntityPath=h",
        )
        .unwrap();
        assert_eq!(cs.host, "iothub-ns-h-1234.servicebus.windows.net");
        assert_eq!(cs.port, 5671);
        assert_eq!(
            (cs.key_name.as_str(), cs.key.as_str()),
            ("iothubowner", "a2V5")
        );
        assert_eq!(
            cs.audience(),
            "sb://iothub-ns-h-1234.servicebus.windows.net/h"
        );
        let local = ConnectionString::parse(
            "endpoint=sb://localhost:40123/;sharedaccesskeyname=service;sharedaccesskey=k;entitypath=fleetbench",
        )
        .unwrap();
        assert_eq!((local.host.as_str(), local.port), ("localhost", 40123));
        let missing =
            ConnectionString::parse("Endpoint=sb://h/;SharedAccessKeyName=n;EntityPath=e")
                .unwrap_err()
                .to_string();
        assert!(missing.contains("SharedAccessKey"), "{missing}");
        let bad = ConnectionString::parse(
            "Endpoint=http://h/;SharedAccessKeyName=n;SharedAccessKey=k;EntityPath=e",
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("sb://"), "{bad}");
    }

    #[test]
    fn the_token_signs_the_encoded_audience_and_expiry_with_the_key_text() {
        // Same inputs as Python's quote_plus/HMAC(key.encode()) in the SDK's generate_sas_token.
        let token = sas_token(
            "sb://ns.servicebus.windows.net/hub",
            "service",
            "a2V5",
            1_700_000_000,
        );
        let sig = base64::engine::general_purpose::STANDARD.encode(
            ring::hmac::sign(
                &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"a2V5"),
                b"sb%3A%2F%2Fns.servicebus.windows.net%2Fhub\n1700000000",
            )
            .as_ref(),
        );
        assert_eq!(
            token,
            format!(
                "SharedAccessSignature sr=sb%3A%2F%2Fns.servicebus.windows.net%2Fhub&sig={}&se=1700000000&skn=service",
                utf8_percent_encode(&sig, QUOTE)
            )
        );
    }
}
