//! Shared documents in the node: whose edits count, what reaches the pages and the store.

use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, Text, Transact, Update};

use super::*;
use crate::node::doc_sync::SYNC_INTERVAL;
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

/// Has `author` (writing as yrs client `client`) publish an edit typing `text`, as message
/// `id`; returns what the core did.
fn hear_edit(
    core: &mut NodeCore<u32>,
    (now, id): (Instant, u64),
    author: u32,
    client: u64,
    text: &str,
) -> Vec<NodeOutput<u32>> {
    let say = Say::DocUpdate {
        name: NOTES.into(),
        update: typed(client, text),
    };
    hear(core, now, id, author, say);
    drain(core)
}

fn rejected(outputs: &[NodeOutput<u32>], id: u64) -> bool {
    matches!(verdict_of(outputs, id), Some(GossipVerdict::Reject(_)))
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
    assert!(outputs.contains(&NodeOutput::DocUpdated(DocEdit {
        room: room(),
        name: NOTES.into(),
        update: update.clone(),
    })));
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
            .any(|o| matches!(o, NodeOutput::DocUpdated(_)))
    );

    // A stranger's edit is refused by the registry and never applied.
    let outputs = hear_edit(&mut core, (now, 3), STRANGER, 3, "intruder ");
    assert!(rejected(&outputs, 3));
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
    let outputs = hear_edit(&mut core, (now, 1), MEMBER, 2, "theirs");
    assert!(rejected(&outputs, 1));
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
            .any(|o| matches!(o, NodeOutput::DocUpdated(_)))
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
            NodeOutput::DocUpdated(edit) => Some(&edit.update),
            _ => None,
        })
        .collect();
    assert_eq!(passed, vec![&edits[1], &edits[0]]);
    assert_eq!(core.doc_text(room(), NOTES).as_deref(), Some("ab"));
}

/// A document of `len` characters as one compacted update.
fn long_document(len: usize) -> Vec<u8> {
    let doc = Doc::with_client_id(9);
    let shared = doc.get_or_insert_text(chroom_docs::TEXT_NAME);
    let line = "a line of shared notes, long enough to fill parts\n";
    let mut txn = doc.transact_mut();
    let mut written = 0;
    while written < len {
        shared.insert(&mut txn, written as u32, line);
        written += line.len();
    }
    txn.encode_update_v1()
}

/// Carries every pull `asker` makes to `server` and the parts back, until no pull is left;
/// returns how many pulls went.
fn carry_pulls(asker: &mut NodeCore<u32>, server: &mut NodeCore<u32>, now: Instant) -> usize {
    let (asker_id, server_id) = (asker.local, server.local);
    let mut pulls = 0;
    let mut outputs = drain(asker);
    while let Some(pull) = outputs.iter().find_map(|o| match o {
        NodeOutput::PullDoc { peer, pull, .. } if *peer == server_id => Some(pull.clone()),
        _ => None,
    }) {
        pulls += 1;
        server.handle_doc_pull(now, InboundId(pulls as u64), asker_id, room());
        assert!(
            drain(server).contains(&NodeOutput::ServeDocPart {
                request: InboundId(pulls as u64)
            }),
            "a member present in the room is served"
        );
        let part = server.doc_part(asker_id, &pull).map_err(|e| e.to_string());
        asker.handle_doc_part(now, room(), server_id, part);
        outputs = drain(asker);
    }
    pulls
}

#[test]
fn a_node_catches_up_in_parts_and_a_member_behind_it_pulls_back() {
    let now = epoch();
    let mut local = in_a_room_as(now, LOCAL);
    let mut member = in_a_room_as(now, MEMBER);
    member.handle_docs_loaded(room(), vec![(NOTES.into(), long_document(200_000))]);
    let text = member.doc_text(room(), NOTES).unwrap();
    assert!(text.len() >= 200_000);

    // The member arrives: LOCAL asks it for the room's documents at once, then for the one it
    // lacks, in parts.
    hear(&mut local, now, 1, MEMBER, beat());
    hear(&mut member, now, 1, LOCAL, beat());
    drain(&mut member);
    let _ = drain(&mut local);
    local.handle_timeout(now);
    let pulls = carry_pulls(&mut local, &mut member, now);
    assert!(
        pulls >= 3,
        "names, then the diff in more than one part: {pulls}"
    );
    assert_eq!(local.counters().doc_updates_refused, 0);
    assert!(local.doc_text(room(), NOTES) == Some(text), "caught up");

    // LOCAL writes while the member is not listening; at LOCAL's next round the member sees
    // from LOCAL's state vector that it lacks something, and pulls it from LOCAL.
    local
        .edit_doc(now, room(), NOTES, typed(1, "offline edit. "))
        .unwrap();
    let later = now + SYNC_INTERVAL;
    // Both beat meanwhile (members that go quiet are gone, and get no documents).
    hear(&mut local, later, 2, MEMBER, beat());
    hear(&mut member, later, 2, LOCAL, beat());
    drain(&mut member);
    local.handle_timeout(later);
    carry_pulls(&mut local, &mut member, later);
    member.handle_timeout(later);
    let pulled_back = carry_pulls(&mut member, &mut local, later);
    assert!(pulled_back >= 1);
    assert!(member.doc_text(room(), NOTES) == local.doc_text(room(), NOTES));
    assert!(
        member
            .doc_text(room(), NOTES)
            .unwrap()
            .contains("offline edit.")
    );
}

#[test]
fn a_stranger_gets_no_document() {
    let now = epoch();
    let mut core = in_a_room(now);
    core.handle_doc_pull(now, InboundId(1), STRANGER, room());
    let outputs = drain(&mut core);
    assert_eq!(
        refusal_code(&outputs, InboundId(1)),
        Some(ErrorCode::NotInRoom)
    );
}

#[test]
fn carets_of_members_who_edit_reach_the_pages_within_a_rate() {
    let now = epoch();
    let mut core = in_a_room(now);
    let caret = |at: u8| Say::DocCursor {
        name: NOTES.into(),
        anchor: vec![at],
        head: vec![at],
    };
    let shown = |outputs: &[NodeOutput<u32>]| {
        outputs
            .iter()
            .filter(|o| matches!(o, NodeOutput::DocCursor(caret) if caret.author == MEMBER))
            .count()
    };
    hear(&mut core, now, 1, MEMBER, caret(1));
    assert_eq!(shown(&drain(&mut core)), 1);

    // A flood is cut at the rate: a burst's worth passes, the rest is dropped.
    for id in 2..100 {
        hear(&mut core, now, id, MEMBER, caret(id as u8));
    }
    let passed = shown(&drain(&mut core));
    assert!((10..=20).contains(&passed), "{passed}");

    // This node's own caret goes out; a reader's does not.
    assert!(
        core.move_cursor(now, room(), NOTES, vec![1], vec![2])
            .unwrap()
            .is_some()
    );
    let mut space = in_an_audio_space(now);
    assert_eq!(
        space.move_cursor(now, room(), NOTES, vec![1], vec![2]),
        Err(CommandError::ReadOnly)
    );
    hear(&mut space, now, 1, MEMBER, caret(1));
    let outputs = drain(&mut space);
    assert!(rejected(&outputs, 1));
    assert_eq!(shown(&outputs), 0);
}
