//! Updates arrive from pages and from any editing member of a room: whatever the bytes, the
//! store never panics, a refused update leaves the document as it was, and what it accepts
//! still compacts and loads back.
//!
//! Input: a mode byte, then either raw update bytes (even mode) or, to reach deep into yrs's
//! integration, an edit script for a yrs page (pairs of a position and a letter; a zero letter
//! deletes) up to a 0xff byte, whose update is then corrupted by the XOR pairs (offset, mask)
//! that follow.
#![no_main]

use std::time::Instant;

use chroom_docs::{Access, Documents, DocumentsConfig, TEXT_NAME};
use libfuzzer_sys::fuzz_target;
use yrs::{Doc, ReadTxn, StateVector, Text, Transact};

const NOTES: &str = "notes";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // A store holding a document that others already edited.
    let base = Doc::with_client_id(1);
    let text = base.get_or_insert_text(TEXT_NAME);
    text.insert(&mut base.transact_mut(), 0, "shared notes, typed before");
    let start = base
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let config = DocumentsConfig {
        max_document_bytes: 64 * 1024,
        ..DocumentsConfig::default()
    };
    let mut docs: Documents<u8> = Documents::new(config);
    docs.load(NOTES, &start).expect("a fresh update loads");

    let update = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        page_update(&start, rest)
    };
    let before = snapshot(&docs);
    let outcome = match mode % 3 {
        0 => docs.handle_update(Instant::now(), &7, Access::Edit, NOTES, &update),
        1 => docs.handle_sync_step2(Access::Edit, NOTES, &update),
        _ => docs.load(NOTES, &update),
    };
    let after = snapshot(&docs);
    if outcome.is_err() {
        assert_eq!(before, after, "a refused update changed the document");
    }
    // Whatever it holds now compacts and loads back. (Not necessarily to the same text: an
    // editor can forge origins that Yjs places by how the blocks around happen to be split,
    // see docs/DOCUMENTS.md. Honest updates read the same, as the property test checks.)
    let compacted = docs.document(NOTES).expect("still there").compact();
    let mut again: Documents<u8> = Documents::new(DocumentsConfig::default());
    again
        .load(NOTES, &compacted)
        .expect("a compacted document loads");
    let _ = again.document(NOTES).expect("loaded").text();
});

/// The text and the state vector, decoded (its bytes follow a hash map's order).
fn snapshot(docs: &Documents<u8>) -> (String, yrs::StateVector) {
    use yrs::updates::decoder::Decode;
    let doc = docs.document(NOTES).expect("loaded");
    let state_vector = yrs::StateVector::decode_v1(&doc.state_vector()).expect("own encoding");
    (doc.text(), state_vector)
}

/// A real page's update (from the edit script), then corrupted.
fn page_update(start: &[u8], script: &[u8]) -> Vec<u8> {
    use yrs::updates::decoder::Decode;
    let page = Doc::with_client_id(2);
    let text = page.get_or_insert_text(TEXT_NAME);
    page.transact_mut()
        .apply_update(yrs::Update::decode_v1(start).expect("own encoding"))
        .expect("applies");
    let split = script
        .iter()
        .position(|&b| b == 0xff)
        .unwrap_or(script.len());
    let (edits, flips) = script.split_at(split);
    let mut txn = page.transact_mut();
    for pair in edits.chunks_exact(2) {
        let len = text.len(&txn);
        let at = u32::from(pair[0]).min(len);
        if pair[1] == 0 {
            if at < len {
                text.remove_range(&mut txn, at, 1);
            }
        } else {
            let letter = char::from(b'a' + pair[1] % 26);
            text.insert(&mut txn, at, &letter.to_string());
        }
    }
    let mut update = txn.encode_update_v1();
    drop(txn);
    for flip in flips.get(1..).unwrap_or_default().chunks_exact(2) {
        if !update.is_empty() {
            let at = usize::from(flip[0]) % update.len();
            update[at] ^= flip[1];
        }
    }
    update
}
