//! A page's WebSocket requests are untrusted text: decoding must never panic, and whatever
//! decodes must survive a round trip through JSON unchanged.
#![no_main]

use chroom_proto::page::decode_page_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = decode_page_request(text) {
        let json = serde_json::to_string(&request).expect("a request encodes");
        assert_eq!(decode_page_request(&json), Ok(request));
    }
});
