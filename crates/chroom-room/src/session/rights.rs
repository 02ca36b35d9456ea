//! What the session knows of rights and does with them: peers' proven accounts, the
//! registry's facts (and their expiry during an outage), lookups, and closing links whose
//! peer lost the right they need.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use chroom_proto::{ErrorCode, SignalError};
use chroom_types::{Account, Action, LinkId, Membership, RoomId};

use super::{LinkRole, Output, PendingRequest, Publisher, RoomEvent, RoomSession, Waiting};
use crate::access::{AccessFacts, AccessPolicy, Asker, LookupStart, Verdict};

impl<P: Copy + Eq + Ord + Hash + Debug> RoomSession<P> {
    /// A peer proved (or stopped proving: `None`) which account it acts for. Its links are
    /// re-checked at once.
    pub fn handle_peer_account(&mut self, now: Instant, peer: P, account: Option<Account>) {
        if account.is_some() {
            for tree in self.rooms.values_mut().filter_map(|s| s.tree.as_mut()) {
                tree.heard_from(peer);
            }
        }
        if self.access.account(peer) == account {
            return;
        }
        self.access.set_account(peer, account);
        for room in self.trees_asking(peer) {
            self.prefetch_feeder(now, room, peer);
        }
        let links: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, (_, role))| role.peer() == peer)
            .map(|(link, _)| *link)
            .collect();
        for link in links {
            self.enforce_link(now, link);
        }
        self.consider_all_roots(now);
    }

    /// What the registry says about `account` in `room`: answers an [`Output::LookupAccess`],
    /// or reports a change (role granted or revoked, ban) the driver saw on chain. Links that
    /// lose their right close at once; waiting requests are decided.
    pub fn handle_access(
        &mut self,
        now: Instant,
        room: RoomId,
        account: Account,
        facts: AccessFacts,
    ) {
        self.access.set_facts(room, account, facts);
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .pending
            .drain(..)
            .partition(|p| p.room == room && p.account == account);
        self.pending = waiting;
        for pending in ready {
            // Re-run the whole check: the peer may have left or changed account meanwhile.
            match pending.waiting {
                Waiting::Subscribe { request, peer } => {
                    self.handle_subscribe_request(now, request, peer, room);
                }
                Waiting::Gossip { id, action } => {
                    self.handle_room_message(now, id, room, Some(account), action);
                }
                Waiting::Tree {
                    request,
                    peer,
                    message,
                } => self.handle_tree_request(now, request, peer, room, message),
            }
        }
        let peers = self.access.peers_of(account);
        let links: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, (link_room, role))| *link_room == room && peers.contains(&role.peer()))
            .map(|(link, _)| *link)
            .collect();
        for link in links {
            self.enforce_link(now, link);
        }
        self.consider_roots(now, room);
    }

    /// The facts of `account` in `room` are no longer followed (the follower keeps the most
    /// recently looked up). Facts a link relies on, or that `keep` says are needed, are looked
    /// up again at once, so they are followed again; others are dropped and looked up when
    /// next needed.
    pub fn handle_access_forgotten(&mut self, room: RoomId, account: Account, keep: bool) {
        let peers = self.access.peers_of(account);
        let in_use = keep
            || self
                .links
                .values()
                .any(|(link_room, role)| *link_room == room && peers.contains(&role.peer()));
        if in_use {
            self.outputs
                .push_back(Output::LookupAccess { room, account });
        } else {
            self.access.forget(room, account);
        }
    }

    /// The registry became unreachable (`Some(since)`: the last time it answered) or reachable
    /// again (`None`). Cached facts are trusted until `since` + [`SessionConfig::max_staleness`];
    /// then they are set aside until the registry answers again.
    pub fn handle_registry_stale(&mut self, now: Instant, since: Option<Instant>) {
        self.stale_since = since;
        if since.is_none() && self.access.is_expired() {
            self.access.set_expired(false);
            self.enforce_all(now);
        }
        self.handle_timeout(now);
    }

    /// Since when the registry has not answered, while it does not.
    pub fn registry_unreachable_since(&self) -> Option<Instant> {
        self.stale_since
    }

    /// Whether the registry has been unreachable for longer than cached facts are trusted.
    pub fn registry_cache_expired(&self) -> bool {
        self.access.is_expired()
    }

    /// Whether `peer`'s proven account may `action` in `room` as far as this node knows now;
    /// when that is not known, the registry is asked (the answer serves the next request).
    pub(crate) fn check_peer(
        &mut self,
        now: Instant,
        peer: P,
        room: RoomId,
        action: Action,
    ) -> Result<(), SignalError> {
        match self.access.check(peer, room, action) {
            Verdict::Allowed => Ok(()),
            Verdict::NoAccount => Err(unbound()),
            Verdict::Denied(account, facts) => Err(denial(room, account, facts, action)),
            Verdict::Unknown(account) => {
                self.look_up(now, room, account, peer);
                Err(SignalError::new(
                    ErrorCode::Unavailable,
                    format!("the rights of {account} in this room are being looked up: ask again"),
                ))
            }
        }
    }

    /// Asks the registry about `account` in `room` for `peer` unless a lookup is under way;
    /// the facts arrive through [`Self::handle_access`]. False if throttled (asked again when
    /// the peer asks again).
    pub(crate) fn look_up(
        &mut self,
        now: Instant,
        room: RoomId,
        account: Account,
        peer: P,
    ) -> bool {
        self.start_lookup(now, room, account, Asker::Peer(peer))
    }

    /// Asks the registry about this node's own account in `room` (never throttled).
    pub(crate) fn look_up_own(&mut self, now: Instant, room: RoomId, account: Account) {
        self.start_lookup(now, room, account, Asker::OwnUser);
    }

    fn start_lookup(
        &mut self,
        now: Instant,
        room: RoomId,
        account: Account,
        asker: Asker<P>,
    ) -> bool {
        match self.access.start_lookup(now, room, account, asker) {
            LookupStart::Started => {
                self.outputs
                    .push_back(Output::LookupAccess { room, account });
                true
            }
            LookupStart::UnderWay => true,
            LookupStart::Throttled => {
                self.lookups_throttled += 1;
                false
            }
        }
    }

    /// How rights are checked.
    pub(crate) fn access_policy(&self) -> AccessPolicy {
        self.config.access
    }

    /// How long a request may wait for registry facts.
    pub(crate) fn access_lookup_timeout(&self) -> Duration {
        self.config.access_lookup_timeout
    }

    /// What the registry said about `account` in `room`, if this node has asked lately.
    pub fn facts(&self, room: RoomId, account: Account) -> Option<AccessFacts> {
        self.access.facts(room, account)
    }

    /// When cached facts stop being trusted, if the registry is unreachable and they still are.
    pub(super) fn facts_expire_at(&self) -> Option<Instant> {
        let since = self.stale_since?;
        (!self.access.is_expired()).then(|| since + self.config.max_staleness)
    }

    /// Weighs the root claims of every broadcast room again (an account became known).
    fn consider_all_roots(&mut self, now: Instant) {
        for room in self.tree_rooms() {
            self.consider_roots(now, room);
        }
    }

    /// Checks every link's right again (the facts behind them changed wholesale).
    pub(super) fn enforce_all(&mut self, now: Instant) {
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        for link in links {
            self.enforce_link(now, link);
        }
    }

    /// Parks `waiting` until the registry's facts about `account` in `room` arrive, starting the
    /// lookup if none is under way. False if too many things wait already, or the registry is
    /// asked about new accounts too often.
    pub(super) fn wait_for_facts(
        &mut self,
        now: Instant,
        room: RoomId,
        account: Account,
        waiting: Waiting<P>,
    ) -> bool {
        if self.pending.len() >= self.config.max_pending_requests {
            return false;
        }
        let asker = match &waiting {
            Waiting::Subscribe { peer, .. } | Waiting::Tree { peer, .. } => Asker::Peer(*peer),
            Waiting::Gossip { .. } => Asker::Author,
        };
        if !self.start_lookup(now, room, account, asker) {
            return false;
        }
        self.pending.push(PendingRequest {
            waiting,
            room,
            account,
            deadline: now + self.config.access_lookup_timeout,
        });
        true
    }

    /// New lookups refused so far because the registry was asked about new accounts too
    /// often.
    pub fn lookups_throttled(&self) -> u64 {
        self.lookups_throttled
    }

    /// A link the driver opened (held, as every link the session asks for) for `role` in
    /// `room`: media flows once its peer's right is known.
    pub(super) fn track_link(
        &mut self,
        now: Instant,
        link: LinkId,
        room: RoomId,
        role: LinkRole<P>,
    ) {
        self.record_link(now, link, room, role);
        self.enforce_link(now, link);
    }

    /// Records a new link as held, without checking it yet.
    pub(super) fn record_link(
        &mut self,
        now: Instant,
        link: LinkId,
        room: RoomId,
        role: LinkRole<P>,
    ) {
        self.links.insert(link, (room, role));
        self.held.insert(link, now);
    }

    /// Forgets a link (closed or being closed).
    pub(super) fn forget_link(&mut self, link: LinkId) -> Option<(RoomId, LinkRole<P>)> {
        self.held.remove(&link);
        self.silent.remove(&link);
        self.links.remove(&link)
    }

    /// Whether `peer` may send this node media in `room`: its role allows it, or the room's
    /// orchestrator put it on stage (unless the registry bans it).
    fn publish_verdict(&self, peer: P, room: RoomId) -> Verdict {
        let on_stage = self.is_on_stage(room, peer);
        let banned = matches!(
            self.access.facts_of(peer, room),
            Some(AccessFacts::Known {
                membership: Membership::Banned,
                ..
            })
        );
        if on_stage && !banned {
            return Verdict::Allowed;
        }
        self.access.check(peer, room, Action::Publish)
    }

    /// The members `room`'s orchestrator put on stage now. Links from members who left it
    /// are checked again (and close unless their role lets them publish); links held for
    /// members who came on it are let through.
    pub fn set_stage(&mut self, now: Instant, room: RoomId, stage: BTreeSet<P>) {
        let before = self.stage.get(&room).cloned().unwrap_or_default();
        if before == stage {
            return;
        }
        let arrived: Vec<P> = stage.difference(&before).copied().collect();
        let departed: Vec<P> = before.difference(&stage).copied().collect();
        if stage.is_empty() {
            self.stage.remove(&room);
        } else {
            self.stage.insert(room, stage);
        }
        // Members who came on stage speak now: subscribed to at once (a link to one that
        // was refused before it came on stage was closed), not at the next lookup.
        for peer in arrived {
            self.subscribe_soon(now, room, peer, false);
        }
        self.leave_studio(now, room, departed);
        let links: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, (r, role))| *r == room && matches!(role, LinkRole::Receiving(_)))
            .map(|(link, _)| *link)
            .collect();
        for link in links {
            self.enforce_link(now, link);
        }
    }

    /// Whether `peer` may carry `room`'s broadcast to this node: a registered relayer, or the
    /// root this node verified (still allowed to broadcast). Anyone else is denied, whatever
    /// its role: another speaker feeding this node would feed it something else.
    pub(super) fn feeder_verdict(&self, peer: P, room: RoomId) -> Verdict {
        if self
            .access
            .facts_of(peer, room)
            .is_some_and(AccessFacts::allows_relaying)
        {
            return Verdict::Allowed;
        }
        match self.access.check(peer, room, Action::Publish) {
            Verdict::Allowed if self.tree_root(room) != Some(peer) => {
                match (self.access.account(peer), self.access.facts_of(peer, room)) {
                    (Some(account), Some(facts)) => Verdict::Denied(account, facts),
                    // Open access: everyone may everything.
                    _ => Verdict::Allowed,
                }
            }
            verdict => verdict,
        }
    }

    /// Whether `peer` may be fed `room`'s broadcast: a registered relayer, or an account that
    /// may watch.
    pub(super) fn child_verdict(&self, peer: P, room: RoomId) -> Verdict {
        if self
            .access
            .facts_of(peer, room)
            .is_some_and(AccessFacts::allows_relaying)
        {
            return Verdict::Allowed;
        }
        self.access.check(peer, room, Action::Listen)
    }

    /// Checks `link`'s peer against the right the link needs: a subscriber must be allowed to
    /// listen, a publisher to publish, a tree parent to carry the broadcast. Allowed: media
    /// flows. Unknown: media stops (or never starts) while the facts are looked up, and the
    /// link closes if they stay unknown for [`SessionConfig::unverified_link_timeout`] or the
    /// registry has been unreachable for longer than the cache is trusted. Denied: it closes.
    pub(super) fn enforce_link(&mut self, now: Instant, link: LinkId) {
        let Some(&(room, role)) = self.links.get(&link) else {
            return;
        };
        let peer = role.peer();
        let verdict = match role {
            LinkRole::Sending(_) => self.access.check(peer, room, Action::Listen),
            LinkRole::Receiving(_) => self.publish_verdict(peer, room),
            LinkRole::TreeUpstream(_) => self.feeder_verdict(peer, room),
            LinkRole::TreeDownstream(_) => self.child_verdict(peer, room),
        };
        match verdict {
            Verdict::Allowed => {
                if self.held.remove(&link).is_some() {
                    self.outputs.push_back(Output::Hold { link, held: false });
                }
            }
            // Rights the node cannot learn (the registry unreachable for longer than it trusts
            // its cache) close the link: fail closed.
            Verdict::Unknown(_) if self.access.is_expired() => {
                self.revoke_link(now, link, room, role)
            }
            Verdict::Unknown(account) => {
                if let std::collections::hash_map::Entry::Vacant(held) = self.held.entry(link) {
                    held.insert(now);
                    self.outputs.push_back(Output::Hold { link, held: true });
                }
                self.look_up(now, room, account, peer);
            }
            Verdict::NoAccount | Verdict::Denied(..) => self.revoke_link(now, link, room, role),
        }
    }

    /// Closes the links held for longer than [`SessionConfig::unverified_link_timeout`].
    pub(super) fn close_unverified_links(&mut self, now: Instant) {
        let timeout = self.config.unverified_link_timeout;
        let overdue: Vec<LinkId> = self
            .held
            .iter()
            .filter(|(_, since)| **since + timeout <= now)
            .map(|(link, _)| *link)
            .collect();
        for link in overdue {
            let Some(&(room, role)) = self.links.get(&link) else {
                self.held.remove(&link);
                continue;
            };
            let peer = role.peer();
            self.outputs.push_back(Output::CloseLink { link });
            self.emit(RoomEvent::LinkUnverified { room, peer, link });
            self.handle_link_closed(now, link);
        }
    }

    /// When the longest-held link is due to close.
    pub(super) fn unverified_deadline(&self) -> Option<Instant> {
        let oldest = self.held.values().min()?;
        Some(*oldest + self.config.unverified_link_timeout)
    }

    /// Closes `link`, whose peer lost (or cannot prove) the right it needs.
    pub(super) fn revoke_link(
        &mut self,
        now: Instant,
        link: LinkId,
        room: RoomId,
        role: LinkRole<P>,
    ) {
        let peer = role.peer();
        self.outputs.push_back(Output::CloseLink { link });
        self.emit(RoomEvent::AccessRevoked { room, peer, link });
        // Forget the link now so a revoked peer cannot keep a slot; the driver's close report
        // is then ignored.
        self.handle_link_closed(now, link);
        if let LinkRole::Receiving(peer) = role
            && let Some(state) = self.rooms.get_mut(&room)
        {
            // Asking a publisher that may not publish again soon only repeats this.
            let at = now + self.config.not_publishing_backoff;
            state
                .publishers
                .insert(peer, Publisher::Waiting { at, failures: 1 });
        }
    }
}

/// A refusal of a peer that proved no account.
pub(super) fn unbound() -> SignalError {
    SignalError::new(
        ErrorCode::NotAuthorized,
        "no verified identity binding: sign one with the account you act for",
    )
}

/// A refusal that says who may not do what, and why.
pub(super) fn denial(
    room: RoomId,
    account: Account,
    facts: AccessFacts,
    action: Action,
) -> SignalError {
    let what = match action {
        Action::Listen => "join",
        Action::Publish => "publish in",
        Action::Chat => "chat in",
        Action::Edit => "edit the documents of",
        Action::Moderate => "moderate",
    };
    let why = match facts {
        AccessFacts::UnknownRoom => "the registry has no such room".to_owned(),
        AccessFacts::Known { membership, .. } => match membership {
            Membership::Banned => "the account is banned".to_owned(),
            Membership::NotMember => "the account is not a member".to_owned(),
            Membership::Member(role) => format!("its role is {role:?}"),
        },
    };
    SignalError::new(
        ErrorCode::NotAuthorized,
        format!("{account} may not {what} room {}: {why}", room.fmt_short()),
    )
}
