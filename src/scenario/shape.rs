//! The load shape of a plan: when sessions connect (rate, ramp, Poisson, stages), what each
//! sends (count or duration; open or closed model), and how long it lives (hold, churn).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::{json, Value};

use super::problems::{Overrides, Problems};
use super::schedule::{Arrival, ConnectSchedule, Stage};
use super::{ArrivalKind, ModelKind, PayloadKind, Scenario};

/// How sessions start.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectPlan {
    /// Arrivals (and departures, for stages).
    pub schedule: ConnectSchedule,
    /// Handshakes in flight at most.
    pub max_handshakes: u32,
    /// Timeout of each connect phase.
    pub timeout: Duration,
    /// Local addresses to connect from, round-robin (empty: the kernel chooses).
    pub source_addresses: Vec<IpAddr>,
    /// Added to every arrival: a shard's place in the fleet's constant-rate sequence (zero
    /// unless the run is one shard of several; see `Plan::for_shard`).
    pub offset: Duration,
}

/// What a payload looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// Random bytes of this size.
    Bytes(usize),
    /// The Azure tutorial's JSON with `temperatureAlert`.
    Tutorial,
}

/// When a device's next message is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendModel {
    /// After the last acknowledgement, plus think time.
    Closed {
        /// Pause after each acknowledgement.
        think: Duration,
    },
    /// Every `interval`, whatever the hub does.
    Open {
        /// Time between messages.
        interval: Duration,
    },
}

/// What each device sends per session.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePlan {
    /// Messages per session (`u32::MAX` = until the duration or the schedule stops it).
    pub count: u32,
    /// Stop sending after this long, if set.
    pub duration: Option<Duration>,
    /// Open or closed model.
    pub model: SendModel,
    /// Payload.
    pub payload: Payload,
    /// Acknowledgement timeout.
    pub timeout: Duration,
    /// Acknowledgements awaited at once per device.
    pub max_inflight: u32,
    /// Delivery stamps for a verifying receiver: set at run time when `[verify]` is.
    pub stamp: Option<crate::protocol::stamp::Stamp>,
}

/// Reconnecting after a failure: exponential backoff with jitter, capped.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPlan {
    /// First backoff.
    pub initial: Duration,
    /// Largest backoff.
    pub max: Duration,
    /// Consecutive failures before giving up.
    pub attempts: u32,
}

impl ReconnectPlan {
    /// The wait before reconnect attempt `n` (from 1): `initial * 2^(n-1)`, capped at `max`,
    /// then scaled by a random factor in [0.5, 1) ("equal jitter") so a fleet that lost its
    /// hub at once does not come back at once.
    pub fn backoff(&self, n: u32, rng: &mut impl rand::Rng) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << n.saturating_sub(1).min(20));
        exp.min(self.max).mul_f64(0.5 + rng.random::<f64>() * 0.5)
    }

    pub(super) fn to_json(&self) -> Value {
        json!({"initial": fmt(self.initial), "max": fmt(self.max), "attempts": self.attempts})
    }
}

pub(super) fn reconnect(s: &Scenario, p: &mut Problems<'_>) -> Option<ReconnectPlan> {
    let r = s.reconnect.as_ref()?;
    let plan = ReconnectPlan {
        initial: r.initial.unwrap_or(Duration::from_millis(100)),
        max: r.max.unwrap_or(Duration::from_secs(10)),
        attempts: r.attempts.unwrap_or(20),
    };
    if plan.initial.is_zero() {
        p.add(
            "reconnect.initial",
            "0s is not valid: a fleet reconnecting without pause is a storm",
        );
    }
    if plan.max < plan.initial {
        p.add(
            "reconnect.max",
            format!(
                "{} is less than reconnect.initial {}",
                fmt(plan.max),
                fmt(plan.initial)
            ),
        );
    }
    if plan.attempts == 0 {
        p.add(
            "reconnect.attempts",
            "0 is not valid; leave [reconnect] out to never reconnect",
        );
    }
    Some(plan)
}

/// How long sessions live beyond their messages.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionPlan {
    /// Connect, send, (hold idle with keep-alives), disconnect; once per device.
    Once {
        /// Idle time after the last message.
        hold: Option<Duration>,
    },
    /// Connect, send `messages.count`, disconnect, and reconnect, until `duration` passes.
    Churn {
        /// How long to keep cycling.
        duration: Duration,
    },
    /// Sessions live until the stages take them down.
    Staged,
}

fn fmt(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl ConnectPlan {
    pub(super) fn to_json(&self) -> Value {
        let schedule = match &self.schedule {
            ConnectSchedule::Burst => json!({"burst": true}),
            ConnectSchedule::Rate { rate, arrival } => match arrival {
                Arrival::Constant => json!({"rate": rate, "arrival": "constant"}),
                Arrival::Poisson { seed } => {
                    json!({"rate": rate, "arrival": "poisson", "seed": seed})
                }
            },
            ConnectSchedule::Stages(stages) => json!({"stages": stages.iter()
                .map(|s| json!({"duration": fmt(s.duration), "sessions": s.sessions}))
                .collect::<Vec<_>>()}),
        };
        json!({"schedule": schedule, "max-handshakes": self.max_handshakes, "timeout": fmt(self.timeout),
               "source-addresses": self.source_addresses.iter().map(ToString::to_string).collect::<Vec<_>>()})
    }
}

impl MessagePlan {
    pub(super) fn to_json(&self) -> Value {
        let model = match self.model {
            SendModel::Open { interval } => json!({"model": "open", "interval": fmt(interval)}),
            SendModel::Closed { think } => json!({"model": "closed", "think": fmt(think)}),
        };
        json!({"count": (self.count != u32::MAX).then_some(self.count),
               "duration": self.duration.map(fmt), "model": model,
               "payload": match self.payload { Payload::Tutorial => json!("tutorial"), Payload::Bytes(n) => json!({"bytes": n}) },
               "timeout": fmt(self.timeout), "max-inflight": self.max_inflight})
    }
}

impl SessionPlan {
    pub(super) fn to_json(&self) -> Value {
        match self {
            Self::Once { hold } => json!({"lifetime": "once", "hold": hold.map(fmt)}),
            Self::Churn { duration } => json!({"lifetime": "churn", "duration": fmt(*duration)}),
            Self::Staged => json!({"lifetime": "stages"}),
        }
    }
}

pub(super) fn connect(s: &Scenario, o: &Overrides, p: &mut Problems<'_>) -> Option<ConnectPlan> {
    let c = &s.connect;
    let rate = o.rate.or(c.rate);
    if let Some(r) = rate {
        if !(r.is_finite() && r > 0.0 && r <= 1_000_000.0) {
            p.add(
                "connect.rate",
                format!("{r} is not valid: a rate above 0 and at most 1,000,000 per second"),
            );
        }
    }
    if rate.is_some() && c.ramp.is_some() {
        p.add(
            "connect.ramp",
            "contradicts connect.rate: give a rate or a ramp time, not both",
        );
    }
    if let (Some(stages), true) = (&s.stages, rate.is_some() || c.ramp.is_some()) {
        let field = if rate.is_some() {
            "connect.rate"
        } else {
            "connect.ramp"
        };
        p.add(
            field,
            format!(
                "contradicts [[stages]] ({} stages already set the connect schedule)",
                stages.len()
            ),
        );
    }
    let arrival = match (c.arrival.unwrap_or(ArrivalKind::Constant), rate) {
        (ArrivalKind::Constant, _) => Arrival::Constant,
        (ArrivalKind::Poisson, Some(_)) => Arrival::Poisson {
            seed: c.seed.unwrap_or(1),
        },
        (ArrivalKind::Poisson, None) => {
            p.add("connect.arrival", "poisson arrivals need connect.rate");
            Arrival::Constant
        }
    };
    let devices = o.devices.or(s.fleet.devices).unwrap_or(100);
    let schedule = if let Some(stages) = &s.stages {
        if stages.is_empty() {
            p.add("stages", "an empty list of stages runs nothing");
        }
        ConnectSchedule::Stages(
            stages
                .iter()
                .map(|st| Stage {
                    duration: st.duration,
                    sessions: st.sessions,
                })
                .collect(),
        )
    } else if let Some(r) = rate {
        ConnectSchedule::Rate { rate: r, arrival }
    } else if let Some(ramp) = c.ramp {
        if ramp.is_zero() {
            p.add(
                "connect.ramp",
                "0s is not valid; leave connect.ramp out for a burst",
            );
        }
        ConnectSchedule::Rate {
            rate: devices as f64 / ramp.as_secs_f64().max(1e-3),
            arrival,
        }
    } else {
        ConnectSchedule::Burst
    };
    let max_handshakes = o.max_handshakes.or(c.max_handshakes).unwrap_or(64);
    if max_handshakes == 0 {
        p.add(
            "connect.max-handshakes",
            "0 is not valid: at least one handshake must be allowed",
        );
    }
    let timeout = c.timeout.unwrap_or(Duration::from_secs(10));
    if timeout.is_zero() {
        p.add("connect.timeout", "0s is not valid");
    }
    let mut source_addresses = Vec::new();
    for item in c.source_addresses.iter().flatten() {
        match parse_addresses(item) {
            Ok(list) => source_addresses.extend(list),
            Err(e) => p.add(
                "connect.source-addresses",
                format!("{item:?} is not valid: {e}"),
            ),
        }
    }
    Some(ConnectPlan {
        schedule,
        max_handshakes,
        timeout,
        source_addresses,
        offset: Duration::ZERO,
    })
}

/// `"127.0.0.2"` or an IPv4 range `"127.0.0.2-127.0.0.50"`.
pub fn parse_addresses(item: &str) -> Result<Vec<IpAddr>, String> {
    match item.split_once('-') {
        None => item
            .trim()
            .parse::<IpAddr>()
            .map(|a| vec![a])
            .map_err(|_| "not an IP address".into()),
        Some((a, b)) => {
            let a: Ipv4Addr = a
                .trim()
                .parse()
                .map_err(|_| "range start is not an IPv4 address")?;
            let b: Ipv4Addr = b
                .trim()
                .parse()
                .map_err(|_| "range end is not an IPv4 address")?;
            let (a, b) = (u32::from(a), u32::from(b));
            if b < a {
                return Err("range ends before it starts".into());
            }
            if b - a >= 65_536 {
                return Err("range holds more than 65,536 addresses".into());
            }
            Ok((a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))).collect())
        }
    }
}

pub(super) fn messages(s: &Scenario, o: &Overrides, p: &mut Problems<'_>) -> Option<MessagePlan> {
    let m = &s.messages;
    let payload = match (m.payload.unwrap_or(PayloadKind::Tutorial), m.size) {
        (PayloadKind::Tutorial, None) => Payload::Tutorial,
        (PayloadKind::Tutorial, Some(_)) => {
            p.add(
                "messages.size",
                "only applies to payload = \"bytes\"; the tutorial payload has its own size",
            );
            Payload::Tutorial
        }
        (PayloadKind::Bytes, size) => {
            let size = size.unwrap_or(256);
            if size > 1024 * 1024 {
                p.add(
                    "messages.size",
                    format!("{size} is not valid: at most 1 MiB"),
                );
            }
            Payload::Bytes(size)
        }
    };
    let timeout = m.timeout.unwrap_or(Duration::from_secs(30));
    if timeout.is_zero() {
        p.add("messages.timeout", "0s is not valid");
    }
    let model = match m.model.unwrap_or(ModelKind::Open) {
        ModelKind::Open => {
            if m.think.is_some() {
                p.add(
                    "messages.think",
                    "only applies to model = \"closed\"; the open model sends every interval",
                );
            }
            let interval = o.interval.or(m.interval).unwrap_or(Duration::from_secs(1));
            SendModel::Open { interval }
        }
        ModelKind::Closed => {
            if m.interval.is_some() || o.interval.is_some() {
                p.add("messages.interval", "contradicts model = \"closed\": the closed model waits for each acknowledgement plus think time");
            }
            SendModel::Closed {
                think: m.think.unwrap_or(Duration::ZERO),
            }
        }
    };
    let mut max_inflight = m.max_inflight.unwrap_or(16);
    if max_inflight == 0 || max_inflight > 65_535 {
        p.add(
            "messages.max-inflight",
            format!("{max_inflight} is not valid: 1 to 65535"),
        );
    }
    if let SendModel::Closed { .. } = model {
        max_inflight = 1;
    }
    let churn = s.churn.as_ref();
    if churn.is_some() && (m.count.is_some() || m.duration.is_some()) {
        let field = if m.count.is_some() {
            "messages.count"
        } else {
            "messages.duration"
        };
        p.add(
            field,
            "contradicts [churn]: each churn session sends churn.messages",
        );
    }
    let count = match (churn, o.messages.or(m.count), m.duration, &s.stages) {
        (Some(c), _, _, _) => c.messages.unwrap_or(0),
        (None, Some(n), _, _) => n,
        // A duration or stages bound the messages; no count means "until then".
        (None, None, Some(_), _) | (None, None, None, Some(_)) => u32::MAX,
        (None, None, None, None) => 5,
    };
    if let Some(d) = m.duration {
        if d.is_zero() {
            p.add("messages.duration", "0s is not valid");
        }
    }
    Some(MessagePlan {
        count,
        duration: m.duration,
        model,
        payload,
        timeout,
        max_inflight,
        stamp: None,
    })
}

pub(super) fn session(s: &Scenario, p: &mut Problems<'_>) -> Option<SessionPlan> {
    let hold = s.session.hold;
    match (&s.churn, &s.stages) {
        (Some(_), Some(_)) => {
            p.add(
                "churn",
                "contradicts [[stages]]: stages keep sessions open, churn cycles them",
            );
            None
        }
        (Some(c), None) => {
            if hold.is_some() {
                p.add(
                    "session.hold",
                    "contradicts [churn]: churn sessions disconnect after their messages",
                );
            }
            if s.connect.rate.is_none() {
                p.add(
                    "churn",
                    "churn needs connect.rate: reconnects arrive at a fixed rate",
                );
            }
            if c.duration.is_zero() {
                p.add("churn.duration", "0s is not valid");
            }
            Some(SessionPlan::Churn {
                duration: c.duration,
            })
        }
        (None, Some(_)) => {
            if hold.is_some() {
                p.add(
                    "session.hold",
                    "contradicts [[stages]]: stages decide when sessions close",
                );
            }
            Some(SessionPlan::Staged)
        }
        (None, None) => Some(SessionPlan::Once { hold }),
    }
}

/// With stages, the fleet must hold the peak number of sessions.
pub(super) fn check_fleet_size(
    devices: u64,
    explicit: bool,
    c: &ConnectPlan,
    p: &mut Problems<'_>,
) {
    if let Some(peak) = c.schedule.peak_sessions() {
        if explicit && devices < peak {
            p.add(
                "fleet.devices",
                format!("{devices} is too few: the stages open {peak} sessions at once, one device each"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_ranges_expand() {
        let a = parse_addresses("127.0.0.2-127.0.0.4").unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[2].to_string(), "127.0.0.4");
        assert!(parse_addresses("127.0.0.9-127.0.0.2").is_err());
        assert!(parse_addresses("nope").is_err());
        assert_eq!(parse_addresses("::1").unwrap().len(), 1);
    }
}
