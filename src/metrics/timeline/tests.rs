use super::*;

#[test]
fn rows_are_deltas() {
    let mut t = Timeline::default();
    let s1 = Snapshot {
        messages_acked: 10,
        sessions_active: 3,
        ..Snapshot::default()
    };
    let mut errors_by_kind = [0; FailureKind::ALL.len()];
    errors_by_kind[FailureKind::Timeout as usize] = 4;
    let s2 = Snapshot {
        messages_acked: 25,
        errors: 4,
        errors_by_kind,
        sessions_active: 1,
        ..Snapshot::default()
    };
    t.push(1, s1, 0.5, 100, 0);
    t.push(2, s2, 0.5, 100, 0);
    let rows = t.into_rows();
    assert_eq!(rows[0].acks, 10);
    assert_eq!(rows[1].acks, 15);
    assert_eq!(rows[1].active, 1);
    assert!(rows[0].errors_by_kind.is_empty());
    assert_eq!(rows[1].errors_by_kind.get("timeout"), Some(&4));
    assert_eq!(rows[1].errors, 4);
}

fn cumulative(values: &[u64]) -> Vec<(Phase, LatencyHistogram)> {
    let mut h = crate::metrics::new_histogram();
    for v in values {
        h.saturating_record(*v);
    }
    vec![(Phase::SendResponse, h)]
}

#[test]
fn interval_histograms_are_the_difference_of_cumulative_ones() {
    let mut t = Timeline::default();
    let s = Snapshot::default();
    t.push_with_latency(1, s, cumulative(&[1_000, 2_000]), (0.0, 0, 0));
    t.push_with_latency(2, s, cumulative(&[1_000, 2_000]), (0.0, 0, 0));
    t.push_with_latency(
        3,
        s,
        cumulative(&[1_000, 2_000, 50_000, 90_000]),
        (0.0, 0, 0),
    );
    let rows = t.into_rows();
    let first = rows[0].latency_of("send_response").unwrap();
    assert_eq!(first.count, 2);
    assert!(rows[1].latency.is_empty(), "no samples, no entry");
    let third = rows[2].latency_of("send_response").unwrap();
    assert_eq!(third.count, 2);
    assert!((49_000..=50_100).contains(&third.p50_us), "{third:?}");
    assert!((89_000..=90_100).contains(&third.max_us), "{third:?}");
    let h = third.decode().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h.min(), h.lowest_equivalent(50_000));
}

#[test]
fn sampled_intervals_reuse_histograms_and_equal_fresh_ones() {
    use std::time::Duration;
    // The same seconds twice: from a recorder through reused histograms, and from fresh
    // merges (a phase joining in the third second, one sitting out the fourth).
    let recorder = Recorder::new();
    let (mut reused, mut fresh) = (Timeline::default(), Timeline::default());
    let s = Snapshot::default();
    for second in 1..=6u64 {
        for i in 0..50u64 {
            let v = Duration::from_micros(100 + (i * 37 + second * 1_000) % 20_000);
            if second != 4 {
                recorder.record(Phase::TcpConnect, i as usize, v);
            }
            if second >= 3 {
                recorder.record(Phase::TlsResumed, i as usize, v * 3);
            }
        }
        reused.push_sampled(second, s, &recorder, (0.0, 0, 0));
        fresh.push_with_latency(second, s, recorder.histograms(), (0.0, 0, 0));
        // Bounded: two histograms per phase with samples, whatever the run's length.
        assert!(reused.spare.len() <= 4, "{} spare", reused.spare.len());
    }
    let (reused, fresh) = (reused.into_rows(), fresh.into_rows());
    assert_eq!(reused.len(), 6);
    for (r, f) in reused.iter().zip(&fresh) {
        assert_eq!(r.latency.len(), f.latency.len(), "second {}", r.t);
        for (phase, l) in &f.latency {
            let mine = r.latency_of(phase).unwrap();
            assert_eq!(
                mine.decode().unwrap(),
                l.decode().unwrap(),
                "{phase} in {}",
                r.t
            );
            assert_eq!(mine.count, 50, "{phase} in {}", r.t);
        }
    }
    assert!(reused[3].latency_of("tcp_connect").is_none());
    assert!(reused[1].latency_of("tls_resumed").is_none());
    assert!(reused[2].latency_of("tls_resumed").is_some());
}

/// Adds a second of 1,000 samples spread over `spread` µs to each of three phases'
/// cumulative histograms: the wider the spread, the bigger each interval's encoding.
fn add_second(cumulative: &mut Vec<(Phase, LatencyHistogram)>, second: u64, spread: u64) {
    if cumulative.is_empty() {
        *cumulative = [Phase::SendResponse, Phase::PublishAck, Phase::Deliver]
            .into_iter()
            .map(|p| (p, crate::metrics::new_histogram()))
            .collect();
    }
    for (_, h) in cumulative.iter_mut() {
        for i in 0..1_000u64 {
            let scrambled = (i + second * 1_000).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
            h.saturating_record(100 + scrambled % spread);
        }
    }
}

fn timeline_of(spool: Spool, seconds: u64, spread: u64) -> Timeline {
    let mut t = Timeline {
        spool,
        ..Timeline::default()
    };
    let mut cumulative = Vec::new();
    for s in 1..=seconds {
        add_second(&mut cumulative, s, spread);
        t.push_with_latency(s, Snapshot::default(), cumulative.clone(), (0.0, 0, 0));
    }
    t
}

/// The heap the rows of `t` hold now, bytes (their vectors and strings; not the spool, which is
/// on disk): what a long run's timeline costs in memory.
fn heap_bytes(t: &Timeline) -> usize {
    use std::mem::size_of;
    let kept = t.rows.capacity() * size_of::<Kept>();
    let per_row: usize = t
        .rows
        .iter()
        .map(|k| {
            let kinds: usize = k.row.errors_by_kind.keys().map(|n| n.capacity() + 64).sum();
            let latency: usize = k
                .latency
                .iter()
                .map(|l| l.figures.histogram.capacity())
                .sum();
            kinds + latency + k.latency.capacity() * size_of::<KeptLatency>()
        })
        .sum();
    kept + per_row
}

/// The heap a row holds during the run, and its histograms' encoded bytes after it.
fn heap_per_row(spread: u64, spool: Spool) -> (usize, usize) {
    let before = heap_bytes(&Timeline::default());
    let t = timeline_of(spool, 60, spread);
    let per_row = (heap_bytes(&t) - before) / t.rows.len();
    let rows = t.into_rows();
    let encoded = rows
        .iter()
        .flat_map(|r| r.latency.values())
        .map(|l| l.histogram.len())
        .sum::<usize>()
        / rows.len();
    (per_row, encoded)
}

#[test]
fn rows_in_memory_hold_no_encoded_histogram_while_the_run_goes() {
    let (narrow, narrow_encoded) = heap_per_row(10, Spool::new());
    let (wide, wide_encoded) = heap_per_row(10_000_000, Spool::new());
    // The histograms that come back grow with the spread of their samples...
    assert!(
        wide_encoded > narrow_encoded + 300,
        "{narrow_encoded} {wide_encoded}"
    );
    // ...but a row in memory costs the same either way: its figures, not its histograms.
    assert_eq!(narrow, wide, "{narrow_encoded} {wide_encoded}");
    // Without a spool they stay in memory, and the rows come out the same.
    let (in_memory, encoded) = heap_per_row(10_000_000, Spool::none());
    assert_eq!(encoded, wide_encoded);
    assert!(
        in_memory >= wide + wide_encoded,
        "{in_memory} {wide} {wide_encoded}"
    );
}

#[test]
fn rows_come_back_the_same_with_or_without_the_spool() {
    let spooled = timeline_of(Spool::new(), 5, 50_000).into_rows();
    assert_eq!(spooled, timeline_of(Spool::none(), 5, 50_000).into_rows());
    for l in spooled.iter().flat_map(|r| r.latency.values()) {
        assert_eq!(l.decode().unwrap().len(), 1_000);
    }
}
