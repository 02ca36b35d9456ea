//! Relay-tree messages between nodes: one at a time per peer, a newer report replacing a
//! waiting one, a peer that stops acknowledging.

use super::*;
use crate::node::tree::TREE_ACK_TIMEOUT;

#[test]
fn tree_messages_to_a_peer_go_one_at_a_time() {
    let now = epoch();
    let mut core = NodeCore::new(SessionConfig::default(), LOCAL, None, now);
    let rooms: Vec<RoomId> = ["b1", "b2"]
        .iter()
        .map(|n| n.parse::<RoomName>().unwrap().id())
        .collect();
    let root = 1;
    for room in &rooms {
        core.join(
            now,
            UNIX_MS,
            *room,
            Participation::View(vec![MediaKind::Video]),
        );
        core.handle_publishers(now, *room, &[root]);
    }
    let sent = |outputs: &[NodeOutput<u32>]| {
        outputs
            .iter()
            .filter_map(|o| match o {
                NodeOutput::SendTree {
                    peer,
                    room,
                    message,
                } => Some((*peer, *room, message.clone())),
                _ => None,
            })
            .collect::<Vec<(u32, RoomId, Message<u32>)>>()
    };
    let first = sent(&drain(&mut core));
    assert_eq!(first.len(), 1, "the second waits for the first's answer");
    assert_eq!(first[0].0, root);
    core.handle_tree_delivery(now, root, first[0].1, TreeDelivery::Acknowledged);
    let second = sent(&drain(&mut core));
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].1, first[0].1);
}

/// A viewer in broadcast room "b1" whose join the root (peer 1) accepted: its first report to
/// the root is out, unacknowledged. Returns the core, the room and the root.
fn viewer_attached_under_the_root(now: Instant) -> (NodeCore<u32>, RoomId, u32) {
    let mut core = NodeCore::new(SessionConfig::default(), LOCAL, None, now);
    let room: RoomId = "b1".parse::<RoomName>().unwrap().id();
    let root = 1;
    core.join(
        now,
        UNIX_MS,
        room,
        Participation::View(vec![MediaKind::Video]),
    );
    core.handle_publishers(now, room, &[root]);
    drain(&mut core);
    core.handle_tree_delivery(now, root, room, TreeDelivery::Acknowledged);
    let accepted = Message::Accepted {
        level: 0,
        candidates: Vec::new(),
    };
    core.handle_tree_request(now, InboundId(1), root, room, accepted);
    (core, room, root)
}

/// The tree messages among `outputs` sent to `peer`.
fn tree_messages_to(outputs: &[NodeOutput<u32>], peer: u32) -> Vec<Message<u32>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            NodeOutput::SendTree {
                peer: to, message, ..
            } if *to == peer => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_waiting_report_is_replaced_by_a_newer_one_not_queued_behind_it() {
    let now = epoch();
    let (mut core, room, root) = viewer_attached_under_the_root(now);
    // The first report is out and unacknowledged: what follows waits.
    assert!(matches!(
        tree_messages_to(&drain(&mut core), root)[..],
        [Message::Report { .. }]
    ));
    let report = |deepest: u32| Message::Report {
        spare: None,
        room: 0,
        pushdown: None,
        deepest: Some(Candidate {
            peer: deepest,
            level: 3,
            spare: 0,
            room: 0,
        }),
    };
    for deepest in [20, 21, 22] {
        core.queue_tree(root, room, report(deepest));
    }
    core.queue_tree(root, room, Message::Probe);
    core.handle_tree_delivery(now, root, room, TreeDelivery::Acknowledged);
    assert_eq!(
        tree_messages_to(&drain(&mut core), root),
        vec![report(22)],
        "only the newest"
    );
    core.handle_tree_delivery(now, root, room, TreeDelivery::Acknowledged);
    assert_eq!(
        tree_messages_to(&drain(&mut core), root),
        vec![Message::Probe]
    );
    core.handle_tree_delivery(now, root, room, TreeDelivery::Acknowledged);
    assert!(tree_messages_to(&drain(&mut core), root).is_empty());
}

#[test]
fn a_tree_peer_that_stops_acknowledging_is_taken_as_gone() {
    let now = epoch();
    let (mut core, _, root) = viewer_attached_under_the_root(now);
    // Attached: it reports to its parent, which never acknowledges (it is gone).
    let sent = tree_messages_to(&drain(&mut core), root);
    assert!(matches!(sent[..], [Message::Report { .. }]), "{sent:?}");
    let deadline = core.poll_timeout().expect("an acknowledgement is awaited");
    assert!(deadline <= now + TREE_ACK_TIMEOUT);
    core.handle_timeout(now + TREE_ACK_TIMEOUT - Duration::from_millis(1));
    assert!(tree_messages_to(&drain(&mut core), root).is_empty());
    // Taken as gone: the search for a parent starts over and, nothing else being known, asks
    // the root again, no longer stuck behind the unanswered report.
    core.handle_timeout(now + TREE_ACK_TIMEOUT);
    let asked = tree_messages_to(&drain(&mut core), root);
    assert!(matches!(asked[..], [Message::Join { .. }]), "{asked:?}");
}
