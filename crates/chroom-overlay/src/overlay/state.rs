//! What a member tells the tree about itself: the report its parent gets of what its subtree
//! offers (a free slot, room, where to push a member down, the deepest member), and the state
//! its children get (its level and backup parents for them), each sent only when it changed.

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Instant;

use super::{Overlay, OverlayEvent, Phase, Report, dedup_by_peer};
use crate::message::{Candidate, MAX_CANDIDATES, Message};

impl<P: Copy + Ord + Hash + Debug> Overlay<P> {
    /// The parent said its level and this member's backup parents.
    pub(super) fn on_parent_state(
        &mut self,
        now: Instant,
        from: P,
        level: u32,
        candidates: Vec<Candidate<P>>,
    ) {
        let new_level = level.saturating_add(1);
        if new_level > self.level && !self.children.is_empty() {
            // A parent never goes deeper while it feeds children (this one): ignore the level.
            self.event(OverlayEvent::PeerMisbehaved {
                peer: from,
                reason: "its level grew while it fed children",
            });
        } else {
            self.level = new_level;
        }
        self.set_backups(candidates);
        self.after_change(now);
    }

    /// Keeps `candidates` as backup parents: none of this member's own subtree, each once.
    pub(super) fn set_backups(&mut self, candidates: Vec<Candidate<P>>) {
        let mut backups: Vec<Candidate<P>> = candidates
            .into_iter()
            .take(MAX_CANDIDATES)
            .filter(|c| c.peer != self.local && !self.children.contains_key(&c.peer))
            .collect();
        dedup_by_peer(&mut backups);
        self.backups = backups;
    }

    /// What this member's subtree offers, from its own slots and its children's reports.
    pub(super) fn aggregate(&self) -> Report<P> {
        let attached = self.is_attached();
        let me = self.me();
        let reports = || self.children.values().map(|c| &c.report);
        let spare = if attached && me.spare > 0 {
            Some(me)
        } else {
            reports().filter_map(|r| r.spare).min_by_key(|c| c.level)
        };
        let can_push = self
            .children
            .iter()
            .any(|(peer, c)| c.capacity == 0 || c.is_leaf(*peer));
        let pushdown = if attached && self.capacity() > 0 && can_push {
            Some(me)
        } else {
            reports().filter_map(|r| r.pushdown).min_by_key(|c| c.level)
        };
        let deepest = reports()
            .filter_map(|r| r.deepest)
            .max_by_key(|c| c.level)
            .or(Some(me));
        let own = if attached { me.spare } else { 0 };
        let room = reports().fold(own, |sum, r| sum.saturating_add(r.room));
        Report {
            spare,
            room,
            pushdown,
            deepest,
        }
    }

    /// Backup parents for this member's children: itself (for their children), its parent,
    /// its own nearest backups, and the children with the most room under them.
    pub(super) fn candidates_for_children(&self) -> Vec<Candidate<P>> {
        let room = self.aggregate().room;
        let mut candidates = vec![Candidate { room, ..self.me() }];
        if let Some(parent) = self.parent {
            let known = self.backups.iter().find(|c| c.peer == parent).copied();
            candidates.push(known.unwrap_or(Candidate {
                peer: parent,
                level: self.level.saturating_sub(1),
                spare: 0,
                room: 0,
            }));
        }
        let mut others: Vec<Candidate<P>> = self
            .backups
            .iter()
            .filter(|c| Some(c.peer) != self.parent)
            .copied()
            .collect();
        others.sort_by_key(|c| (c.spare == 0, c.room == 0, c.level));
        candidates.extend(others.into_iter().take(2));
        let level = self.level + 1;
        let mut roomy: Vec<Candidate<P>> = self
            .children
            .iter()
            .filter(|(_, child)| child.report.room > 0)
            .map(|(peer, child)| {
                let own = child.report.spare.filter(|s| s.peer == *peer);
                Candidate {
                    peer: *peer,
                    level,
                    spare: own.map_or(0, |s| s.spare),
                    room: child.report.room,
                }
            })
            .collect();
        roomy.sort_by_key(|c| std::cmp::Reverse(c.room));
        candidates.extend(roomy.into_iter().take(3));
        dedup_by_peer(&mut candidates);
        candidates.truncate(MAX_CANDIDATES);
        // Powers of two are precise enough to weigh choices by, and keep every join below
        // from changing the state (and sending it to every child).
        for candidate in &mut candidates {
            candidate.spare = coarse(candidate.spare);
            candidate.room = coarse(candidate.room);
        }
        candidates
    }

    /// Tells the parent what the subtree offers and the children what is above them, when
    /// either changed. Level changes go out at once; backup updates at most once per
    /// [`crate::OverlayConfig::state_interval`].
    pub(super) fn after_change(&mut self, now: Instant) {
        // A leaving member offers nothing: it told its parent so when it started leaving.
        if let Some(parent) = self.parent.filter(|_| self.phase == Phase::Member) {
            let report = self.aggregate();
            if self.reported.as_ref() != Some(&report) {
                self.reported = Some(report.clone());
                self.transmit(
                    parent,
                    Message::Report {
                        spare: report.spare,
                        room: report.room,
                        pushdown: report.pushdown,
                        deepest: report.deepest,
                    },
                );
            }
        }
        if self.children.is_empty() {
            self.state_due = None;
            return;
        }
        let desired = (self.level, self.candidates_for_children());
        if self.state_sent.as_ref() == Some(&desired) {
            self.state_due = None;
            return;
        }
        let level_changed = self
            .state_sent
            .as_ref()
            .is_none_or(|(l, _)| *l != self.level);
        if level_changed {
            self.send_state(now);
        } else if self.state_due.is_none() {
            let earliest = self
                .last_state_at
                .map_or(now, |at| at + self.config.state_interval);
            self.state_due = Some(earliest.max(now));
        }
    }

    pub(super) fn send_state(&mut self, now: Instant) {
        self.state_due = None;
        self.last_state_at = Some(now);
        let level = self.level;
        let candidates = self.candidates_for_children();
        let children: Vec<P> = self.children.keys().copied().collect();
        for child in children {
            let candidates = candidates.clone();
            self.transmit(child, Message::State { level, candidates });
        }
        self.state_sent = Some((level, candidates));
    }
}

/// The largest power of two not above `n` (0 for 0).
fn coarse(n: u32) -> u32 {
    n.checked_ilog2().map_or(0, |bits| 1 << bits)
}
