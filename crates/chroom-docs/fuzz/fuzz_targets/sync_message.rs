//! Sync messages come from members and pages: decoding never panics, what decodes encodes
//! back to the same message, and a decoded message handed to a room's documents is answered or
//! refused without a panic (a SyncStep1 carries an untrusted state vector).
#![no_main]

use std::time::Instant;

use chroom_docs::{Access, Documents, DocumentsConfig, SyncMessage, TEXT_NAME};
use libfuzzer_sys::fuzz_target;
use yrs::{Doc, ReadTxn, StateVector, Text, Transact};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = SyncMessage::decode(data) else {
        return;
    };
    // lib0 reads integers written longer than needed, so bytes need not come back the same;
    // the message must.
    assert_eq!(SyncMessage::decode(&message.encode()), Ok(message.clone()));

    let page = Doc::with_client_id(1);
    let text = page.get_or_insert_text(TEXT_NAME);
    text.insert(&mut page.transact_mut(), 0, "notes");
    let start = page
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let mut docs: Documents<u8> = Documents::new(DocumentsConfig::default());
    docs.load("notes", &start).expect("a fresh update loads");
    let _ = docs.handle_sync_message(Instant::now(), &1, Access::Edit, "notes", &message);
    let _ = docs.document("notes").expect("still there").compact();
});
