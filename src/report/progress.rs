//! Live progress on stderr with indicatif, refreshed a few times a second from a snapshot of
//! the counters; never on the measured path. Hidden when stderr is not a terminal or `--quiet`.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use super::format::count;
use crate::metrics::Recorder;

/// A running progress display.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Shows progress of a fleet of `devices` (expecting `messages` acknowledgements) unless quiet.
    pub fn start(recorder: Arc<Recorder>, devices: u64, messages: u64, quiet: bool) -> Self {
        let visible = !quiet && std::io::stderr().is_terminal();
        let bar = if visible {
            ProgressBar::with_draw_target(Some(devices), ProgressDrawTarget::stderr_with_hz(4))
        } else {
            ProgressBar::hidden()
        };
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:24} {pos}/{len} sessions  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let task = visible.then(|| {
            let bar = bar.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                loop {
                    tick.tick().await;
                    let s = recorder.snapshot();
                    bar.set_position(s.sessions_attempted);
                    bar.set_message(format!(
                        "active {}  acked {}/{}  errors {}",
                        count(s.sessions_active),
                        count(s.messages_acked),
                        count(messages),
                        count(s.errors)
                    ));
                }
            })
        });
        Self { bar, task }
    }

    /// Removes the display.
    pub fn finish(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.bar.finish_and_clear();
    }
}
