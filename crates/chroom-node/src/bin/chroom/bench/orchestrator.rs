//! `chroom bench orchestrator`: what a membership change costs the orchestrator core in a
//! large room. Every node recomputes who hosts, presents and speaks when a member arrives or
//! leaves, so this is paid per change by every member's node.
//!
//! The room: `members` members (one in a hundred with an on-chain host role, the rest
//! listeners and speakers), a first-joiner fallback, a fifth of them with a hand up, a tenth
//! asking to present, a few invited on stage. Each change is one member arriving and then the
//! same member leaving, each followed by computing the assignments, as the node does. Beside
//! them, a member's beat that repeats what is known: the node then computes nothing more.

use std::time::{Duration, Instant};

use chroom_room::orchestrator::{Cue, MemberFacts, Orchestration};
use chroom_types::{HostFallback, Role, RoomPolicy};

/// Runs `changes` arrivals and departures in a room of `members`; prints their cost.
pub(crate) fn orchestrator(members: &[u32], changes: usize) {
    println!("| members | change | p50 | p99 | mean |");
    println!("|---|---|---|---|---|");
    for &count in members {
        let (arrivals, departures, beats) = measure(count, changes);
        for (what, mut samples) in [
            ("arrival + assignments", arrivals),
            ("departure + assignments", departures),
            ("beat with nothing new", beats),
        ] {
            samples.sort();
            let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
            let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
            println!(
                "| {count} | {what} | {:.1} µs | {:.1} µs | {:.1} µs |",
                micros(at(0.5)),
                micros(at(0.99)),
                micros(mean),
            );
        }
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn facts(i: u32) -> MemberFacts {
    MemberFacts {
        account: None,
        role: Some(match i % 100 {
            0 => Role::Host,
            1..=9 => Role::Speaker,
            _ => Role::Listener,
        }),
        banned: false,
        joined_at_ms: u64::from(i),
        person: true,
    }
}

fn measure(count: u32, changes: usize) -> (Vec<Duration>, Vec<Duration>, Vec<Duration>) {
    let start = Instant::now();
    let mut room = Orchestration::new(RoomPolicy {
        host_fallback: HostFallback::FirstJoiner,
        ..RoomPolicy::default()
    });
    for i in 0..count {
        room.member_present(start, i, facts(i));
        let cue = match i % 10 {
            0 | 5 => Some(Cue::RaiseHand),
            1 => Some(Cue::Present),
            _ => None,
        };
        if let Some(cue) = cue {
            let _ = room.handle_cue(i, 1_000 + u64::from(i), cue);
        }
    }
    for who in (1..count).step_by(97) {
        let _ = room.handle_cue(0, 2_000, Cue::InviteToStage { who });
    }
    let mut arrivals = Vec::with_capacity(changes);
    let mut departures = Vec::with_capacity(changes);
    let mut beats = Vec::with_capacity(changes);
    let mut shown = 0;
    for change in 0..changes {
        let newcomer = count + change as u32;
        let now = Instant::now();
        let began = Instant::now();
        room.member_present(now, newcomer, facts(newcomer));
        shown += room.assignments(now).hands.len();
        arrivals.push(began.elapsed());
        let began = Instant::now();
        room.member_left(newcomer);
        shown += room.assignments(now).hands.len();
        departures.push(began.elapsed());
        let member = change as u32 % count;
        let began = Instant::now();
        if room.member_present(now, member, facts(member)) {
            shown += room.assignments(now).hands.len();
        }
        beats.push(began.elapsed());
    }
    // Used, so the work is not optimized away.
    assert!(shown > 0 || count < 10);
    (arrivals, departures, beats)
}
