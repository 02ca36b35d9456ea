//! A viewer's relay tree takes messages from peers that may lie: whatever arrives (any message,
//! from anyone, in any order) must never panic, and the viewer's parent is only ever a peer
//! proven to carry the broadcast: the root it verified, or a registered relayer.
//!
//! Peers (by the first byte of an input step, modulo 7): 0 the verified root (a speaker),
//! 1 a registered relayer, 2 a listener, 3 a stranger, 4 a banned account, 5 a peer with no
//! account, 6 a second speaker. Each step: peer, message kind, level, then candidates' peers.
#![no_main]

use std::time::{Duration, Instant};

use chroom_overlay::{Candidate, Message};
use chroom_room::{AccessFacts, AccessPolicy, InboundId, Participation, RoomSession, SessionConfig};
use chroom_types::{Account, MediaKind, Membership, Role, RoomKind, RoomName};
use libfuzzer_sys::fuzz_target;

const LOCAL: u8 = 100;

fn facts(peer: u8) -> Option<AccessFacts> {
    let known = |membership, relayer| AccessFacts::Known {
        kind: RoomKind::Broadcast,
        membership,
        relayer,
        policy: chroom_types::RoomPolicy::default(),
    };
    match peer {
        0 | 6 => Some(known(Membership::Member(Role::Speaker), false)),
        1 => Some(known(Membership::NotMember, true)),
        2 => Some(known(Membership::Member(Role::Listener), false)),
        3 => Some(known(Membership::NotMember, false)),
        4 => Some(known(Membership::Banned, true)),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let room = "stage".parse::<RoomName>().unwrap().id();
    let config = SessionConfig {
        access: AccessPolicy::Enforce,
        ..SessionConfig::default()
    };
    let mut session = RoomSession::new(config, LOCAL);
    session.join(start, room, Participation::View(vec![MediaKind::Video]));
    for peer in 0..7u8 {
        if let Some(facts) = facts(peer) {
            let account = Account::from_bytes([peer + 1; 20]);
            session.handle_peer_account(start, peer, Some(account));
            session.handle_access(start, room, account, facts);
        }
    }
    session.handle_publishers(start, room, &[0]);
    let mut now = start;
    for (step, chunk) in data.chunks(4).enumerate() {
        let [who, kind, level, rest] = [0, 1, 2, 3].map(|i| chunk.get(i).copied().unwrap_or(0));
        let from = who % 7;
        let candidate = |n: u8| Candidate {
            peer: n % 8,
            level: u32::from(level % 4),
            spare: u32::from(n % 3),
            room: u32::from(n % 5),
        };
        let candidates = vec![candidate(rest), candidate(rest / 8)];
        let level = u32::from(level % 4);
        let message = match kind % 14 {
            0 => Message::Join {
                below_level: (rest % 2 == 0).then_some(level),
                capacity: u32::from(rest % 3),
            },
            1 => Message::Accepted { level, candidates },
            2 => Message::Redirected { candidates },
            3 => Message::Refused,
            4 => Message::State { level, candidates },
            5 => Message::Report {
                spare: Some(candidate(rest)),
                room: u32::from(rest),
                pushdown: None,
                deepest: Some(candidate(rest / 4)),
            },
            6 => Message::Invite { level },
            7 => Message::Handover { candidates },
            8 => Message::Evicted {
                to: candidate(rest),
            },
            9 => Message::Left,
            10 => Message::Probe,
            11 => Message::Repairing,
            12 => Message::Feeding,
            _ => {
                now += Duration::from_millis(u64::from(rest) * 20);
                session.handle_timeout(now);
                continue;
            }
        };
        session.handle_tree_request(now, InboundId(step as u64), from, room, message);
        while session.poll_output().is_some() {}
        if let Some(parent) = session.tree_parent(room) {
            assert!(
                parent == 0 || parent == 1,
                "fed by {parent}, which is neither the verified root nor a registered relayer"
            );
        }
    }
});
