//! Issue 8: IoT Hub's throttling rehearsed on the embedded hub, and recognised by the generator.

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s1_hub_shapes_a_growing_send_rate_and_the_report_says_when() {
    // S1 x 1 accepts 100 sends/s. Sessions ramp to 60 over 8 s, each sending 5/s: the planned
    // rate passes the quota after about 3 s.
    let plan = support::plan(
        r#"
        [target]
        tier = "S1"
        units = 1
        [[stages]]
        duration = "8s"
        sessions = 60
        [messages]
        interval = "200ms"
        timeout = "20s"
        [run]
        max-duration = "60s"
        grace = "20s"
        "#,
    );
    let warnings = plan.quota_warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("300 messages/s") && w.contains("100 device-to-cloud sends/s")),
        "{warnings:?}"
    );

    let (report, _dir) = support::run(&plan).await;
    let s = &report.summary;
    let t = s
        .throttling
        .as_ref()
        .unwrap_or_else(|| panic!("no throttling found: {:?}", s.timeline));
    assert!((2..=8).contains(&t.began_at_secs), "{t:?}");
    assert!(
        t.ack_latency_after_us > 10 * t.ack_latency_before_us.max(1),
        "{t:?}"
    );
    assert!(
        t.acks_per_sec_after <= 130.0,
        "the hub held the rate near its quota: {t:?}"
    );
    let mut text = Vec::new();
    fleetbench::report::write_text(&mut text, s).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("Throttling"), "{text}");
    // Nothing acknowledged was lost on the way.
    assert_eq!(s.hub.as_ref().unwrap().lost, 0);
}

#[test]
fn quota_warnings_name_the_tier_and_the_rates() {
    let plan = support::plan("[target]\ntier = \"S2\"\nunits = 2\n[connect]\nrate = 1000\n");
    let w = plan.quota_warnings();
    assert!(
        w.iter()
            .any(|w| w.contains("1000 devices/s") && w.contains("S2 x 2") && w.contains("240")),
        "{w:?}"
    );
    let quiet = support::plan(
        "[target]\ntier = \"S3\"\n[connect]\nrate = 1000\n[messages]\ninterval = \"10s\"\n",
    );
    assert!(quiet.quota_warnings().is_empty());
    let none = support::plan("[connect]\nrate = 1000\n");
    assert!(none.quota_warnings().is_empty());
}
