//! Message bodies: the Azure tutorial's telemetry, or opaque bytes.

use std::fmt::Write as _;

use bytes::Bytes;
use rand::Rng;

use crate::protocol::Telemetry;
use crate::scenario::Payload;

/// Builds message `n` of device `device_id`.
pub(crate) fn telemetry(
    payload: Payload,
    device_id: &str,
    n: u32,
    rng: &mut impl Rng,
) -> Telemetry {
    match payload {
        Payload::Tutorial => {
            // SimulateX509Device: temperature 20..35, humidity 60..80, alert above 30.
            // Rounded to what the body shows, so the alert agrees with the body.
            let round = |x: f64| (x * 100.0).round() / 100.0;
            let temperature = round(20.0 + rng.random::<f64>() * 15.0);
            let humidity = round(60.0 + rng.random::<f64>() * 20.0);
            let mut body = String::with_capacity(96);
            let _ = write!(
                body,
                r#"{{"deviceId":"{device_id}","messageId":{n},"temperature":{temperature:.2},"humidity":{humidity:.2}}}"#
            );
            Telemetry {
                message_id: format!("{device_id}-{n}"),
                body: Bytes::from(body),
                content_type: Some("application/json"),
                content_encoding: Some("utf-8"),
                properties: vec![("temperatureAlert", (temperature > 30.0).to_string())],
            }
        }
        Payload::Bytes(size) => {
            let mut body = vec![0u8; size];
            rng.fill(&mut body[..]);
            Telemetry {
                message_id: format!("{device_id}-{n}"),
                body: Bytes::from(body),
                content_type: None,
                content_encoding: None,
                properties: Vec::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tutorial_body_and_alert_agree() {
        let mut rng = rand::rng();
        for n in 0..200 {
            let t = telemetry(Payload::Tutorial, "d1", n, &mut rng);
            let v: serde_json::Value = serde_json::from_slice(&t.body).unwrap();
            let temp = v["temperature"].as_f64().unwrap();
            assert!((20.0..=35.0).contains(&temp));
            let h = v["humidity"].as_f64().unwrap();
            assert!((60.0..=80.0).contains(&h));
            assert_eq!(v["deviceId"], "d1");
            assert_eq!(v["messageId"], n);
            assert_eq!(t.properties[0].1, (temp > 30.0).to_string());
        }
    }
}
