//! Links held until their peer is proven, and the registry asked at a bounded rate.

use super::*;

#[test]
fn a_link_carries_nothing_until_its_peers_right_is_known() {
    let now = epoch();
    let (mut session, id) = enforcing_receiver_subscribing(now, account(1));
    session.handle_subscribe_result(now, id, Ok(LinkId(3)));
    let outputs = drain(&mut session);
    // The driver opened it held; the rights are unknown, so it stays so and they are asked.
    assert!(holds(&outputs).is_empty(), "{outputs:?}");
    assert!(outputs.contains(&Output::LookupAccess {
        room: room(),
        account: account(1)
    }));
    assert!(
        session.media_links(room()).is_empty(),
        "a held link shows nothing"
    );

    let later = now + Duration::from_secs(3);
    let speaker = facts(RoomKind::Broadcast, Membership::Member(Role::Speaker));
    session.handle_access(later, room(), account(1), speaker);
    assert_eq!(holds(&drain(&mut session)), vec![(LinkId(3), false)]);
    assert_eq!(session.media_links(room()), vec![(1, LinkId(3))]);

    // The peer proves another account, not known yet: the link is held again at once.
    session.handle_peer_account(later, 1, Some(account(2)));
    let outputs = drain(&mut session);
    assert_eq!(holds(&outputs), vec![(LinkId(3), true)]);
    assert!(outputs.contains(&Output::LookupAccess {
        room: room(),
        account: account(2)
    }));
}

#[test]
fn a_link_whose_rights_stay_unknown_closes_at_the_deadline() {
    let now = epoch();
    let (mut session, id) = enforcing_receiver_subscribing(now, account(1));
    session.handle_subscribe_result(now, id, Ok(LinkId(3)));
    drain(&mut session);
    let deadline = now + SessionConfig::default().unverified_link_timeout;
    assert!(session.poll_timeout().is_some_and(|t| t <= deadline));
    // Lookups are retried meanwhile; the link stays held, then closes at the deadline.
    let mut at = now;
    while at < deadline - Duration::from_millis(1) {
        at = session
            .poll_timeout()
            .expect("a deadline")
            .min(deadline - Duration::from_millis(1));
        session.handle_timeout(at);
        let outputs = drain(&mut session);
        assert!(
            !outputs.contains(&Output::CloseLink { link: LinkId(3) }),
            "{outputs:?}"
        );
        assert!(holds(&outputs).is_empty(), "{outputs:?}");
    }
    session.handle_timeout(deadline);
    let outputs = drain(&mut session);
    assert!(outputs.contains(&Output::CloseLink { link: LinkId(3) }));
    assert!(outputs.contains(&Output::Event(RoomEvent::LinkUnverified {
        room: room(),
        peer: 1,
        link: LinkId(3)
    })));
    // An answer arriving afterwards reopens nothing by itself: the publisher is asked again
    // after the usual backoff.
    let speaker = facts(RoomKind::Broadcast, Membership::Member(Role::Speaker));
    session.handle_access(deadline, room(), account(1), speaker);
    assert!(holds(&drain(&mut session)).is_empty());
}

#[test]
fn an_admitted_subscribers_link_is_released_once_opened() {
    let now = epoch();
    let mut session = enforcing_publisher(now);
    session.handle_peer_account(now, 7, Some(account(7)));
    let member = facts(RoomKind::Conference, Membership::Member(Role::Listener));
    session.handle_access(now, room(), account(7), member);
    session.handle_subscribe_request(now, InboundId(1), 7, room());
    drain(&mut session);
    session.handle_subscriber_linked(now, room(), 7, LinkId(4));
    assert_eq!(holds(&drain(&mut session)), vec![(LinkId(4), false)]);
}

fn lookup_count(outputs: &[Output<u32>]) -> usize {
    outputs
        .iter()
        .filter(|o| matches!(o, Output::LookupAccess { .. }))
        .count()
}

/// Issue 12, hole 9: every account a peer named cost one registry lookup, with no limit.
#[test]
fn a_flood_of_fresh_accounts_asks_the_registry_at_a_bounded_rate() {
    let now = epoch();
    let limits = LookupLimits::default();
    let mut session = enforcing_publisher(now);
    // A member known before the flood.
    session.handle_peer_account(now, 1, Some(account(1)));
    let member = facts(RoomKind::Conference, Membership::Member(Role::Listener));
    session.handle_access(now, room(), account(1), member);
    drain(&mut session);

    // One peer presenting a new account with every request: its own limit applies.
    let mut request = 0;
    let mut ask = |session: &mut RoomSession<u32>, peer: u32, account: Account| {
        request += 1;
        session.handle_peer_account(now, peer, Some(account));
        session.handle_subscribe_request(now, InboundId(request), peer, room());
        drain(session)
    };
    let mut asked = 0;
    let mut refused = 0;
    for n in 0..100 {
        let outputs = ask(&mut session, 7, fresh_account(n));
        asked += lookup_count(&outputs);
        refused += usize::from(refusal(&outputs).is_some_and(|e| e.code == ErrorCode::Overloaded));
    }
    assert_eq!(asked, limits.per_peer.burst as usize);
    assert_eq!(refused, 100 - asked);

    // Many peers, one fresh account each: the total limit applies.
    let mut asked_by_many = 0;
    for peer in 100..2100 {
        asked_by_many += lookup_count(&ask(&mut session, peer, fresh_account(peer)));
    }
    let total = limits.total.burst as usize - asked;
    assert_eq!(asked_by_many, total);
    assert_eq!(
        session.lookups_throttled(),
        (100 - asked + 2000 - total) as u64
    );

    // Meanwhile a member the node knows is admitted at once.
    session.handle_subscribe_request(now, InboundId(9_999), 1, room());
    assert!(
        drain(&mut session).contains(&Output::AcceptSubscriber {
            request: InboundId(9_999),
            room: room(),
            peer: 1,
            mode: LinkMode::Frames,
        }),
        "a known member waits for nobody"
    );

    // A second later the total allows its rate again.
    let later = now + Duration::from_secs(1);
    let mut asked_later = 0;
    for peer in 3000..3200 {
        session.handle_peer_account(later, peer, Some(fresh_account(peer)));
        session.handle_subscribe_request(later, InboundId(u64::from(peer)), peer, room());
        asked_later += lookup_count(&drain(&mut session));
    }
    assert_eq!(asked_later, limits.total.per_second as usize);
}

#[test]
fn forgotten_facts_are_dropped_unless_a_link_relies_on_them() {
    let now = epoch();
    let mut session = enforcing_publisher(now);
    let member = facts(RoomKind::Conference, Membership::Member(Role::Listener));
    for peer in [1, 2] {
        session.handle_peer_account(now, peer, Some(account(peer as u8)));
        session.handle_access(now, room(), account(peer as u8), member);
    }
    session.handle_subscribe_request(now, InboundId(1), 1, room());
    drain(&mut session);
    session.handle_subscriber_linked(now, room(), 1, LinkId(4));
    drain(&mut session);

    // The linked member's facts stay and are followed again; the other's are dropped.
    session.handle_access_forgotten(room(), account(1), false);
    assert_eq!(
        drain(&mut session),
        vec![Output::LookupAccess {
            room: room(),
            account: account(1)
        }]
    );
    assert_eq!(session.facts(room(), account(1)), Some(member));
    session.handle_access_forgotten(room(), account(2), false);
    assert!(drain(&mut session).is_empty());
    assert_eq!(session.facts(room(), account(2)), None);
}
