//! Encode + decode round trips of a put carrying a 100-byte value.
//!
//! `cargo bench -p mydht-proto --bench codec`

use bytes::{Bytes, BytesMut};
use divan::{Bencher, black_box, counter::ItemsCount};
use mydht_proto::*;
use mydht_ring::NodeId;

fn main() {
    divan::main();
}

fn put_frame() -> Frame {
    Frame::new(
        RequestId(12_345),
        Body::Request(Request::Put(Put {
            key: Bytes::from_static(b"user:000000001234"),
            value: Payload::Inline(Bytes::from(vec![0xAB; 100])),
            write_id: WriteId {
                client: 0x1234_5678_9abc_def0,
                seq: 42,
            },
            seen: Some(Version {
                timestamp: Timestamp::from_parts(1_764_000_000_000, 3),
                node: NodeId::new("10.0.0.1:50140").expect("valid"),
            }),
            w: None,
            retry: false,
        })),
    )
}

const BATCH: usize = 1024;

#[divan::bench]
fn put_100_bytes_round_trip(bencher: Bencher) {
    let frame = put_frame();
    let limits = Limits::default();
    let mut buf = BytesMut::with_capacity(256);
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        for _ in 0..BATCH {
            buf.clear();
            encode_frame(black_box(&frame), &mut buf, &limits).expect("encodes");
            let (back, _) = decode_frame(black_box(&buf), &limits).expect("decodes");
            black_box(back);
        }
    });
}

#[divan::bench]
fn put_100_bytes_encode_only(bencher: Bencher) {
    let frame = put_frame();
    let limits = Limits::default();
    let mut buf = BytesMut::with_capacity(256);
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        for _ in 0..BATCH {
            buf.clear();
            encode_frame(black_box(&frame), &mut buf, &limits).expect("encodes");
        }
    });
}
