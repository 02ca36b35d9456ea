//! Answering a join: take the joiner, push a viewer down for it, or point it elsewhere.

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Instant;

use super::{Child, Overlay, OverlayEvent, Phase, Report, dedup_by_peer, draw_by};
use crate::message::{Candidate, MAX_CANDIDATES, Message};

/// What a join request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinAnswer<P> {
    /// Not here (not attached, leaving, or the asker is this member's parent).
    Refuse,
    /// The asker is a child already: accepted again (the first answer was slow).
    Again,
    /// A free slot (or an invitation) takes it.
    Take,
    /// It takes this viewer's (or idle relayer's) slot, which moves down under it.
    PushDown(P),
    /// Pointed further down (or up, if this member is too deep for it).
    Redirect,
}

impl<P: Copy + Ord + Hash + Debug> Overlay<P> {
    /// Whether a join from `from` would make it a child here now (rather than be redirected or
    /// refused). A driver that must check a joiner's rights before taking it can answer the
    /// others at once: a redirect only points at members of the tree.
    pub fn would_take(&self, from: P, below_level: Option<u32>, capacity: u32) -> bool {
        matches!(
            self.join_answer(from, below_level, capacity),
            JoinAnswer::Again | JoinAnswer::Take | JoinAnswer::PushDown(_)
        )
    }

    fn join_answer(&self, from: P, below_level: Option<u32>, capacity: u32) -> JoinAnswer<P> {
        if self.phase != Phase::Member || !self.is_attached() || self.parent == Some(from) {
            return JoinAnswer::Refuse;
        }
        if self.children.contains_key(&from) {
            return JoinAnswer::Again;
        }
        if below_level.is_none_or(|below| self.level < below) {
            let invited = self.invites.iter().any(|(p, _)| *p == from);
            if self.spare() > 0 || invited {
                return JoinAnswer::Take;
            }
            // SplitStream's push-down: relayers belong near the root, viewers below them. A
            // relayer that must stay this high (it feeds children) may also push down a
            // relayer that feeds nobody, which can go anywhere.
            let viewer = self.children.iter().find(|(_, c)| c.capacity == 0);
            let idle_relayer = self
                .children
                .iter()
                .find(|(peer, c)| c.capacity > 0 && c.is_leaf(**peer))
                .filter(|_| below_level.is_some());
            if capacity > 0
                && let Some((&pushed, _)) = viewer.or(idle_relayer)
            {
                return JoinAnswer::PushDown(pushed);
            }
        }
        JoinAnswer::Redirect
    }

    pub(super) fn on_join(
        &mut self,
        now: Instant,
        from: P,
        below_level: Option<u32>,
        capacity: u32,
    ) {
        match self.join_answer(from, below_level, capacity) {
            JoinAnswer::Refuse => self.transmit(from, Message::Refused),
            JoinAnswer::Again => {
                // A repeated request (the answer was slow): answer the same.
                let candidates = self.candidates_for_children();
                let level = self.level;
                self.transmit(from, Message::Accepted { level, candidates });
            }
            JoinAnswer::Take => self.accept(now, from, capacity),
            JoinAnswer::PushDown(pushed) => {
                self.children.remove(&pushed);
                self.event(OverlayEvent::ChildRemoved { child: pushed });
                let to = Candidate {
                    peer: from,
                    level: self.level + 1,
                    spare: capacity,
                    room: capacity,
                };
                self.transmit(pushed, Message::Evicted { to });
                self.accept(now, from, capacity);
            }
            JoinAnswer::Redirect => self.redirect(from, below_level, capacity),
        }
    }

    fn accept(&mut self, now: Instant, child: P, capacity: u32) {
        self.children.insert(
            child,
            Child {
                capacity,
                report: Report::default(),
            },
        );
        self.invites.retain(|(p, _)| *p != child);
        let candidates = self.candidates_for_children();
        let level = self.level;
        self.transmit(child, Message::Accepted { level, candidates });
        self.event(OverlayEvent::ChildAdded { child });
        self.after_change(now);
    }

    /// Points a joiner this member cannot take further down: at children drawn in proportion to
    /// the free slots under them (and, for a relayer, at relayers that can push a viewer down),
    /// or, when this member's level is too deep for the joiner, at the members above it.
    ///
    /// Drawing by free slots rather than naming the single best slot keeps joiners that arrive
    /// together from racing for one slot that fills before the reports catch up; the walk
    /// still stops at the first free slot on its way down, so joiners land as near the root as
    /// the free slots allow.
    fn redirect(&mut self, from: P, below_level: Option<u32>, capacity: u32) {
        let fits = |c: &Candidate<P>| c.peer != from && below_level.is_none_or(|b| c.level < b);
        let level = self.level + 1;
        // Free slots under a few children, drawn by how many there are: naming the same
        // few to every joiner until the reports catch up would send them all to one place.
        let spots: Vec<Candidate<P>> = self
            .children
            .values()
            .filter_map(|c| c.report.spare)
            .filter(fits)
            .collect();
        let mut candidates = draw_by(&spots, 3, |c| c.spare, &mut self.rng);
        candidates.extend(
            self.draw_children_by_room(2)
                .into_iter()
                .map(|(peer, room)| Candidate {
                    peer,
                    level,
                    spare: 0,
                    room,
                })
                .filter(fits),
        );
        if capacity > 0 {
            let mut pushdown: Vec<Candidate<P>> = self
                .children
                .values()
                .filter_map(|c| c.report.pushdown)
                .filter(fits)
                // A viewer's slot is as good as a free one to a relayer.
                .map(|c| Candidate { spare: 1, ..c })
                .collect();
            pushdown.sort_by_key(|c| c.level);
            candidates.extend(pushdown.into_iter().take(2));
        }
        if below_level.is_some_and(|b| self.level >= b) {
            // Too deep for the joiner: only the members above can take it.
            candidates.extend(self.backups.iter().copied().filter(fits));
        } else if candidates.is_empty() {
            // A dead end: the reports that led here were stale. Members beside this one
            // (its parent's children with room) first; the ones above, whose room counts
            // whole subtrees, would only send the joiner down again.
            let level = self.level;
            let (beside, above): (Vec<Candidate<P>>, Vec<Candidate<P>>) = self
                .backups
                .iter()
                .copied()
                .filter(fits)
                .partition(|c| c.level >= level);
            if beside.iter().any(|c| c.room > 0) {
                candidates.extend(beside);
            } else {
                candidates.extend(beside.into_iter().chain(above));
            }
        }
        dedup_by_peer(&mut candidates);
        candidates.truncate(MAX_CANDIDATES);
        if candidates.is_empty() {
            self.transmit(from, Message::Refused);
        } else {
            self.transmit(from, Message::Redirected { candidates });
        }
    }

    /// Up to `count` distinct children, each drawn with probability proportional to the free
    /// slots in its subtree, with those free slots.
    fn draw_children_by_room(&mut self, count: usize) -> Vec<(P, u32)> {
        let pool: Vec<(P, u32)> = self
            .children
            .iter()
            .filter(|(_, c)| c.report.room > 0)
            .map(|(peer, c)| (*peer, c.report.room))
            .collect();
        draw_by(&pool, count, |(_, room)| *room, &mut self.rng)
    }
}
