use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

/// The origin of virtual time. `Instant` has no constructor but `now()`, so the tests take one
/// reading and derive every other time from it.
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

const ROOT: u32 = 0;

fn root(now: Instant, capacity: u32) -> Overlay<u32> {
    Overlay::new(
        OverlayConfig::default(),
        ROOT,
        Role::Root { capacity },
        1,
        now,
    )
}

fn member(now: Instant, id: u32, role: Role) -> Overlay<u32> {
    Overlay::new(OverlayConfig::default(), id, role, u64::from(id), now)
}

fn sent(o: &mut Overlay<u32>) -> Vec<Transmit<u32>> {
    std::iter::from_fn(|| o.poll_transmit()).collect()
}

fn events(o: &mut Overlay<u32>) -> Vec<OverlayEvent<u32>> {
    std::iter::from_fn(|| o.poll_event()).collect()
}

fn to(transmits: &[Transmit<u32>], peer: u32) -> Vec<Message<u32>> {
    transmits
        .iter()
        .filter(|t| t.to == peer)
        .map(|t| t.message.clone())
        .collect()
}

fn join(capacity: u32) -> Message<u32> {
    Message::Join {
        below_level: None,
        capacity,
    }
}

/// An acceptance at `level` naming no backups.
fn accepted(level: u32) -> Message<u32> {
    Message::Accepted {
        level,
        candidates: Vec::new(),
    }
}

fn redirected(candidates: Vec<Candidate<u32>>) -> Message<u32> {
    Message::Redirected { candidates }
}

fn candidate(peer: u32, level: u32, room: u32) -> Candidate<u32> {
    Candidate {
        peer,
        level,
        spare: room,
        room,
    }
}

/// A viewer attached under `parent` at `level`.
fn attached_viewer(now: Instant, id: u32, parent: u32, level: u32) -> Overlay<u32> {
    let mut viewer = member(now, id, Role::Viewer);
    viewer.join(now, parent).unwrap();
    sent(&mut viewer);
    viewer.handle_message(
        now,
        parent,
        Message::Accepted {
            level: level - 1,
            candidates: vec![candidate(parent, level - 1, 0), candidate(50, level - 1, 4)],
        },
    );
    sent(&mut viewer);
    events(&mut viewer);
    viewer
}

/// A relayer attached under the root at level 1, feeding `children` (ids 100..).
fn relayer_with_children(now: Instant, capacity: u32, children: u32) -> Overlay<u32> {
    let mut relayer = member(now, 10, Role::Relayer { capacity });
    relayer.join(now, ROOT).unwrap();
    relayer.handle_message(
        now,
        ROOT,
        Message::Accepted {
            level: 0,
            candidates: vec![candidate(ROOT, 0, 0), candidate(11, 1, 8)],
        },
    );
    for child in 100..100 + children {
        relayer.handle_message(now, child, join(0));
    }
    sent(&mut relayer);
    events(&mut relayer);
    relayer
}

#[test]
fn the_root_accepts_up_to_its_capacity_then_redirects() {
    let now = epoch();
    let mut root = root(now, 2);
    root.handle_message(now, 1, join(0));
    root.handle_message(now, 2, join(0));
    root.handle_message(now, 3, join(0));
    let out = sent(&mut root);
    assert!(matches!(to(&out, 1)[0], Message::Accepted { level: 0, .. }));
    assert!(matches!(to(&out, 2)[0], Message::Accepted { level: 0, .. }));
    // Full, and its viewer children have no room: nothing better to offer.
    assert_eq!(to(&out, 3), vec![Message::Refused]);
    assert_eq!(root.child_count(), 2);
    // A repeated request from a child is answered the same, without a second slot.
    root.handle_message(now, 1, join(0));
    assert!(matches!(
        to(&sent(&mut root), 1)[0],
        Message::Accepted { .. }
    ));
    assert_eq!(root.child_count(), 2);
}

#[test]
fn a_full_member_redirects_to_children_with_room() {
    let now = epoch();
    let mut root = root(now, 1);
    root.handle_message(now, 10, join(8));
    sent(&mut root);
    root.handle_message(
        now,
        10,
        Message::Report {
            spare: Some(candidate(10, 1, 8)),
            room: 8,
            pushdown: None,
            deepest: Some(candidate(10, 1, 0)),
        },
    );
    sent(&mut root);
    root.handle_message(now, 7, join(0));
    let Message::Redirected { candidates } = &to(&sent(&mut root), 7)[0] else {
        panic!("expected a redirect");
    };
    assert!(candidates.iter().any(|c| c.peer == 10 && c.room == 8));
}

#[test]
fn joining_asks_the_entry_and_attaches_on_acceptance() {
    let now = epoch();
    let mut viewer = member(now, 5, Role::Viewer);
    assert_eq!(viewer.join(now, ROOT), Ok(()));
    assert_eq!(viewer.join(now, ROOT), Err(JoinError::AlreadyJoined));
    assert_eq!(to(&sent(&mut viewer), ROOT), vec![join(0)]);
    let later = now + Duration::from_millis(80);
    viewer.handle_message(
        later,
        ROOT,
        Message::Accepted {
            level: 0,
            candidates: vec![],
        },
    );
    assert_eq!(viewer.parent(), Some(ROOT));
    assert_eq!(viewer.level(), 1);
    let attached = events(&mut viewer);
    assert!(matches!(
        attached[..],
        [OverlayEvent::Attached {
            parent: ROOT,
            previous: None,
            level: 1,
            reason: SeekReason::Join,
            took,
        }] if took == Duration::from_millis(80)
    ));
    // The new parent learns what this (leaf) subtree offers.
    assert!(matches!(
        to(&sent(&mut viewer), ROOT)[0],
        Message::Report { room: 0, .. }
    ));
    let mut the_root = root(now, 1);
    assert_eq!(the_root.join(now, 1), Err(JoinError::Root));
}

#[test]
fn redirects_refusals_and_timeouts_move_on_to_the_next_candidate() {
    let now = epoch();
    let mut viewer = member(now, 5, Role::Viewer);
    viewer.join(now, ROOT).unwrap();
    sent(&mut viewer);
    viewer.handle_message(
        now,
        ROOT,
        redirected(vec![candidate(20, 1, 4), candidate(21, 1, 4)]),
    );
    let first = sent(&mut viewer)[0].to;
    assert!([20, 21].contains(&first));
    let second = 41 - first;
    viewer.handle_message(now, first, Message::Refused);
    assert_eq!(to(&sent(&mut viewer), second), vec![join(0)]);
    // Silence: after the request timeout the round is over (the entry was asked already).
    let timeout = viewer.poll_timeout().unwrap();
    assert_eq!(timeout, now + OverlayConfig::default().request_timeout);
    viewer.handle_timeout(timeout);
    assert!(matches!(
        events(&mut viewer)[..],
        [OverlayEvent::SeekFailed {
            reason: SeekReason::Join,
            rounds: 1
        }]
    ));
    // After the backoff the next round starts again at the entry.
    let retry = viewer.poll_timeout().unwrap();
    viewer.handle_timeout(retry);
    assert_eq!(to(&sent(&mut viewer), ROOT), vec![join(0)]);
    // An answer from a member this search never asked releases the slot it reserved.
    viewer.handle_message(retry, 30, accepted(1));
    assert_eq!(to(&sent(&mut viewer), 30), vec![Message::Left]);
    assert_eq!(viewer.parent(), None);
    // The one that timed out in the first round answers at last (a slow link, a starved
    // node): its slot is held for this member, which has none, so it is taken.
    viewer.handle_message(retry, second, accepted(1));
    let to_second = to(&sent(&mut viewer), second);
    assert!(!to_second.contains(&Message::Left), "{to_second:?}");
    assert_eq!(viewer.parent(), Some(second));
}

#[test]
fn a_member_too_deep_for_a_joiner_points_it_upward() {
    let now = epoch();
    let mut relayer = relayer_with_children(now, 4, 0);
    // The joiner feeds children at level 1: it may only attach to the root.
    relayer.handle_message(
        now,
        30,
        Message::Join {
            below_level: Some(1),
            capacity: 4,
        },
    );
    let Message::Redirected { candidates } = &to(&sent(&mut relayer), 30)[0] else {
        panic!("expected a redirect");
    };
    assert!(candidates.iter().all(|c| c.level < 1), "{candidates:?}");
    assert_eq!(relayer.child_count(), 0);
}

#[test]
fn relayers_push_viewers_down_and_fan_out_never_exceeds_capacity() {
    let now = epoch();
    let mut relayer = relayer_with_children(now, 2, 2);
    relayer.handle_message(now, 40, join(8));
    let out = sent(&mut relayer);
    assert!(matches!(to(&out, 40)[0], Message::Accepted { .. }));
    let evicted: Vec<_> = out
        .iter()
        .filter(|t| matches!(t.message, Message::Evicted { .. }))
        .collect();
    assert_eq!(evicted.len(), 1);
    assert!(matches!(evicted[0].message, Message::Evicted { to } if to.peer == 40));
    assert_eq!(relayer.child_count(), 2);
    // A viewer joining a full relayer is not given a slot.
    relayer.handle_message(now, 41, join(0));
    assert!(!matches!(
        to(&sent(&mut relayer), 41)[0],
        Message::Accepted { .. }
    ));
    assert_eq!(relayer.child_count(), 2);
}

#[test]
fn an_evicted_viewer_joins_the_relayer_that_took_its_slot() {
    let now = epoch();
    let mut viewer = attached_viewer(now, 5, 10, 2);
    viewer.handle_message(
        now,
        10,
        Message::Evicted {
            to: candidate(40, 2, 8),
        },
    );
    assert_eq!(viewer.parent(), None);
    assert_eq!(to(&sent(&mut viewer), 40), vec![join(0)]);
    // An eviction from a member that is not the parent changes nothing.
    let mut other = attached_viewer(now, 6, 10, 2);
    other.handle_message(
        now,
        99,
        Message::Evicted {
            to: candidate(40, 2, 8),
        },
    );
    assert_eq!(other.parent(), Some(10));
}

#[test]
fn an_eviction_while_the_parent_is_probed_leaves_no_feed_deadline_behind() {
    // Found by the million-viewer simulation: the probe's deadline outlived the parent, so
    // `poll_timeout` kept naming a past instant that `handle_timeout` never cleared.
    let now = epoch();
    let mut viewer = attached_viewer(now, 5, 10, 2);
    viewer.handle_parent_silent(now);
    viewer.handle_message(
        now,
        10,
        Message::Evicted {
            to: candidate(40, 2, 8),
        },
    );
    let later = now + Duration::from_secs(1);
    viewer.handle_timeout(later);
    assert!(
        viewer.poll_timeout().is_none_or(|at| at > later),
        "a timeout at {:?} is still due after being handled",
        viewer.poll_timeout()
    );
}

#[test]
fn a_parent_that_refuses_its_child_after_taking_it_in_feeds_it_no_more() {
    let now = epoch();
    let mut viewer = attached_viewer(now, 5, 10, 2);
    // The parent found out the viewer may not watch.
    viewer.handle_message(now, 10, Message::Refused);
    assert_eq!(viewer.parent(), None);
    assert!(events(&mut viewer).contains(&OverlayEvent::ParentLost {
        parent: 10,
        silent: false
    }));
    // It asks elsewhere (a backup), never the parent that refused it.
    let out = sent(&mut viewer);
    assert_eq!(to(&out, 50), vec![join(0)]);
    assert!(to(&out, 10).is_empty());
    // A refusal from a member it is not asking, nor fed by, changes nothing.
    let mut other = attached_viewer(now, 6, 10, 2);
    other.handle_message(now, 77, Message::Refused);
    assert_eq!(other.parent(), Some(10));
}

#[test]
fn losing_the_parent_repairs_through_backups_never_asking_the_lost_parent() {
    let now = epoch();
    let mut viewer = attached_viewer(now, 5, 10, 2);
    viewer.handle_peer_disconnected(now, 10);
    assert_eq!(viewer.parent(), None);
    assert!(matches!(
        events(&mut viewer)[..],
        [OverlayEvent::ParentLost {
            parent: 10,
            silent: false
        }]
    ));
    let out = sent(&mut viewer);
    // Backup 50 (from the parent's acceptance) is asked, not the lost parent and not the root.
    assert_eq!(to(&out, 50), vec![join(0)]);
    assert!(to(&out, 10).is_empty() && to(&out, ROOT).is_empty());
    // Neither later in the round, when others still name it, nor in the next round.
    let mut viewer = member(now, 5, Role::Viewer);
    viewer.join(now, ROOT).unwrap();
    viewer.handle_message(now, ROOT, redirected(vec![candidate(10, 1, 9)]));
    let state = vec![candidate(10, 1, 0), candidate(50, 1, 4)];
    viewer.handle_message(
        now,
        10,
        Message::Accepted {
            level: 1,
            candidates: state,
        },
    );
    sent(&mut viewer);
    viewer.handle_peer_disconnected(now, 10);
    let timeout = OverlayConfig::default().request_timeout;
    let mut at = now + timeout;
    viewer.handle_timeout(at);
    viewer.handle_message(at, ROOT, redirected(vec![candidate(10, 1, 9)]));
    for _ in 0..4 {
        at += OverlayConfig::default().max_retry_backoff;
        viewer.handle_timeout(at);
    }
    let asked: Vec<u32> = sent(&mut viewer).iter().map(|t| t.to).collect();
    assert!(asked.contains(&50) && asked.contains(&ROOT), "{asked:?}");
    assert!(!asked.contains(&10), "{asked:?}");
    eprintln!("ASKED {asked:?}");
    // The orphan takes no children while it is cut off.
    let mut orphan = relayer_with_children(now, 4, 1);
    orphan.handle_peer_disconnected(now, ROOT);
    sent(&mut orphan);
    orphan.handle_message(now, 77, join(0));
    assert_eq!(to(&sent(&mut orphan), 77), vec![Message::Refused]);
    // And with children it only asks above its own level.
    assert!(orphan.is_seeking());
}

#[test]
fn children_leaving_or_vanishing_free_their_slots() {
    let now = epoch();
    let mut relayer = relayer_with_children(now, 2, 2);
    relayer.handle_message(now, 100, Message::Left);
    relayer.handle_peer_disconnected(now, 101);
    assert_eq!(relayer.child_count(), 0);
    let removed = events(&mut relayer);
    assert_eq!(removed.len(), 2);
    // Reports and leaves from strangers change nothing.
    relayer.handle_message(now, 55, Message::Left);
    relayer.handle_message(
        now,
        55,
        Message::Report {
            spare: None,
            room: 9,
            pushdown: None,
            deepest: None,
        },
    );
    assert!(events(&mut relayer).is_empty());
}

#[test]
fn an_idle_member_ignores_everything_but_answers_requests() {
    let now = epoch();
    let mut idle = member(now, 5, Role::Relayer { capacity: 4 });
    for message in [
        Message::Redirected { candidates: vec![] },
        Message::Refused,
        Message::State {
            level: 0,
            candidates: vec![],
        },
        Message::Invite { level: 0 },
        Message::Handover { candidates: vec![] },
        Message::Evicted {
            to: candidate(1, 1, 1),
        },
        Message::Left,
    ] {
        idle.handle_message(now, 1, message);
    }
    assert!(sent(&mut idle).is_empty());
    assert!(events(&mut idle).is_empty());
    idle.handle_message(now, 1, join(0));
    assert_eq!(to(&sent(&mut idle), 1), vec![Message::Refused]);
    assert_eq!(idle.child_count(), 0);
}

/// A little network for property tests: messages are delivered in FIFO order per pair of
/// members but interleaved arbitrarily across pairs, as the real transports do.
struct Network {
    now: Instant,
    members: Vec<Overlay<u32>>,
    alive: Vec<bool>,
    in_flight: VecDeque<(u32, u32, Message<u32>)>,
}

impl Network {
    fn new(root_capacity: u32, relayers: u32, capacity: u32, viewers: u32) -> Self {
        let now = epoch();
        let mut members = vec![root(now, root_capacity)];
        for id in 1..=relayers {
            members.push(member(now, id, Role::Relayer { capacity }));
        }
        for id in relayers + 1..=relayers + viewers {
            members.push(member(now, id, Role::Viewer));
        }
        let alive = vec![true; members.len()];
        Self {
            now,
            members,
            alive,
            in_flight: VecDeque::new(),
        }
    }

    fn pump(&mut self, id: u32) {
        while let Some(t) = self.members[id as usize].poll_transmit() {
            self.in_flight.push_back((id, t.to, t.message));
        }
        while self.members[id as usize].poll_event().is_some() {}
    }

    fn apply(&mut self, op: u8, a: u8, b: u8) {
        let n = self.members.len() as u32;
        let id = u32::from(a) % n;
        match op % 10 {
            0..=4 if !self.in_flight.is_empty() => {
                // Deliver the oldest message of a pair chosen by `b`.
                let pick = usize::from(b) % self.in_flight.len();
                let (from, to, _) = self.in_flight[pick];
                let first = self
                    .in_flight
                    .iter()
                    .position(|(f, t, _)| *f == from && *t == to)
                    .expect("the picked message is in flight");
                let (from, to, message) = self.in_flight.remove(first).expect("index is valid");
                if self.alive[to as usize] {
                    self.members[to as usize].handle_message(self.now, from, message);
                    self.pump(to);
                }
            }
            5 | 6 if id != ROOT && self.alive[id as usize] => {
                let _ = self.members[id as usize].join(self.now, ROOT);
                self.pump(id);
            }
            7 => {
                self.now += Duration::from_millis(u64::from(b) * 20);
                for i in 0..n {
                    if self.alive[i as usize] {
                        self.members[i as usize].handle_timeout(self.now);
                        self.pump(i);
                    }
                }
            }
            8 if id != ROOT && self.alive[id as usize] && b.is_multiple_of(3) => self.crash(id),
            9 if id != ROOT && self.alive[id as usize] && b.is_multiple_of(3) => {
                self.members[id as usize].leave(self.now);
                self.pump(id);
            }
            _ => {}
        }
    }

    fn crash(&mut self, id: u32) {
        self.alive[id as usize] = false;
        let n = self.members.len() as u32;
        for other in 0..n {
            if self.alive[other as usize] {
                let linked = self.members[other as usize].parent() == Some(id)
                    || self.members[other as usize].children().any(|c| c == id);
                if linked {
                    self.members[other as usize].handle_peer_disconnected(self.now, id);
                    self.pump(other);
                }
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        let mut levels = HashMap::new();
        for (id, m) in self.members.iter().enumerate() {
            if !self.alive[id] {
                continue;
            }
            if m.child_count() > m.capacity() as usize {
                return Err(format!("{id} feeds {} > {}", m.child_count(), m.capacity()));
            }
            levels.insert(id as u32, m.level());
        }
        for (id, m) in self.members.iter().enumerate() {
            if !self.alive[id] {
                continue;
            }
            let Some(parent) = m.parent() else { continue };
            if let Some(parent_level) = levels.get(&parent)
                && *parent_level >= m.level()
            {
                return Err(format!(
                    "{id} at {} under {parent} at {parent_level}",
                    m.level()
                ));
            }
            // Following parents ends (no cycle).
            let mut at = parent;
            for _ in 0..=self.members.len() {
                match self.members[at as usize].parent() {
                    Some(next) if self.alive[at as usize] => at = next,
                    _ => break,
                }
                if at == id as u32 {
                    return Err(format!("cycle through {id}"));
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever order messages, timeouts, joins, leaves and crashes come in, no member feeds
    /// more than its capacity, every parent is above its child, and the tree has no cycle.
    #[test]
    fn random_event_sequences_keep_the_invariants(
        ops in proptest::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 1..800)
    ) {
        // A narrow root and binary relayers make a deep tree where moves matter.
        let mut net = Network::new(1, 8, 2, 8);
        for (op, a, b) in ops {
            net.apply(op, a, b);
            if let Err(broken) = net.check() {
                return Err(TestCaseError::fail(broken));
            }
        }
    }

    /// Without crashes, every member that joined ends up attached once the network settles.
    #[test]
    fn without_crashes_every_joiner_attaches(seed in any::<u64>()) {
        let mut net = Network::new(2, 5, 3, 8);
        let n = net.members.len() as u32;
        for id in 1..n {
            net.members[id as usize].join(net.now, ROOT).unwrap();
            net.pump(id);
        }
        let mut state = seed;
        for _ in 0..20_000 {
            if net.in_flight.is_empty() {
                net.apply(7, 0, 10);
                if net.members.iter().all(Overlay::is_attached) {
                    break;
                }
                continue;
            }
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            net.apply(0, 0, (state >> 33) as u8);
        }
        prop_assert!(net.check().is_ok());
        let unattached: Vec<u32> = (0..n).filter(|i| !net.members[*i as usize].is_attached()).collect();
        prop_assert!(unattached.is_empty(), "unattached: {:?}", unattached);
    }
}

#[test]
fn a_child_taken_as_a_viewer_is_never_offered_as_a_parent() {
    let now = epoch();
    let mut root = root(now, 1);
    // Admitted as a viewer (the node zeroed its claimed capacity: no registered relayer).
    root.handle_message(now, 5, join(0));
    root.handle_message(
        now,
        5,
        Message::Report {
            spare: Some(candidate(5, 1, 10)),
            room: 10,
            pushdown: Some(candidate(5, 1, 10)),
            deepest: Some(candidate(5, 1, 10)),
        },
    );
    sent(&mut root);
    root.handle_message(now, 6, join(0));
    assert_eq!(to(&sent(&mut root), 6), vec![Message::Refused]);
}

#[test]
fn would_take_says_what_a_join_would_get() {
    let now = epoch();
    let mut root = root(now, 1);
    assert!(root.would_take(1, None, 0));
    root.handle_message(now, 1, join(0));
    sent(&mut root);
    // The asker again: accepted again.
    assert!(root.would_take(1, None, 0));
    // Full of viewers: a viewer is redirected, a relayer pushes one down.
    assert!(!root.would_take(2, None, 0));
    assert!(root.would_take(3, None, 4));
    root.handle_message(now, 2, join(0));
    assert_eq!(to(&sent(&mut root), 2), vec![Message::Refused]);
    root.handle_message(now, 3, join(4));
    assert!(matches!(
        to(&sent(&mut root), 3)[..],
        [Message::Accepted { .. }]
    ));
    // Not attached: refused, never taken.
    let viewer = member(now, 9, Role::Viewer);
    assert!(!viewer.would_take(1, None, 0));
}

#[test]
fn an_acceptance_after_its_request_timed_out_is_taken_while_the_search_goes_on() {
    let now = epoch();
    let config = OverlayConfig::default();
    let mut viewer = member(now, 5, Role::Viewer);
    viewer.join(now, ROOT).unwrap();
    viewer.handle_message(
        now,
        ROOT,
        redirected(vec![candidate(20, 1, 4), candidate(21, 1, 4)]),
    );
    let asked_first = sent(&mut viewer)
        .into_iter()
        .find(|t| t.message == join(0) && t.to != ROOT)
        .expect("a candidate asked")
        .to;
    // No answer in time: the other candidate is asked.
    let later = now + config.request_timeout;
    viewer.handle_timeout(later);
    let asked_next = sent(&mut viewer)[0].to;
    assert_ne!(asked_next, asked_first);
    // The first one's acceptance arrives late: taken, and the other's, later still, released.
    viewer.handle_message(later, asked_first, accepted(1));
    assert_eq!(viewer.parent(), Some(asked_first));
    viewer.handle_message(later, asked_next, accepted(1));
    assert_eq!(to(&sent(&mut viewer), asked_next), vec![Message::Left]);
    assert_eq!(viewer.parent(), Some(asked_first));
}

#[test]
fn with_no_room_known_the_root_is_asked_and_a_round_that_failed_starts_there() {
    let now = epoch();
    let config = OverlayConfig::default();
    let mut viewer = member(now, 5, Role::Viewer);
    viewer.join(now, ROOT).unwrap();
    viewer.handle_message(now, ROOT, redirected(vec![candidate(10, 1, 4)]));
    viewer.handle_message(now, 10, accepted(1));
    assert_eq!(viewer.parent(), Some(10));
    // Its parent gone, the backups it knows say they have no room: the root is asked first.
    viewer.handle_message(
        now,
        10,
        Message::State {
            level: 1,
            candidates: vec![candidate(50, 1, 0), candidate(ROOT, 0, 0)],
        },
    );
    sent(&mut viewer);
    viewer.handle_peer_disconnected(now, 10);
    assert_eq!(to(&sent(&mut viewer), ROOT), vec![join(0)]);
    // The root's redirect leads nowhere: candidates are tried, then the round ends.
    viewer.handle_message(now, ROOT, redirected(vec![candidate(60, 1, 3)]));
    assert_eq!(to(&sent(&mut viewer), 60), vec![join(0)]);
    viewer.handle_message(now, 60, Message::Refused);
    assert_eq!(to(&sent(&mut viewer), 50), vec![join(0)]);
    viewer.handle_message(now, 50, Message::Refused);
    assert!(sent(&mut viewer).is_empty());
    // The next round starts at the root again, before the backups.
    let retry = viewer.poll_timeout().expect("a retry is due");
    assert!(retry <= now + config.retry_backoff);
    viewer.handle_timeout(retry);
    let out = sent(&mut viewer);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].to, ROOT);
}

#[test]
fn a_redirect_that_came_late_is_followed_when_nobody_is_left_to_ask() {
    let now = epoch();
    let config = OverlayConfig::default();
    let mut viewer = member(now, 5, Role::Viewer);
    viewer.join(now, ROOT).unwrap();
    sent(&mut viewer);
    // The root answers after the request timed out: the round has ended.
    viewer.handle_timeout(now + config.request_timeout);
    assert!(sent(&mut viewer).is_empty());
    let late = now + config.request_timeout * 2;
    viewer.handle_message(late, ROOT, redirected(vec![candidate(20, 1, 4)]));
    assert_eq!(to(&sent(&mut viewer), 20), vec![join(0)]);
}

mod feed;
mod shape;
