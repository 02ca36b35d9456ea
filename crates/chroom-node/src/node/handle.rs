//! [`NodeHandle`]: what the rest of the process (the page, the CLI, tests) asks a running node.
//! Questions and commands go to the [`super::actor::NodeActor`] as [`Command`]s; media links
//! to the user's own browser go straight to the media actor.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chroom_media::{MediaHandle, PlaybackOffer};
use chroom_net::{Multiaddr, NetHandle, PeerId, Presence};
use chroom_proto::{FileOffer, SignalRequest};
use chroom_room::Participation;
use chroom_room::orchestrator::Assignments;
use chroom_store::Store;
use chroom_types::{
    Account, Action, Cue, FileHash, IdentityBinding, LinkId, MediaKind, Moderation, RoomId,
    RoomName, Track,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::api::{
    ChatMessage, ModerationNotice, NodeStats, OwnAccess, OwnRefusal, Participant, RoomReport,
    RoomStatus, TreePosition,
};
use super::frames::LinkPeers;
use crate::files::Files;

/// The account a node acts for, as its handles see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acting {
    pub(crate) account: Account,
    /// When a wallet signed the binding: until when it holds.
    pub(crate) wallet_until_unix: Option<u64>,
}

/// A question or command for the node actor, with where to answer.
#[derive(Debug)]
pub(crate) enum Command {
    CheckOwnAccess {
        room: RoomName,
        action: Action,
        reply: oneshot::Sender<Result<OwnAccess, OwnRefusal>>,
    },
    Join {
        room: RoomId,
        participation: Participation,
        presence: Presence,
        done: oneshot::Sender<anyhow::Result<()>>,
    },
    Leave {
        room: RoomId,
        done: oneshot::Sender<()>,
    },
    Moderate {
        room: RoomId,
        target: PeerId,
        action: Moderation,
        done: oneshot::Sender<anyhow::Result<()>>,
    },
    Cue {
        room: RoomId,
        cue: Cue<PeerId>,
        done: oneshot::Sender<anyhow::Result<()>>,
    },
    SetDisplayName {
        name: Option<String>,
        done: oneshot::Sender<anyhow::Result<()>>,
    },
    Ask {
        room: RoomId,
        text: String,
        done: oneshot::Sender<anyhow::Result<()>>,
    },
    OfferFile {
        room: RoomId,
        offer: FileOffer,
        done: oneshot::Sender<anyhow::Result<()>>,
    },
    OwnSourceOpened {
        link: LinkId,
    },
    Participants {
        room: RoomId,
        reply: oneshot::Sender<Vec<Participant>>,
    },
    RoomStatus {
        room: RoomId,
        reply: oneshot::Sender<RoomStatus>,
    },
    Rooms(oneshot::Sender<Vec<RoomReport>>),
    Receiving {
        room: RoomId,
        reply: oneshot::Sender<Vec<(PeerId, LinkId)>>,
    },
    SendChat {
        room: RoomId,
        text: String,
        done: oneshot::Sender<anyhow::Result<ChatMessage>>,
    },
    ShareScreen {
        room: RoomId,
        sharing: bool,
        done: oneshot::Sender<()>,
    },
    SignIn {
        binding: IdentityBinding,
        done: oneshot::Sender<anyhow::Result<Account>>,
    },
    Stats(oneshot::Sender<NodeStats>),
    Tree {
        room: RoomId,
        reply: oneshot::Sender<TreePosition>,
    },
    Assignments {
        room: RoomId,
        reply: oneshot::Sender<Option<Assignments<PeerId>>>,
    },
    Doc(super::DocCommand),
}

/// What the rest of the process needs to ask a running node: cheap to clone, valid while the
/// node runs (requests fail with "node stopped" after).
#[derive(Debug, Clone)]
pub struct NodeHandle {
    pub(crate) peer_id: PeerId,
    pub(crate) files: Arc<Files>,
    pub(crate) store: Arc<Store>,
    /// The account this node acts for (it changes when the user signs in with a wallet).
    pub(crate) account: watch::Receiver<Option<Acting>>,
    pub(crate) net: NetHandle,
    pub(crate) media: MediaHandle,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) chat: broadcast::Sender<ChatMessage>,
    pub(crate) doc_events: broadcast::Sender<super::DocEvent>,
    pub(crate) notices: broadcast::Sender<ModerationNotice>,
    pub(crate) closed_links: broadcast::Sender<LinkId>,
    pub(crate) views: watch::Receiver<u64>,
    /// Which member each link carries (written by the actor).
    pub(crate) links: LinkPeers,
}

impl NodeHandle {
    /// Tells `peer` how tall this node's page shows its camera in `room`, so it sends no
    /// taller layer than that needs. Not waited for: a peer that does not answer keeps sending
    /// what it did.
    pub fn show_video_at(&self, room: RoomId, peer: PeerId, height: u32) {
        let net = self.net.clone();
        let request = SignalRequest::VideoWanted {
            room,
            max_height: Some(height),
        };
        tokio::spawn(async move {
            if let Err(e) = net.request(peer, request).await {
                tracing::debug!(%peer, error = %e, "could not say how large its video is shown");
            }
        });
    }

    /// Sends the actor a command carrying a reply channel and waits for the reply.
    pub(crate) async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> anyhow::Result<T> {
        let (reply, wait) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .context("node stopped")?;
        wait.await.context("node stopped")
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The network handle (DHT queries, raw requests).
    pub fn net(&self) -> &NetHandle {
        &self.net
    }

    /// The UDP address of this node's WebRTC socket.
    pub fn media_addr(&self) -> std::net::SocketAddr {
        self.media.local_addr()
    }

    /// The libp2p addresses this node listens on, each with its `/p2p/` suffix. Waits until the
    /// listeners are up (at most a few seconds).
    pub async fn listen_addrs(&self) -> anyhow::Result<Vec<Multiaddr>> {
        for _ in 0..100 {
            let addrs = self.net.listen_addrs().await?;
            if !addrs.is_empty() {
                let p2p = Multiaddr::empty().with(libp2p::multiaddr::Protocol::P2p(self.peer_id));
                return Ok(addrs
                    .into_iter()
                    .map(|a| a.into_iter().chain(p2p.iter()).collect())
                    .collect());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::bail!("no listen address after 2 s")
    }

    /// The account this node acts for, if any.
    pub fn account(&self) -> Option<Account> {
        self.account.borrow().map(|acting| acting.account)
    }

    /// Until when (unix seconds) the user's wallet lets this node act for its account, if a
    /// wallet signed in (a configured account's binding renews itself).
    pub fn wallet_until_unix(&self) -> Option<u64> {
        self.account
            .borrow()
            .and_then(|acting| acting.wallet_until_unix)
    }

    /// The text a wallet signs (EIP-191 `personal_sign`) for this node to act for its account
    /// until `expires_at_unix` (see [`Self::sign_in`]).
    pub fn binding_text(&self, expires_at_unix: u64) -> String {
        chroom_registry::binding_text(&self.peer_id.to_base58(), expires_at_unix)
    }

    /// Acts for the account of `binding` from now on, as signed by the user's wallet (it
    /// replaces the configured account, if any). The node must be in no room: members know it
    /// by one account for as long as it is there. Returns the account.
    pub async fn sign_in(&self, binding: IdentityBinding) -> anyhow::Result<Account> {
        self.ask(|done| Command::SignIn { binding, done }).await?
    }

    /// Whether this node's account may `action` in `room`, as a joining user wants to know
    /// before anything else happens: answered from what the node holds of the registry (its
    /// cache serves during an outage), or once the registry answers. `Err` says why not.
    pub async fn check_own_access(
        &self,
        room: &RoomName,
        action: Action,
    ) -> anyhow::Result<Result<OwnAccess, OwnRefusal>> {
        let room = room.clone();
        self.ask(|reply| Command::CheckOwnAccess {
            room,
            action,
            reply,
        })
        .await
    }

    /// Joins `room`: provides it in the DHT, subscribes to its gossip, and then publishes or
    /// receives as `participation` says.
    pub async fn join(&self, room: RoomId, participation: Participation) -> anyhow::Result<()> {
        let presence = match participation {
            // Viewers and relayers find a broadcast's root among the publishers.
            Participation::Publish(_)
            | Participation::Meet { .. }
            | Participation::Broadcast { .. } => Presence::Publisher,
            // A guest on a broadcast's stage is found through the stage, never taken for a
            // claim to the broadcast's root.
            Participation::Receive(_)
            | Participation::Relay { .. }
            | Participation::View(_)
            | Participation::Guest(_) => Presence::Member,
        };
        // The node takes part first, then joins the room's topic: a message arriving the
        // moment the topic is joined (a host telling this node it was removed) finds the room.
        self.ask(|done| Command::Join {
            room,
            participation,
            presence,
            done,
        })
        .await?
    }

    /// Leaves `room` and closes its links.
    pub async fn leave(&self, room: RoomId) -> anyhow::Result<()> {
        self.ask(|done| Command::Leave { room, done }).await?;
        // Only now: the goodbye went out on the room's topic.
        self.net.leave_room(room).await?;
        Ok(())
    }

    /// Who is present in `room`, this node first (if it is in the room as a person). Members
    /// are listed from their presence beats, checked against the registry like chat.
    pub async fn participants(&self, room: RoomId) -> anyhow::Result<Vec<Participant>> {
        self.ask(|reply| Command::Participants { room, reply })
            .await
    }

    /// What pages should say is wrong in `room`: the registry not answering, another
    /// broadcaster winning over this node.
    pub async fn room_status(&self, room: RoomId) -> anyhow::Result<RoomStatus> {
        self.ask(|reply| Command::RoomStatus { room, reply }).await
    }

    /// The members this node receives from in `room`, and over which link.
    pub async fn receiving_from(&self, room: RoomId) -> anyhow::Result<Vec<(PeerId, LinkId)>> {
        self.ask(|reply| Command::Receiving { room, reply }).await
    }

    /// This node's place in `room`'s relay tree (empty if the room is not a broadcast here).
    pub async fn tree_position(&self, room: RoomId) -> anyhow::Result<TreePosition> {
        self.ask(|reply| Command::Tree { room, reply }).await
    }

    /// Who hosts, presents and is on stage in `room`, as this node's orchestrator computes it
    /// (`None`: the node is not present there).
    pub async fn assignments(&self, room: RoomId) -> anyhow::Result<Option<Assignments<PeerId>>> {
        self.ask(|reply| Command::Assignments { room, reply }).await
    }

    /// Writes `text` in `room`'s chat (joined first), signed with this node's account binding.
    /// Returns the line as sent (its time is the one members see).
    pub async fn send_chat(
        &self,
        room: RoomId,
        text: impl Into<String>,
    ) -> anyhow::Result<ChatMessage> {
        self.ask(|done| Command::SendChat {
            room,
            text: text.into(),
            done,
        })
        .await?
    }

    /// Chat lines from other nodes, from now on. Each call gives an independent receiver.
    pub fn chat_messages(&self) -> broadcast::Receiver<ChatMessage> {
        self.chat.subscribe()
    }

    /// The last `limit` chat lines of `room` this node kept, oldest first.
    pub fn chat_history(&self, room: RoomId, limit: usize) -> anyhow::Result<Vec<ChatMessage>> {
        let lines = self.store.recent_chat(room, limit)?;
        Ok(lines
            .into_iter()
            .filter_map(|line| {
                Some(ChatMessage {
                    room,
                    author: line.author.parse().ok()?,
                    account: line.account,
                    sent_at_unix_ms: line.sent_at_unix_ms,
                    text: line.text,
                    question: false,
                })
            })
            .collect())
    }

    /// Asks `room`'s members to carry out `action` on `target`. Each node checks that this
    /// node's account may moderate the room before it does; this node carries it out at once.
    pub async fn moderate(
        &self,
        room: RoomId,
        target: PeerId,
        action: Moderation,
    ) -> anyhow::Result<()> {
        self.ask(|done| Command::Moderate {
            room,
            target,
            action,
            done,
        })
        .await?
    }

    /// Asks or decides `cue` in `room` for this node's user (raise a hand, invite a member on
    /// stage, …): refused here if the room's orchestrator would not take it from this node,
    /// else told to every member.
    pub async fn cue(&self, room: RoomId, cue: Cue<PeerId>) -> anyhow::Result<()> {
        self.ask(|done| Command::Cue { room, cue, done }).await?
    }

    /// Asks `room`'s hosts `text` (a webinar's Q&A), signed with this node's account binding.
    /// Refused when this node's user asks more often than members take questions.
    pub async fn ask_hosts(&self, room: RoomId, text: String) -> anyhow::Result<()> {
        self.ask(|done| Command::Ask { room, text, done }).await?
    }

    /// This node's user goes by `name` in every room (`None`: by its account alone).
    pub async fn set_display_name(&self, name: Option<String>) -> anyhow::Result<()> {
        self.ask(|done| Command::SetDisplayName { name, done })
            .await?
    }

    /// Changes whenever what a page shows of a room may have changed (who is present, over
    /// which link, muted or sharing a screen), so a page refreshes at once instead of polling.
    pub fn view_changes(&self) -> watch::Receiver<u64> {
        self.views.clone()
    }

    /// Links that closed (by request, failure or timeout), from now on.
    pub fn closed_links(&self) -> broadcast::Receiver<LinkId> {
        self.closed_links.subscribe()
    }

    /// Hosts' decisions carried out on this node, from now on.
    pub fn moderation_notices(&self) -> broadcast::Receiver<ModerationNotice> {
        self.notices.subscribe()
    }

    /// Files shared in rooms, as this node holds them.
    pub fn files(&self) -> &Files {
        &self.files
    }

    /// Shares a file from this node's user with `room` (joined first): keeps it whole, then
    /// offers it to the members, whose nodes fetch it from this one. Returns its hash.
    pub async fn share_file(
        &self,
        room: RoomId,
        name: String,
        bytes: bytes::Bytes,
    ) -> anyhow::Result<FileHash> {
        let offer = self
            .files
            .prepare_share(room, name, bytes, (self.peer_id, self.account()))
            .await?;
        let hash = offer.hash;
        self.ask(|done| Command::OfferFile { room, offer, done })
            .await??;
        Ok(hash)
    }

    /// Tells `room`'s members whether this node's user shares a screen there (on the links'
    /// screen m-line, fed by [`Self::accept_browser_media`] with [`Track::Screen`]).
    pub async fn share_screen(&self, room: RoomId, sharing: bool) -> anyhow::Result<()> {
        self.ask(|done| Command::ShareScreen {
            room,
            sharing,
            done,
        })
        .await
    }

    /// The rooms this node is in, with their members and links.
    pub async fn rooms(&self) -> anyhow::Result<Vec<RoomReport>> {
        self.ask(Command::Rooms).await
    }

    /// Current counters.
    pub async fn stats(&self) -> anyhow::Result<NodeStats> {
        let mut stats = self.ask(Command::Stats).await?;
        stats.relay = self.media.relay_stats().await?;
        stats.bandwidth_estimates = self.links.by_member(self.media.bandwidth_estimates().await);
        stats.camera_layers = self.links.by_member(self.media.camera_layers().await);
        Ok(stats)
    }

    /// Sends a local frame, as the main track of its kind, to every subscriber of this node;
    /// an audio frame may carry its level (RFC 6464: 0 loudest, −127 dBov silence), from which
    /// members tell who speaks.
    pub async fn send_frame(
        &self,
        kind: MediaKind,
        rtp_time: u64,
        data: Arc<[u8]>,
        audio_level: Option<i8>,
    ) -> anyhow::Result<()> {
        Ok(self
            .media
            .send_frame(Track::main(kind), rtp_time, data, audio_level)
            .await?)
    }

    /// Sends a frame of simulcast `layer` of this node's camera (a headless source with
    /// several encodings, see `MediaSource::with_lower_layers`).
    pub async fn send_video_layer(
        &self,
        layer: chroom_media::layers::LayerIndex,
        rtp_time: u64,
        data: Arc<[u8]>,
    ) -> anyhow::Result<()> {
        Ok(self
            .media
            .send_layer_frame(Track::Camera, layer, rtp_time, data)
            .await?)
    }

    /// The dominant speaker among the links `among` (members this node receives from), by
    /// the audio levels their packets carry; `None` if none of them has spoken.
    pub async fn dominant_speaker(&self, among: Vec<LinkId>) -> Option<LinkId> {
        self.media.dominant_speaker(among).await
    }

    /// Answers the user's browser's offer to send its camera and microphone, or (`video` being
    /// [`Track::Screen`]) a shared screen, to this node, which sends them on to every member
    /// linked to it.
    pub async fn accept_browser_media(
        &self,
        offer_sdp: String,
        video: Track,
    ) -> anyhow::Result<(LinkId, String)> {
        let (link, answer) = self.media.accept_source_offer(offer_sdp, video).await?;
        if video != Track::Screen {
            // Its microphone is this node's user's: a host's mute applies to it.
            self.commands
                .send(Command::OwnSourceOpened { link })
                .await
                .context("node stopped")?;
        }
        Ok((link, answer))
    }

    /// Accepts the user's browser's offer to send the program of the broadcast this node is
    /// live in: the audience gets it instead of the browser's own tracks while it lasts.
    pub async fn accept_program(&self, offer_sdp: String) -> anyhow::Result<(LinkId, String)> {
        let (link, answer) = self.accept_browser_media(offer_sdp, Track::Camera).await?;
        self.media.set_program(link).await;
        Ok((link, answer))
    }

    /// Adds ICE candidates the user's browser (or WHIP client) trickled after its offer: SDP
    /// `candidate:` attribute values.
    pub async fn add_browser_candidates(
        &self,
        link: LinkId,
        candidates: Vec<String>,
    ) -> anyhow::Result<()> {
        Ok(self.media.add_remote_candidates(link, candidates).await?)
    }

    /// Closes a link to the user's browser.
    pub async fn close_browser_media(&self, link: LinkId) {
        self.media.close_link(link).await;
    }

    /// Offers the user's browser a link with `slots` places to show remote members in (to hear
    /// them only, if `audio_only`).
    pub async fn offer_browser_playback(
        &self,
        slots: usize,
        audio_only: bool,
    ) -> anyhow::Result<PlaybackOffer> {
        Ok(self.media.create_playback_offer(slots, audio_only).await?)
    }

    /// Answers a player's offer to watch (WHEP): a link with one place, filled by
    /// [`Self::play_in_browser`] with slot 0.
    pub async fn accept_browser_playback_offer(
        &self,
        offer_sdp: String,
    ) -> anyhow::Result<(LinkId, String)> {
        Ok(self.media.accept_playback_offer(offer_sdp).await?)
    }

    /// Completes a link this node offered its user's browser.
    pub async fn accept_browser_answer(
        &self,
        link: LinkId,
        answer_sdp: String,
    ) -> anyhow::Result<()> {
        Ok(self.media.accept_answer(link, answer_sdp).await?)
    }

    /// Shows what arrives on `source` (a link receiving from a member) in `slot` of the
    /// browser's `playback` link; `None` empties the slot.
    pub async fn play_in_browser(&self, playback: LinkId, slot: usize, source: Option<LinkId>) {
        self.media.play(playback, slot, source).await;
    }

    /// Shows the screen shared on `source` (a link from a member) in the browser's `playback`
    /// link; `None` shows none.
    pub async fn show_screen_in_browser(&self, playback: LinkId, source: Option<LinkId>) {
        self.media.show_screen(playback, source).await;
    }
}
