use proptest::prelude::*;

use super::*;

/// The origin of virtual time (`Instant` has no constructor but `now()`).
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

fn person(role: Option<Role>, joined_at_ms: u64) -> MemberFacts {
    MemberFacts {
        account: None,
        role,
        banned: false,
        joined_at_ms,
        person: true,
    }
}

const LISTENER: Option<Role> = Some(Role::Listener);
const SPEAKER: Option<Role> = Some(Role::Speaker);
const HOST: Option<Role> = Some(Role::Host);

/// A room under `policy` with `members` (id, role, join time) present since `at`.
fn room(policy: RoomPolicy, at: Instant, members: &[(u8, Option<Role>, u64)]) -> Orchestration<u8> {
    let mut room = Orchestration::new(policy);
    for (peer, role, joined) in members {
        room.member_present(at, *peer, person(*role, *joined));
    }
    room
}

fn fallback(host_fallback: HostFallback) -> RoomPolicy {
    RoomPolicy {
        host_fallback,
        ..RoomPolicy::default()
    }
}

#[test]
fn on_chain_hosts_host_together_and_the_fallback_only_fills_their_absence() {
    let start = epoch();
    let later = start + HOST_GRACE;
    for policy in [
        HostFallback::None,
        HostFallback::FirstJoiner,
        HostFallback::HighestRole,
    ] {
        let room = room(
            fallback(policy),
            start,
            &[(1, LISTENER, 10), (2, HOST, 30), (3, HOST, 20)],
        );
        let hosts = room.assignments(later);
        assert_eq!(
            hosts.hosts,
            [3, 2],
            "{policy:?}: co-hosts, first joined first"
        );
        assert!(hosts.hosts_on_chain);
    }
}

#[test]
fn each_fallback_policy_picks_its_acting_host() {
    let start = epoch();
    let later = start + HOST_GRACE;
    let members = [
        (1, LISTENER, 30),
        (2, SPEAKER, 40),
        (3, LISTENER, 20),
        (4, SPEAKER, 40),
    ];
    let table = [
        (HostFallback::None, None),
        (HostFallback::FirstJoiner, Some(3)),
        // The highest role, then the first joined, then the lowest id.
        (HostFallback::HighestRole, Some(2)),
    ];
    for (policy, acting) in table {
        let room = room(fallback(policy), start, &members);
        let assigned = room.assignments(later);
        assert_eq!(assigned.hosts.first().copied(), acting, "{policy:?}");
        assert!(!assigned.hosts_on_chain);
        assert_eq!(assigned.hosts.len(), usize::from(acting.is_some()));
    }
}

#[test]
fn a_ban_always_wins_and_a_headless_publisher_never_hosts() {
    let start = epoch();
    let later = start + HOST_GRACE;
    let mut room = room(
        fallback(HostFallback::FirstJoiner),
        start,
        &[(2, LISTENER, 20)],
    );
    room.member_present(
        start,
        1,
        MemberFacts {
            banned: true,
            ..person(HOST, 10)
        },
    );
    room.member_present(
        start,
        3,
        MemberFacts {
            person: false,
            ..person(LISTENER, 5)
        },
    );
    assert_eq!(room.assignments(later).hosts, [2]);
    assert_eq!(
        room.handle_cue(1, 100, Cue::PassPresentation { to: 1 }),
        Err(CueRefused::Banned)
    );
}

#[test]
fn failover_is_immediate_and_a_returning_host_reclaims_after_the_grace_period() {
    let start = epoch();
    let mut room = room(
        fallback(HostFallback::FirstJoiner),
        start,
        &[(1, HOST, 10), (2, LISTENER, 20), (3, LISTENER, 30)],
    );
    let settled = start + HOST_GRACE;
    assert_eq!(room.assignments(settled).hosts, [1]);

    // The host's node dies: the first joiner of the rest hosts at once.
    room.member_left(1);
    assert_eq!(room.assignments(settled).hosts, [2]);
    assert!(room.is_acting_host(settled, 2));
    // An acting host moderates members below host, never an on-chain host.
    assert!(room.may_moderate(settled, 2, 3));
    assert!(!room.may_moderate(settled, 3, 2));

    // The host returns: a new visit, which must hold for the grace period first.
    let back = settled + Duration::from_secs(1);
    room.member_present(back, 1, person(HOST, 5_000));
    assert!(!room.may_moderate(back, 2, 1), "not over an on-chain host");
    assert_eq!(room.assignments(back).hosts, [2], "no flap on a blip");
    assert_eq!(room.next_change(back), Some(back + HOST_GRACE));
    let reclaimed = room.assignments(back + HOST_GRACE);
    assert_eq!(reclaimed.hosts, [1]);
    assert!(reclaimed.hosts_on_chain);
}

#[test]
fn a_fresh_room_has_a_host_before_anyone_is_past_the_grace_period() {
    let start = epoch();
    let room = room(
        fallback(HostFallback::FirstJoiner),
        start,
        &[(4, LISTENER, 10)],
    );
    assert_eq!(room.assignments(start).hosts, [4]);
}

#[test]
fn free_presenting_serves_the_first_who_asked_and_hands_over_on_stop() {
    let start = epoch();
    let mut room = room(
        RoomPolicy::default(),
        start,
        &[(1, HOST, 10), (2, LISTENER, 20), (3, LISTENER, 30)],
    );
    room.handle_cue(3, 200, Cue::Present).unwrap();
    room.handle_cue(2, 100, Cue::Present).unwrap();
    let assigned = room.assignments(start);
    assert_eq!(assigned.presenter, Some(2), "first asked");
    assert_eq!(assigned.waiting_to_present, [3]);
    room.handle_cue(2, 300, Cue::StopPresenting).unwrap();
    assert_eq!(room.assignments(start).presenter, Some(3));

    // A host takes it: older asks are void, the host presents until it stops.
    room.handle_cue(1, 400, Cue::PassPresentation { to: 1 })
        .unwrap();
    let taken = room.assignments(start);
    assert_eq!(taken.presenter, Some(1));
    assert!(taken.waiting_to_present.is_empty());
    room.handle_cue(1, 500, Cue::StopPresenting).unwrap();
    assert_eq!(room.assignments(start).presenter, None);
}

#[test]
fn under_approval_a_member_presents_only_when_a_host_passes_it() {
    let start = epoch();
    let policy = RoomPolicy {
        presenting: Presenting::Approval,
        ..RoomPolicy::default()
    };
    let mut room = room(policy, start, &[(1, HOST, 10), (2, LISTENER, 20)]);
    room.handle_cue(2, 100, Cue::Present).unwrap();
    let asked = room.assignments(start);
    assert_eq!(asked.presenter, None);
    assert_eq!(asked.waiting_to_present, [2]);
    // A non-host's pass counts for nothing.
    room.handle_cue(2, 150, Cue::PassPresentation { to: 2 })
        .unwrap();
    assert_eq!(room.assignments(start).presenter, None);
    room.handle_cue(1, 200, Cue::PassPresentation { to: 2 })
        .unwrap();
    assert_eq!(room.assignments(start).presenter, Some(2));
    // The presenter leaves: nobody presents.
    room.member_left(2);
    assert_eq!(room.assignments(start).presenter, None);
}

#[test]
fn hands_queue_in_raising_order_and_an_invitation_answers_one() {
    let start = epoch();
    let mut room = room(
        RoomPolicy::default(),
        start,
        &[
            (1, HOST, 10),
            (2, LISTENER, 20),
            (3, LISTENER, 30),
            (4, LISTENER, 40),
        ],
    );
    room.handle_cue(4, 300, Cue::RaiseHand).unwrap();
    room.handle_cue(2, 100, Cue::RaiseHand).unwrap();
    room.handle_cue(3, 200, Cue::RaiseHand).unwrap();
    assert_eq!(room.assignments(start).hands, [2, 3, 4]);
    // A member cannot lower another's hand; a host can, and a member its own.
    room.handle_cue(2, 400, Cue::LowerHand { of: 3 }).unwrap();
    assert_eq!(room.assignments(start).hands, [2, 3, 4]);
    room.handle_cue(4, 400, Cue::LowerHand { of: 4 }).unwrap();
    room.handle_cue(1, 500, Cue::InviteToStage { who: 2 })
        .unwrap();
    let assigned = room.assignments(start);
    assert_eq!(assigned.hands, [3]);
    assert_eq!(assigned.stage, [2]);
    // Revoked, and a grant from a non-host counts for nothing.
    room.handle_cue(1, 600, Cue::RemoveFromStage { who: 2 })
        .unwrap();
    room.handle_cue(3, 600, Cue::InviteToStage { who: 4 })
        .unwrap();
    assert!(room.assignments(start).stage.is_empty());
}

#[test]
fn a_grant_lapses_when_its_host_goes_and_a_new_visit_starts_clean() {
    let start = epoch();
    let mut room = room(
        fallback(HostFallback::None),
        start,
        &[(1, HOST, 10), (2, LISTENER, 20)],
    );
    room.handle_cue(1, 100, Cue::InviteToStage { who: 2 })
        .unwrap();
    room.handle_cue(2, 110, Cue::RaiseHand).unwrap();
    assert_eq!(room.assignments(start).stage, [2]);
    room.member_left(1);
    assert!(room.assignments(start).stage.is_empty());

    // Member 2 comes back: its raised hand was from its last visit.
    room.member_present(start, 2, person(LISTENER, 1_000));
    assert!(room.assignments(start).hands.is_empty());
}

#[test]
fn a_replayed_grant_counts_for_nothing_after_its_revocation_or_the_visit() {
    let start = epoch();
    let mut room = room(
        fallback(HostFallback::None),
        start,
        &[(1, HOST, 10), (2, LISTENER, 20)],
    );
    let grant = Cue::InviteToStage { who: 2 };
    room.handle_cue(1, 100, grant).unwrap();
    room.handle_cue(1, 200, Cue::RemoveFromStage { who: 2 })
        .unwrap();
    // The grant heard again (a replay, or gossip late): older than its revocation.
    room.handle_cue(1, 100, grant).unwrap();
    assert!(room.assignments(start).stage.is_empty());

    // Granted again, then member 2 leaves and comes back: a replay of that grant belongs to
    // the visit before.
    room.handle_cue(1, 300, grant).unwrap();
    assert_eq!(room.assignments(start).stage, [2]);
    room.member_left(2);
    room.member_present(start, 2, person(LISTENER, 1_000));
    room.handle_cue(1, 300, grant).unwrap();
    assert!(room.assignments(start).stage.is_empty());
}

#[test]
fn only_an_open_stage_lets_a_listener_step_on_and_anyone_may_step_down() {
    let start = epoch();
    let mut closed = room(
        RoomPolicy::default(),
        start,
        &[(1, LISTENER, 10), (2, HOST, 5)],
    );
    let step_on = Cue::InviteToStage { who: 1 };
    assert_eq!(closed.judge(start, 1, step_on), Err(CueRefused::Policy));
    closed.handle_cue(1, 100, step_on).unwrap();
    assert!(
        closed.assignments(start).stage.is_empty(),
        "counts for nothing"
    );
    assert_eq!(
        closed.judge(start, 1, Cue::InviteToStage { who: 2 }),
        Err(CueRefused::NotHost)
    );
    assert_eq!(closed.judge(start, 2, step_on), Ok(()));
    let open = RoomPolicy {
        open_stage: true,
        ..RoomPolicy::default()
    };
    let mut room = room(open, start, &[(1, LISTENER, 10)]);
    room.handle_cue(1, 100, Cue::InviteToStage { who: 1 })
        .unwrap();
    assert_eq!(room.assignments(start).stage, [1]);
    room.handle_cue(1, 200, Cue::RemoveFromStage { who: 1 })
        .unwrap();
    assert!(room.assignments(start).stage.is_empty());
}

#[test]
fn a_flood_of_cues_keeps_bounded_state() {
    let start = epoch();
    let mut room: Orchestration<u32> = Orchestration::new(RoomPolicy::default());
    room.member_present(start, 0, person(HOST, 1));
    for target in 1..10_000u32 {
        room.handle_cue(0, u64::from(target), Cue::InviteToStage { who: target })
            .unwrap();
    }
    let kept: usize = room.writes.values().map(BTreeMap::len).sum();
    assert!(kept <= MAX_WRITES_PER_AUTHOR, "{kept} writes kept");
}

/// A fact a node may hear about a room.
#[derive(Debug, Clone)]
enum Fact {
    Presence(u8, MemberFacts),
    Cue(u8, u64, Cue<u8>),
}

fn fact() -> impl Strategy<Value = Fact> {
    let peer = 0u8..6;
    let role = prop_oneof![
        Just(None),
        Just(LISTENER),
        Just(SPEAKER),
        Just(HOST),
        Just(Some(Role::Owner)),
    ];
    let presence = (peer.clone(), role, 0u64..50, any::<bool>(), 0u8..8).prop_map(
        |(peer, role, joined, person_behind, ban)| {
            Fact::Presence(
                peer,
                MemberFacts {
                    account: None,
                    role,
                    banned: ban == 0,
                    joined_at_ms: joined,
                    person: person_behind,
                },
            )
        },
    );
    let cue = prop_oneof![
        Just(Cue::Present),
        Just(Cue::StopPresenting),
        peer.clone().prop_map(|to| Cue::PassPresentation { to }),
        Just(Cue::RaiseHand),
        peer.clone().prop_map(|of| Cue::LowerHand { of }),
        peer.clone().prop_map(|who| Cue::InviteToStage { who }),
        peer.clone().prop_map(|who| Cue::RemoveFromStage { who }),
    ];
    let cue = (peer, 0u64..100, cue).prop_map(|(author, at, cue)| Fact::Cue(author, at, cue));
    prop_oneof![presence, cue]
}

fn policy() -> impl Strategy<Value = RoomPolicy> {
    let host_fallback = prop_oneof![
        Just(HostFallback::None),
        Just(HostFallback::FirstJoiner),
        Just(HostFallback::HighestRole),
    ];
    let presenting = prop_oneof![Just(Presenting::Free), Just(Presenting::Approval)];
    (host_fallback, presenting, any::<bool>()).prop_map(
        |(host_fallback, presenting, open_stage)| RoomPolicy {
            host_fallback,
            presenting,
            open_stage,
        },
    )
}

proptest! {
    /// Nodes that heard the same facts in different orders assign the same roles. Each
    /// member's presence is one fact (a member's beats repeat the same facts), delivered
    /// before or after cues about it.
    #[test]
    fn any_delivery_order_of_the_same_facts_gives_the_same_assignments(
        policy in policy(),
        facts in proptest::collection::vec(fact(), 1..40),
        orders in proptest::collection::vec(any::<u64>(), 2..5),
    ) {
        let now = epoch();
        // One presence per member: the first drawn for it.
        let mut seen = std::collections::BTreeSet::new();
        let facts: Vec<Fact> = facts
            .into_iter()
            .filter(|f| match f {
                Fact::Presence(peer, _) => seen.insert(*peer),
                Fact::Cue(..) => true,
            })
            .collect();
        let assign = |seed: u64| {
            let mut order = facts.clone();
            shuffle(&mut order, seed);
            let mut room = Orchestration::new(policy);
            for fact in order {
                match fact {
                    Fact::Presence(peer, facts) => {
                        room.member_present(now, peer, facts);
                    }
                    Fact::Cue(author, at, cue) => {
                        // Refused cues are refused whatever the order (bans and a closed
                        // stage do not depend on it).
                        let _ = room.handle_cue(author, at, cue);
                    }
                }
            }
            room.assignments(now + HOST_GRACE)
        };
        let first = assign(0);
        for seed in orders {
            prop_assert_eq!(&assign(seed), &first);
        }
    }
}

/// Fisher–Yates with a small xorshift: the order is the test's input, not the thing tested.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    seed |= 1;
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}
