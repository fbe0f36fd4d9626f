use bytes::Bytes;

use crate::*;

fn sample_event(i: usize) -> Event {
    Event {
        key: (!i.is_multiple_of(3)).then(|| Bytes::from(format!("k{i}"))),
        value: (!i.is_multiple_of(5)).then(|| Bytes::from(format!("{{\"n\":{i}}}"))),
        old_value: (i.is_multiple_of(2)).then(|| Bytes::from_static(b"")),
        op: [Op::Insert, Op::Upsert, Op::Delete][i % 3],
        headers: (0..i % 4)
            .map(|h| Header::new(format!("h{h}"), vec![h as u8; h]))
            .collect(),
        timestamp_ms: -5 + i as i64 * 1_000_000_007,
        origin: format!("topic/0/{i}"),
    }
}

#[test]
fn batches_round_trip_with_absent_and_empty_fields() {
    let events: Vec<Event> = (0..50).map(sample_event).collect();
    let mut buf = Vec::new();
    encode_batch(&events, &mut buf);
    assert_eq!(decode_batch(&buf).unwrap(), events);
    let reader = BatchReader::new(&buf).unwrap();
    assert_eq!(reader.remaining(), 50);
}

#[test]
fn outcomes_round_trip() {
    let outcomes = vec![
        Outcome::Drop,
        Outcome::Fail("bad field `x`".into()),
        Outcome::Emit(vec![]),
        Outcome::Emit(vec![
            Output {
                route: Some("mongo".into()),
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"{}")),
                op: Op::Delete,
                headers: vec![Header::new("a", &b"b"[..])],
                ttl_seconds: Some(0),
            },
            Output::default(),
        ]),
    ];
    let buf = encode_outcomes(&outcomes);
    assert_eq!(decode_outcomes(Bytes::from(buf), 4).unwrap(), outcomes);
}

#[test]
fn outcome_count_must_match_the_batch() {
    let buf = encode_outcomes(&[Outcome::Drop, Outcome::Drop]);
    let err = decode_outcomes(Bytes::from(buf), 3).unwrap_err();
    assert!(
        err.problem.contains("2 outcomes returned for a batch of 3"),
        "{err}"
    );
}

#[test]
fn every_truncation_of_an_outcome_list_is_an_error_not_a_panic() {
    let outcomes = vec![Outcome::Emit(vec![Output {
        route: Some("r".into()),
        key: Some(Bytes::from_static(b"key")),
        value: Some(Bytes::from_static(b"value")),
        headers: vec![Header::new("h", &b"v"[..])],
        ..Output::default()
    }])];
    let buf = encode_outcomes(&outcomes);
    for cut in 0..buf.len() {
        assert!(
            decode_outcomes(Bytes::copy_from_slice(&buf[..cut]), 1).is_err(),
            "cut {cut}"
        );
    }
    let mut long = buf.clone();
    long.push(0);
    assert!(decode_outcomes(Bytes::from(long), 1).is_err());
}

#[test]
fn hostile_lengths_are_rejected() {
    let mut buf = encode_outcomes(&[Outcome::Fail("x".into())]);
    // Reason length claims 4 GiB.
    buf[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = decode_outcomes(Bytes::from(buf), 1).unwrap_err();
    assert!(err.problem.contains("fail reason needs"), "{err}");

    let err = decode_outcomes(Bytes::from_static(b"nope\0\0\0\0"), 0).unwrap_err();
    assert!(err.problem.contains("not a Weir outcome list"), "{err}");
}

#[test]
fn writer_reuse_starts_clean() {
    let mut w = OutcomeWriter::new();
    w.drop_event();
    w.reset();
    w.fail("x");
    let out = decode_outcomes(Bytes::copy_from_slice(w.finish()), 1).unwrap();
    assert_eq!(out, vec![Outcome::Fail("x".into())]);
}
