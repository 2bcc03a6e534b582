//! IoT Hub's throttles, as token buckets (docs/azure-iot-hub.md section 5): new device
//! connections and device-to-cloud sends per second, by tier and unit count. Over the limit the
//! hub first queues (acknowledgements come later, at the limit rate), and when the queue would
//! hold more than `max_queue` of waiting it refuses: MQTT closes the connection, AMQP rejects
//! with `com.microsoft:device-container-throttled`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// An IoT Hub tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tier {
    /// Free.
    F1,
    /// Basic 1.
    B1,
    /// Basic 2.
    B2,
    /// Basic 3.
    B3,
    /// Standard 1.
    S1,
    /// Standard 2.
    S2,
    /// Standard 3.
    S3,
}

impl FromStr for Tier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "F1" | "FREE" => Self::F1,
            "B1" => Self::B1,
            "B2" => Self::B2,
            "B3" => Self::B3,
            "S1" => Self::S1,
            "S2" => Self::S2,
            "S3" => Self::S3,
            _ => {
                return Err(format!(
                    "unknown IoT Hub tier {s:?}; one of F1, B1, B2, B3, S1, S2, S3"
                ))
            }
        })
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The documented quota of a tier and unit count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// New device connections per second.
    pub connects_per_sec: f64,
    /// Device-to-cloud send operations per second.
    pub sends_per_sec: f64,
}

impl Quota {
    /// The table of "IoT Hub quotas and throttling": Free/B1/S1 the higher of 100/s or
    /// 12/s/unit; B2/S2 120/s/unit; B3/S3 6,000/s/unit (both throttles alike).
    pub fn of(tier: Tier, units: u32) -> Self {
        let u = f64::from(units.max(1));
        let rate = match tier {
            Tier::F1 | Tier::B1 | Tier::S1 => (12.0 * u).max(100.0),
            Tier::B2 | Tier::S2 => 120.0 * u,
            Tier::B3 | Tier::S3 => 6000.0 * u,
        };
        Self {
            connects_per_sec: rate,
            sends_per_sec: rate,
        }
    }
}

/// What the bucket decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead now.
    Now,
    /// Go ahead after this wait (traffic shaping).
    After(Duration),
    /// Refused: the queue is full.
    Refused,
}

/// A token bucket that queues up to `max_queue` of waiting before it refuses.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    max_queue: Duration,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// A bucket of `rate` per second holding a second's worth, queueing up to `max_queue`.
    pub fn new(rate: f64, max_queue: Duration) -> Self {
        Self {
            rate,
            burst: rate.max(1.0),
            max_queue,
            state: Mutex::new((rate.max(1.0), Instant::now())),
        }
    }

    /// Takes one token at `now`.
    pub fn admit(&self, now: Instant) -> Admission {
        let mut s = self.state.lock();
        let (tokens, last) = *s;
        let tokens = (tokens + now.saturating_duration_since(last).as_secs_f64() * self.rate)
            .min(self.burst)
            - 1.0;
        if tokens >= 0.0 {
            *s = (tokens, now);
            return Admission::Now;
        }
        let wait = Duration::from_secs_f64(-tokens / self.rate);
        if wait > self.max_queue {
            // Not taken: the refused request does not use up capacity.
            *s = (tokens + 1.0, now);
            return Admission::Refused;
        }
        *s = (tokens, now);
        Admission::After(wait)
    }
}

/// The hub's throttles.
#[derive(Debug)]
pub struct Throttles {
    /// New connections.
    pub connects: Bucket,
    /// Device-to-cloud sends.
    pub sends: Bucket,
}

impl Throttles {
    /// The throttles of `tier` with `units`, queueing up to `max_queue`.
    pub fn new(tier: Tier, units: u32, max_queue: Duration) -> Self {
        let q = Quota::of(tier, units);
        Self {
            connects: Bucket::new(q.connects_per_sec, max_queue),
            sends: Bucket::new(q.sends_per_sec, max_queue),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_follow_the_documented_table() {
        assert_eq!(Quota::of(Tier::S1, 1).sends_per_sec, 100.0);
        assert_eq!(Quota::of(Tier::S1, 9).sends_per_sec, 108.0);
        assert_eq!(Quota::of(Tier::S2, 2).connects_per_sec, 240.0);
        assert_eq!(Quota::of(Tier::S3, 1).connects_per_sec, 6000.0);
        assert!("s4".parse::<Tier>().is_err());
    }

    #[test]
    fn a_burst_passes_then_is_shaped_then_refused() {
        let b = Bucket::new(10.0, Duration::from_secs(1));
        let now = Instant::now();
        let admitted: Vec<_> = (0..30).map(|_| b.admit(now)).collect();
        assert!(admitted[..10].iter().all(|a| *a == Admission::Now));
        assert_eq!(admitted[10], Admission::After(Duration::from_millis(100)));
        assert_eq!(admitted[19], Admission::After(Duration::from_secs(1)));
        assert!(admitted[20..].iter().all(|a| *a == Admission::Refused));
        // A second later ten more tokens have come back.
        let later = now + Duration::from_secs(2);
        assert_eq!(b.admit(later), Admission::Now);
    }
}
