//! Feeds arbitrary bytes to everything that reads bytes from a peer: the
//! connection classifier, the preface parser, the frame decoder and the
//! streaming codec. None may panic; a frame that decodes must re-encode and
//! decode to itself.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mydht_proto::{Limits, MessageCodec, Preface, classify, decode_frame, encode_frame};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    let _ = Preface::parse(data);
    let limits = Limits {
        max_frame_len: 64 * 1024,
        ..Limits::default()
    };
    if let Ok((frame, used)) = decode_frame(data, &limits) {
        assert!(used <= data.len());
        let mut again = BytesMut::new();
        encode_frame(&frame, &mut again, &Limits::default()).expect("a decoded frame re-encodes");
        let (back, _) = decode_frame(&again, &Limits::default()).expect("re-encoded frame decodes");
        assert_eq!(back, frame);
    }
    let mut codec = MessageCodec::new(limits);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
});
