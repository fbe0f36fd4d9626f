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

/// A batch with every optional field present and absent, headers and a
/// multi-byte origin: every branch of the decoder is on some byte of it.
fn rich_batch() -> Vec<u8> {
    let mut events: Vec<Event> = (0..6).map(sample_event).collect();
    events[1].origin = "tópico/0/1".into();
    let mut buf = Vec::new();
    encode_batch(&events, &mut buf);
    buf
}

fn rich_outcomes() -> Vec<u8> {
    encode_outcomes(&[
        Outcome::Drop,
        Outcome::Fail("naïve reason".into()),
        Outcome::Emit(vec![]),
        Outcome::Emit(vec![
            Output {
                route: Some("routé".into()),
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"{\"a\":1}")),
                op: Op::Delete,
                headers: vec![Header::new("h1", &b"v"[..]), Header::new("h2", &b""[..])],
                ttl_seconds: Some(7),
            },
            Output::default(),
        ]),
    ])
}

/// Decode a batch the way the SDK does (reader, then every header), so a
/// panic anywhere in the zero-copy path shows up.
fn read_whole_batch(buf: &[u8]) -> Result<usize, DecodeError> {
    let mut n = 0;
    for ev in BatchReader::new(buf)? {
        let ev = ev?;
        n += ev.headers.clone().count();
        n += ev.to_owned_event().headers.len();
    }
    Ok(n)
}

#[test]
fn every_prefix_of_a_batch_is_an_error_not_a_panic() {
    let buf = rich_batch();
    assert!(read_whole_batch(&buf).is_ok());
    for cut in 0..buf.len() {
        assert!(read_whole_batch(&buf[..cut]).is_err(), "cut {cut}");
    }
}

#[test]
fn every_prefix_of_an_outcome_list_is_an_error_not_a_panic() {
    let buf = rich_outcomes();
    assert!(decode_outcomes(Bytes::copy_from_slice(&buf), 4).is_ok());
    for cut in 0..buf.len() {
        let err = decode_outcomes(Bytes::copy_from_slice(&buf[..cut]), 4).unwrap_err();
        assert!(
            err.offset <= cut,
            "cut {cut}: offset {} past the end",
            err.offset
        );
    }
}

/// Mutations that hit each byte with the values most likely to matter: a
/// flag flipped, a length turned huge, a tag or op out of range, a byte that
/// breaks UTF-8.
const MUTATIONS: [u8; 6] = [0x00, 0x01, 0x7f, 0x80, 0xc3, 0xff];

#[test]
fn every_single_byte_mutation_of_a_batch_decodes_or_errors() {
    let buf = rich_batch();
    for at in 0..buf.len() {
        for m in MUTATIONS.iter().copied().chain([buf[at] ^ 0xff]) {
            let mut bad = buf.clone();
            bad[at] = m;
            if let Err(err) = read_whole_batch(&bad) {
                assert!(err.offset <= bad.len(), "byte {at}={m:#x}: {err}");
            }
        }
    }
}

#[test]
fn every_single_byte_mutation_of_an_outcome_list_decodes_or_errors() {
    let buf = rich_outcomes();
    for at in 0..buf.len() {
        for m in MUTATIONS.iter().copied().chain([buf[at] ^ 0xff]) {
            let mut bad = buf.clone();
            bad[at] = m;
            match decode_outcomes(Bytes::from(bad.clone()), 4) {
                // Whatever decodes holds only valid strings and slices of
                // the buffer.
                Ok(outcomes) => {
                    for o in &outcomes {
                        if let Outcome::Emit(outs) = o {
                            for out in outs {
                                let len = out.key.as_ref().map_or(0, |k| k.len())
                                    + out.value.as_ref().map_or(0, |v| v.len());
                                assert!(len <= bad.len(), "byte {at}={m:#x}");
                            }
                        }
                    }
                }
                Err(err) => assert!(err.offset <= bad.len(), "byte {at}={m:#x}: {err}"),
            }
        }
    }
}

#[test]
fn huge_counts_do_not_allocate_what_the_buffer_cannot_hold() {
    // An emit claiming u32::MAX outputs in a 13-byte buffer.
    let mut buf = Vec::new();
    buf.extend_from_slice(&OUTCOMES_MAGIC.to_le_bytes());
    buf.extend_from_slice(&1u32.to_le_bytes());
    buf.push(0); // emit
    buf.extend_from_slice(&u32::MAX.to_le_bytes());
    let err = decode_outcomes(Bytes::from(buf), 1).unwrap_err();
    assert!(err.problem.contains("output flags needs 1 bytes"), "{err}");

    // An outcome count of u32::MAX against a batch of that many events.
    let mut buf = Vec::new();
    buf.extend_from_slice(&OUTCOMES_MAGIC.to_le_bytes());
    buf.extend_from_slice(&u32::MAX.to_le_bytes());
    let err = decode_outcomes(Bytes::from(buf), u32::MAX as usize).unwrap_err();
    assert!(err.problem.contains("outcome tag"), "{err}");

    // A batch claiming u32::MAX events, and an event claiming u32::MAX headers.
    let mut buf = Vec::new();
    buf.extend_from_slice(&BATCH_MAGIC.to_le_bytes());
    buf.extend_from_slice(&u32::MAX.to_le_bytes());
    let err = read_whole_batch(&buf).unwrap_err();
    assert!(err.problem.contains("truncated event"), "{err}");
    let mut one = rich_batch();
    one[4..8].copy_from_slice(&1u32.to_le_bytes());
    // Header count of the first event: after flags, op, reserved, timestamp
    // and four lengths.
    let at = 8 + 1 + 1 + 2 + 8 + 4 * 4;
    one[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = read_whole_batch(&one).unwrap_err();
    assert!(err.problem.contains("header"), "{err}");
}

#[test]
fn invalid_utf8_and_unknown_tags_name_the_field() {
    let route = |bytes: &[u8]| {
        let mut buf = encode_outcomes(&[Outcome::Emit(vec![Output {
            route: Some("ab".into()),
            ..Output::default()
        }])]);
        let n = buf.len();
        buf[n - 2..].copy_from_slice(bytes);
        decode_outcomes(Bytes::from(buf), 1)
    };
    let err = route(&[0xc3, 0x28]).unwrap_err();
    assert!(err.problem.contains("route is not UTF-8"), "{err}");

    let mut buf = encode_outcomes(&[Outcome::Fail("ab".into())]);
    let n = buf.len();
    buf[n - 1] = 0xff;
    let err = decode_outcomes(Bytes::from(buf), 1).unwrap_err();
    assert!(err.problem.contains("fail reason is not UTF-8"), "{err}");

    let mut buf = encode_outcomes(&[Outcome::Drop]);
    buf[8] = 9;
    let err = decode_outcomes(Bytes::from(buf), 1).unwrap_err();
    assert_eq!(err.problem, "unknown outcome tag 9");
    assert_eq!(err.offset, 9);

    let mut buf = encode_outcomes(&[Outcome::Emit(vec![Output::default()])]);
    buf[8 + 1 + 4 + 1] = 3; // op of the first output
    let err = decode_outcomes(Bytes::from(buf), 1).unwrap_err();
    assert!(err.problem.contains("unknown op code 3"), "{err}");
}
