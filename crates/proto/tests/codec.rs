//! Round trips of every message type, and hostile input: truncated,
//! oversized, garbage and mutated frames must give typed errors, never a
//! panic.

mod strategies;

use bytes::{BufMut, BytesMut};
use mydht_proto::*;
use proptest::prelude::*;
use strategies::frame;
use tokio_util::codec::{Decoder, Encoder};

fn encode(f: &Frame) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_frame(f, &mut buf, &Limits::default()).expect("fits the default limit");
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_frame_round_trips(f in frame()) {
        let buf = encode(&f);
        let (back, used) = decode_frame(&buf, &Limits::default()).expect("decodes");
        prop_assert_eq!(used, buf.len());
        prop_assert_eq!(back, f);
    }

    /// The codec reassembles a stream of frames however the bytes are cut.
    #[test]
    fn codec_reassembles_frames_split_anywhere(
        frames in prop::collection::vec(frame(), 1..6),
        cuts in prop::collection::vec(1usize..64, 1..40),
    ) {
        let mut codec = MessageCodec::default();
        let mut wire = BytesMut::new();
        for f in &frames {
            codec.encode(f, &mut wire).expect("encodes");
        }
        let mut input = BytesMut::new();
        let mut out = Vec::new();
        let mut cuts = cuts.into_iter().cycle();
        while !wire.is_empty() {
            let n = cuts.next().unwrap_or(1).min(wire.len());
            input.extend_from_slice(&wire.split_to(n));
            while let Some(f) = codec.decode(&mut input).expect("valid stream") {
                out.push(f);
            }
        }
        prop_assert!(input.is_empty());
        prop_assert_eq!(out, frames);
    }

    /// Every proper prefix of a frame is "incomplete", never an error.
    #[test]
    fn truncated_frames_are_incomplete(f in frame(), cut in any::<prop::sample::Index>()) {
        let buf = encode(&f);
        let at = cut.index(buf.len());
        prop_assert!(
            matches!(decode_frame(&buf[..at], &Limits::default()), Err(FrameError::Incomplete { .. })),
            "prefix of {} bytes", at
        );
    }

    /// Random bytes decode to a frame or a typed error.
    #[test]
    fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let limits = Limits { max_frame_len: 400, ..Limits::default() };
        match decode_frame(&data, &limits) {
            Ok((_, used)) => prop_assert!(used <= data.len()),
            Err(FrameError::TooLarge { len, max }) => prop_assert!(len > max),
            Err(FrameError::Incomplete { needed }) => prop_assert!(needed > 0),
            Err(FrameError::Malformed { .. } | FrameError::UnknownKind { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
        let _ = Preface::parse(&data);
        let _ = classify(&data);
        let mut codec = MessageCodec::new(limits);
        let mut buf = BytesMut::from(&data[..]);
        // Drain until the codec wants more or fails; it must not loop forever.
        for _ in 0..data.len() + 1 {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// Valid frames with bytes flipped, inserted or removed inside the body
    /// decode to something or to a typed error; framing errors are exact.
    #[test]
    fn mutated_frames_never_panic(
        f in frame(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut buf = encode(&f).to_vec();
        for (at, byte, op) in edits {
            if buf.len() <= 4 { break; }
            let i = 4 + at.index(buf.len() - 4);
            match op {
                0 => buf[i] = byte,
                1 => { buf.insert(i, byte); }
                _ => { buf.remove(i); }
            }
        }
        // Keep the prefix honest so the body itself is what is mutated.
        let len = u32::try_from(buf.len() - 4).expect("small");
        buf[..4].copy_from_slice(&len.to_be_bytes());
        match decode_frame(&buf, &Limits::default()) {
            Ok((_, used)) => prop_assert_eq!(used, buf.len()),
            Err(FrameError::Malformed { .. } | FrameError::UnknownKind { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}

#[test]
fn oversized_frames_are_refused_both_ways() {
    let limits = Limits {
        max_frame_len: 1000,
        ..Limits::default()
    };
    let big = Frame::new(
        RequestId(7),
        Body::Chunk(Chunk {
            seq: 0,
            data: vec![1u8; 2000].into(),
            last: true,
        }),
    );
    let mut buf = BytesMut::from(&b"keep"[..]);
    let err = encode_frame(&big, &mut buf, &limits).expect_err("over the limit");
    assert!(
        matches!(err, FrameError::TooLarge { max: 1000, .. }),
        "{err}"
    );
    assert_eq!(
        &buf[..],
        b"keep",
        "a refused frame leaves the buffer as it was"
    );

    // A peer announcing a huge frame is refused from the prefix alone.
    let mut wire = BytesMut::new();
    wire.put_u32(u32::MAX);
    wire.put_slice(&[0; 16]);
    let mut codec = MessageCodec::new(limits);
    match codec.decode(&mut wire) {
        Err(CodecError::Frame(FrameError::TooLarge { len, max: 1000 })) => {
            assert_eq!(len, u32::MAX as usize);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn kinds_from_a_newer_release_are_told_apart_from_garbage() {
    // id 42, then a Body variant index this release does not have.
    let mut wire = BytesMut::new();
    wire.put_u32(2);
    wire.put_slice(&[42, 99]);
    assert_eq!(
        decode_frame(&wire, &Limits::default()),
        Err(FrameError::UnknownKind {
            id: RequestId(42),
            what: "body",
            tag: 99
        })
    );
    // id 43, Body::Request, then a request variant index past the last.
    let mut wire = BytesMut::new();
    wire.put_u32(4);
    wire.put_slice(&[43, 2, REQUEST_KINDS as u8, 0]);
    assert_eq!(
        decode_frame(&wire, &Limits::default()),
        Err(FrameError::UnknownKind {
            id: RequestId(43),
            what: "request",
            tag: REQUEST_KINDS
        })
    );
    // A known request with a broken body is malformed, with its id.
    let mut wire = BytesMut::new();
    wire.put_u32(4);
    wire.put_slice(&[44, 2, 3, 200]);
    match decode_frame(&wire, &Limits::default()) {
        Err(FrameError::Malformed { id, .. }) => assert_eq!(id, Some(RequestId(44))),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn trailing_bytes_in_a_frame_are_malformed() {
    let mut buf = encode(&Frame::new(RequestId(1), Body::Cancel)).to_vec();
    buf.push(0);
    let len = u32::try_from(buf.len() - 4).expect("small");
    buf[..4].copy_from_slice(&len.to_be_bytes());
    assert!(matches!(
        decode_frame(&buf, &Limits::default()),
        Err(FrameError::Malformed {
            id: Some(RequestId(1)),
            ..
        })
    ));
}

#[test]
fn invalid_node_names_are_refused_on_decode() {
    // Body::Request(Request::Join { node: "" }): an empty name is not a NodeId.
    let mut wire = BytesMut::new();
    wire.put_u32(4);
    wire.put_slice(&[1, 2, 9, 0]);
    assert!(matches!(
        decode_frame(&wire, &Limits::default()),
        Err(FrameError::Malformed { .. })
    ));
}
