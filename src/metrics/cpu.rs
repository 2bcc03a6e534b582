//! CPU time per handshake, client and server apart, read from `/proc` (Linux): the embedded
//! hub's own named threads, or a server on the same host by pid, and this process as a whole.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Summary;

/// Name of the embedded hub's runtime threads: their CPU is the server's, the rest the client's.
pub const HUB_THREAD: &str = "fb-hub";

/// Clock ticks per second of `/proc` stat times; 100 on every mainstream Linux port.
const CLK_TCK: u64 = 100;

/// Why a server's CPU time cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    /// No such process (or `/proc` unreadable).
    #[error(
        "--server-pid {pid}: no such process on this host (reading /proc/{pid}/stat: {source})"
    )]
    NoProcess {
        /// The pid asked for.
        pid: u32,
        /// The read's error.
        source: std::io::Error,
    },
    /// The stat file is not in the expected format.
    #[error("--server-pid {pid}: /proc/{pid}/stat has no utime/stime fields")]
    Unparsable {
        /// The pid asked for.
        pid: u32,
    },
}

/// The command name and utime + stime of one `/proc/.../stat` line.
fn parse_stat(stat: &str) -> Option<(&str, Duration)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    let total = ticks(11)? + ticks(12)?;
    Some((comm, Duration::from_millis(total * 1000 / CLK_TCK)))
}

/// CPU time of process `pid` (all its threads, live and exited).
pub fn process_cpu(pid: u32) -> Result<Duration, CpuError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|source| CpuError::NoProcess { pid, source })?;
    parse_stat(&stat)
        .map(|(_, cpu)| cpu)
        .ok_or(CpuError::Unparsable { pid })
}

/// CPU time of this process's live threads named `name` (zero where `/proc` is absent).
fn threads_cpu(name: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter_map(|stat| {
            parse_stat(&stat)
                .filter(|(c, _)| *c == name)
                .map(|(_, d)| d)
        })
        .sum()
}

/// CPU time of this whole process (all threads, live and exited).
fn own_cpu() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_stat(&s).map(|(_, d)| d))
        .unwrap_or_default()
}

/// Whose CPU is the server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCpu {
    /// No server on this host that can be read (a remote target without `--server-pid`).
    None,
    /// The embedded hub's threads in this process.
    Embedded,
    /// Another process on this host.
    Pid(u32),
}

impl ServerCpu {
    fn read(self) -> Result<Option<Duration>, CpuError> {
        match self {
            Self::None => Ok(None),
            Self::Embedded => Ok(Some(threads_cpu(HUB_THREAD))),
            Self::Pid(pid) => process_cpu(pid).map(Some),
        }
    }

    fn describe(self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Embedded => Some(format!("embedded hub threads ({HUB_THREAD})")),
            Self::Pid(pid) => Some(format!("process {pid}")),
        }
    }
}

/// CPU readings at the start of the run's load.
#[derive(Debug, Clone, Copy)]
pub struct CpuProbe {
    server: ServerCpu,
    own: Duration,
    hub: Duration,
    server_before: Option<Duration>,
}

/// CPU spent between a probe's start and its finish.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuSpan {
    /// This process less the embedded hub's threads.
    pub client: Duration,
    /// The server's, when it can be read.
    pub server: Option<Duration>,
    /// Whose CPU `server` is.
    pub source: Option<String>,
}

impl CpuProbe {
    /// Reads the starting figures; an error when `server` is a pid that does not exist.
    pub fn start(server: ServerCpu) -> Result<Self, CpuError> {
        Ok(Self {
            server,
            own: own_cpu(),
            hub: threads_cpu(HUB_THREAD),
            server_before: server.read()?,
        })
    }

    /// Reads the closing figures (before the embedded hub stops: its threads must be alive).
    pub fn finish(self) -> Result<CpuSpan, CpuError> {
        let hub = threads_cpu(HUB_THREAD).saturating_sub(self.hub);
        let own = own_cpu().saturating_sub(self.own);
        let server = match (self.server.read()?, self.server_before) {
            (Some(after), Some(before)) => Some(after.saturating_sub(before)),
            _ => None,
        };
        Ok(CpuSpan {
            client: own.saturating_sub(hub),
            server,
            source: self.server.describe(),
        })
    }
}

/// How the `cpu` figures are made.
const METHOD: &str = "CPU time (utime + stime from /proc) over the run's load, divided by \
    the handshakes completed: it includes the protocol exchange and messages; for a churn run \
    with no messages it is the handshake's price. Client: this process less the embedded hub's \
    threads. Full and resumed handshakes are counted apart but share one CPU figure.";

/// Client and server CPU over the run and per handshake (`summary.json` `cpu`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuSummary {
    /// How the figures are made.
    pub method: String,
    /// The generator's CPU seconds over the run (the embedded hub's threads excluded).
    pub client_secs: f64,
    /// The server's CPU seconds over the run, when it runs on this host and can be read.
    pub server_secs: Option<f64>,
    /// Whose CPU `server_secs` is: the embedded hub's threads or a process id.
    pub server: Option<String>,
    /// Full TLS handshakes completed.
    pub full_handshakes: u64,
    /// Resumed TLS handshakes completed.
    pub resumed_handshakes: u64,
    /// Client CPU microseconds per handshake (full and resumed together).
    pub client_us_per_handshake: Option<f64>,
    /// Server CPU microseconds per handshake (full and resumed together).
    pub server_us_per_handshake: Option<f64>,
    /// CPU measured inside each handshake, full and resumed apart, client and embedded hub
    /// (absent from summaries of older versions).
    #[serde(default)]
    pub per_handshake: Option<super::HandshakeCpu>,
}

impl CpuSummary {
    /// The figures of `span`, per handshake of `summary`.
    pub fn new(span: &CpuSpan, summary: &Summary) -> Self {
        let n = |phase: &str| summary.phase(phase).map_or(0, |p| p.count);
        let (full, resumed) = (n("tls_handshake"), n("tls_resumed"));
        let per = |d: Duration| {
            let total = full + resumed;
            (total > 0).then(|| d.as_secs_f64() * 1e6 / total as f64)
        };
        Self {
            method: METHOD.into(),
            client_secs: span.client.as_secs_f64(),
            server_secs: span.server.map(|d| d.as_secs_f64()),
            server: span.source.clone(),
            full_handshakes: full,
            resumed_handshakes: resumed,
            client_us_per_handshake: per(span.client),
            server_us_per_handshake: span.server.and_then(per),
            per_handshake: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_spaces_and_parens_in_the_name() {
        let line = "42 (fb) hub) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 2 3";
        let (comm, cpu) = parse_stat(line).unwrap();
        assert_eq!(comm, "fb) hub");
        assert_eq!(cpu, Duration::from_secs(3));
    }

    #[test]
    fn a_missing_pid_is_a_clear_error() {
        let e = process_cpu(u32::MAX).unwrap_err().to_string();
        assert!(
            e.contains("--server-pid 4294967295: no such process"),
            "{e}"
        );
    }
}
