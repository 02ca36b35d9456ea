use std::collections::HashMap;
use std::time::{Duration, Instant};

use chroom_proto::{ErrorCode, SignalError};
use chroom_types::{
    Account, LinkId, LinkMode, MediaKind, Membership, Role, RoomId, RoomKind, RoomName,
};

use super::*;
use crate::access::{AccessFacts, AccessPolicy, LookupLimits};
use crate::gossip::{GossipId, GossipVerdict};

/// The origin of virtual time. `Instant` has no constructor but `now()`, so the tests take one
/// reading and derive every other time from it.
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

fn room() -> RoomId {
    "lobby".parse::<RoomName>().unwrap().id()
}

fn drain(session: &mut RoomSession<u32>) -> Vec<Output<u32>> {
    std::iter::from_fn(|| session.poll_output()).collect()
}

fn receiver(now: Instant) -> RoomSession<u32> {
    let mut session = RoomSession::new(SessionConfig::default(), 0);
    session.join(now, room(), Participation::Receive(vec![MediaKind::Video]));
    session
}

/// A receiving session that found publisher 1 and started subscribing to it.
fn subscribing_to_one_publisher() -> (Instant, RoomSession<u32>, SubscribeId) {
    let now = epoch();
    let mut session = receiver(now);
    drain(&mut session);
    found(&mut session, now, &[1]);
    let (id, peer) = subscribe_ids(&drain(&mut session))[0];
    assert_eq!(peer, 1);
    (now, session, id)
}

/// The DHT answered a lookup with `publishers`, and the lookup ended.
fn found(session: &mut RoomSession<u32>, now: Instant, publishers: &[u32]) {
    session.handle_publishers(now, room(), publishers);
    session.handle_lookup_finished(now, room());
}

fn subscribe_ids(outputs: &[Output<u32>]) -> Vec<(SubscribeId, u32)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Subscribe { id, peer, .. } => Some((*id, *peer)),
            _ => None,
        })
        .collect()
}

#[test]
fn joining_to_receive_looks_for_providers_at_once() {
    let now = epoch();
    let mut session = receiver(now);
    assert_eq!(
        drain(&mut session),
        vec![Output::FindPublishers { room: room() }]
    );
    assert_eq!(
        session.poll_timeout(),
        None,
        "no query is due while one is out"
    );
}

#[test]
fn every_provider_gets_one_subscribe() {
    let now = epoch();
    let mut session = receiver(now);
    drain(&mut session);
    found(&mut session, now, &[1, 2, 2]);
    let mut peers: Vec<u32> = subscribe_ids(&drain(&mut session))
        .iter()
        .map(|s| s.1)
        .collect();
    peers.sort_unstable();
    assert_eq!(peers, vec![1, 2]);
    // The same providers again while subscribing start nothing new.
    found(&mut session, now, &[1, 2]);
    assert!(subscribe_ids(&drain(&mut session)).is_empty());
}

#[test]
fn a_successful_subscribe_is_reported_and_slows_discovery() {
    let (now, mut session, id) = subscribing_to_one_publisher();
    session.handle_subscribe_result(now, id, Ok(LinkId(9)));
    assert_eq!(
        drain(&mut session),
        vec![
            Output::Event(RoomEvent::Subscribed {
                room: room(),
                peer: 1,
                link: LinkId(9)
            }),
            // Without a registry every peer may: the link is released at once.
            Output::Hold {
                link: LinkId(9),
                held: false
            }
        ]
    );
    assert_eq!(session.media_links(room()), vec![(1, LinkId(9))]);
    // Discovery was scheduled before the link existed (fast interval).
    assert_eq!(session.poll_timeout(), Some(now + Duration::from_secs(1)));
    session.handle_timeout(now + Duration::from_secs(1));
    assert_eq!(
        drain(&mut session),
        vec![Output::FindPublishers { room: room() }]
    );
    found(&mut session, now + Duration::from_secs(1), &[1]);
    assert_eq!(
        session.poll_timeout(),
        Some(now + Duration::from_secs(11)),
        "once linked, rediscovery uses the slow interval"
    );
}

#[test]
fn failures_back_off_exponentially() {
    let (now, mut session, mut id) = subscribing_to_one_publisher();
    let mut t = now;
    let expected_ms = [500, 1000, 2000, 4000, 8000, 10_000, 10_000];
    for expected in expected_ms.map(Duration::from_millis) {
        session.handle_subscribe_result(t, id, Err(SubscribeFailure::Failed("timeout".into())));
        drain(&mut session);
        // Step through due timeouts (discovery queries included) until the retry is sent.
        loop {
            let due = session.poll_timeout().unwrap();
            session.handle_timeout(due);
            let mut outputs = drain(&mut session);
            if outputs.contains(&Output::FindPublishers { room: room() }) {
                found(&mut session, due, &[]);
                outputs.extend(drain(&mut session));
            }
            if let Some((next_id, _)) = subscribe_ids(&outputs).first().copied() {
                assert_eq!(due - t, expected);
                id = next_id;
                t = due;
                break;
            }
        }
    }
}

#[test]
fn not_publishing_waits_longer() {
    let (now, mut session, id) = subscribing_to_one_publisher();
    let refusal = SignalError::new(ErrorCode::NotPublishing, "nothing here");
    session.handle_subscribe_result(now, id, Err(SubscribeFailure::Refused(refusal)));
    drain(&mut session);
    session.handle_timeout(now + Duration::from_secs(9));
    let outputs = drain(&mut session);
    assert!(subscribe_ids(&outputs).is_empty(), "{outputs:?}");
    session.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(subscribe_ids(&drain(&mut session)).len(), 1);
}

#[test]
fn a_lost_link_is_reported_and_retried() {
    let (now, mut session, id) = subscribing_to_one_publisher();
    session.handle_subscribe_result(now, id, Ok(LinkId(3)));
    drain(&mut session);
    session.handle_link_closed(now, LinkId(3));
    assert_eq!(
        drain(&mut session),
        vec![Output::Event(RoomEvent::SubscriptionLost {
            room: room(),
            peer: 1,
            link: LinkId(3)
        })]
    );
    let retry = now + SessionConfig::default().retry_backoff;
    assert_eq!(session.poll_timeout(), Some(retry));
    session.handle_timeout(retry);
    let outputs = drain(&mut session);
    assert!(outputs.contains(&Output::FindPublishers { room: room() }));
    assert_eq!(subscribe_ids(&outputs).len(), 1);
    // A second close of the same link is ignored.
    session.handle_link_closed(retry, LinkId(3));
    assert!(drain(&mut session).is_empty());
}

#[test]
fn a_conference_member_links_once_per_pair_both_ways() {
    let now = epoch();
    let mut session: RoomSession<u32> = RoomSession::new(SessionConfig::default(), 5);
    let kinds = vec![MediaKind::Audio, MediaKind::Video];
    session.join(
        now,
        room(),
        Participation::Meet {
            publish: kinds.clone(),
            receive: kinds.clone(),
        },
    );
    assert_eq!(
        drain(&mut session),
        vec![Output::FindPublishers { room: room() }]
    );
    // Only the higher id is subscribed to, with a link that sends too; the lower id (1)
    // subscribes to this node instead.
    found(&mut session, now, &[1, 7]);
    let subscribes: Vec<_> = drain(&mut session)
        .into_iter()
        .filter_map(|o| match o {
            Output::Subscribe {
                peer, kinds, send, ..
            } => Some((peer, kinds, send)),
            _ => None,
        })
        .collect();
    assert_eq!(subscribes, vec![(7, kinds.clone(), kinds.clone())]);

    session.handle_subscribe_request(now, InboundId(0), 1, room());
    assert_eq!(
        drain(&mut session),
        vec![Output::AcceptSubscriber {
            request: InboundId(0),
            room: room(),
            peer: 1,
            mode: LinkMode::Frames,
        }]
    );
    session.handle_subscriber_linked(now, room(), 1, LinkId(3));
    // The link member 1 opened carries its media to this node.
    assert_eq!(session.media_links(room()), vec![(1, LinkId(3))]);

    // Member 1 says goodbye: its link closes at once, and it is not sought again.
    session.handle_member_left(now, room(), 1);
    assert!(drain(&mut session).contains(&Output::CloseLink { link: LinkId(3) }));
    assert!(session.media_links(room()).is_empty());
    session.handle_timeout(now + Duration::from_secs(60));
    let later = drain(&mut session);
    assert!(
        subscribe_ids(&later).iter().all(|(_, peer)| *peer != 1),
        "{later:?}"
    );
}

#[test]
fn requests_are_checked_against_room_and_role() {
    let now = epoch();
    let mut session: RoomSession<u32> = RoomSession::new(
        SessionConfig {
            max_subscribers_per_room: 1,
            ..SessionConfig::default()
        },
        0,
    );
    let refused = |session: &mut RoomSession<u32>| -> Option<ErrorCode> {
        drain(session).into_iter().find_map(|o| match o {
            Output::Refuse { error, .. } => Some(error.code),
            _ => None,
        })
    };

    session.handle_subscribe_request(now, InboundId(0), 7, room());
    assert_eq!(refused(&mut session), Some(ErrorCode::NotInRoom));

    session.join(now, room(), Participation::Receive(vec![MediaKind::Audio]));
    drain(&mut session);
    session.handle_subscribe_request(now, InboundId(0), 7, room());
    assert_eq!(refused(&mut session), Some(ErrorCode::NotPublishing));

    session.join(now, room(), Participation::Publish(vec![MediaKind::Audio]));
    drain(&mut session);
    session.handle_subscribe_request(now, InboundId(0), 7, room());
    assert_eq!(
        drain(&mut session),
        vec![Output::AcceptSubscriber {
            request: InboundId(0),
            room: room(),
            peer: 7,
            mode: LinkMode::Frames,
        }]
    );
    session.handle_subscriber_linked(now, room(), 7, LinkId(1));
    drain(&mut session);

    session.handle_subscribe_request(now, InboundId(0), 8, room());
    assert_eq!(refused(&mut session), Some(ErrorCode::Overloaded));
    // The existing subscriber may re-subscribe (it restarted): its old link is replaced.
    session.handle_subscribe_request(now, InboundId(0), 7, room());
    assert!(matches!(
        drain(&mut session)[0],
        Output::AcceptSubscriber { .. }
    ));
    session.handle_subscriber_linked(now, room(), 7, LinkId(2));
    assert!(drain(&mut session).contains(&Output::CloseLink { link: LinkId(1) }));
    assert_eq!(session.subscriber_count(room()), 1);
}

#[test]
fn leaving_closes_every_link_and_late_results_do_not_leak() {
    let now = epoch();
    let mut session = receiver(now);
    drain(&mut session);
    found(&mut session, now, &[1, 2]);
    let subs = subscribe_ids(&drain(&mut session));
    session.handle_subscribe_result(now, subs[0].0, Ok(LinkId(1)));
    drain(&mut session);
    session.leave(now, room());
    assert_eq!(
        drain(&mut session),
        vec![Output::CloseLink { link: LinkId(1) }]
    );
    // The second attempt completes after the leave: its link is closed, not kept.
    session.handle_subscribe_result(now, subs[1].0, Ok(LinkId(2)));
    assert_eq!(
        drain(&mut session),
        vec![Output::CloseLink { link: LinkId(2) }]
    );
    assert!(!session.is_in_room(room()));
}

#[test]
fn spurious_timeouts_do_nothing() {
    let now = epoch();
    let mut session = receiver(now);
    drain(&mut session);
    for i in 0..10 {
        session.handle_timeout(now + Duration::from_millis(i));
    }
    assert!(drain(&mut session).is_empty());
}

/// Random input sequences never produce two concurrent attempts or links to one publisher, and
/// every link the session reports is either tracked or closed.
#[test]
fn random_sequences_never_double_subscribe() {
    // A small xorshift keeps the test deterministic without a rand dependency.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for _ in 0..200 {
        let start = epoch();
        let mut now = start;
        let mut session = receiver(now);
        let mut pending: Vec<(SubscribeId, u32)> = Vec::new();
        let mut live: HashMap<u32, LinkId> = HashMap::new();
        let mut next_link = 0;
        for _ in 0..100 {
            now += Duration::from_millis(next(2000));
            match next(5) {
                0 => found(&mut session, now, &[next(4) as u32, next(4) as u32]),
                1 if !pending.is_empty() => {
                    let (id, peer) = pending.remove(next(pending.len() as u64) as usize);
                    if next(2) == 0 {
                        next_link += 1;
                        session.handle_subscribe_result(now, id, Ok(LinkId(next_link)));
                        assert!(live.insert(peer, LinkId(next_link)).is_none());
                    } else {
                        let failure = SubscribeFailure::Failed("x".into());
                        session.handle_subscribe_result(now, id, Err(failure));
                    }
                }
                2 if !live.is_empty() => {
                    let peer = *live.keys().next().unwrap();
                    let link = live.remove(&peer).unwrap();
                    session.handle_link_closed(now, link);
                }
                _ => session.handle_timeout(now),
            }
            for output in drain(&mut session) {
                if let Output::Subscribe { id, peer, .. } = output {
                    assert!(
                        !pending.iter().any(|p| p.1 == peer) && !live.contains_key(&peer),
                        "second attempt for peer {peer}"
                    );
                    pending.push((id, peer));
                }
            }
        }
    }
}

#[test]
fn lookups_never_overlap_and_partial_answers_subscribe_at_once() {
    let now = epoch();
    let mut session = receiver(now);
    assert_eq!(
        drain(&mut session),
        vec![Output::FindPublishers { room: room() }]
    );
    // First batch of a lookup still running: subscribe now.
    session.handle_publishers(now, room(), &[1]);
    assert_eq!(subscribe_ids(&drain(&mut session)).len(), 1);
    // However long the lookup takes, no second one starts meanwhile.
    let later = now + Duration::from_secs(60);
    session.handle_timeout(later);
    let outputs = drain(&mut session);
    assert!(
        !outputs.contains(&Output::FindPublishers { room: room() }),
        "{outputs:?}"
    );
    session.handle_publishers(later, room(), &[2]);
    assert_eq!(subscribe_ids(&drain(&mut session)).len(), 1);
    session.handle_lookup_finished(later, room());
    assert_eq!(session.poll_timeout(), Some(later + Duration::from_secs(1)));
    // A finished report for a lookup that is not running is ignored.
    session.handle_lookup_finished(later, room());
    assert_eq!(session.poll_timeout(), Some(later + Duration::from_secs(1)));
}

fn account(n: u8) -> Account {
    Account::from_bytes([n; 20])
}

fn facts(kind: RoomKind, membership: Membership) -> AccessFacts {
    AccessFacts::Known {
        kind,
        membership,
        relayer: false,
    }
}

/// An enforcing session publishing in `room()`.
fn enforcing_publisher(now: Instant) -> RoomSession<u32> {
    let mut session = RoomSession::new(
        SessionConfig {
            access: AccessPolicy::Enforce,
            ..SessionConfig::default()
        },
        0,
    );
    session.join(now, room(), Participation::Publish(vec![MediaKind::Video]));
    drain(&mut session);
    session
}

fn refusal(outputs: &[Output<u32>]) -> Option<SignalError> {
    outputs.iter().find_map(|o| match o {
        Output::Refuse { error, .. } => Some(error.clone()),
        _ => None,
    })
}

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
    let mut session = RoomSession::new(
        SessionConfig {
            access: AccessPolicy::Enforce,
            ..SessionConfig::default()
        },
        0,
    );
    session.join(now, room(), Participation::Receive(vec![MediaKind::Video]));
    drain(&mut session);
    found(&mut session, now, &[1]);
    let (id, _) = subscribe_ids(&drain(&mut session))[0];
    // The publisher's answer proved account 9, a mere listener of this broadcast.
    session.handle_peer_account(now, 1, Some(account(9)));
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

/// A broadcasting session (root of the tree, capacity 2) that checks the registry.
fn enforcing_root(now: Instant) -> RoomSession<u32> {
    let mut session = RoomSession::new(
        SessionConfig {
            access: AccessPolicy::Enforce,
            ..SessionConfig::default()
        },
        0,
    );
    session.join(
        now,
        room(),
        Participation::Broadcast {
            kinds: vec![MediaKind::Video],
            capacity: 2,
        },
    );
    drain(&mut session);
    session
}

fn join_message(capacity: u32) -> Message<u32> {
    Message::Join {
        below_level: None,
        capacity,
    }
}

#[test]
fn tree_joins_are_checked_and_only_children_get_a_link() {
    let now = epoch();
    let mut session = enforcing_root(now);
    let broadcast = |m| facts(RoomKind::Broadcast, m);
    session.handle_peer_account(now, 7, Some(account(7)));
    session.handle_peer_account(now, 8, Some(account(8)));
    session.handle_access(
        now,
        room(),
        account(7),
        broadcast(Membership::Member(Role::Listener)),
    );
    session.handle_access(now, room(), account(8), broadcast(Membership::NotMember));
    drain(&mut session);

    session.handle_tree_request(now, InboundId(1), 7, room(), join_message(0));
    let outputs = drain(&mut session);
    assert!(outputs.contains(&Output::AckTree {
        request: InboundId(1),
        peer: 7
    }));
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::SendTree {
            peer: 7,
            message: Message::Accepted { level: 0, .. },
            ..
        }
    )));
    assert_eq!(session.tree_children(room()), vec![7]);

    session.handle_tree_request(now, InboundId(2), 8, room(), join_message(0));
    let error = refusal(&drain(&mut session)).expect("a stranger is refused");
    assert_eq!(error.code, ErrorCode::NotAuthorized);
    assert!(error.message.contains("not a member"), "{}", error.message);

    // The child's media link is accepted with local frames; a non-child's is refused.
    session.handle_subscribe_request(now, InboundId(3), 7, room());
    assert_eq!(
        drain(&mut session),
        vec![Output::AcceptSubscriber {
            request: InboundId(3),
            room: room(),
            peer: 7,
            mode: LinkMode::Frames,
        }]
    );
    session.handle_subscribe_request(now, InboundId(4), 9, room());
    let error = refusal(&drain(&mut session)).expect("a non-child is refused");
    assert_eq!(error.code, ErrorCode::NotPublishing);
}

#[test]
fn only_registered_relayers_keep_their_capacity_in_the_tree() {
    let now = epoch();
    let mut session = enforcing_root(now);
    let registered = AccessFacts::Known {
        kind: RoomKind::Broadcast,
        membership: Membership::NotMember,
        relayer: true,
    };
    session.handle_peer_account(now, 5, Some(account(5)));
    session.handle_peer_account(now, 6, Some(account(6)));
    session.handle_access(now, room(), account(5), registered);
    session.handle_access(
        now,
        room(),
        account(6),
        facts(RoomKind::Broadcast, Membership::Member(Role::Listener)),
    );
    drain(&mut session);
    // A registered relayer without a role is admitted as a relayer.
    session.handle_tree_request(now, InboundId(1), 5, room(), join_message(8));
    assert!(drain(&mut session).contains(&Output::AckTree {
        request: InboundId(1),
        peer: 5
    }));
    // A listener claiming to relay is admitted, as a viewer: the tree never sends joiners to
    // it, so a third joiner of this full root (capacity 2) is sent to the relayer only.
    session.handle_tree_request(now, InboundId(2), 6, room(), join_message(8));
    drain(&mut session);
    for (child, room_left) in [(5, 8), (6, 8)] {
        session.handle_tree_request(
            now,
            InboundId(10 + u64::from(child)),
            child,
            room(),
            Message::Report {
                spare: None,
                room: room_left,
                pushdown: None,
                deepest: None,
            },
        );
    }
    drain(&mut session);
    session.handle_peer_account(now, 9, Some(account(9)));
    session.handle_access(
        now,
        room(),
        account(9),
        facts(RoomKind::Broadcast, Membership::Member(Role::Listener)),
    );
    session.handle_tree_request(now, InboundId(3), 9, room(), join_message(0));
    let outputs = drain(&mut session);
    let redirect = outputs.iter().find_map(|o| match o {
        Output::SendTree {
            peer: 9,
            message: Message::Redirected { candidates },
            ..
        } => Some(candidates.clone()),
        _ => None,
    });
    let candidates = redirect.expect("the full root redirects");
    assert!(candidates.iter().all(|c| c.peer != 6), "{candidates:?}");
    assert!(candidates.iter().any(|c| c.peer == 5), "{candidates:?}");
}

/// An enforcing session receiving in `room()` (a broadcast-kind room's publisher needs
/// speaker), subscribing to publisher 1, which proved account 1.
fn enforcing_receiver_subscribing(now: Instant) -> (RoomSession<u32>, SubscribeId) {
    let mut session = RoomSession::new(
        SessionConfig {
            access: AccessPolicy::Enforce,
            ..SessionConfig::default()
        },
        0,
    );
    session.join(now, room(), Participation::Receive(vec![MediaKind::Video]));
    drain(&mut session);
    found(&mut session, now, &[1]);
    let (id, _) = subscribe_ids(&drain(&mut session))[0];
    session.handle_peer_account(now, 1, Some(account(1)));
    drain(&mut session);
    (session, id)
}

fn holds(outputs: &[Output<u32>]) -> Vec<(LinkId, bool)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Hold { link, held } => Some((*link, *held)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_link_carries_nothing_until_its_peers_right_is_known() {
    let now = epoch();
    let (mut session, id) = enforcing_receiver_subscribing(now);
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
    let (mut session, id) = enforcing_receiver_subscribing(now);
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

/// An enforcing viewer of `room()` (a broadcast) that looked for its root.
fn enforcing_viewer(now: Instant) -> RoomSession<u32> {
    let mut session = RoomSession::new(
        SessionConfig {
            access: AccessPolicy::Enforce,
            ..SessionConfig::default()
        },
        5,
    );
    session.join(now, room(), Participation::View(vec![MediaKind::Video]));
    drain(&mut session);
    session
}

fn tree_joins(outputs: &[Output<u32>]) -> Vec<u32> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::SendTree {
                peer,
                message: Message::Join { .. },
                ..
            } => Some(*peer),
            _ => None,
        })
        .collect()
}

#[test]
fn a_viewer_joins_only_a_root_the_registry_lets_broadcast() {
    let now = epoch();
    let mut session = enforcing_viewer(now);
    // Two peers provide the room: 2 (a stranger) and 3 (a speaker). Neither has said which
    // account it acts for: both are asked, and nothing is joined yet.
    found(&mut session, now, &[2, 3]);
    let outputs = drain(&mut session);
    assert!(outputs.contains(&Output::LearnAccount { peer: 2 }));
    assert!(outputs.contains(&Output::LearnAccount { peer: 3 }));
    assert!(tree_joins(&outputs).is_empty(), "{outputs:?}");

    session.handle_peer_account(now, 2, Some(account(2)));
    session.handle_access(
        now,
        room(),
        account(2),
        facts(RoomKind::Broadcast, Membership::NotMember),
    );
    let outputs = drain(&mut session);
    assert!(tree_joins(&outputs).is_empty(), "{outputs:?}");
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, Output::Event(RoomEvent::RootRefused { peer: 2, .. })))
    );

    session.handle_peer_account(now, 3, Some(account(3)));
    let outputs = drain(&mut session);
    assert!(outputs.contains(&Output::LookupAccess {
        room: room(),
        account: account(3)
    }));
    let speaker = facts(RoomKind::Broadcast, Membership::Member(Role::Speaker));
    session.handle_access(now, room(), account(3), speaker);
    assert_eq!(tree_joins(&drain(&mut session)), vec![3]);
    // The stranger found again is not asked again.
    found(&mut session, now, &[2]);
    assert!(drain(&mut session).is_empty());
}

/// A viewer that verified root 3 (a speaker) and asked it to join.
fn viewer_joining_root_3(now: Instant) -> RoomSession<u32> {
    let mut session = enforcing_viewer(now);
    let speaker = facts(RoomKind::Broadcast, Membership::Member(Role::Speaker));
    session.handle_peer_account(now, 3, Some(account(3)));
    session.handle_access(now, room(), account(3), speaker);
    found(&mut session, now, &[3]);
    assert_eq!(tree_joins(&drain(&mut session)), vec![3]);
    session
}

fn refused_tree(outputs: &[Output<u32>], from: u32) -> bool {
    outputs.iter().any(
        |o| matches!(o, Output::Event(RoomEvent::TreeMessageRefused { peer, .. }) if *peer == from),
    ) && refusal(outputs).is_some()
}

#[test]
fn tree_messages_are_taken_only_from_peers_whose_place_is_proven() {
    let now = epoch();
    let mut session = viewer_joining_root_3(now);
    let broadcast = |m| facts(RoomKind::Broadcast, m);
    let relayer = AccessFacts::Known {
        kind: RoomKind::Broadcast,
        membership: Membership::NotMember,
        relayer: true,
    };
    session.handle_peer_account(now, 7, Some(account(7)));
    session.handle_access(
        now,
        room(),
        account(7),
        broadcast(Membership::Member(Role::Listener)),
    );
    session.handle_peer_account(now, 8, Some(account(8)));
    session.handle_access(now, room(), account(8), relayer);
    drain(&mut session);

    // A viewer (7) offering to feed this node, or inviting it up, is refused and moves nothing.
    for (n, message) in [
        Message::Accepted {
            level: 1,
            candidates: Vec::new(),
        },
        Message::Invite { level: 0 },
        Message::Redirected {
            candidates: Vec::new(),
        },
    ]
    .into_iter()
    .enumerate()
    {
        session.handle_tree_request(now, InboundId(n as u64), 7, room(), message);
        assert!(refused_tree(&drain(&mut session), 7));
        assert_eq!(session.tree_parent(room()), None);
    }
    // So is another speaker: it may broadcast, but it is not the root this node verified.
    session.handle_peer_account(now, 6, Some(account(6)));
    session.handle_access(
        now,
        room(),
        account(6),
        broadcast(Membership::Member(Role::Speaker)),
    );
    drain(&mut session);
    let offer = Message::Accepted {
        level: 1,
        candidates: Vec::new(),
    };
    session.handle_tree_request(now, InboundId(9), 6, room(), offer);
    let outputs = drain(&mut session);
    assert!(refused_tree(&outputs, 6));
    let error = refusal(&outputs).unwrap();
    assert!(
        error.message.contains("nor a registered relayer"),
        "{error}"
    );
    // A stranger with no account at all is refused too.
    session.handle_tree_request(now, InboundId(10), 9, room(), Message::Invite { level: 0 });
    assert!(refused_tree(&drain(&mut session), 9));
    // A registered relayer may not pose as the root (level 0).
    let accepted = |level| Message::Accepted {
        level,
        candidates: Vec::new(),
    };
    session.handle_tree_request(now, InboundId(11), 8, room(), accepted(0));
    assert!(refused_tree(&drain(&mut session), 8));
    // The verified root's acceptance is taken.
    session.handle_tree_request(now, InboundId(12), 3, room(), accepted(0));
    let outputs = drain(&mut session);
    assert!(outputs.contains(&Output::AckTree {
        request: InboundId(12),
        peer: 3
    }));
    assert_eq!(session.tree_parent(room()), Some(3));
    // A goodbye or a refusal needs no proof: it only takes away.
    session.handle_tree_request(now, InboundId(13), 9, room(), Message::Left);
    assert!(drain(&mut session).contains(&Output::AckTree {
        request: InboundId(13),
        peer: 9
    }));
}

#[test]
fn a_tree_parents_media_is_used_once_it_is_proven() {
    let now = epoch();
    let mut session = viewer_joining_root_3(now);
    session.handle_tree_request(
        now,
        InboundId(1),
        3,
        room(),
        Message::Accepted {
            level: 0,
            candidates: Vec::new(),
        },
    );
    let outputs = drain(&mut session);
    let (id, _) = subscribe_ids(&outputs)[0];
    session.handle_subscribe_result(now, id, Ok(LinkId(6)));
    assert_eq!(holds(&drain(&mut session)), vec![(LinkId(6), false)]);
    assert_eq!(session.tree_upstream(room()), Some((3, LinkId(6))));
    // Its account is banned: the link closes.
    session.handle_access(
        now,
        room(),
        account(3),
        facts(RoomKind::Broadcast, Membership::Banned),
    );
    assert!(drain(&mut session).contains(&Output::CloseLink { link: LinkId(6) }));
}

#[test]
fn of_two_proven_roots_every_viewer_chooses_the_lowest_and_the_other_root_is_told() {
    let now = epoch();
    let speaker = facts(RoomKind::Broadcast, Membership::Member(Role::Speaker));
    let mut session = viewer_joining_root_3(now);
    // A second broadcaster, 1, is found later: the viewer moves to it.
    session.handle_peer_account(now, 1, Some(account(1)));
    session.handle_access(now, room(), account(1), speaker);
    found(&mut session, now, &[1, 3]);
    let outputs = drain(&mut session);
    assert_eq!(tree_joins(&outputs), vec![1], "{outputs:?}");
    // A higher claim found later changes nothing.
    session.handle_peer_account(now, 4, Some(account(4)));
    session.handle_access(now, room(), account(4), speaker);
    found(&mut session, now, &[4]);
    assert!(tree_joins(&drain(&mut session)).is_empty());

    // The root 3 looks for rivals too, finds 1 and is told it is outranked (once).
    let mut root = RoomSession::new(
        SessionConfig {
            access: AccessPolicy::Enforce,
            ..SessionConfig::default()
        },
        3,
    );
    let broadcast = Participation::Broadcast {
        kinds: vec![MediaKind::Video],
        capacity: 2,
    };
    root.join(now, room(), broadcast);
    assert!(drain(&mut root).contains(&Output::FindPublishers { room: room() }));
    root.handle_peer_account(now, 1, Some(account(1)));
    root.handle_access(now, room(), account(1), speaker);
    found(&mut root, now, &[1, 3]);
    let contested = RoomEvent::RootContested {
        room: room(),
        winner: 1,
    };
    assert!(drain(&mut root).contains(&Output::Event(contested)));
    found(&mut root, now, &[1]);
    assert!(drain(&mut root).is_empty());
    // It keeps looking, at the slow pace.
    root.handle_timeout(now + Duration::from_secs(9));
    let find = Output::FindPublishers { room: room() };
    assert!(!drain(&mut root).contains(&find));
    root.handle_timeout(now + Duration::from_secs(10));
    assert!(drain(&mut root).contains(&find));
}

fn lookup_count(outputs: &[Output<u32>]) -> usize {
    outputs
        .iter()
        .filter(|o| matches!(o, Output::LookupAccess { .. }))
        .count()
}

fn fresh_account(n: u32) -> Account {
    let mut bytes = [0xee; 20];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    Account::from_bytes(bytes)
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

/// Attaches `session` (a viewer that asked root 3) under `parent`, which says it is at
/// `level`, and links to it: returns the link.
fn attached_under(session: &mut RoomSession<u32>, now: Instant, parent: u32, level: u32) -> LinkId {
    let accepted = Message::Accepted {
        level,
        candidates: Vec::new(),
    };
    session.handle_tree_request(now, InboundId(50), parent, room(), accepted);
    let (id, _) = subscribe_ids(&drain(session))[0];
    let link = LinkId(60 + u64::from(parent));
    session.handle_subscribe_result(now, id, Ok(link));
    drain(session);
    assert_eq!(session.tree_upstream(room()).map(|(_, l)| l), Some(link));
    link
}

#[test]
fn a_parent_whose_media_stops_is_taken_as_gone() {
    let now = epoch();
    let mut session = viewer_joining_root_3(now);
    let link = attached_under(&mut session, now, 3, 0);
    session.handle_link_media(now, link, false);
    let outputs = drain(&mut session);
    assert!(outputs.contains(&Output::CloseLink { link }), "{outputs:?}");
    assert!(outputs.contains(&Output::Event(RoomEvent::ParentSilent {
        room: room(),
        parent: 3
    })));
    assert_eq!(session.tree_parent(room()), None);
}

#[test]
fn deeper_in_the_tree_a_silent_parent_gets_time_to_repair_above() {
    let now = epoch();
    let mut session = viewer_joining_root_3(now);
    // The root redirects to relayer 8, at level 2: this viewer is at level 3.
    let relayer = AccessFacts::Known {
        kind: RoomKind::Broadcast,
        membership: Membership::NotMember,
        relayer: true,
    };
    session.handle_peer_account(now, 8, Some(account(8)));
    session.handle_access(now, room(), account(8), relayer);
    let candidate = chroom_overlay::Candidate {
        peer: 8,
        level: 2,
        spare: 1,
        room: 1,
    };
    let redirect = Message::Redirected {
        candidates: vec![candidate],
    };
    session.handle_tree_request(now, InboundId(40), 3, room(), redirect);
    drain(&mut session);
    let link = attached_under(&mut session, now, 8, 2);
    let grace = SessionConfig::default().silence_grace_per_level;

    // Silent, then flowing again within the grace (the relayer repaired above): kept.
    session.handle_link_media(now, link, false);
    assert!(!drain(&mut session).contains(&Output::CloseLink { link }));
    session.handle_link_media(now + grace / 2, link, true);
    session.handle_timeout(now + grace * 2);
    assert!(!drain(&mut session).contains(&Output::CloseLink { link }));
    assert_eq!(session.tree_parent(room()), Some(8));

    // Silent past the grace: gone.
    let later = now + grace * 3;
    session.handle_link_media(later, link, false);
    assert!(session.poll_timeout().is_some_and(|t| t <= later + grace));
    session.handle_timeout(later + grace);
    assert!(drain(&mut session).contains(&Output::CloseLink { link }));
    assert_eq!(session.tree_parent(room()), None);
}

#[test]
fn a_root_that_cannot_be_reached_is_passed_over_for_the_next_claim() {
    let now = epoch();
    let speaker = facts(RoomKind::Broadcast, Membership::Member(Role::Speaker));
    let mut session = enforcing_viewer(now);
    for peer in [1, 3] {
        session.handle_peer_account(now, peer, Some(account(peer as u8)));
        session.handle_access(now, room(), account(peer as u8), speaker);
    }
    // Both provide the room; 1 wins, but its provider record outlived it.
    found(&mut session, now, &[1, 3]);
    assert_eq!(tree_joins(&drain(&mut session)), vec![1]);
    session.handle_tree_unreachable(now, 1, room());
    assert_eq!(tree_joins(&drain(&mut session)), vec![3]);
    // Found again later, it is not tried again: the viewer stays under 3.
    found(&mut session, now + Duration::from_secs(60), &[1, 3]);
    assert!(tree_joins(&drain(&mut session)).is_empty());
    // Until it proves its account again (it is back): then it wins again.
    let back = now + Duration::from_secs(61);
    session.handle_peer_account(back, 1, None);
    session.handle_peer_account(back, 1, Some(account(1)));
    assert_eq!(tree_joins(&drain(&mut session)), vec![1]);
}

#[test]
fn a_viewer_whose_root_loses_its_right_moves_to_another_proven_root() {
    let now = epoch();
    let speaker = facts(RoomKind::Broadcast, Membership::Member(Role::Speaker));
    let mut session = viewer_joining_root_3(now);
    session.handle_peer_account(now, 4, Some(account(4)));
    session.handle_access(now, room(), account(4), speaker);
    found(&mut session, now, &[3, 4]);
    assert!(tree_joins(&drain(&mut session)).is_empty(), "3 still wins");
    // Root 3 is banned: the viewer goes to 4.
    session.handle_access(
        now,
        room(),
        account(3),
        facts(RoomKind::Broadcast, Membership::Banned),
    );
    assert_eq!(tree_joins(&drain(&mut session)), vec![4]);
}

#[test]
fn a_flood_of_refused_claims_never_crowds_out_the_real_root() {
    let now = epoch();
    let mut session = enforcing_viewer(now);
    // 200 strangers provide the room, each proving a non-member account.
    for peer in 1000..1200u32 {
        let account = fresh_account(peer);
        session.handle_peer_account(now, peer, Some(account));
        session.handle_access(
            now,
            room(),
            account,
            facts(RoomKind::Broadcast, Membership::NotMember),
        );
        found(&mut session, now, &[peer]);
    }
    assert!(tree_joins(&drain(&mut session)).is_empty());
    // Then the real broadcaster: it is weighed and joined.
    let speaker = facts(RoomKind::Broadcast, Membership::Member(Role::Speaker));
    session.handle_peer_account(now, 3, Some(account(3)));
    session.handle_access(now, room(), account(3), speaker);
    found(&mut session, now, &[3]);
    assert_eq!(tree_joins(&drain(&mut session)), vec![3]);
}
