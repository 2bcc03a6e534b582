//! Message bodies: the Azure tutorial's telemetry, or opaque bytes.
//!
//! Built once per message on the send path, so without `format!`, float formatting or
//! per-message property strings.

use bytes::Bytes;
use rand::Rng;

use crate::protocol::stamp::{self, Stamp};
use crate::protocol::Telemetry;
use crate::scenario::Payload;

/// A message's delivery stamp: the run's, this device's index, and the send instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamping {
    pub(crate) stamp: Stamp,
    pub(crate) device: u32,
    pub(crate) sent_us: u64,
}

/// The tutorial's alert property, as IoT Hub application properties (strings).
const ALERT: [(&str, &str); 1] = [("temperatureAlert", "true")];
const NO_ALERT: [(&str, &str); 1] = [("temperatureAlert", "false")];

/// Builds message `n` of device `device_id`, stamped for a verifying receiver if asked
/// (`protocol::stamp`: the property always, the payload for dialects without properties).
pub(crate) fn telemetry(
    payload: Payload,
    device_id: &str,
    n: u32,
    stamping: Option<Stamping>,
    rng: &mut impl Rng,
) -> Telemetry {
    let in_payload = stamping.filter(|s| s.stamp.in_payload);
    let mut digits = itoa::Buffer::new();
    let n_text = digits.format(n);
    let mut message_id = String::with_capacity(device_id.len() + 1 + n_text.len());
    message_id.push_str(device_id);
    message_id.push('-');
    message_id.push_str(n_text);
    match payload {
        Payload::Tutorial => {
            // SimulateX509Device: temperature 20..35, humidity 60..80, alert above 30, in
            // hundredths, so the alert agrees with the two decimals the body shows.
            let temperature = rng.random_range(2000..=3500u32);
            let humidity = rng.random_range(6000..=8000u32);
            let mut body = Vec::with_capacity(120 + device_id.len());
            body.extend_from_slice(br#"{"deviceId":""#);
            body.extend_from_slice(device_id.as_bytes());
            body.extend_from_slice(br#"","messageId":"#);
            body.extend_from_slice(n_text.as_bytes());
            body.extend_from_slice(br#","temperature":"#);
            push_hundredths(&mut body, temperature);
            body.extend_from_slice(br#","humidity":"#);
            push_hundredths(&mut body, humidity);
            if let Some(s) = in_payload {
                stamp::push_json(&mut body, s.stamp.run, s.sent_us);
            }
            body.push(b'}');
            Telemetry {
                message_id,
                body: Bytes::from(body),
                content_type: Some("application/json"),
                content_encoding: Some("utf-8"),
                properties: if temperature > 3000 {
                    &ALERT
                } else {
                    &NO_ALERT
                },
                sent_us: stamping.map(|s| s.sent_us),
            }
        }
        Payload::Bytes(size) => {
            let mut body = vec![0u8; size];
            rng.fill(&mut body[..]);
            if let Some(s) = in_payload {
                stamp::write_binary(&mut body, s.stamp.run, s.device, n, s.sent_us);
            }
            Telemetry {
                message_id,
                body: Bytes::from(body),
                content_type: None,
                content_encoding: None,
                properties: &[],
                sent_us: stamping.map(|s| s.sent_us),
            }
        }
    }
}

/// Appends `v / 100` with two decimals (`2507` as `25.07`).
fn push_hundredths(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(itoa::Buffer::new().format(v / 100).as_bytes());
    let frac = (v % 100) as u8;
    out.extend_from_slice(&[b'.', b'0' + frac / 10, b'0' + frac % 10]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundredths_keep_two_decimals() {
        for (v, text) in [
            (2000, "20.00"),
            (2507, "25.07"),
            (3090, "30.90"),
            (3500, "35.00"),
        ] {
            let mut out = Vec::new();
            push_hundredths(&mut out, v);
            assert_eq!(out, text.as_bytes());
        }
    }

    #[test]
    fn tutorial_body_and_alert_agree() {
        let mut rng = rand::rng();
        for n in 0..200 {
            let t = telemetry(Payload::Tutorial, "d1", n, None, &mut rng);
            let v: serde_json::Value = serde_json::from_slice(&t.body).unwrap();
            let temp = v["temperature"].as_f64().unwrap();
            assert!((20.0..=35.0).contains(&temp));
            let h = v["humidity"].as_f64().unwrap();
            assert!((60.0..=80.0).contains(&h));
            assert_eq!(v["deviceId"], "d1");
            assert_eq!(v["messageId"], n);
            assert_eq!(t.properties[0].1, (temp > 30.0).to_string());
            assert_eq!(t.message_id, format!("d1-{n}"));
        }
    }

    #[test]
    fn stamps_go_in_the_payload_only_where_asked() {
        let mut rng = rand::rng();
        let s = Stamping {
            stamp: Stamp {
                run: 0xabc,
                in_payload: true,
            },
            device: 4,
            sent_us: 99,
        };
        let t = telemetry(Payload::Bytes(40), "d1", 7, Some(s), &mut rng);
        let read = stamp::read(&t.body).unwrap();
        assert_eq!((read.run, read.seq, read.sent_us), (0xabc, 7, 99));
        assert_eq!(t.sent_us, Some(99));
        let t = telemetry(Payload::Tutorial, "d1", 7, Some(s), &mut rng);
        let read = stamp::read(&t.body).unwrap();
        assert_eq!(read.device, stamp::StampedDevice::Id("d1".into()));
        let props_only = Stamping {
            stamp: Stamp {
                in_payload: false,
                ..s.stamp
            },
            ..s
        };
        let t = telemetry(Payload::Tutorial, "d1", 7, Some(props_only), &mut rng);
        assert!(stamp::read(&t.body).is_none());
        assert_eq!(t.sent_us, Some(99));
    }
}
