//! Sealed content: messages wait for their author's key, keys go to present members only,
//! and a member leaving makes a new key.

use chroom_proto::RoomKey;

use super::*;
use crate::node::sealing::KEY_WAIT;

fn chat(text: &str) -> Say<u32> {
    Say::Chat { text: text.into() }
}

fn chat_lines(outputs: &[NodeOutput<u32>]) -> Vec<&str> {
    outputs
        .iter()
        .filter_map(|o| match o {
            NodeOutput::Chat(line) => Some(line.text.as_str()),
            _ => None,
        })
        .collect()
}

fn asks(outputs: &[NodeOutput<u32>]) -> Vec<u32> {
    outputs
        .iter()
        .filter_map(|o| match o {
            NodeOutput::AskRoomKey { peer, .. } => Some(*peer),
            _ => None,
        })
        .collect()
}

fn served(outputs: &[NodeOutput<u32>], request: InboundId) -> Option<RoomKey> {
    outputs.iter().find_map(|o| match o {
        NodeOutput::ServeRoomKey { request: r, key } if *r == request => Some(key.clone()),
        _ => None,
    })
}

/// `author`'s own key for the room, as its node seals with it.
fn key_of(author: u32) -> RoomKey {
    AUTHORS.with_borrow_mut(|authors| authors.entry(author).or_default().own_key(room()))
}

/// `say` sealed by `author`, without handing `core` its key.
fn sealed_only(author: u32, say: Say<u32>) -> Say<u32> {
    let Ok(body) = say.into_content() else {
        unreachable!("content")
    };
    AUTHORS.with_borrow_mut(|authors| {
        Say::Sealed(
            authors
                .entry(author)
                .or_default()
                .seal(room(), &body)
                .unwrap(),
        )
    })
}

#[test]
fn sealed_content_waits_for_its_authors_key_and_plain_content_is_refused() {
    let now = epoch();
    let mut core = in_a_room(now);
    for id in 1..=2 {
        hear_as_sent(&mut core, now, id, MEMBER, sealed_only(MEMBER, chat("hi")));
    }
    let outputs = drain(&mut core);
    assert_eq!(asks(&outputs), [MEMBER], "one ask for both messages");
    assert!(chat_lines(&outputs).is_empty());

    core.handle_room_key(now, MEMBER, room(), Ok(key_of(MEMBER)));
    assert_eq!(chat_lines(&drain(&mut core)), ["hi", "hi"]);
    // From now on its content opens at once.
    hear_as_sent(
        &mut core,
        now,
        3,
        MEMBER,
        sealed_only(MEMBER, chat("again")),
    );
    assert_eq!(chat_lines(&drain(&mut core)), ["again"]);

    // Content in the clear is refused: a member's node never sends it so.
    hear_as_sent(&mut core, now, 4, MEMBER, chat("in the clear"));
    let outputs = drain(&mut core);
    assert!(matches!(
        verdict_of(&outputs, 4),
        Some(GossipVerdict::Reject(_))
    ));
    // Presence, cues and hosts' decisions stay readable without a key.
    hear_as_sent(&mut core, now, 5, HOST, beat());
    assert_eq!(
        verdict_of(&drain(&mut core), 5),
        Some(&GossipVerdict::Deliver)
    );
}

#[test]
fn a_refused_ask_is_repeated_and_what_waits_too_long_is_dropped_unread() {
    let now = epoch();
    let mut core = in_a_room(now);
    hear_as_sent(
        &mut core,
        now,
        1,
        STRANGER,
        sealed_only(STRANGER, chat("x")),
    );
    assert_eq!(asks(&drain(&mut core)), [STRANGER]);
    let refusal = SignalError::new(ErrorCode::NotInRoom, "not present");
    core.handle_room_key(now, STRANGER, room(), Err(refusal.clone()));
    core.handle_timeout(now + Duration::from_millis(500));
    assert!(asks(&drain(&mut core)).is_empty(), "not at once");
    let again = now + Duration::from_secs(1);
    assert!(core.poll_timeout().unwrap() <= again);
    core.handle_timeout(again);
    assert_eq!(asks(&drain(&mut core)), [STRANGER]);
    core.handle_room_key(again, STRANGER, room(), Err(refusal));

    let late = now + KEY_WAIT;
    core.handle_timeout(late);
    let outputs = drain(&mut core);
    assert!(matches!(
        verdict_of(&outputs, 1),
        Some(GossipVerdict::Ignore(_))
    ));
    assert_eq!(core.counters().sealed_unread, 1);
    assert!(core.key_waits.is_empty());

    // Out of the room (a relayer is on the topic too), sealed content is not waited for,
    // nor counted as unread: it was never this node's to read.
    assert!(core.leave(late, room()).is_some(), "a goodbye");
    drain(&mut core);
    hear_as_sent(&mut core, late, 2, MEMBER, sealed_only(MEMBER, chat("y")));
    let outputs = drain(&mut core);
    assert!(asks(&outputs).is_empty());
    assert!(matches!(
        verdict_of(&outputs, 2),
        Some(GossipVerdict::Ignore(_))
    ));
    assert_eq!(core.counters().sealed_unread, 1);
}

#[test]
fn one_author_cannot_fill_the_waiting_room() {
    let now = epoch();
    let mut core = in_a_room(now);
    for id in 0..100 {
        hear_as_sent(
            &mut core,
            now,
            id,
            MEMBER,
            sealed_only(MEMBER, chat("flood")),
        );
    }
    let outputs = drain(&mut core);
    let dropped = (0..100)
        .filter(|id| matches!(verdict_of(&outputs, *id), Some(GossipVerdict::Ignore(_))))
        .count();
    assert_eq!(dropped, 36, "64 wait, the rest are dropped");
    assert_eq!(core.gossip.len(), 64);
}

#[test]
fn keys_go_to_present_members_only_and_a_holder_leaving_makes_a_new_one() {
    let now = epoch();
    let mut core = in_a_room(now);
    // Not present yet: refused, whatever its rights.
    core.handle_room_key_request(now, InboundId(1), MEMBER, room());
    assert_eq!(
        refusal_code(&drain(&mut core), InboundId(1)),
        Some(ErrorCode::NotInRoom)
    );
    hear(&mut core, now, 1, MEMBER, beat());
    hear(&mut core, now, 2, STRANGER, beat());
    drain(&mut core);
    core.handle_room_key_request(now, InboundId(2), MEMBER, room());
    let first = served(&drain(&mut core), InboundId(2)).expect("a member is handed the key");
    // A stranger that made it into the roster is still refused by the registry.
    core.handle_room_key_request(now, InboundId(3), STRANGER, room());
    let outputs = drain(&mut core);
    assert!(served(&outputs, InboundId(3)).is_none());
    assert!(refusal_code(&outputs, InboundId(3)).is_some());

    // What this node publishes travels sealed with the key it handed.
    let Some(Say::Sealed(sealed)) = core.seal(room(), chat("mine")) else {
        panic!("content is sealed")
    };
    assert_eq!(sealed.key_id, first.key_id);
    assert_eq!(core.seal(room(), beat()), Some(beat()));

    // The member leaves: the next message is sealed with a new key, which it is not handed.
    hear(
        &mut core,
        now,
        3,
        MEMBER,
        Say::Presence(Presence {
            leaving: true,
            ..Presence::default()
        }),
    );
    drain(&mut core);
    let Some(Say::Sealed(after)) = core.seal(room(), chat("after")) else {
        panic!("content is sealed")
    };
    assert_ne!(after.key_id, first.key_id);
    core.handle_room_key_request(now, InboundId(4), MEMBER, room());
    assert_eq!(
        refusal_code(&drain(&mut core), InboundId(4)),
        Some(ErrorCode::NotInRoom)
    );
}

#[test]
fn a_holder_banned_on_chain_is_no_longer_sealed_for_while_still_present() {
    let now = epoch();
    let mut core = in_a_room(now);
    hear(&mut core, now, 1, MEMBER, beat());
    drain(&mut core);
    core.handle_room_key_request(now, InboundId(1), MEMBER, room());
    let handed = served(&drain(&mut core), InboundId(1)).unwrap();
    // A role change that still lets it listen keeps the key.
    core.handle_access(
        now,
        room(),
        account(MEMBER as u8),
        facts(Some(Role::Speaker)),
    );
    assert_eq!(core.sealing.own_key(room()).key_id, handed.key_id);
    // Banned: a new key at once, though its beats have not stopped yet.
    let banned = AccessFacts::Known {
        kind: RoomKind::Conference,
        membership: Membership::Banned,
        relayer: false,
        policy: chroom_types::RoomPolicy::default(),
    };
    core.handle_access(now, room(), account(MEMBER as u8), banned);
    assert_ne!(core.sealing.own_key(room()).key_id, handed.key_id);
    core.handle_room_key_request(now, InboundId(2), MEMBER, room());
    let outputs = drain(&mut core);
    assert!(served(&outputs, InboundId(2)).is_none());
    assert!(refusal_code(&outputs, InboundId(2)).is_some());
}
