//! One page's connection: the [`PageSession`] that turns a page's requests into the node's
//! actions (join, media links, chat, files, screen, moderation, sign-in) and tells the page
//! what changed (roster, playback places, chat, files, hosts' decisions).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use chroom_net::PeerId;
use chroom_proto::page::{
    ClientMessage, CueAction, FileFetch, FileView, MAX_SHOWN_SIZES, ModerateAction,
    ParticipantView, ServerMessage, ShownSize, decode_page_request,
};
use chroom_room::node::{OwnRefusal, page_part};
use chroom_types::{
    Account, Action, Cue, LinkId, Moderation, Role, RoomId, RoomKind, RoomName, Track,
};
use tokio::sync::broadcast;

mod docs;
mod playback;
mod view;

use view::who;

use super::{Join, WebState};
use crate::files::{FetchState, FileStatus};
use crate::node::{ChatMessage, ModerationNotice, NodeHandle};

/// Remote members a page is first offered places for (a 3 × 3 grid with the page's own
/// camera); a bigger room gets a bigger offer, in steps of this many.
const PLAYBACK_SLOTS: usize = 8;

/// Most remote members a page shows at once: 24 audio and video m-lines each way is what a
/// browser still decodes at call sizes; beyond that, members are listed but not shown.
const MAX_PLAYBACK_SLOTS: usize = 24;

/// Chat lines a page is shown on joining.
const CHAT_HISTORY_LINES: usize = 100;

/// How long a wallet's signature lets the node act for its account; the page asks the wallet
/// again after that.
const WALLET_BINDING_TTL: Duration = Duration::from_secs(12 * 3600);

/// How often a page's participant list and places are refreshed even if the node says
/// nothing changed (sent only when they did). The node's view changes refresh them at once.
const ROSTER_REFRESH: Duration = Duration::from_secs(2);

/// How often the sizes the page shows members' cameras at are told their nodes again. Each is
/// told once when it changes, without waiting for an answer: one lost on the way (or overtaken
/// by an older one) would hold a member's layer wrong for as long as the page keeps its size.
const HEIGHTS_RETOLD: Duration = Duration::from_secs(5);

/// The page's connection is gone (or unusable): stop serving it.
#[derive(Debug)]
struct Closed;

/// One page's connection.
pub(super) struct PageSession {
    socket: WebSocket,
    node: NodeHandle,
    web: WebState,
    room: Option<RoomName>,
    /// The documents of `room` the page opened: members' edits of these are passed on.
    open_docs: BTreeSet<String>,
    /// The node took the page back from going live to watching (another broadcast won), and
    /// the page has not asked to join since: an offer it sent for the broadcast it left is
    /// dropped, not refused (the page was told why it watches).
    stepped_back: bool,
    /// `room`'s kind, from the registry check on joining.
    kind: Option<RoomKind>,
    /// Whether this node may send media in `room`.
    may_publish: bool,
    /// Whether the page broadcasts in `room` (is the root of its relay tree).
    live: bool,
    /// The link carrying the page's camera and microphone.
    media_link: Option<LinkId>,
    /// The link carrying the page's shared screen.
    screen_link: Option<LinkId>,
    /// The link carrying the program the page composes for its broadcast's audience.
    program_link: Option<LinkId>,
    /// The link showing the other members in the page.
    playback_link: Option<LinkId>,
    /// `playback_link` carries sound only (an audio space's).
    playback_audio_only: bool,
    /// The page asked for a standing playback link: it outlives rooms.
    playback_prepared: bool,
    /// Who each playback slot shows: the member and the link its media arrives on.
    slots: Vec<Option<(PeerId, LinkId)>>,
    /// Whose shared screen the playback link shows, and the link it arrives on.
    screen_shown: Option<(PeerId, LinkId)>,
    /// The participant list last sent, to send only changes.
    shown: Vec<ParticipantView>,
    /// The notices last sent, to send only changes.
    notices: Vec<String>,
    /// How tall the page said it shows each member's camera, as last told that member's node.
    shown_heights: HashMap<PeerId, u32>,
    /// When `shown_heights` were last told again in full.
    heights_told: Instant,
}

impl PageSession {
    pub(super) fn new(socket: WebSocket, web: WebState) -> Self {
        Self {
            socket,
            node: web.node.clone(),
            web,
            room: None,
            open_docs: BTreeSet::new(),
            stepped_back: false,
            kind: None,
            may_publish: false,
            live: false,
            media_link: None,
            screen_link: None,
            program_link: None,
            playback_link: None,
            playback_audio_only: false,
            playback_prepared: false,
            slots: Vec::new(),
            screen_shown: None,
            shown: Vec::new(),
            notices: Vec::new(),
            shown_heights: HashMap::new(),
            heights_told: Instant::now(),
        }
    }

    pub(super) async fn run(mut self) {
        if self.hello().await.is_err() {
            return;
        }
        let mut chat = self.node.chat_messages();
        let mut doc_events = self.node.doc_events();
        let mut files = self.node.files().subscribe();
        let mut notices = self.node.moderation_notices();
        let mut refresh = tokio::time::interval(ROSTER_REFRESH);
        let mut changes = self.node.view_changes();
        loop {
            let step = tokio::select! {
                incoming = self.socket.recv() => match incoming {
                    Some(Ok(message)) => self.handle_frame(message).await,
                    // Closed, or a frame over the limit (the socket is unusable after it).
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "page connection failed");
                        Err(Closed)
                    }
                    None => Err(Closed),
                },
                line = chat.recv() => match line {
                    Ok(line) => self.forward_chat(line).await,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        self.error(format!("{missed} chat messages were lost on the way to this page")).await
                    }
                    Err(broadcast::error::RecvError::Closed) => Err(Closed),
                },
                event = doc_events.recv() => match event {
                    Ok(event) => self.forward_doc_event(event).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.reopen_docs().await,
                    Err(broadcast::error::RecvError::Closed) => Err(Closed),
                },
                notice = notices.recv() => match notice {
                    Ok(notice) => self.forward_notice(notice).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => Ok(()),
                    Err(broadcast::error::RecvError::Closed) => Err(Closed),
                },
                status = files.recv() => match status {
                    Ok(status) => self.forward_file(status).await,
                    // Missed progress is made up by the next; a missed end is not: resend all.
                    Err(broadcast::error::RecvError::Lagged(_)) => self.send_files().await,
                    Err(broadcast::error::RecvError::Closed) => Err(Closed),
                },
                _ = refresh.tick(), if self.room.is_some() => self.refresh().await,
                Ok(()) = changes.changed(), if self.room.is_some() => self.refresh().await,
            };
            if step.is_err() {
                break;
            }
        }
        self.leave_room().await;
    }

    async fn handle_frame(&mut self, frame: Message) -> Result<(), Closed> {
        let text = match frame {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return self
                    .error("binary messages are not part of this API: send JSON text")
                    .await;
            }
            Message::Close(_) => return Err(Closed),
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
        };
        match decode_page_request(text.as_str()) {
            Ok(message) => self.handle(message).await,
            Err(e) => self.error(e.to_string()).await,
        }
    }

    async fn handle(&mut self, message: ClientMessage) -> Result<(), Closed> {
        match message {
            ClientMessage::Join { room, live } => {
                self.stepped_back = false;
                self.join(&room, live).await
            }
            ClientMessage::Leave => {
                self.leave_room().await;
                self.send(&ServerMessage::Left).await
            }
            ClientMessage::Chat { text } => self.chat(text).await,
            ClientMessage::Publish { sdp } => self.publish(sdp, Track::Camera).await,
            ClientMessage::ShareScreen { sdp } => self.publish(sdp, Track::Screen).await,
            ClientMessage::StopScreen => {
                self.stop_screen().await;
                Ok(())
            }
            ClientMessage::Program { sdp } => self.program(sdp).await,
            ClientMessage::StopProgram => {
                self.stop_program().await;
                Ok(())
            }
            ClientMessage::Moderate { peer_id, action } => self.moderate(&peer_id, action).await,
            ClientMessage::Cue { cue, peer_id } => self.cue(cue, peer_id.as_deref()).await,
            ClientMessage::Ask { text } => {
                let Some(room) = self.room.as_ref().map(RoomName::id) else {
                    return self.error("join a room before asking its hosts").await;
                };
                match self.node.ask_hosts(room, text.clone()).await {
                    // The page shows its own question as sent.
                    Ok(()) => {
                        let line = ChatMessage {
                            room,
                            author: self.node.peer_id(),
                            account: None,
                            sent_at_unix_ms: crate::clock::unix_now_ms(),
                            text,
                            question: true,
                        };
                        self.forward_chat(line).await
                    }
                    Err(e) => self.error(format!("question not sent: {e:#}")).await,
                }
            }
            ClientMessage::SetName { name } => {
                let name = name.filter(|name| !name.trim().is_empty());
                match self.node.set_display_name(name).await {
                    Ok(()) => Ok(()),
                    Err(e) => self.error(format!("{e:#}")).await,
                }
            }
            ClientMessage::FetchFile { hash } => self.fetch_file(&hash).await,
            ClientMessage::VideoSizes { sizes } => self.video_sizes(sizes).await,
            ClientMessage::OpenDoc { name } => self.open_doc(&name).await,
            ClientMessage::EditDoc { name, update } => self.edit_doc(&name, &update).await,
            ClientMessage::DocCursor { name, anchor, head } => {
                self.move_doc_cursor(&name, &anchor, &head).await
            }
            ClientMessage::SignInText => {
                let expires_at_unix = crate::clock::unix_now() + WALLET_BINDING_TTL.as_secs();
                let text = self.node.binding_text(expires_at_unix);
                self.send(&ServerMessage::SignInText {
                    text,
                    expires_at_unix,
                })
                .await
            }
            ClientMessage::SignIn {
                account,
                expires_at_unix,
                signature,
            } => self.sign_in(&account, expires_at_unix, &signature).await,
            ClientMessage::PreparePlayback => {
                self.playback_prepared = true;
                if self.playback_link.is_some() {
                    return Ok(());
                }
                self.offer_playback(false, PLAYBACK_SLOTS).await
            }
            ClientMessage::PlaybackAnswer { sdp, offer } => {
                let Some(link) = self.playback_link else {
                    return self
                        .error("no playback offer is waiting for an answer")
                        .await;
                };
                if offer != link.0 {
                    // The page answered an offer replaced since; it answers the new one next.
                    tracing::debug!(offer, current = %link, "answer to a replaced playback offer");
                    return Ok(());
                }
                match self.node.accept_browser_answer(link, sdp).await {
                    Ok(()) => Ok(()),
                    Err(e) => self.error(format!("playback answer refused: {e:#}")).await,
                }
            }
        }
    }

    /// Takes the page's offer to send its camera and microphone (`video` being
    /// [`Track::Camera`]) or its screen, replacing what it sent before.
    async fn publish(&mut self, sdp: String, video: Track) -> Result<(), Closed> {
        let Some(room) = self.room.as_ref().map(RoomName::id) else {
            return self.error("join a room before sending media").await;
        };
        if !self.may_publish {
            if self.stepped_back && video == Track::Camera {
                tracing::debug!(
                    "dropped an offer made for the broadcast the page stepped back from"
                );
                return Ok(());
            }
            return self
                .error("your role in this room does not let you send media")
                .await;
        }
        let sharing = video == Track::Screen;
        if sharing && self.kind == Some(RoomKind::AudioSpace) {
            return self
                .error("audio spaces carry no video: there is no screen to share")
                .await;
        }
        if sharing && let Some(refusal) = self.present(room).await {
            return self
                .send(&ServerMessage::ScreenRefused { message: refusal })
                .await;
        }
        let slot = if sharing {
            &mut self.screen_link
        } else {
            &mut self.media_link
        };
        if let Some(link) = slot.take() {
            self.node.close_browser_media(link).await;
        }
        let (link, sdp) = match self.node.accept_browser_media(sdp, video).await {
            Ok(accepted) => accepted,
            Err(e) => return self.error(format!("cannot send media: {e:#}")).await,
        };
        if !sharing {
            self.media_link = Some(link);
            return self.send(&ServerMessage::PublishAnswer { sdp }).await;
        }
        self.screen_link = Some(link);
        if self.node.share_screen(room, true).await.is_err() {
            return Err(Closed);
        }
        self.send(&ServerMessage::ScreenAnswer { sdp }).await
    }

    /// Takes the program the page composes while it is live with guests on stage: the
    /// audience gets it from now on, the guests the page's own tracks.
    async fn program(&mut self, sdp: String) -> Result<(), Closed> {
        if !self.live {
            return self
                .error("only a page that is live composes a program for its audience")
                .await;
        }
        self.stop_program().await;
        let (link, sdp) = match self.node.accept_program(sdp).await {
            Ok(accepted) => accepted,
            Err(e) => return self.error(format!("cannot send the program: {e:#}")).await,
        };
        self.program_link = Some(link);
        self.send(&ServerMessage::ProgramAnswer { sdp }).await
    }

    async fn stop_program(&mut self) {
        if let Some(link) = self.program_link.take() {
            self.node.close_browser_media(link).await;
        }
    }

    /// Asks to present in `room` (one member presents at a time): `None` if this node's user
    /// presents now, else why not (it stays in line; a host may hand it the presentation).
    async fn present(&mut self, room: RoomId) -> Option<String> {
        let me = self.node.peer_id();
        let assignments = async || match self.node.assignments(room).await {
            Ok(Some(assignments)) => Some(assignments),
            _ => None,
        };
        let asked = assignments()
            .await
            .is_some_and(|a| a.presenter == Some(me) || a.waiting_to_present.contains(&me));
        // Asking again would put the ask at the back of the line.
        if !asked && let Err(e) = self.node.cue(room, Cue::Present).await {
            return Some(format!("cannot present: {e:#}"));
        }
        match assignments().await.and_then(|a| a.presenter) {
            Some(presenter) if presenter == me => None,
            Some(presenter) => Some(format!(
                "node {} presents now: you are in line to present",
                &presenter.to_base58()[..12]
            )),
            None => Some("a host lets members present here: you are in line".into()),
        }
    }

    /// Asks the room to carry out a host's decision, if this node's account may moderate.
    async fn moderate(&mut self, peer_id: &str, action: ModerateAction) -> Result<(), Closed> {
        let Some(room) = self.room.clone() else {
            return self.error("join a room before moderating it").await;
        };
        let Ok(target) = peer_id.parse::<PeerId>() else {
            return self.error(format!("{peer_id:?} is not a PeerId")).await;
        };
        if target == self.node.peer_id() {
            return self.error("a host moderates others, not themselves").await;
        }
        // The registry is asked first (its answer is what the node decides by); a role that
        // does not allow it may still be outdone by the room's policy making this node's user
        // acting host, which the node decides.
        match self.node.check_own_access(&room, Action::Moderate).await {
            Ok(Err(refusal @ OwnRefusal::Unavailable)) => {
                return self.error(refusal.to_string()).await;
            }
            Ok(_) => {}
            Err(_) => return Err(Closed),
        }
        let action = match action {
            ModerateAction::Mute => Moderation::Mute,
            ModerateAction::Unmute => Moderation::Unmute,
            ModerateAction::Remove => Moderation::Remove,
        };
        match self.node.moderate(room.id(), target, action).await {
            Ok(()) => Ok(()),
            Err(e) => self.error(format!("{e:#}")).await,
        }
    }

    /// Asks the room's orchestrator for `action` (about `peer_id`, where it names a member).
    async fn cue(&mut self, action: CueAction, peer_id: Option<&str>) -> Result<(), Closed> {
        let Some(room) = self.room.clone() else {
            return self.error("join a room first").await;
        };
        let me = self.node.peer_id();
        let subject = match peer_id.map(str::parse::<PeerId>) {
            None => me,
            Some(Ok(peer)) => peer,
            Some(Err(_)) => return self.error(format!("{peer_id:?} is not a PeerId")).await,
        };
        let cue = match action {
            CueAction::Present => Cue::Present,
            CueAction::StopPresenting => Cue::StopPresenting,
            CueAction::PassPresentation => Cue::PassPresentation { to: subject },
            CueAction::RaiseHand => Cue::RaiseHand,
            CueAction::LowerHand => Cue::LowerHand { of: subject },
            CueAction::InviteToStage => Cue::InviteToStage { who: subject },
            CueAction::RemoveFromStage => Cue::RemoveFromStage { who: subject },
        };
        match self.node.cue(room.id(), cue).await {
            Ok(()) => Ok(()),
            Err(e) => self.error(format!("{e:#}")).await,
        }
    }

    /// Makes the node act for the account whose wallet signed its binding text.
    async fn sign_in(
        &mut self,
        account: &str,
        expires_at_unix: u64,
        signature: &str,
    ) -> Result<(), Closed> {
        let Ok(account) = account.parse::<Account>() else {
            return self.error(format!("{account:?} is not an account")).await;
        };
        let mut bytes = [0u8; 65];
        let hex = signature.strip_prefix("0x").unwrap_or(signature);
        if hex::decode_to_slice(hex, &mut bytes).is_err() {
            return self
                .error("a wallet signature is 65 bytes in hex (0x and 130 digits)")
                .await;
        }
        let binding = chroom_types::IdentityBinding {
            account,
            expires_at_unix,
            signature: bytes,
        };
        match self.node.sign_in(binding).await {
            Ok(_) => self.hello().await,
            Err(e) => self.error(format!("not signed in: {e:#}")).await,
        }
    }

    /// Tells the page which node it talks to and for which account.
    async fn hello(&mut self) -> Result<(), Closed> {
        let hello = ServerMessage::Hello {
            peer_id: self.node.peer_id().to_base58(),
            account: self.node.account().map(|a| a.to_string()),
            wallet_until_unix: self.node.wallet_until_unix(),
        };
        self.send(&hello).await
    }

    /// Tells the page of a host's decision in its room; a removed page leaves it.
    async fn forward_notice(&mut self, notice: ModerationNotice) -> Result<(), Closed> {
        let Some(room) = &self.room else {
            return Ok(());
        };
        if notice.room != room.id() {
            return Ok(());
        }
        let is_self = notice.target == self.node.peer_id();
        let message = ServerMessage::Moderated {
            room: room.as_str().to_owned(),
            peer_id: notice.target.to_base58(),
            account: notice.target_account.map(|a| a.to_string()),
            action: match notice.action {
                Moderation::Mute => ModerateAction::Mute,
                Moderation::Unmute => ModerateAction::Unmute,
                Moderation::Remove => ModerateAction::Remove,
            },
            by_peer_id: notice.by.to_base58(),
            by_account: notice.by_account.map(|a| a.to_string()),
            is_self,
        };
        self.send(&message).await?;
        if is_self && notice.action == Moderation::Remove {
            self.leave_room().await;
            return self.send(&ServerMessage::Left).await;
        }
        self.refresh_participants().await
    }

    async fn stop_screen(&mut self) {
        let Some(link) = self.screen_link.take() else {
            return;
        };
        self.node.close_browser_media(link).await;
        if let Some(room) = &self.room {
            // A stopped node has nobody to tell.
            let _ = self.node.share_screen(room.id(), false).await;
            let _ = self.node.cue(room.id(), Cue::StopPresenting).await;
        }
    }

    async fn join(&mut self, name: &str, live: bool) -> Result<(), Closed> {
        let room: RoomName = match name.parse() {
            Ok(room) => room,
            Err(e) => {
                return self
                    .error(format!("{name:?} is not a room name: {e}"))
                    .await;
            }
        };
        let access = match self.node.check_own_access(&room, Action::Listen).await {
            Ok(Ok(access)) => access,
            Ok(Err(refusal)) => return self.error(format!("cannot join: {refusal}")).await,
            Err(_) => return Err(Closed),
        };
        let on_stage = matches!(
            self.node.assignments(room.id()).await,
            Ok(Some(assignments)) if assignments.stage.contains(&self.node.peer_id())
        );
        let part = match page_part(access, live, on_stage) {
            Ok(part) => part,
            Err(e) => return self.error(e.to_string()).await,
        };
        // A broadcast already on: going live would take its viewers (or lose to it).
        if live
            && let Ok(status) = self.node.room_status(room.id()).await
            && let Some(broadcaster) = &status.watching
        {
            return self
                .error(format!(
                    "{} is live in this room: a room carries one broadcast at a time, so go \
                     live once theirs ends.",
                    who(broadcaster)
                ))
                .await;
        }
        // Taking part another way in the same room (coming on or off a stage) enters it again
        // before leaving the old way, so the node stays present: members would take a leave
        // for a new visit, and a stage grant ends with the visit. Going live or ending it
        // leaves the broadcast room first: its tree is left and joined afresh.
        let stays = self.room.as_ref().is_some_and(|r| r.id() == room.id())
            && (access.kind != Some(RoomKind::Broadcast) || !(live || self.live));
        if !stays {
            self.leave_room().await;
        }
        if let Err(e) = self
            .web
            .enter_room(room.id(), part.participation, Join::Always)
            .await
        {
            return self.error(format!("cannot join: {e:#}")).await;
        }
        if stays {
            self.leave_room().await;
        }
        tracing::info!(room = %room.as_str(), "page joined room");
        self.room = Some(room.clone());
        self.kind = access.kind;
        self.may_publish = part.may_publish;
        self.live = live;
        self.shown.clear();
        self.notices.clear();
        self.send(&ServerMessage::Joined {
            room: room.as_str().to_owned(),
            kind: access.kind.map(RoomKind::name),
            may_publish: part.may_publish,
            live,
            may_go_live: part.may_go_live,
            role: access.role.map(Role::name),
        })
        .await?;
        // The playback link first: it has the most to set up before the others show (a
        // prepared one of the right kind is ready already). Audio-only rooms negotiate no
        // video at all, towards the page as between nodes.
        let audio_only = access.kind == Some(RoomKind::AudioSpace);
        if self.playback_link.is_none() || self.playback_audio_only != audio_only {
            self.offer_playback(audio_only, PLAYBACK_SLOTS).await?;
        }
        self.send_chat_history(&room).await?;
        self.send_files().await?;
        self.refresh_participants().await
    }

    /// The room's recent chat, as this node kept it.
    async fn send_chat_history(&mut self, room: &RoomName) -> Result<(), Closed> {
        let lines = match self.node.chat_history(room.id(), CHAT_HISTORY_LINES) {
            Ok(lines) => lines,
            Err(e) => return self.error(format!("chat history unavailable: {e:#}")).await,
        };
        for line in lines {
            self.forward_chat(line).await?;
        }
        Ok(())
    }

    async fn chat(&mut self, text: String) -> Result<(), Closed> {
        let Some(room) = self.room.clone() else {
            return self.error("join a room before chatting").await;
        };
        if text.len() > chroom_types::MAX_CHAT_TEXT_BYTES {
            return self
                .error(format!(
                    "chat messages are at most {} bytes",
                    chroom_types::MAX_CHAT_TEXT_BYTES
                ))
                .await;
        }
        match self.node.send_chat(room.id(), text).await {
            // The page shows its own line with the time members see on it.
            Ok(line) => self.forward_chat(line).await,
            Err(e) => self.error(format!("chat not sent: {e:#}")).await,
        }
    }

    /// Every file shared in the page's room, as this node holds it.
    async fn send_files(&mut self) -> Result<(), Closed> {
        let Some(room) = &self.room else {
            return Ok(());
        };
        let files = match self.node.files().room_files(room.id()).await {
            Ok(files) => files,
            Err(e) => return self.error(format!("shared files unavailable: {e:#}")).await,
        };
        for status in files {
            self.forward_file(status).await?;
        }
        Ok(())
    }

    /// Asks the node for a file of the page's room it did not fetch by itself; the file's
    /// next status says what became of it.
    async fn fetch_file(&mut self, hash: &str) -> Result<(), Closed> {
        let Some(room) = self.room.as_ref().map(RoomName::id) else {
            return self.error("join a room before downloading its files").await;
        };
        let Ok(hash) = hash.parse::<chroom_types::FileHash>() else {
            return self
                .error(format!("{hash:?} is not a file's hash (64 hex digits)"))
                .await;
        };
        match self.node.files().fetch(room, hash).await {
            Ok(()) => Ok(()),
            Err(e) => self.error(format!("not downloaded: {e:#}")).await,
        }
    }

    async fn forward_file(&mut self, status: FileStatus) -> Result<(), Closed> {
        let Some(room) = &self.room else {
            return Ok(());
        };
        if status.room != room.id() {
            return Ok(());
        }
        let view = FileView {
            room: room.as_str().to_owned(),
            hash: status.hash.to_string(),
            own: status.offered_by == self.node.peer_id().to_base58(),
            name: status.name,
            size: status.size,
            peer_id: status.offered_by,
            account: status.account.map(|a| a.to_string()),
            sent_at_unix_ms: status.offered_at_unix_ms,
            received: status.received,
            complete: status.complete,
            fetch: match status.fetch {
                FetchState::Fetching => FileFetch::Fetching,
                FetchState::OnRequest => FileFetch::OnRequest,
                FetchState::Refused => FileFetch::Refused,
            },
            problem: status.problem,
        };
        self.send(&ServerMessage::File(view)).await
    }

    async fn forward_chat(&mut self, line: ChatMessage) -> Result<(), Closed> {
        let Some(room) = &self.room else {
            return Ok(());
        };
        if line.room != room.id() {
            return Ok(());
        }
        let message = ServerMessage::Chat {
            room: room.as_str().to_owned(),
            peer_id: line.author.to_base58(),
            account: line.account.map(|a| a.to_string()),
            sent_at_unix_ms: line.sent_at_unix_ms,
            text: line.text,
            own: line.author == self.node.peer_id(),
            question: line.question,
        };
        self.send(&message).await
    }

    /// Tells each member's node how tall the page shows its camera, when that changed.
    async fn video_sizes(&mut self, sizes: Vec<ShownSize>) -> Result<(), Closed> {
        let Some(room) = self.room.as_ref().map(RoomName::id) else {
            return self.error("join a room before sizing its videos").await;
        };
        if sizes.len() > MAX_SHOWN_SIZES {
            let error = format!("{} sizes, at most {MAX_SHOWN_SIZES}", sizes.len());
            return self.error(error).await;
        }
        for ShownSize { peer_id, height } in sizes {
            let Ok(peer) = peer_id.parse::<PeerId>() else {
                return self.error(format!("{peer_id:?} is not a PeerId")).await;
            };
            if self.shown_heights.insert(peer, height) != Some(height) {
                self.node.show_video_at(room, peer, height);
            }
        }
        Ok(())
    }

    async fn leave_room(&mut self) {
        self.shown_heights.clear();
        self.open_docs.clear();
        self.stop_screen().await;
        self.stop_program().await;
        if let Some(link) = self.media_link.take() {
            self.node.close_browser_media(link).await;
        }
        self.clear_playback().await;
        self.live = false;
        let Some(room) = self.room.take() else {
            return;
        };
        tracing::info!(room = %room.as_str(), "page left room");
        self.web.leave_room(room.id()).await;
    }

    async fn error(&mut self, message: impl Into<String>) -> Result<(), Closed> {
        let message = message.into();
        tracing::debug!(%message, "page request refused");
        self.send(&ServerMessage::Error { message }).await
    }

    async fn send(&mut self, message: &ServerMessage) -> Result<(), Closed> {
        let text = serde_json::to_string(message).map_err(|_| Closed)?;
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| Closed)
    }
}
