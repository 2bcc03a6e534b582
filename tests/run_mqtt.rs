//! Issue 2: fleets over MQTT mutual TLS against the embedded hub.

use fleetbench::command::run::account;
use fleetbench::metrics::{decode_histogram, FailureKind};

use crate::support::{self, accounting};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_of_200_every_acknowledged_message_is_counted_by_the_hub() {
    let plan = support::plan(accounting::FLEET_200);
    let (report, _dir) = support::run(&plan).await;
    accounting::assert_fleet_200_counted(
        &report,
        &[
            ("tcp_connect", 200),
            ("tls_handshake", 200),
            ("mqtt_connect", 200),
            ("publish_ack", 600),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_json_parses_and_its_histograms_decode_to_the_counts() {
    let plan = support::plan("[fleet]\ndevices = 20\n[messages]\ncount = 2\ninterval = \"10ms\"\n");
    let (report, _dir) = support::run(&plan).await;
    let text = std::fs::read_to_string(report.dir.join("summary.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["scenario"]["fleet"]["devices"], 20);
    let back: fleetbench::metrics::Summary = serde_json::from_str(&text).unwrap();
    assert_eq!(back, report.summary);
    for p in &back.phases {
        let h = decode_histogram(&p.histogram).unwrap();
        assert_eq!(h.len(), p.count, "{}", p.name);
        assert_eq!(h.max(), p.max_us, "{}", p.name);
    }
    assert_eq!(back.phase("publish_ack").unwrap().count, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_from_an_unregistered_ca_is_refused_while_the_fleet_completes() {
    let plan = support::plan("[messages]\ncount = 2\ninterval = \"10ms\"\n");
    let good_ca = support::chain();
    let rogue_ca = support::chain();
    let hub = support::hub(&good_ca, &[&good_ca]).await;
    let good = support::ids("good", 50);
    let rogue = support::ids("rogue", 3);
    hub.hub
        .registry
        .register_ca_signed(good.iter().chain(rogue.iter()));

    let (good_run, rogue_run) = tokio::join!(
        support::fleet(&plan, &hub, &good_ca, good_ca.clone(), good.clone()),
        support::fleet(&plan, &hub, &good_ca, rogue_ca.clone(), rogue.clone()),
    );
    let (good_rec, good_result) = good_run;
    let (rogue_rec, _) = rogue_run;
    assert_eq!(good_rec.snapshot().sessions_connected, 50);
    assert_eq!(good_rec.snapshot().messages_acked, 100);
    assert_eq!(account(&hub.hub, &good, &good_result).lost, 0);

    let snap = rogue_rec.snapshot();
    assert_eq!(snap.sessions_connected, 0);
    assert_eq!(snap.sessions_failed, 3);
    let failures = rogue_rec.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].phase, "mqtt_connect");
    assert!(failures[0].is(FailureKind::Refused));
    assert!(
        failures[0].sample.contains("CONNACK 5"),
        "{}",
        failures[0].sample
    );
    assert!(hub
        .hub
        .stats
        .refusals()
        .contains(&("unknown_ca".to_owned(), 3)));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_connecting_with_another_devices_id_is_refused() {
    let plan = support::plan("[messages]\ncount = 1\n");
    let ca = support::chain();
    let hub = support::hub(&ca, &[&ca]).await;
    // Only the victims are registered; mallory holds a valid certificate (CN mallory-00001)
    // from the same verified CA and claims to be victim-00001: the CN check must refuse.
    let victims = support::ids("victim", 2);
    hub.hub.registry.register_ca_signed(victims.iter());
    let impostor = ImpostorFleet::new(&ca, "mallory-00001", "victim-00001");
    let refused = impostor.connect(&hub, &ca).await;
    assert!(refused.contains("CONNACK 5"), "{refused}");
    assert!(hub
        .hub
        .stats
        .refusals()
        .iter()
        .any(|(k, n)| k == "identity_mismatch" && *n == 1));
    // The real victims still get in.
    let (rec, _) = support::fleet(&plan, &hub, &ca, ca.clone(), victims).await;
    assert_eq!(rec.snapshot().sessions_connected, 2);
    hub.stop().await;
}

/// One device whose certificate says `cn` but which claims to be `claimed`.
struct ImpostorFleet {
    tls: std::sync::Arc<rustls::ClientConfig>,
    claimed: String,
}

impl ImpostorFleet {
    fn new(ca: &fleetbench::pki::CaChain, cn: &str, claimed: &str) -> Self {
        use fleetbench::pki::{KeyType, Validity};
        use fleetbench::transport::{ClientTls, ServerVerification, TlsVersion};
        let dev = ca
            .mint_device(cn, KeyType::EcdsaP256, Validity::default())
            .unwrap();
        let roots = ClientTls::roots(std::slice::from_ref(ca.root().cert())).unwrap();
        let tls = ClientTls::new(TlsVersion::Tls13, ServerVerification::Roots(roots), false)
            .for_device(&dev)
            .unwrap();
        Self {
            tls,
            claimed: claimed.to_owned(),
        }
    }

    async fn connect(
        &self,
        hub: &fleetbench::command::run::EmbeddedHub,
        _ca: &fleetbench::pki::CaChain,
    ) -> String {
        use fleetbench::protocol::MqttSession;
        let tcp = fleetbench::transport::tcp_connect(hub.mqtt, None)
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost")
            .unwrap()
            .to_owned();
        let (tls, _) = fleetbench::transport::tls_handshake(self.tls.clone(), name, tcp)
            .await
            .unwrap();
        let opts = support::iot_hub_mqtt();
        match MqttSession::connect(tls, opts, &self.claimed, "localhost").await {
            Ok(_) => "connected".into(),
            Err(e) => e.to_string(),
        }
    }
}
