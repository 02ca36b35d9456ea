//! Members coming, going and changing how they take part, as the session's links follow
//! them: linking to a member at once on its arrival, closing its links when it says goodbye,
//! and linking afresh when it remade its own (a listener put on stage).

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Instant;

use chroom_types::{LinkId, RoomId};

use super::{LinkRole, Output, Participation, Publisher, RoomSession};

impl<P: Copy + Eq + Ord + Hash + Debug> RoomSession<P> {
    /// A member arrived in `room` (its first presence beat passed the registry check). In a
    /// conference every member publishes, so this links to it at once instead of waiting for
    /// the next DHT lookup or for a retry backed off while it was away (the lower id of a pair
    /// opens the link; a `publish_only` member, which subscribes to nobody, is linked to by
    /// every meeting member).
    pub fn handle_member_present(
        &mut self,
        now: Instant,
        room: RoomId,
        peer: P,
        publish_only: bool,
    ) {
        let links = self
            .rooms
            .get(&room)
            .is_some_and(|state| match state.participation {
                Participation::Meet { .. } => true,
                // A guest links with the others on stage (and finds the broadcaster in the DHT).
                Participation::Guest(_) => self.is_on_stage(room, peer),
                _ => false,
            });
        if links {
            self.subscribe_soon(now, room, peer, publish_only);
        }
    }

    /// Whether this node only publishes in `room` (subscribes to nobody there): its presence
    /// says so, so that meeting members with higher ids link to it.
    pub fn publishes_only(&self, room: RoomId) -> bool {
        self.rooms
            .get(&room)
            .is_some_and(|state| matches!(state.participation, Participation::Publish(_)))
    }

    /// A member said it is leaving `room`: its links there close now rather than when ICE
    /// notices (tens of seconds later), and nothing is retried until it is seen again.
    pub fn handle_member_left(&mut self, now: Instant, room: RoomId, peer: P) {
        self.close_member_links(now, room, peer, |role| {
            matches!(role, LinkRole::Receiving(_) | LinkRole::Sending(_))
        });
        // Gone from the room is gone from its relay tree: its children find another parent
        // now rather than when its link times out.
        if self
            .rooms
            .get(&room)
            .is_some_and(|state| state.tree.is_some())
        {
            self.tree_peer_gone(now, peer, room);
        }
    }

    /// A member remade its links in `room` without leaving (it takes part another way now,
    /// as a listener put on stage does): its side closed the links made for the old way.
    /// Those this node opened close here too, at once rather than when ICE notices, and it
    /// subscribes afresh where it should: a meeting member by the pair's rule, a listener
    /// always (the member may speak now). Those the member opened are left to its own new
    /// subscription, which replaces them, or to ICE: closing them here could close that new
    /// one if it arrived before the news.
    pub fn handle_member_relinked(
        &mut self,
        now: Instant,
        room: RoomId,
        peer: P,
        publish_only: bool,
    ) {
        self.close_member_links(now, room, peer, |role| {
            matches!(role, LinkRole::Receiving(_))
        });
        self.subscribe_soon(now, room, peer, publish_only);
    }

    /// Subscribes to `peer` in `room` now instead of at the next lookup or retry, if this
    /// node receives there, the pair's rule lets it and it is not linked or subscribing
    /// already. Of two meeting members the lower id subscribes; a `publish_only` member,
    /// which subscribes to nobody, is subscribed to by everyone; a listener subscribes to
    /// whoever publishes.
    pub(super) fn subscribe_soon(
        &mut self,
        now: Instant,
        room: RoomId,
        peer: P,
        publish_only: bool,
    ) {
        let local = self.local;
        let on_stage = self.is_on_stage(room, peer);
        let Some(state) = self.rooms.get_mut(&room) else {
            return;
        };
        let ours = match state.participation {
            Participation::Receive(_) => true,
            Participation::Meet { .. } => peer > local || publish_only,
            // The studio of a broadcast: its root and the members on its stage, in pairs.
            Participation::Broadcast { .. } | Participation::Guest(_) => peer > local && on_stage,
            _ => false,
        };
        if !ours || peer == local {
            return;
        }
        match state.publishers.entry(peer).or_insert(Publisher::Waiting {
            at: now,
            failures: 0,
        }) {
            Publisher::Waiting { at, .. } => *at = now,
            Publisher::Subscribing { .. } | Publisher::Linked { .. } => return,
        }
        self.handle_timeout(now);
    }

    /// Closes this node's media links with `peer` in `room` whose role `which` picks, and
    /// forgets what it published.
    pub(super) fn close_member_links(
        &mut self,
        now: Instant,
        room: RoomId,
        peer: P,
        which: impl Fn(&LinkRole<P>) -> bool,
    ) {
        let links: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, (r, role))| *r == room && role.peer() == peer && which(role))
            .map(|(link, _)| *link)
            .collect();
        for link in links {
            self.handle_link_closed(now, link);
            self.outputs.push_back(Output::CloseLink { link });
        }
        if let Some(state) = self.rooms.get_mut(&room) {
            state.publishers.remove(&peer);
        }
    }
}
