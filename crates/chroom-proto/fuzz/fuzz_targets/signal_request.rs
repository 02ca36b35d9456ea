//! Untrusted bytes from a peer's signaling stream never panic the request decoder, and whatever
//! decodes re-encodes to something that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = chroom_proto::decode_request(data) {
        let again = chroom_proto::decode_request(&chroom_proto::encode_request(&request));
        assert_eq!(again.as_ref(), Ok(&request));
    }
});
