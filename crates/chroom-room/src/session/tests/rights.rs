//! Requests, media and room messages checked against the registry's facts: refused with a
//! reason, held for a lookup, and closed when a right is revoked or a binding expires.

use super::*;

#[test]
fn a_peer_without_a_binding_is_refused() {
    let now = epoch();
    let mut session = enforcing_publisher(now);
    session.handle_subscribe_request(now, InboundId(1), 7, room());
    let error = refusal(&drain(&mut session)).unwrap();
    assert_eq!(error.code, ErrorCode::NotAuthorized);
    assert!(
        error.message.contains("identity binding"),
        "{}",
        error.message
    );
}

#[test]
fn requests_wait_for_registry_facts_and_share_one_lookup() {
    let now = epoch();
    let mut session = enforcing_publisher(now);
    session.handle_peer_account(now, 7, Some(account(1)));
    session.handle_peer_account(now, 8, Some(account(1)));
    session.handle_subscribe_request(now, InboundId(1), 7, room());
    session.handle_subscribe_request(now, InboundId(2), 8, room());
    assert_eq!(
        drain(&mut session),
        vec![Output::LookupAccess {
            room: room(),
            account: account(1)
        }],
        "one lookup for two requests of one account"
    );
    let member = facts(RoomKind::Conference, Membership::Member(Role::Listener));
    session.handle_access(now, room(), account(1), member);
    let accepted: Vec<InboundId> = drain(&mut session)
        .into_iter()
        .filter_map(|o| match o {
            Output::AcceptSubscriber { request, .. } => Some(request),
            _ => None,
        })
        .collect();
    assert_eq!(accepted, vec![InboundId(1), InboundId(2)]);
}

#[test]
fn banned_and_non_members_are_refused_with_a_reason() {
    let now = epoch();
    for (membership, reason) in [
        (Membership::Banned, "banned"),
        (Membership::NotMember, "not a member"),
    ] {
        let mut session = enforcing_publisher(now);
        session.handle_peer_account(now, 7, Some(account(1)));
        session.handle_access(
            now,
            room(),
            account(1),
            facts(RoomKind::Conference, membership),
        );
        session.handle_subscribe_request(now, InboundId(1), 7, room());
        let error = refusal(&drain(&mut session)).unwrap();
        assert_eq!(error.code, ErrorCode::NotAuthorized);
        assert!(error.message.contains(reason), "{}", error.message);
        assert!(
            error.message.contains(&account(1).to_string()),
            "{}",
            error.message
        );
    }
}

#[test]
fn an_unanswered_lookup_refuses_as_unavailable() {
    let now = epoch();
    let mut session = enforcing_publisher(now);
    session.handle_peer_account(now, 7, Some(account(1)));
    session.handle_subscribe_request(now, InboundId(1), 7, room());
    drain(&mut session);
    let deadline = now + SessionConfig::default().access_lookup_timeout;
    assert_eq!(session.poll_timeout(), Some(deadline));
    session.handle_timeout(deadline - Duration::from_millis(1));
    assert!(refusal(&drain(&mut session)).is_none());
    session.handle_timeout(deadline);
    assert_eq!(
        refusal(&drain(&mut session)).unwrap().code,
        ErrorCode::Unavailable
    );
}

#[test]
fn a_revoke_or_an_expired_binding_closes_the_link() {
    let now = epoch();
    for revoke_by_chain in [true, false] {
        let mut session = enforcing_publisher(now);
        session.handle_peer_account(now, 7, Some(account(1)));
        let member = facts(RoomKind::Conference, Membership::Member(Role::Listener));
        session.handle_access(now, room(), account(1), member);
        session.handle_subscribe_request(now, InboundId(1), 7, room());
        drain(&mut session);
        session.handle_subscriber_linked(now, room(), 7, LinkId(5));
        drain(&mut session);
        if revoke_by_chain {
            let banned = facts(RoomKind::Conference, Membership::Banned);
            session.handle_access(now, room(), account(1), banned);
        } else {
            session.handle_peer_account(now, 7, None);
        }
        let outputs = drain(&mut session);
        assert!(
            outputs.contains(&Output::CloseLink { link: LinkId(5) }),
            "{outputs:?}"
        );
        assert!(outputs.contains(&Output::Event(RoomEvent::AccessRevoked {
            room: room(),
            peer: 7,
            link: LinkId(5)
        })));
        assert_eq!(session.subscriber_count(room()), 0);
        // The driver's later close report changes nothing.
        session.handle_link_closed(now, LinkId(5));
        assert!(drain(&mut session).is_empty());
    }
}

#[test]
fn media_is_only_taken_from_accounts_that_may_publish() {
    let now = epoch();
    // The publisher's answer proved account 9, a mere listener of this broadcast.
    let (mut session, id) = enforcing_receiver_subscribing(now, account(9));
    session.handle_access(
        now,
        room(),
        account(9),
        facts(RoomKind::Broadcast, Membership::Member(Role::Listener)),
    );
    session.handle_subscribe_result(now, id, Ok(LinkId(3)));
    let outputs = drain(&mut session);
    assert!(
        outputs.contains(&Output::CloseLink { link: LinkId(3) }),
        "{outputs:?}"
    );
    assert!(session.media_links(room()).is_empty());
    // It is not asked again before the long backoff, even when the DHT lists it again.
    let soon = now + Duration::from_secs(9);
    session.handle_timeout(soon);
    let mut outputs = drain(&mut session);
    if outputs.contains(&Output::FindPublishers { room: room() }) {
        found(&mut session, soon, &[1]);
        outputs.extend(drain(&mut session));
    }
    assert!(subscribe_ids(&outputs).is_empty(), "{outputs:?}");
    session.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(subscribe_ids(&drain(&mut session)).len(), 1);
}

fn verdicts(outputs: &[Output<u32>]) -> Vec<(GossipId, GossipVerdict)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::GossipVerdict { id, verdict, .. } => Some((*id, verdict.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn gossip_is_delivered_only_for_accounts_the_registry_lets_chat() {
    let now = epoch();
    let mut session = enforcing_publisher(now);
    let conference = |m| facts(RoomKind::Conference, m);
    session.handle_access(
        now,
        room(),
        account(1),
        conference(Membership::Member(Role::Listener)),
    );
    session.handle_access(now, room(), account(2), conference(Membership::NotMember));
    session.handle_access(now, room(), account(3), conference(Membership::Banned));
    drain(&mut session);

    session.handle_room_message(now, GossipId(1), room(), Some(account(1)), Action::Chat);
    session.handle_room_message(now, GossipId(2), room(), Some(account(2)), Action::Chat);
    session.handle_room_message(now, GossipId(3), room(), Some(account(3)), Action::Chat);
    session.handle_room_message(now, GossipId(4), room(), None, Action::Chat);
    let decided = verdicts(&drain(&mut session));
    assert_eq!(decided[0], (GossipId(1), GossipVerdict::Deliver));
    let reason = |i: usize| match &decided[i].1 {
        GossipVerdict::Reject(error) => error.message.clone(),
        other => panic!("message {i} was not rejected: {other:?}"),
    };
    assert!(reason(1).contains("not a member"), "{}", reason(1));
    assert!(reason(2).contains("banned"), "{}", reason(2));
    assert!(reason(3).contains("author binding"), "{}", reason(3));
}

#[test]
fn gossip_waits_for_registry_facts_and_is_ignored_when_none_come() {
    let now = epoch();
    let mut session = enforcing_publisher(now);
    session.handle_room_message(now, GossipId(1), room(), Some(account(5)), Action::Chat);
    session.handle_room_message(now, GossipId(2), room(), Some(account(5)), Action::Chat);
    let outputs = drain(&mut session);
    assert!(verdicts(&outputs).is_empty(), "{outputs:?}");
    let lookups = outputs
        .iter()
        .filter(|o| matches!(o, Output::LookupAccess { .. }))
        .count();
    assert_eq!(lookups, 1, "one lookup serves both messages");
    session.handle_access(
        now,
        room(),
        account(5),
        facts(RoomKind::AudioSpace, Membership::Member(Role::Listener)),
    );
    assert_eq!(
        verdicts(&drain(&mut session)),
        vec![
            (GossipId(1), GossipVerdict::Deliver),
            (GossipId(2), GossipVerdict::Deliver)
        ]
    );

    // No answer at all: the message is dropped without blaming the peer that forwarded it.
    session.handle_room_message(now, GossipId(3), room(), Some(account(6)), Action::Chat);
    drain(&mut session);
    session.handle_timeout(now + SessionConfig::default().access_lookup_timeout);
    let decided = verdicts(&drain(&mut session));
    assert!(
        matches!(&decided[..], [(GossipId(3), GossipVerdict::Ignore(_))]),
        "{decided:?}"
    );
}

#[test]
fn gossip_of_a_room_this_node_left_is_ignored() {
    let now = epoch();
    let mut session = enforcing_publisher(now);
    session.leave(now, room());
    drain(&mut session);
    session.handle_room_message(now, GossipId(1), room(), Some(account(1)), Action::Chat);
    let decided = verdicts(&drain(&mut session));
    assert!(
        matches!(&decided[..], [(GossipId(1), GossipVerdict::Ignore(_))]),
        "{decided:?}"
    );
}
