//! A corrupt or hostile Ogg file never panics the Opus reader, and every packet it yields has a
//! duration query that does not panic either.
#![no_main]

use chroom_media::container::ogg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = ogg::OggOpusReader::new(std::io::Cursor::new(data)) else {
        return;
    };
    while let Ok(Some(packet)) = reader.read_packet() {
        let _ = ogg::opus_packet_samples_48k(&packet);
    }
});
