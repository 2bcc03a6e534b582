//! Live progress on stderr with indicatif: one line per stage (minting, connecting, sending,
//! draining) with counts, rates, active sessions and errors so far, refreshed four times a
//! second from a snapshot of the counters; never on the measured path. Hidden when stderr is
//! not a terminal or with `--quiet`. Every line is formatted here (pure functions, unit-tested)
//! and kept within 80 columns, or one less than a narrower terminal's width, so that no line
//! wraps. The display starts with a blank line, the one a terminal's `^C` echo leaves behind.

use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use tokio::task::JoinHandle;

use super::format::{count, rate};
use crate::metrics::{Recorder, Snapshot};

/// How often the display is refreshed.
const TICK: Duration = Duration::from_millis(250);
/// The widest a line may be.
const WIDTH: usize = 80;
/// Width of the bar drawn when a stage has a fixed total.
const BAR: usize = 20;

/// What the display expects: a stage with `None` has no fixed total (stages, churn, durations)
/// and shows a count and a rate instead of a fraction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Sessions to connect, if fixed.
    pub sessions: Option<u64>,
    /// Messages to send, if fixed.
    pub messages: Option<u64>,
}

/// The display on the terminal now, if any: log lines are written above it, not through it
/// (a line written through it left the bars above the report after Ctrl-C's warning).
static SHOWN: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Where log lines go: stderr, above the live display while one is shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

/// A [`LogWriter`], for `tracing_subscriber::fmt().with_writer(log_writer)`.
pub fn log_writer() -> LogWriter {
    LogWriter
}

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let shown = SHOWN.lock().ok().and_then(|s| s.clone());
        match shown {
            Some(lines) => lines.suspend(|| std::io::stderr().write_all(buf)),
            None => std::io::stderr().write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A running progress display.
#[derive(Debug)]
pub struct Progress {
    lines: MultiProgress,
    bars: Vec<ProgressBar>,
    task: Option<JoinHandle<()>>,
}

/// The lines of the display, in order.
struct Lines {
    waiting: Option<(ProgressBar, SystemTime)>,
    minting: ProgressBar,
    connecting: ProgressBar,
    sending: ProgressBar,
    draining: ProgressBar,
    devices: u64,
    totals: Totals,
    began: Instant,
}

impl Progress {
    /// Shows progress of a fleet of `devices` unless quiet, with a countdown to `start_at` if set.
    pub fn start(
        recorder: Arc<Recorder>,
        devices: u64,
        totals: Totals,
        start_at: Option<SystemTime>,
        quiet: bool,
    ) -> Self {
        let visible = !quiet && std::io::stderr().is_terminal();
        let lines = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr_with_hz(4)
        } else {
            ProgressDrawTarget::hidden()
        });
        let style =
            ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar());
        // Cleared, never left behind, however the bar ends (even dropped by an aborted task).
        let line = || {
            lines.add(
                ProgressBar::no_length()
                    .with_style(style.clone())
                    .with_finish(ProgressFinish::AndClear),
            )
        };
        // A blank first line: indicatif parks the cursor at the right edge, so a terminal's `^C`
        // echo wraps to a new line and the first line falls out of the display's reach; a blank
        // one left above the report is harmless, a stale bar was not.
        let spacer = line();
        spacer.set_message(" ");
        let waiting = start_at.map(|at| (line(), at));
        let l = Lines {
            waiting,
            minting: line(),
            connecting: line(),
            sending: line(),
            draining: line(),
            devices,
            totals,
            began: Instant::now(),
        };
        let mut bars = vec![
            l.minting.clone(),
            l.connecting.clone(),
            l.sending.clone(),
            l.draining.clone(),
        ];
        bars.extend(l.waiting.as_ref().map(|(b, _)| b.clone()));
        bars.push(spacer);
        if visible {
            if let Ok(mut shown) = SHOWN.lock() {
                *shown = Some(lines.clone());
            }
        }
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
        Self { lines, bars, task }
    }

    /// Removes the display, every line of it, before anything else is printed.
    pub fn finish(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Ok(mut shown) = SHOWN.lock() {
            *shown = None;
        }
        for bar in &self.bars {
            bar.finish_and_clear();
        }
        let _ = self.lines.clear();
    }
}

impl Lines {
    fn show(&self, s: &Snapshot, last: &Snapshot, secs: f64) {
        let per_sec = |now: u64, before: u64| rate(now.saturating_sub(before) as f64 / secs);
        let width = columns();
        if let Some((bar, at)) = &self.waiting {
            match at.duration_since(SystemTime::now()) {
                Ok(left) => bar.set_message(countdown(left, *at, width)),
                Err(_) => bar.finish_and_clear(),
            }
        }
        let elapsed = format!("[{}]", clock(self.began.elapsed()));
        self.minting.set_message(stage(
            "minting",
            s.identities_minted,
            Some(self.devices),
            &format!(
                "{}  {elapsed}",
                per_sec(s.identities_minted, last.identities_minted)
            ),
            width,
        ));
        self.connecting.set_message(stage(
            "connecting",
            s.sessions_attempted,
            self.totals.sessions,
            &format!(
                "{} conn {} act {} fail {}",
                per_sec(s.sessions_connected, last.sessions_connected),
                count(s.sessions_connected),
                count(s.sessions_active),
                count(s.sessions_failed)
            ),
            width,
        ));
        self.sending.set_message(stage(
            "sending",
            s.messages_sent,
            self.totals.messages,
            &format!(
                "{}  errors {}",
                per_sec(s.messages_sent, last.messages_sent),
                count(s.errors)
            ),
            width,
        ));
        // Draining: what was sent and is not yet settled (acknowledged or given up on).
        let settled = s.messages_acked + s.messages_unacked;
        self.draining.set_message(stage(
            "draining",
            settled,
            self.totals.messages,
            &format!(
                "acks {}  in flight {}",
                per_sec(s.messages_acked, last.messages_acked),
                count(s.messages_sent.saturating_sub(settled))
            ),
            width,
        ));
    }
}

/// One stage's line: a bar and `done/total` when the total is fixed, else the count alone
/// (the rate is in `detail`); never wider than 80 columns.
pub fn stage(name: &str, done: u64, total: Option<u64>, detail: &str, width: usize) -> String {
    let line = match total {
        Some(total) => {
            let filled = if total == 0 {
                BAR
            } else {
                (u128::from(done.min(total)) * BAR as u128 / u128::from(total)) as usize
            };
            format!(
                "{name:<10} {}{} {:>6}/{:<6} {detail}",
                "#".repeat(filled),
                "-".repeat(BAR - filled),
                count(done),
                count(total)
            )
        }
        None => format!("{name:<10} {:>6} {detail}", count(done)),
    };
    fit(&line, width)
}

/// The countdown shown while waiting for `--start-at`: `starting in 12 s at 2026-…Z`.
pub fn countdown(left: Duration, at: SystemTime, width: usize) -> String {
    fit(
        &format!(
            "starting in {} at {}",
            clock(left + Duration::from_millis(999)),
            humantime::format_rfc3339_millis(at)
        ),
        width,
    )
}

/// Whole seconds as `12 s`, `3:05`, `1:02:03`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{}:{:02}", s / 60, s % 60),
        _ => format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
    }
}

/// The columns a line may take: 80, or one less than a narrower terminal's width.
fn columns() -> usize {
    console::Term::stderr()
        .size_checked()
        .map_or(WIDTH, |(_, cols)| usize::from(cols).saturating_sub(1))
        .min(WIDTH)
}

/// `line` cut to `width` characters.
fn fit(line: &str, width: usize) -> String {
    line.chars().take(width).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_without_a_fixed_total_shows_a_count_and_a_rate_not_a_fraction() {
        let line = stage("sending", 464, None, "120.0/s  errors 0", WIDTH);
        assert_eq!(line, "sending       464 120.0/s  errors 0");
        assert!(!line.contains("464/"), "no fraction: {line}");
    }

    #[test]
    fn a_stage_with_a_fixed_total_shows_a_bar_and_a_fraction() {
        let line = stage("sending", 50, Some(100), "x", WIDTH);
        assert_eq!(
            line,
            format!(
                "sending    {}{}     50/100    x",
                "#".repeat(10),
                "-".repeat(10)
            )
        );
        assert!(stage("draining", 0, Some(0), "", WIDTH).contains(&"#".repeat(BAR)));
    }

    #[test]
    fn every_line_fits_in_80_columns_at_the_largest_figures() {
        let detail = format!(
            "{} conn {} act {} fail {}",
            rate(9.99e8),
            count(u64::MAX),
            count(u64::MAX),
            count(u64::MAX)
        );
        for total in [None, Some(u64::MAX)] {
            let line = stage("connecting", u64::MAX, total, &detail, WIDTH);
            assert!(
                line.chars().count() <= WIDTH,
                "{} columns: {line}",
                line.len()
            );
        }
        let narrow = stage("sending", 123_456, Some(1_000_000), &detail, 39);
        assert_eq!(narrow.chars().count(), 39, "{narrow}");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
        assert!(
            countdown(Duration::from_secs(1 << 40), at, WIDTH)
                .chars()
                .count()
                <= WIDTH
        );
    }

    #[test]
    fn the_countdown_names_the_seconds_left_and_the_instant() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        assert_eq!(
            countdown(Duration::from_millis(11_200), at, WIDTH),
            "starting in 12 s at 2026-11-30T00:53:20.000Z"
        );
        assert_eq!(
            countdown(Duration::from_secs(184), at, WIDTH),
            "starting in 3:04 at 2026-11-30T00:53:20.000Z"
        );
    }
}
