//! The shard side of `run`: which shard this process is (flags or the environment of a
//! Kubernetes Indexed Job), waiting for the shared start instant, and what the shard records
//! about itself in its summary.

use std::time::SystemTime;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::metrics::ShardInfo;
use crate::scenario::{Plan, Shard};

/// The shard from `--shard K/N` (`FLEETBENCH_SHARD`) or from `--shard-index K`
/// (`JOB_COMPLETION_INDEX`) with `--shards N` (`FLEETBENCH_SHARDS`); `None` for the whole fleet.
pub(super) fn resolve(
    spec: Option<Shard>,
    index: Option<u64>,
    count: Option<u64>,
) -> anyhow::Result<Option<Shard>> {
    const SPEC: &str = "--shard (FLEETBENCH_SHARD)";
    const INDEX: &str = "--shard-index (JOB_COMPLETION_INDEX)";
    const COUNT: &str = "--shards (FLEETBENCH_SHARDS)";
    match (spec, index, count) {
        (None, None, None) => Ok(None),
        (Some(s), index, count) => {
            let (k, n) = (index.unwrap_or(s.index), count.unwrap_or(s.count));
            anyhow::ensure!(
                (k, n) == (s.index, s.count),
                "{SPEC} is {s} but {INDEX} and {COUNT} say {k}/{n}: give one or make them agree"
            );
            Ok(Some(s))
        }
        (None, Some(k), Some(n)) => Shard::new(k, n)
            .map(Some)
            .with_context(|| format!("{INDEX} = {k} with {COUNT} = {n}")),
        (None, Some(k), None) => {
            anyhow::bail!("{INDEX} is {k} but the shard count is unknown: set {COUNT}")
        }
        (None, None, Some(n)) => {
            anyhow::bail!("{COUNT} is {n} but the shard index is unknown: set {INDEX} or {SPEC}")
        }
    }
}

/// Shards of one fleet must sign their devices with the same CA, or the hub sees N fleets and
/// `merge` refuses them.
pub(super) fn check_plan(plan: &Plan, shard: Option<Shard>) -> anyhow::Result<()> {
    if let Some(s) = shard.filter(|s| s.is_split()) {
        anyhow::ensure!(
            plan.fleet.ca_dir.is_some(),
            "shard {s} needs the fleet's CA directory (--ca DIR or fleet.ca-dir): without one \
             every shard would mint a CA of its own"
        );
    }
    Ok(())
}

/// Waits until `at` (wall clock), unless interrupted first. Returns at once if `at` has passed.
pub(super) async fn wait_until(
    at: SystemTime,
    interrupt: &CancellationToken,
) -> anyhow::Result<()> {
    let Ok(wait) = at.duration_since(SystemTime::now()) else {
        tracing::warn!(
            "start-at {} has passed: starting now",
            humantime::format_rfc3339_millis(at)
        );
        return Ok(());
    };
    tracing::info!(
        "waiting {} for start-at {}",
        humantime::format_duration(std::time::Duration::from_millis(wait.as_millis() as u64)),
        humantime::format_rfc3339_millis(at)
    );
    tokio::select! {
        () = tokio::time::sleep(wait) => Ok(()),
        () = interrupt.cancelled() => anyhow::bail!("interrupted while waiting for start-at"),
    }
}

/// What a shard records about itself: K/N and how its start compares with the shared instant.
pub(super) fn info(shard: Shard, start_at: Option<SystemTime>, began: SystemTime) -> ShardInfo {
    let offset_ms = start_at.map(|at| {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let v = match began.duration_since(at) {
            Ok(late) => ms(late),
            Err(early) => -ms(early.duration()),
        };
        (v * 1000.0).round() / 1000.0
    });
    ShardInfo {
        index: shard.index,
        count: shard.count,
        start_at: start_at.map(|t| humantime::format_rfc3339_millis(t).to_string()),
        start_offset_ms: offset_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_environment_resolve_to_one_shard() {
        let s = |k, n| Shard::new(k, n).unwrap();
        assert_eq!(resolve(None, None, None).unwrap(), None);
        assert_eq!(resolve(Some(s(1, 4)), None, None).unwrap(), Some(s(1, 4)));
        assert_eq!(resolve(None, Some(3), Some(4)).unwrap(), Some(s(3, 4)));
        assert_eq!(
            resolve(Some(s(3, 4)), Some(3), None).unwrap(),
            Some(s(3, 4))
        );
        let e = |r: anyhow::Result<Option<Shard>>| format!("{:#}", r.unwrap_err());
        assert!(e(resolve(None, Some(2), None)).contains("FLEETBENCH_SHARDS"));
        assert!(e(resolve(None, None, Some(4))).contains("JOB_COMPLETION_INDEX"));
        assert!(e(resolve(None, Some(4), Some(4))).contains("less than N"));
        assert!(e(resolve(Some(s(1, 4)), Some(2), Some(4))).contains("is 1/4 but"));
    }

    #[test]
    fn the_start_offset_is_signed() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(100);
        let late = info(
            Shard::WHOLE,
            Some(at),
            at + std::time::Duration::from_millis(3),
        );
        assert_eq!(late.start_offset_ms, Some(3.0));
        let early = info(
            Shard::WHOLE,
            Some(at),
            at - std::time::Duration::from_millis(2),
        );
        assert_eq!(early.start_offset_ms, Some(-2.0));
        assert_eq!(info(Shard::WHOLE, None, at).start_offset_ms, None);
    }
}
