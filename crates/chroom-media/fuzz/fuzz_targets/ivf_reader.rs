//! A corrupt or hostile IVF file never panics the reader or makes it allocate past its limit.
#![no_main]

use chroom_media::container::ivf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ivf::read_all(std::io::Cursor::new(data));
});
