//! The session's broadcast tree: tree requests checked against the registry, root claims
//! weighed, every tree message checked against its sender's place, silent parents.

use super::*;
use crate::session::broadcast::UNREACHABLE_ROOT_HOLD;

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
        policy: chroom_types::RoomPolicy::default(),
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
/// A viewer that found the one proven root `root` and asked to join its tree.
fn viewer_joining_root(now: Instant, root: u32) -> RoomSession<u32> {
    let mut session = enforcing_viewer(now);
    let speaker = facts(RoomKind::Broadcast, Membership::Member(Role::Speaker));
    session.handle_peer_account(now, root, Some(account(root as u8)));
    session.handle_access(now, room(), account(root as u8), speaker);
    found(&mut session, now, &[root]);
    assert_eq!(tree_joins(&drain(&mut session)), vec![root]);
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
    let mut session = viewer_joining_root(now, 3);
    let broadcast = |m| facts(RoomKind::Broadcast, m);
    let relayer = AccessFacts::Known {
        kind: RoomKind::Broadcast,
        membership: Membership::NotMember,
        relayer: true,
        policy: chroom_types::RoomPolicy::default(),
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
        Message::Repairing,
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
    // A goodbye or a refusal needs no proof: it only takes away. Nor does a redirect: it is
    // followed only if this node asked its sender, and only to members that prove their place.
    session.handle_tree_request(now, InboundId(13), 9, room(), Message::Left);
    assert!(drain(&mut session).contains(&Output::AckTree {
        request: InboundId(13),
        peer: 9
    }));
}

#[test]
fn a_tree_parents_media_is_used_once_it_is_proven() {
    let now = epoch();
    let mut session = viewer_joining_root(now, 3);
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
    let mut session = viewer_joining_root(now, 3);
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
fn a_parent_whose_media_stops_and_that_does_not_say_it_repairs_is_taken_as_gone() {
    let now = epoch();
    let mut session = viewer_joining_root(now, 3);
    let link = attached_under(&mut session, now, 3, 0);
    session.handle_link_media(now, link, true);
    session.handle_link_media(now, link, false);
    let outputs = drain(&mut session);
    assert!(outputs.contains(&Output::SendTree {
        peer: 3,
        room: room(),
        message: Message::Probe
    }));
    assert!(!outputs.contains(&Output::CloseLink { link }));
    let deadline = now + SessionConfig::default().tree.probe_timeout;
    assert_eq!(session.poll_timeout(), Some(deadline));
    session.handle_timeout(deadline);
    let outputs = drain(&mut session);
    assert!(outputs.contains(&Output::CloseLink { link }), "{outputs:?}");
    assert!(outputs.contains(&Output::Event(RoomEvent::ParentSilent {
        room: room(),
        parent: 3
    })));
    assert_eq!(session.tree_parent(room()), None);
}

#[test]
fn a_silent_parent_that_says_it_repairs_is_waited_for_and_redirects_need_no_proof() {
    let now = epoch();
    let mut session = viewer_joining_root(now, 3);
    // The root redirects to relayer 8, at level 2: a hint, taken without its sender's facts
    // (the root's are known here anyway) and without 8's, which 8 proves by accepting.
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
    let outputs = drain(&mut session);
    assert!(outputs.contains(&Output::SendTree {
        peer: 8,
        room: room(),
        message: join_message(0)
    }));
    let relayer = AccessFacts::Known {
        kind: RoomKind::Broadcast,
        membership: Membership::NotMember,
        relayer: true,
        policy: chroom_types::RoomPolicy::default(),
    };
    session.handle_peer_account(now, 8, Some(account(8)));
    session.handle_access(now, room(), account(8), relayer);
    drain(&mut session);
    let link = attached_under(&mut session, now, 8, 2);
    session.handle_link_media(now, link, true);
    let config = SessionConfig::default().tree;

    // Silent: 8 is asked, says it repairs, and is kept past the probe's deadline.
    session.handle_link_media(now, link, false);
    drain(&mut session);
    session.handle_tree_request(now, InboundId(41), 8, room(), Message::Repairing);
    session.handle_timeout(now + config.probe_timeout);
    assert!(!drain(&mut session).contains(&Output::CloseLink { link }));
    session.handle_link_media(now + config.repair_hold / 2, link, true);
    session.handle_timeout(now + config.repair_hold);
    assert!(!drain(&mut session).contains(&Output::CloseLink { link }));
    assert_eq!(session.tree_parent(room()), Some(8));

    // A stranger cannot hold this node under a dead parent: its word is refused unproven.
    let later = now + config.repair_hold * 2;
    session.handle_link_media(later, link, false);
    session.handle_tree_request(later, InboundId(42), 99, room(), Message::Repairing);
    session.handle_timeout(later + config.probe_timeout);
    assert!(drain(&mut session).contains(&Output::CloseLink { link }));
    assert_eq!(session.tree_parent(room()), None);
}

#[test]
fn a_join_this_node_would_only_redirect_is_answered_without_a_lookup() {
    let now = epoch();
    let mut session = enforcing_root(now);
    let listener = facts(RoomKind::Broadcast, Membership::Member(Role::Listener));
    for child in [7, 8] {
        session.handle_peer_account(now, child, Some(account(child as u8)));
        session.handle_access(now, room(), account(child as u8), listener);
        session.handle_tree_request(now, InboundId(child.into()), child, room(), join_message(0));
    }
    drain(&mut session);
    // Full (capacity 2): a joiner whose facts are unknown is redirected at once, no lookup.
    session.handle_peer_account(now, 9, Some(account(9)));
    drain(&mut session);
    session.handle_tree_request(now, InboundId(9), 9, room(), join_message(0));
    let outputs = drain(&mut session);
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::LookupAccess { .. })),
        "{outputs:?}"
    );
    assert!(outputs.contains(&Output::AckTree {
        request: InboundId(9),
        peer: 9
    }));
    // A slot frees: the same joiner is taken at once, and looked up meanwhile; its link
    // stays held until the registry says yes.
    session.handle_tree_request(now, InboundId(10), 8, room(), Message::Left);
    drain(&mut session);
    session.handle_tree_request(now, InboundId(11), 9, room(), join_message(0));
    let outputs = drain(&mut session);
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, Output::LookupAccess { .. })),
        "{outputs:?}"
    );
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::SendTree {
            peer: 9,
            message: Message::Accepted { .. },
            ..
        }
    )));
    session.handle_subscribe_request(now, InboundId(12), 9, room());
    assert!(
        drain(&mut session)
            .iter()
            .any(|o| matches!(o, Output::AcceptSubscriber { peer: 9, .. }))
    );
    session.handle_subscriber_linked(now, room(), 9, LinkId(90));
    let outputs = drain(&mut session);
    // Links open held; this one is not released.
    assert!(
        !outputs.contains(&Output::Hold {
            link: LinkId(90),
            held: false
        }),
        "{outputs:?}"
    );
    // The registry says no: the link closes and the slot frees.
    session.handle_access(
        now,
        room(),
        account(9),
        facts(RoomKind::Broadcast, Membership::NotMember),
    );
    let outputs = drain(&mut session);
    assert!(
        outputs.contains(&Output::CloseLink { link: LinkId(90) }),
        "{outputs:?}"
    );
    session.handle_tree_request(now, InboundId(13), 7, room(), join_message(0));
    assert!(drain(&mut session).iter().any(|o| matches!(
        o,
        Output::SendTree {
            peer: 7,
            message: Message::Accepted { .. },
            ..
        }
    )));
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
    let fed = Message::Accepted {
        level: 0,
        candidates: Vec::new(),
    };
    session.handle_tree_request(now, InboundId(1), 3, room(), fed);
    drain(&mut session);
    assert_eq!(session.tree_parent(room()), Some(3));
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
fn a_viewer_fed_by_no_root_asks_an_unreachable_one_again_after_a_while() {
    let now = epoch();
    let mut session = viewer_joining_root(now, 1);
    // Its join is lost (a starved node, a blip): the only root is passed over for a while...
    session.handle_tree_unreachable(now, 1, room());
    drain(&mut session);
    found(&mut session, now + Duration::from_secs(1), &[1]);
    assert!(tree_joins(&drain(&mut session)).is_empty());
    // ...not for good, though it never reconnected to prove its account again, and though
    // the lookups after name nobody (the DHT answers a starved node with nothing).
    found(&mut session, now + UNREACHABLE_ROOT_HOLD, &[]);
    assert_eq!(tree_joins(&drain(&mut session)), vec![1]);
}

#[test]
fn a_repairing_viewer_asks_its_slow_root_again_rather_than_passing_it_over() {
    // Found on a loaded machine: a relayer whose root had taken it for gone, and whose next
    // message the root acknowledged late, passed the only root over, left its tree (and its
    // children) and sat without a parent for the whole hold.
    let now = epoch();
    let mut session = viewer_joining_root(now, 1);
    let fed = Message::Accepted {
        level: 0,
        candidates: Vec::new(),
    };
    session.handle_tree_request(now, InboundId(1), 1, room(), fed);
    drain(&mut session);
    assert_eq!(session.tree_parent(room()), Some(1));
    // A message to the root goes unacknowledged: the viewer repairs, asking the root again.
    session.handle_tree_unreachable(now, 1, room());
    assert_eq!(session.tree_parent(room()), None);
    assert_eq!(tree_joins(&drain(&mut session)), vec![1]);
    // Another goes unacknowledged while it repairs: the root is asked again shortly, not
    // passed over for the hold.
    session.handle_tree_unreachable(now, 1, room());
    drain(&mut session);
    let shortly = now + Duration::from_secs(1);
    session.handle_timeout(shortly);
    assert_eq!(tree_joins(&drain(&mut session)), vec![1]);
    assert!(shortly < now + UNREACHABLE_ROOT_HOLD);
}

#[test]
fn a_viewer_whose_root_loses_its_right_moves_to_another_proven_root() {
    let now = epoch();
    let speaker = facts(RoomKind::Broadcast, Membership::Member(Role::Speaker));
    let mut session = viewer_joining_root(now, 3);
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

#[test]
fn the_member_asked_to_take_this_node_is_looked_up_while_the_join_travels() {
    let now = epoch();
    let mut session = viewer_joining_root(now, 3);
    let redirect = Message::Redirected {
        candidates: vec![chroom_overlay::Candidate {
            peer: 8,
            level: 1,
            spare: 1,
            room: 1,
        }],
    };
    session.handle_tree_request(now, InboundId(40), 3, room(), redirect);
    // 8's account is not known yet: nothing to look up until it says which it acts for.
    let outputs = drain(&mut session);
    assert!(outputs.contains(&Output::SendTree {
        peer: 8,
        room: room(),
        message: join_message(0)
    }));
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::LookupAccess { .. }))
    );
    session.handle_peer_account(now, 8, Some(account(8)));
    assert!(drain(&mut session).contains(&Output::LookupAccess {
        room: room(),
        account: account(8)
    }));
}
