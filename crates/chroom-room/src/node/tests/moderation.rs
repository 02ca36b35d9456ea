//! Moderation: removals, mutes, and a host's decisions told to members arriving later.

use super::*;

#[test]
fn a_hosts_removal_is_carried_out_and_the_removed_member_is_refused() {
    let now = epoch();
    let mut core = in_a_room(now);
    let link = linked_to_member(&mut core, now);
    let remove = Say::Moderate {
        target: MEMBER,
        action: Moderation::Remove,
    };
    hear(&mut core, now, 1, HOST, remove);
    let outputs = drain(&mut core);
    assert_eq!(verdict_of(&outputs, 1), Some(&GossipVerdict::Deliver));
    assert!(outputs.contains(&NodeOutput::Moderated(ModerationNotice {
        room: room(),
        target: MEMBER,
        target_account: Some(account(MEMBER as u8)),
        action: Moderation::Remove,
        by: HOST,
        by_account: Some(account(HOST as u8)),
    })));
    assert!(outputs.contains(&NodeOutput::Session(Output::CloseLink { link })));
    assert_eq!(
        core.participants(room()).len(),
        1,
        "dropped from the roster"
    );

    core.handle_subscribe_request(now, InboundId(1), MEMBER, room());
    hear(&mut core, now, 2, MEMBER, beat());
    core.handle_file_request(now, InboundId(2), MEMBER, room());
    let outputs = drain(&mut core);
    assert_eq!(
        refusal_code(&outputs, InboundId(1)),
        Some(ErrorCode::NotAuthorized)
    );
    assert!(matches!(
        verdict_of(&outputs, 2),
        Some(GossipVerdict::Ignore(_))
    ));
    assert_eq!(
        refusal_code(&outputs, InboundId(2)),
        Some(ErrorCode::NotInRoom)
    );
}

#[test]
fn a_member_who_is_not_a_host_cannot_moderate() {
    let now = epoch();
    let mut core = in_a_room(now);
    linked_to_member(&mut core, now);
    let remove = Say::Moderate {
        target: HOST,
        action: Moderation::Remove,
    };
    hear(&mut core, now, 1, MEMBER, remove);
    let outputs = drain(&mut core);
    assert!(matches!(
        verdict_of(&outputs, 1),
        Some(GossipVerdict::Reject(_))
    ));
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, NodeOutput::Moderated(_)))
    );
}

#[test]
fn a_node_removed_by_a_host_leaves_the_room() {
    let now = epoch();
    let mut core = in_a_room(now);
    let remove = Say::Moderate {
        target: LOCAL,
        action: Moderation::Remove,
    };
    hear(&mut core, now, 1, HOST, remove);
    let outputs = drain(&mut core);
    let goodbye = Say::Presence(Presence {
        leaving: true,
        ..Presence::default()
    });
    assert!(publishes(&outputs).contains(&&goodbye));
    assert!(outputs.contains(&NodeOutput::PauseFiles { room: room() }));
    assert!(!core.is_present(room()));
}

/// The first bug of the runtime redesign: a muted member was silenced only while a page was
/// open. The core silences it wherever its microphone arrives, page or not.
#[test]
fn a_muted_member_is_silenced_without_any_page_and_passed_again_when_unmuted() {
    let now = epoch();
    let mut core = in_a_room(now);
    let link = linked_to_member(&mut core, now);
    let mute = |action| Say::Moderate {
        target: MEMBER,
        action,
    };
    hear(&mut core, now, 1, HOST, mute(Moderation::Mute));
    assert_eq!(silences(&drain(&mut core)), vec![(link, true)]);
    assert!(core.participants(room())[1].muted_by_host);
    hear(&mut core, now, 2, HOST, mute(Moderation::Unmute));
    assert_eq!(silences(&drain(&mut core)), vec![(link, false)]);
    assert_eq!(core.silenced().count(), 0);
}

#[test]
fn a_link_from_a_muted_member_made_later_is_silenced_too() {
    let now = epoch();
    let mut core = in_a_room(now);
    let link = linked_to_member(&mut core, now);
    hear(
        &mut core,
        now,
        1,
        HOST,
        Say::Moderate {
            target: MEMBER,
            action: Moderation::Mute,
        },
    );
    drain(&mut core);
    core.handle_link_closed(now, link);
    drain(&mut core);
    // The member's node reconnects: its new link is silenced as soon as it is made.
    core.handle_subscribe_request(now, InboundId(3), MEMBER, room());
    drain(&mut core);
    let again = LinkId(43);
    core.handle_subscriber_linked(now, room(), MEMBER, again);
    assert!(silences(&drain(&mut core)).contains(&(again, true)));
}

#[test]
fn this_nodes_own_microphone_is_dropped_when_a_host_mutes_it() {
    let now = epoch();
    let mut core = in_a_room(now);
    let own = LinkId(7);
    core.handle_own_source_opened(own);
    assert!(silences(&drain(&mut core)).is_empty());
    hear(
        &mut core,
        now,
        1,
        HOST,
        Say::Moderate {
            target: LOCAL,
            action: Moderation::Mute,
        },
    );
    assert_eq!(silences(&drain(&mut core)), vec![(own, true)]);
    assert!(core.participants(room())[0].muted_by_host);
}

#[test]
fn a_hosts_own_decisions_are_told_again_to_a_member_arriving() {
    let now = epoch();
    let mut core = NodeCore::new(enforcing(), HOST, Some(account(HOST as u8)), now);
    core.handle_access(now, room(), account(HOST as u8), facts(Some(Role::Host)));
    core.join(now, UNIX_MS, room(), meet());
    drain(&mut core);
    let say = core
        .moderate(now, room(), MEMBER, Moderation::Mute)
        .unwrap();
    assert_eq!(
        say,
        Say::Moderate {
            target: MEMBER,
            action: Moderation::Mute
        }
    );
    assert!(
        drain(&mut core)
            .iter()
            .any(|o| matches!(o, NodeOutput::Moderated(_)))
    );
    core.handle_room_peer_joined(room());
    let outputs = drain(&mut core);
    // A host beats every second.
    let Say::Presence(usual) = beat() else {
        unreachable!("a beat is a presence")
    };
    let host_beat = Say::Presence(Presence {
        beat_interval_ms: HOST_PRESENCE_INTERVAL.as_millis() as u32,
        ..usual
    });
    assert_eq!(publishes(&outputs), vec![&host_beat, &say]);
    assert!(outputs.contains(&NodeOutput::OfferFilesAgain { room: room() }));

    let elsewhere = "elsewhere".parse::<RoomName>().unwrap().id();
    assert_eq!(
        core.moderate(now, elsewhere, MEMBER, Moderation::Mute),
        Err(CommandError::NotInRoom {
            doing: "moderating"
        })
    );
}
