//! The signaling frame reader never panics or allocates past the limit on a hostile stream.
#![no_main]

use futures::executor::block_on;
use futures::io::Cursor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut stream = Cursor::new(data);
    // Read frames until the stream ends or errors, as a peer could send several.
    while let Ok(frame) = block_on(chroom_net::signal::read_frame(&mut stream)) {
        if let chroom_net::signal::Frame::Payload(bytes) = frame {
            assert!(bytes.len() <= chroom_types::MAX_SIGNAL_MESSAGE_BYTES);
        }
    }
});

