//! The rooms' orchestration as the node core keeps it: members' facts fed from presence and
//! the registry, the policy from the registry, who hosts, how often this node beats, and its
//! user's cues, questions and display name.

use std::fmt::Debug;
use std::hash::Hash;

use chroom_types::{Account, Membership, RoomId, RoomPolicy};

use super::*;
use crate::orchestrator::{Assignments, MemberFacts, Orchestration};
use crate::rate::Rate;
use crate::roster::HOST_PRESENCE_INTERVAL;

/// A beat is due this much before its interval is up: the timer that sends it is a tick of
/// [`HOST_PRESENCE_INTERVAL`], and a beat a tick late would stretch a 5 s interval to 6 s.
const BEAT_SLACK: Duration = Duration::from_millis(100);

/// How often a member may ask a room's hosts a question: three at once, then one every 20 s.
/// A node takes no more from an author, nor sends more for its own user.
pub(super) const QUESTION_RATE: Rate = Rate {
    per_second: 1.0 / 20.0,
    burst: 3.0,
};

/// Most authors whose questions are counted at once.
pub(super) const MAX_ASKERS: usize = 4 * 1024;

/// What this node's presence beats in a room last said, and when.
#[derive(Debug, Clone, Copy)]
pub(super) struct Beating {
    pub(super) last: Instant,
    pub(super) interval: Duration,
}

impl<P: Copy + Eq + Ord + Hash + Debug> NodeCore<P> {
    // ---- commands from this node's user ----

    /// This node's user asks or decides `cue` in `room` at `now_unix_ms`: taken here at once if
    /// the orchestrator takes it from this node; returns the message that tells every member.
    pub fn cue(
        &mut self,
        now: Instant,
        now_unix_ms: u64,
        room: RoomId,
        cue: Cue<P>,
    ) -> Result<Say<P>, CommandError> {
        self.now = self.now.max(now);
        let Some(orchestration) = self.orchestrations.get_mut(&room) else {
            return Err(CommandError::NotInRoom {
                doing: "taking part in",
            });
        };
        orchestration.judge(now, self.local, cue)?;
        orchestration.handle_cue(self.local, now_unix_ms, cue)?;
        self.view_version += 1;
        self.sync_stage(room);
        Ok(Say::Cue {
            cue,
            at_unix_ms: now_unix_ms,
        })
    }

    /// This node's user asks `room`'s hosts `text`: returns the question to publish.
    pub fn ask(
        &mut self,
        now: Instant,
        room: RoomId,
        text: String,
    ) -> Result<Say<P>, CommandError> {
        self.now = self.now.max(now);
        if !self.present_in.contains(&room) {
            return Err(CommandError::NotInRoom { doing: "asking in" });
        }
        if text.trim().is_empty() || text.len() > chroom_types::MAX_QUESTION_BYTES {
            return Err(CommandError::BadQuestion);
        }
        // Others would not take more: asking more would only be lost.
        if !self.questions.take(now, (room, self.local), QUESTION_RATE) {
            return Err(CommandError::AskingTooOften);
        }
        Ok(Say::Question { text })
    }

    /// This node's user goes by `name` (`None`: by its account alone) from now on: told at
    /// once in every room it is present in.
    pub fn set_display_name(&mut self, name: Option<String>) -> Result<(), CommandError> {
        if let Some(name) = &name {
            chroom_types::check_display_name(name).map_err(CommandError::DisplayName)?;
        }
        if self.display_name != name {
            self.display_name = name;
            self.view_version += 1;
            for room in self.present_in.clone() {
                self.announce(room, false);
            }
        }
        Ok(())
    }

    // ---- what the core knows ----

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
    /// account's standing, or that it is gone. The assignments are computed again only when
    /// that is news: a member's every beat repeats what is known.
    pub(super) fn refresh_member(&mut self, room: RoomId, peer: P) {
        if peer != self.local && !self.roster.is_present(room, peer) {
            self.seal_member_gone(room, peer);
        }
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
        let Some(orchestration) = self.orchestrations.get_mut(&room) else {
            return;
        };
        let news = match facts {
            Some(facts) => orchestration.member_present(now, peer, facts),
            None => orchestration.member_left(peer),
        };
        if news {
            self.view_version += 1;
            self.sync_stage(room);
            // A member arrived: its grace period may end before any other's.
            let ends = self
                .orchestrations
                .get(&room)
                .and_then(|o| o.next_change(now));
            self.grace_ends = self.grace_ends.into_iter().chain(ends).min();
        }
    }

    /// Brings the assignments of rooms where a member's grace period ended since the last
    /// look up to date: who hosts, and so whose stage grants count, may have changed with no
    /// new fact.
    pub(super) fn settle_graces(&mut self, now: Instant) {
        if self.grace_ends.is_none_or(|at| at > now) {
            return;
        }
        let since = std::mem::replace(&mut self.graces_checked, now);
        let settled: Vec<RoomId> = self
            .orchestrations
            .iter()
            .filter(|(_, o)| o.next_change(since).is_some_and(|at| at <= now))
            .map(|(room, _)| *room)
            .collect();
        for room in settled {
            self.view_version += 1;
            self.sync_stage(room);
        }
        self.grace_ends = self
            .orchestrations
            .values()
            .filter_map(|o| o.next_change(now))
            .min();
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
