//! Issue 14: the live progress display as a terminal shows it, through the binary under a
//! pseudo-terminal (util-linux `script`) 40 columns wide: no line reaches the terminal's width
//! (so none wraps), a staged run's sending line is a count and a rate (never
//! `464/1717986918000`), and the wait for `--start-at` counts down.

use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::support;

/// The terminal's width.
const COLUMNS: usize = 40;

/// The display's lines in a terminal log: escape sequences and carriage returns split it;
/// indicatif pads each line with spaces to the terminal's width, so each padded line is cut
/// into widths and trimmed.
fn lines(log: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = log;
    while let Some(esc) = rest.find('\u{1b}') {
        split(&rest[..esc], &mut out);
        // Skip `ESC [ params letter`.
        let after = &rest[esc + 1..];
        let end = after
            .char_indices()
            .skip(1)
            .find(|(_, c)| c.is_ascii_alphabetic())
            .map_or(after.len(), |(i, c)| i + c.len_utf8());
        rest = &after[end..];
    }
    split(rest, &mut out);
    out
}

fn split(text: &str, out: &mut Vec<String>) {
    for part in text.split(['\r', '\n']) {
        let chars: Vec<char> = part.chars().collect();
        for chunk in chars.chunks(COLUMNS) {
            let line: String = chunk.iter().collect();
            if !line.trim().is_empty() {
                out.push(line.trim_end().to_owned());
            }
        }
    }
}

#[test]
fn the_live_display_fits_the_terminal_counts_stage_sends_and_counts_down() {
    if !support::have("script") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ramp.toml"),
        "[[stages]]\nduration = \"2s\"\nsessions = 10\n[messages]\ninterval = \"100ms\"\n",
    )
    .unwrap();
    let at = humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(3));
    let command = format!(
        "stty rows 24 cols {COLUMNS}; exec '{}' run --results res --start-at {at} ramp.toml",
        env!("CARGO_BIN_EXE_fleetbench")
    );
    let out = Command::new("script")
        .current_dir(dir.path())
        .args(["-qec", &command, "tty.log"])
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&std::fs::read(dir.path().join("tty.log")).unwrap()).into_owned();
    assert!(out.status.success(), "{log}");
    let shown = lines(&log);
    let display: Vec<&String> = shown
        .iter()
        .filter(|l| {
            [
                "minting",
                "connecting",
                "sending",
                "draining",
                "starting in",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .collect();
    assert!(
        display.iter().any(|l| l.starts_with("sending")),
        "{shown:#?}"
    );
    for l in &display {
        assert!(
            l.chars().count() < COLUMNS,
            "{} columns in a {COLUMNS}-column terminal: {l:?}",
            l.chars().count()
        );
    }
    // Stages have no fixed total of messages: a count, then the rate.
    for l in display.iter().filter(|l| l.starts_with("sending")) {
        let count = l.split_whitespace().nth(1).unwrap();
        assert!(count.parse::<u64>().is_ok(), "not a count: {l:?}");
    }
    let countdown: Vec<&&String> = display
        .iter()
        .filter(|l| l.starts_with("starting in"))
        .collect();
    assert!(
        countdown
            .iter()
            .any(|l| l.ends_with(&format!("at {at}")) || l.contains(" s at ")),
        "no countdown: {shown:#?}"
    );
    // The report follows, the display gone from it.
    assert!(log.contains("fleetbench "), "{log}");
}

/// A tmux server on its own socket, killed when dropped.
struct Tmux(std::path::PathBuf);

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.0)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

/// Whether a terminal's output shows a sending line with messages sent.
fn sending(output: &str) -> bool {
    output.match_indices("sending").any(|(i, _)| {
        output[i + "sending".len()..]
            .trim_start()
            .starts_with(|c: char| ('1'..='9').contains(&c))
    })
}

#[test]
fn after_ctrl_c_no_bar_is_left_above_the_report() {
    use std::io::Read as _;

    if !support::have("tmux") || !support::have("mkfifo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("long.toml"),
        "[[stages]]\nduration = \"30s\"\nsessions = 10\n[messages]\ninterval = \"100ms\"\n",
    )
    .unwrap();
    let fifo = dir.path().join("pane.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let tmux = Tmux(dir.path().join("tmux.sock"));
    let sock = tmux.0.display().to_string();
    // The run waits for the pane's output to be piped, and says when it has ended.
    let command = format!(
        "tmux -S '{sock}' wait-for go; cd '{}' && '{}' run --results res long.toml; \
         echo FLEETBENCH-EXITED; tmux -S '{sock}' wait-for -S done; exec cat",
        dir.path().display(),
        env!("CARGO_BIN_EXE_fleetbench")
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "run",
        "-x",
        "100",
        "-y",
        "50",
        &command,
    ]);
    let pipe = format!("cat > '{}'", fifo.display());
    tmux.run(&["pipe-pane", "-o", "-t", "run", &pipe]);
    tmux.run(&["wait-for", "-S", "go"]);
    // Once messages flow (read as the terminal receives them), a real terminal's Ctrl-C.
    let mut output = std::fs::File::open(&fifo).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = output.read(&mut buf).unwrap();
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        assert!(
            n > 0 && !text.contains("FLEETBENCH-EXITED"),
            "ended before sending: {text}"
        );
        if sending(&text) {
            break;
        }
    }
    tmux.run(&["send-keys", "-t", "run", "C-c"]);
    tmux.run(&["wait-for", "done"]);
    let pane = tmux.run(&["capture-pane", "-p", "-t", "run"]);
    let head = pane
        .find("fleetbench ")
        .unwrap_or_else(|| panic!("no report: {pane}"));
    assert!(pane.contains("PARTIAL (interrupted)"), "{pane}");
    for line in pane[..head].lines() {
        assert!(
            !["minting", "connecting", "sending", "draining"]
                .iter()
                .any(|p| line.trim_start().starts_with(p)),
            "a bar left above the report: {line:?}\n{pane}"
        );
    }
}
