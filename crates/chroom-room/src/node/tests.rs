use std::time::{Duration, Instant};

use chroom_overlay::{Candidate, Message};
use chroom_proto::{ErrorCode, FileOffer};
use chroom_types::{
    Account, Action, FileHash, LinkId, MediaKind, Membership, Moderation, Role, RoomKind, RoomName,
};

use super::*;
use crate::access::{AccessFacts, AccessPolicy};
use crate::gossip::{GossipId, GossipVerdict, MAX_CLOCK_SKEW};
use crate::roster::PRESENCE_TIMEOUT;

/// The origin of virtual time (`Instant` has no constructor but `now()`): one per test
/// process, so an instant maps to the wall clock of [`unix_ms_at`].
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Wall-clock milliseconds at the epoch, for message freshness.
const UNIX_MS: u64 = 1_800_000_000_000;

/// The wall clock at virtual time `now`.
fn unix_ms_at(now: Instant) -> u64 {
    UNIX_MS + now.saturating_duration_since(epoch()).as_millis() as u64
}

const LOCAL: u32 = 5;
const HOST: u32 = 7;
const MEMBER: u32 = 8;
const STRANGER: u32 = 9;

fn name() -> RoomName {
    "lobby".parse().unwrap()
}

fn room() -> RoomId {
    name().id()
}

fn account(n: u8) -> Account {
    Account::from_bytes([n; 20])
}

fn meet() -> Participation {
    Participation::Meet {
        publish: vec![MediaKind::Audio, MediaKind::Video],
        receive: vec![MediaKind::Audio, MediaKind::Video],
    }
}

fn drain(core: &mut NodeCore<u32>) -> Vec<NodeOutput<u32>> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

fn facts(role: Option<Role>) -> AccessFacts {
    AccessFacts::Known {
        kind: RoomKind::Conference,
        membership: role.map_or(Membership::NotMember, Membership::Member),
        relayer: false,
        policy: chroom_types::RoomPolicy::default(),
    }
}

fn enforcing() -> SessionConfig {
    SessionConfig {
        access: AccessPolicy::Enforce,
        ..SessionConfig::default()
    }
}

/// A node (LOCAL, a listener) present in the conference, with a host (HOST) and a member
/// (MEMBER) whose bindings and roles it knows, and a stranger (STRANGER) who is no member.
fn in_a_room(now: Instant) -> NodeCore<u32> {
    in_a_room_as(now, LOCAL)
}

/// Like [`in_a_room`], as the node `local` (LOCAL or MEMBER, both listeners).
fn in_a_room_as(now: Instant, local: u32) -> NodeCore<u32> {
    let mut core = NodeCore::new(enforcing(), local, Some(account(local as u8)), now);
    for (peer, role) in [
        (LOCAL, Some(Role::Listener)),
        (HOST, Some(Role::Host)),
        (MEMBER, Some(Role::Listener)),
        (STRANGER, None),
    ] {
        let acct = account(peer as u8);
        if peer != local {
            core.handle_peer_binding(
                now,
                UNIX_MS / 1000,
                peer,
                Some((acct, UNIX_MS / 1000 + 3600)),
            );
        }
        core.handle_access(now, room(), acct, facts(role));
    }
    core.join(now, UNIX_MS, room(), meet());
    drain(&mut core);
    core
}

thread_local! {
    /// Each author's sealing keys, as its node would hold them (one test per thread).
    static AUTHORS: std::cell::RefCell<HashMap<u32, Sealing<u32>>> = Default::default();
}

/// `say` as `author`'s node publishes it: content sealed with its key, which `core` is
/// handed first (as if it had asked).
fn sealed_by(core: &mut NodeCore<u32>, now: Instant, author: u32, say: Say<u32>) -> Say<u32> {
    let Ok(body) = say.into_content() else {
        unreachable!("only content is sealed")
    };
    let (sealed, key) = AUTHORS.with_borrow_mut(|authors| {
        let sealing = authors.entry(author).or_default();
        (
            sealing.seal(room(), &body).unwrap(),
            sealing.own_key(room()),
        )
    });
    if !core.sealing.knows(room(), author, key.key_id) {
        core.handle_room_key(now, author, room(), Ok(key));
    }
    Say::Sealed(sealed)
}

/// Has `author` say `say` in the room, as a message `id` (sealed, if content).
fn hear(core: &mut NodeCore<u32>, now: Instant, id: u64, author: u32, say: Say<u32>) {
    let say = if say.is_content() {
        sealed_by(core, now, author, say)
    } else {
        say
    };
    hear_as_sent(core, now, id, author, say);
}

/// Has `author` say `say` in the room, as a message `id`, exactly as given.
fn hear_as_sent(core: &mut NodeCore<u32>, now: Instant, id: u64, author: u32, say: Say<u32>) {
    let heard = Heard {
        room: room(),
        sent_at_unix_ms: unix_ms_at(now),
        say,
    };
    let acct = Some(account(author as u8));
    let at = unix_ms_at(now);
    core.handle_room_message(now, at, GossipId(id), room(), author, acct, heard);
}

/// A beat of a member that joined at [`UNIX_MS`] and does not host.
fn beat() -> Say<u32> {
    Say::Presence(Presence {
        joined_at_unix_ms: UNIX_MS,
        beat_interval_ms: PRESENCE_INTERVAL.as_millis() as u32,
        ..Presence::default()
    })
}

fn verdict_of(outputs: &[NodeOutput<u32>], id: u64) -> Option<&GossipVerdict> {
    outputs.iter().find_map(|o| match o {
        NodeOutput::Gossip { id: got, verdict } if *got == GossipId(id) => Some(verdict),
        _ => None,
    })
}

fn publishes(outputs: &[NodeOutput<u32>]) -> Vec<&Say<u32>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            NodeOutput::Publish { say, .. } => Some(say),
            _ => None,
        })
        .collect()
}

fn silences(outputs: &[NodeOutput<u32>]) -> Vec<(LinkId, bool)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            NodeOutput::Silence { link, silenced } => Some((*link, *silenced)),
            _ => None,
        })
        .collect()
}

fn refusal_code(outputs: &[NodeOutput<u32>], request: InboundId) -> Option<ErrorCode> {
    outputs.iter().find_map(|o| match o {
        NodeOutput::Session(Output::Refuse {
            request: r, error, ..
        }) if *r == request => Some(error.code),
        _ => None,
    })
}

/// MEMBER linked to LOCAL in the conference (it has the higher id, so LOCAL opened the link).
fn linked_to_member(core: &mut NodeCore<u32>, now: Instant) -> LinkId {
    hear(core, now, 100, MEMBER, beat());
    let outputs = drain(core);
    let id = outputs
        .iter()
        .find_map(|o| match o {
            NodeOutput::Session(Output::Subscribe { id, peer, .. }) if *peer == MEMBER => Some(*id),
            _ => None,
        })
        .expect("an arriving member is linked at once");
    let link = LinkId(42);
    core.handle_subscribe_result(now, id, Ok(link));
    drain(core);
    link
}

#[test]
fn a_person_joining_announces_itself_and_resumes_files_a_relayer_does_not() {
    let now = epoch();
    let mut core = NodeCore::new(SessionConfig::default(), LOCAL, None, now);
    core.join(now, UNIX_MS, room(), meet());
    let outputs = drain(&mut core);
    assert_eq!(publishes(&outputs), vec![&beat()]);
    assert!(outputs.contains(&NodeOutput::ResumeFiles { room: room() }));
    assert!(core.is_present(room()));

    let other: RoomId = "relayed".parse::<RoomName>().unwrap().id();
    core.join(now, UNIX_MS, other, Participation::Relay { capacity: 4 });
    let outputs = drain(&mut core);
    assert!(publishes(&outputs).is_empty());
    assert!(!core.is_present(other));
}

#[test]
fn room_messages_are_checked_before_the_registry_is_asked() {
    let now = epoch();
    let mut core = in_a_room(now);
    // Names another room than the topic it came on.
    let elsewhere = Heard {
        room: "elsewhere".parse::<RoomName>().unwrap().id(),
        sent_at_unix_ms: UNIX_MS,
        say: Say::Chat { text: "hi".into() },
    };
    core.handle_room_message(now, UNIX_MS, GossipId(1), room(), MEMBER, None, elsewhere);
    // Sent too long ago: a replay.
    let stale = Heard {
        room: room(),
        sent_at_unix_ms: UNIX_MS - MAX_CLOCK_SKEW.as_millis() as u64 - 1,
        say: Say::Chat { text: "old".into() },
    };
    let acct = Some(account(MEMBER as u8));
    core.handle_room_message(now, UNIX_MS, GossipId(2), room(), MEMBER, acct, stale);
    core.handle_bad_room_message(GossipId(3), "does not decode");
    let outputs = drain(&mut core);
    assert!(matches!(
        verdict_of(&outputs, 1),
        Some(GossipVerdict::Reject(_))
    ));
    assert!(matches!(
        verdict_of(&outputs, 2),
        Some(GossipVerdict::Ignore(_))
    ));
    assert!(matches!(
        verdict_of(&outputs, 3),
        Some(GossipVerdict::Reject(_))
    ));
    assert!(!outputs.iter().any(|o| matches!(o, NodeOutput::Chat(_))));
    assert_eq!(core.counters().gossip_rejected, 2);
}

#[test]
fn chat_from_a_member_is_delivered_with_its_send_time_and_a_strangers_is_rejected() {
    let now = epoch();
    let mut core = in_a_room(now);
    hear(
        &mut core,
        now,
        1,
        MEMBER,
        Say::Chat {
            text: "hello".into(),
        },
    );
    hear(
        &mut core,
        now,
        2,
        STRANGER,
        Say::Chat {
            text: "spam".into(),
        },
    );
    let outputs = drain(&mut core);
    assert_eq!(verdict_of(&outputs, 1), Some(&GossipVerdict::Deliver));
    assert!(matches!(
        verdict_of(&outputs, 2),
        Some(GossipVerdict::Reject(_))
    ));
    let lines: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            NodeOutput::Chat(line) => Some(line.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        lines,
        vec![ChatLine {
            question: false,
            room: room(),
            author: MEMBER,
            account: Some(account(MEMBER as u8)),
            sent_at_unix_ms: UNIX_MS,
            text: "hello".into(),
        }]
    );
    assert_eq!(core.counters().gossip_delivered, 1);
}

#[test]
fn a_message_whose_authors_rights_are_unknown_waits_for_the_registry() {
    let now = epoch();
    let mut core = in_a_room(now);
    let newcomer = 11;
    hear(&mut core, now, 1, newcomer, Say::Chat { text: "hi".into() });
    let outputs = drain(&mut core);
    assert_eq!(verdict_of(&outputs, 1), None);
    assert!(outputs.contains(&NodeOutput::Session(Output::LookupAccess {
        room: room(),
        account: account(newcomer as u8)
    })));
    core.handle_access(
        now,
        room(),
        account(newcomer as u8),
        facts(Some(Role::Listener)),
    );
    let outputs = drain(&mut core);
    assert_eq!(verdict_of(&outputs, 1), Some(&GossipVerdict::Deliver));
    assert!(outputs.iter().any(|o| matches!(o, NodeOutput::Chat(_))));
}

#[test]
fn files_are_served_to_members_present_only() {
    let now = epoch();
    let mut core = in_a_room(now);
    linked_to_member(&mut core, now);
    core.handle_file_request(now, InboundId(1), MEMBER, room());
    core.handle_file_request(now, InboundId(2), STRANGER, room());
    let outputs = drain(&mut core);
    assert!(outputs.contains(&NodeOutput::ServeFile {
        request: InboundId(1)
    }));
    assert_eq!(
        refusal_code(&outputs, InboundId(2)),
        Some(ErrorCode::NotInRoom)
    );

    let offer = FileOffer {
        hash: FileHash::from_bytes([1; 32]),
        name: "notes.txt".into(),
        size: 10,
        manifest_hash: [2; 32],
    };
    hear(&mut core, now, 1, MEMBER, Say::FileOffer(offer.clone()));
    let fetch = drain(&mut core)
        .into_iter()
        .find(|o| matches!(o, NodeOutput::FetchFile { .. }));
    assert_eq!(
        fetch,
        Some(NodeOutput::FetchFile {
            room: room(),
            from: MEMBER,
            account: Some(account(MEMBER as u8)),
            offered_at_unix_ms: UNIX_MS,
            offer: offer.clone(),
        })
    );
    assert!(core.offer_file(room(), offer.clone()).is_ok());
    let _ = core.leave(now, room());
    assert!(core.offer_file(room(), offer).is_err());
}

#[test]
fn signing_in_as_another_account_waits_until_the_node_is_in_no_room() {
    let now = epoch();
    let mut core = in_a_room(now);
    assert_eq!(
        core.check_sign_in(account(99)),
        Err(CommandError::AccountInUse)
    );
    assert_eq!(
        core.check_sign_in(account(LOCAL as u8)),
        Ok(()),
        "a renewal"
    );
    let _ = core.leave(now, room());
    assert_eq!(core.check_sign_in(account(99)), Ok(()));
}

#[test]
fn refusals_name_the_account_and_the_room() {
    let room = name();
    let banned = AccessFacts::Known {
        kind: RoomKind::Conference,
        membership: Membership::Banned,
        relayer: false,
        policy: chroom_types::RoomPolicy::default(),
    };
    let text = |facts| {
        own_access(&room, account(1), facts, Action::Listen)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        text(facts(None)),
        format!("{} is not a member of room \"lobby\"", account(1))
    );
    assert_eq!(
        text(banned),
        format!("{} is banned from room \"lobby\"", account(1))
    );
    assert_eq!(
        text(AccessFacts::UnknownRoom),
        "there is no room \"lobby\" in the registry"
    );
}

#[test]
fn a_page_takes_part_by_room_kind_role_and_going_live() {
    let access = |kind, role| OwnAccess {
        kind: Some(kind),
        role: Some(role),
    };
    let conference = page_part(access(RoomKind::Conference, Role::Listener), false, false).unwrap();
    assert_eq!(conference.participation, meet());
    assert!(conference.may_publish && !conference.may_go_live);

    let listener = page_part(access(RoomKind::AudioSpace, Role::Listener), false, false).unwrap();
    assert_eq!(
        listener.participation,
        Participation::Receive(vec![MediaKind::Audio])
    );
    assert!(!listener.may_publish);
    let speaker = page_part(access(RoomKind::AudioSpace, Role::Speaker), false, false).unwrap();
    assert!(
        matches!(speaker.participation, Participation::Meet { ref publish, .. } if publish == &[MediaKind::Audio])
    );

    let viewer = page_part(access(RoomKind::Broadcast, Role::Listener), false, false).unwrap();
    assert!(matches!(viewer.participation, Participation::View(_)));
    assert!(!viewer.may_publish && !viewer.may_go_live);
    assert_eq!(
        page_part(access(RoomKind::Broadcast, Role::Listener), true, false),
        Err(CannotGoLive)
    );
    let presenter = page_part(access(RoomKind::Broadcast, Role::Speaker), false, false).unwrap();
    assert!(
        presenter.may_go_live && !presenter.may_publish,
        "watching until live"
    );
    let live = page_part(access(RoomKind::Broadcast, Role::Speaker), true, false).unwrap();
    assert_eq!(
        live.participation,
        Participation::Broadcast {
            kinds: vec![MediaKind::Audio, MediaKind::Video],
            capacity: PAGE_BROADCAST_CAPACITY
        }
    );
    assert!(live.may_publish);
    let guest = page_part(access(RoomKind::Broadcast, Role::Listener), false, true).unwrap();
    assert_eq!(
        guest.participation,
        Participation::Guest(vec![MediaKind::Audio, MediaKind::Video]),
        "a viewer on stage joins the broadcaster's studio"
    );
    assert!(guest.may_publish && !guest.may_go_live);
    assert_eq!(
        page_part(access(RoomKind::Broadcast, Role::Listener), true, true),
        Err(CannotGoLive),
        "the stage never makes a second root"
    );
    let on_stage = page_part(access(RoomKind::AudioSpace, Role::Listener), false, true).unwrap();
    assert!(on_stage.may_publish);
    assert!(matches!(on_stage.participation, Participation::Meet { .. }));
    assert_eq!(
        page_part(access(RoomKind::Conference, Role::Owner), true, false),
        Err(CannotGoLive),
        "a conference has no broadcast"
    );
}

#[test]
fn an_expired_binding_loses_its_rights() {
    let now = epoch();
    let mut core = NodeCore::new(enforcing(), LOCAL, Some(account(1)), now);
    core.handle_access(now, room(), account(2), facts(Some(Role::Listener)));
    core.join(now, UNIX_MS, room(), meet());
    core.handle_peer_binding(
        now,
        UNIX_MS / 1000,
        MEMBER,
        Some((account(2), UNIX_MS / 1000 + 10)),
    );
    drain(&mut core);
    assert_eq!(core.peers_with_accounts(), 1);
    assert!(core.poll_timeout().unwrap() <= now + Duration::from_secs(10));
    core.handle_timeout(now + Duration::from_secs(10));
    drain(&mut core);
    assert_eq!(core.peers_with_accounts(), 0);
    core.handle_subscribe_request(now + Duration::from_secs(10), InboundId(1), MEMBER, room());
    assert_eq!(
        refusal_code(&drain(&mut core), InboundId(1)),
        Some(ErrorCode::NotAuthorized)
    );
    assert_eq!(core.counters().requests_refused, 1);
}

/// Issue 12, hole 9: the account of every peer ever met was kept until its binding expired.
#[test]
fn a_disconnected_peer_is_forgotten_unless_a_link_needs_it() {
    let now = epoch();
    let mut core = in_a_room(now);
    let link = linked_to_member(&mut core, now);
    let unix = UNIX_MS / 1000;
    core.handle_peer_binding(now, unix, 7, Some((account(7), unix + 600)));
    drain(&mut core);
    let proven = core.peers_with_accounts();
    core.handle_peer_disconnected(now, 7);
    core.handle_peer_disconnected(now, MEMBER);
    let outputs = drain(&mut core);
    assert_eq!(
        core.peers_with_accounts(),
        proven - 1,
        "the linked member stays proven"
    );
    assert!(!outputs.contains(&NodeOutput::Session(Output::CloseLink { link })));
}

/// Issue 12, hole 5: file requests were checked against the roster only, so a banned member
/// fetched files until its presence timed out. The registry's verdict now decides each one.
#[test]
fn a_ban_stops_file_serving_at_once() {
    let now = epoch();
    let mut core = in_a_room(now);
    linked_to_member(&mut core, now);
    core.handle_file_request(now, InboundId(1), MEMBER, room());
    assert!(drain(&mut core).contains(&NodeOutput::ServeFile {
        request: InboundId(1)
    }));
    let banned = AccessFacts::Known {
        kind: RoomKind::Conference,
        membership: Membership::Banned,
        relayer: false,
        policy: chroom_types::RoomPolicy::default(),
    };
    core.handle_access(now, room(), account(MEMBER as u8), banned);
    drain(&mut core);
    core.handle_file_request(now, InboundId(2), MEMBER, room());
    let outputs = drain(&mut core);
    assert_eq!(
        refusal_code(&outputs, InboundId(2)),
        Some(ErrorCode::NotAuthorized)
    );
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, NodeOutput::ServeFile { .. }))
    );
}

#[test]
fn relayed_paths_go_to_members_within_the_budget() {
    let now = epoch();
    let mut core = in_a_room(now);
    core.handle_relay_request(now, InboundId(1), MEMBER, room());
    assert_eq!(
        refusal_code(&drain(&mut core), InboundId(1)),
        Some(ErrorCode::NotFound),
        "a node that serves no relayed paths says so"
    );

    // Room for one allocation of 3000 kbit/s.
    core.serve_relayed_paths(RelayBudget {
        upload_kbps: 5000,
        stream_kbps: 1500,
        allocation_kbps: 3000,
    });
    core.handle_relay_request(now, InboundId(2), MEMBER, room());
    core.handle_relay_request(now, InboundId(3), STRANGER, room());
    core.handle_relay_request(now, InboundId(4), HOST, room());
    let outputs = drain(&mut core);
    assert!(outputs.contains(&NodeOutput::GrantRelay {
        request: InboundId(2),
        peer: MEMBER,
        kbps: 3000
    }));
    assert_eq!(
        refusal_code(&outputs, InboundId(3)),
        Some(ErrorCode::NotAuthorized)
    );
    assert_eq!(
        refusal_code(&outputs, InboundId(4)),
        Some(ErrorCode::Overloaded),
        "over budget"
    );
    core.handle_relay_ended(MEMBER);
    core.handle_relay_request(now, InboundId(5), HOST, room());
    assert!(drain(&mut core).contains(&NodeOutput::GrantRelay {
        request: InboundId(5),
        peer: HOST,
        kbps: 3000
    }));
}

#[test]
fn a_node_behind_a_per_destination_nat_seeks_a_relay_naming_its_room() {
    let now = epoch();
    let seeks = |outputs: &[NodeOutput<u32>]| {
        outputs
            .iter()
            .filter(|o| matches!(o, NodeOutput::SeekRelay { .. }))
            .count()
    };
    let mut core = NodeCore::new(enforcing(), LOCAL, Some(account(LOCAL as u8)), now);
    core.handle_nat(now, true);
    assert_eq!(seeks(&drain(&mut core)), 0, "in no room yet");
    core.join(now, UNIX_MS, room(), meet());
    assert!(drain(&mut core).contains(&NodeOutput::SeekRelay { room: room() }));
    core.handle_relay_found(now, false);
    core.handle_timeout(now + Duration::from_secs(5));
    assert_eq!(seeks(&drain(&mut core)), 0, "waits before asking again");
    core.handle_timeout(now + Duration::from_secs(11));
    assert_eq!(seeks(&drain(&mut core)), 1);
    core.handle_relay_found(now + Duration::from_secs(11), true);
    core.handle_timeout(now + Duration::from_secs(30));
    assert_eq!(seeks(&drain(&mut core)), 0, "found");
}

mod docs;
mod moderation;
mod orchestration;
mod presence;
mod registry;
mod sealing;
mod tree;

#[test]
fn a_beat_repeating_what_is_known_changes_no_view_and_a_grace_period_ending_does() {
    let now = epoch();
    let mut core = in_a_room(now);
    hear(&mut core, now, 1, MEMBER, beat());
    drain(&mut core);
    let arrived = core.view_version();
    assert!(core.participants(room()).iter().any(|p| p.peer == MEMBER));

    // The same visit, nothing new: the assignments are not computed again.
    let later = now + Duration::from_secs(1);
    hear(&mut core, later, 2, MEMBER, beat());
    drain(&mut core);
    assert_eq!(core.view_version(), arrived);

    // The member's grace period ends: who may host changed with no new fact.
    let settled = now + crate::orchestrator::HOST_GRACE;
    assert!(core.poll_timeout().is_some_and(|at| at <= settled));
    core.handle_timeout(settled);
    assert!(core.view_version() > arrived);

    // A beat that says something new (a display name) is shown.
    let named = core.view_version();
    let say = Say::Presence(Presence {
        joined_at_unix_ms: UNIX_MS,
        beat_interval_ms: PRESENCE_INTERVAL.as_millis() as u32,
        display_name: Some("Ada".into()),
        ..Presence::default()
    });
    hear(&mut core, settled, 3, MEMBER, say);
    drain(&mut core);
    assert!(core.view_version() > named);
}
