//! The endpoint's two ways in, as Service Bus and Event Hubs offer them: SASL PLAIN with the
//! shared access policy name and key, or SASL ANONYMOUS followed by a CBS `put-token` of a shared
//! access signature (`SharedAccessSignature sr=..&sig=..&se=..&skn=..`) signed with the key's
//! text. Checked here with ring's HMAC-SHA256 (constant-time comparison).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use percent_encoding::percent_decode_str;

/// The key a connection's SASL PLAIN must name, and whether it did.
#[derive(Debug, Clone)]
pub(crate) struct PlainAuth {
    key_name: String,
    key: String,
    granted: Arc<AtomicBool>,
}

impl PlainAuth {
    pub(crate) fn new(key_name: &str, key: &str) -> Self {
        Self {
            key_name: key_name.to_owned(),
            key: key.to_owned(),
            granted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Checks a PLAIN initial response (`authzid NUL authcid NUL passwd`): the policy name and
    /// its key. Remembers a success for the connection.
    pub(crate) fn check(&self, response: Option<&[u8]>) -> bool {
        let Some(response) = response else {
            return false;
        };
        let mut parts = response.split(|b| *b == 0);
        let (_authzid, Some(user), Some(pass), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let ok = same(user, self.key_name.as_bytes()) & same(pass, self.key.as_bytes());
        if ok {
            self.granted.store(true, Ordering::Relaxed);
        }
        ok
    }

    /// Whether this connection authenticated with SASL PLAIN.
    pub(crate) fn granted(&self) -> bool {
        self.granted.load(Ordering::Relaxed)
    }
}

/// Constant-time equality (length aside).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenError {
    Malformed,
    UnknownKey,
    Expired,
    BadSignature,
}

impl TokenError {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Malformed => "not a SharedAccessSignature sr=..&sig=..&se=..&skn=.. token",
            Self::UnknownKey => "skn names no shared access policy of this hub",
            Self::Expired => "the token has expired (se is in the past)",
            Self::BadSignature => "the signature does not match the policy's key",
        }
    }
}

/// Checks a shared access signature against the policy and returns its decoded audience (`sr`).
/// The signed string is the token's own (encoded) `sr`, a newline and `se`.
pub(crate) fn verify(token: &str, key_name: &str, key: &str) -> Result<String, TokenError> {
    let fields = token
        .strip_prefix("SharedAccessSignature ")
        .ok_or(TokenError::Malformed)?;
    let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
    for kv in fields.split('&') {
        match kv.split_once('=') {
            Some(("sr", v)) => sr = Some(v),
            Some(("sig", v)) => sig = Some(v),
            Some(("se", v)) => se = Some(v),
            Some(("skn", v)) => skn = Some(v),
            _ => {}
        }
    }
    let (Some(sr), Some(sig), Some(se), Some(skn)) = (sr, sig, se, skn) else {
        return Err(TokenError::Malformed);
    };
    if percent_decode_str(skn).decode_utf8_lossy() != key_name {
        return Err(TokenError::UnknownKey);
    }
    let expiry: u64 = se.parse().map_err(|_| TokenError::Malformed)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if expiry <= now {
        return Err(TokenError::Expired);
    }
    let sig = percent_decode_str(sig).decode_utf8_lossy();
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig.as_bytes())
        .map_err(|_| TokenError::Malformed)?;
    let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    ring::hmac::verify(&hmac, format!("{sr}\n{se}").as_bytes(), &sig)
        .map_err(|_| TokenError::BadSignature)?;
    Ok(percent_decode_str(sr).decode_utf8_lossy().into_owned())
}

/// Whether a token for `audience` (`sb://{host}/{path}`) covers `entity`: the namespace (empty
/// path) covers every entity; otherwise the path must be the entity or lie under it. The host
/// is not compared (the hub answers to any name its certificate carries).
pub(crate) fn covers(audience: &str, entity: &str) -> bool {
    // Any scheme: clients write sb://, amqps:// or amqp:// (the Service Bus SAS page's sample).
    let rest = audience.split_once("://").map_or(audience, |(_, r)| r);
    let path = rest
        .split_once('/')
        .map_or("", |(_, p)| p)
        .trim_matches('/');
    let path = path.to_ascii_lowercase();
    let entity = entity.to_ascii_lowercase();
    path.is_empty() || path == entity || path.starts_with(&format!("{entity}/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

    /// Signs as Microsoft's Python SDK does (`quote_plus`, HMAC over the key's text); written
    /// here again so that the hub's check does not lean on fleetbench's own client.
    fn sas_token(audience: &str, key_name: &str, key: &str, expiry: u64) -> String {
        let sr = utf8_percent_encode(audience, NON_ALPHANUMERIC).to_string();
        let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
        let signed = ring::hmac::sign(&hmac, format!("{sr}\n{expiry}").as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(signed.as_ref());
        let sig = utf8_percent_encode(&sig, NON_ALPHANUMERIC);
        format!("SharedAccessSignature sr={sr}&sig={sig}&se={expiry}&skn={key_name}")
    }

    fn later() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + 600
    }

    #[test]
    fn a_token_signed_with_the_key_is_accepted_and_names_its_audience() {
        let token = sas_token("sb://localhost/fleetbench", "service", "c2VjcmV0", later());
        assert_eq!(
            verify(&token, "service", "c2VjcmV0").as_deref(),
            Ok("sb://localhost/fleetbench")
        );
        assert_eq!(
            verify(&token, "service", "b3RoZXI="),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&token, "iothubowner", "c2VjcmV0"),
            Err(TokenError::UnknownKey)
        );
        let old = sas_token("sb://localhost/fleetbench", "service", "c2VjcmV0", 1);
        assert_eq!(
            verify(&old, "service", "c2VjcmV0"),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify("Bearer x", "service", "k"),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn audiences_cover_their_entity_or_the_whole_namespace() {
        assert!(covers("sb://h:5671/fleetbench", "fleetbench"));
        assert!(covers("sb://h/", "fleetbench"));
        assert!(covers("amqp://h/fleetbench", "fleetbench"));
        assert!(covers(
            "sb://h/FleetBench/ConsumerGroups/$Default",
            "fleetbench"
        ));
        assert!(!covers("sb://h/other", "fleetbench"));
    }

    #[test]
    fn plain_needs_the_policy_name_and_key() {
        let plain = PlainAuth::new("service", "k3y");
        assert!(!plain.check(Some(b"\0service\0wrong")));
        assert!(!plain.granted());
        assert!(!plain.check(None));
        assert!(plain.check(Some(b"\0service\0k3y")));
        assert!(plain.granted());
    }
}
