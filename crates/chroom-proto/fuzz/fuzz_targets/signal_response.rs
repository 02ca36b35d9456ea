//! Untrusted bytes from a peer's signaling reply never panic the response decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = chroom_proto::decode_response(data) {
        let again = chroom_proto::decode_response(&chroom_proto::encode_response(&response));
        assert_eq!(again.as_ref(), Ok(&response));
    }
});
