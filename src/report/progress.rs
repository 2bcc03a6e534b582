//! Live progress on stderr with indicatif: one line per stage (minting, connecting, sending,
//! draining) with counts, rates, active sessions and errors so far, refreshed four times a
//! second from a snapshot of the counters; never on the measured path. Hidden when stderr is
//! not a terminal or with `--quiet`.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use super::format::{count, rate};
use crate::metrics::{Recorder, Snapshot};

/// How often the display is refreshed.
const TICK: Duration = Duration::from_millis(250);

/// A running progress display.
#[derive(Debug)]
pub struct Progress {
    lines: MultiProgress,
    task: Option<JoinHandle<()>>,
}

/// The lines of the display, in stage order.
struct Lines {
    minting: ProgressBar,
    connecting: ProgressBar,
    sending: ProgressBar,
    draining: ProgressBar,
}

impl Progress {
    /// Shows progress of a fleet of `devices` (expecting `messages` acknowledgements) unless quiet.
    pub fn start(recorder: Arc<Recorder>, devices: u64, messages: u64, quiet: bool) -> Self {
        let visible = !quiet && std::io::stderr().is_terminal();
        let lines = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr_with_hz(4)
        } else {
            ProgressDrawTarget::hidden()
        });
        let style = |template: &str| {
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
        };
        let first = style("{prefix:<11} {bar:24} {pos:>7}/{len:<7} {msg}  [{elapsed_precise}]");
        let rest = style("{prefix:<11} {bar:24} {pos:>7}/{len:<7} {msg}");
        let line = |name: &str, len: u64| {
            let bar = lines.add(ProgressBar::new(len));
            bar.set_style(if name == "minting" {
                first.clone()
            } else {
                rest.clone()
            });
            bar.set_prefix(name.to_owned());
            bar
        };
        let l = Lines {
            minting: line("minting", devices),
            connecting: line("connecting", devices),
            sending: line("sending", messages),
            draining: line("draining", messages),
        };
        let task = visible.then(|| {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(TICK);
                let mut last = Snapshot::default();
                loop {
                    tick.tick().await;
                    let s = recorder.snapshot();
                    l.show(&s, &last, TICK.as_secs_f64());
                    last = s;
                }
            })
        });
        Self { lines, task }
    }

    /// Removes the display.
    pub fn finish(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let _ = self.lines.clear();
    }
}

impl Lines {
    fn show(&self, s: &Snapshot, last: &Snapshot, secs: f64) {
        let per_sec = |now: u64, before: u64| rate(now.saturating_sub(before) as f64 / secs);
        self.minting.set_position(s.identities_minted);
        self.minting
            .set_message(per_sec(s.identities_minted, last.identities_minted));
        self.connecting.set_position(s.sessions_attempted);
        self.connecting.set_message(format!(
            "{}  connected {}  active {}  failed {}",
            per_sec(s.sessions_connected, last.sessions_connected),
            count(s.sessions_connected),
            count(s.sessions_active),
            count(s.sessions_failed)
        ));
        self.sending.set_position(s.messages_sent);
        self.sending.set_message(format!(
            "{}  errors {}",
            per_sec(s.messages_sent, last.messages_sent),
            count(s.errors)
        ));
        // Draining: what was sent and is not yet settled (acknowledged or given up on).
        self.draining
            .set_position(s.messages_acked + s.messages_unacked);
        self.draining.set_message(format!(
            "acks {}  in flight {}",
            per_sec(s.messages_acked, last.messages_acked),
            count(
                s.messages_sent
                    .saturating_sub(s.messages_acked + s.messages_unacked)
            )
        ));
    }
}
