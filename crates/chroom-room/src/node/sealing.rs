//! Sealed room content on a node: sealing what it publishes, opening what members sealed,
//! asking authors for their keys and handing its own to members ([`crate::sealing`]).

use std::fmt::Debug;
use std::hash::Hash;

use chroom_proto::RoomKey;

use super::*;
use crate::sealing::Opened;

/// How long a sealed message waits for its author's key before it is dropped unread.
pub(super) const KEY_WAIT: Duration = Duration::from_secs(10);

/// After a refused ask (the author has not heard this node's beat yet, or is looking up its
/// rights), when to ask again.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// Sealed messages one author may have waiting for its key on this node.
const MAX_WAITING_PER_AUTHOR: usize = 64;

/// Sealed messages all authors together may have waiting.
const MAX_WAITING: usize = 1024;

/// Messages of one author waiting for its key.
#[derive(Debug)]
pub(super) struct KeyWait {
    parked: Vec<GossipId>,
    /// When to ask (again); `None` while an ask is in flight.
    ask_at: Option<Instant>,
    give_up_at: Instant,
}

impl<P: Copy + Eq + Ord + Hash + Debug> NodeCore<P> {
    /// What this node publishes in `room`, as it travels: content sealed with this node's
    /// key for the room, anything else as it is. `None`: it cannot be sealed (larger than
    /// ChaCha20 seals), so it must not go.
    pub fn seal(&mut self, room: RoomId, say: Say<P>) -> Option<Say<P>> {
        match say.into_content() {
            Ok(body) => self.sealing.seal(room, &body).map(Say::Sealed),
            Err(control) => Some(control),
        }
    }

    /// `peer` asks for the key this node seals with in `room` (`request`): handed to members
    /// present there whose right to listen the registry confirms, refused to anyone else.
    pub fn handle_room_key_request(
        &mut self,
        now: Instant,
        request: InboundId,
        peer: P,
        room: RoomId,
    ) {
        self.now = self.now.max(now);
        match self.check_present_listener(now, peer, room, "room keys") {
            Ok(()) => {
                self.key_holders.entry(room).or_default().insert(peer);
                let key = self.sealing.own_key(room);
                self.outputs
                    .push_back(NodeOutput::ServeRoomKey { request, key });
            }
            Err(error) => self.refuse(request, peer, error),
        }
    }

    /// `peer`'s answer to a [`NodeOutput::AskRoomKey`]: its messages waiting for the key are
    /// opened and judged, or, refused, asked for again within [`KEY_WAIT`].
    pub fn handle_room_key(
        &mut self,
        now: Instant,
        peer: P,
        room: RoomId,
        answer: Result<RoomKey, SignalError>,
    ) {
        self.now = self.now.max(now);
        match answer {
            Ok(key) => {
                if self.present_in.contains(&room) {
                    self.sealing.learn(room, peer, key);
                }
                let parked = self
                    .key_waits
                    .remove(&(room, peer))
                    .map(|wait| wait.parked)
                    .unwrap_or_default();
                for id in parked {
                    if let Some(pending) = self.gossip.remove(&id) {
                        self.judge_heard(now, id, pending, false);
                    }
                }
            }
            Err(error) => {
                tracing::debug!(?peer, %error, "a member did not hand its room key");
                if let Some(wait) = self.key_waits.get_mut(&(room, peer)) {
                    wait.ask_at = Some(now + ASK_AGAIN_AFTER);
                }
            }
        }
    }

    /// Opens a sealed message, or parks it until its author's key arrives. Returns the
    /// message to judge, if it can be judged now.
    pub(super) fn open_heard(
        &mut self,
        now: Instant,
        id: GossipId,
        pending: PendingGossip<P>,
        may_wait: bool,
    ) -> Option<PendingGossip<P>> {
        let Say::Sealed(sealed) = &pending.heard.say else {
            if pending.heard.say.is_content() {
                self.reject_gossip(id, "content travels sealed");
                return None;
            }
            return Some(pending);
        };
        let room = pending.heard.room;
        match self.sealing.open(room, pending.author, sealed) {
            Opened::Content(body) => match Say::from_content(body) {
                Ok(say) => Some(PendingGossip {
                    heard: Heard {
                        say,
                        ..pending.heard
                    },
                    ..pending
                }),
                Err(_) => {
                    self.reject_gossip(id, "sealed content that is not content");
                    None
                }
            },
            Opened::Bad(reason) => {
                self.reject_gossip(id, &format!("a sealed message: {reason}"));
                None
            }
            // A relayer is on the topic without taking part: content is not for it.
            Opened::NoKey if !self.present_in.contains(&room) => {
                self.ignore_gossip(id, "sealed content of a room this node is not present in");
                None
            }
            Opened::NoKey if may_wait => {
                self.park(now, id, pending);
                None
            }
            Opened::NoKey => {
                self.counters.sealed_unread += 1;
                self.ignore_gossip(id, "sealed with a key its author did not hand this node");
                None
            }
        }
    }

    fn park(&mut self, now: Instant, id: GossipId, pending: PendingGossip<P>) {
        let (room, author) = (pending.heard.room, pending.author);
        let waiting: usize = self.key_waits.values().map(|w| w.parked.len()).sum();
        let wait = self.key_waits.entry((room, author)).or_insert(KeyWait {
            parked: Vec::new(),
            ask_at: Some(now),
            give_up_at: now + KEY_WAIT,
        });
        if wait.parked.len() >= MAX_WAITING_PER_AUTHOR || waiting >= MAX_WAITING {
            self.counters.sealed_unread += 1;
            return self.ignore_gossip(id, "too many messages wait for their authors' keys");
        }
        wait.parked.push(id);
        self.gossip.insert(id, pending);
        self.ask_for_keys(now);
    }

    /// Asks the authors whose keys are due; drops what waited too long.
    pub(super) fn ask_for_keys(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for (&(room, peer), wait) in &mut self.key_waits {
            if wait.give_up_at <= now {
                expired.push((room, peer));
            } else if wait.ask_at.is_some_and(|at| at <= now) {
                wait.ask_at = None;
                self.outputs
                    .push_back(NodeOutput::AskRoomKey { room, peer });
            }
        }
        for key in expired {
            let Some(wait) = self.key_waits.remove(&key) else {
                continue;
            };
            for id in wait.parked {
                self.counters.sealed_unread += 1;
                self.ignore_gossip(id, "its author handed no key in time");
            }
        }
    }

    /// When waiting messages next need attention.
    pub(super) fn key_waits_due(&self) -> Option<Instant> {
        self.key_waits
            .values()
            .flat_map(|w| [w.ask_at, Some(w.give_up_at)])
            .flatten()
            .min()
    }

    /// `peer` is no longer present in `room`: its keys are forgotten, and if it held this
    /// node's key, a new one is made (it reads nothing said from now on).
    pub(super) fn seal_member_gone(&mut self, room: RoomId, peer: P) {
        self.sealing.forget_member(room, peer);
        if let Some(holders) = self.key_holders.get_mut(&room)
            && holders.remove(&peer)
        {
            holders.clear();
            self.sealing.renew(room);
        }
    }

    /// The registry no longer lets `account` listen in `room` (banned, or its role taken):
    /// members proving it that hold this node's key no longer read what it seals, from now
    /// on, without waiting for their beats to stop.
    pub(super) fn seal_account_revoked(&mut self, room: RoomId, account: Account) {
        let revoked: Vec<P> = self
            .key_holders
            .get(&room)
            .into_iter()
            .flatten()
            .copied()
            .filter(|peer| self.roster.account_of(room, *peer) == Some(account))
            .collect();
        for peer in revoked {
            self.seal_member_gone(room, peer);
        }
    }

    /// This node left `room`: every key of it goes, and what waited for one is dropped.
    pub(super) fn forget_room_keys(&mut self, room: RoomId) {
        self.sealing.forget_room(room);
        self.key_holders.remove(&room);
        let waits: Vec<_> = self
            .key_waits
            .keys()
            .filter(|(r, _)| *r == room)
            .copied()
            .collect();
        for key in waits {
            if let Some(wait) = self.key_waits.remove(&key) {
                for id in wait.parked {
                    self.ignore_gossip(id, "this node left the room");
                }
            }
        }
    }
}
