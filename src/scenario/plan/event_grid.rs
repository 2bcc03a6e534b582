//! `dialect = "event-grid"`: the limits Event Grid's MQTT broker puts on a session, checked at
//! validation (docs/event-grid.md has them with their sources). The dialect's strings are the
//! generic dialect's with other defaults (`protocol.rs`); its quotas per throughput unit are
//! checked with the IoT Hub tiers' (`target.rs`).

use crate::scenario::problems::Problems;
use crate::scenario::Scenario;

/// Event Grid's broker's limits on a session: keep-alive at most 1,160 s and messages of at
/// most 512 KiB (docs/event-grid.md).
pub(super) fn limits(s: &Scenario, keep_alive_secs: u16, p: &mut Problems<'_>) {
    if keep_alive_secs > EVENT_GRID_MAX_KEEP_ALIVE {
        p.add(
            "protocol.keep-alive",
            format!("{keep_alive_secs}s is not valid with dialect = \"event-grid\": its broker's keep-alive maximum is {EVENT_GRID_MAX_KEEP_ALIVE}s"),
        );
    }
    let bytes = s.messages.payload == Some(crate::scenario::PayloadKind::Bytes);
    if let (true, Some(size)) = (bytes, s.messages.size) {
        if size > EVENT_GRID_MAX_MESSAGE {
            p.add(
                "messages.size",
                format!("{size} bytes is not valid with dialect = \"event-grid\": its broker's message size limit is 512 KiB ({EVENT_GRID_MAX_MESSAGE} bytes)"),
            );
        }
    }
}

/// Event Grid's MQTT keep-alive maximum, in seconds.
const EVENT_GRID_MAX_KEEP_ALIVE: u16 = 1160;
/// Event Grid's MQTT message size limit, in bytes (512 KiB).
const EVENT_GRID_MAX_MESSAGE: usize = 512 * 1024;

#[cfg(test)]
mod tests {
    use super::super::protocol::tests::{mqtt, REMOTE};
    use crate::protocol::{MqttDialect, QoS};
    use crate::scenario::test_plan as plan;

    #[test]
    fn event_grid_is_generic_with_its_defaults_and_refuses_what_it_does_not_support() {
        let m = mqtt(&format!(
            "{REMOTE}[protocol]\ndialect = \"event-grid\"\nversion = \"5\"\n"
        ));
        let MqttDialect::Generic {
            topic,
            client_id,
            username,
            password,
        } = &m.dialect
        else {
            panic!("{m:?}")
        };
        assert_eq!(
            (topic.as_str(), client_id.as_str(), username.as_deref()),
            (
                "devices/{device_id}/telemetry",
                "{device_id}",
                Some("{device_id}")
            )
        );
        assert!(password.is_none() && m.clean_session && m.qos == QoS::AtLeastOnce);
        let e = plan(&format!(
            "{REMOTE}[protocol]\ndialect = \"event-grid\"\nqos = 2\nkeep-alive = \"1200s\"\npassword = \"x\"\n[messages]\npayload = \"bytes\"\nsize = 600000\n"
        ))
        .unwrap_err();
        let fields: Vec<_> = e.0.iter().map(|e| (e.field.as_str(), e.line)).collect();
        assert_eq!(
            fields,
            [
                ("protocol.qos", Some(7)),
                ("protocol.keep-alive", Some(8)),
                ("protocol.password", Some(9)),
                ("messages.size", Some(12)),
            ],
            "{e}"
        );
        assert!(e.0[0].message.contains("Event Grid"), "{e}");
        let e = plan("[protocol]\nkind = \"amqp\"\ndialect = \"event-grid\"\n").unwrap_err();
        assert!(
            e.0.iter()
                .any(|e| e.field == "protocol.dialect" && e.message.contains("MQTT only")),
            "{e}"
        );
    }

    #[test]
    fn event_grid_units_are_throughput_units_with_quota_warnings() {
        let text = format!(
            "{REMOTE}units = 2\n[protocol]\ndialect = \"event-grid\"\n[fleet]\ndevices = 30000\n[connect]\nrate = 1000\n[messages]\ninterval = \"10s\"\npayload = \"bytes\"\nsize = 1000\n"
        );
        let p = plan(&text).unwrap();
        assert_eq!(p.throughput_units, Some(2));
        let w = p.quota_warnings();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].contains("30000 sessions") && w[0].contains("holds 20000"),
            "{w:?}"
        );
        assert!(
            w[1].contains("3000 messages/s") && w[1].contains("2000 inbound"),
            "{w:?}"
        );
        assert!(
            w[2].contains("3.0 MB/s") && w[2].contains("accepts 2 MB/s"),
            "{w:?}"
        );
        let p = plan(&text.replace("units = 2", "units = 4")).unwrap();
        assert_eq!(p.quota_warnings().len(), 0, "{:?}", p.quota_warnings());
        let e = plan(&format!(
            "{REMOTE}tier = \"S1\"\n[protocol]\ndialect = \"event-grid\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.0[0].field, "target.tier", "{e}");
    }

    #[test]
    fn the_committed_event_grid_scenario_validates() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/event-grid.toml");
        let p = crate::scenario::Plan::from_file(
            std::path::Path::new(path),
            &crate::scenario::Overrides::default(),
        )
        .unwrap();
        assert_eq!((p.fleet.devices, p.throughput_units), (100, Some(1)));
        assert!(p.quota_warnings().is_empty(), "{:?}", p.quota_warnings());
    }
}
