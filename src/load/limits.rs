//! Process limits that decide how many sessions one generator can hold: open files (raised to
//! the hard limit at start) and local ports per source address.

use std::net::IpAddr;

/// Sockets and files the process needs besides sessions (runtime, logs, results, listeners).
const SPARE_FILES: u64 = 64;

/// Why a run cannot hold the sessions it plans.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// Not enough file descriptors.
    #[error(
        "the run needs up to {needed} open files ({sessions} sessions x {per_session} + {SPARE_FILES} spare) but this \
         process may open at most {limit} (hard limit {hard}); {advice}"
    )]
    OpenFiles {
        /// Files needed.
        needed: u64,
        /// Sessions at the peak.
        sessions: u64,
        /// Descriptors per session in this process.
        per_session: u64,
        /// The soft limit after raising it.
        limit: u64,
        /// The hard limit.
        hard: u64,
        /// What to do about it.
        advice: &'static str,
    },
}

/// Raises the open-file limit to the hard limit and checks that `sessions` fit, counting
/// `per_session` descriptors each (2 when the embedded hub runs in this process). Returns the
/// limit now in force.
pub fn check_open_files(sessions: u64, per_session: u64) -> Result<u64, LimitError> {
    let (limit, hard) = match rlimit::Resource::NOFILE.get() {
        Ok((_, hard)) => (rlimit::increase_nofile_limit(hard).unwrap_or(hard), hard),
        // Not a Unix-like system: nothing to check.
        Err(_) => return Ok(u64::MAX),
    };
    let needed = sessions * per_session + SPARE_FILES;
    if needed > limit {
        return Err(LimitError::OpenFiles {
            needed,
            sessions,
            per_session,
            limit,
            hard,
            advice: if per_session > 1 {
                "run the hub in another process (fleetbench hub serve) or split the fleet into shards"
            } else {
                "split the fleet into shards (--shard K/N), one process each"
            },
        });
    }
    Ok(limit)
}

/// Local ports one source address has towards one destination (Linux's ephemeral range).
pub(super) fn ephemeral_ports() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|v| v.parse::<u64>().ok());
            Some((it.next()??, it.next()??))
        })
        .map_or(28_232, |(lo, hi)| hi.saturating_sub(lo) + 1)
}

/// A warning when `sessions` would exhaust the local ports of the `sources` (or of one address).
pub fn port_warning(sessions: u64, sources: &[IpAddr]) -> Option<String> {
    let per_address = ephemeral_ports();
    let addresses = sources.len().max(1) as u64;
    // TIME_WAIT keeps closed connections' ports for a while, so warn at 90 %.
    (sessions * 10 > per_address * addresses * 9).then(|| {
        format!(
            "{sessions} sessions from {addresses} source address(es) come close to the {per_address} local ports each \
             address has towards one hub; add addresses with connect.source-addresses (e.g. \"127.0.0.2-127.0.0.20\")"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_fleets_fit_and_impossible_ones_say_why() {
        assert!(check_open_files(10, 2).is_ok());
        let e = check_open_files(u64::MAX / 4, 2).unwrap_err().to_string();
        assert!(e.contains("open files") && e.contains("hard limit"), "{e}");
        assert!(e.contains("another process"), "{e}");
    }

    #[test]
    fn port_warning_scales_with_addresses() {
        let per = ephemeral_ports();
        assert!(port_warning(per, &[]).is_some());
        let many: Vec<IpAddr> = (2..6).map(|i| IpAddr::from([127, 0, 0, i])).collect();
        assert!(port_warning(per, &many).is_none());
        assert!(port_warning(100, &[]).is_none());
    }
}
