//! Any bytes as a VP8 RTP payload (a parent relayer's packets are untrusted): the descriptor
//! reader never panics, and a keyframe start it reports is a frame start.
#![no_main]

use chroom_media::vp8_packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(packet) = vp8_packet(data) {
        assert!(!packet.keyframe || packet.starts_frame);
        assert!(packet.height.is_none() || packet.keyframe);
    }
});
