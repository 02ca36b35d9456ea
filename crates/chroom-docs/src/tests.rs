//! The store against pages: yrs documents stand in for the pages' yjs ones.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

use crate::{
    Access, Applied, Documents, DocumentsConfig, MalformedUpdate, SyncMessage, TEXT_NAME,
    UpdateError,
};

const NOTES: &str = "notes";

/// A page's copy of a document: edits made here come out as updates.
struct Page {
    doc: Doc,
}

impl Page {
    fn new(client: u64) -> Self {
        let doc = Doc::with_client_id(client);
        doc.get_or_insert_text(TEXT_NAME);
        Self { doc }
    }

    /// Inserts at a position (clamped to the text), returning the update.
    fn insert(&self, at: u32, chunk: &str) -> Vec<u8> {
        self.edit(|text, txn| {
            let at = at.min(text.len(txn));
            text.insert(txn, at, chunk);
        })
    }

    /// Deletes up to `len` characters from a position (clamped), returning the update.
    fn delete(&self, at: u32, len: u32) -> Vec<u8> {
        self.edit(|text, txn| {
            let end = text.len(txn);
            let at = at.min(end);
            let len = len.min(end - at);
            if len > 0 {
                text.remove_range(txn, at, len);
            }
        })
    }

    fn edit(&self, change: impl FnOnce(&yrs::TextRef, &mut yrs::TransactionMut<'_>)) -> Vec<u8> {
        let text = self.doc.get_or_insert_text(TEXT_NAME);
        let mut txn = self.doc.transact_mut();
        change(&text, &mut txn);
        txn.encode_update_v1()
    }

    fn receive(&self, update: &[u8]) {
        let update = Update::decode_v1(update).unwrap();
        self.doc.transact_mut().apply_update(update).unwrap();
    }

    fn text(&self) -> String {
        let text = self.doc.get_or_insert_text(TEXT_NAME);
        text.get_string(&self.doc.transact())
    }
}

fn store() -> Documents<u32> {
    Documents::new(DocumentsConfig::default())
}

fn now() -> Instant {
    // A fixed origin keeps rate tests independent of the machine's clock.
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn edit(store: &mut Documents<u32>, author: u32, update: &[u8]) -> Result<Applied, UpdateError> {
    store.handle_update(now(), &author, Access::Edit, NOTES, update)
}

fn text(store: &Documents<u32>) -> String {
    store
        .document(NOTES)
        .map(|doc| doc.text())
        .unwrap_or_default()
}

/// Three pages edit concurrently from a shared start: interleaved, at the same position, and
/// deleting what another inserts into. Returns the updates in the order they were made.
fn three_concurrent_pages() -> (Vec<Vec<u8>>, [Page; 3]) {
    let pages = [Page::new(1), Page::new(2), Page::new(3)];
    let start = pages[0].insert(0, "shared start");
    pages[1].receive(&start);
    pages[2].receive(&start);
    let mut updates = vec![start];
    for round in 0..4u32 {
        for (index, page) in pages.iter().enumerate() {
            // Everyone types at the same position, then at their own spot.
            updates.push(page.insert(6, &format!("<{index}:{round}>")));
            updates.push(page.insert(round * 3 + index as u32, "x"));
        }
        updates.push(pages[round as usize % 3].delete(2, 5));
    }
    (updates, pages)
}

#[test]
fn concurrent_edits_from_three_pages_converge_whatever_the_order() {
    let (updates, pages) = three_concurrent_pages();
    let orders: [Vec<usize>; 3] = [
        (0..updates.len()).collect(),
        (0..updates.len()).rev().collect(),
        // Every third one first, as gossip might deliver them.
        (0..3)
            .flat_map(|phase| (phase..updates.len()).step_by(3))
            .collect(),
    ];
    let mut texts = Vec::new();
    for order in &orders {
        let mut docs = store();
        for &index in order {
            edit(&mut docs, index as u32 % 3, &updates[index]).unwrap();
        }
        assert!(!docs.document(NOTES).unwrap().compact().is_empty());
        texts.push(text(&docs));
    }
    // The pages converge too once each has every update, and to the same text.
    for page in &pages {
        for update in &updates {
            page.receive(update);
        }
    }
    let expected = pages[0].text();
    assert!(
        expected.contains("<2:3>") && expected.ends_with(" start"),
        "{expected}"
    );
    for page in &pages {
        assert_eq!(page.text(), expected);
    }
    for text in texts {
        assert_eq!(text, expected);
    }
}

#[test]
fn an_update_applied_twice_changes_nothing_the_second_time() {
    let page = Page::new(1);
    let update = page.insert(0, "hello");
    let mut docs = store();
    let first = edit(&mut docs, 1, &update).unwrap();
    assert_eq!(
        first,
        Applied {
            changed: true,
            waiting: false
        }
    );
    let again = edit(&mut docs, 1, &update).unwrap();
    assert!(!again.changed);
    assert_eq!(text(&docs), "hello");
}

#[test]
fn an_update_ahead_of_a_lost_one_waits_and_then_applies() {
    let page = Page::new(1);
    let first = page.insert(0, "ab");
    let second = page.insert(1, "X");
    let mut docs = store();
    let early = edit(&mut docs, 1, &second).unwrap();
    assert_eq!(
        early,
        Applied {
            changed: false,
            waiting: true
        }
    );
    assert_eq!(text(&docs), "");
    assert!(docs.document(NOTES).unwrap().is_waiting());
    let late = edit(&mut docs, 1, &first).unwrap();
    assert_eq!(
        late,
        Applied {
            changed: true,
            waiting: false
        }
    );
    assert_eq!(text(&docs), "aXb");
    assert!(!docs.document(NOTES).unwrap().is_waiting());
}

#[test]
fn garbage_is_refused_and_leaves_the_document_as_it_was() {
    let page = Page::new(1);
    let mut docs = store();
    edit(&mut docs, 1, &page.insert(0, "keep me")).unwrap();
    let before = docs.document(NOTES).unwrap().compact();

    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut refused = 0;
    for len in 0..400 {
        let garbage: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Each try is charged to its author: one author each keeps them inside the rate.
        if edit(&mut docs, 1000 + len, &garbage).is_err() {
            refused += 1;
        }
    }
    assert!(refused > 390, "random bytes are refused ({refused}/400)");
    assert_eq!(text(&docs), "keep me");

    // A real update cut short or corrupted byte by byte: refused, or applied as what it
    // then says; either way the document still encodes and loads back.
    let valid = Page::new(2).insert(0, "more text here");
    for cut in 0..valid.len() {
        let _ = edit(&mut docs, 3, &valid[..cut]);
    }
    for index in 0..valid.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut bad = valid.clone();
            bad[index] ^= flip;
            let mut copy = Documents::new(DocumentsConfig::default());
            copy.load(NOTES, &before).unwrap();
            let _ = edit(&mut copy, 4, &bad);
            let reloaded = reload(&copy);
            assert_eq!(text(&reloaded), text(&copy));
        }
    }
    assert_eq!(docs.document(NOTES).unwrap().compact(), before);
}

#[test]
fn a_nesting_bomb_and_oversized_client_ids_are_refused() {
    let mut docs = store();
    edit(&mut docs, 1, &Page::new(1).insert(0, "safe")).unwrap();
    let mut bomb = vec![1, 1, 5, 0, 8, 1, 1, b't', 1];
    for _ in 0..50_000 {
        bomb.extend_from_slice(&[117, 1]);
    }
    bomb.extend_from_slice(&[126, 0]);
    assert_eq!(
        edit(&mut docs, 2, &bomb),
        Err(UpdateError::Malformed(MalformedUpdate::NestedTooDeep {
            max: 32
        }))
    );
    // Client 2^53 (yrs asserts below it in debug builds).
    let huge_client = [
        1, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 4, 1, 1, b't', 1, b'a', 0,
    ];
    assert_eq!(
        edit(&mut docs, 2, &huge_client),
        Err(UpdateError::Malformed(MalformedUpdate::ClientTooLarge))
    );
    assert_eq!(text(&docs), "safe");
}

#[test]
fn an_item_whose_parent_is_no_container_is_refused_whole() {
    let page = Page::new(1);
    let mut docs = store();
    edit(&mut docs, 1, &page.insert(0, "abc")).unwrap();
    let before = docs.document(NOTES).unwrap().state_vector();
    // Client 9 inserts a string under item (1, 0), which is the character "a"; client 8
    // makes a fine insert in the same update.
    let fine = Page::new(8).insert(0, "z");
    let fine = Update::decode_v1(&fine).unwrap();
    let bad_bytes = [1, 1, 9, 0, 4, 0, 1, 0, 1, b'x', 0];
    let bad = Update::decode_v1(&bad_bytes).unwrap();
    let both = Update::merge_updates([fine, bad]);
    let both = yrs::updates::encoder::Encode::encode_v1(&both);
    let result = edit(&mut docs, 2, &both);
    assert!(
        matches!(
            result,
            Err(UpdateError::Malformed(MalformedUpdate::Integrate(_)))
        ),
        "{result:?}"
    );
    assert_eq!(
        state_vector(&docs.document(NOTES).unwrap().state_vector()),
        state_vector(&before)
    );
    assert_eq!(text(&docs), "abc");
}

#[test]
fn an_update_whose_result_would_not_load_is_refused() {
    let page = Page::new(1);
    let mut docs = store();
    edit(&mut docs, 1, &page.insert(0, "shared notes, typed before")).unwrap();
    // Found by the fuzzer: client 2's items wait under an item of client 1 that is a
    // character; in memory yrs holds them, but the document's encoding would not load.
    let update = [
        2, 2, 1, 0, 1, 8, 0, 2, 0x7a, 1, 0x62, 1, 1, 0x62, 0, 2, 1, 0,
    ];
    let result = edit(&mut docs, 2, &update);
    assert!(
        matches!(
            result,
            Err(UpdateError::Malformed(MalformedUpdate::Integrate(_)))
        ),
        "{result:?}"
    );
    let doc = docs.document(NOTES).unwrap();
    assert!(!doc.is_waiting());
    assert_eq!(reload(&docs).document(NOTES).unwrap().text(), doc.text());
}

#[test]
fn an_oversized_update_is_refused() {
    let mut docs = store();
    let page = Page::new(1);
    edit(&mut docs, 1, &page.insert(0, "small")).unwrap();
    let big = Page::new(2).insert(0, &"x".repeat(200 * 1024));
    let error = edit(&mut docs, 2, &big).unwrap_err();
    assert!(matches!(error, UpdateError::TooLarge { max: 131_072, .. }));
    assert!(error.to_string().contains("cap of 131072 bytes per update"));
    assert_eq!(text(&docs), "small");
}

#[test]
fn a_document_stops_growing_at_its_cap_and_says_so() {
    let config = DocumentsConfig {
        max_document_bytes: 8 * 1024,
        ..DocumentsConfig::default()
    };
    let mut docs: Documents<u32> = Documents::new(config);
    let page = Page::new(1);
    let mut accepted = String::new();
    let mut refusal = None;
    for round in 0..400 {
        let chunk = format!("line {round:03} of the notes, and a few more words\n");
        let update = page.insert(u32::MAX, &chunk);
        match docs.handle_update(now(), &1, Access::Edit, NOTES, &update) {
            Ok(_) => accepted.push_str(&chunk),
            Err(error) => {
                refusal = Some(error);
                break;
            }
        }
    }
    let refusal = refusal.expect("the cap is reached");
    assert!(
        matches!(refusal, UpdateError::DocumentFull { max: 8192, would_be } if would_be > 8192),
        "{refusal:?}"
    );
    assert!(refusal.to_string().contains("over its cap of 8192 bytes"));
    let doc = docs.document(NOTES).unwrap();
    assert_eq!(doc.text(), accepted);
    assert!(doc.encoded_len() <= 8192);
    // Deleting frees room again: yrs collects deleted text.
    let len = u32::try_from(accepted.len()).unwrap();
    let delete = page.delete(0, len - 40);
    // The page's copy holds the refused chunk; the store never saw it, so the delete covers
    // only what the store has plus that chunk's ids.
    docs.handle_update(now(), &1, Access::Edit, NOTES, &delete)
        .unwrap();
    let doc = docs.document(NOTES).unwrap();
    assert!(doc.encoded_len() < 2048, "{}", doc.encoded_len());
}

#[test]
fn a_read_only_author_changes_nothing() {
    let mut docs = store();
    let update = Page::new(1).insert(0, "listener's words");
    assert_eq!(
        docs.handle_update(now(), &1, Access::ReadOnly, NOTES, &update),
        Err(UpdateError::ReadOnly)
    );
    assert!(docs.document(NOTES).is_none(), "no document opened");
    edit(&mut docs, 2, &Page::new(2).insert(0, "host")).unwrap();
    assert_eq!(
        docs.handle_update(now(), &1, Access::ReadOnly, NOTES, &update),
        Err(UpdateError::ReadOnly)
    );
    assert_eq!(
        docs.handle_sync_step2(Access::ReadOnly, NOTES, &update),
        Err(UpdateError::ReadOnly)
    );
    assert_eq!(text(&docs), "host");
}

#[test]
fn an_author_going_faster_than_its_rate_is_held_back() {
    let config = DocumentsConfig {
        author_burst_bytes: 4096,
        author_bytes_per_sec: 1024,
        update_overhead_bytes: 256,
        max_update_bytes: 1024,
        ..DocumentsConfig::default()
    };
    let mut docs: Documents<u32> = Documents::new(config);
    let fast = Page::new(1);
    let start = now();
    let mut accepted = 0;
    let mut retry_after = None;
    for index in 0..100 {
        let update = fast.insert(u32::MAX, "k");
        match docs.handle_update(start, &1, Access::Edit, NOTES, &update) {
            Ok(_) => accepted += 1,
            Err(UpdateError::RateLimited { retry_after: wait }) => {
                retry_after = Some((index, wait, update));
                break;
            }
            Err(other) => panic!("{other}"),
        }
    }
    // 4096 bytes of allowance at ~280 bytes an update.
    assert!((13..=15).contains(&accepted), "{accepted}");
    let (_, wait, update) = retry_after.unwrap();
    assert!(
        wait > Duration::ZERO && wait < Duration::from_secs(1),
        "{wait:?}"
    );
    // Another author has an allowance of its own.
    let other = Page::new(2).insert(0, "o");
    docs.handle_update(start, &2, Access::Edit, NOTES, &other)
        .unwrap();
    // Once the wait is over, the held-back update goes in, and nothing was lost.
    docs.handle_update(start + wait, &1, Access::Edit, NOTES, &update)
        .unwrap();
    assert_eq!(text(&docs).matches('k').count(), accepted + 1);
}

#[test]
fn authors_tracked_stay_bounded() {
    let config = DocumentsConfig {
        max_tracked_authors: 4,
        ..DocumentsConfig::default()
    };
    let mut docs: Documents<u32> = Documents::new(config);
    let page = Page::new(1);
    for author in 0..50 {
        let update = page.insert(0, "a");
        docs.handle_update(now(), &author, Access::Edit, NOTES, &update)
            .unwrap();
        assert!(docs.tracked_authors() <= 4);
    }
}

#[test]
fn a_room_holds_at_most_its_documents() {
    let config = DocumentsConfig {
        max_documents: 2,
        ..DocumentsConfig::default()
    };
    let mut docs: Documents<u32> = Documents::new(config);
    let update = Page::new(1).insert(0, "a");
    for name in ["one", "two"] {
        docs.handle_update(now(), &1, Access::Edit, name, &update)
            .unwrap();
    }
    assert_eq!(
        docs.handle_update(now(), &1, Access::Edit, "three", &update),
        Err(UpdateError::TooManyDocuments { max: 2 })
    );
    assert!(
        docs.handle_update(now(), &1, Access::Edit, "two", &update)
            .is_ok()
    );
    assert_eq!(docs.len(), 2);
    assert!(matches!(
        docs.handle_update(now(), &1, Access::Edit, "bad\u{7}name", &update),
        Err(UpdateError::InvalidName(_))
    ));
}

#[test]
fn two_stores_catch_up_by_sync_steps() {
    let (updates, _) = three_concurrent_pages();
    let (first_half, second_half) = updates.split_at(updates.len() / 2);
    // A has the first half and a bit of the second; B the rest.
    let mut a = store();
    let mut b = store();
    for update in first_half.iter().chain(&second_half[..2]) {
        edit(&mut a, 1, update).unwrap();
    }
    for update in &second_half[2..] {
        edit(&mut b, 2, update).unwrap();
    }
    assert!(
        b.document(NOTES).unwrap().text().is_empty(),
        "B waits for A's start"
    );

    // Each sends its state vector (SyncStep1) as y-protocols bytes; the other answers.
    for _ in 0..2 {
        let ask = SyncMessage::SyncStep1 {
            state_vector: b.state_vector(NOTES).unwrap(),
        };
        let ask = SyncMessage::decode(&ask.encode()).unwrap();
        let answer = a
            .handle_sync_message(now(), &2, Access::Edit, NOTES, &ask)
            .unwrap()
            .unwrap();
        let answer = SyncMessage::decode(&answer.encode()).unwrap();
        assert!(
            b.handle_sync_message(now(), &1, Access::Edit, NOTES, &answer)
                .unwrap()
                .is_none()
        );
        std::mem::swap(&mut a, &mut b);
    }
    assert_eq!(text(&a), text(&b));
    assert_eq!(
        state_vector(&a.document(NOTES).unwrap().state_vector()),
        state_vector(&b.document(NOTES).unwrap().state_vector())
    );
    let reference = Page::new(99);
    for update in &updates {
        reference.receive(update);
    }
    assert_eq!(text(&a), reference.text());

    // A store without the document answers with an empty update; a bad state vector is an
    // error, not a panic.
    let empty = store();
    let diff = empty.diff(NOTES, &a.state_vector(NOTES).unwrap()).unwrap();
    assert_eq!(diff, [0, 0]);
    assert!(a.diff(NOTES, &[5, 1]).is_err());
    assert!(
        a.diff(
            NOTES,
            &[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0]
        )
        .is_err()
    );
}

#[test]
fn a_compacted_document_loads_back_the_same() {
    let (updates, _) = three_concurrent_pages();
    let mut docs = store();
    for update in &updates {
        edit(&mut docs, 1, update).unwrap();
    }
    let doc = docs.document(NOTES).unwrap();
    let compacted = doc.compact();
    assert_eq!(doc.encoded_len(), compacted.len());
    let total: usize = updates.iter().map(Vec::len).sum();
    assert!(compacted.len() < total, "{} >= {total}", compacted.len());

    let mut loaded = store();
    let applied = loaded.load(NOTES, &compacted).unwrap();
    assert!(applied.changed);
    let again = loaded.document(NOTES).unwrap();
    assert_eq!(again.text(), doc.text());
    assert_eq!(
        state_vector(&again.state_vector()),
        state_vector(&doc.state_vector())
    );
    assert_eq!(again.encoded_len(), compacted.len());
    // A page loads it the same way.
    let page = Page::new(5);
    page.receive(&compacted);
    assert_eq!(page.text(), doc.text());
}

#[test]
fn deleted_text_is_gone_from_the_compacted_document() {
    let page = Page::new(1);
    let mut docs = store();
    edit(&mut docs, 1, &page.insert(0, &"secret ".repeat(1000))).unwrap();
    edit(&mut docs, 1, &page.delete(0, 7000)).unwrap();
    edit(&mut docs, 1, &page.insert(0, "kept")).unwrap();
    let compacted = docs.document(NOTES).unwrap().compact();
    assert!(compacted.len() < 100, "{}", compacted.len());
    assert!(!compacted.windows(6).any(|window| window == b"secret"));
    assert_eq!(text(&docs), "kept");
}

/// A store with the same documents, loaded from their compacted forms (fresh allowances).
fn reload(docs: &Documents<u32>) -> Documents<u32> {
    let mut fresh = Documents::new(docs.config().clone());
    for (name, doc) in docs.iter() {
        fresh.load(name.as_str(), &doc.compact()).unwrap();
    }
    fresh
}

/// One page's edit: insert a character or delete a few at a position.
fn op() -> impl Strategy<Value = (u8, u8, char)> {
    (0u8..3, any::<u8>(), proptest::char::range('a', 'e'))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Three pages edit with occasional syncs between them; their updates reach two stores in
    /// two random orders (late, early, duplicated). Both stores and the pages end identical.
    #[test]
    fn any_order_of_the_same_updates_converges(
        ops in proptest::collection::vec(op(), 1..120),
        order_a in any::<u64>(),
        order_b in any::<u64>(),
    ) {
        let pages = [Page::new(1), Page::new(2), Page::new(3)];
        let mut updates = Vec::new();
        for (step, (page, position, letter)) in ops.into_iter().enumerate() {
            let page = &pages[usize::from(page)];
            let update = if position % 4 == 0 {
                page.delete(u32::from(position / 4), 2)
            } else {
                page.insert(u32::from(position / 4), &letter.to_string())
            };
            updates.push(update);
            // Now and then a page hears what the others did so far.
            if step % 7 == 0 {
                for update in &updates {
                    page.receive(update);
                }
            }
        }
        for page in &pages {
            for update in &updates {
                page.receive(update);
            }
        }
        let expected = pages[0].text();
        for page in &pages {
            prop_assert_eq!(page.text(), expected.clone());
        }
        let mut texts = Vec::new();
        for seed in [order_a, order_b] {
            let mut docs = store();
            let mut last = None;
            for index in shuffled(updates.len(), seed) {
                // The rate is not under test: a fresh author for each update.
                last = Some(
                    docs.handle_update(now(), &(index as u32), Access::Edit, NOTES, &updates[index])
                        .unwrap(),
                );
            }
            // Every update arrived, so nothing waits any more.
            prop_assert!(!last.unwrap().waiting);
            let doc = docs.document(NOTES).unwrap();
            prop_assert_eq!(
                state_vector(&doc.state_vector()),
                pages[0].doc.transact().state_vector()
            );
            // The stored form reads the same once loaded.
            prop_assert_eq!(text(&reload(&docs)), doc.text());
            texts.push(doc.text());
        }
        prop_assert_eq!(&texts[0], &expected);
        prop_assert_eq!(&texts[1], &expected);
    }
}

/// The indices `0..len` in a seeded order, each once, plus a few repeated.
fn shuffled(len: usize, mut seed: u64) -> Vec<usize> {
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let mut order: Vec<usize> = (0..len).collect();
    for index in (1..len).rev() {
        order.swap(index, next() % (index + 1));
    }
    for _ in 0..len / 4 {
        order.push(next() % len);
    }
    order
}

/// A state vector's bytes decoded (their order follows a hash map's, so bytes don't compare).
fn state_vector(bytes: &[u8]) -> StateVector {
    StateVector::decode_v1(bytes).unwrap()
}

#[test]
fn an_empty_state_vector_asks_for_everything() {
    let mut docs = store();
    edit(&mut docs, 1, &Page::new(1).insert(0, "all of it")).unwrap();
    let empty = yrs::updates::encoder::Encode::encode_v1(&StateVector::default());
    let diff = docs.diff(NOTES, &empty).unwrap();
    let page = Page::new(2);
    page.receive(&diff);
    assert_eq!(page.text(), "all of it");
}

#[test]
fn a_store_tells_whether_a_members_state_vector_holds_edits_it_lacks() {
    let (mut ahead, mut behind) = (store(), store());
    let page = Page::new(1);
    let first = page.insert(0, "shared");
    edit(&mut ahead, 1, &first).unwrap();
    edit(&mut behind, 1, &first).unwrap();
    let sv = |s: &Documents<u32>| s.state_vector(NOTES).unwrap();
    assert!(!behind.lacks(NOTES, &sv(&ahead)).unwrap());

    edit(&mut ahead, 1, &page.insert(6, " more")).unwrap();
    assert!(behind.lacks(NOTES, &sv(&ahead)).unwrap());
    assert!(!ahead.lacks(NOTES, &sv(&behind)).unwrap());
    assert!(ahead.ahead_of(NOTES, &sv(&behind)).unwrap());
    assert!(!behind.ahead_of(NOTES, &sv(&ahead)).unwrap());
    assert!(!store().ahead_of(NOTES, &sv(&ahead)).unwrap());
    // A store without the document lacks whatever a member wrote in it.
    assert!(store().lacks(NOTES, &sv(&ahead)).unwrap());
    assert!(store().lacks(NOTES, &[0xff, 0xff]).is_err());
}
