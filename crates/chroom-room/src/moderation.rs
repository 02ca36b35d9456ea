//! What hosts decided about members, per room: who is muted and who was removed. Sans-IO: the
//! node checks that a decision's author may moderate (the registry, through the session) before
//! it gets here, and carries out what changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chroom_types::{Moderation, RoomId};

/// Hosts' decisions in the rooms this node is in. A removed member stays removed until this
/// node leaves the room (the registry's ban is what lasts).
#[derive(Debug)]
pub struct Moderations<P> {
    rooms: HashMap<RoomId, Decided<P>>,
}

#[derive(Debug)]
struct Decided<P> {
    muted: BTreeSet<P>,
    removed: BTreeSet<P>,
    /// The decisions in force that this node made (as a host): told again to members who
    /// arrive, since gossip keeps nothing for them.
    own: BTreeMap<P, Moderation>,
}

impl<P> Default for Moderations<P> {
    fn default() -> Self {
        Self {
            rooms: HashMap::new(),
        }
    }
}

impl<P: Copy + Ord> Moderations<P> {
    /// A host decided `action` about `member` in `room`. Returns whether anything changed.
    pub fn apply(&mut self, room: RoomId, member: P, action: Moderation) -> bool {
        let decided = self.rooms.entry(room).or_insert_with(|| Decided {
            muted: BTreeSet::new(),
            removed: BTreeSet::new(),
            own: BTreeMap::new(),
        });
        match action {
            Moderation::Mute => decided.muted.insert(member),
            Moderation::Unmute => decided.muted.remove(&member),
            Moderation::Remove => {
                decided.muted.remove(&member);
                decided.removed.insert(member)
            }
        }
    }

    /// This node decided `action` about `member` in `room` (applied with [`Self::apply`] too).
    pub fn record_own(&mut self, room: RoomId, member: P, action: Moderation) {
        let Some(decided) = self.rooms.get_mut(&room) else {
            return;
        };
        match action {
            Moderation::Unmute => decided.own.remove(&member),
            Moderation::Mute | Moderation::Remove => decided.own.insert(member, action),
        };
    }

    /// The decisions this node made in `room` that are in force, to tell newcomers.
    pub fn own(&self, room: RoomId) -> Vec<(P, Moderation)> {
        self.rooms.get(&room).map_or_else(Vec::new, |decided| {
            decided.own.iter().map(|(p, a)| (*p, *a)).collect()
        })
    }

    /// Whether a host muted `member` in `room`.
    pub fn is_muted(&self, room: RoomId, member: P) -> bool {
        self.rooms
            .get(&room)
            .is_some_and(|decided| decided.muted.contains(&member))
    }

    /// Whether a host removed `member` from `room`.
    pub fn is_removed(&self, room: RoomId, member: P) -> bool {
        self.rooms
            .get(&room)
            .is_some_and(|decided| decided.removed.contains(&member))
    }

    /// Forgets a room this node left.
    pub fn forget_room(&mut self, room: RoomId) {
        self.rooms.remove(&room);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: RoomId = RoomId::from_bytes([1; 32]);
    const OTHER: RoomId = RoomId::from_bytes([2; 32]);

    #[test]
    fn mutes_are_lifted_and_removals_last_until_the_room_is_left() {
        let mut decided = Moderations::default();
        assert!(decided.apply(ROOM, 7u8, Moderation::Mute));
        assert!(!decided.apply(ROOM, 7, Moderation::Mute), "no change");
        assert!(decided.is_muted(ROOM, 7));
        assert!(!decided.is_muted(OTHER, 7), "per room");
        assert!(decided.apply(ROOM, 7, Moderation::Unmute));
        assert!(!decided.is_muted(ROOM, 7));

        decided.apply(ROOM, 8, Moderation::Mute);
        assert!(decided.apply(ROOM, 8, Moderation::Remove));
        assert!(decided.is_removed(ROOM, 8));
        assert!(!decided.is_muted(ROOM, 8), "removal supersedes a mute");
        decided.forget_room(ROOM);
        assert!(!decided.is_removed(ROOM, 8));
    }

    #[test]
    fn this_nodes_own_decisions_in_force_are_kept_to_tell_again() {
        let mut decided = Moderations::default();
        for (member, action) in [(1u8, Moderation::Mute), (2, Moderation::Remove)] {
            decided.apply(ROOM, member, action);
            decided.record_own(ROOM, member, action);
        }
        decided.apply(ROOM, 3, Moderation::Mute);
        assert_eq!(
            decided.own(ROOM),
            [(1, Moderation::Mute), (2, Moderation::Remove)],
            "another host's mute of 3 is not this node's to repeat"
        );
        decided.apply(ROOM, 1, Moderation::Unmute);
        decided.record_own(ROOM, 1, Moderation::Unmute);
        assert_eq!(decided.own(ROOM), [(2, Moderation::Remove)]);
        decided.forget_room(ROOM);
        assert!(decided.own(ROOM).is_empty());
    }
}
