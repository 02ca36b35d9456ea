//! Room gossip arrives from any member of a topic: decoding must never panic, and whatever
//! decodes must encode back to something that decodes to the same message.
#![no_main]

use chroom_proto::{decode_room_message, encode_room_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = decode_room_message(data) {
        let again = decode_room_message(&encode_room_message(&message));
        assert_eq!(again.as_ref(), Ok(&message));
    }
});
