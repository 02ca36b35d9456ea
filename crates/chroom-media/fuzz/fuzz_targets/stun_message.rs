//! Any datagram may reach the media socket: the STUN parser must never panic, and what it takes
//! for a plain Binding request must answer with the asker's address, which decodes back.
#![no_main]

use chroom_media::stun;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(transaction) = stun::binding_request_id(data) {
        let asker = "198.51.100.4:5000".parse().unwrap();
        let answer = stun::binding_success(transaction, asker);
        assert_eq!(stun::binding_success_address(&answer, transaction), Some(asker));
    }
    let _ = stun::binding_success_address(data, [0; 12]);
});
