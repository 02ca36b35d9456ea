//! What a sealed room message opens to comes from a member holding a key, who may still be
//! hostile: decoding must never panic, must accept content kinds alone, and whatever decodes
//! must seal back to bytes that decode to the same content.
#![no_main]

use chroom_proto::{decode_sealed_content, encode_sealed_content};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = decode_sealed_content(data) {
        assert!(body.is_content());
        let plain = encode_sealed_content(&body).expect("content encodes");
        assert_eq!(decode_sealed_content(&plain).as_ref(), Ok(&body));
    }
});
