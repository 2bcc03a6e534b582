//! What the hub accounts for: messages received by protocol and by the registered CA that
//! verified the sending device, sessions accepted by protocol, sessions refused by protocol and
//! reason. Exposed as OpenMetrics text (`hub serve --metrics`) and as a summary when the hub
//! stops; per run in `runs` (`GET /runs/<run-id>`). Each refusal is also logged at the default verbosity, at most
//! [`REFUSALS_SHOWN_PER_SECOND`] lines a second, then one line saying how many were not shown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Refusal;

mod runs;

pub(crate) use runs::RunCounter;
pub use runs::{RunAccount, RUNS_KEPT, RUN_PROPERTY};

/// Refusal log lines shown per second; the rest are counted and announced in one line.
pub const REFUSALS_SHOWN_PER_SECOND: u32 = 10;

/// The protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// AMQP 1.0 over TLS.
    Amqp,
    /// MQTT 3.1.1 over TLS.
    Mqtt,
}

impl Protocol {
    /// Both, in label order.
    pub const ALL: [Self; 2] = [Self::Amqp, Self::Mqtt];

    /// The label value (`amqp`, `mqtt`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Amqp => "amqp",
            Self::Mqtt => "mqtt",
        }
    }
}

/// A counter shared by the sessions that count into it.
type Counter = Arc<AtomicU64>;

/// Counts by protocol, CA and refusal reason.
#[derive(Debug, Default)]
pub struct Accounts {
    received: Mutex<BTreeMap<(Protocol, Arc<str>), Counter>>,
    accepted: [AtomicU64; 2],
    refused: Mutex<BTreeMap<(Protocol, &'static str), u64>>,
    log: Mutex<LogWindow>,
    logging: AtomicBool,
    runs: runs::Runs,
}

/// The refusal log's current one-second window.
#[derive(Debug, Default)]
struct LogWindow {
    started: Option<Instant>,
    shown: u32,
    hidden: u64,
}

/// A copy of [`Accounts`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountsSnapshot {
    /// Messages received by protocol and verifying CA.
    pub received: Vec<(Protocol, String, u64)>,
    /// Sessions accepted by protocol.
    pub accepted: Vec<(Protocol, u64)>,
    /// Sessions refused by protocol and reason.
    pub refused: Vec<(Protocol, &'static str, u64)>,
    /// The runs kept ([`RUNS_KEPT`]), oldest first: run id, devices and messages counted.
    pub runs: Vec<(String, u64, u64)>,
}

impl Accounts {
    /// The counter of messages received over `protocol` from devices `ca` vouched for; a
    /// session takes it once, so counting a message is one atomic add.
    pub(crate) fn received_counter(&self, protocol: Protocol, ca: &Arc<str>) -> Arc<AtomicU64> {
        self.received
            .lock()
            .entry((protocol, ca.clone()))
            .or_default()
            .clone()
    }

    /// Counts one accepted session.
    pub(crate) fn accept(&self, protocol: Protocol) {
        self.accepted[protocol as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Whether `Accounts::refuse` logs (off by default).
    pub fn log_refusals(&self, on: bool) {
        self.logging.store(on, Ordering::Relaxed);
    }

    /// Counts one refused session and, if logging, logs it (rate-limited).
    pub(crate) fn refuse(&self, protocol: Protocol, device: &str, refusal: &Refusal) {
        self.refuse_for(protocol, device, refusal.name(), refusal);
    }

    /// Counts one session refused for `reason` (a label value), described by `why`; logs it
    /// unless `device` is empty (a failed TLS handshake names no device).
    pub(crate) fn refuse_for(
        &self,
        protocol: Protocol,
        device: &str,
        reason: &'static str,
        why: &dyn std::fmt::Display,
    ) {
        *self.refused.lock().entry((protocol, reason)).or_default() += 1;
        if device.is_empty() || !self.logging.load(Ordering::Relaxed) {
            return;
        }
        let show = {
            let mut log = self.log.lock();
            let now = Instant::now();
            if log
                .started
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
            {
                announce_hidden(std::mem::take(&mut log.hidden));
                *log = LogWindow {
                    started: Some(now),
                    ..LogWindow::default()
                };
            }
            if log.shown < REFUSALS_SHOWN_PER_SECOND {
                log.shown += 1;
                true
            } else {
                log.hidden += 1;
                false
            }
        };
        if show {
            tracing::warn!(
                "hub refused {} session of device {device:?} ({reason}): {why}",
                protocol.name()
            );
        }
    }

    /// Logs how many refusals the rate limit held back, if any (at shutdown).
    pub fn flush_log(&self) {
        announce_hidden(std::mem::take(&mut self.log.lock().hidden));
    }

    /// A copy of the counts.
    pub fn snapshot(&self) -> AccountsSnapshot {
        AccountsSnapshot {
            received: self
                .received
                .lock()
                .iter()
                .map(|((p, ca), n)| (*p, ca.to_string(), n.load(Ordering::Relaxed)))
                .collect(),
            accepted: Protocol::ALL
                .iter()
                .map(|p| (*p, self.accepted[*p as usize].load(Ordering::Relaxed)))
                .collect(),
            refused: self
                .refused
                .lock()
                .iter()
                .map(|((p, r), n)| (*p, *r, *n))
                .collect(),
            runs: self.runs.totals(),
        }
    }
}

fn announce_hidden(hidden: u64) {
    if hidden > 0 {
        tracing::warn!("hub refused {hidden} more sessions (not shown: at most {REFUSALS_SHOWN_PER_SECOND} lines a second)");
    }
}

impl AccountsSnapshot {
    /// Writes the counts as OpenMetrics counter families, without the closing `# EOF`.
    pub fn write_openmetrics(&self, w: &mut impl Write, active: u64) -> io::Result<()> {
        family(w, "messages_received", "Messages received and counted, by protocol and the registered CA that verified the device.")?;
        for (p, ca, n) in &self.received {
            writeln!(
                w,
                "fleetbench_hub_messages_received_total{{protocol=\"{}\",ca=\"{}\"}} {n}",
                p.name(),
                escape(ca)
            )?;
        }
        family(
            w,
            "sessions_accepted",
            "Sessions authenticated and accepted, by protocol.",
        )?;
        for (p, n) in &self.accepted {
            writeln!(
                w,
                "fleetbench_hub_sessions_accepted_total{{protocol=\"{}\"}} {n}",
                p.name()
            )?;
        }
        family(
            w,
            "sessions_refused",
            "Sessions refused, by protocol and reason.",
        )?;
        for (p, r, n) in &self.refused {
            writeln!(
                w,
                "fleetbench_hub_sessions_refused_total{{protocol=\"{}\",reason=\"{r}\"}} {n}",
                p.name()
            )?;
        }
        writeln!(w, "# TYPE fleetbench_hub_sessions_active gauge")?;
        writeln!(
            w,
            "# HELP fleetbench_hub_sessions_active Sessions open now."
        )?;
        writeln!(w, "fleetbench_hub_sessions_active {active}")
    }

    /// The summary `hub serve` prints when it stops: totals, then one line per protocol and
    /// CA, per protocol accepted, per protocol and refusal reason, per run kept.
    pub fn summary(&self) -> String {
        let received: u64 = self.received.iter().map(|r| r.2).sum();
        let accepted: u64 = self.accepted.iter().map(|a| a.1).sum();
        let refused: u64 = self.refused.iter().map(|r| r.2).sum();
        let mut s = format!(
            "hub summary: {received} messages received; {accepted} sessions accepted, \
             {refused} refused\n"
        );
        for (p, ca, n) in &self.received {
            let _ = writeln!(s, "  received  {:<5} CA {ca:<24} {n:>10}", p.name());
        }
        for (p, n) in self.accepted.iter().filter(|a| a.1 > 0) {
            let _ = writeln!(s, "  accepted  {:<5} {:<27} {n:>10}", p.name(), "");
        }
        for (p, r, n) in &self.refused {
            let _ = writeln!(s, "  refused   {:<5} {r:<27} {n:>10}", p.name());
        }
        for (id, devices, n) in &self.runs {
            let _ = writeln!(s, "  run       {id:<16} {devices:>8} devices {n:>10}");
        }
        s
    }
}

fn family(w: &mut impl Write, name: &str, help: &str) -> io::Result<()> {
    writeln!(w, "# TYPE fleetbench_hub_{name} counter")?;
    writeln!(w, "# HELP fleetbench_hub_{name} {help}")
}

/// A label value as OpenMetrics quotes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_in_metrics_and_summary() {
        let a = Accounts::default();
        let ca: Arc<str> = "tut\"orial".into();
        a.received_counter(Protocol::Mqtt, &ca)
            .fetch_add(3, Ordering::Relaxed);
        a.accept(Protocol::Mqtt);
        a.refuse(Protocol::Amqp, "dev-1", &Refusal::NoCertificate);
        let s = a.snapshot();
        let mut text = Vec::new();
        s.write_openmetrics(&mut text, 1).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains(
            "fleetbench_hub_messages_received_total{protocol=\"mqtt\",ca=\"tut\\\"orial\"} 3"
        ));
        assert!(text.contains("fleetbench_hub_sessions_accepted_total{protocol=\"amqp\"} 0"));
        assert!(text.contains(
            "fleetbench_hub_sessions_refused_total{protocol=\"amqp\",reason=\"no_certificate\"} 1"
        ));
        let summary = s.summary();
        assert!(
            summary.starts_with("hub summary: 3 messages received; 1 sessions accepted, 1 refused")
        );
        assert!(summary.contains("no_certificate"));
    }

    #[test]
    fn refusal_log_shows_ten_a_second_and_counts_the_rest() {
        let a = Accounts::default();
        a.log_refusals(true);
        for i in 0..25 {
            a.refuse(Protocol::Mqtt, &format!("dev-{i}"), &Refusal::NoCertificate);
        }
        let log = a.log.lock();
        assert_eq!((log.shown, log.hidden), (REFUSALS_SHOWN_PER_SECOND, 15));
        drop(log);
        a.flush_log();
        assert_eq!(a.log.lock().hidden, 0);
        assert_eq!(
            a.snapshot().refused,
            vec![(Protocol::Mqtt, "no_certificate", 25)]
        );
    }
}
