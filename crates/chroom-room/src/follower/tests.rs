use std::time::{Duration, Instant};

use chroom_types::{Account, RoomId};

use super::*;

/// The origin of virtual time (see the session tests).
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

fn room(n: u8) -> RoomId {
    RoomId::from_bytes([n; 32])
}

fn account(n: u8) -> Account {
    Account::from_bytes([n; 20])
}

fn drain(f: &mut Follower<&'static str>) -> Vec<FollowerOutput<&'static str>> {
    std::iter::from_fn(|| f.poll_output()).collect()
}

fn polled(f: &mut Follower<&'static str>, now: Instant) {
    f.handle_timeout(now);
    assert_eq!(drain(f), vec![FollowerOutput::FetchHead]);
}

#[test]
fn first_start_begins_at_the_head() {
    let now = epoch();
    let mut f = Follower::new(FollowerConfig::default(), now, None, []);
    polled(&mut f, now);
    f.handle_head(now, 100);
    assert_eq!(
        drain(&mut f),
        vec![FollowerOutput::Commit {
            facts: vec![],
            cursor: 100
        }]
    );
    assert_eq!(f.poll_timeout(), Some(now + Duration::from_millis(500)));
}

#[test]
fn changes_re_read_only_watched_pairs_and_commit_with_the_cursor() {
    let now = epoch();
    let watched = [
        (room(1), account(1)),
        (room(1), account(2)),
        (room(2), account(1)),
    ];
    let mut f = Follower::new(FollowerConfig::default(), now, Some(90), watched);
    polled(&mut f, now);
    f.handle_head(now, 100);
    assert_eq!(
        drain(&mut f),
        vec![FollowerOutput::FetchChanges { from: 91, to: 100 }]
    );
    f.handle_changes(
        now,
        &[
            Change::Account(room(1), account(1)),
            Change::Account(room(1), account(9)),
            Change::Account(room(1), account(1)),
        ],
    );
    assert_eq!(
        drain(&mut f),
        vec![FollowerOutput::ReadFacts {
            room: room(1),
            account: account(1),
            block: 100
        }],
        "one read per watched pair, unwatched accounts ignored"
    );
    f.handle_facts(now, room(1), account(1), 100, "banned");
    assert_eq!(
        drain(&mut f),
        vec![FollowerOutput::Commit {
            facts: vec![(room(1), account(1), "banned", 100)],
            cursor: 100
        }]
    );
    assert_eq!(f.cursor(), Some(100));
}

#[test]
fn a_room_wide_change_re_reads_every_watched_account_of_the_room() {
    let now = epoch();
    let watched = [
        (room(1), account(1)),
        (room(1), account(2)),
        (room(2), account(1)),
    ];
    let mut f = Follower::new(FollowerConfig::default(), now, Some(10), watched);
    polled(&mut f, now);
    f.handle_head(now, 11);
    drain(&mut f);
    f.handle_changes(now, &[Change::Room(room(1))]);
    let reads: Vec<_> = drain(&mut f)
        .into_iter()
        .map(|o| match o {
            FollowerOutput::ReadFacts {
                account, room: r, ..
            } => (r, account),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(reads, vec![(room(1), account(1)), (room(1), account(2))]);
    f.handle_facts(now, room(1), account(2), 11, "listener");
    assert!(
        drain(&mut f).is_empty(),
        "no commit before every read is back"
    );
    f.handle_facts(now, room(1), account(1), 11, "speaker");
    assert!(matches!(
        drain(&mut f)[0],
        FollowerOutput::Commit { cursor: 11, .. }
    ));
}

#[test]
fn long_gaps_are_fetched_in_bounded_ranges_back_to_back() {
    let now = epoch();
    let mut f = Follower::new(FollowerConfig::default(), now, Some(0), []);
    polled(&mut f, now);
    f.handle_head(now, 5_000);
    assert_eq!(
        drain(&mut f),
        vec![FollowerOutput::FetchChanges { from: 1, to: 2_000 }]
    );
    f.handle_changes(now, &[]);
    assert_eq!(
        drain(&mut f),
        vec![
            FollowerOutput::Commit {
                facts: vec![],
                cursor: 2_000
            },
            FollowerOutput::FetchHead,
        ],
        "still behind: poll again at once"
    );
    f.handle_head(now, 5_000);
    assert_eq!(
        drain(&mut f),
        vec![FollowerOutput::FetchChanges {
            from: 2_001,
            to: 4_000
        }]
    );
}

#[test]
fn confirmations_hold_back_the_newest_blocks() {
    let now = epoch();
    let config = FollowerConfig {
        confirmations: 2,
        ..FollowerConfig::default()
    };
    let mut f = Follower::new(config, now, Some(97), []);
    polled(&mut f, now);
    f.handle_head(now, 100);
    assert_eq!(
        drain(&mut f),
        vec![FollowerOutput::FetchChanges { from: 98, to: 98 }]
    );
}

#[test]
fn an_outage_backs_off_reports_staleness_and_resumes_from_the_cursor() {
    let now = epoch();
    let mut f = Follower::new(
        FollowerConfig::default(),
        now,
        Some(100),
        [(room(1), account(1))],
    );
    polled(&mut f, now);
    let is_stale = |outputs: &[FollowerOutput<&'static str>]| {
        outputs
            .iter()
            .any(|o| matches!(o, FollowerOutput::Freshness(Freshness::Stale { .. })))
    };
    let mut t = now;
    let mut saw_stale = false;
    for _ in 0..6 {
        f.handle_rpc_error(t);
        saw_stale |= is_stale(&drain(&mut f));
        // Step through due timers (the staleness check among them) until the retry goes out.
        loop {
            t = t.max(f.poll_timeout().unwrap());
            f.handle_timeout(t);
            let outputs = drain(&mut f);
            saw_stale |= is_stale(&outputs);
            if outputs.contains(&FollowerOutput::FetchHead) {
                break;
            }
        }
    }
    assert!(saw_stale, "a 6-failure outage is reported as stale");
    assert!(matches!(f.freshness(), Freshness::Stale { .. }));
    // The chain is back: the next poll resumes right after the cursor, and freshness returns.
    f.handle_head(t, 130);
    assert_eq!(
        drain(&mut f),
        vec![
            FollowerOutput::Freshness(Freshness::Fresh),
            FollowerOutput::FetchChanges { from: 101, to: 130 }
        ]
    );
}

#[test]
fn retry_delays_double_up_to_the_cap() {
    let now = epoch();
    let config = FollowerConfig {
        stale_after: Duration::from_secs(3600),
        ..FollowerConfig::default()
    };
    let mut f: Follower<&'static str> = Follower::new(config, now, Some(1), []);
    let mut t = now;
    let mut delays = Vec::new();
    for _ in 0..8 {
        polled(&mut f, t);
        f.handle_rpc_error(t);
        let next = f.poll_timeout().unwrap();
        delays.push((next - t).as_millis());
        t = next;
    }
    assert_eq!(
        delays,
        vec![250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]
    );
}

#[test]
fn lookups_read_at_the_head_and_are_retried_after_a_failure() {
    let now = epoch();
    let mut f = Follower::new(FollowerConfig::default(), now, None, []);
    f.lookup(now, room(1), account(1));
    assert_eq!(
        drain(&mut f),
        vec![FollowerOutput::FetchHead],
        "no head yet: wait"
    );
    f.handle_head(now, 50);
    let outputs = drain(&mut f);
    assert!(outputs.contains(&FollowerOutput::ReadFacts {
        room: room(1),
        account: account(1),
        block: 50
    }));
    f.handle_rpc_error(now);
    drain(&mut f);
    let retry = f.poll_timeout().unwrap();
    f.handle_timeout(retry);
    let outputs = drain(&mut f);
    assert!(outputs.contains(&FollowerOutput::ReadFacts {
        room: room(1),
        account: account(1),
        block: 50
    }));
    f.handle_facts(retry, room(1), account(1), 50, "listener");
    assert_eq!(
        drain(&mut f),
        vec![FollowerOutput::Facts {
            room: room(1),
            account: account(1),
            facts: "listener",
            block: 50
        }]
    );
    // A looked-up pair is watched from then on.
    f.handle_timeout(retry + Duration::from_secs(1));
    drain(&mut f);
    f.handle_head(retry + Duration::from_secs(1), 51);
    drain(&mut f);
    f.handle_changes(
        retry + Duration::from_secs(1),
        &[Change::Account(room(1), account(1))],
    );
    assert!(matches!(
        drain(&mut f)[0],
        FollowerOutput::ReadFacts { block: 51, .. }
    ));
}

/// Issue 12, hole 9: every account ever looked up was followed forever.
#[test]
fn the_least_recently_looked_up_pair_is_forgotten_beyond_the_limit() {
    let now = epoch();
    let config = FollowerConfig {
        max_watched: 2,
        ..FollowerConfig::default()
    };
    let mut f = Follower::new(config, now, Some(10), [(room(1), account(1))]);
    polled(&mut f, now);
    f.handle_head(now, 10);
    f.lookup(now, room(1), account(2));
    // Used again: now the most recent.
    f.lookup(now, room(1), account(1));
    drain(&mut f);
    f.lookup(now, room(1), account(3));
    let forgotten: Vec<_> = drain(&mut f)
        .into_iter()
        .filter_map(|o| match o {
            FollowerOutput::Forget { room, account } => Some((room, account)),
            _ => None,
        })
        .collect();
    assert_eq!(forgotten, vec![(room(1), account(2))]);
    assert_eq!(f.watched(), 2);
    // A change to the forgotten account is not followed any more.
    polled(&mut f, now + Duration::from_secs(1));
    f.handle_head(now, 11);
    drain(&mut f);
    f.handle_changes(now, &[Change::Room(room(1))]);
    let reads: Vec<_> = drain(&mut f)
        .into_iter()
        .filter_map(|o| match o {
            FollowerOutput::ReadFacts { account, .. } => Some(account),
            _ => None,
        })
        .collect();
    assert_eq!(reads.len(), 2);
    assert!(!reads.contains(&account(2)), "{reads:?}");
}

#[test]
fn a_cache_larger_than_the_limit_is_cut_at_start() {
    let now = epoch();
    let config = FollowerConfig {
        max_watched: 2,
        ..FollowerConfig::default()
    };
    let cached = [1, 2, 3].map(|n| (room(1), account(n)));
    let mut f = Follower::new(config, now, Some(10), cached);
    assert_eq!(f.watched(), 2);
    assert!(drain(&mut f).contains(&FollowerOutput::Forget {
        room: room(1),
        account: account(1)
    }));
}
