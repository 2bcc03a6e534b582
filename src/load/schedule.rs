//! Pure arrival schedules: when the k-th session should connect and when a device's i-th
//! message should go out, as offsets from the start. No I/O, no tokio: tested with numbers.

use std::time::Duration;

/// When sessions arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConnectSchedule {
    /// All at once; the handshake cap alone paces them (a connection storm).
    Burst,
    /// A fixed rate per second, whatever the hub does (open model).
    Rate(f64),
}

impl ConnectSchedule {
    /// Offset of the k-th arrival (k from 0).
    pub fn offset(self, k: u64) -> Duration {
        match self {
            Self::Burst => Duration::ZERO,
            // k / rate seconds; exact in f64 for every k a run can reach.
            Self::Rate(r) => Duration::from_secs_f64(k as f64 / r),
        }
    }
}

/// When one device's messages are due, from its first send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendSchedule {
    /// Messages in all.
    pub count: u32,
    /// Time between them.
    pub interval: Duration,
}

impl SendSchedule {
    /// Offset of message i (from 0), or `None` past the end.
    pub fn offset(self, i: u32) -> Option<Duration> {
        (i < self.count).then(|| self.interval * i)
    }
}

/// How late something started relative to when it was due (zero when early or on time).
pub fn lateness(due: Duration, started: Duration) -> Duration {
    started.saturating_sub(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_spreads_arrivals_evenly() {
        let s = ConnectSchedule::Rate(200.0);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(5));
        assert_eq!(s.offset(200), Duration::from_secs(1));
        assert_eq!(s.offset(1000), Duration::from_secs(5));
    }

    #[test]
    fn burst_arrives_at_once() {
        assert_eq!(ConnectSchedule::Burst.offset(1_000_000), Duration::ZERO);
    }

    #[test]
    fn sends_are_interval_apart_and_end() {
        let s = SendSchedule {
            count: 3,
            interval: Duration::from_millis(250),
        };
        assert_eq!(s.offset(0), Some(Duration::ZERO));
        assert_eq!(s.offset(2), Some(Duration::from_millis(500)));
        assert_eq!(s.offset(3), None);
    }

    #[test]
    fn a_stalled_target_shows_as_lateness_of_every_later_send() {
        // A device whose hub stalled for 2 s after message 0 sends 1..4 late: the intended-start
        // latency of each is what the stall cost it, not the short service time after it.
        let s = SendSchedule {
            count: 5,
            interval: Duration::from_millis(100),
        };
        let resumed = Duration::from_millis(2000);
        let late: Vec<_> = (1..5)
            .map(|i| lateness(s.offset(i).unwrap(), resumed))
            .collect();
        assert_eq!(late[0], Duration::from_millis(1900));
        assert_eq!(late[3], Duration::from_millis(1600));
        assert_eq!(
            lateness(Duration::from_secs(1), Duration::ZERO),
            Duration::ZERO
        );
    }
}
