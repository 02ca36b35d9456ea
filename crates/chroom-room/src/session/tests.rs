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
fn a_silent_subscription_is_closed_and_made_again() {
    let (now, mut session, id) = subscribing_to_one_publisher();
    session.handle_subscribe_result(now, id, Ok(LinkId(3)));
    drain(&mut session);
    // Media coming back is nothing to act on.
    session.handle_link_media(now, LinkId(3), true);
    assert!(drain(&mut session).is_empty());
    // Silent, then flowing again within the grace: kept.
    let grace = SessionConfig::default().receive_silence_grace;
    session.handle_link_media(now, LinkId(3), false);
    session.handle_link_media(now + grace / 2, LinkId(3), true);
    session.handle_timeout(now + grace);
    assert!(drain(&mut session).is_empty());
    // Silent past the grace: given up.
    session.handle_link_media(now + grace, LinkId(3), false);
    assert!(drain(&mut session).is_empty());
    assert!(session.poll_timeout() <= Some(now + grace * 2));
    session.handle_timeout(now + grace * 2 - Duration::from_millis(1));
    assert!(!drain(&mut session).contains(&Output::CloseLink { link: LinkId(3) }));
    let now = now + grace * 2;
    session.handle_timeout(now);
    let outputs = drain(&mut session);
    assert!(
        outputs.contains(&Output::CloseLink { link: LinkId(3) }),
        "{outputs:?}"
    );
    assert!(
        outputs.contains(&Output::Event(RoomEvent::SubscriptionLost {
            room: room(),
            peer: 1,
            link: LinkId(3)
        }))
    );
    let retry = now + SessionConfig::default().retry_backoff;
    session.handle_timeout(retry);
    assert_eq!(subscribe_ids(&drain(&mut session)).len(), 1);
    // The media driver's own close of the link comes later and changes nothing.
    session.handle_link_closed(retry, LinkId(3));
    assert!(drain(&mut session).is_empty());
}

/// A session of node 5 meeting in the room, sending and receiving `kinds`.
fn meeting(now: Instant, kinds: &[MediaKind]) -> RoomSession<u32> {
    let mut session = RoomSession::new(SessionConfig::default(), 5);
    session.join(
        now,
        room(),
        Participation::Meet {
            publish: kinds.to_vec(),
            receive: kinds.to_vec(),
        },
    );
    session
}

#[test]
fn a_conference_member_links_once_per_pair_both_ways() {
    let now = epoch();
    let kinds = vec![MediaKind::Audio, MediaKind::Video];
    let mut session = meeting(now, &kinds);
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
fn a_member_that_takes_part_another_way_is_linked_afresh_with_one_link_per_pair() {
    let now = epoch();
    let mut session = meeting(now, &[MediaKind::Audio]);
    // Member 7 listened: it subscribed to this node, over link 3.
    session.handle_subscribe_request(now, InboundId(0), 7, room());
    session.handle_subscriber_linked(now, room(), 7, LinkId(3));
    drain(&mut session);

    // It speaks now (put on stage), its old links closed on its side: the higher id of the
    // pair, it is subscribed to at once, and that link replaces the one it opened.
    session.handle_member_relinked(now, room(), 7, false);
    let (id, peer) = subscribe_ids(&drain(&mut session))[0];
    assert_eq!(peer, 7);
    session.handle_subscribe_result(now, id, Ok(LinkId(4)));
    assert!(drain(&mut session).contains(&Output::CloseLink { link: LinkId(3) }));
    assert_eq!(session.media_links(room()), vec![(7, LinkId(4))]);

    // Member 7 takes part another way again: the link this node opened closes, and it is
    // subscribed to afresh.
    session.handle_member_relinked(now, room(), 7, false);
    let outputs = drain(&mut session);
    assert!(outputs.contains(&Output::CloseLink { link: LinkId(4) }));
    assert_eq!(subscribe_ids(&outputs).len(), 1, "{outputs:?}");

    // A lower id subscribes by itself: nothing is closed or asked of it here (its new
    // subscription, maybe on its way already, replaces its old link).
    session.handle_subscribe_request(now, InboundId(1), 2, room());
    session.handle_subscriber_linked(now, room(), 2, LinkId(5));
    drain(&mut session);
    session.handle_member_relinked(now, room(), 2, false);
    let outputs = drain(&mut session);
    assert!(outputs.is_empty(), "{outputs:?}");
    assert!(session.media_links(room()).contains(&(2, LinkId(5))));
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
        policy: chroom_types::RoomPolicy::default(),
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

/// An enforcing session receiving in `room()` (a broadcast-kind room's publisher needs
/// speaker), subscribing to publisher 1, which proved `proven`.
fn enforcing_receiver_subscribing(
    now: Instant,
    proven: Account,
) -> (RoomSession<u32>, SubscribeId) {
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
    session.handle_peer_account(now, 1, Some(proven));
    drain(&mut session);
    (session, id)
}

fn refusal(outputs: &[Output<u32>]) -> Option<SignalError> {
    outputs.iter().find_map(|o| match o {
        Output::Refuse { error, .. } => Some(error.clone()),
        _ => None,
    })
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

fn fresh_account(n: u32) -> Account {
    let mut bytes = [0xee; 20];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    Account::from_bytes(bytes)
}

mod links;
mod rights;
mod studio;
mod tree;
