//! Shared documents in the node: whose edits count, what reaches the pages and the store.

use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, Text, Transact, Update};

use super::*;
use crate::node::docs::STORE_INTERVAL;

const NOTES: &str = "notes";

/// A page's edit: `text` inserted at the start of a fresh copy written by `client`.
fn typed(client: u64, text: &str) -> Vec<u8> {
    let doc = Doc::with_client_id(client);
    let shared = doc.get_or_insert_text(chroom_docs::TEXT_NAME);
    let mut txn = doc.transact_mut();
    shared.insert(&mut txn, 0, text);
    txn.encode_update_v1()
}

fn text_of(compacted: &[u8]) -> String {
    let doc = Doc::new();
    let shared = doc.get_or_insert_text(chroom_docs::TEXT_NAME);
    doc.transact_mut()
        .apply_update(Update::decode_v1(compacted).unwrap())
        .unwrap();
    shared.get_string(&doc.transact())
}

fn stored(outputs: &[NodeOutput<u32>]) -> Vec<(&str, &[u8])> {
    outputs
        .iter()
        .filter_map(|o| match o {
            NodeOutput::StoreDoc {
                name, compacted, ..
            } => Some((name.as_str(), compacted.as_slice())),
            _ => None,
        })
        .collect()
}

fn in_an_audio_space(now: Instant) -> NodeCore<u32> {
    let mut core = in_a_room(now);
    for (peer, role) in [(LOCAL, Role::Listener), (MEMBER, Role::Listener)] {
        let facts = AccessFacts::Known {
            kind: RoomKind::AudioSpace,
            membership: Membership::Member(role),
            relayer: false,
            policy: chroom_types::RoomPolicy::default(),
        };
        core.handle_access(now, room(), account(peer as u8), facts);
    }
    drain(&mut core);
    core
}

#[test]
fn an_own_edit_is_applied_published_and_stored_within_the_store_interval() {
    let now = epoch();
    let mut core = in_a_room(now);
    let update = typed(1, "hello");
    let say = core.edit_doc(now, room(), NOTES, update.clone()).unwrap();
    assert_eq!(
        say,
        Say::DocUpdate {
            name: NOTES.into(),
            update
        }
    );
    assert_eq!(core.doc_text(room(), NOTES).as_deref(), Some("hello"));
    assert_eq!(core.doc_names(room()), vec![NOTES.to_owned()]);
    assert!(stored(&drain(&mut core)).is_empty());

    let due = core.poll_timeout().unwrap();
    assert!(due <= now + STORE_INTERVAL);
    core.handle_timeout(now + STORE_INTERVAL);
    let outputs = drain(&mut core);
    let copies = stored(&outputs);
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].0, NOTES);
    assert_eq!(text_of(copies[0].1), "hello");
    // Stored once: nothing changed since.
    core.handle_timeout(now + 2 * STORE_INTERVAL);
    assert!(stored(&drain(&mut core)).is_empty());
}

#[test]
fn a_members_edit_reaches_the_pages_once_its_right_is_proven() {
    let now = epoch();
    let mut core = in_a_room(now);
    let update = typed(2, "from a member");
    let say = Say::DocUpdate {
        name: NOTES.into(),
        update: update.clone(),
    };
    hear(&mut core, now, 1, MEMBER, say.clone());
    let outputs = drain(&mut core);
    assert_eq!(verdict_of(&outputs, 1), Some(&GossipVerdict::Deliver));
    assert!(outputs.contains(&NodeOutput::DocUpdated {
        room: room(),
        name: NOTES.into(),
        update: update.clone(),
    }));
    assert_eq!(
        core.doc_text(room(), NOTES).as_deref(),
        Some("from a member")
    );

    // The same edit again (gossip forwarded it twice) changes nothing and tells no page.
    hear(&mut core, now, 2, MEMBER, say);
    let outputs = drain(&mut core);
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, NodeOutput::DocUpdated { .. }))
    );

    // A stranger's edit is refused by the registry and never applied.
    hear(
        &mut core,
        now,
        3,
        STRANGER,
        Say::DocUpdate {
            name: NOTES.into(),
            update: typed(3, "intruder "),
        },
    );
    let outputs = drain(&mut core);
    assert!(matches!(
        verdict_of(&outputs, 3),
        Some(GossipVerdict::Reject(_))
    ));
    assert_eq!(
        core.doc_text(room(), NOTES).as_deref(),
        Some("from a member")
    );
}

#[test]
fn a_listeners_edit_in_an_audio_space_is_refused_here_and_by_members() {
    let now = epoch();
    let mut core = in_an_audio_space(now);
    assert!(!core.may_edit(room()));
    assert_eq!(
        core.edit_doc(now, room(), NOTES, typed(1, "mine")),
        Err(CommandError::ReadOnly)
    );
    hear(
        &mut core,
        now,
        1,
        MEMBER,
        Say::DocUpdate {
            name: NOTES.into(),
            update: typed(2, "theirs"),
        },
    );
    let outputs = drain(&mut core);
    assert!(matches!(
        verdict_of(&outputs, 1),
        Some(GossipVerdict::Reject(_))
    ));
    assert_eq!(core.doc_text(room(), NOTES), None);
}

#[test]
fn garbage_from_a_member_harms_no_document() {
    let now = epoch();
    let mut core = in_a_room(now);
    core.edit_doc(now, room(), NOTES, typed(1, "kept")).unwrap();
    hear(
        &mut core,
        now,
        1,
        MEMBER,
        Say::DocUpdate {
            name: NOTES.into(),
            update: vec![0xff; 64],
        },
    );
    let outputs = drain(&mut core);
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, NodeOutput::DocUpdated { .. }))
    );
    assert_eq!(core.doc_text(room(), NOTES).as_deref(), Some("kept"));
    assert_eq!(core.counters().doc_updates_refused, 1);
}

#[test]
fn leaving_stores_what_changed_and_a_return_starts_from_the_stored_copy() {
    let now = epoch();
    let mut core = in_a_room(now);
    core.edit_doc(now, room(), NOTES, typed(1, "before leaving"))
        .unwrap();
    drain(&mut core);
    let _goodbye = core.leave(now, room());
    let outputs = drain(&mut core);
    let copies = stored(&outputs);
    assert_eq!(copies.len(), 1);
    let copy = copies[0].1.to_vec();
    assert_eq!(core.doc_text(room(), NOTES), None);

    core.join(now, UNIX_MS, room(), meet());
    core.handle_docs_loaded(room(), vec![(NOTES.into(), copy)]);
    assert_eq!(
        core.doc_text(room(), NOTES).as_deref(),
        Some("before leaving")
    );
}

#[test]
fn an_edit_arriving_before_the_one_it_follows_still_reaches_the_pages() {
    let now = epoch();
    let mut core = in_a_room(now);
    // A member types "a" then "b": the second edit builds on the first.
    let doc = Doc::with_client_id(2);
    let shared = doc.get_or_insert_text(chroom_docs::TEXT_NAME);
    let mut edits = Vec::new();
    for (at, key) in [(0, "a"), (1, "b")] {
        let mut txn = doc.transact_mut();
        shared.insert(&mut txn, at, key);
        edits.push(txn.encode_update_v1());
    }
    let said = |update: &Vec<u8>| Say::DocUpdate {
        name: NOTES.into(),
        update: update.clone(),
    };
    // Gossip brings them the other way round.
    hear(&mut core, now, 1, MEMBER, said(&edits[1]));
    hear(&mut core, now, 2, MEMBER, said(&edits[0]));
    let outputs = drain(&mut core);
    let passed: Vec<&Vec<u8>> = outputs
        .iter()
        .filter_map(|o| match o {
            NodeOutput::DocUpdated { update, .. } => Some(update),
            _ => None,
        })
        .collect();
    assert_eq!(passed, vec![&edits[1], &edits[0]]);
    assert_eq!(core.doc_text(room(), NOTES).as_deref(), Some("ab"));
}
