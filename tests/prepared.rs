//! Issue 19: a run makes the histograms of the phases it records before its first session
//! (each shard's is 184 KB written with zeros), for each protocol and send model, so that no
//! session waits for one to be made.

use fleetbench::metrics::{Phase, RunStatus};

use crate::support;

const AMQP: &str =
    "[protocol]\nkind = \"amqp\"\ndialect = \"iot-hub\"\napi-version = \"2021-04-12\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_prepares_every_phase_it_records() {
    let ca = support::chain();
    let hub = support::hub(&ca, &[&ca]).await;
    let cases = [
        (
            "mqtt-open",
            "[fleet]\ndevices = 4\n[messages]\ncount = 3\ninterval = \"10ms\"\n".to_owned(),
            Phase::PublishAck,
        ),
        (
            "mqtt-closed",
            "[fleet]\ndevices = 4\n[messages]\nmodel = \"closed\"\nthink = \"5ms\"\ncount = 3\n"
                .to_owned(),
            Phase::SendResponseUncorrected,
        ),
        (
            "mqtt-churn",
            "[fleet]\ndevices = 4\n[connect]\nrate = 200\n\
             [churn]\nduration = \"200ms\"\nmessages = 1\n"
                .to_owned(),
            Phase::PublishAck,
        ),
        (
            "amqp-open",
            format!("{AMQP}[fleet]\ndevices = 4\n[messages]\ncount = 3\ninterval = \"10ms\"\n"),
            Phase::SendAck,
        ),
    ];
    for (name, toml, ack) in cases {
        let plan = support::plan(&toml);
        let ids = support::ids(name, 4);
        hub.hub.registry.register_ca_signed(ids.iter());
        let (rec, result) = support::fleet(&plan, &hub, &ca, ca.clone(), ids).await;
        assert_eq!(result.status, RunStatus::Complete, "{name}");
        assert_eq!(
            rec.snapshot().sessions_failed,
            0,
            "{name}: {:?}",
            rec.failures()
        );
        let recorded: Vec<Phase> = rec.histograms().into_iter().map(|(p, _)| p).collect();
        for phase in [
            Phase::TcpConnect,
            Phase::TlsHandshake,
            Phase::ConnectResponse,
            ack,
        ] {
            assert!(
                recorded.contains(&phase),
                "{name}: {phase:?} in {recorded:?}"
            );
        }
        assert_eq!(rec.unprepared(), [], "{name}: recorded {recorded:?}");
    }
    hub.stop().await;
}
