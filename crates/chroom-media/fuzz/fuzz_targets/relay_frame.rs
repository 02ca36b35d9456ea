//! Any datagram may reach the media socket, and one starting 0x40–0x42 is taken for a relay
//! frame: decoding must never panic, and a frame it accepts must encode back to the same bytes.
#![no_main]

use chroom_media::relay::{self, RelayFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(frame) = relay::decode(data) else {
        return;
    };
    assert!(relay::is_relay_frame(data));
    let encoded = match frame {
        RelayFrame::ToPeer {
            token,
            peer,
            payload,
        } => relay::to_peer(&token, peer, payload),
        RelayFrame::FromPeer {
            token,
            peer,
            payload,
        } => relay::from_peer(&token, peer, payload),
        RelayFrame::Keepalive { token } => relay::keepalive(&token),
    };
    assert_eq!(encoded, data);
});
