//! Record batches no Kafka client would write, produced with a hand-built
//! Produce request over plain TCP: a batch whose payload is garbage, whether
//! its header says it is compressed or not. Every client library refuses
//! to build one, and Apache Kafka's broker refuses to store one; the test
//! broker (Tansu) stores it as it is, which is what the tests of Weir's
//! skipping of undecodable batches need.
//!
//! The request is Produce v3 (the first version carrying record batches of
//! format v2) with a request header v1; see the Kafka protocol guide for
//! the field order. The batch's CRC-32C is right, so only the payload is
//! wrong.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The compression codec a batch's attributes claim (the low three bits).
#[derive(Debug, Clone, Copy)]
pub enum Codec {
    /// 0: the records are read straight from the batch.
    None,
    /// 1.
    Gzip,
    /// 2.
    Snappy,
    /// 3.
    Lz4,
    /// 4.
    Zstd,
}

impl Codec {
    fn attribute(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }
}

/// A record batch (format v2) of `records` records claiming `codec`, whose
/// payload (compressed, or the records themselves for [`Codec::None`]) is
/// `payload` (garbage, for the tests).
pub fn garbage_batch(codec: Codec, records: i32, payload: &[u8]) -> Vec<u8> {
    // Everything the CRC covers: attributes to the end.
    let mut tail = Vec::new();
    tail.extend_from_slice(&codec.attribute().to_be_bytes());
    tail.extend_from_slice(&(records - 1).to_be_bytes()); // lastOffsetDelta
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
    )
    .unwrap_or(0);
    tail.extend_from_slice(&now.to_be_bytes()); // baseTimestamp
    tail.extend_from_slice(&now.to_be_bytes()); // maxTimestamp
    tail.extend_from_slice(&(-1i64).to_be_bytes()); // producerId
    tail.extend_from_slice(&(-1i16).to_be_bytes()); // producerEpoch
    tail.extend_from_slice(&(-1i32).to_be_bytes()); // baseSequence
    tail.extend_from_slice(&records.to_be_bytes()); // recordCount
    tail.extend_from_slice(payload);

    let mut batch = Vec::new();
    batch.extend_from_slice(&0i64.to_be_bytes()); // baseOffset (the broker assigns it)
    // batchLength: from partitionLeaderEpoch to the end.
    let length = i32::try_from(4 + 1 + 4 + tail.len()).expect("small batch");
    batch.extend_from_slice(&length.to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
    batch.push(2); // magic
    batch.extend_from_slice(&crc32c::crc32c(&tail).to_be_bytes());
    batch.extend_from_slice(&tail);
    batch
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&i16::try_from(s.len()).expect("short").to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// Produce `batch` as it is to `topic`/`partition` on the broker at
/// `broker` (`host:port`, the partition's leader) with acks = all. Panics
/// when the broker refuses it.
pub fn produce_raw_batch(broker: &str, topic: &str, partition: i32, batch: &[u8]) {
    let mut body = Vec::new();
    body.extend_from_slice(&0i16.to_be_bytes()); // api_key: Produce
    body.extend_from_slice(&3i16.to_be_bytes()); // api_version
    body.extend_from_slice(&1i32.to_be_bytes()); // correlation_id
    put_str(&mut body, "weir-tests-raw");
    body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id: null
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks: all
    body.extend_from_slice(&30_000i32.to_be_bytes()); // timeout_ms
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    put_str(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes()); // one partition
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&i32::try_from(batch.len()).expect("small").to_be_bytes());
    body.extend_from_slice(batch);

    let mut stream = TcpStream::connect(broker).unwrap_or_else(|e| panic!("connect {broker}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut request = i32::try_from(body.len())
        .expect("small")
        .to_be_bytes()
        .to_vec();
    request.extend_from_slice(&body);
    stream
        .write_all(&request)
        .expect("send the Produce request");

    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("response size");
    let mut response = vec![0u8; usize::try_from(i32::from_be_bytes(size)).expect("size")];
    stream.read_exact(&mut response).expect("response");
    // correlation_id, [topics: name, [partitions: index, error_code, ...]]
    let mut at = 4 + 4;
    let name_len =
        usize::try_from(i16::from_be_bytes([response[at], response[at + 1]])).expect("topic name");
    at += 2 + name_len + 4 + 4;
    let error = i16::from_be_bytes([response[at], response[at + 1]]);
    assert_eq!(
        error, 0,
        "the broker refused the raw batch for {topic}/{partition}"
    );
}
