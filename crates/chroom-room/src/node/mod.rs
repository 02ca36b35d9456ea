//! [`NodeCore`]: everything a node decides about the rooms it is in, above the links the
//! [`RoomSession`] decides. Sans-IO like the session it owns: time is an input, messages and
//! orders are outputs, and the node's runtime carries them out.
//!
//! It owns the room session, who is present (presence beats and their schedule), hosts'
//! decisions and carrying them out, what a delivered room message means (chat, presence, file
//! offers, moderation), the checks a room message passes before the registry is asked, who may
//! fetch files, which links' microphones are silenced, the order of tree messages to each
//! peer, peers' identity bindings and their expiry, this node's own access to a room for its
//! page, and the counters the node reports.
//!
//! It does not own signing or verifying bindings, encoding messages, or anything with a
//! socket: the runtime verifies a binding before it gets here and stamps outgoing messages
//! with this node's binding and the time.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use chroom_overlay::Message;
use chroom_proto::{ErrorCode, FileOffer, Presence, SignalError};
use chroom_types::{Account, Action, Cue, LinkId, Moderation, RoomId, RoomName};

use crate::access::{AccessFacts, AccessPolicy};
use crate::gossip::{GossipId, GossipVerdict, is_fresh};
use crate::moderation::Moderations;
use crate::orchestrator::Orchestration;
use crate::rate::KeyedBuckets;
use crate::relaying::{RelayBudget, RelayLedger, RelaySeek};
use crate::roster::{Beat, HOST_PRESENCE_INTERVAL, PRESENCE_INTERVAL, Roster};
use crate::sealing::Sealing;
use crate::session::{
    InboundId, Output, Participation, RoomEvent, RoomSession, SessionConfig, SubscribeFailure,
    SubscribeId,
};
use orchestration::{MAX_ASKERS, QUESTION_RATE};
use own_checks::OwnCheck;
use tree::TreeQueue;

mod api;
mod doc_sync;
mod docs;
mod messages;
mod orchestration;
mod own_checks;
mod relayed_paths;
mod rules;
mod sealing;
#[cfg(test)]
mod tests;
mod tree;
mod view;

pub use api::{
    ChatLine, CommandError, DocCaret, DocEdit, Heard, ModerationNotice, NodeCounters, NodeOutput,
    OwnCheckId, Participant, RegistryStatus, RoomStatus, Say, TreeDelivery,
};

pub use rules::{
    CannotGoLive, OwnAccess, OwnRefusal, PAGE_BROADCAST_CAPACITY, PagePart, own_access, page_part,
};

/// How often expired bindings and silent members are looked for.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);

/// A room message waiting for its author's rights (or key).
#[derive(Debug)]
struct PendingGossip<P> {
    author: P,
    account: Option<Account>,
    heard: Heard<P>,
}

/// The node's decisions. See the module docs.
#[derive(Debug)]
pub struct NodeCore<P> {
    session: RoomSession<P>,
    local: P,
    /// The account this node acts for, if any.
    account: Option<Account>,
    roster: Roster<P>,
    moderation: Moderations<P>,
    /// Rooms this node announces its presence in: every room it takes part in as a person,
    /// not as a relayer.
    present_in: BTreeSet<RoomId>,
    sharing_screen: BTreeSet<RoomId>,
    gossip: HashMap<GossipId, PendingGossip<P>>,
    tree_queues: HashMap<P, TreeQueue<P>>,
    /// Peers that proved an account, and when their binding expires.
    bindings: HashMap<P, Instant>,
    /// Links carrying this node's user's own microphone (from its browser).
    own_sources: BTreeSet<LinkId>,
    /// Links whose arriving microphone is dropped now.
    silenced: BTreeSet<LinkId>,
    /// Links to the members on the stage of a broadcast this node is live in, as last told.
    studio: BTreeSet<LinkId>,
    own_checks: Vec<OwnCheck>,
    /// When this node joined each room it is present in (unix milliseconds), as its beats say.
    joined_at: HashMap<RoomId, u64>,
    /// Who holds what in each room this node is present in.
    orchestrations: HashMap<RoomId, Orchestration<P>>,
    /// Questions taken per (room, author), against [`QUESTION_RATE`].
    questions: KeyedBuckets<(RoomId, P)>,
    /// The name this node's user goes by, told in its beats.
    display_name: Option<String>,
    /// What this node's beats said last, per room.
    beating: HashMap<RoomId, orchestration::Beating>,
    /// When the assignments were last brought up to date with members' grace periods.
    graces_checked: Instant,
    /// When a member's grace period ends next, in any room (kept as members arrive, so
    /// polling for the next timeout does not walk every member; a member that left may leave
    /// it early, which only wakes the core once for nothing).
    grace_ends: Option<Instant>,
    /// How many times this node remade its links in each room during its visit (told in
    /// its beats, so members link to it afresh).
    links_epochs: HashMap<RoomId, u32>,
    /// The beat timer's next tick (each tick sends the beats due).
    next_beat: Option<Instant>,
    next_housekeeping: Instant,
    /// The latest time an input carried: the time of work done while outputs are drained
    /// (a verdict the session reached for a message that waited for the registry).
    now: Instant,
    outputs: VecDeque<NodeOutput<P>>,
    counters: NodeCounters,
    /// Bumped whenever what a page shows may have changed: who is present, with which links,
    /// muted or sharing a screen.
    view_version: u64,
    /// The relayed media paths this node serves, when it serves them.
    relay_ledger: Option<RelayLedger<P>>,
    /// The relayed path this node seeks for itself.
    relay_seek: RelaySeek,
    /// The shared documents of the rooms this node is present in.
    docs: docs::RoomsDocs<P>,
    /// Caret moves taken per (room, author), against [`docs::CURSOR_RATE`].
    cursors: KeyedBuckets<(RoomId, P)>,
    /// This node's keys for sealing room content, and those members handed it.
    sealing: Sealing<P>,
    /// The members this node handed its current key, per room: one leaving means a new key.
    key_holders: HashMap<RoomId, BTreeSet<P>>,
    /// Sealed messages waiting for their authors' keys, per (room, author).
    key_waits: HashMap<(RoomId, P), sealing::KeyWait>,
}

impl<P: Copy + Eq + Ord + Hash + Debug> NodeCore<P> {
    /// A node in no room, known to its peers as `local`, acting for `account`.
    pub fn new(config: SessionConfig, local: P, account: Option<Account>, now: Instant) -> Self {
        Self {
            session: RoomSession::new(config, local),
            local,
            account,
            roster: Roster::default(),
            moderation: Moderations::default(),
            present_in: BTreeSet::new(),
            sharing_screen: BTreeSet::new(),
            gossip: HashMap::new(),
            tree_queues: HashMap::new(),
            bindings: HashMap::new(),
            own_sources: BTreeSet::new(),
            silenced: BTreeSet::new(),
            studio: BTreeSet::new(),
            own_checks: Vec::new(),
            joined_at: HashMap::new(),
            orchestrations: HashMap::new(),
            display_name: None,
            questions: KeyedBuckets::new(MAX_ASKERS),
            beating: HashMap::new(),
            next_beat: None,
            next_housekeeping: now + HOUSEKEEPING_INTERVAL,
            graces_checked: now,
            grace_ends: None,
            links_epochs: HashMap::new(),
            now,
            outputs: VecDeque::new(),
            counters: NodeCounters::default(),
            view_version: 0,
            relay_ledger: None,
            relay_seek: RelaySeek::default(),
            docs: HashMap::new(),
            cursors: KeyedBuckets::new(MAX_ASKERS),
            sealing: Sealing::default(),
            key_holders: HashMap::new(),
            key_waits: HashMap::new(),
        }
    }

    // ---- commands from this node's user ----

    /// Takes part in `room` from `now_unix_ms` on. A person (not a relayer) announces its
    /// presence there and goes on fetching the room's files.
    pub fn join(
        &mut self,
        now: Instant,
        now_unix_ms: u64,
        room: RoomId,
        participation: Participation,
    ) {
        self.now = self.now.max(now);
        let person = !matches!(participation, Participation::Relay { .. });
        self.view_version += 1;
        let remade = self.session.join(now, room, participation);
        if remade && self.present_in.contains(&room) {
            // Present already (a listener put on stage): members must drop the links made
            // for the old way now, not when ICE finds them dead.
            *self.links_epochs.entry(room).or_default() += 1;
            self.announce(room, false);
        }
        if person && self.present_in.insert(room) {
            self.joined_at.insert(room, now_unix_ms);
            let mut orchestration = Orchestration::default();
            if let Some(AccessFacts::Known { policy, .. }) =
                self.account.and_then(|a| self.session.facts(room, a))
            {
                orchestration.set_policy(policy);
            }
            self.orchestrations.insert(room, orchestration);
            self.docs.insert(room, docs::RoomDocs::new(now));
            // Whether this node hosts (and so beats every second) depends on its own role:
            // learn it now, not only when its page asks.
            if let Some(account) = self.account
                && self.session.facts(room, account).is_none()
            {
                self.session.look_up_own(now, room, account);
            }
            self.refresh_member(room, self.local);
            self.announce(room, false);
            self.outputs.push_back(NodeOutput::ResumeFiles { room });
            self.next_beat.get_or_insert(now + HOST_PRESENCE_INTERVAL);
            self.seek_relay(now);
        }
    }

    /// Stops taking part in `room`. Returns the goodbye to publish before leaving its topic,
    /// if this node was present there: members drop it from their rosters at once, and link
    /// to it afresh if it comes back.
    #[must_use = "publish the goodbye"]
    pub fn leave(&mut self, now: Instant, room: RoomId) -> Option<Say<P>> {
        self.now = self.now.max(now);
        self.view_version += 1;
        self.session.leave(now, room);
        self.roster.forget_room(room);
        self.moderation.forget_room(room);
        self.sharing_screen.remove(&room);
        self.joined_at.remove(&room);
        self.links_epochs.remove(&room);
        self.orchestrations.remove(&room);
        self.beating.remove(&room);
        // What changed since the last store is stored now: the node keeps no document of a
        // room it is not in.
        self.store_docs(now, docs::Unstored::Of(room));
        self.docs.remove(&room);
        self.forget_room_keys(room);
        self.outputs.push_back(NodeOutput::PauseFiles { room });
        if !self.present_in.remove(&room) {
            return None;
        }
        if self.present_in.is_empty() {
            self.next_beat = None;
        }
        Some(Say::Presence(Presence {
            leaving: true,
            ..Presence::default()
        }))
    }

    /// This node's user shares a screen in `room` (or stops): members learn it at once.
    pub fn share_screen(&mut self, room: RoomId, sharing: bool) {
        let changed = if sharing {
            self.sharing_screen.insert(room)
        } else {
            self.sharing_screen.remove(&room)
        };
        if changed && self.present_in.contains(&room) {
            self.view_version += 1;
            self.announce(room, false);
        }
    }

    /// A host's decision of this node's user: carried out here at once; returns the message
    /// that asks every member's node to carry it out (each checks the registry first).
    pub fn moderate(
        &mut self,
        now: Instant,
        room: RoomId,
        target: P,
        action: Moderation,
    ) -> Result<Say<P>, CommandError> {
        self.now = self.now.max(now);
        if !self.present_in.contains(&room) {
            return Err(CommandError::NotInRoom {
                doing: "moderating",
            });
        }
        // Refused here only where the registry's known answer denies it and the policy does
        // not make up for it; unknown, every member's node asks the registry anyway.
        let by_role = self.session.access_policy() == AccessPolicy::Open
            || self
                .account
                .and_then(|account| self.session.facts(room, account))
                .is_none_or(|facts| facts.allows(Action::Moderate));
        if !by_role && !self.acting_host_may_moderate(room, self.local, target) {
            return Err(CommandError::NotHost);
        }
        self.carry_out(room, target, action, (self.local, self.account));
        self.moderation.record_own(room, target, action);
        Ok(Say::Moderate { target, action })
    }

    /// This node's user offers a file in `room`: returns the offer to publish.
    pub fn offer_file(&mut self, room: RoomId, offer: FileOffer) -> Result<Say<P>, CommandError> {
        if !self.present_in.contains(&room) {
            return Err(CommandError::NotInRoom {
                doing: "sharing a file in",
            });
        }
        Ok(Say::FileOffer(offer))
    }

    /// Whether this node may start acting for `account`: in a room only a renewal of the
    /// account members know it by is taken.
    pub fn check_sign_in(&self, account: Account) -> Result<(), CommandError> {
        if !self.present_in.is_empty() && self.account != Some(account) {
            return Err(CommandError::AccountInUse);
        }
        Ok(())
    }

    /// This node acts for `account` from now on (checked with [`Self::check_sign_in`]).
    pub fn set_account(&mut self, account: Option<Account>) {
        self.account = account;
    }

    /// A link from this node's user's browser now carries its microphone (and camera).
    pub fn handle_own_source_opened(&mut self, link: LinkId) {
        self.own_sources.insert(link);
    }

    // ---- inputs from the network, the media and the registry ----

    /// A peer's identity binding, verified against the PeerId its connection authenticated:
    /// `Some((account, expires_at_unix))`, or `None` if it did not verify. `now_unix` is the
    /// wall clock at `now`.
    pub fn handle_peer_binding(
        &mut self,
        now: Instant,
        now_unix: u64,
        peer: P,
        verified: Option<(Account, u64)>,
    ) {
        self.now = self.now.max(now);
        match verified {
            Some((account, expires_at_unix)) => {
                let left = Duration::from_secs(expires_at_unix.saturating_sub(now_unix));
                self.bindings.insert(peer, now + left);
                self.session.handle_peer_account(now, peer, Some(account));
            }
            None => {
                self.bindings.remove(&peer);
                self.session.handle_peer_account(now, peer, None);
            }
        }
    }

    /// A signaling request that did not decode (the runtime answers it as malformed).
    pub fn handle_malformed_request(&mut self) {
        self.counters.malformed_requests += 1;
    }

    /// `peer` asks to subscribe to this node's tracks in `room`.
    pub fn handle_subscribe_request(
        &mut self,
        now: Instant,
        request: InboundId,
        peer: P,
        room: RoomId,
    ) {
        self.now = self.now.max(now);
        if self.moderation.is_removed(room, peer) {
            let error = SignalError::new(
                ErrorCode::NotAuthorized,
                "a host removed you from this room",
            );
            return self.refuse(request, peer, error);
        }
        self.session
            .handle_subscribe_request(now, request, peer, room);
    }

    /// `peer` sent a tree message for `room`.
    pub fn handle_tree_request(
        &mut self,
        now: Instant,
        request: InboundId,
        peer: P,
        room: RoomId,
        message: Message<P>,
    ) {
        self.now = self.now.max(now);
        tracing::debug!(target: "chroom::tree", local = ?self.local, from = ?peer, ?message, "tree message in");
        self.session
            .handle_tree_request(now, request, peer, room, message);
    }

    /// `peer` asks for a part of a file shared in `room`. Files go to members present in the
    /// room whose registry verdict allows them in now: a ban stops serving at once, not when
    /// the banned member's presence times out.
    pub fn handle_file_request(&mut self, now: Instant, request: InboundId, peer: P, room: RoomId) {
        self.now = self.now.max(now);
        match self.check_present_listener(now, peer, room, "files") {
            Ok(()) => self.outputs.push_back(NodeOutput::ServeFile { request }),
            Err(error) => self.refuse(request, peer, error),
        }
    }

    /// Whether `peer` may be handed `what` of `room`: both present there, and the registry
    /// lets it listen now (a ban stops serving at once, not when its presence times out).
    fn check_present_listener(
        &mut self,
        now: Instant,
        peer: P,
        room: RoomId,
        what: &str,
    ) -> Result<(), SignalError> {
        if !(self.present_in.contains(&room) && self.roster.is_present(room, peer)) {
            return Err(SignalError::new(
                ErrorCode::NotInRoom,
                format!("{what} are served to members present in the room"),
            ));
        }
        self.session.check_peer(now, peer, room, Action::Listen)
    }

    /// The transport lost every connection to `peer`.
    pub fn handle_peer_disconnected(&mut self, now: Instant, peer: P) {
        self.now = self.now.max(now);
        self.tree_queues.remove(&peer);
        self.session.handle_peer_disconnected(now, peer);
        // What it proved is forgotten unless a link still needs it (it says so again when it
        // reconnects): peers that come and go must not grow this node's memory.
        if !self.session.has_links_with(peer) {
            self.bindings.remove(&peer);
            self.session.handle_peer_account(now, peer, None);
        }
    }

    /// The registry's facts about `account` in `room`.
    pub fn handle_access(
        &mut self,
        now: Instant,
        room: RoomId,
        account: Account,
        facts: AccessFacts,
    ) {
        self.now = self.now.max(now);
        self.session.handle_access(now, room, account, facts);
        self.refresh_account(room, account, facts);
        if !facts.allows(Action::Listen) {
            self.seal_account_revoked(room, account);
        }
        self.answer_own_checks(room, account, facts);
    }

    /// The registry became unreachable (`Some(since)`: the last time it answered) or reachable
    /// again (`None`). Its cache serves for [`SessionConfig::max_staleness`], then every right
    /// is unknown (fail closed) until it answers again.
    pub fn handle_registry_stale(&mut self, now: Instant, since: Option<Instant>) {
        self.now = self.now.max(now);
        self.counters.registry_stale = since.is_some();
        // Pages say whether the registry answers.
        self.view_version += 1;
        self.session.handle_registry_stale(now, since);
    }

    /// The registry's facts about `account` in `room` are no longer followed: dropped and
    /// looked up again when next needed, unless in use (a link, or this node's own account in
    /// a room it is in), which are followed again at once.
    pub fn handle_access_forgotten(&mut self, room: RoomId, account: Account) {
        let own = self.account == Some(account) && self.present_in.contains(&room);
        self.session.handle_access_forgotten(room, account, own);
    }

    /// Media stopped (`flowing` false) or came back on `link`.
    pub fn handle_link_media(&mut self, now: Instant, link: LinkId, flowing: bool) {
        self.now = self.now.max(now);
        self.session.handle_link_media(now, link, flowing);
    }

    /// Part of the answer to an [`Output::FindPublishers`].
    pub fn handle_publishers(&mut self, now: Instant, room: RoomId, publishers: &[P]) {
        self.now = self.now.max(now);
        self.session.handle_publishers(now, room, publishers);
    }

    /// The lookup of an [`Output::FindPublishers`] ended.
    pub fn handle_lookup_finished(&mut self, now: Instant, room: RoomId) {
        self.now = self.now.max(now);
        self.session.handle_lookup_finished(now, room);
    }

    /// The result of an [`Output::Subscribe`].
    pub fn handle_subscribe_result(
        &mut self,
        now: Instant,
        id: SubscribeId,
        result: Result<LinkId, SubscribeFailure>,
    ) {
        self.now = self.now.max(now);
        self.session.handle_subscribe_result(now, id, result);
    }

    /// The runtime opened the sending link for an [`Output::AcceptSubscriber`].
    pub fn handle_subscriber_linked(&mut self, now: Instant, room: RoomId, peer: P, link: LinkId) {
        self.now = self.now.max(now);
        self.session.handle_subscriber_linked(now, room, peer, link);
    }

    /// A link closed, for whatever reason (its browser or peer went, or it was told to).
    pub fn handle_link_closed(&mut self, now: Instant, link: LinkId) {
        self.now = self.now.max(now);
        self.own_sources.remove(&link);
        self.silenced.remove(&link);
        self.session.handle_link_closed(now, link);
    }

    /// Time passed. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.session.handle_timeout(now);
        let unanswered: Vec<(P, RoomId)> = self
            .tree_queues
            .iter()
            .filter_map(|(peer, q)| {
                let f = q.in_flight?;
                f.ack_by
                    .is_some_and(|by| by <= now)
                    .then_some((*peer, f.room))
            })
            .collect();
        for (peer, room) in unanswered {
            self.handle_tree_delivery(now, peer, room, TreeDelivery::Unreachable);
        }
        self.settle_graces(now);
        self.store_docs(now, docs::Unstored::Due);
        self.sync_docs(now);
        self.ask_for_keys(now);
        if self.next_beat.is_some_and(|at| at <= now) {
            self.next_beat = Some(now + HOST_PRESENCE_INTERVAL);
            self.beat(now);
        }
        if self.next_housekeeping <= now {
            self.next_housekeeping = now + HOUSEKEEPING_INTERVAL;
            self.seek_relay(now);
            for (room, peer) in self.roster.expire(now) {
                self.refresh_member(room, peer);
            }
        }
        let expired: Vec<P> = self
            .bindings
            .iter()
            .filter(|(_, expiry)| **expiry <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in expired {
            self.bindings.remove(&peer);
            self.session.handle_peer_account(now, peer, None);
        }
        self.expire_own_checks(now);
    }

    // ---- outputs ----

    /// The next thing to carry out, if any. Drain until `None` after every input.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<NodeOutput<P>> {
        loop {
            if let Some(output) = self.outputs.pop_front() {
                return Some(output);
            }
            if let Some(output) = self.session.poll_output() {
                self.take_session_output(output);
                continue;
            }
            // Links and decisions have settled: silence and the studio follow them.
            self.refresh_silence();
            self.refresh_studio();
            return self.outputs.pop_front();
        }
    }

    /// When [`Self::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let bindings = self.bindings.values().copied();
        let acks = self
            .tree_queues
            .values()
            .filter_map(|q| q.in_flight.and_then(|f| f.ack_by));
        [
            self.session.poll_timeout(),
            self.next_beat,
            self.grace_ends,
            self.docs_store_due(),
            self.doc_syncs_due(),
            self.key_waits_due(),
            self.next_own_check_deadline(),
        ]
        .into_iter()
        .flatten()
        .chain([self.next_housekeeping])
        .chain(bindings)
        .chain(acks)
        .min()
    }

    // ---- private ----

    fn announce(&mut self, room: RoomId, leaving: bool) {
        let sharing_screen = !leaving && self.sharing_screen.contains(&room);
        let interval = self.beat_interval(room);
        self.beating.insert(
            room,
            orchestration::Beating {
                last: self.now,
                interval,
            },
        );
        let say = Say::Presence(Presence {
            leaving,
            sharing_screen,
            publish_only: self.session.publishes_only(room),
            joined_at_unix_ms: self.joined_at.get(&room).copied().unwrap_or_default(),
            beat_interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
            display_name: self.display_name.clone(),
            links_epoch: self.links_epochs.get(&room).copied().unwrap_or_default(),
        });
        self.outputs.push_back(NodeOutput::Publish { room, say });
    }

    fn refuse(&mut self, request: InboundId, peer: P, error: SignalError) {
        self.counters.requests_refused += 1;
        let refusal = Output::Refuse {
            request,
            peer,
            error,
        };
        self.outputs.push_back(NodeOutput::Session(refusal));
    }

    fn take_session_output(&mut self, output: Output<P>) {
        match output {
            Output::GossipVerdict { id, verdict, .. } => self.decide_gossip(id, verdict),
            Output::SendTree {
                peer,
                room,
                message,
            } => self.queue_tree(peer, room, message),
            Output::Refuse {
                request,
                peer,
                error,
            } => self.refuse(request, peer, error),
            Output::Event(event) => {
                match &event {
                    RoomEvent::SubscribeFailed {
                        failure: SubscribeFailure::Refused(error),
                        ..
                    }
                    | RoomEvent::TreeRefused { error, .. } => {
                        self.counters.last_refusal = Some(error.to_string());
                    }
                    RoomEvent::TreeAttached { .. } => self.counters.tree_attachments += 1,
                    RoomEvent::TreeMessageRefused { .. } => {
                        self.counters.tree_messages_refused += 1;
                    }
                    RoomEvent::RootRefused { .. } => self.counters.roots_refused += 1,
                    RoomEvent::LinkUnverified { .. } => self.counters.links_unverified += 1,
                    _ => {}
                }
                // Links came or went: pages show who they receive from.
                self.view_version += 1;
                self.outputs
                    .push_back(NodeOutput::Session(Output::Event(event)));
            }
            Output::Hold { link, held } => {
                // A link released (or held again) shows its member on pages (or stops).
                self.view_version += 1;
                let hold = Output::Hold { link, held };
                self.outputs.push_back(NodeOutput::Session(hold));
            }
            other => self.outputs.push_back(NodeOutput::Session(other)),
        }
    }

    /// Tells the media which links form the studio of a broadcast this node is live in, when
    /// that changed: they never get the program its page composes.
    fn refresh_studio(&mut self) {
        let wanted: BTreeSet<LinkId> = self
            .present_in
            .iter()
            .flat_map(|room| self.session.studio_links(*room))
            .collect();
        if wanted != self.studio {
            self.studio.clone_from(&wanted);
            let links = wanted.into_iter().collect();
            self.outputs.push_back(NodeOutput::Studio { links });
        }
    }

    /// Drops the microphone of members a host muted (this node's own, if it is one of them)
    /// wherever it arrives here, and passes it again once unmuted. The node does this, not a
    /// page: it holds whether or not a page is open, and a page cannot unmute past its host.
    fn refresh_silence(&mut self) {
        let mut wanted = BTreeSet::new();
        for &room in &self.present_in {
            for (peer, link) in self.session.media_links(room) {
                if self.moderation.is_muted(room, peer) {
                    wanted.insert(link);
                }
            }
            if self.moderation.is_muted(room, self.local) {
                wanted.extend(self.own_sources.iter().copied());
            }
        }
        if wanted == self.silenced {
            return;
        }
        for &link in self.silenced.difference(&wanted) {
            let silenced = false;
            self.outputs
                .push_back(NodeOutput::Silence { link, silenced });
        }
        for &link in wanted.difference(&self.silenced) {
            let silenced = true;
            self.outputs
                .push_back(NodeOutput::Silence { link, silenced });
        }
        self.silenced = wanted;
    }
}
