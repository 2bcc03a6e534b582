use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::metrics::Recorder;

const RUN: u64 = 0x1234_5678_9abc_def0;

fn binary(run: u64, device: u32, seq: u32) -> Received {
    let mut body = vec![0u8; 32];
    stamp::write_binary(
        &mut body,
        run,
        device,
        seq,
        stamp::unix_micros(Instant::now()),
    );
    Received {
        device: None,
        message_id: None,
        properties: Vec::new(),
        body: body.into(),
        at: Instant::now(),
    }
}

fn sent(index: u32, n: u32, unacked: &[u32]) -> Sent {
    Sent {
        index,
        device: format!("d{index}"),
        sent: n,
        settled: false,
        unacked: unacked.to_vec(),
    }
}

#[test]
fn every_fault_is_counted_by_device() {
    let rec = Arc::new(Recorder::new());
    let mut a = Account::new(RUN, rec.clone());
    // d0: all 4 in order. d1: 0, 2, 1 (out of order), 2 again (copy), 3 lost.
    // d2: 0 acked and delivered, 1 unacknowledged yet delivered.
    for (d, q) in [
        (0, 0),
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 0),
        (1, 2),
        (1, 1),
        (1, 2),
    ] {
        a.take(&binary(RUN, d, q));
    }
    a.take(&binary(RUN, 2, 0));
    a.take(&binary(RUN, 2, 1));
    a.take(&binary(RUN + 1, 0, 0));
    a.take(&binary(RUN, 9, 0));
    a.expect(vec![sent(0, 4, &[]), sent(1, 4, &[]), sent(2, 3, &[1, 2])]);
    assert!(!a.complete(), "d1's message 3 is missing");
    let d = a.finish("r".into(), true, Duration::ZERO);
    assert_eq!(d.received, 11);
    assert_eq!(d.foreign, 1);
    assert_eq!(d.unexpected, 1, "device 9 sent nothing");
    assert_eq!((d.acked, d.delivered, d.lost), (9, 8, 1));
    assert_eq!((d.duplicated, d.out_of_order), (1, 1));
    assert_eq!((d.unacked_delivered, d.unacked_missing), (1, 1));
    let names: Vec<_> = d.devices.iter().map(|x| x.device.as_str()).collect();
    assert_eq!(names, ["d1", "d2"]);
    assert_eq!(d.devices[0].lost, 1);
    assert_eq!(d.failures().len(), 2);
    let deliver = rec
        .histograms()
        .into_iter()
        .find(|(p, _)| *p == Phase::Deliver)
        .map(|(_, h)| h.len());
    assert_eq!(deliver, Some(11));
}

#[test]
fn completion_is_tracked_as_messages_arrive_and_ids_resolve() {
    let mut a = Account::new(RUN, Arc::new(Recorder::new()));
    let by_id = |seq: u32| Received {
        device: Some("d0".into()),
        message_id: Some(format!("d0-{seq}")),
        properties: vec![(SENT_PROPERTY.into(), "1".into())],
        body: bytes::Bytes::new(),
        at: Instant::now(),
    };
    a.take(&by_id(0));
    a.expect(vec![sent(0, 2, &[])]);
    assert!(!a.complete());
    a.take(&by_id(0));
    assert!(!a.complete(), "a copy is not the missing message");
    a.take(&by_id(1));
    assert!(a.complete());
    let d = a.finish("r".into(), true, Duration::ZERO);
    assert_eq!((d.delivered, d.lost, d.duplicated), (2, 0, 1));
}

#[test]
fn settled_sends_are_counted_apart() {
    let mut a = Account::new(RUN, Arc::new(Recorder::new()));
    a.take(&binary(RUN, 0, 1));
    a.expect(vec![Sent {
        settled: true,
        ..sent(0, 3, &[])
    }]);
    assert!(
        a.complete(),
        "nothing was acknowledged, so nothing is awaited"
    );
    let d = a.finish("r".into(), false, Duration::ZERO);
    assert_eq!((d.settled_delivered, d.settled_missing, d.lost), (1, 2, 0));
    assert!(d.failures().is_empty());
}
