//! Watching the parent's feed: silence, probes and their answers, links that never carry media.

use super::*;

#[test]
fn a_silent_parent_that_does_not_answer_the_probe_is_lost_and_the_children_wait() {
    let now = epoch();
    let config = OverlayConfig::default();
    let mut relayer = relayer_with_children(now, 4, 2);
    relayer.handle_parent_flowing();
    relayer.handle_parent_silent(now);
    let out = sent(&mut relayer);
    assert_eq!(to(&out, ROOT), vec![Message::Probe]);
    // Its children's media stops with its own: they are told it repairs, once.
    assert_eq!(to(&out, 100), vec![Message::Repairing]);
    assert_eq!(to(&out, 101), vec![Message::Repairing]);
    relayer.handle_parent_silent(now + Duration::from_millis(10));
    assert!(sent(&mut relayer).is_empty());
    assert_eq!(relayer.poll_timeout(), Some(now + config.probe_timeout));

    // A child probing meanwhile is told the same.
    relayer.handle_message(now, 100, Message::Probe);
    assert_eq!(to(&sent(&mut relayer), 100), vec![Message::Repairing]);

    relayer.handle_timeout(now + config.probe_timeout);
    assert_eq!(relayer.parent(), None);
    assert!(events(&mut relayer).contains(&OverlayEvent::ParentLost {
        parent: ROOT,
        silent: true
    }));
    assert!(relayer.is_seeking());
    // A parent taken for gone may only be slow: it is told, so it frees the slot.
    assert!(to(&sent(&mut relayer), ROOT).contains(&Message::Left));
}

#[test]
fn a_silent_parent_that_repairs_is_waited_for_within_bounds() {
    let now = epoch();
    let config = OverlayConfig::default();
    let mut viewer = attached_viewer(now, 5, 10, 2);
    viewer.handle_parent_flowing();
    viewer.handle_parent_silent(now);
    assert_eq!(to(&sent(&mut viewer), 10), vec![Message::Probe]);
    // Only the parent's word counts.
    viewer.handle_message(now, 50, Message::Repairing);
    viewer.handle_message(now, 10, Message::Repairing);
    assert_eq!(viewer.poll_timeout(), Some(now + config.repair_hold));

    // Held, then asked again; media coming back ends it all.
    let asked_again = now + config.repair_hold;
    viewer.handle_timeout(asked_again);
    assert_eq!(to(&sent(&mut viewer), 10), vec![Message::Probe]);
    assert_eq!(viewer.parent(), Some(10));
    viewer.handle_parent_flowing();
    assert_eq!(viewer.poll_timeout(), None);

    // A parent that keeps saying it repairs is left after max_repair_wait in all.
    let later = asked_again + Duration::from_secs(1);
    viewer.handle_parent_silent(later);
    let mut t = later;
    while viewer.parent().is_some() {
        viewer.handle_message(t, 10, Message::Repairing);
        t = viewer.poll_timeout().expect("waiting on the parent");
        viewer.handle_timeout(t);
        assert!(t <= later + config.max_repair_wait + config.probe_timeout);
    }
    assert!(t >= later + config.max_repair_wait);
    assert!(events(&mut viewer).contains(&OverlayEvent::ParentLost {
        parent: 10,
        silent: true
    }));
}

#[test]
fn a_parent_saying_it_repairs_while_its_media_flows_is_not_held_for() {
    // Found on a loaded machine: a relayer's word that it repaired reached its child seconds
    // late, behind other tree messages, when media flowed again. Held on it, the child
    // probed the parent after the hold, was answered that it feeds, and left it when the
    // grace ran out, as if silent: media that flows all along is never reported again.
    let now = epoch();
    let config = OverlayConfig::default();
    let mut viewer = attached_viewer(now, 5, 10, 2);
    viewer.handle_parent_flowing();
    viewer.handle_message(now, 10, Message::Repairing);
    assert_eq!(viewer.poll_timeout(), None);
    let later = now + config.max_repair_wait + config.repair_hold;
    viewer.handle_timeout(later);
    assert_eq!(viewer.parent(), Some(10));
    assert!(sent(&mut viewer).is_empty());
    // Once its media stops, the same word is waited on.
    viewer.handle_parent_silent(later);
    assert_eq!(to(&sent(&mut viewer), 10), vec![Message::Probe]);
    viewer.handle_message(later, 10, Message::Repairing);
    assert_eq!(viewer.poll_timeout(), Some(later + config.repair_hold));
}

#[test]
fn a_probe_is_answered_with_what_the_member_knows_of_its_own_feed() {
    let now = epoch();
    let mut relayer = relayer_with_children(now, 4, 1);
    // Attached after a join, the feed counts as stopped until media arrives.
    relayer.handle_message(now, 100, Message::Probe);
    assert_eq!(to(&sent(&mut relayer), 100), vec![Message::Repairing]);
    relayer.handle_parent_flowing();
    relayer.handle_message(now, 100, Message::Probe);
    assert_eq!(to(&sent(&mut relayer), 100), vec![Message::Feeding]);
    // A member that is no child (any more) is told so, and repairs at once.
    relayer.handle_message(now, 77, Message::Probe);
    assert_eq!(to(&sent(&mut relayer), 77), vec![Message::Refused]);
    let mut dropped = attached_viewer(now, 77, 10, 2);
    dropped.handle_parent_silent(now);
    assert_eq!(to(&sent(&mut dropped), 10), vec![Message::Probe]);
    dropped.handle_message(now, 10, Message::Refused);
    assert_eq!(dropped.parent(), None);
    assert!(dropped.is_seeking());
    // The root never repairs.
    let mut root = root(now, 2);
    root.handle_message(now, 1, join(0));
    sent(&mut root);
    root.handle_message(now, 1, Message::Probe);
    assert_eq!(to(&sent(&mut root), 1), vec![Message::Feeding]);
}

#[test]
fn a_silent_parent_that_says_it_feeds_gets_a_little_longer_once() {
    let now = epoch();
    let config = OverlayConfig::default();
    let mut viewer = attached_viewer(now, 5, 10, 2);
    viewer.handle_parent_flowing();
    viewer.handle_parent_silent(now);
    sent(&mut viewer);
    // It is alive: given a little longer, once.
    viewer.handle_message(now, 10, Message::Feeding);
    viewer.handle_timeout(now + config.probe_timeout);
    assert_eq!(viewer.parent(), Some(10));
    viewer.handle_message(now, 10, Message::Feeding);
    // Its media does not arrive whatever it sends: the path is broken.
    viewer.handle_timeout(now + config.feeding_grace);
    assert_eq!(viewer.parent(), None);
}

#[test]
fn a_parent_on_a_long_link_is_given_its_round_trip_to_answer_a_probe() {
    // Found by the simulation: a viewer 300 ms from every parent took each live parent for
    // gone (its answer came after the 250 ms probe timeout) and never got the broadcast.
    let now = epoch();
    let rtt = Duration::from_millis(400);
    let mut viewer = member(now, 5, Role::Viewer);
    viewer.join(now, ROOT).unwrap();
    viewer.handle_message(now + rtt, ROOT, accepted(0));
    sent(&mut viewer);
    let silent = now + Duration::from_secs(2);
    viewer.handle_parent_silent(silent);
    assert_eq!(to(&sent(&mut viewer), ROOT), vec![Message::Probe]);
    let answer = silent + rtt;
    viewer.handle_timeout(answer - Duration::from_millis(1));
    viewer.handle_message(answer, ROOT, Message::Feeding);
    assert_eq!(viewer.parent(), Some(ROOT), "{:?}", events(&mut viewer));
    // Unanswered past twice its round trip, it is gone.
    let mut other = member(now, 6, Role::Viewer);
    other.join(now, ROOT).unwrap();
    other.handle_message(now + rtt, ROOT, accepted(0));
    other.handle_parent_silent(silent);
    other.handle_timeout(silent + rtt * 2);
    assert_eq!(other.parent(), None);
}

#[test]
fn a_new_parent_whose_link_never_carries_media_is_probed() {
    let now = epoch();
    let config = OverlayConfig::default();
    let mut viewer = attached_viewer(now, 5, 10, 2);
    // The parent died while the link was set up: no media, no silence to notice.
    assert_eq!(viewer.poll_timeout(), Some(now + config.link_setup_timeout));
    let probe_at = now + config.link_setup_timeout;
    viewer.handle_timeout(probe_at);
    assert_eq!(to(&sent(&mut viewer), 10), vec![Message::Probe]);
    viewer.handle_timeout(probe_at + config.probe_timeout);
    assert_eq!(viewer.parent(), None);
    // A live parent says it feeds: its slow link is given as long again.
    let mut slow = attached_viewer(now, 7, 10, 2);
    slow.handle_timeout(probe_at);
    sent(&mut slow);
    slow.handle_message(probe_at, 10, Message::Feeding);
    slow.handle_timeout(probe_at + config.probe_timeout);
    assert_eq!(slow.parent(), Some(10));
    assert_eq!(
        slow.poll_timeout(),
        Some(probe_at + config.link_setup_timeout)
    );
    // Media in time leaves a parent alone.
    let mut fed = attached_viewer(now, 6, 10, 2);
    fed.handle_parent_flowing();
    fed.handle_timeout(probe_at);
    assert!(sent(&mut fed).is_empty());
    assert_eq!(fed.parent(), Some(10));
}
