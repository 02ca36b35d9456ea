//! The orchestrator in the node: acting hosts by the room's policy, their powers, and how
//! fast a silent host is replaced.

use super::*;
use crate::orchestrator::{CueRefused, HOST_GRACE};
use crate::roster::HOST_PRESENCE_INTERVAL;
use chroom_types::{Cue, HostFallback, RoomPolicy};

fn first_joiner() -> AccessFacts {
    let AccessFacts::Known {
        kind,
        membership,
        relayer,
        ..
    } = facts(Some(Role::Listener))
    else {
        unreachable!("known facts")
    };
    AccessFacts::Known {
        kind,
        membership,
        relayer,
        policy: RoomPolicy {
            host_fallback: HostFallback::FirstJoiner,
            ..RoomPolicy::default()
        },
    }
}

/// The usual room under a first-joiner policy, where MEMBER joined before LOCAL and the
/// on-chain HOST beats as hosts do.
fn with_a_fallback(now: Instant) -> NodeCore<u32> {
    let mut core = in_a_room(now);
    core.handle_access(now, room(), account(LOCAL as u8), first_joiner());
    let beat_as = |joined_at_unix_ms, interval: Duration| {
        Say::Presence(Presence {
            joined_at_unix_ms,
            beat_interval_ms: interval.as_millis() as u32,
            ..Presence::default()
        })
    };
    hear(
        &mut core,
        now,
        1,
        HOST,
        beat_as(UNIX_MS - 9_000, HOST_PRESENCE_INTERVAL),
    );
    hear(
        &mut core,
        now,
        2,
        MEMBER,
        beat_as(UNIX_MS - 5_000, PRESENCE_INTERVAL),
    );
    drain(&mut core);
    core
}

#[test]
fn a_silent_host_is_replaced_by_the_policys_acting_host_within_seconds() {
    let now = epoch();
    let mut core = with_a_fallback(now);
    let settled = now + HOST_GRACE;
    core.handle_timeout(settled);
    drain(&mut core);
    let hosts = core.assignments(room()).unwrap();
    assert_eq!(hosts.hosts, [HOST]);
    assert!(hosts.hosts_on_chain);

    // HOST's node dies: three of its one-second beats missed, and the first joiner of the
    // rest hosts.
    let later = now + HOST_PRESENCE_INTERVAL * 3 + Duration::from_millis(100);
    core.handle_timeout(later);
    drain(&mut core);
    let hosts = core.assignments(room()).unwrap();
    assert_eq!(hosts.hosts, [MEMBER]);
    assert!(!hosts.hosts_on_chain);
    assert!(core.is_present(room()));
}

#[test]
fn an_acting_hosts_decision_is_carried_out_without_an_on_chain_role_and_a_listeners_is_not() {
    let now = epoch();
    let mut core = with_a_fallback(now);
    // HOST leaves: MEMBER, the first joiner, acts as host.
    let goodbye = Say::Presence(Presence {
        leaving: true,
        ..Presence::default()
    });
    hear(&mut core, now, 3, HOST, goodbye);
    drain(&mut core);
    let mute = |target| Say::Moderate {
        target,
        action: Moderation::Mute,
    };
    hear(&mut core, now, 4, MEMBER, mute(LOCAL));
    let outputs = drain(&mut core);
    assert_eq!(verdict_of(&outputs, 4), Some(&GossipVerdict::Deliver));
    assert!(core.participants(room())[0].muted_by_host);

    // LOCAL is a listener and no acting host: its own decision is refused here, and its
    // message would be refused by the registry.
    assert_eq!(
        core.moderate(now, room(), MEMBER, Moderation::Mute),
        Err(CommandError::NotHost)
    );
    hear(&mut core, now, 5, STRANGER, mute(MEMBER));
    assert!(matches!(
        verdict_of(&drain(&mut core), 5),
        Some(GossipVerdict::Reject(_))
    ));
}

#[test]
fn this_node_beats_every_second_while_it_hosts() {
    let now = epoch();
    let mut core = with_a_fallback(now);
    let goodbye = Say::Presence(Presence {
        leaving: true,
        ..Presence::default()
    });
    hear(&mut core, now, 3, HOST, goodbye.clone());
    hear(&mut core, now, 4, MEMBER, goodbye);
    drain(&mut core);
    assert_eq!(core.assignments(room()).unwrap().hosts, [LOCAL]);
    let tick = now + HOST_PRESENCE_INTERVAL;
    core.handle_timeout(tick);
    let said = publishes(&drain(&mut core))
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert!(
        matches!(
            said.as_slice(),
            [Say::Presence(Presence {
                beat_interval_ms: 1000,
                ..
            })]
        ),
        "{said:?}"
    );
}

#[test]
fn hands_queue_alike_and_a_forged_stage_grant_is_rejected() {
    let now = epoch();
    let mut core = with_a_fallback(now);
    let cue = |cue, at_unix_ms| Say::Cue { cue, at_unix_ms };
    hear(&mut core, now, 3, MEMBER, cue(Cue::RaiseHand, UNIX_MS - 10));
    let raised = core.cue(now, UNIX_MS, room(), Cue::RaiseHand).unwrap();
    assert_eq!(raised, cue(Cue::RaiseHand, UNIX_MS));
    drain(&mut core);
    assert_eq!(core.assignments(room()).unwrap().hands, [MEMBER, LOCAL]);

    // A listener inviting another on stage: its node refuses, and so does every other.
    assert_eq!(
        core.cue(now, UNIX_MS, room(), Cue::InviteToStage { who: MEMBER }),
        Err(CommandError::Cue(CueRefused::NotHost))
    );
    hear(
        &mut core,
        now,
        4,
        STRANGER,
        cue(Cue::InviteToStage { who: LOCAL }, UNIX_MS),
    );
    assert!(matches!(
        verdict_of(&drain(&mut core), 4),
        Some(GossipVerdict::Ignore(_))
    ));
    hear(
        &mut core,
        now,
        5,
        MEMBER,
        cue(Cue::InviteToStage { who: LOCAL }, UNIX_MS),
    );
    assert!(matches!(
        verdict_of(&drain(&mut core), 5),
        Some(GossipVerdict::Reject(_))
    ));
    assert!(core.assignments(room()).unwrap().stage.is_empty());

    // The host invites: on stage, the hand answered.
    hear(
        &mut core,
        now,
        6,
        HOST,
        cue(Cue::InviteToStage { who: LOCAL }, UNIX_MS + 1),
    );
    drain(&mut core);
    let assigned = core.assignments(room()).unwrap();
    assert_eq!(assigned.stage, [LOCAL]);
    assert_eq!(assigned.hands, [MEMBER]);
    assert!(core.participants(room())[0].on_stage);

    // A member arriving later hears this node's cues in force again.
    core.handle_room_peer_joined(room());
    let told = publishes(&drain(&mut core))
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert!(told.contains(&cue(Cue::RaiseHand, UNIX_MS)), "{told:?}");
}

#[test]
fn a_flood_of_questions_is_taken_three_at_once_then_one_every_twenty_seconds() {
    let now = epoch();
    let mut core = in_a_room(now);
    let question = |n: u64| Say::Question {
        text: format!("question {n}"),
    };
    let mut delivered = 0;
    for id in 1..=5 {
        hear(&mut core, now, id, MEMBER, question(id));
        let outputs = drain(&mut core);
        delivered += outputs
            .iter()
            .filter(|o| matches!(o, NodeOutput::Chat(ChatLine { question: true, .. })))
            .count();
        if id > 3 {
            assert!(
                matches!(verdict_of(&outputs, id), Some(GossipVerdict::Ignore(_))),
                "question {id}"
            );
        }
    }
    assert_eq!(delivered, 3);
    let later = now + Duration::from_secs(20);
    hear(&mut core, later, 6, MEMBER, question(6));
    assert_eq!(
        verdict_of(&drain(&mut core), 6),
        Some(&GossipVerdict::Deliver)
    );

    // This node's own user is held to the same rate before anything is sent.
    for _ in 0..3 {
        core.ask(now, room(), "ours?".into()).unwrap();
    }
    assert_eq!(
        core.ask(now, room(), "ours?".into()),
        Err(CommandError::AskingTooOften)
    );
    assert_eq!(
        core.ask(later, room(), " ".into()),
        Err(CommandError::BadQuestion)
    );
}
