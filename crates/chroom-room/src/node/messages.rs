//! Room messages: the checks one passes before the registry is asked, and what a delivered one
//! means (chat, presence, a file offer, a host's decision, a cue, a question).

use std::fmt::Debug;
use std::hash::Hash;

use super::*;

impl<P: Copy + Eq + Ord + Hash + Debug> NodeCore<P> {
    /// A peer subscribed to `room`'s topic: it can hear this node now, so this node says it is
    /// here rather than at the next beat, and tells it what it missed (this node's decisions
    /// as a host that are in force, and the files it offered).
    pub fn handle_room_peer_joined(&mut self, room: RoomId) {
        if !self.present_in.contains(&room) {
            return;
        }
        self.announce(room, false);
        for (target, action) in self.moderation.own(room) {
            let say = Say::Moderate { target, action };
            self.outputs.push_back(NodeOutput::Publish { room, say });
        }
        let cues = self
            .orchestrations
            .get(&room)
            .map(|o| o.cues_by(self.local))
            .unwrap_or_default();
        for (at_unix_ms, cue) in cues {
            let say = Say::Cue { cue, at_unix_ms };
            self.outputs.push_back(NodeOutput::Publish { room, say });
        }
        self.outputs.push_back(NodeOutput::OfferFilesAgain { room });
    }

    /// A message arrived in `topic`, written by `author`, whose binding proved `account` (if
    /// it carried one that verified). Checked here for what needs no registry (it names its
    /// topic's room, is recent, its author was not removed), then against the registry by
    /// the session; answered by a [`NodeOutput::Gossip`].
    #[allow(clippy::too_many_arguments)]
    pub fn handle_room_message(
        &mut self,
        now: Instant,
        now_unix_ms: u64,
        id: GossipId,
        topic: RoomId,
        author: P,
        account: Option<Account>,
        heard: Heard<P>,
    ) {
        self.now = self.now.max(now);
        if heard.room != topic {
            return self.reject_gossip(id, "names another room");
        }
        if self.moderation.is_removed(topic, author) {
            return self.ignore_gossip(id, "its author was removed from the room");
        }
        if !is_fresh(heard.sent_at_unix_ms, now_unix_ms) {
            return self.ignore_gossip(id, "sent too long ago (or in the future)");
        }
        let pending = PendingGossip {
            author,
            account,
            heard,
        };
        self.judge_heard(now, id, pending, true);
    }

    /// Judges a room message whose envelope passed: opens it if sealed (`may_wait`: parks
    /// it until its author's key arrives), then checks what needs no registry and asks the
    /// session about the rest.
    pub(super) fn judge_heard(
        &mut self,
        now: Instant,
        id: GossipId,
        pending: PendingGossip<P>,
        may_wait: bool,
    ) {
        let Some(PendingGossip {
            author,
            account,
            heard,
        }) = self.open_heard(now, id, pending, may_wait)
        else {
            return;
        };
        let topic = heard.room;
        if matches!(heard.say, Say::Question { .. })
            && !self.questions.take(now, (topic, author), QUESTION_RATE)
        {
            return self.ignore_gossip(id, "its author asks too often");
        }
        if matches!(heard.say, Say::DocCursor { .. })
            && !self.cursors.take(now, (topic, author), docs::CURSOR_RATE)
        {
            return self.ignore_gossip(id, "its author moves its caret too often");
        }
        if let Say::Cue { cue, .. } = &heard.say {
            let Some(orchestration) = self.orchestrations.get(&topic) else {
                return self.ignore_gossip(id, "a cue for a room this node is not present in");
            };
            if !orchestration.is_present(author) {
                return self.ignore_gossip(id, "a cue from a member not heard from yet");
            }
            if let Err(refused) = orchestration.judge(now, author, *cue) {
                let error = SignalError::new(ErrorCode::NotAuthorized, format!("a cue: {refused}"));
                return self.decide_gossip(id, GossipVerdict::Reject(error));
            }
        }
        let action = heard.say.action();
        // A host by the room's policy has no on-chain role to show for it: the orchestration,
        // which every member computes alike, is its right.
        let acting_host = match heard.say {
            Say::Moderate { target, .. } => self.acting_host_may_moderate(topic, author, target),
            _ => false,
        };
        self.gossip.insert(
            id,
            PendingGossip {
                author,
                account,
                heard,
            },
        );
        if acting_host {
            return self.decide_gossip(id, GossipVerdict::Deliver);
        }
        self.session
            .handle_room_message(now, id, topic, account, action);
    }

    /// A room message that did not decode, or says something this node does not know.
    pub fn handle_bad_room_message(&mut self, id: GossipId, reason: &str) {
        self.reject_gossip(id, reason);
    }

    pub(super) fn reject_gossip(&mut self, id: GossipId, reason: &str) {
        self.gossip.remove(&id);
        let error = SignalError::new(ErrorCode::Malformed, reason);
        self.decide_gossip(id, GossipVerdict::Reject(error));
    }

    pub(super) fn ignore_gossip(&mut self, id: GossipId, reason: &str) {
        self.gossip.remove(&id);
        self.decide_gossip(id, GossipVerdict::Ignore(reason.to_owned()));
    }

    /// Reports a verdict and, for a delivered message, carries out what it says.
    pub(super) fn decide_gossip(&mut self, id: GossipId, verdict: GossipVerdict) {
        let pending = self.gossip.remove(&id);
        match &verdict {
            GossipVerdict::Deliver => self.counters.gossip_delivered += 1,
            GossipVerdict::Reject(_) => self.counters.gossip_rejected += 1,
            GossipVerdict::Ignore(_) => {}
        }
        let deliver = verdict == GossipVerdict::Deliver;
        self.outputs.push_back(NodeOutput::Gossip { id, verdict });
        if let (true, Some(pending)) = (deliver, pending) {
            self.deliver(pending);
        }
    }

    /// Carries out a room message its author may send.
    fn deliver(
        &mut self,
        PendingGossip {
            author,
            account,
            heard,
        }: PendingGossip<P>,
    ) {
        let room = heard.room;
        match heard.say {
            Say::Chat { text } => self.outputs.push_back(NodeOutput::Chat(ChatLine {
                room,
                author,
                account,
                sent_at_unix_ms: heard.sent_at_unix_ms,
                text,
                question: false,
            })),
            Say::Question { text } => self.outputs.push_back(NodeOutput::Chat(ChatLine {
                room,
                author,
                account,
                sent_at_unix_ms: heard.sent_at_unix_ms,
                text,
                question: true,
            })),
            Say::Presence(presence) => {
                let beat = Beat {
                    account,
                    leaving: presence.leaving,
                    sharing_screen: presence.sharing_screen,
                    publish_only: presence.publish_only,
                    // A node that does not say joined when it first spoke; nobody joins later
                    // than it speaks.
                    joined_at_unix_ms: match presence.joined_at_unix_ms {
                        0 => heard.sent_at_unix_ms,
                        joined => joined.min(heard.sent_at_unix_ms),
                    },
                    interval: (presence.beat_interval_ms > 0)
                        .then(|| Duration::from_millis(presence.beat_interval_ms.into())),
                    display_name: presence.display_name,
                    links_epoch: presence.links_epoch,
                    sent_at_unix_ms: heard.sent_at_unix_ms,
                };
                let now = self.now;
                // What pages show of the member beside its assignments.
                let shown = |roster: &Roster<P>| {
                    roster
                        .member(room, author)
                        .map(|p| (p.sharing_screen, p.publish_only, p.display_name.clone()))
                };
                let shown_before = shown(&self.roster);
                let epoch_before = self.roster.member(room, author).map(|p| p.links_epoch);
                let changed = self.roster.handle_presence(now, room, author, beat);
                // The same visit, its links remade on its side.
                let relinked = epoch_before.is_some_and(|e| presence.links_epoch > e);
                if shown(&self.roster) != shown_before {
                    self.view_version += 1;
                }
                self.refresh_member(room, author);
                if presence.leaving {
                    self.session.handle_member_left(now, room, author);
                } else if relinked {
                    self.session
                        .handle_member_relinked(now, room, author, presence.publish_only);
                } else if changed {
                    self.session
                        .handle_member_present(now, room, author, presence.publish_only);
                }
                if epoch_before.is_none() && !presence.leaving {
                    self.doc_member_arrived(room, author);
                }
            }
            Say::DocUpdate { name, update } => self.deliver_doc_update(room, author, name, update),
            Say::DocCursor { name, anchor, head } => {
                self.outputs.push_back(NodeOutput::DocCursor(DocCaret {
                    room,
                    author,
                    account,
                    name,
                    anchor,
                    head,
                }));
            }
            Say::Moderate { target, action } => {
                self.carry_out(room, target, action, (author, account));
            }
            Say::Cue { cue, at_unix_ms } => {
                if let Some(orchestration) = self.orchestrations.get_mut(&room)
                    && orchestration.handle_cue(author, at_unix_ms, cue).is_ok()
                {
                    self.view_version += 1;
                    self.sync_stage(room);
                }
            }
            Say::FileOffer(offer) => {
                if self.present_in.contains(&room) {
                    self.outputs.push_back(NodeOutput::FetchFile {
                        room,
                        from: author,
                        account,
                        offered_at_unix_ms: heard.sent_at_unix_ms,
                        offer,
                    });
                }
            }
            // Opened before it was judged: what was delivered is what it held.
            Say::Sealed(_) => {}
        }
    }

    /// Carries out a host's decision about `target` in `room` (its author checked): a removed
    /// member is dropped and its links closed (this node, removed, leaves); pages are told.
    pub(super) fn carry_out(
        &mut self,
        room: RoomId,
        target: P,
        action: Moderation,
        (by, by_account): (P, Option<Account>),
    ) {
        if !self.moderation.apply(room, target, action) {
            return;
        }
        self.view_version += 1;
        // Named before a removal drops it from the roster: pages say whom it was about.
        let target_account = if target == self.local {
            self.account
        } else {
            self.roster.account_of(room, target)
        };
        if action == Moderation::Remove {
            let now = self.now;
            if target == self.local {
                if let Some(goodbye) = self.leave(now, room) {
                    self.outputs
                        .push_back(NodeOutput::Publish { room, say: goodbye });
                }
            } else {
                let gone = Beat {
                    leaving: true,
                    ..Beat::default()
                };
                self.roster.handle_presence(now, room, target, gone);
                self.refresh_member(room, target);
                self.session.handle_member_left(now, room, target);
            }
        }
        self.outputs
            .push_back(NodeOutput::Moderated(ModerationNotice {
                room,
                target,
                target_account,
                action,
                by,
                by_account,
            }));
    }
}
