//! Moving members up: a member with a free slot invites the deepest member of its subtree
//! (two or more levels down) into it, and an invited member seeks that place.

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Instant;

use super::{Overlay, Phase, SeekReason};
use crate::message::{Candidate, Message};

impl<P: Copy + Ord + Hash + Debug> Overlay<P> {
    /// A member at `level` offered this one a slot: taken (as a search) if it is higher up.
    pub(super) fn on_invite(&mut self, now: Instant, from: P, level: u32) {
        let moves_up = level.saturating_add(1) < self.level;
        if self.phase == Phase::Member
            && self.parent.is_some()
            && self.parent != Some(from)
            && self.seek.is_none()
            && moves_up
        {
            let inviter = Candidate {
                peer: from,
                level,
                spare: 1,
                room: 1,
            };
            self.start_seek(now, SeekReason::Improve, vec![inviter]);
        }
    }

    /// With a free slot, invites the deepest member of the subtree (two or more levels down)
    /// to move up into it.
    pub(super) fn invite_deepest(&mut self, now: Instant) {
        if self.phase != Phase::Member || !self.is_attached() || self.spare() == 0 {
            return;
        }
        let deepest = self
            .children
            .values()
            .filter_map(|c| c.report.deepest)
            .filter(|c| {
                c.level >= self.level + 2 && !self.invites.iter().any(|(p, _)| *p == c.peer)
            })
            .max_by_key(|c| c.level);
        if let Some(deepest) = deepest {
            let level = self.level;
            self.transmit(deepest.peer, Message::Invite { level });
            self.invites
                .push((deepest.peer, now + self.config.request_timeout * 4));
        }
    }
}
