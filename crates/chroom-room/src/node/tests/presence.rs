//! Presence: beats, goodbyes, screens announced, and whom a member links to on arrival.

use super::*;

#[test]
fn presence_beats_follow_the_interval_and_leaving_says_goodbye() {
    let now = epoch();
    let mut core = in_a_room(now);
    let due = core.poll_timeout().unwrap();
    assert!(due <= now + PRESENCE_INTERVAL);
    let later = now + PRESENCE_INTERVAL;
    core.handle_timeout(later);
    assert_eq!(publishes(&drain(&mut core)), vec![&beat()]);
    core.handle_timeout(later + Duration::from_millis(10));
    assert!(
        publishes(&drain(&mut core)).is_empty(),
        "one beat per interval"
    );

    let goodbye = core.leave(later, room());
    assert_eq!(
        goodbye,
        Some(Say::Presence(Presence {
            leaving: true,
            ..Presence::default()
        }))
    );
    assert!(drain(&mut core).contains(&NodeOutput::PauseFiles { room: room() }));
    core.handle_timeout(later + PRESENCE_INTERVAL * 2);
    assert!(
        publishes(&drain(&mut core)).is_empty(),
        "no beats after leaving"
    );
    assert_eq!(
        core.leave(later, room()),
        None,
        "leaving twice says nothing"
    );
}

#[test]
fn sharing_a_screen_is_announced_at_once() {
    let now = epoch();
    let mut core = in_a_room(now);
    core.share_screen(room(), true);
    let Say::Presence(usual) = beat() else {
        unreachable!("a beat is a presence")
    };
    let sharing = Say::Presence(Presence {
        sharing_screen: true,
        ..usual
    });
    assert_eq!(publishes(&drain(&mut core)), vec![&sharing]);
    core.share_screen(room(), true);
    assert!(
        publishes(&drain(&mut core)).is_empty(),
        "no change, no message"
    );
    assert!(core.participants(room())[0].sharing_screen);
}

#[test]
fn presence_lists_members_and_links_to_an_arrival_at_once() {
    let now = epoch();
    let mut core = in_a_room(now);
    linked_to_member(&mut core, now);
    let listed: Vec<(u32, bool, Option<Role>)> = core
        .participants(room())
        .iter()
        .map(|p| (p.peer, p.is_self, p.role))
        .collect();
    assert_eq!(
        listed,
        vec![
            (LOCAL, true, Some(Role::Listener)),
            (MEMBER, false, Some(Role::Listener))
        ]
    );
    // Silent for the presence timeout: gone.
    let later = now + PRESENCE_TIMEOUT + Duration::from_secs(2);
    core.handle_timeout(later);
    drain(&mut core);
    assert_eq!(core.participants(room()).len(), 1);
}

#[test]
fn a_member_links_to_a_publisher_that_subscribes_to_nobody_whatever_their_ids() {
    let now = epoch();
    let mut core = in_a_room(now);
    // Two speakers with lower ids than LOCAL's: a meeting member and a headless publisher.
    let (meeting, headless) = (2, 3);
    for peer in [meeting, headless] {
        let acct = account(peer as u8);
        core.handle_peer_binding(
            now,
            UNIX_MS / 1000,
            peer,
            Some((acct, UNIX_MS / 1000 + 3600)),
        );
        core.handle_access(now, room(), acct, facts(Some(Role::Speaker)));
    }
    hear(&mut core, now, 100, meeting, beat());
    let headless_beat = Say::Presence(Presence {
        publish_only: true,
        ..Presence::default()
    });
    hear(&mut core, now, 101, headless, headless_beat);
    let subscribed: Vec<u32> = drain(&mut core)
        .iter()
        .filter_map(|o| match o {
            NodeOutput::Session(Output::Subscribe { peer, .. }) => Some(*peer),
            _ => None,
        })
        .collect();
    // The meeting member opens the link itself (its id is lower); the headless one never would.
    assert_eq!(subscribed, vec![headless]);
}

#[test]
fn a_publisher_that_subscribes_to_nobody_says_so_in_its_presence() {
    let now = epoch();
    let mut core = NodeCore::new(enforcing(), LOCAL, Some(account(LOCAL as u8)), now);
    core.handle_access(
        now,
        room(),
        account(LOCAL as u8),
        facts(Some(Role::Speaker)),
    );
    core.join(
        now,
        UNIX_MS,
        room(),
        Participation::Publish(vec![MediaKind::Audio, MediaKind::Video]),
    );
    let outputs = drain(&mut core);
    let said = publishes(&outputs);
    assert!(
        said.iter().any(|say| matches!(
            say,
            Say::Presence(Presence {
                publish_only: true,
                leaving: false,
                ..
            })
        )),
        "{said:?}"
    );
}

#[test]
fn a_display_name_is_told_at_once_shown_for_members_and_an_address_refused() {
    let now = epoch();
    let mut core = in_a_room(now);
    let address = account(MEMBER as u8).to_string();
    assert!(matches!(
        core.set_display_name(Some(address)),
        Err(CommandError::DisplayName(_))
    ));
    core.set_display_name(Some("Ada".into())).unwrap();
    let said = publishes(&drain(&mut core))
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert!(
        matches!(said.as_slice(), [Say::Presence(Presence { display_name: Some(name), .. })] if name == "Ada"),
        "{said:?}"
    );
    assert_eq!(
        core.participants(room())[0].display_name.as_deref(),
        Some("Ada")
    );

    let named = Say::Presence(Presence {
        display_name: Some("Grace".into()),
        ..Presence::default()
    });
    hear(&mut core, now, 1, MEMBER, named);
    drain(&mut core);
    let member = core
        .participants(room())
        .into_iter()
        .find(|p| p.peer == MEMBER)
        .unwrap();
    assert_eq!(member.display_name.as_deref(), Some("Grace"));
}

#[test]
fn taking_part_another_way_tells_members_to_link_afresh() {
    let now = epoch();
    let mut core = in_a_room(now);
    let Say::Presence(usual) = beat() else {
        unreachable!("a beat is a presence")
    };
    // Taken off stage: the node listens now, its links made for speaking closed. Its next
    // beat, at once, says so.
    core.join(
        now,
        UNIX_MS,
        room(),
        Participation::Receive(vec![MediaKind::Audio]),
    );
    let relinked = Say::Presence(Presence {
        links_epoch: 1,
        ..usual.clone()
    });
    assert_eq!(publishes(&drain(&mut core)), vec![&relinked]);
    // The same way again changes nothing; another way counts once more.
    core.join(
        now,
        UNIX_MS,
        room(),
        Participation::Receive(vec![MediaKind::Audio]),
    );
    assert!(publishes(&drain(&mut core)).is_empty());
    core.join(now, UNIX_MS, room(), meet());
    let again = Say::Presence(Presence {
        links_epoch: 2,
        ..usual
    });
    assert_eq!(publishes(&drain(&mut core)), vec![&again]);
}
