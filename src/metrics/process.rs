//! The generator's own resource use, read from `/proc/self` (Linux); zeros elsewhere.

use std::time::Duration;

/// CPU time and memory of this process at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessSample {
    /// User CPU time.
    pub user: Duration,
    /// System CPU time.
    pub system: Duration,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Peak resident set size so far, KiB.
    pub peak_rss_kib: u64,
}

/// Clock ticks per second of `/proc/self/stat` times; 100 on every mainstream Linux port.
const CLK_TCK: u64 = 100;

impl ProcessSample {
    /// Reads the current figures.
    pub fn now() -> Self {
        let mut s = Self::default();
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the parenthesised command name; utime and stime are 14th and 15th.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                s.user = Duration::from_millis(ticks(11) * 1000 / CLK_TCK);
                s.system = Duration::from_millis(ticks(12) * 1000 / CLK_TCK);
            }
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            for line in status.lines() {
                let kib = || {
                    line.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                if line.starts_with("VmRSS:") {
                    s.rss_kib = kib();
                } else if line.starts_with("VmHWM:") {
                    s.peak_rss_kib = kib();
                }
            }
        }
        s
    }

    /// CPU time (user + system).
    pub fn cpu(&self) -> Duration {
        self.user + self.system
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_something_on_linux() {
        let s = ProcessSample::now();
        if cfg!(target_os = "linux") {
            assert!(s.rss_kib > 0);
            assert!(s.peak_rss_kib >= s.rss_kib);
        }
    }
}
