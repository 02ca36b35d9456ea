//! What a delivered room message means: a gossip verdict carried out (chat, presence, a file
//! offer, a host's decision).

use std::fmt::Debug;
use std::hash::Hash;

use super::*;

impl<P: Copy + Eq + Ord + Hash + Debug> NodeCore<P> {
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
                };
                let now = self.now;
                let changed = self.roster.handle_presence(now, room, author, beat);
                self.refresh_member(room, author);
                if presence.leaving {
                    self.session.handle_member_left(now, room, author);
                } else if changed {
                    self.session
                        .handle_member_present(now, room, author, presence.publish_only);
                }
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
