//! A download takes a manifest and chunks from a peer that may lie: whatever arrives must never
//! panic, and nothing that does not match the offer may be kept.
//!
//! Input: a file size (4 bytes), then manifest bytes (as many as the size needs; the offer's
//! manifest hash is theirs, so they are accepted), then chunk arrivals, each a chunk number (2
//! bytes), a length (2 bytes) and that many bytes.
#![no_main]

use chroom_room::files::{Download, Manifest, Want, chunk_count};
use chroom_types::FILE_CHUNK_BYTES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((size, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    // Up to 16 chunks keeps a run fast; sizes past the limit must be refused, not panic.
    let size = u64::from(u32::from_le_bytes(*size)) % (16 * FILE_CHUNK_BYTES as u64 + 2);
    let manifest_len = (chunk_count(size) as usize * 32).min(rest.len());
    let (manifest, mut arrivals) = rest.split_at(manifest_len);
    let offered = *blake3::hash(manifest).as_bytes();
    let Ok(mut download) = Download::new(size, offered, None, &[]) else {
        return;
    };
    // A manifest that is not the offer's never decodes.
    let mut forged = offered;
    forged[0] ^= 1;
    assert!(Manifest::decode(manifest, size, forged).is_err());
    let _ = download.next_wants(8);
    if download.manifest_arrived(manifest).is_err() {
        return;
    }
    while let Some((header, rest)) = arrivals.split_first_chunk::<4>() {
        let index = u32::from(u16::from_le_bytes([header[0], header[1]]));
        let len = usize::from(u16::from_le_bytes([header[2], header[3]])).min(rest.len());
        let (chunk, rest) = rest.split_at(len);
        arrivals = rest;
        let held = download.chunks_held();
        match download.chunk_arrived(index, chunk) {
            Ok(()) => assert!(download.chunks_held() >= held),
            Err(_) => {
                assert_eq!(download.chunks_held(), held);
                download.failed(Want::Chunk(index));
            }
        }
        assert!(download.received_bytes() <= size);
    }
});
