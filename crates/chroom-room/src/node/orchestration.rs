//! The rooms' orchestration as the node core keeps it: members' facts fed from presence and
//! the registry, the policy from the registry, who hosts, and how often this node beats.

use std::fmt::Debug;
use std::hash::Hash;

use chroom_types::{Account, Membership, RoomId, RoomPolicy};

use super::*;
use crate::orchestrator::{Assignments, MemberFacts, Orchestration};
use crate::roster::HOST_PRESENCE_INTERVAL;

/// A beat is due this much before its interval is up: the timer that sends it is a tick of
/// [`HOST_PRESENCE_INTERVAL`], and a beat a tick late would stretch a 5 s interval to 6 s.
const BEAT_SLACK: Duration = Duration::from_millis(100);

/// What this node's presence beats in a room last said, and when.
#[derive(Debug, Clone, Copy)]
pub(super) struct Beating {
    pub(super) last: Instant,
    pub(super) interval: Duration,
}

impl<P: Copy + Eq + Ord + Hash + Debug> NodeCore<P> {
    /// Who holds what in `room`, if this node is present there.
    pub fn assignments(&self, room: RoomId) -> Option<Assignments<P>> {
        Some(self.orchestrations.get(&room)?.assignments(self.now))
    }

    /// `room`'s policy, as the registry last said (the default until it has).
    pub fn room_policy(&self, room: RoomId) -> RoomPolicy {
        self.orchestrations
            .get(&room)
            .map(Orchestration::policy)
            .unwrap_or_default()
    }

    /// Whether `by` may act as a host on `target` in `room` without an on-chain host role:
    /// the room's policy made it acting host.
    pub(super) fn acting_host_may_moderate(&self, room: RoomId, by: P, target: P) -> bool {
        self.orchestrations
            .get(&room)
            .is_some_and(|o| o.is_acting_host(self.now, by) && o.may_moderate(self.now, by, target))
    }

    /// Tells `room`'s orchestration what is known of `peer` now: its beats' facts and its
    /// account's standing, or that it is gone.
    pub(super) fn refresh_member(&mut self, room: RoomId, peer: P) {
        let facts = if peer == self.local {
            self.joined_at.get(&room).map(|joined| {
                let person = !self.session.publishes_only(room);
                self.member_facts(room, self.account, *joined, person)
            })
        } else {
            self.roster.member(room, peer).map(|present| {
                let (account, joined) = (present.account, present.joined_at_unix_ms);
                self.member_facts(room, account, joined, !present.publish_only)
            })
        };
        let now = self.now;
        if let Some(orchestration) = self.orchestrations.get_mut(&room) {
            match facts {
                Some(facts) => orchestration.member_present(now, peer, facts),
                None => orchestration.member_left(peer),
            }
        }
        self.view_version += 1;
        self.sync_stage(room);
    }

    /// Lets the session know who is on `room`'s stage now: their media is let through
    /// whatever their role (a grant that lapses closes their links unless the role allows).
    pub(super) fn sync_stage(&mut self, room: RoomId) {
        let stage = self
            .assignments(room)
            .map(|a| a.stage.into_iter().collect())
            .unwrap_or_default();
        self.session.set_stage(self.now, room, stage);
    }

    /// Whether this node's user is on `room`'s stage.
    pub fn is_on_stage(&self, room: RoomId) -> bool {
        self.assignments(room)
            .is_some_and(|a| a.stage.contains(&self.local))
    }

    /// The registry said something about `account` in `room`: the room's policy, and the
    /// standing of every member proving that account.
    pub(super) fn refresh_account(&mut self, room: RoomId, account: Account, facts: AccessFacts) {
        let Some(orchestration) = self.orchestrations.get_mut(&room) else {
            return;
        };
        if let AccessFacts::Known { policy, .. } = facts {
            orchestration.set_policy(policy);
        }
        let members: Vec<P> = orchestration.present().collect();
        for peer in members {
            let proves = if peer == self.local {
                self.account
            } else {
                self.roster.account_of(room, peer)
            };
            if proves == Some(account) {
                self.refresh_member(room, peer);
            }
        }
    }

    fn member_facts(
        &self,
        room: RoomId,
        account: Option<Account>,
        joined_at_ms: u64,
        person: bool,
    ) -> MemberFacts {
        let membership = account
            .and_then(|account| self.session.facts(room, account))
            .and_then(|facts| match facts {
                AccessFacts::Known { membership, .. } => Some(membership),
                AccessFacts::UnknownRoom => None,
            });
        MemberFacts {
            account,
            role: match membership {
                Some(Membership::Member(role)) => Some(role),
                _ => None,
            },
            banned: membership == Some(Membership::Banned),
            joined_at_ms,
            person,
        }
    }

    /// How often this node says it is in `room`: every second while it hosts there.
    pub(super) fn beat_interval(&self, room: RoomId) -> Duration {
        let hosts = self
            .orchestrations
            .get(&room)
            .is_some_and(|o| o.assignments(self.now).hosts.contains(&self.local));
        if hosts {
            HOST_PRESENCE_INTERVAL
        } else {
            PRESENCE_INTERVAL
        }
    }

    /// Sends the beats due now: a room's interval is up, or it changed (this node began or
    /// stopped hosting there; a slower interval must be announced before it is taken).
    pub(super) fn beat(&mut self, now: Instant) {
        for room in self.present_in.clone() {
            let interval = self.beat_interval(room);
            let due = self.beating.get(&room).is_none_or(|last| {
                last.interval != interval
                    || now.saturating_duration_since(last.last) + BEAT_SLACK >= interval
            });
            if due {
                self.announce(room, false);
            }
        }
    }
}
