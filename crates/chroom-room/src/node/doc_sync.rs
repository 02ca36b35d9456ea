//! Catching up on a room's shared documents: gossip carries edits as they are made, but a node
//! that joins late, was away, or lost an edit on the way asks a member for what it lacks
//! (Yjs SyncStep1 → SyncStep2) over signaling, in parts ([`chroom_proto::DocPull`]).
//!
//! - A node pulls from one member as soon as one is present after it joins, then every
//!   [`SYNC_INTERVAL`] from the next member in turn (anti-entropy: an edit lost in gossip
//!   reaches everyone within a few rounds).
//! - A member serving a pull whose state vector shows the asker holds edits it lacks (made
//!   while the two were apart) pulls from the asker at once, so such edits spread both ways.
//! - Only members whose role may edit are pulled from: a diff carries other authors' edits,
//!   which this node cannot check one by one; a member allowed to edit could have written them
//!   itself.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chroom_docs::Access;
use chroom_proto::{
    DocPart, DocPull, ErrorCode, MAX_DOC_DIFF_BYTES, MAX_DOC_NAMES, MAX_DOC_PART_BYTES, SignalError,
};
use chroom_types::{Action, MAX_DOC_UPDATE_BYTES, RoomId};

use super::docs::RoomDocs;
use super::{DocEdit, NodeCore, NodeOutput, Say};
use crate::access::AccessPolicy;
use crate::session::InboundId;

/// How often a node compares its documents with a member's.
pub(super) const SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// How soon a round that failed is followed by another.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Longest a pull waits for its part before the round is given up.
const PART_TIMEOUT: Duration = Duration::from_secs(15);

/// One room's catching up.
#[derive(Debug)]
pub(super) struct Syncing<P> {
    /// The round under way, if any.
    round: Option<Round<P>>,
    /// When the next round starts (if a member that may edit is present then).
    next_round: Instant,
    /// Members to pull from before the usual turn: they hold edits this node lacks.
    ahead: VecDeque<P>,
    /// The member pulled from last, so rounds go round the room.
    last_peer: Option<P>,
    /// Members this node pulled from since they arrived. A member that arrives may hold
    /// edits made while away, deletions among them, which its state vector does not show:
    /// its first pull is answered by pulling from it.
    pulled_back: BTreeSet<P>,
}

#[derive(Debug)]
struct Round<P> {
    peer: P,
    /// Documents still to pull after the current one.
    left: VecDeque<String>,
    /// The document being pulled (`None`: the room's names are asked for).
    current: Option<Partial>,
    /// When the part asked for is given up on.
    deadline: Instant,
}

/// A diff arriving in parts.
#[derive(Debug)]
struct Partial {
    name: String,
    /// The state vector the diff is against: every part names it again (the member answers
    /// each part afresh).
    state_vector: Bytes,
    received: Vec<u8>,
    total: u32,
    digest: [u8; 32],
}

impl<P> Syncing<P> {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            round: None,
            next_round: now,
            ahead: VecDeque::new(),
            last_peer: None,
            pulled_back: BTreeSet::new(),
        }
    }

    pub(super) fn due(&self) -> Instant {
        self.round.as_ref().map_or(self.next_round, |r| r.deadline)
    }
}

impl<P: Copy + Eq + Ord + Hash + Debug> NodeCore<P> {
    /// `peer` asks for what it lacks of one of `room`'s documents. Documents go to members
    /// present in the room whose registry verdict allows them in (as files do); answered with
    /// [`NodeOutput::ServeDocPart`].
    pub fn handle_doc_pull(&mut self, now: Instant, request: InboundId, peer: P, room: RoomId) {
        self.now = self.now.max(now);
        match self.check_present_listener(now, peer, room, "documents") {
            Ok(()) => self.outputs.push_back(NodeOutput::ServeDocPart { request }),
            Err(error) => self.refuse(request, peer, error),
        }
    }

    /// The part of a document `pull` (from `peer`, accepted) asks for. A pull showing that
    /// `peer` holds edits this node lacks has this node pull from it next.
    pub fn doc_part(&mut self, peer: P, pull: &DocPull) -> Result<DocPart, SignalError> {
        let malformed =
            |e: &dyn std::fmt::Display| SignalError::new(ErrorCode::Malformed, e.to_string());
        let Some(docs) = self.docs.get(&pull.room) else {
            return Err(SignalError::new(ErrorCode::NotInRoom, "not in that room"));
        };
        let Some(name) = &pull.name else {
            return Ok(DocPart {
                names: docs
                    .documents
                    .iter()
                    .take(MAX_DOC_NAMES)
                    .map(|(name, _)| name.as_str().to_owned())
                    .collect(),
                ..DocPart::default()
            });
        };
        let diff = docs
            .documents
            .diff(name, &pull.state_vector)
            .map_err(|e| malformed(&e))?;
        let total = u32::try_from(diff.len())
            .ok()
            .filter(|total| *total <= MAX_DOC_DIFF_BYTES)
            .ok_or_else(|| SignalError::new(ErrorCode::TooLarge, "the document is too large"))?;
        let digest = *blake3::hash(&diff).as_bytes();
        if pull.digest.is_some_and(|asked| asked != digest) {
            return Err(SignalError::new(
                ErrorCode::Unavailable,
                "the document changed since the first part: pull again from the start",
            ));
        }
        let start = pull.offset as usize;
        let Some(rest) = diff.get(start..) else {
            return Err(SignalError::new(
                ErrorCode::Malformed,
                "an offset past the diff",
            ));
        };
        let data = Bytes::copy_from_slice(&rest[..rest.len().min(MAX_DOC_PART_BYTES)]);
        let first = pull.offset == 0;
        let state_vector = if first {
            docs.documents
                .state_vector(name)
                .map_err(|e| malformed(&e))?
                .into()
        } else {
            Bytes::new()
        };
        let holds_more = first
            && (!docs.syncing.pulled_back.contains(&peer)
                || docs
                    .documents
                    .lacks(name, &pull.state_vector)
                    .unwrap_or(false));
        if holds_more && self.may_edit_as(pull.room, peer) {
            self.pull_soon(pull.room, peer);
        }
        Ok(DocPart {
            names: Vec::new(),
            data,
            total,
            digest,
            state_vector,
        })
    }

    /// The answer to a [`NodeOutput::PullDoc`] from `peer` in `room`.
    pub fn handle_doc_part(
        &mut self,
        now: Instant,
        room: RoomId,
        peer: P,
        answer: Result<DocPart, String>,
    ) {
        self.now = self.now.max(now);
        let Some(RoomDocs {
            documents, syncing, ..
        }) = self.docs.get_mut(&room)
        else {
            return;
        };
        let Some(round) = syncing.round.as_mut().filter(|r| r.peer == peer) else {
            return;
        };
        let part = match answer {
            Ok(part) => part,
            Err(reason) => {
                tracing::debug!(room = %room.fmt_short(), ?peer, %reason, "document pull failed");
                return self.fail_round(now, room);
            }
        };
        let Some(partial) = round.current.as_mut() else {
            // The room's names: pull each, this node's own too (the member may lack them).
            let mut names: BTreeSet<String> = part.names.into_iter().collect();
            names.extend(documents.iter().map(|(n, _)| n.as_str().to_owned()));
            round.left = names.into_iter().take(MAX_DOC_NAMES).collect();
            return self.pull_next(now, room);
        };
        if partial.received.is_empty() {
            partial.total = part.total;
            partial.digest = part.digest;
            // Edits made here while apart from the member (or lost on their way) go to the
            // whole room at once, when they fit one message; a larger lot waits for the
            // members' own pulls.
            let missed = documents
                .ahead_of(&partial.name, &part.state_vector)
                .unwrap_or(false)
                .then(|| documents.diff(&partial.name, &part.state_vector).ok())
                .flatten()
                .filter(|diff| diff.len() <= MAX_DOC_UPDATE_BYTES);
            if let Some(update) = missed {
                let name = partial.name.clone();
                self.outputs.push_back(NodeOutput::Publish {
                    room,
                    say: Say::DocUpdate { name, update },
                });
            }
        }
        let fits = part.total == partial.total
            && part.digest == partial.digest
            && partial.received.len() + part.data.len() <= partial.total as usize
            && (!part.data.is_empty() || partial.total == 0);
        if !fits {
            tracing::debug!(room = %room.fmt_short(), ?peer, "a document part does not fit the diff");
            return self.fail_round(now, room);
        }
        partial.received.extend_from_slice(&part.data);
        if partial.received.len() < partial.total as usize {
            let pull = DocPull {
                room,
                name: Some(partial.name.clone()),
                state_vector: partial.state_vector.clone(),
                offset: partial.received.len() as u32,
                digest: Some(partial.digest),
            };
            round.deadline = now + PART_TIMEOUT;
            self.outputs
                .push_back(NodeOutput::PullDoc { room, peer, pull });
            return;
        }
        let Some(Partial {
            name,
            received,
            digest,
            ..
        }) = round.current.take()
        else {
            return;
        };
        if blake3::hash(&received).as_bytes() != &digest {
            tracing::debug!(room = %room.fmt_short(), ?peer, "a document diff does not match its digest");
            return self.fail_round(now, room);
        }
        self.apply_diff(room, &name, received);
        self.pull_next(now, room);
    }

    /// A diff a member sent, applied; the pages get it if it changed the document.
    fn apply_diff(&mut self, room: RoomId, name: &str, diff: Vec<u8>) {
        let now = self.now;
        let Some(docs) = self.docs.get_mut(&room) else {
            return;
        };
        match docs.documents.handle_sync_step2(Access::Edit, name, &diff) {
            Ok(applied) => {
                if applied.changed {
                    docs.changed(now, name);
                    self.outputs.push_back(NodeOutput::DocUpdated(DocEdit {
                        room,
                        name: name.to_owned(),
                        update: diff,
                    }));
                }
            }
            Err(e) => {
                self.counters.doc_updates_refused += 1;
                tracing::info!(room = %room.fmt_short(), doc = %name, error = %e, "refused a document diff");
            }
        }
    }

    /// Pulls the round's next document, or ends the round.
    fn pull_next(&mut self, now: Instant, room: RoomId) {
        let Some(RoomDocs {
            documents, syncing, ..
        }) = self.docs.get_mut(&room)
        else {
            return;
        };
        let Some(round) = syncing.round.as_mut() else {
            return;
        };
        let Some(name) = round.left.pop_front() else {
            // Pulled whole: what the member holds is here now.
            let peer = round.peer;
            syncing.pulled_back.insert(peer);
            return self.end_round(now, room);
        };
        let state_vector = Bytes::from(documents.state_vector(&name).unwrap_or_default());
        round.current = Some(Partial {
            name: name.clone(),
            state_vector: state_vector.clone(),
            received: Vec::new(),
            total: 0,
            digest: [0; 32],
        });
        round.deadline = now + PART_TIMEOUT;
        let pull = DocPull {
            room,
            name: Some(name),
            state_vector,
            offset: 0,
            digest: None,
        };
        let peer = round.peer;
        self.outputs
            .push_back(NodeOutput::PullDoc { room, peer, pull });
    }

    /// A round that could not finish (the member had not heard of this node yet, left, or
    /// sent what does not fit): the next member is asked soon.
    fn fail_round(&mut self, now: Instant, room: RoomId) {
        self.end_round(now, room);
        if let Some(RoomDocs { syncing, .. }) = self.docs.get_mut(&room) {
            syncing.next_round = syncing.next_round.min(now + RETRY_AFTER_FAILURE);
        }
    }

    fn end_round(&mut self, now: Instant, room: RoomId) {
        if let Some(RoomDocs { syncing, .. }) = self.docs.get_mut(&room) {
            syncing.round = None;
            // Members known to hold more go first, without waiting for the next turn.
            syncing.next_round = if syncing.ahead.is_empty() {
                now + SYNC_INTERVAL
            } else {
                now
            };
        }
    }

    /// Has this node pull from `peer` next, at once if no round is under way.
    fn pull_soon(&mut self, room: RoomId, peer: P) {
        let now = self.now;
        let Some(RoomDocs { syncing, .. }) = self.docs.get_mut(&room) else {
            return;
        };
        syncing.pulled_back.insert(peer);
        if !syncing.ahead.contains(&peer) && syncing.round.as_ref().is_none_or(|r| r.peer != peer) {
            syncing.ahead.push_back(peer);
        }
        if syncing.round.is_none() {
            syncing.next_round = now;
        }
    }

    /// Whether `peer`'s role in `room` lets it edit, as this node knows it.
    fn may_edit_as(&self, room: RoomId, peer: P) -> bool {
        self.session.access_policy() == AccessPolicy::Open
            || self
                .roster
                .account_of(room, peer)
                .and_then(|account| self.session.facts(room, account))
                .is_some_and(|facts| facts.allows(Action::Edit))
    }

    /// Starts the rounds that are due and gives up parts that never came.
    pub(super) fn sync_docs(&mut self, now: Instant) {
        let rooms: Vec<RoomId> = self
            .docs
            .iter()
            .filter(|(_, d)| d.syncing.due() <= now)
            .map(|(room, _)| *room)
            .collect();
        for room in rooms {
            let Some(RoomDocs { syncing, .. }) = self.docs.get(&room) else {
                continue;
            };
            if syncing.round.is_some() {
                tracing::debug!(room = %room.fmt_short(), "a document part never came");
                self.fail_round(now, room);
                continue;
            }
            self.start_round(now, room);
        }
    }

    fn start_round(&mut self, now: Instant, room: RoomId) {
        let editors: Vec<P> = self
            .roster
            .members(room)
            .into_iter()
            .map(|(peer, _)| peer)
            .filter(|peer| *peer != self.local && self.may_edit_as(room, *peer))
            .collect();
        let Some(RoomDocs { syncing, .. }) = self.docs.get_mut(&room) else {
            return;
        };
        syncing.ahead.retain(|peer| editors.contains(peer));
        let next_in_turn = || {
            let after = syncing.last_peer;
            editors
                .iter()
                .copied()
                .filter(|p| after.is_none_or(|last| *p > last))
                .min()
                .or_else(|| editors.iter().copied().min())
        };
        let Some(peer) = syncing.ahead.pop_front().or_else(next_in_turn) else {
            // Nobody to ask yet: a member's arrival starts the round (see `member_arrived`).
            syncing.next_round = now + SYNC_INTERVAL;
            return;
        };
        syncing.last_peer = Some(peer);
        syncing.round = Some(Round {
            peer,
            left: VecDeque::new(),
            current: None,
            deadline: now + PART_TIMEOUT,
        });
        let pull = DocPull {
            room,
            name: None,
            state_vector: Bytes::new(),
            offset: 0,
            digest: None,
        };
        self.outputs
            .push_back(NodeOutput::PullDoc { room, peer, pull });
    }

    /// `peer` arrived in `room`: if this node has not compared documents with anyone yet, it
    /// does now.
    pub(super) fn doc_member_arrived(&mut self, room: RoomId, peer: P) {
        let now = self.now;
        let Some(RoomDocs { syncing, .. }) = self.docs.get_mut(&room) else {
            return;
        };
        syncing.pulled_back.remove(&peer);
        if syncing.last_peer.is_none() && syncing.round.is_none() {
            syncing.next_round = now;
        }
    }

    pub(super) fn doc_syncs_due(&self) -> Option<Instant> {
        self.docs.values().map(|d| d.syncing.due()).min()
    }
}
