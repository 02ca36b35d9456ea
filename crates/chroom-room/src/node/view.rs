//! What the node core shows: its session, counters, who is in a room and what its pages should
//! say is wrong there.

use std::fmt::Debug;
use std::hash::Hash;

use chroom_types::{Account, LinkId, Membership, RoomId};

use super::{NodeCore, NodeCounters, Participant, RegistryStatus, RoomStatus};
use crate::access::AccessFacts;
use crate::session::RoomSession;

impl<P: Copy + Eq + Ord + Hash + Debug> NodeCore<P> {
    /// The room session this core drives.
    pub fn session(&self) -> &RoomSession<P> {
        &self.session
    }

    /// A number that grows whenever what a page shows of a room may have changed (who is
    /// present, over which link, muted or sharing a screen): a page refreshes when it moves.
    pub fn view_version(&self) -> u64 {
        self.view_version
    }

    /// What the node counts.
    pub fn counters(&self) -> &NodeCounters {
        &self.counters
    }

    /// Peers whose identity binding holds now.
    pub fn peers_with_accounts(&self) -> usize {
        self.bindings.len()
    }

    /// Rooms this node is present in as a person.
    pub fn is_present(&self, room: RoomId) -> bool {
        self.present_in.contains(&room)
    }

    /// Links whose arriving microphone is dropped now.
    pub fn silenced(&self) -> impl Iterator<Item = LinkId> + '_ {
        self.silenced.iter().copied()
    }

    /// What `room`'s pages should say is wrong: the registry not answering, another
    /// broadcaster winning over this one.
    pub fn room_status(&self, room: RoomId) -> RoomStatus<P> {
        let registry = match self.session.registry_unreachable_since() {
            None => RegistryStatus::Reachable,
            Some(since) => {
                let for_secs = self.now.saturating_duration_since(since).as_secs();
                if self.session.registry_cache_expired() {
                    RegistryStatus::Unreachable { for_secs }
                } else {
                    RegistryStatus::CacheServing { for_secs }
                }
            }
        };
        let with_account = |peer: P| (peer, self.roster.account_of(room, peer));
        RoomStatus {
            registry,
            outranked_by: self.session.tree_outranked_by(room).map(with_account),
            watching: self
                .session
                .tree_root(room)
                .filter(|root| *root != self.local)
                .map(with_account),
        }
    }

    /// Who is in `room`: this node (if present as a person) first, then every member heard,
    /// with the roles this node knows from the registry.
    pub fn participants(&self, room: RoomId) -> Vec<Participant<P>> {
        let role_of = |account: Option<Account>| match self.session.facts(room, account?)? {
            AccessFacts::Known {
                membership: Membership::Member(role),
                ..
            } => Some(role),
            _ => None,
        };
        let assignments = self.assignments(room).unwrap_or_default();
        let hosting = |peer| assignments.hosts.contains(&peer);
        let acting_host = |peer| hosting(peer) && !assignments.hosts_on_chain;
        let presenting = |peer| assignments.presenter == Some(peer);
        let hand = |peer| assignments.hands.iter().position(|p| *p == peer);
        let on_stage = |peer| assignments.stage.contains(&peer);
        let asking_to_present = |peer| assignments.waiting_to_present.contains(&peer);
        let mut participants = Vec::new();
        if self.present_in.contains(&room) {
            participants.push(Participant {
                peer: self.local,
                account: self.account,
                role: role_of(self.account),
                is_self: true,
                sharing_screen: self.sharing_screen.contains(&room),
                muted_by_host: self.moderation.is_muted(room, self.local),
                hosting: hosting(self.local),
                acting_host: acting_host(self.local),
                presenting: presenting(self.local),
                hand: hand(self.local),
                on_stage: on_stage(self.local),
                asking_to_present: asking_to_present(self.local),
                display_name: self.display_name.clone(),
            });
        }
        participants.extend(
            self.roster
                .members(room)
                .into_iter()
                .map(|(peer, present)| Participant {
                    peer,
                    account: present.account,
                    role: role_of(present.account),
                    is_self: false,
                    sharing_screen: present.sharing_screen,
                    muted_by_host: self.moderation.is_muted(room, peer),
                    hosting: hosting(peer),
                    acting_host: acting_host(peer),
                    presenting: presenting(peer),
                    hand: hand(peer),
                    on_stage: on_stage(peer),
                    asking_to_present: asking_to_present(peer),
                    display_name: present.display_name.clone(),
                }),
        );
        participants
    }
}
