//! A WHIP or WHEP client (or a page) sends any bytes as its offer or its trickle fragment:
//! checking them must never panic, and what passes must hold what the node relies on.
#![no_main]

use chroom_media::remote_sdp::{CheckedOffer, TrickleFragment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The web server hands the handlers text (axum's `String` extractor refuses other bytes).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(offer) = CheckedOffer::parse(text) {
        assert!(offer.media_lines > 0);
    }
    if let Ok(fragment) = TrickleFragment::parse(text) {
        for candidate in &fragment.candidates {
            assert!(candidate.starts_with("candidate:"));
            assert!(text.contains(candidate.as_str()));
        }
    }
});
