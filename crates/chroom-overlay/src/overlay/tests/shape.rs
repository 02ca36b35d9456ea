//! Keeping the tree's shape: handovers when a relayer leaves, parents' levels and backups,
//! reports up the tree and invitations that move deep members up.

use super::*;

#[test]
fn a_leaving_relayer_hands_its_children_over_first() {
    let now = epoch();
    let mut relayer = relayer_with_children(now, 4, 2);
    relayer.leave(now);
    let out = sent(&mut relayer);
    for child in [100, 101] {
        let Message::Handover { candidates } = &to(&out, child)[0] else {
            panic!("expected a handover");
        };
        assert!(candidates.iter().any(|c| c.peer == ROOT));
        assert!(candidates.iter().all(|c| c.peer != 10));
    }
    assert!(
        !to(&out, ROOT).contains(&Message::Left),
        "still fed while handing over"
    );
    relayer.handle_message(now, 100, Message::Left);
    assert!(!relayer.has_left());
    relayer.handle_message(now, 101, Message::Left);
    assert!(relayer.has_left());
    assert_eq!(to(&sent(&mut relayer), ROOT), vec![Message::Left]);
    assert!(events(&mut relayer).contains(&OverlayEvent::Left));
    // Gone: it answers joins with a refusal and releases unasked slots.
    relayer.handle_message(now, 7, join(0));
    relayer.handle_message(
        now,
        8,
        Message::Accepted {
            level: 0,
            candidates: vec![],
        },
    );
    let out = sent(&mut relayer);
    assert_eq!(to(&out, 7), vec![Message::Refused]);
    assert_eq!(to(&out, 8), vec![Message::Left]);
}

#[test]
fn a_handover_that_times_out_leaves_anyway() {
    let now = epoch();
    let mut relayer = relayer_with_children(now, 4, 1);
    relayer.leave(now);
    sent(&mut relayer);
    let deadline = now + OverlayConfig::default().handover_timeout;
    relayer.handle_timeout(deadline);
    assert!(relayer.has_left());
    assert_eq!(relayer.child_count(), 0);
}

#[test]
fn a_handed_over_child_moves_and_then_leaves_its_old_parent() {
    let now = epoch();
    let mut viewer = attached_viewer(now, 5, 10, 2);
    viewer.handle_message(
        now,
        10,
        Message::Handover {
            candidates: vec![candidate(ROOT + 1, 1, 3)],
        },
    );
    assert_eq!(to(&sent(&mut viewer), 1), vec![join(0)]);
    assert_eq!(viewer.parent(), Some(10), "make before break");
    viewer.handle_message(
        now,
        1,
        Message::Accepted {
            level: 1,
            candidates: vec![],
        },
    );
    assert_eq!(viewer.parent(), Some(1));
    assert_eq!(to(&sent(&mut viewer), 10), vec![Message::Left]);
    assert!(matches!(
        events(&mut viewer)[..],
        [OverlayEvent::Attached {
            previous: Some(10),
            reason: SeekReason::Handover,
            ..
        }]
    ));
}

#[test]
fn parent_state_updates_level_and_backups_and_others_are_ignored() {
    let now = epoch();
    let mut viewer = attached_viewer(now, 5, 10, 3);
    viewer.handle_message(
        now,
        10,
        Message::State {
            level: 1,
            candidates: vec![candidate(60, 1, 2)],
        },
    );
    assert_eq!(viewer.level(), 2);
    viewer.handle_message(
        now,
        99,
        Message::State {
            level: 0,
            candidates: vec![],
        },
    );
    assert_eq!(viewer.level(), 2, "only the parent's state counts");
    // The new backup is used on the next repair.
    viewer.handle_peer_disconnected(now, 10);
    assert_eq!(to(&sent(&mut viewer), 60), vec![join(0)]);
}

#[test]
fn a_parent_whose_level_grows_under_children_is_reported_and_ignored() {
    let now = epoch();
    let mut relayer = relayer_with_children(now, 4, 1);
    relayer.handle_message(
        now,
        ROOT,
        Message::State {
            level: 3,
            candidates: vec![],
        },
    );
    assert_eq!(relayer.level(), 1);
    assert!(
        events(&mut relayer)
            .iter()
            .any(|e| matches!(e, OverlayEvent::PeerMisbehaved { peer: ROOT, .. }))
    );
}

#[test]
fn an_acceptance_that_would_deepen_a_member_with_children_is_declined() {
    let now = epoch();
    let mut relayer = relayer_with_children(now, 4, 1);
    relayer.handle_peer_disconnected(now, ROOT);
    let out = sent(&mut relayer);
    let asked = out
        .iter()
        .find(|t| matches!(t.message, Message::Join { .. }))
        .map(|t| t.to)
        .expect("a repair request");
    // It asked with its bound; an answer from level 2 breaks it.
    relayer.handle_message(
        now,
        asked,
        Message::Accepted {
            level: 2,
            candidates: vec![],
        },
    );
    assert_eq!(relayer.parent(), None);
    assert_eq!(to(&sent(&mut relayer), asked), vec![Message::Left]);
    assert!(
        events(&mut relayer)
            .iter()
            .any(|e| matches!(e, OverlayEvent::PeerMisbehaved { .. }))
    );
}

#[test]
fn reports_reach_the_parent_and_invites_move_deep_members_up() {
    let now = epoch();
    let mut root = root(now, 2);
    root.handle_message(now, 10, join(1));
    sent(&mut root);
    // Its subtree's deepest member is at level 3, two below the root's free slot.
    root.handle_message(
        now,
        10,
        Message::Report {
            spare: None,
            room: 0,
            pushdown: None,
            deepest: Some(candidate(30, 3, 0)),
        },
    );
    let improve = root.poll_timeout().unwrap();
    root.handle_timeout(improve);
    assert_eq!(to(&sent(&mut root), 30), vec![Message::Invite { level: 0 }]);
    // The invited member moves only if it goes up.
    let mut deep = attached_viewer(now, 30, 20, 3);
    deep.handle_message(now, ROOT, Message::Invite { level: 0 });
    assert_eq!(
        to(&sent(&mut deep), ROOT),
        vec![Message::Join {
            below_level: Some(2),
            capacity: 0
        }]
    );
    let mut shallow = attached_viewer(now, 31, 20, 1);
    shallow.handle_message(now, ROOT, Message::Invite { level: 0 });
    assert!(sent(&mut shallow).is_empty());
    // The inviter holds the slot for the invitee only.
    root.handle_message(now, 44, join(0));
    assert!(!matches!(
        to(&sent(&mut root), 44)[0],
        Message::Accepted { .. }
    ));
    root.handle_message(
        now,
        30,
        Message::Join {
            below_level: Some(2),
            capacity: 0,
        },
    );
    assert!(matches!(
        to(&sent(&mut root), 30)[0],
        Message::Accepted { .. }
    ));
}
