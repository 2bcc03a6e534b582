//! The delivery stamp: what a message carries so that a verifying receiver can match it to
//! what was sent (run id, device, sequence number, send instant). Where a dialect has
//! properties the send instant travels as `fleetbench-sent` (unix µs, decimal) next to the
//! message id `{device}-{n}`; the generic MQTT 3.1.1 dialect has none, so the payload carries it:
//!
//! - the tutorial's JSON gets two more fields, `"fleetbenchRun":"<16 hex>","sentUs":<unix µs>`
//!   (its `deviceId` and `messageId` already say the device and the sequence number);
//! - a `bytes` payload's first [`BINARY_LEN`] bytes are replaced by a fixed header, all
//!   big-endian: `FBv1` | run id (8) | device index in the run (4) | sequence (4) | unix µs (8).
//!
//! Written on the send path without `format!` or allocation beyond the body's own.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The property that carries the send instant (unix time in microseconds, decimal).
pub const SENT_PROPERTY: &str = "fleetbench-sent";
/// The binary header's first bytes.
pub const MAGIC: [u8; 4] = *b"FBv1";
/// Length of the binary header: the smallest `bytes` payload that can carry it.
pub const BINARY_LEN: usize = 28;

/// How a run stamps its messages (set only when a verifying receiver runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The run id (16 hex characters as text).
    pub run: u64,
    /// Stamp the payload too (the generic MQTT dialect, which has no properties).
    pub in_payload: bool,
}

/// One message's stamp as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadStamp {
    /// Run id.
    pub run: u64,
    /// The device: its id (JSON) or its index in the run (binary).
    pub device: StampedDevice,
    /// Sequence number of the message from its device.
    pub seq: u32,
    /// Send instant, unix µs.
    pub sent_us: u64,
}

/// How a stamp names its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StampedDevice {
    /// By id.
    Id(String),
    /// By index in the run's device list.
    Index(u32),
}

/// Unix time in µs of a monotonic instant: one anchor per process, so that the send and the
/// delivery instants of one host are read off the same clock.
pub fn unix_micros(at: Instant) -> u64 {
    static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();
    let (base, base_us) = *ANCHOR.get_or_init(|| {
        let us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        (Instant::now(), us)
    });
    match at.checked_duration_since(base) {
        Some(d) => base_us + d.as_micros() as u64,
        None => base_us.saturating_sub(base.duration_since(at).as_micros() as u64),
    }
}

/// Appends `v` as 16 lowercase hex digits.
pub fn push_hex(out: &mut Vec<u8>, v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for i in (0..16).rev() {
        out.push(DIGITS[((v >> (i * 4)) & 0xf) as usize]);
    }
}

/// Appends the JSON stamp fields (to go before a tutorial body's closing brace).
pub fn push_json(out: &mut Vec<u8>, run: u64, sent_us: u64) {
    out.extend_from_slice(br#","fleetbenchRun":""#);
    push_hex(out, run);
    out.extend_from_slice(br#"","sentUs":"#);
    out.extend_from_slice(itoa::Buffer::new().format(sent_us).as_bytes());
}

/// Writes the binary header over the first [`BINARY_LEN`] bytes of `body` (which is at least
/// that long: the plan checks it).
pub fn write_binary(body: &mut [u8], run: u64, device: u32, seq: u32, sent_us: u64) {
    if body.len() < BINARY_LEN {
        return;
    }
    body[..4].copy_from_slice(&MAGIC);
    body[4..12].copy_from_slice(&run.to_be_bytes());
    body[12..16].copy_from_slice(&device.to_be_bytes());
    body[16..20].copy_from_slice(&seq.to_be_bytes());
    body[20..28].copy_from_slice(&sent_us.to_be_bytes());
}

/// Reads a stamp from a body, binary or JSON; `None` if it carries none.
pub fn read(body: &[u8]) -> Option<ReadStamp> {
    if body.len() >= BINARY_LEN && body[..4] == MAGIC {
        let be8 = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[r]);
            u64::from_be_bytes(b)
        };
        let be4 = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&body[r]);
            u32::from_be_bytes(b)
        };
        return Some(ReadStamp {
            run: be8(4..12),
            device: StampedDevice::Index(be4(12..16)),
            seq: be4(16..20),
            sent_us: be8(20..28),
        });
    }
    if body.first() != Some(&b'{') {
        return None;
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Json<'a> {
        device_id: &'a str,
        message_id: u32,
        fleetbench_run: &'a str,
        sent_us: u64,
    }
    let j: Json<'_> = serde_json::from_slice(body).ok()?;
    Some(ReadStamp {
        run: u64::from_str_radix(j.fleetbench_run, 16).ok()?,
        device: StampedDevice::Id(j.device_id.to_owned()),
        seq: j.message_id,
        sent_us: j.sent_us,
    })
}

/// Parses a message id `{device}-{n}` into its parts.
pub fn split_message_id(id: &str) -> Option<(&str, u32)> {
    let (device, n) = id.rsplit_once('-')?;
    Some((device, n.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_stamps_round_trip() {
        let mut body = vec![7u8; 40];
        write_binary(
            &mut body,
            0xdead_beef_0123_4567,
            42,
            9,
            1_700_000_000_000_000,
        );
        let s = read(&body).unwrap();
        assert_eq!(s.run, 0xdead_beef_0123_4567);
        assert_eq!(s.device, StampedDevice::Index(42));
        assert_eq!((s.seq, s.sent_us), (9, 1_700_000_000_000_000));
        assert_eq!(body[39], 7, "bytes past the header stay");
    }

    #[test]
    fn json_stamps_round_trip() {
        let mut body = br#"{"deviceId":"d-1","messageId":3,"temperature":20.00"#.to_vec();
        push_json(&mut body, 0x0123_4567_89ab_cdef, 55);
        body.push(b'}');
        let text = std::str::from_utf8(&body).unwrap();
        assert!(
            text.contains(r#""fleetbenchRun":"0123456789abcdef""#),
            "{text}"
        );
        let s = read(&body).unwrap();
        assert_eq!(s.device, StampedDevice::Id("d-1".into()));
        assert_eq!((s.run, s.seq, s.sent_us), (0x0123_4567_89ab_cdef, 3, 55));
        assert_eq!(split_message_id("dev-00-12"), Some(("dev-00", 12)));
    }

    #[test]
    fn the_clock_is_monotonic_and_unix() {
        let a = unix_micros(Instant::now());
        let b = unix_micros(Instant::now());
        assert!(b >= a && a > 1_600_000_000_000_000);
    }
}
