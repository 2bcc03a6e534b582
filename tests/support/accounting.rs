//! The checks every protocol's "fleet of 200" test makes: all connected, every acknowledged
//! message counted by the embedded hub, each phase timed as often as it happened.

use fleetbench::command::run::RunReport;
use fleetbench::metrics::RunStatus;
use fleetbench::Outcome;

/// 200 devices, 3 messages each, 20 ms apart, at most 32 handshakes at once (a `[protocol]`
/// section may precede it).
pub const FLEET_200: &str = r#"
[fleet]
devices = 200
[connect]
max-handshakes = 32
[messages]
count = 3
interval = "20ms"
"#;

/// Asserts a complete, successful run of [`FLEET_200`] against the embedded hub: 200 sessions,
/// 600 messages acknowledged and received, none lost, and each of `phases` counted `n` times.
pub fn assert_fleet_200_counted(report: &RunReport, phases: &[(&str, u64)]) {
    let s = &report.summary;
    assert_eq!(s.status, RunStatus::Complete);
    assert_eq!(report.outcome, Outcome::Success);
    assert_eq!(s.counts.sessions_connected, 200);
    assert_eq!(s.counts.sessions_failed, 0, "{:?}", s.failures);
    assert_eq!(s.counts.messages_acked, 600);
    let hub = s.hub.as_ref().expect("embedded hub accounting");
    assert_eq!((hub.acked, hub.received, hub.lost), (600, 600, 0));
    for (phase, n) in phases {
        assert_eq!(s.phase(phase).map(|p| p.count), Some(*n), "{phase}");
    }
}
