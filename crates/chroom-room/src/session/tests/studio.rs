//! A broadcast's studio: the broadcaster and the viewers a host put on stage link as meeting
//! pairs outside the relay tree, and only while they are on stage.

use std::collections::BTreeSet;

use super::*;

/// An enforcing session of node `local` taking part in `room()` as `participation`, where
/// peers 3, 6, 7, 8 and 9 act for listeners.
fn enforcing(now: Instant, local: u32, participation: Participation) -> RoomSession<u32> {
    let config = SessionConfig {
        access: AccessPolicy::Enforce,
        ..SessionConfig::default()
    };
    let mut session = RoomSession::new(config, local);
    session.join(now, room(), participation);
    for peer in [3u8, 6, 7, 8, 9] {
        session.handle_peer_account(now, u32::from(peer), Some(account(peer)));
        let listener = facts(RoomKind::Broadcast, Membership::Member(Role::Listener));
        session.handle_access(now, room(), account(peer), listener);
    }
    drain(&mut session);
    session
}

fn stage(peers: &[u32]) -> BTreeSet<u32> {
    peers.iter().copied().collect()
}

fn closed(outputs: &[Output<u32>]) -> Vec<LinkId> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::CloseLink { link } => Some(*link),
            _ => None,
        })
        .collect()
}

#[test]
fn a_broadcasters_studio_is_its_stage_linked_outside_the_tree_while_on_stage() {
    let now = epoch();
    let video = vec![MediaKind::Video];
    let broadcast = Participation::Broadcast {
        kinds: video.clone(),
        capacity: 2,
    };
    let mut root = enforcing(now, 5, broadcast);

    // Viewers 3 and 7 come on stage: of each pair the lower id opens the link, so the root
    // subscribes to 7 (sending its own tracks on the link) and waits for 3.
    root.set_stage(now, room(), stage(&[3, 7]));
    let outputs = drain(&mut root);
    let subscribes: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Subscribe {
                id,
                peer,
                kinds,
                send,
                mode,
                ..
            } => Some((*id, *peer, kinds.clone(), send.clone(), *mode)),
            _ => None,
        })
        .collect();
    assert_eq!(subscribes.len(), 1, "{outputs:?}");
    let (to_7, peer, kinds, send, mode) = subscribes[0].clone();
    assert_eq!((peer, mode), (7, LinkMode::Frames));
    assert_eq!((kinds, send), (video.clone(), video));

    // Guest 3's subscription is taken as a meeting pair's, not as a tree join; a viewer off
    // stage that is no child in the tree is sent to the tree.
    root.handle_subscribe_request(now, InboundId(1), 3, room());
    assert_eq!(
        drain(&mut root),
        vec![Output::AcceptSubscriber {
            request: InboundId(1),
            room: room(),
            peer: 3,
            mode: LinkMode::Frames,
        }]
    );
    root.handle_subscribe_request(now, InboundId(2), 9, room());
    let error = refusal(&drain(&mut root)).expect("a viewer off stage is refused");
    assert_eq!(error.code, ErrorCode::NotPublishing);

    root.handle_subscriber_linked(now, room(), 3, LinkId(30));
    root.handle_subscribe_result(now, to_7, Ok(LinkId(70)));
    drain(&mut root);
    let mut links = root.media_links(room());
    links.sort_unstable();
    assert_eq!(
        links,
        vec![(3, LinkId(30)), (7, LinkId(70))],
        "both guests' media reach the broadcaster's page"
    );
    assert!(
        root.tree_children(room()).is_empty(),
        "guests are no children"
    );
    let mut studio = root.studio_links(room());
    studio.sort_unstable();
    assert_eq!(
        studio,
        vec![LinkId(30), LinkId(70)],
        "they never get the program"
    );

    // Off stage, out of the studio: both links close and nothing is subscribed again.
    root.set_stage(now, room(), stage(&[]));
    let mut gone = closed(&drain(&mut root));
    gone.sort_unstable();
    assert_eq!(gone, vec![LinkId(30), LinkId(70)]);
    assert!(root.media_links(room()).is_empty());
    assert!(root.studio_links(room()).is_empty());
    let later = now + Duration::from_secs(60);
    root.handle_timeout(later);
    assert!(subscribe_ids(&drain(&mut root)).is_empty());
    // And guest 3 may not come back into the studio unless it is on stage again.
    root.handle_subscribe_request(later, InboundId(3), 3, room());
    let error = refusal(&drain(&mut root)).expect("an ex-guest is sent to the tree");
    assert_eq!(error.code, ErrorCode::NotPublishing);
}

#[test]
fn a_guest_links_with_the_broadcaster_and_the_others_on_stage_not_with_viewers() {
    let now = epoch();
    let mut guest = enforcing(now, 5, Participation::Guest(vec![MediaKind::Video]));
    guest.handle_timeout(now);
    drain(&mut guest);
    // The DHT names the broadcasts' roots (guests are not providers): the pair's rule holds,
    // so only the root with a higher id is subscribed to.
    found(&mut guest, now, &[3, 8]);
    assert_eq!(
        subscribe_ids(&drain(&mut guest))
            .iter()
            .map(|s| s.1)
            .collect::<Vec<_>>(),
        vec![8]
    );
    // A viewer watching through the tree is no one to link with; a fellow guest is.
    guest.handle_member_present(now, room(), 9, false);
    assert!(subscribe_ids(&drain(&mut guest)).is_empty());
    guest.set_stage(now, room(), stage(&[5, 6, 9]));
    assert_eq!(
        subscribe_ids(&drain(&mut guest))
            .iter()
            .map(|s| s.1)
            .collect::<Vec<_>>(),
        vec![6, 9],
        "everyone on stage with a higher id"
    );
    // Being a guest is no tree part: a subscriber on stage is taken as a meeting pair's.
    guest.handle_subscribe_request(now, InboundId(1), 3, room());
    assert!(matches!(
        drain(&mut guest).as_slice(),
        [Output::AcceptSubscriber { peer: 3, .. }]
    ));
    guest.handle_subscriber_linked(now, room(), 3, LinkId(30));
    assert!(
        guest.studio_links(room()).is_empty(),
        "only the broadcaster composes a program"
    );
}
