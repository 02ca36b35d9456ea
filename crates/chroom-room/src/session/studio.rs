//! A broadcast's studio: the broadcaster and the members on its stage, linked as meeting pairs
//! outside the relay tree while they are on stage. The broadcaster's own tracks go to the
//! studio, the program its page composes to the audience.

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Instant;

use chroom_types::{LinkId, RoomId};

use super::{LinkRole, Participation, RoomSession};

impl<P: Copy + Eq + Ord + Hash + Debug> RoomSession<P> {
    /// The links of a broadcast this node is live in to the members on its stage (its
    /// studio): they get the broadcaster's own tracks, never the program composed for the
    /// audience, which holds their own voices.
    pub fn studio_links(&self, room: RoomId) -> Vec<LinkId> {
        let live = self
            .rooms
            .get(&room)
            .is_some_and(|state| matches!(state.participation, Participation::Broadcast { .. }));
        if !live {
            return Vec::new();
        }
        self.links
            .iter()
            .filter(|(_, (r, role))| {
                *r == room && matches!(role, LinkRole::Receiving(_) | LinkRole::Sending(_))
            })
            .map(|(link, _)| *link)
            .collect()
    }

    /// Whether `peer` is on the stage of a broadcast this node is live in: they link outside
    /// the tree, as a meeting pair (the studio).
    pub(super) fn in_studio(&self, room: RoomId, peer: P) -> bool {
        self.rooms
            .get(&room)
            .is_some_and(|state| matches!(state.participation, Participation::Broadcast { .. }))
            && self.is_on_stage(room, peer)
    }

    /// A broadcast's studio is its stage: who leaves the stage (`departed`) leaves the
    /// studio, whatever its role (its media would reach nobody: viewers are fed by the tree).
    pub(super) fn leave_studio(&mut self, now: Instant, room: RoomId, departed: Vec<P>) {
        let studio = self.rooms.get(&room).is_some_and(|state| {
            matches!(
                state.participation,
                Participation::Broadcast { .. } | Participation::Guest(_)
            )
        });
        if !studio {
            return;
        }
        for peer in departed {
            self.close_member_links(now, room, peer, |role| {
                matches!(role, LinkRole::Receiving(_) | LinkRole::Sending(_))
            });
        }
    }

    /// Whether `room`'s orchestrator put `peer` on stage.
    pub(super) fn is_on_stage(&self, room: RoomId, peer: P) -> bool {
        self.stage.get(&room).is_some_and(|s| s.contains(&peer))
    }
}
