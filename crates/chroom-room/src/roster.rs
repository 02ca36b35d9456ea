//! Who is in a room, from the presence beats members publish in its gossip topic.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

use chroom_types::{Account, RoomId};

use crate::gossip::MAX_CLOCK_SKEW;

/// How often a member says it is in a room.
pub const PRESENCE_INTERVAL: Duration = Duration::from_secs(5);

/// A member not heard from for this long has left (three missed beats).
pub const PRESENCE_TIMEOUT: Duration = Duration::from_secs(15);

/// How often a member that hosts a room says it is there: its absence is noticed sooner, so
/// another member takes over hosting within seconds of its node dying. Every beat says how
/// soon the next one comes, and a member is gone after three of its own intervals.
pub const HOST_PRESENCE_INTERVAL: Duration = Duration::from_secs(1);

/// Missed beats after which a member has left.
const MISSED_BEATS: u32 = 3;

/// A member of a room as the roster knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    /// The account its beats proved, if any.
    pub account: Option<Account>,
    /// When it was last heard.
    pub last_seen: Instant,
    /// Its last beat said it shares a screen.
    pub sharing_screen: bool,
    /// It sends media but subscribes to nobody (a headless publisher, no person behind it).
    pub publish_only: bool,
    /// When it joined, by its first beat heard in this visit (unix milliseconds).
    pub joined_at_unix_ms: u64,
    /// Silent for this long, it has left: three of the intervals its last beat announced.
    pub timeout: Duration,
    /// The name its user goes by, if it set one.
    pub display_name: Option<String>,
    /// How many times it remade its links in this visit (the most any beat said).
    pub links_epoch: u32,
    /// When its newest beat was sent, by its own clock (unix milliseconds).
    pub last_sent_unix_ms: u64,
}

/// What a presence beat says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Beat {
    /// The account its author proved, if any.
    pub account: Option<Account>,
    /// The author is leaving the room.
    pub leaving: bool,
    /// The author is sharing a screen.
    pub sharing_screen: bool,
    /// The author is a headless publisher.
    pub publish_only: bool,
    /// When the author says it joined (unix milliseconds).
    pub joined_at_unix_ms: u64,
    /// How soon the author's next beat comes (`None`: [`PRESENCE_INTERVAL`]).
    pub interval: Option<Duration>,
    /// The name the author's user goes by.
    pub display_name: Option<String>,
    /// How many times the author remade its links in this visit.
    pub links_epoch: u32,
    /// When the author sent it, by its own clock (unix milliseconds).
    pub sent_at_unix_ms: u64,
}

/// A visit that ended: a beat of it that arrives late (gossip repairs losses by asking for
/// them again, seconds after) must not bring its member back.
#[derive(Debug, Clone, Copy)]
struct Departed {
    joined_at_unix_ms: u64,
    /// Beats of the visit sent before this (by the member's clock) are late ones.
    stale_before_unix_ms: u64,
    /// When the record can go: a beat older than the clock skew allowed is refused anyway.
    forget_at: Instant,
}

/// The members present in each room. Sans-IO: time is an input.
#[derive(Debug)]
pub struct Roster<P> {
    rooms: HashMap<RoomId, BTreeMap<P, Present>>,
    departed: HashMap<(RoomId, P), Departed>,
}

impl<P> Default for Roster<P> {
    fn default() -> Self {
        Self {
            rooms: HashMap::new(),
            departed: HashMap::new(),
        }
    }
}

impl<P: Copy + Ord + Hash> Roster<P> {
    /// A delivered presence beat (the registry let its author into the room). Returns whether
    /// the room's membership changed (someone arrived or left, or proved another account).
    pub fn handle_presence(&mut self, now: Instant, room: RoomId, peer: P, beat: Beat) -> bool {
        if self.departed.get(&(room, peer)).is_some_and(|d| {
            d.joined_at_unix_ms == beat.joined_at_unix_ms
                && beat.sent_at_unix_ms < d.stale_before_unix_ms
        }) {
            return false;
        }
        let members = self.rooms.entry(room).or_default();
        if beat.leaving {
            let Some(gone) = members.remove(&peer) else {
                return false;
            };
            // Everything the visit sent up to its goodbye is late from now on.
            let last = Present {
                last_sent_unix_ms: gone.last_sent_unix_ms.max(beat.sent_at_unix_ms),
                timeout: Duration::ZERO,
                ..gone
            };
            self.remember_departed(now, room, peer, &last);
            return true;
        }
        let before = members.get(&peer);
        let present = Present {
            account: beat.account,
            last_seen: now,
            sharing_screen: beat.sharing_screen,
            publish_only: beat.publish_only,
            // One visit keeps the join time its first beat gave: later beats may differ by
            // the author's clock drift, and a member must not look new with every beat.
            joined_at_unix_ms: before.map_or(beat.joined_at_unix_ms, |b| b.joined_at_unix_ms),
            // A beat cannot stretch its author's timeout past the usual one, nor shrink it
            // below a host's.
            timeout: (beat.interval.unwrap_or(PRESENCE_INTERVAL) * MISSED_BEATS)
                .clamp(HOST_PRESENCE_INTERVAL * MISSED_BEATS, PRESENCE_TIMEOUT),
            display_name: beat.display_name,
            // A late beat must not make an old count look new again.
            links_epoch: before.map_or(beat.links_epoch, |b| b.links_epoch.max(beat.links_epoch)),
            last_sent_unix_ms: before.map_or(beat.sent_at_unix_ms, |b| {
                b.last_sent_unix_ms.max(beat.sent_at_unix_ms)
            }),
        };
        let changed = before.is_none_or(|b| b.account != beat.account);
        members.insert(peer, present);
        if changed {
            self.departed.remove(&(room, peer));
        }
        changed
    }

    /// Forgets members not heard from within their timeout. Returns the members forgotten.
    pub fn expire(&mut self, now: Instant) -> Vec<(RoomId, P)> {
        let mut gone = Vec::new();
        for (room, members) in &mut self.rooms {
            members.retain(|peer, p| {
                let alive = now.saturating_duration_since(p.last_seen) < p.timeout;
                if !alive {
                    gone.push((*room, *peer, p.clone()));
                }
                alive
            });
        }
        self.rooms.retain(|_, members| !members.is_empty());
        self.departed.retain(|_, d| d.forget_at > now);
        gone.into_iter()
            .map(|(room, peer, last)| {
                self.remember_departed(now, room, peer, &last);
                (room, peer)
            })
            .collect()
    }

    /// Remembers a visit that ended. Its beats sent within a timeout of its last one heard
    /// are late copies of beats that were missed; one sent after that means the member was
    /// cut off, not gone, and is back.
    fn remember_departed(&mut self, now: Instant, room: RoomId, peer: P, last: &Present) {
        let timeout_ms = u64::try_from(last.timeout.as_millis()).unwrap_or(u64::MAX);
        let departed = Departed {
            joined_at_unix_ms: last.joined_at_unix_ms,
            stale_before_unix_ms: last.last_sent_unix_ms.saturating_add(timeout_ms),
            forget_at: now + MAX_CLOCK_SKEW * 2,
        };
        self.departed.insert((room, peer), departed);
    }

    /// What the roster knows of `peer` in `room`.
    pub fn member(&self, room: RoomId, peer: P) -> Option<&Present> {
        self.rooms.get(&room)?.get(&peer)
    }

    /// Forgets a room this node left.
    pub fn forget_room(&mut self, room: RoomId) {
        self.rooms.remove(&room);
        self.departed.retain(|(r, _), _| *r != room);
    }

    /// Whether `peer` is present in `room`.
    pub fn is_present(&self, room: RoomId, peer: P) -> bool {
        self.rooms
            .get(&room)
            .is_some_and(|members| members.contains_key(&peer))
    }

    /// The account `peer`'s beats in `room` proved, if it is present and proved one.
    pub fn account_of(&self, room: RoomId, peer: P) -> Option<Account> {
        self.rooms.get(&room)?.get(&peer)?.account
    }

    /// The members present in `room`, in a stable order.
    pub fn members(&self, room: RoomId) -> Vec<(P, Present)> {
        self.rooms
            .get(&room)
            .map(|members| members.iter().map(|(p, m)| (*p, m.clone())).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: RoomId = RoomId::from_bytes([1; 32]);

    /// The origin of virtual time (`Instant` has no constructor but `now()`).
    #[allow(clippy::disallowed_methods)]
    fn epoch() -> Instant {
        Instant::now()
    }

    fn beat(account: Option<Account>) -> Beat {
        Beat {
            account,
            ..Beat::default()
        }
    }

    const LEAVING: Beat = Beat {
        account: None,
        leaving: true,
        sharing_screen: false,
        publish_only: false,
        joined_at_unix_ms: 0,
        interval: None,
        display_name: None,
        links_epoch: 0,
        sent_at_unix_ms: 0,
    };

    #[test]
    fn beats_add_members_and_leaving_or_silence_removes_them() {
        let start = epoch();
        let mut roster = Roster::default();
        let alice = Account::from_bytes([0xa; 20]);
        assert!(roster.handle_presence(start, ROOM, 1u8, beat(Some(alice))));
        assert!(roster.handle_presence(start, ROOM, 2u8, beat(None)));
        assert!(roster.is_present(ROOM, 2));
        assert!(!roster.is_present(ROOM, 3));
        // A repeated beat changes nothing but the time.
        assert!(!roster.handle_presence(start + PRESENCE_INTERVAL, ROOM, 1, beat(Some(alice))));
        assert_eq!(
            roster
                .members(ROOM)
                .iter()
                .map(|(p, _)| *p)
                .collect::<Vec<_>>(),
            [1, 2]
        );

        assert!(roster.handle_presence(start, ROOM, 2, LEAVING));
        assert!(!roster.handle_presence(start, ROOM, 2, LEAVING));

        assert!(roster.expire(start + PRESENCE_TIMEOUT).is_empty());
        assert_eq!(
            roster.expire(start + PRESENCE_INTERVAL + PRESENCE_TIMEOUT),
            [(ROOM, 1)]
        );
        assert!(roster.members(ROOM).is_empty());
    }

    #[test]
    fn a_fast_beating_host_times_out_sooner_and_a_visit_keeps_its_first_join_time() {
        let start = epoch();
        let mut roster = Roster::default();
        let host_beat = |joined_at_unix_ms| Beat {
            joined_at_unix_ms,
            interval: Some(HOST_PRESENCE_INTERVAL),
            ..beat(None)
        };
        roster.handle_presence(start, ROOM, 1u8, host_beat(100));
        // A beat claiming a day between beats gets the usual timeout, not a day's.
        let lazy = Beat {
            interval: Some(Duration::from_secs(86_400)),
            ..beat(None)
        };
        roster.handle_presence(start, ROOM, 2u8, lazy);
        // A later beat of the same visit, its clock drifted by a millisecond.
        roster.handle_presence(start, ROOM, 1u8, host_beat(101));
        assert_eq!(roster.member(ROOM, 1).unwrap().joined_at_unix_ms, 100);
        assert_eq!(
            roster.expire(start + HOST_PRESENCE_INTERVAL * 3),
            [(ROOM, 1)]
        );
        assert!(roster.is_present(ROOM, 2));
        assert_eq!(roster.expire(start + PRESENCE_TIMEOUT), [(ROOM, 2)]);
    }

    #[test]
    fn a_member_proving_another_account_is_a_change() {
        let now = epoch();
        let mut roster = Roster::default();
        roster.handle_presence(now, ROOM, 1u8, beat(None));
        assert!(roster.handle_presence(now, ROOM, 1, beat(Some(Account::from_bytes([1; 20])))));
    }

    #[test]
    fn sharing_a_screen_is_remembered_but_is_no_change_of_membership() {
        let now = epoch();
        let mut roster = Roster::default();
        roster.handle_presence(now, ROOM, 1u8, beat(None));
        let sharing = Beat {
            sharing_screen: true,
            ..beat(None)
        };
        assert!(!roster.handle_presence(now, ROOM, 1, sharing));
        assert!(roster.members(ROOM)[0].1.sharing_screen);
        assert!(!roster.handle_presence(now, ROOM, 1, beat(None)));
        assert!(!roster.members(ROOM)[0].1.sharing_screen);
    }

    #[test]
    fn a_late_beat_of_a_visit_that_ended_does_not_bring_its_member_back() {
        let start = epoch();
        let mut roster = Roster::default();
        let sent = |sent_at_unix_ms, joined_at_unix_ms| Beat {
            sent_at_unix_ms,
            joined_at_unix_ms,
            interval: Some(HOST_PRESENCE_INTERVAL),
            ..beat(None)
        };
        roster.handle_presence(start, ROOM, 1u8, sent(10_000, 1_000));
        // Its beat of 11 000 was lost; silence makes it gone.
        assert_eq!(
            roster.expire(start + HOST_PRESENCE_INTERVAL * 3),
            [(ROOM, 1)]
        );
        // Gossip repairs the loss seconds later: still gone.
        let later = start + HOST_PRESENCE_INTERVAL * 5;
        assert!(!roster.handle_presence(later, ROOM, 1, sent(11_000, 1_000)));
        assert!(!roster.is_present(ROOM, 1));
        // Cut off, not dead: a beat sent well after its last one brings it back.
        assert!(roster.handle_presence(later, ROOM, 1, sent(13_000, 1_000)));
        assert_eq!(roster.member(ROOM, 1).unwrap().joined_at_unix_ms, 1_000);

        // A goodbye makes every earlier beat of the visit late, but not a new visit's.
        let goodbye = Beat {
            leaving: true,
            ..sent(14_000, 1_000)
        };
        assert!(roster.handle_presence(later, ROOM, 1, goodbye));
        assert!(!roster.handle_presence(later, ROOM, 1, sent(13_500, 1_000)));
        assert!(roster.handle_presence(later, ROOM, 1, sent(14_500, 14_400)));

        // Records of ended visits do not outlive the clock skew a beat is allowed.
        roster.handle_presence(later, ROOM, 2u8, sent(20_000, 1_000));
        roster.expire(later + PRESENCE_TIMEOUT);
        assert!(!roster.departed.is_empty());
        roster.expire(later + MAX_CLOCK_SKEW * 3);
        assert!(roster.departed.is_empty());
    }
}
